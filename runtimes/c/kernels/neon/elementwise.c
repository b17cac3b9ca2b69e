/* elementwise.c (NEON, arm64): the float dsedge.Elementwise program kernel (kernels/ref/elementwise.c)
 * for arm64, the counterpart of kernels/avx2/elementwise.c: REF's block loop (src/ew_program.h,
 * part 2) with its own step function: the common steps as explicit NEON expressions, operation and
 * NaN canonicalisation in one pass per step (REF's generic loop, vectorised by the compiler, makes
 * two passes per step: on AVX2 that cost 2-9x the single-op kernels' time per element); the
 * rare ones (Floor, Ceil, Round, Sign, Softsign, a Clip with bounds that are not constant) by REF's
 * code. Each step is REF's IEEE operation, numpy's maximum/minimum and REF's clamp by compare and
 * bit-select (NEON's fmax/fmin differ on NaN and on -0 against +0): REF's bytes, float and int8
 * outputs alike (the int8 form quantises with REF's quantize.c), so also in a -DDSE_REF_FLOAT build.
 * Tested under qemu-aarch64 in tests/runtime/test_kernels_neon_ew.py. */
#include "isa.h"

#if DSE_ARCH_ARM64
#include <arm_neon.h>

#include "ew_program.h"

static inline __attribute__((always_inline)) float32x4_t ew_canon4(float32x4_t y) {
    return vbslq_f32(vceqq_f32(y, y), y, vreinterpretq_f32_u32(vdupq_n_u32(DSE_NAN_BITS)));
}
static inline __attribute__((always_inline)) uint32x4_t ew_isnan4(float32x4_t v) { return vmvnq_u32(vceqq_f32(v, v)); }
/* (v > lo or v NaN) ? v : lo, then (v < hi or v NaN) ? v : hi: np.maximum then np.minimum */
static inline __attribute__((always_inline)) float32x4_t ew_clamp4(float32x4_t v, float32x4_t lo, float32x4_t hi) {
    v = vbslq_f32(vorrq_u32(vcgtq_f32(v, lo), ew_isnan4(v)), v, lo);
    return vbslq_f32(vorrq_u32(vcltq_f32(v, hi), ew_isnan4(v)), v, hi);
}

static void ew_step_neon(const ew_step *s, float *o, const float *a, const float *b, const float *c,
                         const float *unit) {
#define EW4(EXPR)                                                                       \
    for (int i = 0; i < EW_BLOCK; i += 4) {                                             \
        const float32x4_t x = vld1q_f32(a + i);                                         \
        vst1q_f32(o + i, ew_canon4(EXPR));                                              \
    }
#define EW4B(EXPR)                                                                      \
    for (int i = 0; i < EW_BLOCK; i += 4) {                                             \
        const float32x4_t x = vld1q_f32(a + i), y = vld1q_f32(b + i);                   \
        vst1q_f32(o + i, ew_canon4(EXPR));                                              \
    }
    const float32x4_t zero = vdupq_n_f32(0.0f);
    switch (s->op) {
    case DSE_OP_ADD: EW4B(vaddq_f32(x, y)) return;
    case DSE_OP_SUB: EW4B(vsubq_f32(x, y)) return;
    case DSE_OP_MUL: EW4B(vmulq_f32(x, y)) return;
    case DSE_OP_DIV: EW4B(vdivq_f32(x, y)) return;
    case DSE_OP_MAX: EW4B(vbslq_f32(vorrq_u32(vcgtq_f32(x, y), ew_isnan4(x)), x, y)) return;   /* a > b or a NaN ? a : b */
    case DSE_OP_MIN: EW4B(vbslq_f32(vorrq_u32(vcltq_f32(x, y), ew_isnan4(x)), x, y)) return;   /* a < b or a NaN ? a : b */
    case DSE_OP_NEG: EW4(vnegq_f32(x)) return;
    case DSE_OP_ABS: EW4(vabsq_f32(x)) return;
    case DSE_OP_RELU: EW4(vbslq_f32(vorrq_u32(vcgtq_f32(x, zero), ew_isnan4(x)), x, zero)) return;   /* x > 0 or NaN ? x : +0 */
    case DSE_OP_SQRT: EW4(vsqrtq_f32(x)) return;
    case DSE_OP_RECIPROCAL: EW4(vdivq_f32(vdupq_n_f32(1.0f), x)) return;
    case DSE_OP_HARDSWISH: {   /* x * clip01(x * (1/6) + 0.5), no FMA */
        const float32x4_t u0 = vdupq_n_f32(unit[0]), u1 = vdupq_n_f32(unit[1]);
        EW4(vmulq_f32(x, ew_clamp4(vaddq_f32(vmulq_f32(x, vdupq_n_f32((float)(1.0 / 6.0))), vdupq_n_f32(0.5f)), u0, u1)))
        return;
    }
    case DSE_OP_LEAKYRELU:     /* x >= 0 ? x : x * alpha (true for +-0, false for NaN) */
        EW4B(vbslq_f32(vcgeq_f32(x, zero), x, vmulq_f32(x, y)))
        return;
    case DSE_OP_HARDSIGMOID: { /* clip01(alpha * x + beta), no FMA */
        const float32x4_t u0 = vdupq_n_f32(unit[0]), u1 = vdupq_n_f32(unit[1]);
        for (int i = 0; i < EW_BLOCK; i += 4) {
            const float32x4_t t = vaddq_f32(vmulq_f32(vld1q_f32(b + i), vld1q_f32(a + i)), vld1q_f32(c + i));
            vst1q_f32(o + i, ew_canon4(ew_clamp4(t, u0, u1)));
        }
        return;
    }
    case DSE_OP_CLIP:
        if (s->bk) {           /* constant, non-NaN bounds (b[0], c[0]; -inf / +inf when absent) */
            const float32x4_t lo = vdupq_n_f32(b[0]), hi = vdupq_n_f32(c[0]);
            EW4(ew_clamp4(x, lo, hi))
            return;
        }
        break;
    default: break;
    }
#undef EW4
#undef EW4B
    dse__ew_step_ref(s, o, a, b, c, unit);
}

#define EW_STEP_FN ew_step_neon
#define EW_FN(name) name##_neon
#define EW_TARGET DSE_TARGET_NEON
#include "ew_program.h"

void dse_f32_elementwise__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 0, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_neon, &p);
}

void dse_i8_elementwise__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 1, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_neon, &p);
}

#endif
