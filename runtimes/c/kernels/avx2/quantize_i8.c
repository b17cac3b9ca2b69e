/* quantize_i8.c (AVX2): QuantizeLinear float32 -> int8 / uint8 per tensor, the bytes of
 * kernels/ref/quantize.c (whose check it uses), 32 at a time (quantize_avx2.h: the arithmetic and
 * why it gives the same bits). The tail is REF's scalar loop. Threads: chunks of 1024 vectors. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <math.h>

#include "quantize_avx2.h"
#include "requant.h"

typedef struct avx2_q_args { const float *x; void *y; float s; int zp, lo, hi, u8; } avx2_q_args;

DSE_TARGET_AVX2 static void avx2_q_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const avx2_q_args *a = arg;
    const __m256 s = _mm256_set1_ps(a->s);
    const __m256i zp = _mm256_set1_epi32(a->zp), lo = _mm256_set1_epi32(a->lo), hi = _mm256_set1_epi32(a->hi);
    for (size_t i = begin * 32; i < end * 32; i += 32) avx2_q32(a->x + i, (uint8_t *)a->y + i, s, zp, lo, hi, a->u8);
}

DSE_TARGET_AVX2 void dse_i8_quantize__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    avx2_q_args a;
    const int qtype = m->tensors[n->out[0]].dtype;
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    dse__quantize_params(m, n, qtype, &a.s, &a.zp);   /* (checked at load) */
    a.u8 = qtype == DSE_DTYPE_UINT8;
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
