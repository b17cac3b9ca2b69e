/* where.c: Where(cond bool, x, y) for any element dtype (x, y and the output share it), numpy
 * broadcasting over all three (walker in binary.c). A byte copy of the chosen element, so
 * NaN payloads and -0 pass through unchanged, as numpy's where. */
#include "internal.h"

static void row_where(uint8_t *y, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, const dse_ew_ctx *c) {
    (void)nx;
    const size_t es = c->esize;
    for (size_t i = 0; i < len; i++) {
        const uint8_t *src = x[0][i * s[0]] ? x[1] + i * s[1] * es : x[2] + i * s[2] * es;
        memcpy(y + i * es, src, es);
    }
}

int dse__check_where(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *c = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *a = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *b = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!c || !a || !b || !y || c->dtype != DSE_DTYPE_BOOL || a->dtype != y->dtype || b->dtype != y->dtype ||
        y->dtype == DSE_DTYPE_INT4 || y->dtype == DSE_DTYPE_UINT4) {
        DSE_WHY(why, WHERE_NEEDS_BOOL_CONDITION_TWO);
        return 1;
    }
    return dse__ew_check_broadcast(m, n, 3, why);
}

void dse_any_where__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *y = &m->tensors[n->out[0]];
    dse_ew_ctx c = {{0, 0, 0, 0}, {0, 0}, y->numel ? y->nbytes / y->numel : 0, NULL};
    dse__ew_walk(m, n, arena, 3, row_where, &c, cx);
}
