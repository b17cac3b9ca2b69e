/* conv.c: fp32 Conv (1-D, 2-D and 3-D; groups, depthwise, strides, dilations, explicit pads;
 * float16 weights widened exactly; fused clamp `act_min`/`act_max`), and the small helpers the
 * other float NN kernels share (float32/float16 element load, spatial attributes, the clamp).
 *
 * Layout N C [D] [H] W; weights M C/group kD kH kW; optional bias [M]. Spatial axes are
 * normalised to three (D, H, W) by prepending axes of size 1 (kernel 1, stride 1, no pad), so
 * one loop nest serves every rank. The attributes come from docs/kernels.md: `kernel_shape`,
 * `strides`, `pads` (all begins then all ends), `dilations`, `group` are always present.
 *
 * Reduction order (the same on every target, -ffp-contract=off): for each output element,
 *     acc = 0; for c in [0, C/group): for kd: for kh: for kw: if the tap is inside the input
 *         acc = acc + x * w          (taps in the zero padding are skipped)
 *     y = acc + bias[m];  y = min(max(y, act_min), act_max)
 * i.e. one sequential float32 sum over K = C/group * kD*kH*kW in weight order, then the
 * bias. numpy's reference sums with BLAS (another order): they agree to ~1e-6 relative.
 * The loop nest is dse_f32_conv_loop (kernels/ref/loops.c); this file reads and checks. The weight
 * may be in layout 8 (panels of 32 output channels, docs/format.md §4.4): the same values, read at
 * their packed index. The
 * REF kernel uses no scratch, but its check reports the optimised variants' plan
 * (dse__conv_f32_scratch_plan: the larger of dse__conv_f32_plan and dse__conv_f32_wino_plan),
 * which the exporter reserves for every float Conv. */
#include <math.h>   /* INFINITY only */

#include "internal.h"

/* Element i of a float32 or float16 tensor's data, as float32. */
float dse__nn_ld(const dse_tensor *t, const void *p, size_t i) {
    if (t->dtype == DSE_DTYPE_FLOAT16) return dse__f16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

/* Reads kernel_shape/strides/dilations/pads for `nd` (1..3) spatial axes into arrays of three
 * (D, H, W; leading unused axes get kernel 1, stride 1, dilation 1, pad 0). kernel_shape may
 * be absent when `k_from` (the weight's spatial dims) is given. Returns 0 or non-zero if an
 * attribute is missing, has the wrong length or an out-of-range value. */
int dse__nn_spatial(const dse_node *n, size_t nd, const size_t *k_from, int64_t k[3], int64_t s[3], int64_t d[3],
                    int64_t pb[3], int64_t pe[3]) {
    int64_t a[6];
    if (nd < 1 || nd > 3) return 1;
    size_t o = 3 - nd;
    for (int i = 0; i < 3; i++) k[i] = s[i] = d[i] = 1, pb[i] = pe[i] = 0;
    int c = dse__attr_ints(n, DSE_A_kernel_shape, a, 6);
    if (c < 0 && k_from) { for (size_t i = 0; i < nd; i++) a[i] = (int64_t)k_from[i]; c = (int)nd; }
    if (c != (int)nd) return 1;
    for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || (k_from && (size_t)a[i] != k_from[i])) return 1; k[o + i] = a[i]; }
    if ((c = dse__attr_ints(n, DSE_A_strides, a, 6)) >= 0) {
        if (c != (int)nd) return 1;
        for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || a[i] > 0x7fffffff) return 1; s[o + i] = a[i]; }
    }
    if ((c = dse__attr_ints(n, DSE_A_dilations, a, 6)) >= 0) {
        if (c != (int)nd) return 1;
        for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || a[i] > 0x7fffffff) return 1; d[o + i] = a[i]; }
    }
    if ((c = dse__attr_ints(n, DSE_A_pads, a, 6)) >= 0) {
        if (c != 2 * (int)nd) return 1;
        for (size_t i = 0; i < 2 * nd; i++) if (a[i] < 0 || a[i] > 0x7fffffff) return 1;
        for (size_t i = 0; i < nd; i++) { pb[o + i] = a[i]; pe[o + i] = a[nd + i]; }
    }
    if (k[0] > 0x7fffffff || k[1] > 0x7fffffff || k[2] > 0x7fffffff) return 1;
    return 0;
}

/* Fused clamp: returns 1 and the bounds when `act_min` or `act_max` is present. */
int dse__nn_act(const dse_node *n, float *lo, float *hi) {
    const dse_attr *a = dse__attr(n, DSE_A_act_min, DSE_ATTR_FLOAT), *b = dse__attr(n, DSE_A_act_max, DSE_ATTR_FLOAT);
    *lo = a ? a->f : -INFINITY;
    *hi = b ? b->f : INFINITY;
    return a || b;
}

int dse__nn_act_fn(const dse_node *n) { return (int)dse__attr_int(n, DSE_A_act_fn, DSE_ACT_FN_NONE); }

/* The fused activation functions a float Conv kernel applies with the separate nodes' bytes
 * (internal.h): HardSwish always; SiLU when the kernel's sigmoid (vec: the vectorised one of
 * src/vec_mathf.h, else mathf.c's) is the one of the Sigmoid kernel the loader gives this model
 * (the first listed for its ISAs: AVX2 or NEON unless the build is -DDSE_REF_FLOAT or the load
 * forces REF); GELU likewise with the Erf kernel's erf. */
uint32_t dse__act_fns(const dse_model *m, int vec) {
    const int k = dse__next_kernel(DSE_OP_SIGMOID, DSE_DTYPE_FLOAT32, -1, m->isas);
    const int sig_vec = k >= 0 && dse__kernel_isa(k) != DSE_ISA_REF;
    const int e = dse__next_kernel(DSE_OP_ERF, DSE_DTYPE_FLOAT32, -1, m->isas);   /* GELU: the Erf kernel's erf */
    const int erf_vec = e >= 0 && dse__kernel_isa(e) != DSE_ISA_REF;
    return (1u << DSE_ACT_FN_HARDSWISH) | (sig_vec == !!vec ? 1u << DSE_ACT_FN_SILU : 0u) |
           (erf_vec == !!vec ? 1u << DSE_ACT_FN_GELU : 0u);
}

static int is_f(const dse_tensor *t) { return t && t->dtype == DSE_DTYPE_FLOAT32; }
static int is_fh(const dse_tensor *t) { return t && (t->dtype == DSE_DTYPE_FLOAT32 || t->dtype == DSE_DTYPE_FLOAT16); }

int dse__conv_f32_geom(const dse_model *m, const dse_node *n, dse_conv_geom *g, dse_why *why) {
    const dse_tensor *x = n->n_in >= 2 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *b = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL, *y = dse__t(m, n->out[0]);
    if (n->n_in < 2 || n->n_in > 3 || n->n_out != 1 || !is_f(x) || !is_fh(w) || !is_f(y) || (n->n_in == 3 && n->in[2] != DSE_NONE && !is_fh(b)) ||
        x->rank < 3 || x->rank > 5 || w->rank != x->rank || y->rank != x->rank) {
        DSE_WHY(why, CONV_NEEDS_FLOAT32_X_N);
        return 1;
    }
    size_t nd = x->rank - 2, o = 3 - nd;
    int64_t grp = dse__attr_int(n, DSE_A_group, 1);
    g->N = x->dims[0]; g->C = x->dims[1]; g->M = w->dims[0];
    if (grp < 1 || g->C % (size_t)grp || g->M % (size_t)grp || w->dims[1] * (size_t)grp != g->C) {
        DSE_WHYF(why, CONV_GROUP_DOES_NOT_FIT, NULL, grp, g->C, 0, 0);
        return 1;
    }
    g->G = (size_t)grp;
    if (dse__nn_spatial(n, nd, w->dims + 2, g->k, g->s, g->d, g->pb, g->pe)) {
        DSE_WHY(why, CONV_KERNEL_SHAPE_STRIDES_DILATIONS);
        return 1;
    }
    if (b && b->numel != g->M) { DSE_WHYF(why, CONV_BIAS_HAS_ELEMENTS_EXPECTED, NULL, b->numel, g->M, 0, 0); return 1; }
    if (y->dims[0] != g->N || y->dims[1] != g->M) { DSE_WHY(why, CONV_OUTPUT_SHAPE_DOES_NOT); return 1; }
    for (int i = 0; i < 3; i++) {
        g->in[i] = (size_t)i < o ? 1 : x->dims[2 + i - o];
        size_t want = 0;
        int64_t span = (int64_t)g->in[i] + g->pb[i] + g->pe[i] - ((g->k[i] - 1) * g->d[i] + 1);
        if (span >= 0) want = (size_t)(span / g->s[i]) + 1;
        g->out[i] = (size_t)i < o ? 1 : y->dims[2 + i - o];
        if (span < 0 || g->out[i] != want) {
            DSE_WHYF(why, CONV_SPATIAL_AXIS_OUTPUT_BUT, NULL, i - (int)o, g->out[i], want, 0);
            return 1;
        }
    }
    return 0;
}

/* How the optimised float Conv variants (kernels/avx2/conv.c) compute a conv, and the scratch
 * they use: what the exporter plans for every float Conv (dsedge/export/scratch.py has the
 * same formula; the REF kernel itself uses none). Paths:
 *   GEMM     1x1, unit strides, no padding: the GEMM of W and x, x copied into panels in chunks
 *            of columns: 4 * dse__sgemm_pack_floats(K) (without it, x is read in place);
 *   DW8      depthwise 1-D/2-D with at most 25 taps and fewer than 32 output columns, or fewer
 *            than 64 when strided (sW > 1) or larger than 3x3 (more than 9 taps) and the 8
 *            channels' transposed padded planes (4 * 8 * PH * PW bytes) take at most
 *            CONV_DW8_PLANES (320 KiB: beyond, L2 misses outweigh the gain): 8 channels at a
 *            time, their zero-padded planes transposed to 8 floats per pixel, and the outputs
 *            likewise: 4 * 8 * (PH * PW + OH * OW) (PH, PW the padded height and width). (Where
 *            a row holds few vectors of output columns, or the W stride makes DW split every
 *            row into phases, lanes of channels do less work per output than lanes of columns:
 *            session 14's measurements on mobilenet_v2's depthwise convs, BENCHMARKS.md.) An
 *            artifact that planned less scratch (written before DW8 took OW >= 16) runs DW
 *            (dse__conv_f32_plan_dw);
 *   DW       other depthwise 1-D/2-D (one input and one output channel per group): each tap's offset
 *            (8 bytes per tap) and one channel's zero-padded plane, its columns split by the W
 *            stride into sw phases of L = ceil(PW / sw) floats, plus 8 floats of slack:
 *            8 * kH*kW + 4 * (PH * sw * L + 8) (PH, PW the padded height and width);
 *   BAND1    other 1-D/2-D convs with unit strides and at least 16 output columns (fewer: the
 *            padding columns would be too large a part of the rows): bands of R output rows; for a band, each
 *            input channel's zero-padded rows (NRp = R + (kH-1)*dh of them, Lw = OW + (kW-1)*dw
 *            floats each: the padded width), so that a tap's values for the band's outputs,
 *            as rows of Lw of which OW are real, are consecutive; R is the most rows whose band
 *            fits 65536 floats (C/group * Lw * NRp <= 65536; at least 1, at most OH):
 *            8 * K + 4 * (C/group * NRp * Lw + 16), K = C/group * kH*kW;
 *   BANDS    other 1-D/2-D convs (strided, or narrow): bands of R output rows; for a band, each input channel
 *            gets kW * sh planes of NRp rows of OW floats (NRp = R + (kH-1)*dh / sh): plane
 *            (kw, fy) row i column ow holds the zero-padded input at padded row
 *            oh0*sh + fy + i*sh, padded column ow*sw + kw*dw, so that every tap's values for the
 *            band's output pixels are consecutive; R is the most rows whose band fits 262144
 *            floats (C/group * kW*sh*OW * NRp <= 262144; at least 1, at most OH; 65536 in artifacts
 *            exported before session 23, and in the NEON kernel's plan: dse__conv_f32_plan_bands):
 *            8 * K + 4 * (C/group * kW*sh * NRp * OW + 16), K = C/group * kH*kW;
 *   IM2COL   3-D convs: tiles of at most 128 output pixels gathered as panels of 16:
 *            4 * K * min(roundup(P, 16), 128), K = C/group * kD*kH*kW, P = OD*OH*OW. */
#define CONV_BAND_FLOATS 65536
#define CONV_DW8_PLANES (320 * 1024)   /* DW8 on wider strided / large-kernel rows: at most these plane bytes */

size_t dse__conv_f32_plan_dw(const dse_conv_geom *g, dse_conv_plan *p) {
    const size_t ph = g->in[1] + (size_t)(g->pb[1] + g->pe[1]), pw = g->in[2] + (size_t)(g->pb[2] + g->pe[2]);
    const size_t sw = (size_t)g->s[2];
    memset(p, 0, sizeof *p);
    p->K = (size_t)(g->k[1] * g->k[2]);
    p->path = DSE_CONV_DW;
    p->Lw = (pw + sw - 1) / sw;
    return 8 * (size_t)(g->k[1] * g->k[2]) + 4 * (ph * sw * p->Lw + 8);
}

size_t dse__conv_f32_plan(const dse_conv_geom *g, dse_conv_plan *p) { return dse__conv_f32_plan_bands(g, p, DSE_CONV_BANDS_FLOATS); }

size_t dse__conv_f32_plan_bands(const dse_conv_geom *g, dse_conv_plan *p, size_t bands) {
    const size_t cg = g->C / g->G, mg = g->M / g->G;
    memset(p, 0, sizeof *p);
    p->K = cg * (size_t)(g->k[0] * g->k[1] * g->k[2]);
    int unit = 1;
    for (int i = 0; i < 3; i++) unit &= g->k[i] == 1 && g->s[i] == 1 && g->pb[i] == 0 && g->pe[i] == 0;
    if (unit) {
        p->path = DSE_CONV_GEMM;
        return 4 * dse__sgemm_pack_floats(p->K);
    }
    const int flat = g->in[0] == 1 && g->k[0] == 1 && g->pb[0] == 0 && g->pe[0] == 0;   /* 1-D or 2-D */
    const size_t sh = (size_t)g->s[1], sw = (size_t)g->s[2];
    const int64_t taps = g->k[1] * g->k[2];
    const size_t ph = g->in[1] + (size_t)(g->pb[1] + g->pe[1]), pw = g->in[2] + (size_t)(g->pb[2] + g->pe[2]);
    if (flat && cg == 1 && mg == 1 && taps <= 25 &&
        (g->out[2] < 32 || ((sw > 1 || taps > 9) && g->out[2] < 64 && 4 * 8 * ph * pw <= CONV_DW8_PLANES))) {
        p->path = DSE_CONV_DW8;
        return 4 * 8 * (ph * pw + g->out[1] * g->out[2]);
    }
    if (flat && cg == 1 && mg == 1) return dse__conv_f32_plan_dw(g, p);
    if (flat && sh == 1 && sw == 1 && g->out[2] >= 16) {
        const size_t extra = (size_t)((g->k[1] - 1) * g->d[1]);
        p->path = DSE_CONV_BAND1;
        p->Lw = g->out[2] + (size_t)((g->k[2] - 1) * g->d[2]);
        size_t R = CONV_BAND_FLOATS / (cg * p->Lw);
        R = R > extra ? R - extra : 1;
        if (R > g->out[1]) R = g->out[1];
        p->R = R ? R : 1;
        p->NRp = p->R + extra;
        p->CS = p->NRp * p->Lw;
        return 8 * p->K + 4 * (cg * p->CS + 16);
    }
    if (flat) {
        const size_t extra = (size_t)((g->k[1] - 1) * g->d[1]) / sh, per_row = cg * (size_t)g->k[2] * sh * g->out[2];
        p->path = DSE_CONV_BANDS;
        size_t R = bands / per_row;
        R = R > extra ? R - extra : 1;
        if (R > g->out[1]) R = g->out[1];
        p->R = R ? R : 1;
        p->NRp = p->R + extra;
        p->CS = (size_t)g->k[2] * sh * p->NRp * g->out[2];
        return 8 * p->K + 4 * (cg * p->CS + 16);
    }
    const size_t P = g->out[0] * g->out[1] * g->out[2], nt = (P + 15) / 16 * 16;
    p->path = DSE_CONV_IM2COL;
    return 4 * p->K * (nt < 128 ? nt : 128);
}

/* Winograd F(2x2, 3x3) (kernels/avx2/winograd.c): 2-D convs with group 1, a 3x3 kernel, unit
 * strides and dilations (any padding), when its cost model wins: per image and (output, input)
 * channel pair, 16 multiplies per 2x2 tile (TH x TW tiles) plus the weight transform, counted
 * as WINO_UCOST multiplies, against 9 per output pixel, with a margin for the transforms:
 * 16 * N*T + WINO_UCOST <= 0.8 * 9 * N*OH*OW; and the transformed weights (16 * M * C floats,
 * computed at every run) at most WINO_U_MAX floats. Scratch:
 *     4 * (16*M*C + 16*(C + M)*ld + 8*L + 8)
 * U = the transformed weights (shared by the workers, at the start of the scratch), then each
 * worker's V (16 x C x ld: the transformed input of a block of TB tiles), M (16 x M x ld: the
 * 16 GEMMs' results) and 4 input rows split into 2 column phases of L = TW + 9 floats; TB =
 * 16384 / C rounded down to 16, within [16, 256], at most T (V's part for one of the 16 GEMMs
 * stays in L1/L2); ld = TB + 8 (the transforms write and read 8-tile vectors past a block's
 * end). */
#define WINO_UCOST 64
#define WINO_U_MAX ((size_t)1 << 20)

size_t dse__conv_f32_wino_plan(const dse_conv_geom *g, dse_wino_plan *p) {
    memset(p, 0, sizeof *p);
    const int flat = g->in[0] == 1 && g->k[0] == 1 && g->pb[0] == 0 && g->pe[0] == 0;
    if (!flat || g->G != 1 || g->k[1] != 3 || g->k[2] != 3 || g->s[1] != 1 || g->s[2] != 1 || g->d[1] != 1 || g->d[2] != 1)
        return 0;
    const size_t C = g->C, M = g->M, OH = g->out[1], OW = g->out[2];
    if (!C || !M || !OH || !OW || !g->N || 16 * M * C > WINO_U_MAX) return 0;
    p->TH = (OH + 1) / 2, p->TW = (OW + 1) / 2, p->T = p->TH * p->TW;
    if (10 * (16 * g->N * p->T + WINO_UCOST) > 8 * 9 * g->N * OH * OW) return 0;
    size_t TB = 16384 / C / 16 * 16;
    TB = TB < 16 ? 16 : TB > 256 ? 256 : TB;
    p->TB = TB < p->T ? TB : p->T;
    p->ld = p->TB + 8;
    p->L = p->TW + 9;
    p->u_floats = 16 * M * C;
    p->w_floats = 16 * (C + M) * p->ld + 8 * p->L + 8;
    return 4 * (p->u_floats + p->w_floats);
}

/* IMGS (kernels/avx2/conv.c): a conv with group 1 whose images have fewer than 16 output pixels,
 * in a batch of several (1-D convs over a batch of frames, small feature maps): the product of one
 * image is too narrow for the SGEMM's tiles, so tiles of TW columns run across images (column u =
 * image u / P, pixel u % P) as 16-column im2col panels of K rows, into C (M x TW), copied out per
 * image. TW = roundup(N * P, 16) at most 128 and at most 65536 / (K + M) rounded down to 16, at
 * least 16. Scratch: 4 * (K + M) * TW. Returns 0 when the node does not take it. */
size_t dse__conv_f32_imgs_plan(const dse_conv_geom *g, size_t *tw) {
    const size_t P = g->out[0] * g->out[1] * g->out[2];
    if (g->G != 1 || g->N < 2 || !P || P >= 16 || !g->M || !g->C) return 0;
    const size_t K = g->C * (size_t)(g->k[0] * g->k[1] * g->k[2]), M = g->M;
    size_t T = (g->N * P + 15) / 16 * 16, cap = 65536 / (K + M) / 16 * 16;
    if (T > DSE_CONV_IMGS_TW) T = DSE_CONV_IMGS_TW;
    if (cap < 16) cap = 16;
    if (T > cap) T = cap;
    if (tw) *tw = T;
    return 4 * (K + M) * T;
}

size_t dse__conv_f32_scratch_plan(const dse_conv_geom *g) {
    dse_conv_plan p;
    dse_wino_plan w;
    const size_t a = dse__conv_f32_plan(g, &p), b = dse__conv_f32_wino_plan(g, &w), c = dse__conv_f32_imgs_plan(g, NULL);
    const size_t ab = a > b ? a : b;
    return ab > c ? ab : c;
}

int dse__check_conv_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_conv_geom g;
    if (dse__conv_f32_geom(m, n, &g, why)) return 1;
    why->scratch_plan = dse__conv_f32_scratch_plan(&g);   /* planned for the optimised variants */
    why->act_fns = dse__act_fns(m, 0);   /* mathf.h dse__act_fnf */
    if (m->tensors[n->in[1]].layout == DSE_LAYOUT_F32_O32) why->packed = 1u << 1;   /* any geometry */
    return 0;
}

void dse_f32_conv__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_conv_geom g;
    dse_why why;
    dse__conv_f32_geom(m, n, &g, &why);   /* validated at load */
    const dse_tensor *wt = &m->tensors[n->in[1]];
    const dse_tensor *bt = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    float lo, hi;
    int act = dse__nn_act(n, &lo, &hi);
    dse_f32_conv_loop(cx, &g, dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]),
                      wt->dtype == DSE_DTYPE_FLOAT16 ? 1 : wt->layout == DSE_LAYOUT_F32_O32 ? 2 : 0,
                      bt ? dse__data(m, arena, n->in[2]) : NULL, bt && bt->dtype == DSE_DTYPE_FLOAT16, act, lo, hi,
                      dse__nn_act_fn(n), dse__data(m, arena, n->out[0]));
}
