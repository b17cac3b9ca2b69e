/* gemm_i8.c (neon): int8 Gemm and MatMul with packed constant weights on arm64 (baseline
 * Advanced SIMD), the microkernel of the baseline NEON variants and the GEMM driver that the
 * Conv variants and the dotprod variants share (arithmetic and layout: i8_neon.h).
 *
 * Gemm (transB 1: layout 1; transB 0: layout 2) and MatMul (layout 2): the microkernel reads
 * the rows of x in place (K contiguous bytes each; the last K % 16 bytes of a row are copied
 * to a zeroed 16-byte buffer, so nothing past the row is read) against one 8-channel block of
 * the packed weights. Channel blocks outermost within a tile of rows (the weight block stays
 * in L1 while the rows stream from L2); threads split the channel blocks. No scratch.
 * armv7 compiles this file through kernels/neon32/gemm_i8.c (DSE_NEON32_UNIT; i8_neon.h).
 */
#include "i8_neon.h"

#if (DSE_ARCH_ARM64 && !defined(DSE_NEON32_UNIT)) || (DSE_ARCH_ARM32 && defined(DSE_NEON32_UNIT))
#include <arm_neon.h>

#define NEON_GEMM_AI DSE_TARGET_NEON static inline __attribute__((always_inline))

/* -- microkernel (baseline NEON) ------------------------------------------------------------- */

/* the 4 bytes of x at p (one k group of one row) broadcast to every 32-bit lane: ld1r (AArch64
 * needs no alignment for it; armv7: neon_a32.h) */
#if DSE_ARCH_ARM32
#define NEON_GEMM_BC(p) vreinterpretq_s8_s32(dse_neon_ld4dup(p))
#else
#define NEON_GEMM_BC(p) vreinterpretq_s8_s32(vld1q_dup_s32((const int32_t *)(const void *)(p)))
#endif

/* two k groups (at byte offsets o0, o1 of x row J; weights wa* = group o0, wb* = group o1, *0
 * channels 0-3, *1 channels 4-7): products in int16 (two per lane: |sum| <= 2 * 128 * 127),
 * pairs added into int32 (aJ0 lanes: channel 0 k01, channel 0 k23, channel 1 k01, channel 1
 * k23; aJ1 channels 2-3, aJ2 4-5, aJ3 6-7). Named accumulators (not an array) and x broadcast
 * straight from memory: GCC keeps the 16 accumulators in registers. */
#define NEON_GEMM_PAIR(J, o0, o1)                                                                          \
    do {                                                                                                   \
        const int8x16_t xa = NEON_GEMM_BC(x##J + (o0)), xb = NEON_GEMM_BC(x##J + (o1));                    \
        a##J##0 = vpadalq_s16(a##J##0, vmlal_s8(vmull_s8(vget_low_s8(wa0), vget_low_s8(xa)), vget_low_s8(wb0), vget_low_s8(xb))); \
        a##J##1 = vpadalq_s16(a##J##1, vmlal_high_s8(vmull_high_s8(wa0, xa), wb0, xb));                   \
        a##J##2 = vpadalq_s16(a##J##2, vmlal_s8(vmull_s8(vget_low_s8(wa1), vget_low_s8(xa)), vget_low_s8(wb1), vget_low_s8(xb))); \
        a##J##3 = vpadalq_s16(a##J##3, vmlal_high_s8(vmull_high_s8(wa1, xa), wb1, xb));                   \
    } while (0)
#define NEON_GEMM_ONE(J, o0)                                                                               \
    do {                                                                                                   \
        const int8x16_t xa = NEON_GEMM_BC(x##J + (o0));                                                    \
        a##J##0 = vpadalq_s16(a##J##0, vmull_s8(vget_low_s8(wa0), vget_low_s8(xa)));                       \
        a##J##1 = vpadalq_s16(a##J##1, vmull_high_s8(wa0, xa));                                            \
        a##J##2 = vpadalq_s16(a##J##2, vmull_s8(vget_low_s8(wa1), vget_low_s8(xa)));                       \
        a##J##3 = vpadalq_s16(a##J##3, vmull_high_s8(wa1, xa));                                            \
    } while (0)
/* M(J, ...) for rows 0 .. NB-1 (NB is a constant: the others compile away) */
#define NEON_GEMM_ROWS(M, ...) \
    do { M(0, __VA_ARGS__); if (NB > 1) M(1, __VA_ARGS__); if (NB > 2) M(2, __VA_ARGS__); if (NB > 3) M(3, __VA_ARGS__); } while (0)
#define NEON_GEMM_TAILX(J, kf)                                                                             \
    do {                                                                                                   \
        x##J += (kf);                                                                                      \
        if (!xpad) memcpy(buf[J], x##J, rem), x##J = buf[J];                                               \
    } while (0)
#define NEON_GEMM_OUT(J, unused)                                                                           \
    do {                                                                                                   \
        vst1q_s32(c + 8 * J, vpaddq_s32(a##J##0, a##J##1));                                                \
        vst1q_s32(c + 8 * J + 4, vpaddq_s32(a##J##2, a##J##3));                                            \
    } while (0)

/* the weight sums (WS): byte pairs of each weight vector into int16, per 16 k into int32 */
#define NEON_GEMM_WS(v0, v1, v2, v3)                                                                       \
    do {                                                                                                   \
        if (WS) {                                                                                          \
            h0 = vpadalq_s8(vpadalq_s8(h0, v0), v2), h1 = vpadalq_s8(vpadalq_s8(h1, v1), v3);             \
        }                                                                                                  \
    } while (0)

NEON_GEMM_AI void neon_gemm_mk_body(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad, int32_t *c,
                                    int32_t *ws, const int NB, const int WS) {
    int32x4_t s0 = vdupq_n_s32(0), s1 = s0;
    int16x8_t h0, h1;
    const int32x4_t z = vdupq_n_s32(0);
    int32x4_t a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
    int32x4_t a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
    int8x16_t wa0, wa1, wb0, wb1;
    const int8_t *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
    const size_t kf = K & ~(size_t)15;
    for (size_t k = 0; k < kf; k += 16, w += 128) {
        if (WS) h0 = vdupq_n_s16(0), h1 = h0;
        wa0 = vld1q_s8(w), wa1 = vld1q_s8(w + 16), wb0 = vld1q_s8(w + 32), wb1 = vld1q_s8(w + 48);
        NEON_GEMM_ROWS(NEON_GEMM_PAIR, k, k + 4);
        NEON_GEMM_WS(wa0, wa1, wb0, wb1);
        wa0 = vld1q_s8(w + 64), wa1 = vld1q_s8(w + 80), wb0 = vld1q_s8(w + 96), wb1 = vld1q_s8(w + 112);
        NEON_GEMM_ROWS(NEON_GEMM_PAIR, k + 8, k + 12);
        NEON_GEMM_WS(wa0, wa1, wb0, wb1);
        if (WS) s0 = vpadalq_s16(s0, h0), s1 = vpadalq_s16(s1, h1);
    }
    const size_t rem = K - kf;
    if (rem) {
        /* the row ends: in place when readable to 16 (im2col rows), else a zeroed copy */
        int8_t buf[4][16] = {{0}};
        NEON_GEMM_ROWS(NEON_GEMM_TAILX, kf);
        const size_t nkb = (rem + 3) / 4;   /* weight groups left: 1..4 */
        const int8x16_t zero = vdupq_n_s8(0);
        if (WS) h0 = vdupq_n_s16(0), h1 = h0;
        wa0 = vld1q_s8(w), wa1 = vld1q_s8(w + 16);
        if (nkb >= 2) {
            wb0 = vld1q_s8(w + 32), wb1 = vld1q_s8(w + 48);
            NEON_GEMM_ROWS(NEON_GEMM_PAIR, 0, 4);
            NEON_GEMM_WS(wa0, wa1, wb0, wb1);
        } else {
            NEON_GEMM_ROWS(NEON_GEMM_ONE, 0);
            NEON_GEMM_WS(wa0, wa1, zero, zero);
        }
        if (nkb >= 3) {
            wa0 = vld1q_s8(w + 64), wa1 = vld1q_s8(w + 80);
            if (nkb == 4) {
                wb0 = vld1q_s8(w + 96), wb1 = vld1q_s8(w + 112);
                NEON_GEMM_ROWS(NEON_GEMM_PAIR, 8, 12);
                NEON_GEMM_WS(wa0, wa1, wb0, wb1);
            } else {
                NEON_GEMM_ROWS(NEON_GEMM_ONE, 8);
                NEON_GEMM_WS(wa0, wa1, zero, zero);
            }
        }
        if (WS) s0 = vpadalq_s16(s0, h0), s1 = vpadalq_s16(s1, h1);
    }
    NEON_GEMM_ROWS(NEON_GEMM_OUT, 0);
    if (WS) vst1q_s32(ws, s0), vst1q_s32(ws + 4, s1);
}

DSE_TARGET_NEON static DSE_NOINLINE void neon_gemm_mk4(const int8_t *w, const int8_t *x, size_t ldx, size_t K,
                                                       int xpad, int32_t *c) {
    neon_gemm_mk_body(w, x, ldx, K, xpad, c, NULL, 4, 0);
}
DSE_TARGET_NEON static DSE_NOINLINE void neon_gemm_mk2(const int8_t *w, const int8_t *x, size_t ldx, size_t K,
                                                       int xpad, int32_t *c) {
    neon_gemm_mk_body(w, x, ldx, K, xpad, c, NULL, 2, 0);
}
DSE_TARGET_NEON static DSE_NOINLINE void neon_gemm_mk1(const int8_t *w, const int8_t *x, size_t ldx, size_t K,
                                                       int xpad, int32_t *c) {
    neon_gemm_mk_body(w, x, ldx, K, xpad, c, NULL, 1, 0);
}

DSE_TARGET_NEON static DSE_NOINLINE void neon_gemm_mk1ws(const int8_t *w, const int8_t *x, size_t ldx, size_t K,
                                                         int xpad, int32_t *c, int32_t *ws) {
    neon_gemm_mk_body(w, x, ldx, K, xpad, c, ws, 1, 1);
}

DSE_TARGET_NEON void dse_i8_mk__neon(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad, int nb,
                                     int32_t *c, int32_t *ws) {
    if (ws) { neon_gemm_mk1ws(w, x, ldx, K, xpad, c, ws); return; }   /* nb == 1 */
    for (; nb >= 4; nb -= 4, x += 4 * ldx, c += 32) neon_gemm_mk4(w, x, ldx, K, xpad, c);
    if (nb >= 2) neon_gemm_mk2(w, x, ldx, K, xpad, c), nb -= 2, x += 2 * ldx, c += 16;
    if (nb) neon_gemm_mk1(w, x, ldx, K, xpad, c);
}

/* -- one 8-channel block: folded bias, multipliers; the output stage ------------------------ */

typedef struct neon_gemm_blk {
    int32_t fb[8];
    float sc[8];
    dse_i8_neon_rq rq;
} neon_gemm_blk;

/* byte pairs into int16 (<= 64 groups at a time, |lane| <= 64 * 254), then into int32 lane c */
DSE_TARGET_NEON void dse_i8_neon_wsum8(const int8_t *w, size_t nkb, int32_t *s) {
    int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0);
    for (size_t k0 = 0; k0 < nkb; k0 += 64) {
        const size_t k1 = nkb - k0 < 64 ? nkb : k0 + 64;
        int16x8_t h0 = vdupq_n_s16(0), h1 = vdupq_n_s16(0);
        for (size_t kb = k0; kb < k1; kb++) {
            h0 = vpadalq_s8(h0, vld1q_s8(w + 32 * kb));
            h1 = vpadalq_s8(h1, vld1q_s8(w + 32 * kb + 16));
        }
        a0 = vpadalq_s16(a0, h0), a1 = vpadalq_s16(a1, h1);
    }
    vst1q_s32(s, a0), vst1q_s32(s + 4, a1);
}

/* the block's output stage; ws: the weight sums when the microkernel gave them, else NULL */
DSE_TARGET_NEON static void neon_gemm_blk_init(const dse_i8_gemm_job *jb, size_t cb, neon_gemm_blk *bp,
                                               const int32_t *ws_in) {
    const size_t K4 = (jb->K + 3) / 4 * 4;
    int32_t ws[8], M[8], sh[8];
    if (ws_in) memcpy(ws, ws_in, sizeof ws);
    else dse_i8_neon_wsum8(jb->wp + cb * 8 * K4, K4 / 4, ws);
    const dse_i8_out *o = jb->o;
    for (size_t i = 0; i < 8; i++) {
        const size_t ch = cb * 8 + i < jb->R ? cb * 8 + i : cb * 8;   /* lanes past R repeat the first */
        /* bias - zp_in * wsum in wrapping int32: the sum with the microkernel's result is
         * the true accumulator, which fits int32 (check) */
        bp->fb[i] = (int32_t)((uint32_t)jb->bias[ch] - (uint32_t)o->zp_in * (uint32_t)ws[i]);
        M[i] = o->float_out ? 0 : o->M[ch];
        sh[i] = o->float_out ? 62 : o->shift[ch];
        bp->sc[i] = o->float_out ? o->scale[ch] : 0.0f;
    }
    if (!o->float_out) dse_i8_neon_rq_init(&bp->rq, M, sh, o->zp_out, o->qmin, o->qmax);
}

/* C[j][i] (nb rows x nc channels) + folded bias through the output stage to y[base + i*si + j*sj] */
DSE_TARGET_NEON static void neon_gemm_store(const dse_i8_out *o, const neon_gemm_blk *bp, const int32_t *c, int nb,
                                            int nc, void *y, size_t base, size_t si, size_t sj) {
    const int32x4_t fb0 = vld1q_s32(bp->fb), fb1 = vld1q_s32(bp->fb + 4);
    const int direct = si == 1 && nc == 8;
    if (o->float_out) {
        float *yf = (float *)y + base;
        const float32x4_t s0 = vld1q_f32(bp->sc), s1 = vld1q_f32(bp->sc + 4);
        const float32x4_t lo = vdupq_n_f32(o->act_min), hi = vdupq_n_f32(o->act_max);
        float t[8][8];
        for (int j = 0; j < nb; j++)
            dse_i8_neon_fout(direct ? yf + (size_t)j * sj : t[j], vaddq_s32(vld1q_s32(c + 8 * j), fb0),
                             vaddq_s32(vld1q_s32(c + 8 * j + 4), fb1), s0, s1, lo, hi, 8);
        if (!direct)
            for (int j = 0; j < nb; j++)
                for (int i = 0; i < nc; i++) yf[(size_t)i * si + (size_t)j * sj] = t[j][i];
        return;
    }
    int8_t *y8 = (int8_t *)y + base;
    const dse_i8_neon_rq rq = bp->rq;
    int8_t t[8][8];
    for (int j = 0; j < nb; j++) {
        const int8x8_t q = dse_i8_neon_rq8(&rq, vaddq_s32(vld1q_s32(c + 8 * j), fb0), vaddq_s32(vld1q_s32(c + 8 * j + 4), fb1));
        vst1_s8(direct ? y8 + (size_t)j * sj : t[j], q);
    }
    if (direct) return;
    if (sj == 1 && nb == 8) { dse_i8_neon_tr8x8(&t[0][0], 8, y8, si, nc); return; }
    for (int j = 0; j < nb; j++)
        for (int i = 0; i < nc; i++) y8[(size_t)i * si + (size_t)j * sj] = t[j][i];
}

#if DSE_ARCH_ARM32
void dse_i8_neon32_fout(float *d, const int32_t *acc, const float *sc, float lo, float hi, size_t n) {
    for (size_t i = 0; i < n; i++) {   /* requant.h dse_i8_store: int32 -> float rounds to nearest even */
        float v = (float)acc[i] * sc[i];
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        d[i] = v;
    }
}
#endif

/* -- the driver ------------------------------------------------------------------------------- */

DSE_TARGET_NEON void dse_i8_neon_gemm_blocks(const dse_i8_gemm_job *jb, size_t cb0, size_t cb1) {
    const size_t K4 = (jb->K + 3) / 4 * 4;
    /* rows in tiles of about 64 KiB of x, so that they stay in L2 while the channel blocks
     * pass over them (each weight block, 8 * K4 bytes, stays in L1 over its tile) */
    size_t rt = jb->ldx ? (size_t)65536 / jb->ldx : jb->rows;
    rt = rt < 8 ? 8 : rt / 8 * 8;
    int32_t c[64];
    for (size_t r0 = 0; r0 < jb->rows; r0 += rt) {
        const size_t r1 = jb->rows - r0 < rt ? jb->rows : r0 + rt;
        for (size_t cb = cb0; cb < cb1; cb++) {
            neon_gemm_blk bp;
            const int nc = jb->R - cb * 8 < 8 ? (int)(jb->R - cb * 8) : 8;
            const int8_t *wb = jb->wp + cb * 8 * K4;
            if (r1 - r0 == 1) {   /* one row: the weight sums in the same pass */
                int32_t ws[8];
                jb->mk(wb, jb->x + r0 * jb->ldx, jb->ldx, jb->K, jb->xpad, 1, c, ws);
                neon_gemm_blk_init(jb, cb, &bp, ws);
                neon_gemm_store(jb->o, &bp, c, 1, nc, jb->y, jb->ybase + cb * 8 * jb->si + r0 * jb->sj, jb->si, jb->sj);
                continue;
            }
            neon_gemm_blk_init(jb, cb, &bp, NULL);
            for (size_t r = r0; r < r1; r += 8) {
                const int nb = r1 - r < 8 ? (int)(r1 - r) : 8;
                jb->mk(wb, jb->x + r * jb->ldx, jb->ldx, jb->K, jb->xpad, nb, c, NULL);
                neon_gemm_store(jb->o, &bp, c, nb, nc, jb->y, jb->ybase + cb * 8 * jb->si + r * jb->sj, jb->si, jb->sj);
            }
        }
    }
}

DSE_TARGET_NEON static void neon_gemm_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    dse_i8_neon_gemm_blocks((const dse_i8_gemm_job *)arg, begin, end);
}

/* rows x K times the packed weights (R channels) into y (rows x R), split by channel blocks */
DSE_TARGET_NEON static void neon_gemm_launch(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                             dse_i8_mk_fn mk, size_t rows, size_t K, size_t R) {
    dse_i8_out o;
    dse_why why;
    dse_i8_out_params(m, n, R, &o, &why);
    dse_i8_gemm_job jb = {mk, dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), rows, K, K, R, 0,
                          dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]), 0, 1, R};
    if (!rows || !R) return;
    dse__parallel(cx, (R + 7) / 8, dse__grain((R + 7) / 8, (uint64_t)rows * K * R), neon_gemm_task, &jb);
}

DSE_TARGET_NEON void dse_i8_neon_gemm_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                          dse_i8_mk_fn mk) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    neon_gemm_launch(m, n, arena, cx, mk, x->dims[0], x->dims[1], y->dims[1]);
}

DSE_TARGET_NEON void dse_i8_neon_matmul_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                            dse_i8_mk_fn mk) {
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    const size_t K = w->dims[0], N = w->dims[1];
    neon_gemm_launch(m, n, arena, cx, mk, N ? y->numel / N : 0, K, N);
}

/* -- checks ---------------------------------------------------------------------------------- */

int dse_i8_neon_bias_ok(const dse_model *m, const dse_node *n, size_t R, size_t K, dse_why *why) {
    const int32_t *b = (const int32_t *)m->tensors[n->in[2]].cdata;
    const int64_t lim = (int64_t)0x7fffffff - (int64_t)K * 255 * 127;   /* K bounded by the REF check */
    for (size_t c = 0; c < R; c++)
        if (b[c] > lim || b[c] < -lim) { DSE_WHYF(why, I8_NEON_BIAS_EXCEEDS_ACCUMULATOR, NULL, c, 0, 0, 0); return 0; }
    return 1;
}

int dse_i8_neon_packed_operands(const dse_model *m, const dse_node *n, int layout, size_t R, size_t K, dse_why *why) {
    const dse_tensor *w = &m->tensors[n->in[1]];
    if (w->layout != layout || w->nbytes != (R + 7) / 8 * 8 * ((K + 3) / 4 * 4)) {
        DSE_WHYF(why, I8_NEON_NEEDS_PACKED_WEIGHTS, NULL, layout, 0, 0, 0);
        return 1;
    }
    return !dse_i8_neon_bias_ok(m, n, R, K, why);
}

int dse__check_i8_gemm_packed(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_ref_check_gemm(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    const int tb = (int)dse__attr_int(n, DSE_A_transB, 0);
    if (dse_i8_neon_packed_operands(m, n, tb ? 1 : 2, y->dims[1], x->dims[1], why)) return 1;
    why->scratch = 0;   /* why->scratch_plan: the REF check's (the plan of the op) */
    return 0;
}

int dse__check_i8_matmul_packed(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_ref_check_matmul(m, n, why)) return 1;
    const dse_tensor *w = &m->tensors[n->in[1]];
    const size_t K = w->dims[0], N = w->dims[1];
    if (dse_i8_neon_packed_operands(m, n, 2, N, K, why)) return 1;
    why->scratch = 0;   /* why->scratch_plan: the REF check's */
    return 0;
}

/* -- the baseline NEON variants --------------------------------------------------------------- */

DSE_TARGET_NEON void dse_i8_gemm__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_gemm_run(m, n, arena, cx, dse_i8_mk__neon);
}

DSE_TARGET_NEON void dse_i8_matmul__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_matmul_run(m, n, arena, cx, dse_i8_mk__neon);
}

#endif
