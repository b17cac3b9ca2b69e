/* dwconv_i8.c (neon): int8 depthwise Conv (group = input channels, one input channel per
 * group, any depth multiplier; weights in layout 0, [O][1][kernel]) on arm64, any kernel,
 * stride, dilation and padding, 1 to 3 spatial axes. No scratch.
 *
 * Arithmetic: REF's, acc = bias + sum over the taps inside the input of (x - zp_in) * w, in
 * int32 (the check bounds |bias| + K * 255 * 127 < 2^31, so every partial sum and the total
 * fit), then the requantisation rule (exact, vectorised as in i8_neon.h) or float_out.
 *
 * Per output row of a channel, the columns whose every tap, and every byte the vector load of
 * 8 outputs reads, lie inside the input row go 8 at a time: per tap one load (stride 1: 8
 * bytes; stride 2: 16 bytes de-interleaved), x - zp_in widened to int16 (vsubl), then
 * multiply-accumulate by the tap's weight into two int32x4 (smlal by scalar); the last chunk
 * overlaps the previous one rather than going scalar (it rewrites the same bytes). The border
 * columns (padding), rows narrower than 8 and strides above 2 take the scalar loop. Threads
 * split the (image, channel) planes.
 */
#include "i8_neon.h"

#if DSE_ARCH_ARM64
#include <arm_neon.h>

int dse__check_i8_dwconv(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__check_i8_conv(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]];
    if (w->layout != 0 || w->dims[1] != 1 || dse__attr_int(n, DSE_A_group, 1) != (int64_t)x->dims[1]) {
        DSE_WHY(why, I8_NEON_NOT_DEPTHWISE);
        return 1;
    }
    size_t K = 1;
    for (unsigned d = 2; d < w->rank; d++) K *= w->dims[d];
    if (!dse_i8_neon_bias_ok(m, n, w->dims[0], K, why)) return 1;
    why->scratch = 0;
    return 0;
}

typedef struct neon_dw_args {
    const int8_t *x, *w;
    const int32_t *bias;
    void *y;
    const dse_i8_out *o;
    const dse_i8_geom *g;
    size_t C, O, mult;
    long long vlo, vmax;   /* first and last start column of a vector chunk (vmax < vlo: none) */
} neon_dw_args;

/* 8 outputs ow0 .. ow0 + 7 of row (od, oh): accumulators, bias added */
static inline __attribute__((always_inline)) void neon_dw_chunk(const neon_dw_args *a, const int8_t *xc,
                                                                const int8_t *wk, long long od, long long oh,
                                                                long long ow0, int32_t bias, int8x8_t zp8,
                                                                int32x4_t *r0, int32x4_t *r1, const int S) {
    const dse_i8_geom *g = a->g;
    int32x4_t a0 = vdupq_n_s32(bias), a1 = a0;
    for (long long kd = 0; kd < g->k[0]; kd++) {
        const long long id = od * g->s[0] + kd * g->d[0] - g->pb[0];
        if (id < 0 || id >= g->in[0]) continue;
        for (long long kh = 0; kh < g->k[1]; kh++) {
            const long long ih = oh * g->s[1] + kh * g->d[1] - g->pb[1];
            if (ih < 0 || ih >= g->in[1]) continue;
            const int8_t *xs = xc + (id * g->in[1] + ih) * g->in[2] + ow0 * S - g->pb[2];
            const int8_t *wr = wk + (kd * g->k[1] + kh) * g->k[2];
            for (long long kw = 0; kw < g->k[2]; kw++) {
                const int8_t *p = xs + kw * g->d[2];
                const int8x8_t xv = S == 1 ? vld1_s8(p) : vld2_s8(p).val[0];
                const int16x8_t d = vsubl_s8(xv, zp8);
                a0 = vmlal_n_s16(a0, vget_low_s16(d), wr[kw]);
                a1 = vmlal_high_n_s16(a1, d, wr[kw]);
            }
        }
    }
    *r0 = a0, *r1 = a1;
}

/* outputs ow0 .. ow1 - 1 of row (od, oh), one at a time (REF's sum over the taps inside) */
static void neon_dw_scalar(const neon_dw_args *a, const int8_t *xc, const int8_t *wk, long long od, long long oh,
                           long long ow0, long long ow1, size_t row, size_t oc) {
    const dse_i8_geom *g = a->g;
    const long long IW = g->in[2], KW = g->k[2];
    const int zp = a->o->zp_in;
    for (long long ow = ow0; ow < ow1; ow++) {
        int32_t acc = a->bias[oc];
        for (long long kd = 0; kd < g->k[0]; kd++) {
            const long long id = od * g->s[0] + kd * g->d[0] - g->pb[0];
            if (id < 0 || id >= g->in[0]) continue;
            for (long long kh = 0; kh < g->k[1]; kh++) {
                const long long ih = oh * g->s[1] + kh * g->d[1] - g->pb[1];
                if (ih < 0 || ih >= g->in[1]) continue;
                const int8_t *xr = xc + (id * g->in[1] + ih) * IW;
                const int8_t *wr = wk + (kd * g->k[1] + kh) * KW;
                for (long long kw = 0; kw < KW; kw++) {
                    const long long iw = ow * g->s[2] + kw * g->d[2] - g->pb[2];
                    if (iw >= 0 && iw < IW) acc += ((int32_t)xr[iw] - zp) * wr[kw];
                }
            }
        }
        dse_i8_store(a->o, a->y, row + (size_t)ow, oc, acc);
    }
}

static void neon_dw_plane(const neon_dw_args *a, size_t b, size_t oc) {
    const dse_i8_geom *g = a->g;
    const dse_i8_out *o = a->o;
    const long long OD = g->out[0], OH = g->out[1], OW = g->out[2], IW = g->in[2], KW = g->k[2];
    const long long sw = g->s[2];
    const int8_t *xc = a->x + (b * a->C + oc / a->mult) * (size_t)(g->in[0] * g->in[1] * IW);
    const int8_t *wk = a->w + oc * (size_t)(g->k[0] * g->k[1] * KW);
    const int32_t bias = a->bias[oc];
    const size_t plane = (b * a->O + oc) * (size_t)(OD * OH * OW);
    const int8x8_t zp8 = vdup_n_s8((int8_t)o->zp_in);
    /* output stage of this channel, broadcast */
    const int32x4_t M = vdupq_n_s32(o->float_out ? 0 : o->M[oc]);
    const int64x2_t sh1 = vdupq_n_s64(o->float_out ? -1 : -(int64_t)o->shift[oc]);
    const int64x2_t sh[4] = {sh1, sh1, sh1, sh1};
    const int32x4_t zpo = vdupq_n_s32(o->zp_out), lo = vdupq_n_s32(o->qmin), hi = vdupq_n_s32(o->qmax);
    const float32x4_t sc = vdupq_n_f32(o->float_out ? o->scale[oc] : 0.0f);
    const float32x4_t flo = vdupq_n_f32(o->act_min), fhi = vdupq_n_f32(o->act_max);
    for (long long od = 0; od < OD; od++)
        for (long long oh = 0; oh < OH; oh++) {
            const size_t row = plane + (size_t)((od * OH + oh) * OW);
            const long long vend = a->vmax >= a->vlo ? a->vmax + 8 : 0;   /* vector columns [vlo, vend) */
            if (!vend) {
                neon_dw_scalar(a, xc, wk, od, oh, 0, OW, row, oc);
                continue;
            }
            neon_dw_scalar(a, xc, wk, od, oh, 0, a->vlo, row, oc);
            for (long long ow = a->vlo; ow < vend; ow += 8) {
                const long long s = ow + 8 <= vend ? ow : vend - 8;   /* the last chunk may overlap */
                int32x4_t r0, r1;
                if (sw == 1) neon_dw_chunk(a, xc, wk, od, oh, s, bias, zp8, &r0, &r1, 1);
                else neon_dw_chunk(a, xc, wk, od, oh, s, bias, zp8, &r0, &r1, 2);
                if (o->float_out) {
                    float32x4_t v0 = vmulq_f32(vcvtq_f32_s32(r0), sc), v1 = vmulq_f32(vcvtq_f32_s32(r1), sc);
                    v0 = vbslq_f32(vcltq_f32(v0, flo), flo, v0), v1 = vbslq_f32(vcltq_f32(v1, flo), flo, v1);
                    v0 = vbslq_f32(vcgtq_f32(v0, fhi), fhi, v0), v1 = vbslq_f32(vcgtq_f32(v1, fhi), fhi, v1);
                    float *yf = (float *)a->y + row + (size_t)s;
                    vst1q_f32(yf, v0), vst1q_f32(yf + 4, v1);
                } else {
                    vst1_s8((int8_t *)a->y + row + (size_t)s, dse_i8_neon_rq8(r0, r1, M, M, sh, zpo, lo, hi));
                }
            }
            neon_dw_scalar(a, xc, wk, od, oh, vend, OW, row, oc);
        }
}

static void neon_dw_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const neon_dw_args *a = (const neon_dw_args *)arg;
    for (size_t t = begin; t < end; t++) neon_dw_plane(a, t / a->O, t % a->O);
}

void dse_i8_dwconv__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    const size_t C = xt->dims[1], O = wt->dims[0];
    if (!C || !O || !xt->dims[0] || !yt->numel) return;
    neon_dw_args a = {dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), dse__data(m, arena, n->in[2]),
                      dse__data(m, arena, n->out[0]), &o, &g, C, O, O / C, 0, -1};
    const long long sw = g.s[2], IW = g.in[2], OW = g.out[2];
    if (sw <= 2) {
        /* chunk start s: s * sw - pb >= 0 and s * sw + (KW - 1) * dw - pb + (8 * sw bytes loaded) <= IW, and s + 8 <= OW */
        const long long span = IW - 8 * sw - (g.k[2] - 1) * g.d[2] + g.pb[2];
        a.vlo = (g.pb[2] + sw - 1) / sw;
        a.vmax = span < 0 ? -1 : span / sw;
        if (a.vmax > OW - 8) a.vmax = OW - 8;
    }
    dse__parallel(cx, xt->dims[0] * O, 1, neon_dw_task, &a);
}

#endif
