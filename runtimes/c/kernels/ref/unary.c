/* unary.c: fp32 unary elementwise kernels (same shape in and out, one element at a time).
 *
 * Transcendentals come from mathf.c (the runtime's own, <= 1 ulp, identical bits on every
 * target); sqrtf is IEEE-exact. Everything else is the numpy reference's float32 formula
 * evaluated with the same single-rounded float operations (no contraction), so it matches
 * numpy bit for bit: LeakyRelu x >= 0 ? x : x*alpha; HardSigmoid clip(alpha*x + beta, 0, 1);
 * HardSwish x * clip(x*(1/6) + 0.5, 0, 1); Softsign x / (1 + |x|); Clip max then min with
 * NaN propagation (a NaN bound makes everything NaN; min > max gives max); Reciprocal 1/x;
 * Sign(+-0) = +0. Elu/Selu use expm1 (more accurate than the reference's exp(x) - 1 near 0);
 * Gelu 'none' uses erf/erfc without cancellation, 'tanh' is x * sigmoid(2u). Round is half
 * to even. NaN results are canonical (0x7FC00000). Attributes (ONNX names, defaults as ONNX):
 * LeakyRelu alpha, Elu alpha, Selu alpha/gamma, HardSigmoid alpha/beta, Gelu approximate. */
#include <math.h>

#include "internal.h"
#include "mathf.h"


#define UNARY(NAME, SETUP, EXPR)                                                                   \
    void dse_f32_##NAME##__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        (void)cx;                                                                             \
        SETUP;                                                                                     \
        const float *xp = dse__data(m, arena, n->in[0]);                                           \
        float *yp = dse__data(m, arena, n->out[0]);                                                \
        for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) {                          \
            const float x = xp[i];                                                                 \
            yp[i] = dse_canonf(EXPR);                                                              \
        }                                                                                          \
    }

static inline float clip01(float v) {   /* np.clip(v, 0, 1): NaN stays */
    v = (v > 0.0f || v != v) ? v : 0.0f;
    return (v < 1.0f || v != v) ? v : 1.0f;
}

UNARY(sigmoid, (void)n, dse_sigmoidf(x))
UNARY(tanh, (void)n, dse_tanhf(x))
UNARY(exp, (void)n, dse_expf(x))
UNARY(log, (void)n, dse_logf(x))
UNARY(sqrt, (void)n, sqrtf(x))
UNARY(neg, (void)n, -x)
UNARY(abs, (void)n, dse_u2f(dse_f2u(x) & 0x7FFFFFFFu))
UNARY(reciprocal, (void)n, 1.0f / x)
UNARY(floor, (void)n, dse_floorf(x))
UNARY(ceil, (void)n, dse_ceilf(x))
UNARY(round, (void)n, dse_rintf(x))
UNARY(erf, (void)n, dse_erff(x))
UNARY(sin, (void)n, dse_sinf(x))
UNARY(cos, (void)n, dse_cosf(x))
UNARY(sign, (void)n, x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : (x != x ? x : 0.0f)))
UNARY(softplus, (void)n, dse_softplusf(x))
UNARY(softsign, (void)n, x / (1.0f + dse_u2f(dse_f2u(x) & 0x7FFFFFFFu)))
UNARY(hardswish, (void)n, dse_hardswishf(x))   /* (mathf.h: shared with the fused act_fn) */
UNARY(leakyrelu, const float alpha = dse__attr_float(n, DSE_A_alpha, 0.01f), x >= 0.0f ? x : x * alpha)
UNARY(elu, const float alpha = dse__attr_float(n, DSE_A_alpha, 1.0f), x < 0.0f ? alpha * dse_expm1f(x) : x)
UNARY(selu,
      const float alpha = dse__attr_float(n, DSE_A_alpha, 1.67326319217681884765625f);
      const float gamma = dse__attr_float(n, DSE_A_gamma, 1.05070102214813232421875f),
      x > 0.0f ? gamma * x : gamma * (alpha * dse_expm1f(x)))
UNARY(hardsigmoid,
      const float alpha = dse__attr_float(n, DSE_A_alpha, 0.2f); const float beta = dse__attr_float(n, DSE_A_beta, 0.5f),
      clip01(alpha * x + beta))
UNARY(gelu, const int tanh_form = strcmp(dse__attr_str(n, DSE_A_approximate, "none"), "tanh") == 0,
      tanh_form ? dse_gelu_tanhf(x) : dse_geluf(x))

int dse__check_gelu_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    const char *a = dse__attr_str(n, DSE_A_approximate, "none");
    if (strcmp(a, "none") != 0 && strcmp(a, "tanh") != 0) {
        DSE_WHYF(why, UNARY_GELU_APPROXIMATE_NOT_NONE, a, 0, 0, 0, 0);
        return 1;
    }
    return dse__check_unary_f32(m, n, why);
}

/* Clip: inputs x, optional scalar min, optional scalar max (float32, absent = unbounded). */
int dse__check_clip_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    if (!x || n->n_in > 3 || n->n_out != 1 || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_FLOAT32 ||
        x->rank != y->rank || memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) != 0)
        goto bad;
    for (uint32_t k = 1; k < n->n_in; k++) {
        const dse_tensor *b = dse__t(m, n->in[k]);
        if (b && (b->dtype != DSE_DTYPE_FLOAT32 || b->numel != 1)) goto bad;
    }
    return 0;
bad:
    DSE_WHY(why, UNARY_NEEDS_FLOAT32_X_OPTIONAL);
    return 1;
}

void dse_f32_clip__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const float inf = dse_u2f(0x7F800000u);
    float lo = -inf, hi = inf;
    if (n->n_in > 1 && n->in[1] != DSE_NONE) lo = *(const float *)dse__data(m, arena, n->in[1]);
    if (n->n_in > 2 && n->in[2] != DSE_NONE) hi = *(const float *)dse__data(m, arena, n->in[2]);
    const float *xp = dse__data(m, arena, n->in[0]);
    float *yp = dse__data(m, arena, n->out[0]);
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) {
        float v = xp[i];
        v = (v > lo || v != v) ? v : lo;   /* np.maximum(x, min) */
        v = (v < hi || v != v) ? v : hi;   /* np.minimum(., max) */
        yp[i] = dse_canonf(v);
    }
}
