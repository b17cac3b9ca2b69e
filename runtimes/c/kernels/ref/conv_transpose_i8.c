/* conv_transpose_i8.c: int8 ConvTranspose (1-D, 2-D, 3-D; stride, dilation, pads,
 * output_padding, groups), bit-exact with dsedge/quant/intref.py:conv_transpose_int8.
 *
 * Arithmetic (docs/quant-arith.md §4): no zero-point folding (the taps that reach an output
 * pixel vary with its position); acc = bias_q + sum (x_q - zp_in) * w_q over every input
 * pixel and tap with  out = in * stride + tap * dilation - pad_begin  (ONNX; output_padding
 * only lengthens the output). int32 accumulator, bounded by the check
 * (Cin/group * prod(kernel) * 255 * 127 < 2^31), then the requantisation rule or float_out.
 *
 * Formulation: gather, not scatter (no accumulator image, so no scratch): each output row is
 * processed in stack tiles of TILE columns; for each input channel and tap whose row (and
 * depth) position divides evenly by the stride, the input columns that land inside the tile
 * are one contiguous range, walked with the output stride. Weights are (Cin, Cout/group, k...).
 * The check reports the optimised variants' scratch plan (dse__convt_plan, src/internal.h).
 */
#include "requant.h"

#define TILE 64

int dse__check_i8_conv_transpose(const dse_model *m, const dse_node *n, dse_why *why) {
    return dse_i8_conv_transpose_check(m, n, why);
}

int dse_i8_conv_transpose_check(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !w || !y || x->rank < 3 || w->rank != x->rank) {
        DSE_WHY(why, CONV_TRANSPOSE_I8_INT8_CONVTRANSPOSE_NEEDS_X);
        return 1;
    }
    int64_t group = dse__attr_int(n, DSE_A_group, 1);
    size_t C = w->dims[0], Og = w->dims[1], KS = 1;
    for (unsigned d = 2; d < w->rank; d++) KS *= w->dims[d];
    if (group < 1 || C % (size_t)group || x->dims[1] != C || y->dims[0] != x->dims[0] || y->dims[1] != Og * (size_t)group) {
        DSE_WHYF(why, CONV_TRANSPOSE_I8_CHANNELS_DO_NOT_AGREE, NULL, x->dims[1], C, Og, group);
        return 1;
    }
    if (dse_i8_weighted_operands(m, n, Og * (size_t)group, C / (size_t)group * KS, why)) return 1;
    dse_i8_geom g;
    if (dse_i8_geom_read(n, x, y, w->dims + 2, &g, why)) return 1;
    int64_t op[3];
    int nop = dse__attr_ints(n, DSE_A_output_padding, op, 3);
    if (nop >= 0 && nop != g.sp) { DSE_WHYF(why, CONV_TRANSPOSE_I8_OUTPUT_PADDING_NEEDS_ENTRIES, NULL, g.sp, 0, 0, 0); return 1; }
    for (int j = 0; j < 3; j++) {
        long long opad = (nop >= 0 && j >= 3 - g.sp) ? op[j - (3 - g.sp)] : 0;
        if (opad < 0 || opad > 0x7fffffff) { DSE_WHY(why, CONV_TRANSPOSE_I8_OUTPUT_PADDING_0); return 1; }
        long long full = (g.in[j] - 1) * g.s[j] + (g.k[j] - 1) * g.d[j] + 1 + opad;
        if (g.in[j] < 1 || g.out[j] != full - g.pb[j] - g.pe[j]) {
            DSE_WHY(why, CONV_TRANSPOSE_I8_OUTPUT_SPATIAL_SIZE_DOES);
            return 1;
        }
    }
    dse_i8_out o;
    if (dse_i8_out_params(m, n, Og * (size_t)group, &o, why)) return 1;
    dse_convt_plan p;   /* what the optimised variants use (kernels/avx2/conv_transpose_i8.c); this kernel uses none */
    why->scratch_plan = dse__convt_plan((size_t)g.sp, C / (size_t)group, Og, (size_t)g.k[1], (size_t)g.k[2], (size_t)g.s[1],
                                        (size_t)g.s[2], (size_t)g.d[1], (size_t)g.d[2], 1, &p);
    return 0;
}

/* The input position src of output position p through tap k (p = src*s + k*d - pb): 1 when
 * it exists (divides evenly) and lies inside [0, L). */
static int tap_source(long long p, long long pb, long long k, long long d, long long s, long long L, long long *src) {
    long long t = p + pb - k * d;
    if (t < 0 || t % s) return 0;
    *src = t / s;
    return *src < L;
}

void dse_i8_conv_transpose__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    const int8_t *x = dse__data(m, arena, n->in[0]), *w = dse__data(m, arena, n->in[1]);
    const int32_t *bias = dse__data(m, arena, n->in[2]);
    void *y = dse__data(m, arena, n->out[0]);
    const long long N = (long long)xt->dims[0], C = (long long)wt->dims[0], Og = (long long)wt->dims[1];
    const long long group = dse__attr_int(n, DSE_A_group, 1), Cg = C / group, O = Og * group;
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, (size_t)O, &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    const long long ID = g.in[0], IH = g.in[1], IW = g.in[2], OD = g.out[0], OH = g.out[1], OW = g.out[2];
    const long long KD = g.k[0], KH = g.k[1], KW = g.k[2], KS = KD * KH * KW, sw = g.s[2], dw = g.d[2];
    const int zp = o.zp_in;
    size_t idx = 0;
    for (long long b = 0; b < N; b++)
        for (long long oc = 0; oc < O; oc++) {
            const long long grp = oc / Og, oo = oc % Og;
            for (long long od = 0; od < OD; od++)
                for (long long oh = 0; oh < OH; oh++)
                    for (long long ow0 = 0; ow0 < OW; ow0 += TILE) {
                        const long long tn = OW - ow0 < TILE ? OW - ow0 : TILE;
                        int32_t acc[TILE] = {0};
                        for (long long ci = 0; ci < Cg; ci++) {
                            const long long cin = grp * Cg + ci;
                            const int8_t *xc = x + (b * C + cin) * ID * IH * IW;
                            const int8_t *wc = w + (cin * Og + oo) * KS;
                            for (long long kd = 0; kd < KD; kd++) {
                                long long id, ih;
                                if (!tap_source(od, g.pb[0], kd, g.d[0], g.s[0], ID, &id)) continue;
                                for (long long kh = 0; kh < KH; kh++) {
                                    if (!tap_source(oh, g.pb[1], kh, g.d[1], g.s[1], IH, &ih)) continue;
                                    const int8_t *xr = xc + (id * IH + ih) * IW;
                                    const int8_t *wr = wc + (kd * KH + kh) * KW;
                                    for (long long kw = 0; kw < KW; kw++) {
                                        const int32_t wv = wr[kw];
                                        const long long off = kw * dw - g.pb[2];   /* ow = iw * sw + off */
                                        long long lo = -dse_i8_floordiv(-(ow0 - off), sw);   /* ceil */
                                        long long hi = dse_i8_floordiv(ow0 + tn - 1 - off, sw) + 1;
                                        if (lo < 0) lo = 0;
                                        if (hi > IW) hi = IW;
                                        for (long long iw = lo; iw < hi; iw++)
                                            acc[iw * sw + off - ow0] += ((int32_t)xr[iw] - zp) * wv;
                                    }
                                }
                            }
                        }
                        for (long long j = 0; j < tn; j++, idx++)
                            dse_i8_store(&o, y, idx, (size_t)oc, (int64_t)acc[j] + bias[oc]);
                    }
        }
}
