/* relu.c: fp32 Relu, y = x < 0 ? 0 : x (NaN and -0.0 pass through, as numpy's maximum). */
#include "internal.h"

int dse__check_unary_f32(const dse_model *m, const dse_node *n, char *msg, size_t cap) {
    return dse__check_same_shape(m, n, DSE_DTYPE_FLOAT32, msg, cap);
}

void dse_f32_relu__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    (void)scratch;
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}
