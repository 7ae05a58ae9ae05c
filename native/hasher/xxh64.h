/* XXH64 (seed 0), streaming; the digest as xxhsum -H64 prints it (big-endian hex). */
#ifndef DDT_XXH64_H
#define DDT_XXH64_H
#include <stddef.h>
#include <stdint.h>

struct xxh64 {
  uint64_t v[4];
  uint64_t total;
  unsigned char mem[32];
  size_t memsize;
};

void xxh64_init(struct xxh64 *s);
void xxh64_update(struct xxh64 *s, const unsigned char *p, size_t len);
/* The same bytes into both states (a unit and its block), in one pass where they line up. */
void xxh64_update2(struct xxh64 *s, struct xxh64 *t, const unsigned char *p, size_t len);
uint64_t xxh64_digest(const struct xxh64 *s);

#endif
