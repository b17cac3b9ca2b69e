/* gemm_i8.c (neon_dotprod): int8 Conv (group 1), Gemm and MatMul with packed weights on
 * arm64 with the ARMv8.2 dot product (sdot). Only the microkernel differs from the baseline
 * NEON variants: the drivers, the folded zero point and the exact requantisation are
 * kernels/neon's (i8_neon.h).
 *
 * Microkernel: 8 channels x nb rows; per 16 k, one 16-byte load per row of x (4 groups of 4
 * k, the lanes of vdotq_laneq_s32) and 8 loads of the packed weights (per group 32 bytes =
 * channels 0-3 and 4-7 x 4 k); acc[j][h] += sdot(w group, x row j lane) accumulates the 4 k of
 * channels 4h..4h+3 into int32 lanes. The last K % 16 bytes of a row come from a zeroed copy
 * (Gemm/MatMul rows are read in place) or directly (im2col rows are padded to 16).
 */
#include "../neon/i8_neon.h"

#if DSE_ARCH_ARM64
#include <arm_neon.h>

#define NEON_DOT_ROWS(stmt) \
    _Pragma("GCC unroll 8") for (int j = 0; j < NB; j++) stmt
#define NEON_DOT_LANE(l)                                                            \
    do {                                                                            \
        NEON_DOT_ROWS({                                                             \
            acc[j][0] = vdotq_laneq_s32(acc[j][0], w##l##0, xv[j], l);              \
            acc[j][1] = vdotq_laneq_s32(acc[j][1], w##l##1, xv[j], l);              \
        });                                                                         \
        if (WS) s0 = vdotq_s32(s0, w##l##0, ones), s1 = vdotq_s32(s1, w##l##1, ones); \
    } while (0)

DSE_TARGET_NEON_DOTPROD static inline __attribute__((always_inline)) void
neon_dot_mk_body(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad, int32_t *c, int32_t *ws,
                 const int NB, const int WS) {
    const int8x16_t ones = vdupq_n_s8(1);
    int32x4_t acc[8][2], s0 = vdupq_n_s32(0), s1 = s0;
    int8x16_t xv[8];
    for (int j = 0; j < 8; j++) acc[j][0] = acc[j][1] = vdupq_n_s32(0);
    const size_t kf = K & ~(size_t)15;
    for (size_t k = 0; k < kf; k += 16, w += 128) {
        NEON_DOT_ROWS(xv[j] = vld1q_s8(x + j * ldx + k));
        const int8x16_t w00 = vld1q_s8(w), w01 = vld1q_s8(w + 16), w10 = vld1q_s8(w + 32), w11 = vld1q_s8(w + 48);
        NEON_DOT_LANE(0);
        NEON_DOT_LANE(1);
        const int8x16_t w20 = vld1q_s8(w + 64), w21 = vld1q_s8(w + 80), w30 = vld1q_s8(w + 96), w31 = vld1q_s8(w + 112);
        NEON_DOT_LANE(2);
        NEON_DOT_LANE(3);
    }
    const size_t rem = K - kf;
    if (rem) {
        int8_t buf[8][16];
        NEON_DOT_ROWS({
            if (xpad) {
                xv[j] = vld1q_s8(x + j * ldx + kf);
            } else {
                memset(buf[j], 0, 16);
                memcpy(buf[j], x + j * ldx + kf, rem);
                xv[j] = vld1q_s8(buf[j]);
            }
        });
        const size_t nkb = (rem + 3) / 4;   /* weight groups left: 1..4 */
        const int8x16_t w00 = vld1q_s8(w), w01 = vld1q_s8(w + 16);
        NEON_DOT_LANE(0);
        if (nkb >= 2) {
            const int8x16_t w10 = vld1q_s8(w + 32), w11 = vld1q_s8(w + 48);
            NEON_DOT_LANE(1);
        }
        if (nkb >= 3) {
            const int8x16_t w20 = vld1q_s8(w + 64), w21 = vld1q_s8(w + 80);
            NEON_DOT_LANE(2);
        }
        if (nkb >= 4) {
            const int8x16_t w30 = vld1q_s8(w + 96), w31 = vld1q_s8(w + 112);
            NEON_DOT_LANE(3);
        }
    }
    NEON_DOT_ROWS({
        vst1q_s32(c + 8 * j, acc[j][0]);
        vst1q_s32(c + 8 * j + 4, acc[j][1]);
    });
    if (WS) vst1q_s32(ws, s0), vst1q_s32(ws + 4, s1);
}

DSE_TARGET_NEON_DOTPROD static void neon_dot_mk8(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                 int32_t *c) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, NULL, 8, 0);
}
DSE_TARGET_NEON_DOTPROD static void neon_dot_mk4(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                 int32_t *c) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, NULL, 4, 0);
}
DSE_TARGET_NEON_DOTPROD static void neon_dot_mk2(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                 int32_t *c) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, NULL, 2, 0);
}
DSE_TARGET_NEON_DOTPROD static void neon_dot_mk1(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                 int32_t *c) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, NULL, 1, 0);
}

DSE_TARGET_NEON_DOTPROD static void neon_dot_mk1ws(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                   int32_t *c, int32_t *ws) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, ws, 1, 1);
}

DSE_TARGET_NEON_DOTPROD void dse_i8_mk__neon_dotprod(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                     int nb, int32_t *c, int32_t *ws) {
    if (ws) { neon_dot_mk1ws(w, x, ldx, K, xpad, c, ws); return; }   /* nb == 1 */
    if (nb == 8) { neon_dot_mk8(w, x, ldx, K, xpad, c); return; }
    if (nb >= 4) neon_dot_mk4(w, x, ldx, K, xpad, c), nb -= 4, x += 4 * ldx, c += 32;
    if (nb >= 2) neon_dot_mk2(w, x, ldx, K, xpad, c), nb -= 2, x += 2 * ldx, c += 16;
    if (nb) neon_dot_mk1(w, x, ldx, K, xpad, c);
}

/* Conv microkernel (pixel lanes): per 4 k, pixels 0-3 and 4-7 (32 bytes of the panel) against
 * channel i's 4 k (lane i % 4 of the weight group's half i / 4). */
#define NEON_DOTC_CH(I, W, L)                                                  \
    do {                                                                       \
        acc##I##0 = vdotq_laneq_s32(acc##I##0, x0, W, L);                      \
        acc##I##1 = vdotq_laneq_s32(acc##I##1, x1, W, L);                      \
    } while (0)
#define NEON_DOTC_KB(px, pw)                                                   \
    do {                                                                       \
        const int8x16_t x0 = vld1q_s8(px), x1 = vld1q_s8((px) + 16);          \
        const int8x16_t w0 = vld1q_s8(pw), w1 = vld1q_s8((pw) + 16);          \
        NEON_DOTC_CH(0, w0, 0); NEON_DOTC_CH(1, w0, 1);                        \
        NEON_DOTC_CH(2, w0, 2); NEON_DOTC_CH(3, w0, 3);                        \
        NEON_DOTC_CH(4, w1, 0); NEON_DOTC_CH(5, w1, 1);                        \
        NEON_DOTC_CH(6, w1, 2); NEON_DOTC_CH(7, w1, 3);                        \
    } while (0)
#define NEON_DOTC_OUT(I) (vst1q_s32(c + 8 * I, acc##I##0), vst1q_s32(c + 8 * I + 4, acc##I##1))

DSE_TARGET_NEON_DOTPROD void dse_i8_mkc__neon_dotprod(const int8_t *xp, const int8_t *w, size_t nkb, int32_t *c,
                                                      const dse_i8_neon_cq *q, int8_t *y) {
    /* with q, the accumulators start at the folded bias (wrapping adds: the total is exact) */
    int32x4_t acc00, acc10, acc20, acc30, acc40, acc50, acc60, acc70;
    if (q) {
        const int32x4_t f0 = vld1q_s32(q->fb), f1 = vld1q_s32(q->fb + 4);
        acc00 = vdupq_laneq_s32(f0, 0), acc10 = vdupq_laneq_s32(f0, 1), acc20 = vdupq_laneq_s32(f0, 2);
        acc30 = vdupq_laneq_s32(f0, 3), acc40 = vdupq_laneq_s32(f1, 0), acc50 = vdupq_laneq_s32(f1, 1);
        acc60 = vdupq_laneq_s32(f1, 2), acc70 = vdupq_laneq_s32(f1, 3);
    } else {
        acc00 = acc10 = acc20 = acc30 = acc40 = acc50 = acc60 = acc70 = vdupq_n_s32(0);
    }
    int32x4_t acc01 = acc00, acc11 = acc10, acc21 = acc20, acc31 = acc30;
    int32x4_t acc41 = acc40, acc51 = acc50, acc61 = acc60, acc71 = acc70;
    size_t kb = 0;
    for (; kb + 2 <= nkb; kb += 2, xp += 64, w += 64) {
        NEON_DOTC_KB(xp, w);
        NEON_DOTC_KB(xp + 32, w + 32);
    }
    if (kb < nkb) NEON_DOTC_KB(xp, w);
    if (q) {
        DSE_I8_NEON_CQ_STORE(q, y, 0, 0, 0, acc00, acc01);
        DSE_I8_NEON_CQ_STORE(q, y, 1, 0, 1, acc10, acc11);
        DSE_I8_NEON_CQ_STORE(q, y, 2, 0, 2, acc20, acc21);
        DSE_I8_NEON_CQ_STORE(q, y, 3, 0, 3, acc30, acc31);
        DSE_I8_NEON_CQ_STORE(q, y, 4, 1, 0, acc40, acc41);
        DSE_I8_NEON_CQ_STORE(q, y, 5, 1, 1, acc50, acc51);
        DSE_I8_NEON_CQ_STORE(q, y, 6, 1, 2, acc60, acc61);
        DSE_I8_NEON_CQ_STORE(q, y, 7, 1, 3, acc70, acc71);
        return;
    }
    NEON_DOTC_OUT(0), NEON_DOTC_OUT(1), NEON_DOTC_OUT(2), NEON_DOTC_OUT(3);
    NEON_DOTC_OUT(4), NEON_DOTC_OUT(5), NEON_DOTC_OUT(6), NEON_DOTC_OUT(7);
}

void dse_i8_conv__neon_dotprod(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_conv_run(m, n, arena, cx, dse_i8_mk__neon_dotprod, dse_i8_mkc__neon_dotprod);
}

void dse_i8_gemm__neon_dotprod(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_gemm_run(m, n, arena, cx, dse_i8_mk__neon_dotprod);
}

void dse_i8_matmul__neon_dotprod(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_matmul_run(m, n, arena, cx, dse_i8_mk__neon_dotprod);
}

#endif
