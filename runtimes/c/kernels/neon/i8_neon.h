/* i8_neon.h: what the arm64 int8 kernels share (the files of kernels/neon and kernels/neon_dotprod).
 *
 * The packed int8 kernels (Conv with group 1, Gemm, MatMul with a constant 2-D B) read their
 * weights in the N8K4 layouts of the .dse (layout 1: W[R][K] as stored; layout 2: B[K][N] seen
 * as W[R = N][K]): for each block of 8 output channels, ceil(K/4) groups of 32 bytes, each 8
 * channels x 4 consecutive k (channel-major, k fastest), zeros past R and K.
 *
 * Arithmetic (docs/quant-arith.md §4, exactly REF's integers): x stays int8, the microkernel
 * sums x * w in int32 from 0, and the zero point is folded per channel block at run time:
 *     acc = sum_k x[k] * w[c][k] + (bias[c] - zp_in * sum_k w[c][k])
 * which is REF's bias + sum over the taps inside the input of (x - zp_in) * w: im2col fills
 * padding with zp_in (zp_in * w - zp_in * w = 0) and the layout's zero padding adds nothing.
 * Every partial sum is at most 128 * 127 * K in magnitude (< 2^31 by the check's K bound) and
 * the check refuses a node whose |bias| + K * 255 * 127 could leave int32 (the exporter's
 * overflow proof guarantees it never does), so the int32 result is the true accumulator; the
 * additions are done in wrapping vector arithmetic, which gives that value.
 *
 * Requantisation (requant.h's rule) is vectorised exactly, in one of three forms chosen per
 * block of channels (dse_i8_neon_rq8 below explains them and why each equals the rule).
 * float_out: (float)acc * scale[c] (vcvt rounds to nearest even like C's conversion; no FMA),
 * then the clamp with compare-and-select so that NaN and -0 behave as REF's `if`s; on armv7,
 * whose NEON float arithmetic flushes subnormals to zero, in scalar VFP code (dse_i8_neon_fout).
 *
 * Two microkernel shapes per ISA, both over one 8-channel packed weight block:
 *   dse_i8_mk_fn   channel lanes, x as rows (stride ldx: Gemm/MatMul rows read in place, or a
 *                  Conv image's im2col rows when it has fewer than 8 output pixels);
 *   dse_i8_mkc_fn  pixel lanes, x as an im2col panel in the weights' own N8K4 layout (Conv),
 *                  so a channel's outputs are contiguous in NCHW; optionally requantising in
 *                  registers (dse_i8_neon_cq).
 * The drivers (kernels/neon/gemm_i8.c, conv_i8.c) tile, fold the bias, requantise and store;
 * the dotprod variants reuse them with their microkernels.
 *
 * armv7: the baseline files of kernels/neon are also the armv7 NEON variants (the same names,
 * ISA NEON, src/kernels_arm32.inc). Each of them compiles only for arm64 by itself; for armv7,
 * kernels/neon32/<op>.c (the manifest's neon32 group) includes it with DSE_NEON32_UNIT set. The
 * armv7 library is built without NEON (VFPv3-D16, so it runs on NEON-less cores): every function
 * that uses NEON is marked DSE_TARGET_NEON (src/isa.h: NEON for that function only; empty on
 * arm64) and runs only when HWCAP_NEON says so. neon_a32.h gives the AArch64-only intrinsics
 * (exact, integer), byte pointers of any alignment are never read or written through wider
 * NEON element types (ARMv7 alignment hints), and float_out's float arithmetic is scalar VFP
 * (dse_i8_neon_fout: ARMv7 NEON flushes subnormals). The integer arithmetic is the same
 * instructions' semantics, so armv7 gives REF's bytes as arm64 does.
 */
#ifndef DSEDGE_I8_NEON_H
#define DSEDGE_I8_NEON_H

#include "isa.h"
#include "requant.h"

#if DSE_ARCH_ARM64 || DSE_ARCH_ARM32
#include <arm_neon.h>
#if DSE_ARCH_ARM32
#include "neon_a32.h"
#endif

/* C[j * 8 + i] for i < 8, j < nb (1..8); x row j starts at x + j * ldx, holds K bytes and may
 * be read up to ceil(K/16)*16 bytes when xpad (im2col rows), else exactly K. With ws (only for
 * nb == 1: a single row, where a separate pass for the weight sums would double the weight
 * traffic), also ws[i] = sum_k W[i][k]. */
typedef void (*dse_i8_mk_fn)(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad, int nb, int32_t *c,
                             int32_t *ws);

/* Baseline NEON microkernel (kernels/neon/gemm_i8.c): smull/smlal pairs of products in int16
 * (|w * x| <= 127 * 128, two fit), sadalp into int32. */
DSE_INTERNAL void dse_i8_mk__neon(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad, int nb, int32_t *c,
                                  int32_t *ws);
/* sdot microkernel (kernels/neon_dotprod/gemm_i8.c; DSE_TARGET_NEON_DOTPROD). */
DSE_INTERNAL void dse_i8_mk__neon_dotprod(const int8_t *w, const int8_t *x, size_t ldx, size_t K, int xpad, int nb,
                                          int32_t *c, int32_t *ws);

/* The packed weighted ops' checks (ISA-independent; gemm_i8.c, conv_i8.c, dwconv_i8.c). */
DSE_SHARED int dse__check_i8_gemm_packed(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse__check_i8_matmul_packed(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse__check_i8_conv_packed(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse__check_i8_dwconv(const dse_model *m, const dse_node *n, dse_why *why);

/* Conv microkernel (pixel lanes): C[i * 8 + j] = sum_k W[i][k] * X[j][k] for the 8 channels i of
 * a packed weight block w and the 8 pixels j of an im2col panel block xp (the same N8K4 layout:
 * per 4 k, 32 bytes = 8 pixels x 4 k), nkb groups of 4 k. */
/* With q (the block's channels all take the HIGH requantisation form, int8 output), the
 * microkernel instead requantises in registers and stores channel i's nq <= 8 outputs at
 * y + i * P (the fused output stage below); c is then unused. */
typedef struct dse_i8_neon_cq {
    int32x4_t M0, M1, S0, S1;   /* channels 0-3 and 4-7: M, 31 - shift */
    int16x8_t zp, lo, hi;
    int32_t fb[8];              /* bias - zp_in * sum w */
    int nc;                     /* channels in the block */
    size_t P, nq;
} dse_i8_neon_cq;
typedef void (*dse_i8_mkc_fn)(const int8_t *xp, const int8_t *w, size_t nkb, int32_t *c, const dse_i8_neon_cq *q,
                              int8_t *y);
DSE_INTERNAL void dse_i8_mkc__neon(const int8_t *xp, const int8_t *w, size_t nkb, int32_t *c, const dse_i8_neon_cq *q,
                                   int8_t *y);
DSE_INTERNAL void dse_i8_mkc__neon_dotprod(const int8_t *xp, const int8_t *w, size_t nkb, int32_t *c,
                                           const dse_i8_neon_cq *q, int8_t *y);

/* the first n < 8 bytes of v at d, with lane moves and fixed-size copies (no call, no byte past
 * d + n; memcpy: d has any alignment, neon_a32.h) */
DSE_TARGET_NEON static inline void dse_i8_neon_st_part(int8_t *d, int8x8_t v, size_t n) {
    if (n & 4) {
        const uint32_t t = vget_lane_u32(vreinterpret_u32_s8(v), 0);
        memcpy(d, &t, 4), v = vext_s8(v, v, 4), d += 4;
    }
    if (n & 2) {
        const uint16_t t = vget_lane_u16(vreinterpret_u16_s8(v), 0);
        memcpy(d, &t, 2), v = vext_s8(v, v, 2), d += 2;
    }
    if (n & 1) vst1_lane_s8(d, v, 0);
}

/* the first n < 8 floats of (v0, v1) at d */
DSE_TARGET_NEON static inline void dse_i8_neon_st_part_f32(float *d, float32x4_t v0, float32x4_t v1, size_t n) {
    if (n & 4) vst1q_f32(d, v0), v0 = v1, d += 4;
    if (n & 2) vst1_f32(d, vget_low_f32(v0)), v0 = vextq_f32(v0, v0, 2), d += 2;
    if (n & 1) vst1q_lane_f32(d, v0, 0);
}

#if DSE_ARCH_ARM32
/* float_out on armv7: REF's rule (requant.h, dse_i8_store) on acc[0..n) in scalar VFP arithmetic
 * (IEEE under hard float, unlike ARMv7 NEON's); not NEON-enabled and never inlined into the NEON
 * code, so it cannot be vectorised with NEON (gemm_i8.c) */
DSE_INTERNAL DSE_NOINLINE void dse_i8_neon32_fout(float *d, const int32_t *acc, const float *sc, float lo, float hi,
                                                  size_t n);
#endif

/* float_out: the 8 accumulators (a0, a1) times the scales (s0, s1) in float32, clamped to the
 * [lo, hi] of every lane, REF's bytes; the first n (1..8) at d */
DSE_TARGET_NEON static inline void dse_i8_neon_fout(float *d, int32x4_t a0, int32x4_t a1, float32x4_t s0,
                                                    float32x4_t s1, float32x4_t lo, float32x4_t hi, size_t n) {
#if DSE_ARCH_ARM32
    int32_t a[8];
    float s[8];
    vst1q_s32(a, a0), vst1q_s32(a + 4, a1), vst1q_f32(s, s0), vst1q_f32(s + 4, s1);   /* bit moves only */
    dse_i8_neon32_fout(d, a, s, vgetq_lane_f32(lo, 0), vgetq_lane_f32(hi, 0), n);
#else
    float32x4_t v0 = vmulq_f32(vcvtq_f32_s32(a0), s0), v1 = vmulq_f32(vcvtq_f32_s32(a1), s1);
    v0 = vbslq_f32(vcltq_f32(v0, lo), lo, v0), v1 = vbslq_f32(vcltq_f32(v1, lo), lo, v1);
    v0 = vbslq_f32(vcgtq_f32(v0, hi), hi, v0), v1 = vbslq_f32(vcgtq_f32(v1, hi), hi, v1);
    if (n == 8) vst1q_f32(d, v0), vst1q_f32(d + 4, v1);
    else dse_i8_neon_st_part_f32(d, v0, v1, n);
#endif
}

/* The fused output stage of channel I (lane L of the block's half H: M##H, S##H) whose 8
 * accumulators (pixels 0-3, 4-7; folded bias included) are A0, A1: the HIGH form of
 * dse_i8_neon_rq8, then nq bytes at y + I * P. */
#define DSE_I8_NEON_CQ_STORE(q, y, I, H, L, A0, A1)                                                      \
    do {                                                                                                 \
        if ((I) < (q)->nc) {                                                                             \
            const int32x4_t s_ = vdupq_laneq_s32((q)->S##H, L);                                          \
            int16x8_t r_ = vcombine_s16(vqmovn_s32(vrshlq_s32(vqdmulhq_laneq_s32(A0, (q)->M##H, L), s_)), \
                                        vqmovn_s32(vrshlq_s32(vqdmulhq_laneq_s32(A1, (q)->M##H, L), s_))); \
            r_ = vminq_s16(vmaxq_s16(vqaddq_s16(r_, (q)->zp), (q)->lo), (q)->hi);                        \
            int8_t *d_ = (y) + (size_t)(I) * (q)->P;                                                     \
            if ((q)->nq == 8) vst1_s8(d_, vmovn_s16(r_));                                                \
            else dse_i8_neon_st_part(d_, vmovn_s16(r_), (q)->nq);                                        \
        }                                                                                                \
    } while (0)

/* sum_k w[c][k] of the 8 channels of a packed block (nkb groups of 32 bytes) -> s[8] (gemm_i8.c) */
DSE_INTERNAL void dse_i8_neon_wsum8(const int8_t *w, size_t nkb, int32_t *s);

/* Drivers: run the node with microkernel mk (gemm_i8.c: Gemm and MatMul; conv_i8.c: Conv). */
DSE_INTERNAL void dse_i8_neon_gemm_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                       dse_i8_mk_fn mk);
DSE_INTERNAL void dse_i8_neon_matmul_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                         dse_i8_mk_fn mk);
DSE_INTERNAL void dse_i8_neon_conv_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                       dse_i8_mk_fn mk, dse_i8_mkc_fn mkc);

/* Rows of x (rows x K, stride ldx) times the packed weights wp (R channels) for channel blocks
 * [cb0, cb1) (8 channels each), bias folded, through the output stage into y: output element
 * (row j, channel c) at ybase + c * si + j * sj. */
typedef struct dse_i8_gemm_job {
    dse_i8_mk_fn mk;
    const int8_t *x, *wp;
    size_t rows, K, ldx, R;
    int xpad;
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    size_t ybase, si, sj;
} dse_i8_gemm_job;
DSE_INTERNAL void dse_i8_neon_gemm_blocks(const dse_i8_gemm_job *jb, size_t cb0, size_t cb1);

/* Shared check pieces (gemm_i8.c): dse_i8_neon_bias_ok is 1 when |bias[c]| + K*255*127 < 2^31
 * for the R channels (else 0 and why); dse_i8_neon_packed_operands returns 0 when the weights
 * have layout `layout` over R x K and the bias is within that bound (the REF check, called
 * first, has checked the rest: operands, shapes, no -128 byte in the whole tensor). */
DSE_INTERNAL int dse_i8_neon_bias_ok(const dse_model *m, const dse_node *n, size_t R, size_t K, dse_why *why);
DSE_INTERNAL int dse_i8_neon_packed_operands(const dse_model *m, const dse_node *n, int layout, size_t R, size_t K,
                                             dse_why *why);


/* 8x8 bytes: in[r * ldi + i] -> out[i * ldo + r] for the first ncols columns i */
DSE_TARGET_NEON static inline void dse_i8_neon_tr8x8(const int8_t *in, size_t ldi, int8_t *out, size_t ldo,
                                                     int ncols) {
    int8x8_t r0 = vld1_s8(in), r1 = vld1_s8(in + ldi), r2 = vld1_s8(in + 2 * ldi), r3 = vld1_s8(in + 3 * ldi);
    int8x8_t r4 = vld1_s8(in + 4 * ldi), r5 = vld1_s8(in + 5 * ldi), r6 = vld1_s8(in + 6 * ldi), r7 = vld1_s8(in + 7 * ldi);
    int8x8x2_t t01 = vtrn_s8(r0, r1), t23 = vtrn_s8(r2, r3), t45 = vtrn_s8(r4, r5), t67 = vtrn_s8(r6, r7);
    int16x4x2_t u02 = vtrn_s16(vreinterpret_s16_s8(t01.val[0]), vreinterpret_s16_s8(t23.val[0]));
    int16x4x2_t u13 = vtrn_s16(vreinterpret_s16_s8(t01.val[1]), vreinterpret_s16_s8(t23.val[1]));
    int16x4x2_t u46 = vtrn_s16(vreinterpret_s16_s8(t45.val[0]), vreinterpret_s16_s8(t67.val[0]));
    int16x4x2_t u57 = vtrn_s16(vreinterpret_s16_s8(t45.val[1]), vreinterpret_s16_s8(t67.val[1]));
    int32x2x2_t v04 = vtrn_s32(vreinterpret_s32_s16(u02.val[0]), vreinterpret_s32_s16(u46.val[0]));
    int32x2x2_t v15 = vtrn_s32(vreinterpret_s32_s16(u13.val[0]), vreinterpret_s32_s16(u57.val[0]));
    int32x2x2_t v26 = vtrn_s32(vreinterpret_s32_s16(u02.val[1]), vreinterpret_s32_s16(u46.val[1]));
    int32x2x2_t v37 = vtrn_s32(vreinterpret_s32_s16(u13.val[1]), vreinterpret_s32_s16(u57.val[1]));
    const int8x8_t col[8] = {vreinterpret_s8_s32(v04.val[0]), vreinterpret_s8_s32(v15.val[0]),
                             vreinterpret_s8_s32(v26.val[0]), vreinterpret_s8_s32(v37.val[0]),
                             vreinterpret_s8_s32(v04.val[1]), vreinterpret_s8_s32(v15.val[1]),
                             vreinterpret_s8_s32(v26.val[1]), vreinterpret_s8_s32(v37.val[1])};
    for (int i = 0; i < ncols; i++) vst1_s8(out + (size_t)i * ldo, col[i]);
}

/* The requantisation rule on 8 lanes (8 channels, or one channel broadcast), exactly requant.h:
 * y = clamp(zp_out + ((acc * M + 2^(n-1)) >> n), qmin, qmax). Three exact forms, chosen once
 * per channel block (or plane) from the shifts:
 *   WIDE  any n: t = acc * M in int64 (smull), srshl by -n = (t + 2^(n-1)) >> n at full
 *         precision (the ARM rounding shift adds the constant before shifting), saturating
 *         narrow (a value beyond int16 is beyond the clamp either way);
 *   HIGH  every n >= 32: q = sqdmulh(acc, M) = floor(t / 2^31), then srshl by 31 - n =
 *         floor((q + 2^(n-32)) / 2^(n-31)), which equals floor((t + 2^(n-1)) / 2^n): with
 *         t = q * 2^31 + r (0 <= r < 2^31) the latter is floor((Q + r / 2^31) / D) for the
 *         integers Q = q + 2^(n-32), D = 2^(n-31), and a fraction < 1 never crosses a multiple
 *         of D; sqdmulh cannot saturate (M >= 0);
 *   N31   every n == 31: sqrdmulh(acc, M) = floor((2 t + 2^31) / 2^32) = (t + 2^30) >> 31.
 * Then + zp_out and the clamp in saturating int16 (a saturated value stays beyond the int8
 * clamp bounds, so the result is the same). Most multipliers are < 1/2 (n >= 32): HIGH. */
enum { DSE_I8_RQ_WIDE = 0, DSE_I8_RQ_HIGH, DSE_I8_RQ_N31 };
typedef struct dse_i8_neon_rq {
    int kind;
    int32x4_t M0, M1, s0, s1;   /* M; HIGH: 31 - n */
    int64x2_t w[4];             /* WIDE: -n per pair of lanes */
    int16x8_t zp, lo, hi;
} dse_i8_neon_rq;

/* M[8], shift[8] (valid: 0 <= M < 2^31, 1 <= n <= 62) */
DSE_TARGET_NEON static inline void dse_i8_neon_rq_init(dse_i8_neon_rq *q, const int32_t *M, const int32_t *shift,
                                                       int zp_out, int qmin, int qmax) {
    int lo = 62, hi = 1;
    int32_t s[8];
    int64_t w[8];
    for (int i = 0; i < 8; i++) {
        lo = shift[i] < lo ? shift[i] : lo, hi = shift[i] > hi ? shift[i] : hi;
        s[i] = 31 - shift[i], w[i] = -(int64_t)shift[i];
    }
    q->kind = lo >= 32 ? DSE_I8_RQ_HIGH : lo == 31 && hi == 31 ? DSE_I8_RQ_N31 : DSE_I8_RQ_WIDE;
    q->M0 = vld1q_s32(M), q->M1 = vld1q_s32(M + 4), q->s0 = vld1q_s32(s), q->s1 = vld1q_s32(s + 4);
    for (int i = 0; i < 4; i++) q->w[i] = vld1q_s64(w + 2 * i);
    q->zp = vdupq_n_s16((int16_t)zp_out), q->lo = vdupq_n_s16((int16_t)qmin), q->hi = vdupq_n_s16((int16_t)qmax);
}

/* the same for one channel on every lane */
DSE_TARGET_NEON static inline void dse_i8_neon_rq_init1(dse_i8_neon_rq *q, int32_t M, int32_t shift, int zp_out,
                                                        int qmin, int qmax) {
    q->kind = shift >= 32 ? DSE_I8_RQ_HIGH : shift == 31 ? DSE_I8_RQ_N31 : DSE_I8_RQ_WIDE;
    q->M0 = q->M1 = vdupq_n_s32(M), q->s0 = q->s1 = vdupq_n_s32(31 - shift);
    q->w[0] = q->w[1] = q->w[2] = q->w[3] = vdupq_n_s64(-(int64_t)shift);
    q->zp = vdupq_n_s16((int16_t)zp_out), q->lo = vdupq_n_s16((int16_t)qmin), q->hi = vdupq_n_s16((int16_t)qmax);
}

DSE_TARGET_NEON static inline int8x8_t dse_i8_neon_rq8(const dse_i8_neon_rq *q, int32x4_t a0, int32x4_t a1) {
    int16x8_t r;
    if (q->kind == DSE_I8_RQ_HIGH) {
        r = vcombine_s16(vqmovn_s32(vrshlq_s32(vqdmulhq_s32(a0, q->M0), q->s0)),
                         vqmovn_s32(vrshlq_s32(vqdmulhq_s32(a1, q->M1), q->s1)));
    } else if (q->kind == DSE_I8_RQ_N31) {
        r = vcombine_s16(vqmovn_s32(vqrdmulhq_s32(a0, q->M0)), vqmovn_s32(vqrdmulhq_s32(a1, q->M1)));
    } else {
        int32x4_t r0 = vcombine_s32(vqmovn_s64(vrshlq_s64(vmull_s32(vget_low_s32(a0), vget_low_s32(q->M0)), q->w[0])),
                                    vqmovn_s64(vrshlq_s64(vmull_high_s32(a0, q->M0), q->w[1])));
        int32x4_t r1 = vcombine_s32(vqmovn_s64(vrshlq_s64(vmull_s32(vget_low_s32(a1), vget_low_s32(q->M1)), q->w[2])),
                                    vqmovn_s64(vrshlq_s64(vmull_high_s32(a1, q->M1), q->w[3])));
        r = vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1));
    }
    r = vminq_s16(vmaxq_s16(vqaddq_s16(r, q->zp), q->lo), q->hi);
    return vmovn_s16(r);
}

#endif
#endif
