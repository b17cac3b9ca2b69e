/* quantize.c: QuantizeLinear, float32 -> int8 (or uint8 for a graph output under
 * `--io-dtype uint8`), per tensor (docs/kernels.md, docs/quant-arith.md §10):
 * y = clamp(nearbyintf(x / scale) + zp, -128, 127)  (uint8: 0, 255)
 * with one float32 division and round half to even (nearbyintf in the default rounding
 * mode), as ONNX / onnxruntime / arith.quantize. Inputs: x float32, scale float32 constant
 * (one element), zero point of y's dtype (constant, one element, absent = 0). A NaN input gives zp
 * (numpy's result for NaN is platform-dependent; the spec leaves it open).
 */
#include <math.h>

#include "requant.h"

static int quantize_scalar_params(const dse_model *m, const dse_node *n, int qtype, float *scale, int *zp) {
    const dse_tensor *s = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL, *z = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    if (!s || s->dtype != DSE_DTYPE_FLOAT32 || s->numel != 1 || s->storage != DSE_STORAGE_CONST) return 1;
    if (z && (z->dtype != qtype || z->numel != 1 || z->storage != DSE_STORAGE_CONST)) return 1;
    memcpy(scale, m->blob + s->offset, sizeof *scale);
    *zp = !z ? 0 : qtype == DSE_DTYPE_UINT8 ? *(const uint8_t *)(m->blob + z->offset)
                                            : *(const int8_t *)(m->blob + z->offset);
    return !(*scale > 0.0f) || !isfinite(*scale);
}

int dse__check_quantize_i8(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    float s;
    int zp;
    if (!x || !y || x->dtype != DSE_DTYPE_FLOAT32 || (y->dtype != DSE_DTYPE_INT8 && y->dtype != DSE_DTYPE_UINT8) ||
        x->numel != y->numel || n->n_in > 3 || quantize_scalar_params(m, n, y->dtype, &s, &zp)) {
        DSE_WHY(why, QUANTIZE_QUANTIZELINEAR_NEEDS_FLOAT32_X);
        return 1;
    }
    return 0;
}

void dse_i8_quantize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const float *x = dse__data(m, arena, n->in[0]);
    void *y = dse__data(m, arena, n->out[0]);
    float s;
    int zp, qtype = m->tensors[n->out[0]].dtype;
    quantize_scalar_params(m, n, qtype, &s, &zp);
    int lo = qtype == DSE_DTYPE_UINT8 ? 0 : -128, hi = qtype == DSE_DTYPE_UINT8 ? 255 : 127;
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) {
        float r = nearbyintf(x[i] / s);
        /* r is an integer (or +-inf / NaN); |r| >= 2^24 saturates either way */
        int32_t q = r != r ? zp : r <= -512.0f ? lo : r >= 512.0f ? hi : (int32_t)r + zp;
        q = q < lo ? lo : q > hi ? hi : q;
        if (qtype == DSE_DTYPE_UINT8) ((uint8_t *)y)[i] = (uint8_t)q;
        else ((int8_t *)y)[i] = (int8_t)q;
    }
}
