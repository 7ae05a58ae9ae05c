/* SHA-256 blocks with the x86 SHA extensions (SHA-NI), when the CPU has them (cpuid). Compiled
 * for those instructions (the function's target attribute); nothing here runs before the check. */
#include "sha256.h"
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("sha,sse4.1,ssse3"))) static void blocks_shani(uint32_t h[8], const unsigned char *p, size_t n) {
  const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
  __m128i st1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* EFGH */
  __m128i st0 = _mm_alignr_epi8(tmp, st1, 8);                                      /* ABEF */
  st1 = _mm_blend_epi16(st1, tmp, 0xF0);                                           /* CDGH */
  for (; n--; p += 64) {
    __m128i abef = st0, cdgh = st1, m[4];
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
      if (g < 4) m[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), MASK);
      __m128i msg = _mm_add_epi32(m[g % 4], _mm_loadu_si128((const __m128i *)&SHA256_K[4 * g]));
      st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
      if (g >= 3 && g <= 14) {
        __m128i t = _mm_alignr_epi8(m[g % 4], m[(g + 3) % 4], 4);
        m[(g + 1) % 4] = _mm_sha256msg2_epu32(_mm_add_epi32(m[(g + 1) % 4], t), m[g % 4]);
      }
      st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(msg, 0x0E));
      if (g >= 1 && g <= 12) m[(g + 3) % 4] = _mm_sha256msg1_epu32(m[(g + 3) % 4], m[g % 4]);
    }
    st0 = _mm_add_epi32(st0, abef);
    st1 = _mm_add_epi32(st1, cdgh);
  }
  tmp = _mm_shuffle_epi32(st0, 0x1B);    /* FEBA */
  st1 = _mm_shuffle_epi32(st1, 0xB1);    /* DCHG */
  st0 = _mm_blend_epi16(tmp, st1, 0xF0); /* DCBA */
  st1 = _mm_alignr_epi8(st1, tmp, 8);    /* ABEF */
  _mm_storeu_si128((__m128i *)&h[0], st0);
  _mm_storeu_si128((__m128i *)&h[4], st1);
}

sha256_blocks_fn *sha256_accel(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) return 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29))) return 0;
  return blocks_shani;
}

const char *sha256_accel_name(void) { return "sha-ni"; }
