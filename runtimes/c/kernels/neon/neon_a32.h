/* neon_a32.h: the AArch64-only Advanced SIMD intrinsics that the int8 kernels of kernels/neon
 * use, for armv7 NEON (included by i8_neon.h when DSE_ARCH_ARM32), so that the same sources
 * compile for both (kernels/neon32/). Each has exactly the AArch64 intrinsic's result, built
 * from ARMv7 NEON instructions; all are integer (or lane moves), so they are exact on ARMv7 too.
 * Float arithmetic is not given here on purpose: ARMv7 NEON float flushes subnormals to zero
 * and uses the default NaN, so the kernels' float_out tails run in scalar VFP code on armv7
 * (i8_neon.h, dse_i8_neon_fout).
 *
 * Alignment: ARMv7 NEON loads and stores may carry an alignment hint, which the compiler derives
 * from the pointer type (`vst1_lane_u32` through a `uint32_t *` may become `vst1.32 {d0[0]},
 * [r0:32]`, which faults on an unaligned address; AArch64 has no such hints). The kernels' byte
 * pointers are unaligned, so such accesses go through dse_neon_ld4dup / memcpy instead. */
#ifndef DSEDGE_NEON_A32_H
#define DSEDGE_NEON_A32_H

#include <arm_neon.h>
#include <string.h>

#define DSE_A32_AI DSE_TARGET_NEON32 static inline __attribute__((always_inline))

/* SMULL2 / SMLAL2: the high halves' widening products */
DSE_A32_AI int16x8_t vmull_high_s8(int8x16_t a, int8x16_t b) { return vmull_s8(vget_high_s8(a), vget_high_s8(b)); }
DSE_A32_AI int16x8_t vmlal_high_s8(int16x8_t acc, int8x16_t a, int8x16_t b) {
    return vmlal_s8(acc, vget_high_s8(a), vget_high_s8(b));
}
DSE_A32_AI int64x2_t vmull_high_s32(int32x4_t a, int32x4_t b) { return vmull_s32(vget_high_s32(a), vget_high_s32(b)); }
/* SADDW2 */
DSE_A32_AI int32x4_t vaddw_high_s16(int32x4_t a, int16x8_t b) { return vaddw_s16(a, vget_high_s16(b)); }
/* ADDP (128-bit): {a0 + a1, a2 + a3, b0 + b1, b2 + b3}, wrapping */
DSE_A32_AI int32x4_t vpaddq_s32(int32x4_t a, int32x4_t b) {
    return vcombine_s32(vpadd_s32(vget_low_s32(a), vget_high_s32(a)), vpadd_s32(vget_low_s32(b), vget_high_s32(b)));
}
/* DUP (element) and SQDMULH (by element) from a 128-bit vector: lane l (a constant 0..3) is
 * lane l & 1 of its 64-bit half */
#define vdupq_laneq_s32(v, l) vdupq_lane_s32((l) < 2 ? vget_low_s32(v) : vget_high_s32(v), (l) & 1)
#define vqdmulhq_laneq_s32(a, v, l) vqdmulhq_lane_s32(a, (l) < 2 ? vget_low_s32(v) : vget_high_s32(v), (l) & 1)

/* the 4 bytes at p (any alignment) on every 32-bit lane: AArch64's ld1r */
DSE_A32_AI int32x4_t dse_neon_ld4dup(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vdupq_n_s32(v);
}

#endif
