/* unary.c (AVX2): float32 unary kernels, 8 elements per instruction, and the vector functions
 * (src/avx2_f32.h has exp, sigmoid, tanh, erf). In place allowed (element i read before it is written).
 *
 * Exact (the REF kernels' bytes, kernels/ref/{relu,unary}.c): Relu, Clip, LeakyRelu,
 * HardSigmoid (alpha*x + beta without FMA), HardSwish, Neg, Abs, Sqrt, Reciprocal (IEEE ops,
 * numpy's maximum/minimum semantics by compare-and-blend).
 * Within a tolerance (docs/kernels.md, "Optimised float variants"; float32 polynomials instead
 * of mathf.c's double evaluation): Exp, Sigmoid, Tanh, Erf.
 * NaN results are the canonical 0x7FC00000, as REF writes them. Threads: blocks of 16K elements. */
#include "avx2_f32.h"

#if DSE_AVX2_F32


DSE_AI __m256 un_canon(__m256 y) {   /* NaN -> 0x7FC00000 */
    return _mm256_blendv_ps(y, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)), _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
}
DSE_AI __m256 un_abs(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }

/* np.maximum(v, lo) then np.minimum(., hi) as REF: v > lo or v NaN ? v : lo (so +0 vs -0 and
 * a NaN bound behave as REF), then the same with <. */
DSE_AI __m256 un_clamp(__m256 v, __m256 lo, __m256 hi) {
    v = _mm256_blendv_ps(lo, v, _mm256_or_ps(_mm256_cmp_ps(v, lo, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    return _mm256_blendv_ps(hi, v, _mm256_or_ps(_mm256_cmp_ps(v, hi, _CMP_LT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}

typedef struct un_job {
    const float *x;
    float *y;
    size_t n;
    float p[2];
} un_job;

#define UN_GRAIN 2048   /* vectors of 8 per part */

/* A kernel from an expression of x (a __m256) and the job's parameters p0, p1 (__m256). The
 * tail (< 8 elements) goes through a small buffer: no masked load/store. */
/* A kernel from an expression of x (a __m256) and the job's parameters p0, p1 (__m256), or
 * (UN_KERNEL_N) from a vector function of N vectors at a time (their long dependency chains
 * interleave). The tail (< 8 elements) goes through a small buffer: no masked load/store. */
#define UN_KERNEL_BODY(NAME, SETUP, GROUP)                                                                \
    static DSE_TARGET_AVX2 void un_##NAME##_part(void *arg, size_t b, size_t e, unsigned w) {              \
        (void)w;                                                                                          \
        const un_job *j = arg;                                                                            \
        const __m256 p0 = _mm256_set1_ps(j->p[0]), p1 = _mm256_set1_ps(j->p[1]);                          \
        const size_t lo = b * 8, hi = e * 8 < j->n ? e * 8 : j->n;                                        \
        size_t i = lo;                                                                                    \
        for (; i + 8 * GROUP <= hi; i += 8 * GROUP) {                                                     \
            __m256 x[GROUP], y[GROUP];                                                                    \
            DSE_UNROLL                                                                                    \
            for (int k = 0; k < GROUP; k++) x[k] = _mm256_loadu_ps(j->x + i + 8 * k);                     \
            un_n_##NAME(GROUP, x, y, p0, p1);                                                             \
            DSE_UNROLL                                                                                    \
            for (int k = 0; k < GROUP; k++) _mm256_storeu_ps(j->y + i + 8 * k, un_canon(y[k]));           \
        }                                                                                                 \
        for (; i < hi; i += 8) {                                                                          \
            float t[8] = {0};                                                                             \
            const size_t c = hi - i < 8 ? hi - i : 8;                                                     \
            for (size_t k = 0; k < c; k++) t[k] = j->x[i + k];                                            \
            __m256 x = _mm256_loadu_ps(t), y;                                                             \
            un_n_##NAME(1, &x, &y, p0, p1);                                                               \
            _mm256_storeu_ps(t, un_canon(y));                                                             \
            for (size_t k = 0; k < c; k++) j->y[i + k] = t[k];                                            \
        }                                                                                                 \
    }                                                                                                     \
    void dse_f32_##NAME##__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        un_job j = {dse__data(m, arena, n->in[0]), dse__data(m, arena, n->out[0]),                       \
                    m->tensors[n->out[0]].numel, {0.0f, 0.0f}};                                           \
        SETUP;                                                                                            \
        dse__parallel(cx, (j.n + 7) / 8, UN_GRAIN, un_##NAME##_part, &j);                                 \
    }
#define UN_KERNEL(NAME, SETUP, EXPR)                                                                      \
    DSE_AI void un_n_##NAME(const int N, const __m256 *xs, __m256 *ys, __m256 p0, __m256 p1) {             \
        (void)p0; (void)p1;                                                                               \
        DSE_UNROLL                                                                                        \
        for (int k = 0; k < N; k++) { const __m256 x = xs[k]; ys[k] = (EXPR); }                           \
    }                                                                                                     \
    UN_KERNEL_BODY(NAME, SETUP, 2)
#define UN_KERNEL_N(NAME, FN)                                                                             \
    DSE_AI void un_n_##NAME(const int N, const __m256 *xs, __m256 *ys, __m256 p0, __m256 p1) {             \
        (void)p0; (void)p1;                                                                               \
        FN(N, xs, ys);                                                                                    \
    }                                                                                                     \
    UN_KERNEL_BODY(NAME, (void)n, 4)

#define UN_ZERO _mm256_setzero_ps()
#define UN_ONE _mm256_set1_ps(1.0f)

UN_KERNEL(relu, (void)n, _mm256_blendv_ps(UN_ZERO, x, _mm256_or_ps(_mm256_cmp_ps(x, UN_ZERO, _CMP_GT_OQ),
                                                                    _mm256_cmp_ps(x, x, _CMP_UNORD_Q))))
UN_KERNEL(leakyrelu, j.p[0] = dse__attr_float(n, DSE_A_alpha, 0.01f),
          _mm256_blendv_ps(_mm256_mul_ps(x, p0), x, _mm256_cmp_ps(x, UN_ZERO, _CMP_GE_OQ)))
UN_KERNEL(hardsigmoid,
          j.p[0] = dse__attr_float(n, DSE_A_alpha, 0.2f); j.p[1] = dse__attr_float(n, DSE_A_beta, 0.5f),
          un_clamp(_mm256_add_ps(_mm256_mul_ps(p0, x), p1), UN_ZERO, UN_ONE))
UN_KERNEL(hardswish, (void)n, dse__avx2_hardswish(x))   /* (avx2_f32.h: shared with the fused act_fn) */
UN_KERNEL(neg, (void)n, _mm256_xor_ps(x, _mm256_set1_ps(-0.0f)))
UN_KERNEL(abs, (void)n, un_abs(x))
UN_KERNEL(sqrt, (void)n, _mm256_sqrt_ps(x))
UN_KERNEL(reciprocal, (void)n, _mm256_div_ps(UN_ONE, x))
UN_KERNEL_N(exp, dse__avx2_exp_n)
UN_KERNEL_N(sigmoid, dse__avx2_sigmoid_n)
UN_KERNEL_N(tanh, dse__avx2_tanh_n)
UN_KERNEL_N(erf, dse__avx2_erf_n)
UN_KERNEL(clip,
          const float inf = __builtin_inff();
          j.p[0] = n->n_in > 1 && n->in[1] != DSE_NONE ? *(const float *)dse__data(m, arena, n->in[1]) : -inf;
          j.p[1] = n->n_in > 2 && n->in[2] != DSE_NONE ? *(const float *)dse__data(m, arena, n->in[2]) : inf,
          un_clamp(x, p0, p1))

#endif
