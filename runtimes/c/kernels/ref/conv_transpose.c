/* conv_transpose.c: fp32 ConvTranspose (1-D/2-D/3-D; groups, strides, dilations, explicit
 * pads, output_padding; float16 weights widened; fused clamp act_min/act_max).
 *
 * Layout: x N C [D] [H] W, weights C M/group kD kH kW, optional bias [M]. The exporter resolves
 * auto_pad and output_shape into `pads` (docs/kernels.md), so the output size on each axis is
 *     out = (in - 1) * stride + (k - 1) * dilation + 1 + output_padding - pad_begin - pad_end
 * and `check` verifies it against the output tensor.
 *
 * Gather form (no scratch, no scatter): output position o on an axis receives input i through
 * kernel tap k when o + pad_begin = i * stride + k * dilation. Reduction order, per output
 * element: acc = 0; for c in the group's C/group input channels: for kd: for kh: for kw: if the
 * tap lands on an input position, acc = acc + x * w; then y = acc + bias[m], then the clamp.
 * numpy's reference (matmul + col2im scatter-add) sums in another order: ~1e-6 relative.
 * This kernel uses no scratch; its check reports the optimised variants' plan
 * (dse__convt_plan, src/internal.h), which the exporter reserves for every ConvTranspose. */
#include "internal.h"

typedef dse_conv_geom convt_geom;

static int ok_f(const dse_tensor *t) { return t && t->dtype == DSE_DTYPE_FLOAT32; }
static int ok_fh(const dse_tensor *t) { return t && (t->dtype == DSE_DTYPE_FLOAT32 || t->dtype == DSE_DTYPE_FLOAT16); }

int dse__conv_transpose_f32_geom(const dse_model *m, const dse_node *n, dse_conv_geom *g, dse_why *why) {
    const dse_tensor *x = n->n_in >= 2 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *b = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL, *y = dse__t(m, n->out[0]);
    if (n->n_in < 2 || n->n_in > 3 || n->n_out != 1 || !ok_f(x) || !ok_fh(w) || !ok_f(y) || (n->n_in == 3 && n->in[2] != DSE_NONE && !ok_fh(b)) ||
        x->rank < 3 || x->rank > 5 || w->rank != x->rank || y->rank != x->rank) {
        DSE_WHY(why, CONV_TRANSPOSE_CONVTRANSPOSE_NEEDS_FLOAT32_X);
        return 1;
    }
    size_t nd = x->rank - 2, o = 3 - nd;
    int64_t grp = dse__attr_int(n, DSE_A_group, 1), op[6] = {0, 0, 0, 0, 0, 0};
    g->N = x->dims[0]; g->C = x->dims[1];
    if (grp < 1 || g->C % (size_t)grp || w->dims[0] != g->C) {
        DSE_WHYF(why, CONV_TRANSPOSE_GROUP_DOES_NOT_FIT, NULL, grp, g->C, 0, 0);
        return 1;
    }
    g->G = (size_t)grp;
    g->M = w->dims[1] * g->G;
    if (dse__nn_spatial(n, nd, w->dims + 2, g->k, g->s, g->d, g->pb, g->pe)) {
        DSE_WHY(why, CONV_KERNEL_SHAPE_STRIDES_DILATIONS);
        return 1;
    }
    int c = dse__attr_ints(n, DSE_A_output_padding, op, 6);
    if (c >= 0 && c != (int)nd) { DSE_WHYF(why, CONV_TRANSPOSE_OUTPUT_PADDING_NEEDS_VALUES, NULL, nd, 0, 0, 0); return 1; }
    if (dse__attr(n, DSE_A_output_shape, DSE_ATTR_INTS)) { DSE_WHY(why, CONV_TRANSPOSE_OUTPUT_SHAPE_RESOLVED_INTO); return 1; }
    if (b && b->numel != g->M) { DSE_WHYF(why, CONV_BIAS_HAS_ELEMENTS_EXPECTED, NULL, b->numel, g->M, 0, 0); return 1; }
    if (y->dims[0] != g->N || y->dims[1] != g->M) { DSE_WHY(why, CONV_OUTPUT_SHAPE_DOES_NOT); return 1; }
    for (int i = 0; i < 3; i++) {
        int64_t opad = (size_t)i < o ? 0 : op[i - (int)o];
        g->in[i] = (size_t)i < o ? 1 : x->dims[2 + i - o];
        g->out[i] = (size_t)i < o ? 1 : y->dims[2 + i - o];
        int64_t want = ((int64_t)g->in[i] - 1) * g->s[i] + (g->k[i] - 1) * g->d[i] + 1 + opad - g->pb[i] - g->pe[i];
        if (opad < 0 || want < 1 || (int64_t)g->out[i] != want) {
            DSE_WHYF(why, CONV_SPATIAL_AXIS_OUTPUT_BUT, NULL, i - (int)o, g->out[i], want, 0);
            return 1;
        }
    }
    return 0;
}

int dse__check_conv_transpose_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    convt_geom g;
    if (dse__conv_transpose_f32_geom(m, n, &g, why)) return 1;
    dse_convt_plan p;   /* what the optimised variants use (kernels/avx2/conv_transpose.c) */
    why->scratch_plan = dse__convt_plan(m->tensors[n->in[0]].rank - 2, g.C / g.G, g.M / g.G, (size_t)g.k[1], (size_t)g.k[2],
                                        (size_t)g.s[1], (size_t)g.s[2], (size_t)g.d[1], (size_t)g.d[2], 0, &p);
    return 0;
}

void dse_f32_conv_transpose__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    convt_geom g;
    dse_why why;
    dse__conv_transpose_f32_geom(m, n, &g, &why);
    const dse_tensor *wt = &m->tensors[n->in[1]];
    const dse_tensor *bt = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    const float *x = dse__data(m, arena, n->in[0]);
    const void *w = dse__data(m, arena, n->in[1]);
    const void *b = bt ? dse__data(m, arena, n->in[2]) : NULL;
    float *y = dse__data(m, arena, n->out[0]);
    float lo, hi;
    int act = dse__nn_act(n, &lo, &hi);
    const int w16 = wt->dtype == DSE_DTYPE_FLOAT16;
    const size_t cg = g.C / g.G, mg = g.M / g.G;
    const size_t isz = g.in[0] * g.in[1] * g.in[2], osz = g.out[0] * g.out[1] * g.out[2];
    const size_t ksz = (size_t)(g.k[0] * g.k[1] * g.k[2]);
    for (size_t bi = 0; bi < g.N; bi++)
        for (size_t oc = 0; oc < g.M; oc++) {
            const size_t grp = oc / mg, om = oc % mg;
            const float bias = b ? dse__nn_ld(bt, b, oc) : 0.0f;
            float *yo = y + (bi * g.M + oc) * osz;
            for (size_t od = 0; od < g.out[0]; od++)
                for (size_t oh = 0; oh < g.out[1]; oh++)
                    for (size_t ow = 0; ow < g.out[2]; ow++) {
                        float acc = 0.0f;
                        for (size_t c = 0; c < cg; c++) {
                            const size_t ic = grp * cg + c;
                            const float *xc = x + (bi * g.C + ic) * isz;
                            const size_t wbase = (ic * mg + om) * ksz;
                            for (int64_t kd = 0; kd < g.k[0]; kd++) {
                                int64_t td = (int64_t)od + g.pb[0] - kd * g.d[0];
                                if (td < 0 || td % g.s[0] || td / g.s[0] >= (int64_t)g.in[0]) continue;
                                for (int64_t kh = 0; kh < g.k[1]; kh++) {
                                    int64_t th = (int64_t)oh + g.pb[1] - kh * g.d[1];
                                    if (th < 0 || th % g.s[1] || th / g.s[1] >= (int64_t)g.in[1]) continue;
                                    const float *xr = xc + ((size_t)(td / g.s[0]) * g.in[1] + (size_t)(th / g.s[1])) * g.in[2];
                                    const size_t wr = wbase + (size_t)((kd * g.k[1] + kh) * g.k[2]);
                                    for (int64_t kw = 0; kw < g.k[2]; kw++) {
                                        int64_t tw = (int64_t)ow + g.pb[2] - kw * g.d[2];
                                        if (tw < 0 || tw % g.s[2] || tw / g.s[2] >= (int64_t)g.in[2]) continue;
                                        const size_t wi = wr + (size_t)kw;
                                        const float wv = w16 ? dse__f16_to_f32(((const uint16_t *)w)[wi]) : ((const float *)w)[wi];
                                        acc = acc + xr[tw / g.s[2]] * wv;
                                    }
                                }
                            }
                        }
                        float v = b ? acc + bias : acc;
                        if (act) { v = v < lo ? lo : v; v = v > hi ? hi : v; }
                        yo[(od * g.out[1] + oh) * g.out[2] + ow] = v;
                    }
        }
}
