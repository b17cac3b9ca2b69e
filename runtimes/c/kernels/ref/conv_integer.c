/* conv_integer.c: ONNX ConvInteger (plain, grouped, depthwise; 1-D, 2-D, 3-D; any stride,
 * dilation and padding; auto_pad resolved into pads by the exporter), bit-exact with
 * dsedge/ops/quantized.py (conv_integer); MatMulInteger is matmul_integer.c, same rules.
 *
 * Operands uint8 or int8 (each its own), zero points of either dtype: ConvInteger's
 * x_zero_point one value, w_zero_point one value or one per output channel; MatMulInteger's
 * a_zero_point one value or one per row of A (rank >= 2), b_zero_point one value or one per
 * column of B (rank >= 2). Absent zero points are 0; they may be computed at run time (e.g.
 * DynamicQuantizeLinear's). Output int32:
 *     y = sum over the taps inside the input of (x - zx) * (w - zw)     (a padded tap is x = zx)
 *     y = sum_k (a - za) * (b - zb)
 * summed exactly modulo 2^32 (the reference's exact sum cast to int32; no overflow check
 * needed, any K). Loops: kernels/ref/loops.c (dse_int_conv_loop, dse_int_matmul). No scratch (the
 * plan, dse_int_gemm_plan, is the optimised variants'). */
#include "requant.h"

int dse__int_byte_operand(const dse_tensor *t) { return t && (t->dtype == DSE_DTYPE_UINT8 || t->dtype == DSE_DTYPE_INT8); }

int dse__check_conv_integer(const dse_model *m, const dse_node *n, dse_why *why) {
    return dse__conv_integer_valid(m, n, &why->scratch_plan, why);   /* the plan: the optimised variants' */
}

int dse__conv_integer_valid(const dse_model *m, const dse_node *n, size_t *plan, dse_why *why) {
    const dse_tensor *x = n->n_in >= 2 && n->n_in <= 4 ? dse__t(m, n->in[0]) : NULL;
    const dse_tensor *w = x ? dse__t(m, n->in[1]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    const dse_tensor *zx = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL, *zw = n->n_in > 3 ? dse__t(m, n->in[3]) : NULL;
    if (!dse__int_byte_operand(x) || !dse__int_byte_operand(w) || !y || y->dtype != DSE_DTYPE_INT32 || x->rank < 3 || w->rank != x->rank ||
        (zx && (!dse__int_byte_operand(zx) || zx->numel != 1)) || (zw && (!dse__int_byte_operand(zw) || (zw->numel != 1 && zw->numel != w->dims[0])))) {
        DSE_WHYF(why, INTOP_NEEDS_UINT8_INT8, "x, w", 0, 0, 0, 0);
        return 1;
    }
    dse_i8_geom g;
    if (dse_i8_conv_shapes(n, x, w, y, &g, why)) return 1;
    if (plan) *plan = dse_int_gemm_plan(w->dims[0], w->numel / (w->dims[0] ? w->dims[0] : 1));
    return 0;
}

void dse_i32_convinteger__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    const dse_tensor *zx = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL, *zw = n->n_in > 3 ? dse__t(m, n->in[3]) : NULL;
    dse_i8_geom g;
    dse_why why;
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    dse_int_conv p;
    memset(&p, 0, sizeof p);
    p.x = dse__data(m, arena, n->in[0]);
    p.w = dse__data(m, arena, n->in[1]);
    p.x_u8 = xt->dtype == DSE_DTYPE_UINT8;
    p.w_u8 = wt->dtype == DSE_DTYPE_UINT8;
    if (zx) {
        const void *z = dse__data(m, arena, n->in[2]);
        p.zx = zx->dtype == DSE_DTYPE_UINT8 ? (int32_t)*(const uint8_t *)z : (int32_t)*(const int8_t *)z;
    }
    if (zw) {
        p.wz = dse__data(m, arena, n->in[3]);
        p.wz_u8 = zw->dtype == DSE_DTYPE_UINT8;
        p.wz_step = zw->numel == 1 ? 0 : 1;
    }
    p.g = &g;
    p.N = (long long)xt->dims[0], p.C = (long long)xt->dims[1], p.O = (long long)wt->dims[0], p.Cg = (long long)wt->dims[1];
    p.y = dse__data(m, arena, n->out[0]);
    if (yt->numel) dse_int_conv_loop(cx, &p);
}

