/* dynamic_quantize.c: ONNX DynamicQuantizeLinear (float32 x -> uint8 y, float32 scale, uint8
 * zero point), bit-exact with dsedge/ops/quantized.py (dynamic_qparams, _quant_u8), which
 * follows onnxruntime's CPU kernel. Also the helpers DynamicQuantizeLSTM uses (dyn_lstm.c).
 *
 * Per run, in float32 (no FMA: -ffp-contract=off), in this order:
 *   mn, mx = min(x), max(x)              numpy's: any NaN element makes both NaN; empty x: 0
 *   lo = min(mn, 0), hi = max(mx, 0)
 *   scale = hi == lo ? 1 : (hi - lo) / 255          (NaN range: NaN, written as 0x7FC00000;
 *                                                     an overflowing range: inf)
 *   zp = nearbyint(clamp(0 - lo / scale, 0, 255))   (NaN -> 0)
 *   y = clamp(nearbyint(x / scale) + zp, 0, 255)    (NaN -> 0; +-inf saturate)
 * nearbyint rounds half to even (the default rounding mode), as numpy's rint. So an all-zero x
 * gives scale 1, zp 0, y 0; a NaN anywhere gives y = 0 everywhere; an infinite element gives
 * scale inf and y 0 everywhere. No scratch. */
#include <math.h>

#include "internal.h"
#include "mathf.h"

void dse__dynq_params(const float *x, size_t n, float *scale, uint8_t *zp) {
    float mn = 0.0f, mx = 0.0f;
    int nan = 0;
    if (n) mn = mx = x[0];
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        nan |= v != v;
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    if (nan) mn = mx = dse_u2f(DSE_NAN_BITS);
    /* Python's min(mn, 0.0) / max(mx, 0.0): the first argument unless the second compares less / greater */
    const float lo = 0.0f < mn ? 0.0f : mn, hi = 0.0f > mx ? 0.0f : mx;
    const float s = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    float z = 0.0f - lo / s;
    z = z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z;   /* NaN stays NaN */
    z = nearbyintf(z);
    *scale = dse_canonf(s);
    *zp = z != z ? 0 : (uint8_t)z;
}

void dse__dynq_quantize(const float *x, size_t n, float scale, uint8_t zp, uint8_t *y) {
    for (size_t i = 0; i < n; i++) {
        const float r = nearbyintf(x[i] / scale);
        /* r + zp (exact), saturated to [0, 255] (infinities included); NaN -> 0 */
        const int v = r != r || r <= -256.0f ? 0 : r >= 256.0f ? 255 : (int)r + zp;
        y[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

int dse__check_dynamic_quantize(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL;
    const dse_tensor *y = n->n_out >= 1 && n->n_out <= 3 ? dse__t(m, n->out[0]) : NULL;
    const dse_tensor *s = n->n_out >= 2 ? dse__t(m, n->out[1]) : NULL, *z = n->n_out >= 3 ? dse__t(m, n->out[2]) : NULL;
    if (!x || !y || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_UINT8 || y->rank != x->rank ||
        memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) != 0 || (s && (s->dtype != DSE_DTYPE_FLOAT32 || s->numel != 1)) ||
        (z && (z->dtype != DSE_DTYPE_UINT8 || z->numel != 1))) {
        DSE_WHY(why, DYNQ_NEEDS_FLOAT32_X_UINT8_Y);
        return 1;
    }
    return 0;
}

void dse_u8_dynamicquantizelinear__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const float *x = dse__data(m, arena, n->in[0]);
    float s;
    uint8_t z;
    dse__dynq_params(x, xt->numel, &s, &z);
    dse__dynq_quantize(x, xt->numel, s, z, dse__data(m, arena, n->out[0]));
    if (n->n_out >= 2 && n->out[1] != DSE_NONE) memcpy(dse__data(m, arena, n->out[1]), &s, sizeof s);
    if (n->n_out >= 3 && n->out[2] != DSE_NONE) *(uint8_t *)dse__data(m, arena, n->out[2]) = z;
}
