/* quantize.c: QuantizeLinear, float32 -> int8, per tensor (docs/kernels.md,
 * docs/quant-arith.md §10):  y = clamp(nearbyintf(x / scale) + zp, -128, 127)
 * with one float32 division and round half to even (nearbyintf in the default rounding
 * mode), as ONNX / onnxruntime / arith.quantize. Inputs: x float32, scale float32 constant
 * (one element), zero point int8 constant (one element, absent = 0). A NaN input gives zp
 * (numpy's result for NaN is platform-dependent; the spec leaves it open).
 */
#include <math.h>

#include "requant.h"

static int quantize_scalar_params(const dse_model *m, const dse_node *n, float *scale, int *zp) {
    const dse_tensor *s = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL, *z = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    if (!s || s->dtype != DSE_DTYPE_FLOAT32 || s->numel != 1 || s->storage != DSE_STORAGE_CONST) return 1;
    if (z && (z->dtype != DSE_DTYPE_INT8 || z->numel != 1 || z->storage != DSE_STORAGE_CONST)) return 1;
    memcpy(scale, m->blob + s->offset, sizeof *scale);
    *zp = z ? *(const int8_t *)(m->blob + z->offset) : 0;
    return !(*scale > 0.0f) || !isfinite(*scale);
}

int dse__check_quantize_i8(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    float s;
    int zp;
    if (!x || !y || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_INT8 || x->numel != y->numel ||
        n->n_in > 3 || quantize_scalar_params(m, n, &s, &zp)) {
        DSE_WHY(why, QUANTIZE_QUANTIZELINEAR_NEEDS_FLOAT32_X);
        return 1;
    }
    return 0;
}

void dse_i8_quantize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    (void)scratch;
    const float *x = dse__data(m, arena, n->in[0]);
    int8_t *y = dse__data(m, arena, n->out[0]);
    float s;
    int zp;
    quantize_scalar_params(m, n, &s, &zp);
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) {
        float r = nearbyintf(x[i] / s);
        /* r is an integer (or +-inf / NaN); |r| >= 2^24 saturates either way */
        y[i] = r != r ? (int8_t)zp : r <= -256.0f ? (int8_t)-128 : r >= 256.0f ? (int8_t)127 : dse_i8_clamp((int64_t)r + zp, -128, 127);
    }
}
