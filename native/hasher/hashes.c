#include "hashes.h"
#include <stdio.h>
#include <string.h>

int algo_of(const char *name) {
  if (!strcmp(name, "xxh64")) return ALGO_XXH64;
  if (!strcmp(name, "sha256")) return ALGO_SHA256;
  return -1;
}

void hasher_init(struct hasher *h, int algo) {
  h->algo = algo;
  if (algo == ALGO_XXH64) xxh64_init(&h->st.x);
  else sha256_init(&h->st.s);
}

void hasher_update(struct hasher *h, const unsigned char *p, size_t len) {
  if (h->algo == ALGO_XXH64) xxh64_update(&h->st.x, p, len);
  else sha256_update(&h->st.s, p, len);
}

void hasher_update2(struct hasher *h, struct hasher *g, const unsigned char *p, size_t len) {
  if (h->algo == ALGO_XXH64 && g->algo == ALGO_XXH64) {
    xxh64_update2(&h->st.x, &g->st.x, p, len);
    return;
  }
  hasher_update(h, p, len);
  hasher_update(g, p, len);
}

char *hasher_hex(const struct hasher *h, char hex[65]) {
  if (h->algo == ALGO_XXH64) {
    snprintf(hex, 65, "%016llx", (unsigned long long)xxh64_digest(&h->st.x));
  } else {
    unsigned char d[32];
    sha256_digest(&h->st.s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  }
  return hex;
}
