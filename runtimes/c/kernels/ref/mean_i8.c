/* mean_i8.c: int8 GlobalAveragePool and ReduceMean, bit-exact with intref.mean_int8 /
 * global_avgpool_int8.
 *
 * Arithmetic (docs/quant-arith.md §5): acc = sum (x - zp_in) over the reduced axes in int32
 * (count * 255 < 2^31, checked), then the requantisation rule with the one (M, shift) of
 * s_in / (s_out * count): no division. Attributes: INT zp_in, zp_out, M, shift; INTS axes
 * (normalised, ascending; absent = the spatial axes for GlobalAveragePool, all axes for
 * ReduceMean). The output has the kept axes in order (keepdims or not, both accepted).
 *
 * Loops: one output element at a time; when the reduced axes are the innermost ones
 * (GlobalAveragePool) its elements are contiguous and summed in one plain loop (sum x, then
 * - count * zp_in: the same int32 value, count * 255 < 2^31 and |count * zp_in| <= count * 128);
 * otherwise its reduced coordinates are walked with an index counter. No scratch memory.
 */
#include "requant.h"

typedef struct meanp {
    int zp_in, zp_out, shift;
    int32_t M;
    unsigned char red[DSE_MAX_RANK];
} meanp;

static int mean_i8_read_params(const dse_model *m, const dse_node *n, meanp *p) {
    const dse_tensor *x = &m->tensors[n->in[0]];
    int64_t axes[DSE_MAX_RANK], zi = dse__attr_int(n, DSE_A_zp_in, 1000), zo = dse__attr_int(n, DSE_A_zp_out, 1000);
    int64_t M = dse__attr_int(n, DSE_A_M, -1), sh = dse__attr_int(n, DSE_A_shift, 0);
    int na = dse__attr_ints(n, DSE_A_axes, axes, DSE_MAX_RANK);
    if (!DSE_I8_OK(zi) || !DSE_I8_OK(zo) || M < 0 || M > 0x7fffffff || sh < 1 || sh > 62) return 1;
    *p = (meanp){(int)zi, (int)zo, (int)sh, (int32_t)M, {0}};
    for (unsigned d = 0; d < x->rank; d++)
        p->red[d] = na > 0 ? 0 : n->op == DSE_OP_GLOBALAVERAGEPOOL ? d >= 2 : 1;
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + x->rank : axes[i];
        if (a < 0 || a >= x->rank || p->red[a]) return 1;
        p->red[a] = 1;
    }
    return 0;
}

int dse__check_i8_mean(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    meanp p;
    if (!x || !y || x->dtype != DSE_DTYPE_INT8 || y->dtype != DSE_DTYPE_INT8 || mean_i8_read_params(m, n, &p)) {
        DSE_WHY(why, MEAN_I8_NEEDS_INT8_INPUT_OUTPUT);
        return 1;
    }
    size_t count = 1, kept = 0;
    int keep_ok = y->rank == x->rank, drop_ok = 1;
    for (unsigned d = 0; d < x->rank; d++) {
        if (p.red[d]) {
            count *= x->dims[d];
            keep_ok &= y->dims[d] == 1;
        } else {
            keep_ok &= y->dims[d] == x->dims[d];
            drop_ok &= kept < y->rank && y->dims[kept] == x->dims[d];
            kept++;
        }
    }
    drop_ok &= kept == y->rank;
    if (!(keep_ok || drop_ok) || count == 0 || count > 0x7fffffff / 255) {
        DSE_WHY(why, MEAN_I8_OUTPUT_SHAPE_DOES_NOT);
        return 1;
    }
    return 0;
}

void dse_i8_mean__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const int8_t *x = dse__data(m, arena, n->in[0]);
    int8_t *y = dse__data(m, arena, n->out[0]);
    meanp p;
    mean_i8_read_params(m, n, &p);
    /* kept axes (k*) and reduced axes (r*), with their input strides */
    size_t kd[DSE_MAX_RANK], ks[DSE_MAX_RANK], rd[DSE_MAX_RANK], rs[DSE_MAX_RANK], nk = 0, nr = 0, s = 1;
    for (int d = (int)xt->rank - 1; d >= 0; d--) {
        if (p.red[d]) rd[nr] = xt->dims[d], rs[nr++] = s;
        else kd[nk] = xt->dims[d], ks[nk++] = s;
        s *= xt->dims[d];
    }   /* index 0 = innermost */
    size_t outs = 1, count = 1;
    for (size_t i = 0; i < nk; i++) outs *= kd[i];
    for (size_t i = 0; i < nr; i++) count *= rd[i];
    int trailing = 1;   /* the reduced axes are the innermost ones (GlobalAveragePool): each output's elements are contiguous */
    for (unsigned d = 0, seen = 0; d < xt->rank; d++) {
        if (p.red[d]) seen = 1;
        else if (seen) trailing = 0;
    }
    if (trailing) {   /* the same int32 sums, in a loop the compiler vectorises */
        for (size_t o = 0; o < outs; o++) {
            const int8_t *xo = x + o * count;
            int32_t acc = 0;
            for (size_t e = 0; e < count; e++) acc += xo[e];
            acc -= (int32_t)count * p.zp_in;
            y[o] = dse_requant(acc, p.M, p.shift, p.zp_out, -128, 127);
        }
        return;
    }
    size_t kc[DSE_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < outs; o++) {
        size_t rc[DSE_MAX_RANK] = {0}, off = base;
        int32_t acc = 0;
        for (size_t e = 0; e < count; e++) {
            acc += x[off] - p.zp_in;
            for (size_t i = 0; i < nr; i++) {   /* advance the reduced counter */
                off += rs[i];
                if (++rc[i] < rd[i]) break;
                off -= rs[i] * rc[i];
                rc[i] = 0;
            }
        }
        y[o] = dse_requant(acc, p.M, p.shift, p.zp_out, -128, 127);
        for (size_t i = 0; i < nk; i++) {   /* advance the kept counter */
            base += ks[i];
            if (++kc[i] < kd[i]) break;
            base -= ks[i] * kc[i];
            kc[i] = 0;
        }
    }
}
