/* act_quantize.c (AVX2): dsedge.ActFnQuantize, REF's bytes where the model's Sigmoid kernel is the
 * AVX2 one (kernels/ref/act_quantize.c explains the node): f(x) by the vectorised functions of
 * src/avx2_f32.h (dse__avx2_act_fn_row: SiLU x * sigmoid(x) with the AVX2 Sigmoid kernel's sigmoid,
 * then the product; HardSwish exact), then QuantizeLinear by the AVX2 QuantizeLinear kernel's code
 * (quantize_avx2.h avx2_q32, the last < 32 by the scalar rule). Blocks of 256 elements through a
 * stack buffer, over the session's threads. */
#include "avx2_f32.h"

#if DSE_AVX2_F32   /* not in a -DDSE_REF_FLOAT build (src/avx2_f32.h): REF's Sigmoid, REF's node */
#include "quantize_avx2.h"
#include "requant.h"

int dse__check_act_quantize_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_act_q p;
    if (dse__act_q_params(m, n, &p, why)) return 1;
    why->act_fns = dse__act_fns(m, 1);   /* the vectorised sigmoid: SiLU only where the AVX2 Sigmoid runs */
    return 0;
}

#define AVX2_ACT_Q_BLOCK 256
typedef struct avx2_act_q_args { const float *x; int8_t *y; size_t n; dse_act_q p; } avx2_act_q_args;

DSE_TARGET_AVX2 static void avx2_act_q_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const avx2_act_q_args *a = arg;
    const __m256 s = _mm256_set1_ps(a->p.s);
    const __m256i zp = _mm256_set1_epi32(a->p.zp), lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
    float t[AVX2_ACT_Q_BLOCK];
    for (size_t b = begin; b < end; b++) {
        const size_t i0 = b * AVX2_ACT_Q_BLOCK, c = a->n - i0 < AVX2_ACT_Q_BLOCK ? a->n - i0 : AVX2_ACT_Q_BLOCK;
        memcpy(t, a->x + i0, c * sizeof *t);
        dse__avx2_act_fn_row(a->p.fn, t, c);
        size_t j = 0;
        for (; j + 32 <= c; j += 32) avx2_q32(t + j, a->y + i0 + j, s, zp, lo, hi, 0);
        for (; j < c; j++) a->y[i0 + j] = dse_quantize1(t[j], a->p.s, a->p.zp);
    }
}

void dse_i8_act_quantize__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    avx2_act_q_args a;
    dse_why why;
    dse__act_q_params(m, n, &a.p, &why);
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    a.n = m->tensors[n->out[0]].numel;
    const size_t nb = (a.n + AVX2_ACT_Q_BLOCK - 1) / AVX2_ACT_Q_BLOCK;
    dse__parallel(cx, nb, 64, avx2_act_q_range, &a);
}

#endif
