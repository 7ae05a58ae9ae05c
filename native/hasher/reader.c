/* The reader thread. Reads go through O_DIRECT where the target takes it and the piece is 4 KiB
 * aligned (any logical sector size divides that): the bytes then come from the device, and a
 * whole-device pass does not push everything else out of the page cache. Anything else (a file
 * system without O_DIRECT, an unaligned tail, a source asked to be read `buffered`) is read
 * through the page cache. */
#define _GNU_SOURCE
#include "reader.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PIECE (4u << 20)
#define SLOTS 4
#define ALIGN 4096

struct slot {
  unsigned char *buf;
  uint64_t length, valid;
  char error[160];
  int bad;
};

struct reader {
  int fd, direct;
  char why[120]; /* why the target cannot be opened: every piece fails with it */
  const struct run *runs;
  uint64_t count;
  struct slot slot[SLOTS];
  uint64_t filled, taken; /* pieces produced, pieces handed back */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
};

/* Exactly `len` bytes at `off` into `buf`, or a reason why not; `*got`: the bytes that were read. */
static int read_at(struct reader *r, unsigned char *buf, uint64_t len, uint64_t off, char *why, size_t whylen, uint64_t *got) {
  int fd = r->fd;
  *got = 0;
  if (fd < 0) {
    snprintf(why, whylen, "%s", r->why);
    return 0;
  }
  if (r->direct >= 0 && off % ALIGN == 0 && len % ALIGN == 0) fd = r->direct;
  for (uint64_t done = 0; done < len;) {
    ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && fd == r->direct) {
      /* This target takes O_DIRECT at open but not for these reads: buffered from now on. */
      close(r->direct);
      r->direct = -1;
      fd = r->fd;
      continue;
    }
    if (n < 0) {
      snprintf(why, whylen, "read failed at byte %llu: %s", (unsigned long long)(off + done), strerror(errno));
      return 0;
    }
    if (n == 0) {
      snprintf(why, whylen, "read short: the target ends at byte %llu (range beyond end of target?)", (unsigned long long)(off + done));
      return 0;
    }
    done += (uint64_t)n;
    *got = done;
  }
  return 1;
}

static void *run_reader(void *arg) {
  struct reader *r = arg;
  for (uint64_t i = 0; i < r->count; i++) {
    uint64_t end = r->runs[i].offset + r->runs[i].length;
    for (uint64_t off = r->runs[i].offset; off < end; off += PIECE) {
      pthread_mutex_lock(&r->mu);
      while (r->filled - r->taken >= SLOTS) pthread_cond_wait(&r->cv, &r->mu);
      struct slot *s = &r->slot[r->filled % SLOTS];
      pthread_mutex_unlock(&r->mu);
      s->length = end - off < PIECE ? end - off : PIECE;
      s->bad = !read_at(r, s->buf, s->length, off, s->error, sizeof s->error, &s->valid);
      pthread_mutex_lock(&r->mu);
      r->filled++;
      pthread_cond_broadcast(&r->cv);
      pthread_mutex_unlock(&r->mu);
    }
  }
  return 0;
}

/* The read buffers, SLOTS pieces in one mapping, with their memory in place before the first
 * read. In huge pages where the kernel has them: on a VM that shadows the guest's page tables the
 * first touch of every 4 KiB page costs a trip to the hypervisor, even on pages mapped already
 * (MAP_POPULATE): 16 MiB of small pages took ≈ 30 ms of a process's first pieces, measured on
 * such a VM, against under 1 ms in 2 MiB pages. A read-back starts one process per block, so
 * that cost came with every block written. Elsewhere huge pages cost nothing extra. */
static unsigned char *piece_buffers(size_t len) {
  const size_t huge = 2u << 20;
  unsigned char *m = mmap(0, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 0;
  unsigned char *p = (unsigned char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
  madvise(p, len, MADV_HUGEPAGE); /* advice: without THP the pages stay small */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  if (madvise(p, len, MADV_POPULATE_WRITE) != 0) /* before Linux 5.14: a write per page */
    for (size_t i = 0; i < len; i += 4096) p[i] = 0;
  return p;
}

struct reader *reader_start(const char *path, const struct run *runs, uint64_t count, int buffered) {
  struct reader *r = calloc(1, sizeof *r);
  r->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (r->fd < 0) snprintf(r->why, sizeof r->why, "cannot open %s: %s", path, strerror(errno));
  r->direct = buffered ? -1 : open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (buffered && r->fd >= 0) posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  r->runs = runs;
  r->count = count;
  unsigned char *bufs = piece_buffers(SLOTS * (size_t)PIECE);
  if (!bufs) return 0;
  for (int i = 0; i < SLOTS; i++) r->slot[i].buf = bufs + (size_t)i * PIECE;
  pthread_mutex_init(&r->mu, 0);
  pthread_cond_init(&r->cv, 0);
  if (pthread_create(&r->thread, 0, run_reader, r)) return 0;
  return r;
}

struct chunk reader_next(struct reader *r) {
  pthread_mutex_lock(&r->mu);
  while (r->filled == r->taken) pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  struct slot *s = &r->slot[r->taken % SLOTS];
  struct chunk c = {s->buf, s->length, s->bad ? s->valid : s->length, s->bad ? s->error : 0};
  return c;
}

void reader_done(struct reader *r) {
  pthread_mutex_lock(&r->mu);
  r->taken++;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}
