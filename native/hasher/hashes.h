/* One hasher over either algo, printed as the shell tools print it. */
#ifndef DDT_HASHES_H
#define DDT_HASHES_H
#include <stddef.h>
#include "sha256.h"
#include "xxh64.h"

enum { ALGO_XXH64, ALGO_SHA256 };

struct hasher {
  int algo;
  union {
    struct xxh64 x;
    struct sha256 s;
  } st;
};

int algo_of(const char *name); /* -1: unknown */
void hasher_init(struct hasher *h, int algo);
void hasher_update(struct hasher *h, const unsigned char *p, size_t len);
/* The same bytes into both (fused where both are xxh64). */
void hasher_update2(struct hasher *h, struct hasher *g, const unsigned char *p, size_t len);
char *hasher_hex(const struct hasher *h, char hex[65]);

#endif
