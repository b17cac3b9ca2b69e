/* quantize_avx2.h: QuantizeLinear float32 -> int8 / uint8 per tensor, 8 and 32 lanes at a time,
 * for the AVX2 kernels that end in it (quantize_i8.c; elementwise.c's int8 output). The same
 * float32 division r = x / s and the same integer steps on the bits of r and r + 1.5 * 2^23 as
 * dse_quantize_block (src/requant.h): vdivps and vaddps are the IEEE operations of the scalar
 * code, so the bits are the same; then 32 clamped int32 of 4 vectors are packed to bytes (exact:
 * every value is already in [lo, hi]). */
#ifndef DSEDGE_QUANTIZE_AVX2_H
#define DSEDGE_QUANTIZE_AVX2_H

#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

DSE_TARGET_AVX2 static inline __m256i avx2_q8(const float *x, __m256 s, __m256i zp, __m256i lo, __m256i hi) {
    const __m256 r = _mm256_div_ps(_mm256_loadu_ps(x), s), m = _mm256_add_ps(r, _mm256_set1_ps(12582912.0f));
    const __m256i rb = _mm256_castps_si256(r), mb = _mm256_castps_si256(m);
    const __m256i mag = _mm256_and_si256(rb, _mm256_set1_epi32(0x7FFFFFFF));
    const __m256i neg = _mm256_srli_epi32(rb, 31);
    __m256i v = _mm256_sub_epi32(_mm256_and_si256(mb, _mm256_set1_epi32(0x7FFFFF)), _mm256_set1_epi32(0x400000));
    const __m256i big = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x43FFFFFF));              /* |r| >= 512 */
    v = _mm256_blendv_epi8(v, _mm256_sub_epi32(_mm256_set1_epi32(1024), _mm256_slli_epi32(neg, 11)), big);
    v = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v, zp), lo), hi);
    return _mm256_blendv_epi8(v, zp, _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7F800000)));   /* NaN: zp */
}

/* y[0..32) = QuantizeLinear(x[0..32), s, zp) clamped to [lo, hi] (u8: uint8 bytes, else int8). */
DSE_TARGET_AVX2 static inline void avx2_q32(const float *x, void *y, __m256 s, __m256i zp, __m256i lo, __m256i hi,
                                            int u8) {
    const __m256i v0 = avx2_q8(x, s, zp, lo, hi), v1 = avx2_q8(x + 8, s, zp, lo, hi);
    const __m256i v2 = avx2_q8(x + 16, s, zp, lo, hi), v3 = avx2_q8(x + 24, s, zp, lo, hi);
    const __m256i w01 = _mm256_packs_epi32(v0, v1), w23 = _mm256_packs_epi32(v2, v3);
    const __m256i b = u8 ? _mm256_packus_epi16(w01, w23) : _mm256_packs_epi16(w01, w23);
    _mm256_storeu_si256((__m256i *)y, _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

#endif
#endif
