/* reshape.c: Reshape, Flatten, Squeeze, Unsqueeze for any dtype.
 *
 * All four only relabel the shape of row-major data, so each is Identity's byte copy (or
 * nothing when the planner aliased output and input). The shape/axes inputs are not read at
 * run time: the tensor table holds the output shape the exporter computed, and `check`
 * verifies that input and output have the same dtype and element count. */
#include "internal.h"

int dse__check_reshape(const dse_model *m, const dse_node *n, dse_why *why) {
    if (n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, RESHAPE_NEEDS_DATA_INPUT_ONE);
        return 1;
    }
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    if (x->numel != y->numel) {
        DSE_WHYF(why, RESHAPE_OUTPUT_HAS_ELEMENTS_INPUT, NULL, y->numel, x->numel, 0, 0);
        return 1;
    }
    return 0;
}

void dse_any_reshape__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_any_identity__ref(m, n, arena, cx);
}
void dse_any_flatten__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_any_identity__ref(m, n, arena, cx);
}
void dse_any_squeeze__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_any_identity__ref(m, n, arena, cx);
}
void dse_any_unsqueeze__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_any_identity__ref(m, n, arena, cx);
}
