/* relu.c: fp32 Relu as the numpy reference np.maximum(x, 0): y = x > 0 ? x : +0, NaN stays NaN
 * (canonical 0x7FC00000); -0 gives +0 (numpy's maximum returns its second operand on ties).
 * Also the shared one-input same-shape check of the unary kernels. */
#include "internal.h"
#include "mathf.h"

int dse__check_unary_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    return dse__check_same_shape(m, n, DSE_DTYPE_FLOAT32, why);
}

void dse_f32_relu__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) {
        const float v = x[i];
        y[i] = v > 0.0f ? v : (v != v ? dse_u2f(DSE_NAN_BITS) : 0.0f);
    }
}
