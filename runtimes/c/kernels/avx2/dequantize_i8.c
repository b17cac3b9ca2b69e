/* dequantize_i8.c (AVX2): DequantizeLinear int8 / uint8 -> float32 per tensor, the bytes of
 * kernels/ref/dequantize.c (whose check it uses): y = (float)(q - zp) * scale, 16 at a time: the
 * bytes widened to int32 (vpmovsxbd / vpmovzxbd), zp subtracted in int32 (exact), converted to float
 * (exact: |q - zp| <= 255) and one float32 multiply, the scalar code's one rounding. The tail is
 * the same expression in C. Threads: chunks of 16384 elements, as REF. (A REF kernel in the
 * profiles of real models: rapidocr det spent 3.5 of 55 ms in it.) */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

typedef struct avx2_dq_args { const void *x; float *y; float s; int zp, u8; } avx2_dq_args;

DSE_TARGET_AVX2 static void avx2_dq_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const avx2_dq_args *a = arg;
    const __m256 s = _mm256_set1_ps(a->s);
    const __m256i zp = _mm256_set1_epi32(a->zp);
    const uint8_t *xb = (const uint8_t *)a->x;
    size_t i = begin;
    for (; i + 16 <= end; i += 16) {
        const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(xb + i));
        __m256i lo, hi;
        if (a->u8) lo = _mm256_cvtepu8_epi32(q), hi = _mm256_cvtepu8_epi32(_mm_srli_si128(q, 8));
        else lo = _mm256_cvtepi8_epi32(q), hi = _mm256_cvtepi8_epi32(_mm_srli_si128(q, 8));
        _mm256_storeu_ps(a->y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(lo, zp)), s));
        _mm256_storeu_ps(a->y + i + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(hi, zp)), s));
    }
    for (; i < end; i++) a->y[i] = (float)((a->u8 ? (int)xb[i] : (int)(int8_t)xb[i]) - a->zp) * a->s;
}

void dse_i8_dequantize__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const dse_tensor *st = &m->tensors[n->in[1]], *zt = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    avx2_dq_args a;
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    a.u8 = xt->dtype == DSE_DTYPE_UINT8;
    memcpy(&a.s, st->cdata, sizeof a.s);   /* (the check: one float32 constant, finite) */
    a.zp = !zt ? 0 : a.u8 ? *(const uint8_t *)zt->cdata : *(const int8_t *)zt->cdata;
    dse__parallel(cx, m->tensors[n->out[0]].numel, 16384, avx2_dq_range, &a);
}

#endif
