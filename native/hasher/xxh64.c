/* XXH64 as specified by the xxHash project (seed 0). Little-endian loads through memcpy, so it
 * is the same on x86_64 and aarch64; the digest is printed big-endian, as xxhsum -H64 does. */
#include "xxh64.h"
#include <string.h>

#define P1 11400714785074694791ULL
#define P2 14029467366897019727ULL
#define P3 1609587929392839161ULL
#define P4 9650029242287828579ULL
#define P5 2870177450012600261ULL

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t round1(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
static inline uint64_t merge(uint64_t acc, uint64_t v) { return (acc ^ round1(0, v)) * P1 + P4; }

void xxh64_init(struct xxh64 *s) {
  s->v[0] = P1 + P2;
  s->v[1] = P2;
  s->v[2] = 0;
  s->v[3] = -P1;
  s->total = 0;
  s->memsize = 0;
}

/* 32-byte stripes; the caller guarantees len is a multiple of 32. */
static void stripes(uint64_t v[4], const unsigned char *p, size_t len) {
  uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
  for (const unsigned char *end = p + len; p < end; p += 32) {
    a = round1(a, rd64(p));
    b = round1(b, rd64(p + 8));
    c = round1(c, rd64(p + 16));
    d = round1(d, rd64(p + 24));
  }
  v[0] = a, v[1] = b, v[2] = c, v[3] = d;
}

void xxh64_update(struct xxh64 *s, const unsigned char *p, size_t len) {
  s->total += len;
  if (s->memsize + len < 32) {
    memcpy(s->mem + s->memsize, p, len);
    s->memsize += len;
    return;
  }
  if (s->memsize) {
    size_t fill = 32 - s->memsize;
    memcpy(s->mem + s->memsize, p, fill);
    stripes(s->v, s->mem, 32);
    p += fill, len -= fill;
    s->memsize = 0;
  }
  size_t bulk = len & ~(size_t)31;
  stripes(s->v, p, bulk);
  memcpy(s->mem, p + bulk, len - bulk);
  s->memsize = len - bulk;
}

/* Both states over the same stripes in one loop: each state's four lanes are chains of a
 * multiply and a rotate, so one state alone leaves the multiplier idle most of the time; eight
 * independent lanes keep it busy, and a block and its unit cost about one pass, not two. */
static void stripes2(uint64_t v[4], uint64_t w[4], const unsigned char *p, size_t len) {
  uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
  uint64_t e = w[0], f = w[1], g = w[2], h = w[3];
  for (const unsigned char *end = p + len; p < end; p += 32) {
    uint64_t i0 = rd64(p), i1 = rd64(p + 8), i2 = rd64(p + 16), i3 = rd64(p + 24);
    a = round1(a, i0), e = round1(e, i0);
    b = round1(b, i1), f = round1(f, i1);
    c = round1(c, i2), g = round1(g, i2);
    d = round1(d, i3), h = round1(h, i3);
  }
  v[0] = a, v[1] = b, v[2] = c, v[3] = d;
  w[0] = e, w[1] = f, w[2] = g, w[3] = h;
}

void xxh64_update2(struct xxh64 *s, struct xxh64 *t, const unsigned char *p, size_t len) {
  /* Fused only where both are at the same place in their stripes (a unit that starts a
   * multiple of 32 bytes into its block, as units do); otherwise one after the other. */
  if (s->memsize != t->memsize || s->memsize + len < 32) {
    xxh64_update(s, p, len);
    xxh64_update(t, p, len);
    return;
  }
  s->total += len;
  t->total += len;
  if (s->memsize) {
    size_t fill = 32 - s->memsize;
    memcpy(s->mem + s->memsize, p, fill);
    memcpy(t->mem + t->memsize, p, fill);
    stripes(s->v, s->mem, 32);
    stripes(t->v, t->mem, 32);
    p += fill, len -= fill;
  }
  size_t bulk = len & ~(size_t)31;
  stripes2(s->v, t->v, p, bulk);
  memcpy(s->mem, p + bulk, len - bulk);
  memcpy(t->mem, p + bulk, len - bulk);
  s->memsize = t->memsize = len - bulk;
}

uint64_t xxh64_digest(const struct xxh64 *s) {
  uint64_t h;
  if (s->total >= 32) {
    h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
    for (int i = 0; i < 4; i++) h = merge(h, s->v[i]);
  } else {
    h = P5;
  }
  h += s->total;
  const unsigned char *p = s->mem, *end = s->mem + s->memsize;
  for (; p + 8 <= end; p += 8) h = rotl(h ^ round1(0, rd64(p)), 27) * P1 + P4;
  if (p + 4 <= end) {
    h = rotl(h ^ (uint64_t)rd32(p) * P1, 23) * P2 + P3;
    p += 4;
  }
  for (; p < end; p++) h = rotl(h ^ *p * P5, 11) * P1;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}
