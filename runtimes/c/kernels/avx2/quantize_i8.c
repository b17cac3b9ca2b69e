/* quantize_i8.c (AVX2): QuantizeLinear float32 -> int8 / uint8 per tensor, the bytes of
 * kernels/ref/quantize.c (whose check it uses): the same float32 division r = x / s and the
 * same integer steps on the bits of r and r + 1.5 * 2^23 as dse_quantize_block (src/requant.h),
 * 8 lanes at a time (vdivps and vaddps are the IEEE operations of the scalar code, so the bits
 * are the same), then the 32 clamped int32 of 4 vectors packed to bytes (exact: every value is
 * already in [lo, hi]). The tail is REF's scalar loop. Threads: chunks of 1024 vectors. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>
#include <math.h>

#include "requant.h"

typedef struct avx2_q_args { const float *x; void *y; float s; int zp, lo, hi, u8; } avx2_q_args;

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

DSE_TARGET_AVX2 static void avx2_q_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const avx2_q_args *a = arg;
    const __m256 s = _mm256_set1_ps(a->s);
    const __m256i zp = _mm256_set1_epi32(a->zp), lo = _mm256_set1_epi32(a->lo), hi = _mm256_set1_epi32(a->hi);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t i = begin * 32; i < end * 32; i += 32) {
        const __m256i v0 = avx2_q8(a->x + i, s, zp, lo, hi), v1 = avx2_q8(a->x + i + 8, s, zp, lo, hi);
        const __m256i v2 = avx2_q8(a->x + i + 16, s, zp, lo, hi), v3 = avx2_q8(a->x + i + 24, s, zp, lo, hi);
        const __m256i w01 = _mm256_packs_epi32(v0, v1), w23 = _mm256_packs_epi32(v2, v3);
        const __m256i b = a->u8 ? _mm256_packus_epi16(w01, w23) : _mm256_packs_epi16(w01, w23);
        _mm256_storeu_si256((__m256i *)(void *)((uint8_t *)a->y + i), _mm256_permutevar8x32_epi32(b, order));
    }
}

DSE_TARGET_AVX2 void dse_i8_quantize__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    avx2_q_args a;
    const dse_tensor *st = dse__t(m, n->in[1]), *zt = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    const int qtype = m->tensors[n->out[0]].dtype;
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    memcpy(&a.s, st->cdata, sizeof a.s);
    a.u8 = qtype == DSE_DTYPE_UINT8;
    a.zp = !zt ? 0 : a.u8 ? *(const uint8_t *)zt->cdata : *(const int8_t *)zt->cdata;
    a.lo = a.u8 ? 0 : -128, a.hi = a.u8 ? 255 : 127;
    const size_t e = m->tensors[n->out[0]].numel, blocks = e / 32;
    dse__parallel(cx, blocks, 1024, avx2_q_range, &a);
    for (size_t i = blocks * 32; i < e; i++) {           /* the tail: REF's scalar loop */
        const float r = nearbyintf(a.x[i] / a.s);
        int32_t q = r != r ? a.zp : r <= -512.0f ? a.lo : r >= 512.0f ? a.hi : (int32_t)r + a.zp;
        q = q < a.lo ? a.lo : q > a.hi ? a.hi : q;
        if (a.u8) ((uint8_t *)a.y)[i] = (uint8_t)q;
        else ((int8_t *)a.y)[i] = (int8_t)q;
    }
}

#endif
