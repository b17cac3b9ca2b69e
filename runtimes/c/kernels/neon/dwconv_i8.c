/* dwconv_i8.c (neon): int8 depthwise Conv (group = input channels, one input channel per
 * group, any depth multiplier; weights in layout 0, [O][1][kernel]) on arm64, any kernel,
 * stride, dilation and padding, 1 to 3 spatial axes. No scratch (stack buffers only).
 *
 * Arithmetic: the same integer as REF's bias + sum over the taps inside the input of
 * (x - zp_in) * w (docs/quant-arith.md §4). The input is read zp_in-padded: a tap in the
 * padding then adds zp_in * w, which the folded bias - zp_in * (sum of the weights of the taps
 * taken) takes back, so
 *     acc = sum over the taps taken of x_padded * w + bias - zp_in * sum of their w
 * in int32 (the check bounds |bias| + K * 255 * 127 < 2^31; |x * w| <= 128 * 127, so two
 * products fit int16: smull + smlal per pair of taps, then saddw into int32; wrapping vector
 * adds give the true value, which fits). Then the requantisation rule (exact forms in
 * i8_neon.h) or float_out.
 *
 * Padding: when the zp-padded plane fits 16 KiB it is built once per (image, channel) on the
 * stack and every tap is taken (3x3 kernels with stride 1 or 2 then run a loop of their own
 * with the nine weights and the output stage in registers); else, per output row, the tap rows
 * inside the input are listed (the others add nothing) and copied, per segment of at most 128
 * output columns, into zp-padded windows. Eight output columns per step (stride 1: 8 bytes per
 * tap; stride 2: 16 de-interleaved); the last step of a row of >= 8 overlaps the previous one
 * (the same bytes again), a row of < 8 computes 8 and stores its own. Strides above 2, windows
 * wider than 64 bytes per step or more than 16 tap rows take a scalar loop (REF's sum).
 * Threads split the (image, channel) planes.
 * armv7 compiles this file through kernels/neon32/dwconv_i8.c (DSE_NEON32_UNIT; i8_neon.h).
 */
#include "i8_neon.h"

#if (DSE_ARCH_ARM64 && !defined(DSE_NEON32_UNIT)) || (DSE_ARCH_ARM32 && defined(DSE_NEON32_UNIT))
#include <arm_neon.h>

int dse__check_i8_dwconv(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_ref_check_conv(m, n, why)) return 1;
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

#define NEON_DW_AI DSE_TARGET_NEON static inline __attribute__((always_inline))
#define NEON_DW_SPAN 64   /* input bytes one 8-column step reads per tap row, at most */
#define NEON_DW_ROWS 16   /* tap rows of the vector path, at most */
#define NEON_DW_SEG 128   /* output columns per window segment */
#define NEON_DW_WIN ((NEON_DW_SEG + 8) * 2 + NEON_DW_SPAN)   /* bytes of one padded window row */
#define NEON_DW_PLANE 16384   /* bytes of a zp-padded plane copy, at most (on the stack) */

typedef struct neon_dw_args {
    const int8_t *x, *w;
    const int32_t *bias;
    void *y;
    const dse_i8_out *o;
    const dse_i8_geom *g;
    size_t C, O, mult;
    int vec;   /* 1: the vector path (stride 1 or 2, step window <= NEON_DW_SPAN, <= NEON_DW_ROWS rows) */
    const int8_t *xend;   /* the end of x: copies never read past it */
} neon_dw_args;

/* one pair (or the last single) of products into the int32 accumulators */
#define NEON_DW_FLUSH(p) (a0 = vaddw_s16(a0, vget_low_s16(p)), a1 = vaddw_high_s16(a1, p))

/* 8 outputs: ntap padded rows win[t] (the step's first column at offset off),
 * weights wrs[t][0..KW); acc = sum x * w + fb. KWC: KW as a constant (3, dilation 1), or 0. */
NEON_DW_AI void neon_dw_step(const int8_t *const *win, const int8_t *const *wrs, int ntap, long long off,
                             long long KWr, long long dwr, int32_t fb, int32x4_t *r0, int32x4_t *r1, const int S,
                             const int KWC) {
    const long long KW = KWC ? KWC : KWr, dw = KWC ? 1 : dwr;
    int32x4_t a0 = vdupq_n_s32(fb), a1 = a0;
#define NEON_DW_X(t, kw) (S == 1 ? vld1_s8(win[t] + off + (kw) * dw) : vld2_s8(win[t] + off + (kw) * dw).val[0])
#define NEON_DW_W(t, kw) vld1_dup_s8(wrs[t] + (kw))
    if (KWC == 3) {
        int t = 0;
        for (; t + 1 < ntap; t += 2)   /* two rows: pairs (row t, row t + 1) per column of the kernel */
            _Pragma("GCC unroll 3") for (int kw = 0; kw < 3; kw++) {
                const int16x8_t p = vmlal_s8(vmull_s8(NEON_DW_X(t, kw), NEON_DW_W(t, kw)), NEON_DW_X(t + 1, kw), NEON_DW_W(t + 1, kw));
                NEON_DW_FLUSH(p);
            }
        if (t < ntap) {
            const int16x8_t p = vmlal_s8(vmull_s8(NEON_DW_X(t, 0), NEON_DW_W(t, 0)), NEON_DW_X(t, 1), NEON_DW_W(t, 1));
            const int16x8_t q = vmull_s8(NEON_DW_X(t, 2), NEON_DW_W(t, 2));
            NEON_DW_FLUSH(p);
            NEON_DW_FLUSH(q);
        }
    } else {
        for (int t = 0; t < ntap; t++) {
            long long kw = 0;
            _Pragma("GCC unroll 4") for (; kw + 1 < KW; kw += 2) {
                const int16x8_t p = vmlal_s8(vmull_s8(NEON_DW_X(t, kw), NEON_DW_W(t, kw)), NEON_DW_X(t, kw + 1), NEON_DW_W(t, kw + 1));
                NEON_DW_FLUSH(p);
            }
            if (kw < KW) {
                const int16x8_t p = vmull_s8(NEON_DW_X(t, kw), NEON_DW_W(t, kw));
                NEON_DW_FLUSH(p);
            }
        }
    }
#undef NEON_DW_X
#undef NEON_DW_W
    *r0 = a0, *r1 = a1;
}

/* outputs ow0 .. ow1 - 1 of row (od, oh), one at a time (REF's sum over the taps inside). Scalar
 * code, and on armv7 neither NEON-enabled nor inlined into NEON code: float_out's arithmetic
 * (dse_i8_store) must not become NEON float arithmetic there (i8_neon.h, dse_i8_neon_fout) */
static DSE_NOINLINE void neon_dw_scalar(const neon_dw_args *a, const int8_t *xc, const int8_t *wk, long long od,
                                        long long oh, long long ow0, long long ow1, size_t row, size_t oc) {
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

/* the output stage of one channel, and one step's outputs through it */
typedef struct neon_dw_out {
    dse_i8_neon_rq rq;
    float32x4_t sc, lo, hi;
    int float_out;
} neon_dw_out;

NEON_DW_AI void neon_dw_store(const neon_dw_out *q, int32x4_t r0, int32x4_t r1, void *y, size_t at, size_t nst) {
    if (q->float_out) {
        dse_i8_neon_fout((float *)y + at, r0, r1, q->sc, q->sc, q->lo, q->hi, nst);
    } else {
        const int8x8_t v = dse_i8_neon_rq8(&q->rq, r0, r1);
        int8_t *y8 = (int8_t *)y + at;
        if (nst == 8) vst1_s8(y8, v);
        else dse_i8_neon_st_part(y8, v, nst);
    }
}

/* the steps of output columns [c0, c1) of one row: step s reads base[t] + (s - smin) * S */
NEON_DW_AI void neon_dw_steps(const int8_t *const *base, const int8_t *const *wrs, int ntap, long long c0,
                              long long c1, long long smin, long long OW, long long KW, long long dw, int32_t fb,
                              const neon_dw_out *q, void *y, size_t row, const int S, const int KWC) {
    const size_t nst = OW < 8 ? (size_t)OW : 8;
    for (long long s0 = c0; s0 < c1; s0 += 8) {
        /* the last step of a row of >= 8 overlaps the previous one (the same bytes again);
         * a row of < 8 computes 8 and stores its own */
        const long long s = s0 + 8 <= c1 || OW < 8 ? s0 : c1 - 8;
        int32x4_t r0, r1;
        neon_dw_step(base, wrs, ntap, (s - smin) * S, KW, dw, fb, &r0, &r1, S, KWC);
        neon_dw_store(q, r0, r1, y, row + (size_t)s, nst);
    }
}

/* The common case on its own: 3x3, dilation 1, the same stride 1 or 2 both ways, 2-D, the plane
 * zp-padded in buf (row pitch Wp): the nine weights and the output stage in registers, per step
 * nine loads, the products paired in int16. */
NEON_DW_AI void neon_dw_3x3(const int8_t *buf, long long Wp, long long OH, long long OW, const int8_t *wk, int32_t fb,
                            const neon_dw_out *qp, void *y, size_t plane, const int S) {
    const int8x8_t w0 = vdup_n_s8(wk[0]), w1 = vdup_n_s8(wk[1]), w2 = vdup_n_s8(wk[2]), w3 = vdup_n_s8(wk[3]);
    const int8x8_t w4 = vdup_n_s8(wk[4]), w5 = vdup_n_s8(wk[5]), w6 = vdup_n_s8(wk[6]), w7 = vdup_n_s8(wk[7]);
    const int8x8_t w8 = vdup_n_s8(wk[8]);
    const int32x4_t f = vdupq_n_s32(fb);
    const neon_dw_out q = *qp;
    const size_t nst = OW < 8 ? (size_t)OW : 8;
#define NEON_DW3_X(r, c) (S == 1 ? vld1_s8((r) + off + (c)) : vld2_s8((r) + off + (c)).val[0])
    for (long long oh = 0; oh < OH; oh++) {
        const int8_t *r0 = buf + oh * S * Wp, *r1 = r0 + Wp, *r2 = r1 + Wp;
        const size_t row = plane + (size_t)(oh * OW);
        for (long long s0 = 0; s0 < OW; s0 += 8) {
            const long long s = s0 + 8 <= OW || OW < 8 ? s0 : OW - 8, off = s * S;
            int16x8_t p = vmlal_s8(vmull_s8(NEON_DW3_X(r0, 0), w0), NEON_DW3_X(r0, 1), w1);
            int32x4_t a0 = vaddw_s16(f, vget_low_s16(p)), a1 = vaddw_high_s16(f, p);
            p = vmlal_s8(vmull_s8(NEON_DW3_X(r0, 2), w2), NEON_DW3_X(r1, 0), w3);
            a0 = vaddw_s16(a0, vget_low_s16(p)), a1 = vaddw_high_s16(a1, p);
            p = vmlal_s8(vmull_s8(NEON_DW3_X(r1, 1), w4), NEON_DW3_X(r1, 2), w5);
            a0 = vaddw_s16(a0, vget_low_s16(p)), a1 = vaddw_high_s16(a1, p);
            p = vmlal_s8(vmull_s8(NEON_DW3_X(r2, 0), w6), NEON_DW3_X(r2, 1), w7);
            a0 = vaddw_s16(a0, vget_low_s16(p)), a1 = vaddw_high_s16(a1, p);
            p = vmull_s8(NEON_DW3_X(r2, 2), w8);
            a0 = vaddw_s16(a0, vget_low_s16(p)), a1 = vaddw_high_s16(a1, p);
            neon_dw_store(&q, a0, a1, y, row + (size_t)s, nst);
        }
    }
#undef NEON_DW3_X
}

/* neon_dw_steps for this plane's stride (1, 2) and kernel width (3 with dilation 1, or any) */
#define NEON_DW_DISPATCH(...)                                         \
    do {                                                              \
        if (sw == 1 && k3) neon_dw_steps(__VA_ARGS__, 1, 3);          \
        else if (sw == 1) neon_dw_steps(__VA_ARGS__, 1, 0);           \
        else if (k3) neon_dw_steps(__VA_ARGS__, 2, 3);                \
        else neon_dw_steps(__VA_ARGS__, 2, 0);                        \
    } while (0)

DSE_TARGET_NEON static void neon_dw_plane(const neon_dw_args *a, size_t b, size_t oc) {
    const dse_i8_geom *g = a->g;
    const dse_i8_out *o = a->o;
    const long long OD = g->out[0], OH = g->out[1], OW = g->out[2], ID = g->in[0], IH = g->in[1], IW = g->in[2];
    const long long KD = g->k[0], KH = g->k[1], KW = g->k[2], dw = g->d[2], pw = g->pb[2], sw = g->s[2];
    const long long sd = g->s[0], sh = g->s[1], dd = g->d[0], dh = g->d[1], pd = g->pb[0], ph = g->pb[1];
    const int8_t *xc = a->x + (b * a->C + oc / a->mult) * (size_t)(ID * IH * IW);
    const int8_t *wk = a->w + oc * (size_t)(KD * KH * KW);
    const int32_t bias = a->bias[oc];
    const int zp = o->zp_in;
    const size_t plane = (b * a->O + oc) * (size_t)(OD * OH * OW);
    void *const y = a->y;
    if (!a->vec) {
        for (long long od = 0; od < OD; od++)
            for (long long oh = 0; oh < OH; oh++)
                neon_dw_scalar(a, xc, wk, od, oh, 0, OW, plane + (size_t)((od * OH + oh) * OW), oc);
        return;
    }
    const int k3 = KW == 3 && dw == 1;
    neon_dw_out q;
    {
        dse_i8_neon_rq_init1(&q.rq, o->float_out ? 0 : o->M[oc], o->float_out ? 62 : o->shift[oc], o->zp_out, o->qmin,
                             o->qmax);
        q.sc = vdupq_n_f32(o->float_out ? o->scale[oc] : 0.0f);
        q.lo = vdupq_n_f32(o->act_min), q.hi = vdupq_n_f32(o->act_max), q.float_out = o->float_out;
    }
    _Alignas(16) int8_t buf[NEON_DW_PLANE > NEON_DW_ROWS * NEON_DW_WIN ? NEON_DW_PLANE : NEON_DW_ROWS * NEON_DW_WIN];
    const int8_t *wrs[NEON_DW_ROWS], *base[NEON_DW_ROWS];
    /* the plane zp-padded once when it fits: every tap row then lies inside, at a fixed offset
     * from the output row's first (a step may read junk past a row's end: lanes not stored) */
    const long long IDp = ID + pd + g->pe[0], IHp = IH + ph + g->pe[1], Wp = IW + pw + g->pe[2] + 16;
    if (IDp * IHp * Wp + NEON_DW_SPAN <= NEON_DW_PLANE) {
        /* row by row with vector stores: padding rows zp; else zp, the input row (16 bytes at a
         * time while the loads stay inside x: the last store may run into the right padding),
         * then the right padding and the slack zp */
        const int8x16_t z = vdupq_n_s8((int8_t)zp);
        const long long IW16 = (IW + 15) / 16 * 16;
        int8_t *d = buf;
        for (long long id = -pd; id < IDp - pd; id++)
            for (long long ih = -ph; ih < IHp - ph; ih++, d += Wp) {
                if (id < 0 || id >= ID || ih < 0 || ih >= IH) {
                    for (long long j = 0; j < Wp; j += 16) vst1q_s8(d + j, z);
                    continue;
                }
                const int8_t *src = xc + (id * IH + ih) * IW;
                for (long long j = 0; j < pw || j == 0; j += 16) vst1q_s8(d + j, z);
                if (src + IW16 <= a->xend)
                    for (long long j = 0; j < IW; j += 16) vst1q_s8(d + pw + j, vld1q_s8(src + j));
                else
                    memcpy(d + pw, src, (size_t)IW);
                for (long long j = pw + IW; j < Wp; j += 16) vst1q_s8(d + j, z);
            }
        long long toff[NEON_DW_ROWS];
        int ntap = 0;
        int32_t wall = 0;   /* every tap adds: padding is zp */
        for (long long kd = 0; kd < KD; kd++)
            for (long long kh = 0; kh < KH; kh++, ntap++) {
                toff[ntap] = (kd * dd * IHp + kh * dh) * Wp, wrs[ntap] = wk + (kd * KH + kh) * KW;
                for (long long kw = 0; kw < KW; kw++) wall += wrs[ntap][kw];
            }
        const int32_t fb = (int32_t)((uint32_t)bias - (uint32_t)zp * (uint32_t)wall);
        if (KD == 1 && KH == 3 && k3 && dh == 1 && sh == sw && OD == 1) {
            if (sw == 1) neon_dw_3x3(buf, Wp, OH, OW, wk, fb, &q, y, plane, 1);
            else neon_dw_3x3(buf, Wp, OH, OW, wk, fb, &q, y, plane, 2);
            return;
        }
        for (long long od = 0; od < OD; od++)
            for (long long oh = 0; oh < OH; oh++) {
                const int8_t *r0 = buf + (od * sd * IHp + oh * sh) * Wp;
                for (int t = 0; t < ntap; t++) base[t] = r0 + toff[t];
                const size_t row = plane + (size_t)((od * OH + oh) * OW);
                NEON_DW_DISPATCH(base, wrs, ntap, 0, OW, 0, OW, KW, dw, fb, &q, y, row);
            }
        return;
    }
    /* else per output row: the tap rows inside the input, and per segment of <= 128 output
     * columns, windows of them with zp_in outside the row */
    const long long span = 8 * sw + (KW - 1) * dw;   /* bytes one step reads per tap row */
    for (long long od = 0; od < OD; od++)
        for (long long oh = 0; oh < OH; oh++) {
            const size_t row = plane + (size_t)((od * OH + oh) * OW);
            const int8_t *rows[NEON_DW_ROWS];
            int ntap = 0;
            int32_t wsum = 0;   /* the listed rows' weights */
            for (long long kd = 0; kd < KD; kd++) {
                const long long id = od * sd + kd * dd - pd;
                if (id < 0 || id >= ID) continue;
                for (long long kh = 0; kh < KH; kh++) {
                    const long long ih = oh * sh + kh * dh - ph;
                    if (ih < 0 || ih >= IH) continue;
                    rows[ntap] = xc + (id * IH + ih) * IW, wrs[ntap] = wk + (kd * KH + kh) * KW;
                    base[ntap] = buf + ntap * NEON_DW_WIN;
                    for (long long kw = 0; kw < KW; kw++) wsum += wrs[ntap][kw];
                    ntap++;
                }
            }
            const int32_t fb = (int32_t)((uint32_t)bias - (uint32_t)zp * (uint32_t)wsum);
            for (long long c0 = 0; c0 < OW; c0 += NEON_DW_SEG) {
                const long long c1 = OW - c0 < NEON_DW_SEG ? OW : c0 + NEON_DW_SEG;
                /* steps start at c0, c0 + 8, ...; the last at c1 - 8 (it may reach back into the
                 * previous segment), at 0 for a row of < 8 */
                const long long smin = c1 - c0 >= 8 || OW < 8 ? c0 : c1 - 8, slast = OW < 8 ? 0 : c1 - 8;
                const long long w0 = smin * sw - pw, wn = (slast - smin) * sw + span;   /* input columns */
                const long long v0 = w0 < 0 ? -w0 : 0, v1 = IW - w0 < wn ? IW - w0 : wn;   /* inside: [v0, v1) */
                for (int t = 0; t < ntap; t++) {
                    int8_t *wt = buf + t * NEON_DW_WIN;
                    if (v0 > 0 || v1 < wn) memset(wt, zp, (size_t)wn);
                    if (v1 > v0) memcpy(wt + v0, rows[t] + w0 + v0, (size_t)(v1 - v0));
                }
                NEON_DW_DISPATCH(base, wrs, ntap, c0, c1, smin, OW, KW, dw, fb, &q, y, row);
            }
        }
}

DSE_TARGET_NEON static void neon_dw_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const neon_dw_args *a = (const neon_dw_args *)arg;
    for (size_t t = begin; t < end; t++) neon_dw_plane(a, t / a->O, t % a->O);
}

DSE_TARGET_NEON void dse_i8_dwconv__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    const size_t C = xt->dims[1], O = wt->dims[0];
    if (!C || !O || !xt->dims[0] || !yt->numel) return;
    const long long sw = g.s[2];
    neon_dw_args a = {dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), dse__data(m, arena, n->in[2]),
                      dse__data(m, arena, n->out[0]), &o, &g, C, O, O / C,
                      sw <= 2 && 8 * sw + (g.k[2] - 1) * g.d[2] <= NEON_DW_SPAN && g.k[0] * g.k[1] <= NEON_DW_ROWS, NULL};
    a.xend = a.x + xt->numel;
    dse__parallel(cx, xt->dims[0] * O, dse__grain(xt->dims[0] * O, (uint64_t)yt->numel * (uint64_t)(g.k[0] * g.k[1] * g.k[2])), neon_dw_task, &a);
}

#endif
