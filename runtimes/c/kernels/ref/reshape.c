/* reshape.c: Reshape, Flatten, Squeeze, Unsqueeze for any dtype.
 *
 * All four only relabel the shape of row-major data, so each is Identity's byte copy (or
 * nothing when the planner aliased output and input). The shape/axes inputs are not read at
 * run time: the tensor table holds the output shape the exporter computed, and `check`
 * verifies that input and output have the same dtype and element count. */
#include "internal.h"

void dse_any_identity__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch);

int dse__check_reshape(const dse_model *m, const dse_node *n, char *msg, size_t cap) {
    if (n->n_out != 1 || dse__mv_check_io(m, n, msg, cap)) {
        if (!msg[0]) snprintf(msg, cap, "needs a data input and one output");
        return 1;
    }
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    if (x->numel != y->numel) {
        snprintf(msg, cap, "output has %zu elements, input %zu", y->numel, x->numel);
        return 1;
    }
    return 0;
}

void dse_any_reshape__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    dse_any_identity__ref(m, n, arena, scratch);
}
void dse_any_flatten__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    dse_any_identity__ref(m, n, arena, scratch);
}
void dse_any_squeeze__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    dse_any_identity__ref(m, n, arena, scratch);
}
void dse_any_unsqueeze__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    dse_any_identity__ref(m, n, arena, scratch);
}
