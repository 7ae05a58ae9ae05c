/* SHA-256 blocks with the ARMv8 SHA2 instructions, when the CPU has them (HWCAP_SHA2). Compiled
 * for those instructions (the function's target attribute); nothing here runs before the check. */
#include "sha256.h"
#include <arm_neon.h>
#include <sys/auxv.h>
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1 << 6)
#endif

__attribute__((target("+crypto"))) static void blocks_armv8(uint32_t h[8], const unsigned char *p, size_t n) {
  uint32x4_t st0 = vld1q_u32(&h[0]), st1 = vld1q_u32(&h[4]);
  for (; n--; p += 64) {
    uint32x4_t save0 = st0, save1 = st1, m[4];
    for (int i = 0; i < 4; i++) m[i] = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p + 16 * i)));
    uint32x4_t t0 = vaddq_u32(m[0], vld1q_u32(&SHA256_K[0])), t1 = t0;
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
      if (g < 12) m[g % 4] = vsha256su0q_u32(m[g % 4], m[(g + 1) % 4]);
      uint32x4_t t2 = st0;
      if (g < 15) t1 = vaddq_u32(m[(g + 1) % 4], vld1q_u32(&SHA256_K[4 * (g + 1)]));
      st0 = vsha256hq_u32(st0, st1, t0);
      st1 = vsha256h2q_u32(st1, t2, t0);
      if (g < 12) m[g % 4] = vsha256su1q_u32(m[g % 4], m[(g + 2) % 4], m[(g + 3) % 4]);
      t0 = t1;
    }
    st0 = vaddq_u32(st0, save0);
    st1 = vaddq_u32(st1, save1);
  }
  vst1q_u32(&h[0], st0);
  vst1q_u32(&h[4], st1);
}

sha256_blocks_fn *sha256_accel(void) {
  return (getauxval(AT_HWCAP) & HWCAP_SHA2) ? blocks_armv8 : 0;
}

const char *sha256_accel_name(void) { return "armv8"; }
