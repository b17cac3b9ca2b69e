/* unary.c (NEON, arm64): float32 unary kernels, 4 elements per instruction; the counterpart of
 * kernels/avx2/unary.c. In place allowed (each group of elements is read before it is written).
 *
 * Exact (the REF kernels' bytes, kernels/ref/{relu,unary}.c, so also in a -DDSE_REF_FLOAT build):
 * Relu, Clip, LeakyRelu, HardSigmoid (alpha*x + beta, no FMA), HardSwish, Neg, Abs, Sqrt,
 * Reciprocal: IEEE operations, numpy's maximum/minimum by compare and bit-select (NEON's
 * fmax/fmin differ on NaN and on -0 against +0).
 * Within a tolerance (docs/kernels.md, "Optimised float variants"; not with -DDSE_REF_FLOAT):
 * Exp, Sigmoid, Tanh, Erf, the float32 polynomials of src/vec_mathf.h, the AVX2 kernels' bytes.
 * NaN results are the canonical 0x7FC00000, as REF writes them. The tensor is walked by the
 * elementwise walker (dse__ew_walk: one row, parts of 16384 elements over the threads). */
#include "neon_f32.h"

#if DSE_ARCH_ARM64
#include <arm_neon.h>

#define NUN_AI static inline __attribute__((always_inline))

NUN_AI float32x4_t nun_canon(float32x4_t y) {   /* NaN -> 0x7FC00000 */
    return vbslq_f32(vceqq_f32(y, y), y, vreinterpretq_f32_u32(vdupq_n_u32(0x7FC00000u)));
}
NUN_AI uint32x4_t nun_isnan(float32x4_t v) { return vmvnq_u32(vceqq_f32(v, v)); }
/* np.maximum(v, lo) then np.minimum(., hi) as REF: v > lo or v NaN ? v : lo (so +0 vs -0 and a
 * NaN bound behave as REF), then the same with <. */
NUN_AI float32x4_t nun_clamp(float32x4_t v, float32x4_t lo, float32x4_t hi) {
    v = vbslq_f32(vorrq_u32(vcgtq_f32(v, lo), nun_isnan(v)), v, lo);
    return vbslq_f32(vorrq_u32(vcltq_f32(v, hi), nun_isnan(v)), v, hi);
}

/* A kernel from an expression of x (a float32x4_t) and the parameters p0, p1 (c->f[0], c->f[1]),
 * or (NUN_KERNEL_N) from a vector function of N vectors at a time; GROUP vectors per step, the
 * tail (< 4 * GROUP elements) a vector at a time, its last partial vector through a small buffer. */
#define NUN_ROW(NAME, GROUP)                                                                          \
    static void nun_row_##NAME(uint8_t *yb, const uint8_t *const *xb, const size_t *s, uint32_t nx, size_t len, \
                               const dse_ew_ctx *c) {                                                  \
        (void)s; (void)nx;   /* one input of the output's shape: stride 1 */                           \
        const float *x = (const float *)xb[0];                                                         \
        float *y = (float *)yb;                                                                        \
        const float32x4_t p0 = vdupq_n_f32(c->f[0]), p1 = vdupq_n_f32(c->f[1]);                        \
        size_t i = 0;                                                                                  \
        for (; i + 4 * (GROUP) <= len; i += 4 * (GROUP)) {                                             \
            float32x4_t xv[GROUP], yv[GROUP];                                                          \
            for (int k = 0; k < (GROUP); k++) xv[k] = vld1q_f32(x + i + 4 * k);                        \
            nun_n_##NAME(GROUP, xv, yv, p0, p1);                                                       \
            for (int k = 0; k < (GROUP); k++) vst1q_f32(y + i + 4 * k, nun_canon(yv[k]));              \
        }                                                                                              \
        for (; i < len; i += 4) {                                                                      \
            float t[4] = {0};                                                                          \
            const size_t cnt = len - i < 4 ? len - i : 4;                                              \
            for (size_t k = 0; k < cnt; k++) t[k] = x[i + k];                                          \
            float32x4_t xv = vld1q_f32(t), yv;                                                         \
            nun_n_##NAME(1, &xv, &yv, p0, p1);                                                         \
            vst1q_f32(t, nun_canon(yv));                                                               \
            for (size_t k = 0; k < cnt; k++) y[i + k] = t[k];                                          \
        }                                                                                              \
    }                                                                                                  \
    void dse_f32_##NAME##__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        dse_ew_ctx c = {{0.0f, 0.0f, 0.0f, 0.0f}, {0, 0}, 4, NULL};                                    \
        nun_setup_##NAME(m, n, arena, c.f);                                                            \
        dse__ew_walk(m, n, arena, 1, nun_row_##NAME, &c, cx);                                          \
    }
#define NUN_KERNEL(NAME, SETUP, EXPR)                                                                 \
    NUN_AI void nun_setup_##NAME(const dse_model *m, const dse_node *n, uint8_t *arena, float *p) {    \
        (void)m; (void)n; (void)arena; (void)p;                                                        \
        SETUP;                                                                                         \
    }                                                                                                  \
    NUN_AI void nun_n_##NAME(const int N, const float32x4_t *xs, float32x4_t *ys, float32x4_t p0, float32x4_t p1) { \
        (void)p0; (void)p1;                                                                            \
        for (int k = 0; k < N; k++) { const float32x4_t x = xs[k]; ys[k] = (EXPR); }                   \
    }                                                                                                  \
    NUN_ROW(NAME, 4)

#define NUN_ZERO vdupq_n_f32(0.0f)
#define NUN_ONE vdupq_n_f32(1.0f)

/* Relu: x > 0 or NaN ? x : +0, i.e. not (x <= 0) (-0 gives +0) */
NUN_KERNEL(relu, , vbslq_f32(vcleq_f32(x, NUN_ZERO), NUN_ZERO, x))
NUN_KERNEL(leakyrelu, p[0] = dse__attr_float(n, DSE_A_alpha, 0.01f), vbslq_f32(vcgeq_f32(x, NUN_ZERO), x, vmulq_f32(x, p0)))
NUN_KERNEL(hardsigmoid, p[0] = dse__attr_float(n, DSE_A_alpha, 0.2f); p[1] = dse__attr_float(n, DSE_A_beta, 0.5f),
           nun_clamp(vaddq_f32(vmulq_f32(p0, x), p1), NUN_ZERO, NUN_ONE))
NUN_KERNEL(hardswish, , dse__neon_hardswish(x))   /* (neon_f32.h: shared with the fused act_fn) */
NUN_KERNEL(neg, , vnegq_f32(x))
NUN_KERNEL(abs, , vabsq_f32(x))
NUN_KERNEL(sqrt, , vsqrtq_f32(x))
NUN_KERNEL(reciprocal, , vdivq_f32(NUN_ONE, x))
NUN_KERNEL(clip,
           const float inf = __builtin_inff();
           p[0] = n->n_in > 1 && n->in[1] != DSE_NONE ? *(const float *)dse__data(m, arena, n->in[1]) : -inf;
           p[1] = n->n_in > 2 && n->in[2] != DSE_NONE ? *(const float *)dse__data(m, arena, n->in[2]) : inf,
           nun_clamp(x, p0, p1))

#if DSE_NEON_F32
#define NUN_KERNEL_N(NAME, FN)                                                                        \
    NUN_AI void nun_setup_##NAME(const dse_model *m, const dse_node *n, uint8_t *arena, float *p) {    \
        (void)m; (void)n; (void)arena; (void)p;                                                        \
    }                                                                                                  \
    NUN_AI void nun_n_##NAME(const int N, const float32x4_t *xs, float32x4_t *ys, float32x4_t p0, float32x4_t p1) { \
        (void)p0; (void)p1;                                                                            \
        FN(N, xs, ys);                                                                                 \
    }                                                                                                  \
    NUN_ROW(NAME, 4)
NUN_KERNEL_N(exp, dse__neon_exp_n)
NUN_KERNEL_N(sigmoid, dse__neon_sigmoid_n)
NUN_KERNEL_N(tanh, dse__neon_tanh_n)
NUN_KERNEL_N(erf, dse__neon_erf_n)
#undef NUN_KERNEL_N
#endif

#undef NUN_AI
#undef NUN_ROW
#undef NUN_KERNEL
#undef NUN_ZERO
#undef NUN_ONE
#endif
