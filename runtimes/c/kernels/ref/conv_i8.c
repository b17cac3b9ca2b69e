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
 * input row with the convolution stride and the accumulator tile contiguously.
 */
#include <math.h>

#include "requant.h"

#define TILE 64

/* -- shared helpers --------------------------------------------------------------------------- */

int dse_i8_ints(const dse_node *n, const char *name, int64_t *out, size_t cap) {
    const dse_attr *a = dse__attr(n, name, DSE_ATTR_INTS);
    if (!a || a->n > cap) return -1;
    const uint8_t *p = a->raw;
    for (size_t i = 0; i < a->n; i++) {   /* zigzag LEB128, validated by the loader */
        uint64_t u = 0;
        for (int sh = 0;; sh += 7) {
            uint8_t b = *p++;
            u |= (uint64_t)(b & 0x7f) << sh;
            if (!(b & 0x80)) break;
        }
        out[i] = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    }
    return (int)a->n;
}

const void *dse_i8_tensor_attr(const dse_model *m, const dse_node *n, const char *name, int dtype, size_t numel) {
    const dse_attr *a = dse__attr(n, name, DSE_ATTR_TENSOR);
    if (!a) return NULL;
    const dse_tensor *t = &m->tensors[a->i];
    if (t->dtype != dtype || t->numel != numel) return NULL;
    return m->blob + t->offset;
}

int dse_i8_mult_ok(const int32_t *M, const int32_t *shift, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (M[i] < 0 || shift[i] < 1 || shift[i] > 62) return 0;
    return 1;
}

int dse_i8_out_params(const dse_model *m, const dse_node *n, size_t C, dse_i8_out *o, char *msg, size_t cap) {
    memset(o, 0, sizeof *o);
    o->float_out = (int)dse__attr_int(n, "float_out", 0);
    int64_t zi = dse__attr_int(n, "zp_in", 1000);
    if (!DSE_I8_OK(zi) || (o->float_out != 0 && o->float_out != 1)) {
        snprintf(msg, cap, "needs INT zp_in in [-128, 127] and float_out 0/1");
        return 1;
    }
    o->zp_in = (int)zi;
    if (o->float_out) {
        o->scale = dse_i8_tensor_attr(m, n, "out_scale", DSE_DTYPE_FLOAT32, C);
        o->act_min = dse__attr_float(n, "act_min", -INFINITY);
        o->act_max = dse__attr_float(n, "act_max", INFINITY);
        if (!o->scale || !(o->act_min <= o->act_max)) {
            snprintf(msg, cap, "float_out needs TENSOR out_scale float32[%zu] and act_min <= act_max", C);
            return 1;
        }
        return 0;
    }
    int64_t zo = dse__attr_int(n, "zp_out", 1000), lo = dse__attr_int(n, "qmin", -128), hi = dse__attr_int(n, "qmax", 127);
    o->M = dse_i8_tensor_attr(m, n, "M", DSE_DTYPE_INT32, C);
    o->shift = dse_i8_tensor_attr(m, n, "shift", DSE_DTYPE_INT32, C);
    if (!DSE_I8_OK(zo) || !DSE_I8_OK(lo) || !DSE_I8_OK(hi) || lo > hi || !o->M || !o->shift) {
        snprintf(msg, cap, "needs INT zp_out, qmin <= qmax in [-128, 127] and TENSOR M, shift int32[%zu]", C);
        return 1;
    }
    if (!dse_i8_mult_ok(o->M, o->shift, C)) {
        snprintf(msg, cap, "requantisation multipliers out of range (0 <= M < 2^31, 1 <= shift <= 62)");
        return 1;
    }
    o->zp_out = (int)zo, o->qmin = (int)lo, o->qmax = (int)hi;
    return 0;
}

int dse_i8_weighted_operands(const dse_model *m, const dse_node *n, size_t C, size_t K, char *msg, size_t cap) {
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]), *b = dse__t(m, n->in[2]);
    const dse_tensor *y = dse__t(m, n->out[0]);
    int fo = (int)dse__attr_int(n, "float_out", 0);
    if (!x || !w || !b || !y || x->dtype != DSE_DTYPE_INT8 || w->dtype != DSE_DTYPE_INT8 || w->storage != DSE_STORAGE_CONST ||
        b->dtype != DSE_DTYPE_INT32 || b->storage != DSE_STORAGE_CONST || b->numel != C ||
        y->dtype != (fo ? DSE_DTYPE_FLOAT32 : DSE_DTYPE_INT8)) {
        snprintf(msg, cap, "needs int8 x, constant int8 weights, constant int32 bias[%zu] and an %s output",
                 C, fo ? "float32 (float_out)" : "int8");
        return 1;
    }
    if (K > 0x7fffffff / (255 * 127)) {
        snprintf(msg, cap, "%zu products per output exceed the int32 accumulator bound (K*255*127 < 2^31)", K);
        return 1;
    }
    const int8_t *wd = (const int8_t *)(m->blob + w->offset);
    for (size_t i = 0; i < w->numel; i++)
        if (wd[i] == -128) { snprintf(msg, cap, "weight value -128 (int8 weights are symmetric, [-127, 127])"); return 1; }
    return 0;
}

int dse_i8_geom_read(const dse_node *n, const dse_tensor *x, const dse_tensor *y, const size_t *kernel,
                     dse_i8_geom *g, char *msg, size_t cap) {
    int64_t ks[3], st[3], pd[6], dl[3];
    int sp = (int)x->rank - 2;
    if (sp < 1 || sp > 3 || y->rank != x->rank) { snprintf(msg, cap, "needs 1 to 3 spatial axes (rank 3..5)"); return 1; }
    int nk = dse_i8_ints(n, "kernel_shape", ks, 3), ns = dse_i8_ints(n, "strides", st, 3);
    int np_ = dse_i8_ints(n, "pads", pd, 6), nd = dse_i8_ints(n, "dilations", dl, 3);
    if ((nk < 0 && !kernel) || (nk >= 0 && nk != sp) || (ns >= 0 && ns != sp) || (np_ >= 0 && np_ != 2 * sp) ||
        (nd >= 0 && nd != sp)) {
        snprintf(msg, cap, "kernel_shape/strides/dilations need %d entries and pads %d", sp, 2 * sp);
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
            snprintf(msg, cap, "kernel, strides and dilations must be >= 1 (kernel as the weights), pads >= 0");
            return 1;
        }
    }
    return 0;
}

/* -- Conv --------------------------------------------------------------------------------------- */

int dse__check_i8_conv(const dse_model *m, const dse_node *n, char *msg, size_t cap) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !w || !y || x->rank < 3 || w->rank != x->rank) {
        snprintf(msg, cap, "int8 Conv needs x, w, bias (int32) and one output of the same rank >= 3");
        return 1;
    }
    size_t O = w->dims[0], Cg = w->dims[1], K = Cg;
    for (unsigned d = 2; d < w->rank; d++) K *= w->dims[d];
    if (dse_i8_weighted_operands(m, n, O, K, msg, cap)) return 1;
    int64_t group = dse__attr_int(n, "group", 1);
    if (group < 1 || Cg == 0 || O % (size_t)group || x->dims[1] != Cg * (size_t)group || y->dims[0] != x->dims[0] ||
        y->dims[1] != O) {
        snprintf(msg, cap, "channels do not agree: x %zu, w [%zu, %zu], group %lld, y %zu", x->dims[1], O, Cg,
                 (long long)group, y->dims[1]);
        return 1;
    }
    dse_i8_geom g;
    if (dse_i8_geom_read(n, x, y, w->dims + 2, &g, msg, cap)) return 1;
    for (int j = 0; j < 3; j++) {
        long long span = g.in[j] + g.pb[j] + g.pe[j] - ((g.k[j] - 1) * g.d[j] + 1);
        if (span < 0 || g.out[j] != span / g.s[j] + 1) {
            snprintf(msg, cap, "output spatial size does not match the input, kernel, strides, pads and dilations");
            return 1;
        }
    }
    dse_i8_out o;
    return dse_i8_out_params(m, n, O, &o, msg, cap);
}

void dse_i8_conv__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    (void)scratch;
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    const int8_t *x = dse__data(m, arena, n->in[0]), *w = dse__data(m, arena, n->in[1]);
    const int32_t *bias = dse__data(m, arena, n->in[2]);
    void *y = dse__data(m, arena, n->out[0]);
    dse_i8_out o;
    dse_i8_geom g;
    char msg[8];
    dse_i8_out_params(m, n, wt->dims[0], &o, msg, sizeof msg);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, msg, sizeof msg);
    const long long N = (long long)xt->dims[0], C = (long long)xt->dims[1], O = (long long)wt->dims[0];
    const long long Cg = (long long)wt->dims[1], Og = O / (C / Cg);
    const long long ID = g.in[0], IH = g.in[1], IW = g.in[2], OD = g.out[0], OH = g.out[1], OW = g.out[2];
    const long long KD = g.k[0], KH = g.k[1], KW = g.k[2], KS = KD * KH * KW, sw = g.s[2], dw = g.d[2];
    const int zp = o.zp_in;
    size_t idx = 0;   /* output element index, row-major (N, O, D, H, W) */
    for (long long b = 0; b < N; b++)
        for (long long oc = 0; oc < O; oc++) {
            const int8_t *xg = x + (b * C + oc / Og * Cg) * ID * IH * IW;
            const int8_t *wo = w + oc * Cg * KS;
            for (long long od = 0; od < OD; od++)
                for (long long oh = 0; oh < OH; oh++)
                    for (long long ow0 = 0; ow0 < OW; ow0 += TILE) {
                        const long long tn = OW - ow0 < TILE ? OW - ow0 : TILE;
                        int32_t acc[TILE] = {0};
                        for (long long ci = 0; ci < Cg; ci++)
                            for (long long kd = 0; kd < KD; kd++) {
                                const long long id = od * g.s[0] + kd * g.d[0] - g.pb[0];
                                if (id < 0 || id >= ID) continue;
                                for (long long kh = 0; kh < KH; kh++) {
                                    const long long ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
                                    if (ih < 0 || ih >= IH) continue;
                                    const int8_t *xr = xg + ((ci * ID + id) * IH + ih) * IW;
                                    const int8_t *wr = wo + ((ci * KD + kd) * KH + kh) * KW;
                                    for (long long kw = 0; kw < KW; kw++) {
                                        const int32_t wv = wr[kw];
                                        const long long off = kw * dw - g.pb[2];   /* iw = ow * sw + off */
                                        long long lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                                        long long hi = IW - 1 - off < 0 ? 0 : (IW - 1 - off) / sw + 1;
                                        if (lo < ow0) lo = ow0;
                                        if (hi > ow0 + tn) hi = ow0 + tn;
                                        for (long long ow = lo; ow < hi; ow++)
                                            acc[ow - ow0] += ((int32_t)xr[ow * sw + off] - zp) * wv;
                                    }
                                }
                            }
                        for (long long j = 0; j < tn; j++, idx++)
                            dse_i8_store(&o, y, idx, (size_t)oc, (int64_t)acc[j] + bias[oc]);
                    }
        }
}
