/* elementwise.c (NEON, arm64): the float dsedge.Elementwise program kernel (kernels/ref/elementwise.c)
 * compiled for arm64 with the transcendental steps (Exp, Sigmoid, Tanh, Erf) as the NEON
 * Exp/Sigmoid/Tanh/Erf kernels compute them (src/vec_mathf.h's float32 polynomials: the AVX2
 * copy's bytes, within docs/kernels.md's tolerance of REF), four vectors at a time, instead of
 * REF's double evaluation one element at a time; every other step runs in REF's copy (REF's bytes;
 * one copy of that code in the library).
 * Float and int8 (a fused trailing QuantizeLinear: REF's quantize.c) outputs. Only in a build
 * without -DDSE_REF_FLOAT (kernels_arm64.inc): with it, REF's copy runs. */
#include "neon_f32.h"

#if DSE_NEON_F32
#include "ew_program.h"

#define EW_VMATH(o, a, FN)                                                              \
    for (int i_ = 0; i_ < EW_BLOCK; i_ += 16) {                                         \
        float32x4_t x_[4], y_[4];                                                       \
        for (int k_ = 0; k_ < 4; k_++) x_[k_] = vld1q_f32((a) + i_ + 4 * k_);           \
        FN(4, x_, y_);                                                                  \
        for (int k_ = 0; k_ < 4; k_++) vst1q_f32((o) + i_ + 4 * k_, y_[k_]);            \
    }
#define EW_EXP(o, a) EW_VMATH(o, a, dse__neon_exp_n)
#define EW_SIGMOID(o, a) EW_VMATH(o, a, dse__neon_sigmoid_n)
#define EW_TANH(o, a) EW_VMATH(o, a, dse__neon_tanh_n)
#define EW_ERF(o, a) EW_VMATH(o, a, dse__neon_erf_n)
#define EW_STEP_DELEGATE dse__ew_step_ref   /* the other steps: REF's code, REF's copy */
#define EW_FN(name) name##_neon
#define EW_TARGET DSE_TARGET_NEON
#include "ew_program.h"
#undef EW_VMATH

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
