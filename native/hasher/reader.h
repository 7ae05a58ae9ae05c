/* Sequential reads of a list of ranges on a thread of their own, a few large buffers ahead of
 * the hashing, so the device is busy while the CPU hashes. */
#ifndef DDT_READER_H
#define DDT_READER_H
#include <stdint.h>

struct run {
  uint64_t offset, length, block;
};

/* A piece of the ranges, in order. `length` is always what was asked for; when it could not be
 * read whole, `error` says why and only its first `valid` bytes are data. */
struct chunk {
  const unsigned char *data;
  uint64_t length, valid;
  const char *error;
};

struct reader;
struct reader *reader_start(const char *path, const struct run *runs, uint64_t count, int buffered);
struct chunk reader_next(struct reader *r); /* the next piece; valid until reader_done */
void reader_done(struct reader *r);

#endif
