/* conv_i8.c: int8 Conv (plain, grouped, depthwise; 1-D, 2-D, 3-D; any stride, dilation and
 * padding), bit-exact with dsedge/quant/intref.py:conv_int8, and the helpers every int8
 * kernel shares (declared in src/requant.h).
 *
 * Arithmetic (docs/quant-arith.md §4): the reference computes
 *     acc = sum_k x_q * w_q + (bias_q - zp_in * sum_k w_q)        (padding filled with zp_in)
 * which is the same integer as
 *     acc = bias_q + sum over the taps inside the input of (x_q - zp_in) * w_q
 * (a padded tap contributes (zp_in - zp_in) * w = 0), so the kernel needs neither the folded
 * bias nor padded copies. The sum is an int32 accumulator: |x - zp| <= 255, |w| <= 127 and
 * the check enforces K * 255 * 127 < 2^31 (K = Cin/group * prod(kernel)), so it cannot
 * overflow; bias is added in int64 and the result goes through the requantisation rule
 * (or, with float_out, becomes float32).
 *
 * Loop order: for each (batch, output channel, output row) the output row is processed in
 * tiles of TILE columns whose int32 accumulators live on the stack (no scratch memory); for
 * each input channel and kernel tap, the range of output columns whose input column is
 * inside the input is computed once, so the innermost loop is branch-free and walks the
 * input row with the convolution stride and the accumulator tile contiguously (the loop nest
 * is dse_i8_conv_loop in kernels/ref/loops.c; this file reads and checks the node).
 */
#include <math.h>

#include "requant.h"

/* -- shared helpers --------------------------------------------------------------------------- */

const void *dse_i8_tensor_attr(const dse_model *m, const dse_node *n, int key, int dtype, size_t numel) {
    const dse_attr *a = dse__attr(n, key, DSE_ATTR_TENSOR);
    if (!a) return NULL;
    const dse_tensor *t = &m->tensors[a->i];
    if (t->dtype != dtype || t->numel != numel) return NULL;
    return t->cdata;
}

int dse_i8_mult_ok(const int32_t *M, const int32_t *shift, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (M[i] < 0 || shift[i] < 1 || shift[i] > 62) return 0;
    return 1;
}

int dse_i8_out_params(const dse_model *m, const dse_node *n, size_t C, dse_i8_out *o, dse_why *why) {
    memset(o, 0, sizeof *o);
    o->float_out = (int)dse__attr_int(n, DSE_A_float_out, 0);
    int64_t zi = dse__attr_int(n, DSE_A_zp_in, 1000);
    if (!DSE_I8_OK(zi) || (o->float_out != 0 && o->float_out != 1)) {
        DSE_WHY(why, CONV_I8_NEEDS_INT_ZP_128);
        return 1;
    }
    o->zp_in = (int)zi;
    if (o->float_out) {
        o->scale = dse_i8_tensor_attr(m, n, DSE_A_out_scale, DSE_DTYPE_FLOAT32, C);
        o->act_min = dse__attr_float(n, DSE_A_act_min, -INFINITY);
        o->act_max = dse__attr_float(n, DSE_A_act_max, INFINITY);
        if (!o->scale || !(o->act_min <= o->act_max)) {
            DSE_WHYF(why, CONV_I8_FLOAT_OUT_NEEDS_TENSOR, NULL, C, 0, 0, 0);
            return 1;
        }
        return 0;
    }
    int64_t zo = dse__attr_int(n, DSE_A_zp_out, 1000), lo = dse__attr_int(n, DSE_A_qmin, -128), hi = dse__attr_int(n, DSE_A_qmax, 127);
    o->M = dse_i8_tensor_attr(m, n, DSE_A_M, DSE_DTYPE_INT32, C);
    o->shift = dse_i8_tensor_attr(m, n, DSE_A_shift, DSE_DTYPE_INT32, C);
    if (!DSE_I8_OK(zo) || !DSE_I8_OK(lo) || !DSE_I8_OK(hi) || lo > hi || !o->M || !o->shift) {
        DSE_WHYF(why, CONV_I8_NEEDS_INT_ZP_OUT, NULL, C, 0, 0, 0);
        return 1;
    }
    if (!dse_i8_mult_ok(o->M, o->shift, C)) {
        DSE_WHY(why, CONV_I8_REQUANTISATION_MULTIPLIERS_OUT_RANGE);
        return 1;
    }
    o->zp_out = (int)zo, o->qmin = (int)lo, o->qmax = (int)hi;
    return 0;
}

int dse_i8_weight_layout_ok(const dse_tensor *w, int allowed, dse_why *why) {
    if (w->layout == DSE_LAYOUT_PLAIN) return 0;
    if (w->layout != allowed) { DSE_WHYF(why, CONV_I8_WEIGHT_LAYOUT, NULL, w->layout, 0, 0, 0); return 1; }
    why->packed |= 2u;   /* input 1 */
    return 0;
}

int dse_i8_weighted_operands(const dse_model *m, const dse_node *n, size_t C, size_t K, dse_why *why) {
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]), *b = dse__t(m, n->in[2]);
    const dse_tensor *y = dse__t(m, n->out[0]);
    int fo = (int)dse__attr_int(n, DSE_A_float_out, 0);
    if (!x || !w || !b || !y || x->dtype != DSE_DTYPE_INT8 || w->dtype != DSE_DTYPE_INT8 || w->storage != DSE_STORAGE_CONST ||
        b->dtype != DSE_DTYPE_INT32 || b->storage != DSE_STORAGE_CONST || b->numel != C ||
        y->dtype != (fo ? DSE_DTYPE_FLOAT32 : DSE_DTYPE_INT8)) {
        DSE_WHYF(why, CONV_I8_NEEDS_INT8_X_CONSTANT, fo ? "float32 (float_out)" : "int8", C, 0, 0, 0);
        return 1;
    }
    if (K > 0x7fffffff / (255 * 127)) {
        DSE_WHYF(why, CONV_I8_PRODUCTS_PER_OUTPUT_EXCEED, NULL, K, 0, 0, 0);
        return 1;
    }
    const int8_t *wd = (const int8_t *)w->cdata;
    for (size_t i = 0; i < w->nbytes; i++)   /* numel bytes, or packed with zero padding */
        if (wd[i] == -128) { DSE_WHY(why, CONV_I8_WEIGHT_VALUE_128_INT8); return 1; }
    return 0;
}

int dse_i8_geom_read(const dse_node *n, const dse_tensor *x, const dse_tensor *y, const size_t *kernel,
                     dse_i8_geom *g, dse_why *why) {
    int64_t ks[3], st[3], pd[6], dl[3];
    int sp = (int)x->rank - 2;
    if (sp < 1 || sp > 3 || y->rank != x->rank) { DSE_WHY(why, CONV_I8_NEEDS_1_3_SPATIAL); return 1; }
    int nk = dse__attr_ints(n, DSE_A_kernel_shape, ks, 3), ns = dse__attr_ints(n, DSE_A_strides, st, 3);
    int np_ = dse__attr_ints(n, DSE_A_pads, pd, 6), nd = dse__attr_ints(n, DSE_A_dilations, dl, 3);
    if ((nk < 0 && !kernel) || (nk >= 0 && nk != sp) || (ns >= 0 && ns != sp) || (np_ >= 0 && np_ != 2 * sp) ||
        (nd >= 0 && nd != sp)) {
        DSE_WHYF(why, CONV_I8_KERNEL_SHAPE_STRIDES_DILATIONS, NULL, sp, 2 * sp, 0, 0);
        return 1;
    }
    g->sp = sp;
    for (int i = 0; i < 3; i++) g->in[i] = g->out[i] = g->k[i] = g->s[i] = g->d[i] = 1, g->pb[i] = g->pe[i] = 0;
    for (int i = 0; i < sp; i++) {
        int j = 3 - sp + i;
        g->in[j] = (long long)x->dims[2 + i];
        g->out[j] = (long long)y->dims[2 + i];
        g->k[j] = nk >= 0 ? ks[i] : (long long)kernel[i];
        g->s[j] = ns >= 0 ? st[i] : 1;
        g->d[j] = nd >= 0 ? dl[i] : 1;
        g->pb[j] = np_ >= 0 ? pd[i] : 0;
        g->pe[j] = np_ >= 0 ? pd[i + sp] : 0;
        if (g->k[j] < 1 || g->s[j] < 1 || g->d[j] < 1 || g->pb[j] < 0 || g->pe[j] < 0 ||
            g->k[j] > 0x7fffffff || g->s[j] > 0x7fffffff || g->d[j] > 0x7fffffff || g->pb[j] > 0x7fffffff ||
            g->pe[j] > 0x7fffffff || (kernel && g->k[j] != (long long)kernel[i])) {
            DSE_WHY(why, CONV_I8_KERNEL_STRIDES_DILATIONS_1);
            return 1;
        }
    }
    return 0;
}

/* -- Conv --------------------------------------------------------------------------------------- */

int dse_i8_conv_shapes(const dse_node *n, const dse_tensor *x, const dse_tensor *w, const dse_tensor *y,
                       dse_i8_geom *g, dse_why *why) {
    size_t O = w->dims[0], Cg = w->dims[1];
    int64_t group = dse__attr_int(n, DSE_A_group, 1);
    if (group < 1 || Cg == 0 || O % (size_t)group || x->dims[1] != Cg * (size_t)group || y->dims[0] != x->dims[0] ||
        y->dims[1] != O) {
        DSE_WHYF(why, CONV_I8_CHANNELS_DO_NOT_AGREE, NULL, x->dims[1], O, Cg, group);
        return 1;
    }
    if (dse_i8_geom_read(n, x, y, w->dims + 2, g, why)) return 1;
    for (int j = 0; j < 3; j++) {
        long long span = g->in[j] + g->pb[j] + g->pe[j] - ((g->k[j] - 1) * g->d[j] + 1);
        if (span < 0 || g->out[j] != span / g->s[j] + 1) {
            DSE_WHY(why, CONV_I8_OUTPUT_SPATIAL_SIZE_DOES);
            return 1;
        }
    }
    return 0;
}

int dse__check_i8_conv(const dse_model *m, const dse_node *n, dse_why *why) { return dse_i8_conv_check(m, n, why); }

int dse_i8_conv_check(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !w || !y || x->rank < 3 || w->rank != x->rank) {
        DSE_WHY(why, CONV_I8_INT8_CONV_NEEDS_X);
        return 1;
    }
    size_t O = w->dims[0], Cg = w->dims[1], K = Cg;
    for (unsigned d = 2; d < w->rank; d++) K *= w->dims[d];
    if (dse_i8_weighted_operands(m, n, O, K, why)) return 1;
    dse_i8_geom g;
    if (dse_i8_conv_shapes(n, x, w, y, &g, why)) return 1;
    int64_t group = dse__attr_int(n, DSE_A_group, 1);
    if (dse_i8_weight_layout_ok(w, group == 1 ? DSE_LAYOUT_N8K4 : -1, why)) return 1;
    dse_i8_out o;
    if (dse_i8_out_params(m, n, O, &o, why)) return 1;
    /* what the optimised variants may use (group 1 and depthwise); this kernel uses none */
    if (y->numel && group == 1)
        why->scratch_plan = dse_i8_conv_scratch_plan(K, y->numel / (y->dims[0] * O), y->dims[0]);
    else if (y->numel && group == (int64_t)x->dims[1] && O == x->dims[1] && Cg == 1)
        why->scratch_plan = dse_i8_gemm_scratch_plan(K, y->numel / (y->dims[0] * O));
    return 0;
}

void dse_i8_conv__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    const int8_t *x = dse__data(m, arena, n->in[0]), *w = dse__data(m, arena, n->in[1]);
    const int32_t *bias = dse__data(m, arena, n->in[2]);
    void *y = dse__data(m, arena, n->out[0]);
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    dse_i8_conv_loop(cx, x, w, wt->layout, bias, y, &o, &g, (long long)xt->dims[0], (long long)xt->dims[1],
                     (long long)wt->dims[0], (long long)wt->dims[1]);
}

int dse_i8_ref_check_conv(const dse_model *m, const dse_node *n, dse_why *why) { return dse__check_i8_conv(m, n, why); }
