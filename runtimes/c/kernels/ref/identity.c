/* identity.c: Identity for any dtype — a byte copy (memmove: the plan may alias in and out). */
#include "internal.h"

int dse__check_identity(const dse_model *m, const dse_node *n, char *msg, size_t cap) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    if (!x || !y || n->n_out != 1 || x->dtype != y->dtype || x->nbytes != y->nbytes) {
        snprintf(msg, cap, "Identity needs one input and one output of the same dtype and size");
        return 1;
    }
    return 0;
}

void dse_any_identity__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    (void)scratch;
    const dse_tensor *y = &m->tensors[n->out[0]];
    memmove(dse__data(m, arena, n->out[0]), dse__data(m, arena, n->in[0]), y->nbytes);
}
