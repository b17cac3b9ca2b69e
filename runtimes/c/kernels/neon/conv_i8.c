/* conv_i8.c (neon): int8 Conv with group 1 and packed weights (layout 1, W[O][C*kernel]) on
 * arm64, any kernel, stride, dilation, padding, 1 to 3 spatial axes; the baseline NEON variant
 * and the driver the dotprod variant shares (arithmetic: i8_neon.h).
 *
 * Per image, the output pixels go in tiles. A tile's im2col matrix (per output pixel, the input
 * values of its taps in W's (c, kd, kh, kw) order, zp_in where a tap falls in the padding) is
 * built in the worker's scratch as a panel in W's own N8K4 layout (per 8 pixels and 4 k, 32
 * bytes: pixel-major, k fastest; zeros past K): four k-rows along the pixels at a time (copies
 * of input row segments; for a 1x1 stride-1 unpadded Conv, x's channel rows themselves), then
 * interleaved with st4. The conv microkernel (dse_i8_mkc_fn) multiplies an 8-pixel panel block
 * with an 8-channel weight block, lanes = pixels, so each channel's 8 outputs are contiguous in
 * the NCHW output: requantised with that channel's multiplier and stored as they are. Channel
 * blocks outermost within a tile (the weight block stays in L1, the panel, at most 96 KiB, in
 * L2). Tiles: a multiple of 8 pixels, at most 256, ceil(K/4)*4 bytes each (within the plan's
 * 2 * K4 * min(P, 256) + 4096 bytes).
 * Images of fewer than 8 output pixels go through the GEMM path instead (pixel rows of K16
 * bytes x the channel-lane microkernel, gemm_i8.c), which wastes no lanes on them.
 * Threads split (image, tile) pairs; each uses its own scratch.
 * armv7 compiles this file through kernels/neon32/conv_i8.c (DSE_NEON32_UNIT; i8_neon.h).
 */
#include "i8_neon.h"

#if (DSE_ARCH_ARM64 && !defined(DSE_NEON32_UNIT)) || (DSE_ARCH_ARM32 && defined(DSE_NEON32_UNIT))
#include <arm_neon.h>

#define NEON_CONV_TILE_BYTES ((size_t)96 * 1024)

/* The scratch a Conv with P output pixels per image and K products per output uses given
 * scratch_size bytes of scratch: P >= 8: a panel of T pixels (a multiple of 8) x K4 bytes;
 * P < 8: P rows of K16 bytes; 0 when that does not fit. */
static size_t neon_conv_scratch(size_t P, size_t K, size_t scratch_size) {
    const size_t K4 = (K + 3) / 4 * 4, K16 = (K + 15) / 16 * 16;
    if (P < 8) return P * K16 <= scratch_size ? P * K16 : 0;
    size_t T = NEON_CONV_TILE_BYTES / K4;
    T = T < 8 ? 8 : T > 256 ? 256 : T / 8 * 8;
    if (T > (P + 7) / 8 * 8) T = (P + 7) / 8 * 8;
    if (T * K4 > scratch_size) T = scratch_size / K4 / 8 * 8;
    return T * K4;
}

int dse__check_i8_conv_packed(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_ref_check_conv(m, n, why)) return 1;
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = w->dims[1], P = 1;
    for (unsigned d = 2; d < w->rank; d++) K *= w->dims[d], P *= y->dims[d];
    if (dse__attr_int(n, DSE_A_group, 1) != 1) { DSE_WHYF(why, I8_NEON_NEEDS_PACKED_WEIGHTS, NULL, 1, 0, 0, 0); return 1; }
    if (dse_i8_neon_packed_operands(m, n, 1, w->dims[0], K, why)) return 1;
    const size_t used = neon_conv_scratch(P, K, m->scratch_size);
    if (!used && P) {
        DSE_WHYF(why, I8_NEON_SCRATCH_TOO_SMALL, NULL, P < 8 ? P * ((K + 15) / 16 * 16) : 8 * ((K + 3) / 4 * 4),
                 m->scratch_size, 0, 0);
        return 1;
    }
    why->scratch = used;   /* why->scratch_plan: the REF check's, dse_i8_gemm_scratch_plan(K, P) */
    return 0;
}

typedef struct neon_conv_args {
    dse_i8_gemm_job jb;        /* x, rows, ybase are set per tile */
    const int8_t *x;
    const dse_i8_geom *g;
    const dse_ctx *cx;
    size_t C, P, T, ntiles, K16, img_in, img_out;
    const int8_t *xend;   /* the end of x (copies never read past it) */
    int direct;           /* 1x1, stride 1, no padding: the k-rows are x's channel rows */
    dse_i8_mkc_fn mkc;
} neon_conv_args;

#define NEON_CONV_SLACK 32   /* bytes a k-row copy may write past its end */

/* k-rows k0 .. k0 + nr - 1 (nr <= NEON_CONV_RUN), which share (c, kd, kh) (consecutive kw),
 * of the tile's im2col matrix: for output pixels p0 .. p0 + tn - 1 of image xb, the input
 * value at each tap (zp where it falls in the padding) -> dst[i][0 .. tn), writing up to
 * NEON_CONV_SLACK bytes past it. Per output-row segment the input row is found once for the
 * run; its pieces are copied 16 bytes at a time (stride 2: 32 de-interleaved) while the loads
 * stay inside x (before xend): a load may read past the piece, and the copy may write past it,
 * into bytes written next. */
#define NEON_CONV_RUN 12
DSE_TARGET_NEON static void neon_conv_krows(const int8_t *xb, const int8_t *xend, const dse_i8_geom *g, size_t k0,
                                            int nr, size_t p0, size_t tn, int8_t zp, int8_t *const *dst) {
    const long long KD = g->k[0], KH = g->k[1], KW = g->k[2], KS = KD * KH * KW;
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2];
    const long long sd = g->s[0], sh = g->s[1], dd = g->d[0], dh = g->d[1], pd = g->pb[0], ph = g->pb[1];
    const long long c = (long long)k0 / KS, r = (long long)k0 % KS, kd = r / (KH * KW), kh = r / KW % KH, kw0 = r % KW;
    const long long sw = g->s[2];
    long long off[NEON_CONV_RUN], lo[NEON_CONV_RUN], hi[NEON_CONV_RUN];
    for (int i = 0; i < nr; i++) {
        off[i] = (kw0 + i) * g->d[2] - g->pb[2];   /* iw = ow * sw + off */
        /* the output columns whose tap is inside the row: [lo, hi) */
        lo[i] = off[i] >= 0 ? 0 : (-off[i] + sw - 1) / sw, hi[i] = IW - 1 - off[i] < 0 ? 0 : (IW - 1 - off[i]) / sw + 1;
    }
    const int8_t *xc = xb + c * ID * IH * IW;
    const int8x16_t z = vdupq_n_s8(zp);
    long long ow = (long long)(p0 % (size_t)OW), t = (long long)(p0 / (size_t)OW), oh = t % OH, od = t / OH;
    long long q = 0;
    while (q < (long long)tn) {
        const long long len = OW - ow < (long long)tn - q ? OW - ow : (long long)tn - q, e0 = ow + len;
        const long long id = od * sd + kd * dd - pd, ih = oh * sh + kh * dh - ph;
        if (id < 0 || id >= ID || ih < 0 || ih >= IH) {
            for (int i = 0; i < nr; i++)
                for (long long j = 0; j < len; j += 16) vst1q_s8(dst[i] + q + j, z);
        } else {
            const int8_t *xr = xc + (id * IH + ih) * IW;
            for (int i = 0; i < nr; i++) {
                int8_t *d = dst[i] + q;
                const long long a = lo[i] < ow ? ow : lo[i] > e0 ? e0 : lo[i], e = hi[i] < a ? a : hi[i] > e0 ? e0 : hi[i];
                for (long long j = 0; j < a - ow; j += 16) vst1q_s8(d + j, z);   /* padding: zp (writing past it) */
                int8_t *dd8 = d + (a - ow);
                const int8_t *src = xr + a * sw + off[i];
                long long n = e - a, u = 0;
                if (sw == 1) {
                    for (; u < n && src + u + 16 <= xend; u += 16) vst1q_s8(dd8 + u, vld1q_s8(src + u));
                    for (; u < n; u++) dd8[u] = src[u];
                } else if (sw == 2) {
                    for (; u < n && src + 2 * u + 32 <= xend; u += 16) vst1q_s8(dd8 + u, vld2q_s8(src + 2 * u).val[0]);
                    for (; u < n; u++) dd8[u] = src[2 * u];
                } else {
                    for (; u < n; u++) dd8[u] = src[u * sw];
                }
                for (long long j = e - ow; j < len; j += 16) vst1q_s8(d + j, z);
            }
        }
        q += len;
        ow = 0;
        if (++oh == OH) oh = 0, od++;
    }
}

/* the im2col rows of pixels p0 .. p0 + tn - 1 (tn <= 256) of image xb: rows[q * K16 + k] */
DSE_TARGET_NEON static void neon_conv_im2col(const int8_t *xb, const int8_t *xend, const dse_i8_geom *g, size_t K,
                                             size_t K16, size_t p0, size_t tn, int8_t zp, int8_t *rows) {
    int8_t tmp[8][256 + 8 + NEON_CONV_SLACK];
    const size_t tp = (tn + 7) / 8 * 8;
    for (size_t kc = 0; kc < K16; kc += 8) {
        for (size_t r = 0; r < 8; r++) {
            if (kc + r < K) {
                int8_t *d = tmp[r];
                neon_conv_krows(xb, xend, g, kc + r, 1, p0, tn, zp, &d);
            }
            else memset(tmp[r], 0, tn);
            memset(tmp[r] + tn, 0, tp - tn);
        }
        for (size_t q = 0; q < tn; q += 8)
            dse_i8_neon_tr8x8(&tmp[0][q], sizeof tmp[0], rows + q * K16 + kc, K16, (int)(tn - q < 8 ? tn - q : 8));
    }
}

/* The same rows for images of fewer than 8 output pixels, built by rows: per pixel, each (c, kd, kh)'s KW
 * taps (zp where a tap falls in the padding), 0 for k in [K, K16). neon_conv_im2col's set-up per k-row
 * (divisions to find the tap and the first pixel) cost more than these tiles' bytes (silero's 1-D convs
 * over 16 frames of 1-4 pixels: the AVX2 variant's measurement); the bytes are the same. */
static void neon_conv_im2row(const int8_t *xb, const dse_i8_geom *g, size_t C, size_t K, size_t K16, size_t p0,
                             size_t tn, int8_t zp, int8_t *rows) {
    for (size_t j = 0; j < tn; j++) {
        dse_i8_im2row_pixel(xb, g, C, p0 + j, zp, rows + j * K16);
        memset(rows + j * K16 + K, 0, K16 - K);
    }
}

/* 1x1 kernel, stride 1, no padding: the im2col rows are the transpose of x[c][p0 .. p0 + tn) */
DSE_TARGET_NEON static void neon_conv_im2col_1x1(const int8_t *xb, size_t C, size_t P, size_t K16, size_t p0,
                                                 size_t tn, int8_t *rows) {
    for (size_t kc = 0; kc < K16; kc += 8)
        for (size_t q = 0; q < tn; q += 8) {
            const size_t nq = tn - q < 8 ? tn - q : 8;
            const int8_t *src = xb + kc * P + p0 + q;
            if (nq == 8 && kc + 8 <= C) {
                dse_i8_neon_tr8x8(src, P, rows + q * K16 + kc, K16, 8);
                continue;
            }
            int8_t t[8][8] = {{0}};   /* the tile's edge: channels past C and pixels past tn are 0 */
            for (size_t r = 0; r < 8 && kc + r < C; r++) memcpy(t[r], src + r * P, nq);
            dse_i8_neon_tr8x8(&t[0][0], 8, rows + q * K16 + kc, K16, (int)nq);
        }
}

/* -- the panel path (P >= 8) ------------------------------------------------------------------- */

/* the tile's panel: pixels p0 .. p0 + tn - 1 of image xb, per 8 pixels ceil(K/4) groups of 32
 * bytes (8 pixels x 4 k), pixels past tn and k past K zero */
DSE_TARGET_NEON static void neon_conv_panel(const neon_conv_args *a, const int8_t *xb, size_t p0, size_t tn,
                                            int8_t *panel) {
    const dse_i8_geom *g = a->g;
    const size_t K = a->jb.K, K4 = (K + 3) / 4 * 4, tp = (tn + 7) / 8 * 8, KW = (size_t)g->k[2];
    const int8_t zp = (int8_t)a->jb.o->zp_in;
    /* k-rows come in runs sharing (c, kd, kh) (built together: one pass over the segments) into
     * a ring of 16 rows, and leave it four at a time */
    int8_t ring[16][256 + 8 + NEON_CONV_SLACK];
    size_t head = 0, count = 0, k = 0;
    for (size_t kb = 0; kb < K4 / 4; kb++) {
        const int8_t *r[4];
        if (a->direct) {
            for (size_t i = 0; i < 4; i++, k++) {
                if (k < K && tp == tn) { r[i] = xb + k * a->P + p0; continue; }   /* x's channel row, in place */
                if (k < K) memcpy(ring[i], xb + k * a->P + p0, tn);
                else memset(ring[i], 0, tn);
                memset(ring[i] + tn, 0, tp - tn);
                r[i] = ring[i];
            }
        } else {
            while (count < 4) {
                int8_t *d[NEON_CONV_RUN];
                size_t nr = 1;
                if (k < K) {
                    const size_t left = KW - k % KW;   /* k-rows left in this (c, kd, kh) */
                    nr = left < K - k ? left : K - k;
                    if (nr > 16 - count) nr = 16 - count;
                    if (nr > NEON_CONV_RUN) nr = NEON_CONV_RUN;
                }
                for (size_t i = 0; i < nr; i++) d[i] = ring[(head + count + i) % 16];
                if (k < K) neon_conv_krows(xb, a->xend, g, k, (int)nr, p0, tn, zp, d);
                else memset(d[0], 0, tn);
                for (size_t i = 0; i < nr; i++) memset(d[i] + tn, 0, tp - tn);
                k += nr, count += nr;
            }
            for (size_t i = 0; i < 4; i++) r[i] = ring[(head + i) % 16];
            head = (head + 4) % 16, count -= 4;
        }
        int8_t *dst = panel + kb * 32;
        for (size_t q = 0; q < tp; q += 8, dst += 8 * K4) {
            const int8x8x4_t v = {{vld1_s8(r[0] + q), vld1_s8(r[1] + q), vld1_s8(r[2] + q), vld1_s8(r[3] + q)}};
            vst4_s8(dst, v);   /* pixel j: its 4 k at 4 j .. 4 j + 3 */
        }
    }
}


/* The baseline NEON conv microkernel: per half (channels 0-3, then 4-7) 16 accumulators; a
 * channel's 4 k broadcast (dup by lane) against 4 pixels x 4 k, products paired in int16
 * (smull + smlal over two k groups, |sum| <= 2 * 128 * 127), sadalp into int32. */
#define NEON_CONV_BC(v, l) vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(v), l))
#define NEON_CONV_PAIR(I)                                                                                   \
    do {                                                                                                    \
        const int8x16_t ba = NEON_CONV_BC(wa, I), bb = NEON_CONV_BC(wb, I);                                 \
        a##I##0 = vpadalq_s16(a##I##0, vmlal_s8(vmull_s8(vget_low_s8(xa0), vget_low_s8(ba)), vget_low_s8(xb0), vget_low_s8(bb))); \
        a##I##1 = vpadalq_s16(a##I##1, vmlal_high_s8(vmull_high_s8(xa0, ba), xb0, bb));                     \
        a##I##2 = vpadalq_s16(a##I##2, vmlal_s8(vmull_s8(vget_low_s8(xa1), vget_low_s8(ba)), vget_low_s8(xb1), vget_low_s8(bb))); \
        a##I##3 = vpadalq_s16(a##I##3, vmlal_high_s8(vmull_high_s8(xa1, ba), xb1, bb));                     \
    } while (0)
#define NEON_CONV_ONE(I)                                                                                    \
    do {                                                                                                    \
        const int8x16_t ba = NEON_CONV_BC(wa, I);                                                           \
        a##I##0 = vpadalq_s16(a##I##0, vmull_s8(vget_low_s8(xa0), vget_low_s8(ba)));                        \
        a##I##1 = vpadalq_s16(a##I##1, vmull_high_s8(xa0, ba));                                             \
        a##I##2 = vpadalq_s16(a##I##2, vmull_s8(vget_low_s8(xa1), vget_low_s8(ba)));                        \
        a##I##3 = vpadalq_s16(a##I##3, vmull_high_s8(xa1, ba));                                             \
    } while (0)
#define NEON_CONV_OUT(I)                                                                                    \
    do {                                                                                                    \
        if (!q) {                                                                                           \
            vst1q_s32(c + 8 * (4 * h + I), vpaddq_s32(a##I##0, a##I##1));                                   \
            vst1q_s32(c + 8 * (4 * h + I) + 4, vpaddq_s32(a##I##2, a##I##3));                               \
        } else {                                                                                            \
            const int32x4_t f_ = vdupq_n_s32(q->fb[4 * h + I]);                                             \
            const int32x4_t p0_ = vaddq_s32(vpaddq_s32(a##I##0, a##I##1), f_);                              \
            const int32x4_t p1_ = vaddq_s32(vpaddq_s32(a##I##2, a##I##3), f_);                              \
            if (h) DSE_I8_NEON_CQ_STORE(q, y, 4 + I, 1, I, p0_, p1_);                                      \
            else DSE_I8_NEON_CQ_STORE(q, y, I, 0, I, p0_, p1_);                                            \
        }                                                                                                   \
    } while (0)

DSE_TARGET_NEON void dse_i8_mkc__neon(const int8_t *xp, const int8_t *w, size_t nkb, int32_t *c,
                                      const dse_i8_neon_cq *q, int8_t *y) {
    for (int h = 0; h < 2; h++) {
        const int32x4_t z = vdupq_n_s32(0);
        int32x4_t a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
        int32x4_t a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
        const int8_t *x = xp, *wh = w + 16 * h;
        size_t kb = 0;
        for (; kb + 2 <= nkb; kb += 2, x += 64, wh += 64) {
            const int8x16_t xa0 = vld1q_s8(x), xa1 = vld1q_s8(x + 16), xb0 = vld1q_s8(x + 32), xb1 = vld1q_s8(x + 48);
            const int8x16_t wa = vld1q_s8(wh), wb = vld1q_s8(wh + 32);
            NEON_CONV_PAIR(0);
            NEON_CONV_PAIR(1);
            NEON_CONV_PAIR(2);
            NEON_CONV_PAIR(3);
        }
        if (kb < nkb) {
            const int8x16_t xa0 = vld1q_s8(x), xa1 = vld1q_s8(x + 16), wa = vld1q_s8(wh);
            NEON_CONV_ONE(0);
            NEON_CONV_ONE(1);
            NEON_CONV_ONE(2);
            NEON_CONV_ONE(3);
        }
        NEON_CONV_OUT(0);
        NEON_CONV_OUT(1);
        NEON_CONV_OUT(2);
        NEON_CONV_OUT(3);
    }
}

/* C[i][j] (8 channels x nq pixels) + folded bias through channel i's output stage to
 * y[yb + i * P + j] */
DSE_TARGET_NEON static void neon_conv_store(const dse_i8_out *o, const int32_t *fb, const dse_i8_neon_rq *rq,
                                            const float *sc, const int32_t *c, int nc, size_t nq, void *y, size_t yb,
                                            size_t P) {
    for (int i = 0; i < nc; i++) {
        const int32x4_t f = vdupq_n_s32(fb[i]);
        const int32x4_t a0 = vaddq_s32(vld1q_s32(c + 8 * i), f), a1 = vaddq_s32(vld1q_s32(c + 8 * i + 4), f);
        const size_t at = yb + (size_t)i * P;
        if (o->float_out) {
            const float32x4_t s = vdupq_n_f32(sc[i]);
            dse_i8_neon_fout((float *)y + at, a0, a1, s, s, vdupq_n_f32(o->act_min), vdupq_n_f32(o->act_max), nq);
        } else {
            const int8x8_t v = dse_i8_neon_rq8(&rq[i], a0, a1);
            int8_t *y8 = (int8_t *)y + at;
            if (nq == 8) vst1_s8(y8, v);
            else dse_i8_neon_st_part(y8, v, nq);
        }
    }
}

DSE_TARGET_NEON static void neon_conv_panel_tile(const neon_conv_args *a, int8_t *panel, size_t b, size_t p0,
                                                 size_t tn) {
    const dse_i8_gemm_job *jb = &a->jb;
    const dse_i8_out *o = jb->o;
    const size_t K4 = (jb->K + 3) / 4 * 4, R = jb->R;
    neon_conv_panel(a, a->x + b * a->img_in, p0, tn, panel);
    int32_t c[64], ws[8];
    dse_i8_neon_rq rq[8];
    dse_i8_neon_cq cq;
    float sc[8];
    for (size_t cb = 0; cb < (R + 7) / 8; cb++) {
        const int8_t *wb = jb->wp + cb * 8 * K4;
        const int nc = R - cb * 8 < 8 ? (int)(R - cb * 8) : 8;
        int fused = !o->float_out;   /* every channel's shift >= 32: the microkernel requantises */
        int32_t M[8] = {0}, S[8] = {0};
        dse_i8_neon_wsum8(wb, K4 / 4, ws);
        for (int i = 0; i < nc; i++) {
            const size_t ch = cb * 8 + (size_t)i;
            cq.fb[i] = (int32_t)((uint32_t)jb->bias[ch] - (uint32_t)o->zp_in * (uint32_t)ws[i]);   /* wrapping, see gemm_i8.c */
            if (o->float_out) {
                sc[i] = o->scale[ch];
                continue;
            }
            dse_i8_neon_rq_init1(&rq[i], o->M[ch], o->shift[ch], o->zp_out, o->qmin, o->qmax);
            fused &= o->shift[ch] >= 32;
            M[i] = o->M[ch], S[i] = 31 - o->shift[ch];
        }
        for (int i = nc; i < 8; i++) cq.fb[i] = 0;
        cq.M0 = vld1q_s32(M), cq.M1 = vld1q_s32(M + 4), cq.S0 = vld1q_s32(S), cq.S1 = vld1q_s32(S + 4);
        cq.zp = vdupq_n_s16((int16_t)o->zp_out), cq.lo = vdupq_n_s16((int16_t)o->qmin), cq.hi = vdupq_n_s16((int16_t)o->qmax);
        cq.nc = nc, cq.P = a->P;
        for (size_t q = 0; q < tn; q += 8) {
            const size_t yb = b * a->img_out + cb * 8 * a->P + p0 + q, nq = tn - q < 8 ? tn - q : 8;
            if (fused) {
                cq.nq = nq;
                a->mkc(panel + q * K4, wb, K4 / 4, NULL, &cq, (int8_t *)jb->y + yb);
                continue;
            }
            a->mkc(panel + q * K4, wb, K4 / 4, c, NULL, NULL);
            neon_conv_store(o, cq.fb, rq, sc, c, nc, nq, jb->y, yb, a->P);
        }
    }
}

DSE_TARGET_NEON static void neon_conv_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const neon_conv_args *a = (const neon_conv_args *)arg;
    int8_t *rows = (int8_t *)dse__worker_scratch(a->cx, worker);
    dse_i8_gemm_job jb = a->jb;
    for (size_t t = begin; t < end; t++) {
        const size_t b = t / a->ntiles, p0 = t % a->ntiles * a->T, tn = a->P - p0 < a->T ? a->P - p0 : a->T;
        if (a->mkc) { neon_conv_panel_tile(a, rows, b, p0, tn); continue; }
        const int8_t *xb = a->x + b * a->img_in;
        if (a->direct) neon_conv_im2col_1x1(xb, a->C, a->P, a->K16, p0, tn, rows);
        else if (tn < 8) neon_conv_im2row(xb, a->g, a->C, jb.K, a->K16, p0, tn, (int8_t)jb.o->zp_in, rows);
        else neon_conv_im2col(xb, a->xend, a->g, jb.K, a->K16, p0, tn, (int8_t)jb.o->zp_in, rows);
        jb.x = rows, jb.rows = tn, jb.ybase = b * a->img_out + p0;
        dse_i8_neon_gemm_blocks(&jb, 0, (jb.R + 7) / 8);
    }
}

DSE_TARGET_NEON void dse_i8_neon_conv_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                          dse_i8_mk_fn mk, dse_i8_mkc_fn mkc) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    const size_t C = xt->dims[1], R = wt->dims[0], K = C * (size_t)(g.k[0] * g.k[1] * g.k[2]), K16 = (K + 15) / 16 * 16;
    const size_t P = (size_t)(g.out[0] * g.out[1] * g.out[2]), K4 = (K + 3) / 4 * 4;
    const size_t T = P < 8 ? P : n->scratch / K4;   /* the check's choice (neon_conv_scratch) */
    if (!P || !R || !xt->dims[0] || !T) return;
    neon_conv_args a = {{mk, NULL, dse__data(m, arena, n->in[1]), 0, K, K16, R, 1, dse__data(m, arena, n->in[2]), &o,
                         dse__data(m, arena, n->out[0]), 0, P, 1},
                        dse__data(m, arena, n->in[0]), &g, cx, C, P, T, (P + T - 1) / T, K16,
                        C * (size_t)(g.in[0] * g.in[1] * g.in[2]), R * P, NULL, 1, P < 8 ? NULL : mkc};
    a.xend = a.x + xt->dims[0] * a.img_in;
    for (int j = 0; j < 3; j++) a.direct &= g.k[j] == 1 && g.s[j] == 1 && g.pb[j] == 0 && g.pe[j] == 0;
    dse__parallel(cx, xt->dims[0] * a.ntiles, dse__grain(xt->dims[0] * a.ntiles, (uint64_t)xt->dims[0] * P * K * R), neon_conv_task, &a);
}

DSE_TARGET_NEON void dse_i8_conv__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_conv_run(m, n, arena, cx, dse_i8_mk__neon, dse_i8_mkc__neon);
}

#endif
