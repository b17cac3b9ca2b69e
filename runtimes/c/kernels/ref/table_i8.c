/* table_i8.c: every int8 elementwise function by a 256-entry lookup, y = table[x + 128]
 * (intref.table_int8; the table is built in float64 at export, docs/quant-arith.md §8, so C
 * never evaluates the function). Registered for every op whose QuantRule kind is "table"
 * (Relu, Sigmoid, Tanh, ..., dsedge.Elementwise); the op's scalar constant inputs (Clip's
 * min/max, ...) are ignored: they are baked into the table.
 */
#include "requant.h"

int dse__check_i8_table(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !y || x->dtype != DSE_DTYPE_INT8 || y->dtype != DSE_DTYPE_INT8 || x->numel != y->numel ||
        !dse_i8_tensor_attr(m, n, DSE_A_table, DSE_DTYPE_INT8, 256)) {
        DSE_WHY(why, TABLE_I8_INT8_TABLE_OP_NEEDS);
        return 1;
    }
    return 0;
}

void dse_i8_table__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const int8_t *x = dse__data(m, arena, n->in[0]);
    const int8_t *table = dse_i8_tensor_attr(m, n, DSE_A_table, DSE_DTYPE_INT8, 256);
    int8_t *y = dse__data(m, arena, n->out[0]);
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) y[i] = table[x[i] + 128];
}
