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
    NEON_DOT_ROWS({                                                                 \
        acc[j][0] = vdotq_laneq_s32(acc[j][0], w##l##0, xv[j], l);                  \
        acc[j][1] = vdotq_laneq_s32(acc[j][1], w##l##1, xv[j], l);                  \
    })

DSE_TARGET_NEON_DOTPROD static inline __attribute__((always_inline)) void
neon_dot_mk_body(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad, int32_t *c, const int NB) {
    int32x4_t acc[8][2];
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
}

DSE_TARGET_NEON_DOTPROD static void neon_dot_mk8(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                 int32_t *c) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, 8);
}
DSE_TARGET_NEON_DOTPROD static void neon_dot_mk4(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                 int32_t *c) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, 4);
}
DSE_TARGET_NEON_DOTPROD static void neon_dot_mk2(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                 int32_t *c) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, 2);
}
DSE_TARGET_NEON_DOTPROD static void neon_dot_mk1(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                 int32_t *c) {
    neon_dot_mk_body(w, x, ldx, K, xpad, c, 1);
}

DSE_TARGET_NEON_DOTPROD void dse_i8_mk__neon_dotprod(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad,
                                                     int nb, int32_t *c) {
    if (nb == 8) { neon_dot_mk8(w, x, ldx, K, xpad, c); return; }
    if (nb >= 4) neon_dot_mk4(w, x, ldx, K, xpad, c), nb -= 4, x += 4 * ldx, c += 32;
    if (nb >= 2) neon_dot_mk2(w, x, ldx, K, xpad, c), nb -= 2, x += 2 * ldx, c += 16;
    if (nb) neon_dot_mk1(w, x, ldx, K, xpad, c);
}

void dse_i8_conv__neon_dotprod(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_conv_run(m, n, arena, cx, dse_i8_mk__neon_dotprod);
}

void dse_i8_gemm__neon_dotprod(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_gemm_run(m, n, arena, cx, dse_i8_mk__neon_dotprod);
}

void dse_i8_matmul__neon_dotprod(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_matmul_run(m, n, arena, cx, dse_i8_mk__neon_dotprod);
}

#endif
