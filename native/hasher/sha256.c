/* SHA-256 (FIPS 180-4). The compression function is the portable one below unless the CPU has
 * SHA instructions (x86 SHA-NI, ARMv8 SHA2): those run several times faster, and sha256 is the
 * checksum on hosts without xxhsum, so it decides how fast such a host is hashed. */
#include "sha256.h"
#include <stdlib.h>
#include <string.h>

const uint32_t SHA256_K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void blocks_c(uint32_t h[8], const unsigned char *p, size_t n) {
  for (; n--; p += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
      uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
      uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i];
      uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
  }
}

static sha256_blocks_fn *blocks;

static sha256_blocks_fn *chosen(void) {
  if (!blocks) {
    /* DDT_HASH_PORTABLE: the portable code on a CPU with SHA instructions (its parity tests). */
    blocks = getenv("DDT_HASH_PORTABLE") ? 0 : sha256_accel();
    if (!blocks) blocks = blocks_c;
  }
  return blocks;
}

const char *sha256_impl(void) {
  return chosen() == blocks_c ? "c" : sha256_accel_name();
}

void sha256_init(struct sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->total = 0;
  s->buflen = 0;
  chosen();
}

void sha256_update(struct sha256 *s, const unsigned char *p, size_t len) {
  s->total += len;
  if (s->buflen) {
    size_t fill = 64 - s->buflen;
    if (len < fill) {
      memcpy(s->buf + s->buflen, p, len);
      s->buflen += len;
      return;
    }
    memcpy(s->buf + s->buflen, p, fill);
    blocks(s->h, s->buf, 1);
    p += fill, len -= fill;
    s->buflen = 0;
  }
  if (len >= 64) {
    blocks(s->h, p, len / 64);
    p += len & ~(size_t)63;
    len &= 63;
  }
  memcpy(s->buf, p, len);
  s->buflen = len;
}

void sha256_digest(const struct sha256 *s, unsigned char out[32]) {
  struct sha256 t = *s;
  unsigned char pad[72] = {0x80};
  size_t padlen = (t.buflen < 56 ? 56 : 120) - t.buflen;
  uint64_t bits = t.total * 8;
  for (int i = 0; i < 8; i++) pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(&t, pad, padlen + 8);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(t.h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(t.h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(t.h[i] >> 8);
    out[4 * i + 3] = (unsigned char)t.h[i];
  }
}
