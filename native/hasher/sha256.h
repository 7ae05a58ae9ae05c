/* SHA-256, streaming; the digest as sha256sum prints it. */
#ifndef DDT_SHA256_H
#define DDT_SHA256_H
#include <stddef.h>
#include <stdint.h>

struct sha256 {
  uint32_t h[8];
  uint64_t total;
  unsigned char buf[64];
  size_t buflen;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const unsigned char *p, size_t len);
void sha256_digest(const struct sha256 *s, unsigned char out[32]);
/* Which compression function runs here: "sha-ni", "armv8" or "c". */
const char *sha256_impl(void);

/* `blocks` 64-byte blocks into the state; the instruction-set versions live in their own files,
 * compiled with the flags they need, and are chosen at run time by what the CPU says it has. */
typedef void sha256_blocks_fn(uint32_t h[8], const unsigned char *p, size_t blocks);
extern const uint32_t SHA256_K[64];
sha256_blocks_fn *sha256_accel(void);
const char *sha256_accel_name(void);

#endif
