/* binary.c (NEON, arm64): float32 Add (with its fused clamp), Sub, Mul, Div with numpy
 * broadcasting, 4 elements per instruction; the counterpart of kernels/avx2/binary.c. One IEEE
 * operation per element as REF (kernels/ref/{add,binary}.c), NaN results canonical, the clamp as
 * numpy's maximum/minimum by compare and bit-select: the REF kernels' bytes exactly (so these stay
 * in a -DDSE_REF_FLOAT build).
 *
 * Broadcasting is REF's walker (dse__ew_walk, kernels/ref/binary.c): axes merged where both inputs
 * continue contiguously or both broadcast, so each row is vector (op) vector, vector (op) scalar
 * or scalar (op) vector; rows, and parts of 16384 elements of long rows, over the threads. In place
 * allowed (each element read before it is written). */
#include "isa.h"

#if DSE_ARCH_ARM64
#include <arm_neon.h>

enum { NBIN_ADD, NBIN_SUB, NBIN_MUL, NBIN_DIV };

static inline __attribute__((always_inline)) float32x4_t nbin_apply(const int op, float32x4_t a, float32x4_t b,
                                                                    const dse_ew_ctx *c) {
    float32x4_t v = op == NBIN_ADD ? vaddq_f32(a, b) : op == NBIN_SUB ? vsubq_f32(a, b)
                  : op == NBIN_MUL ? vmulq_f32(a, b) : vdivq_f32(a, b);
    if (op == NBIN_ADD && c->i[0]) {   /* v > lo || NaN ? v : lo; then < hi (kernels/ref/add.c) */
        const float32x4_t lo = vdupq_n_f32(c->f[0]), hi = vdupq_n_f32(c->f[1]);
        v = vbslq_f32(vorrq_u32(vcgtq_f32(v, lo), vmvnq_u32(vceqq_f32(v, v))), v, lo);
        v = vbslq_f32(vorrq_u32(vcltq_f32(v, hi), vmvnq_u32(vceqq_f32(v, v))), v, hi);
    }
    return vbslq_f32(vceqq_f32(v, v), v, vreinterpretq_f32_u32(vdupq_n_u32(0x7FC00000u)));
}

/* y[0, len) = a (op) b, a and b with element strides 0 or 1 (REF's walker). */
static inline __attribute__((always_inline)) void nbin_row_op(const int op, float *y, const float *a, size_t sa,
                                                               const float *b, size_t sb, size_t len, const dse_ew_ctx *c) {
    size_t i = 0;
    if (sa && sb) {
        for (; i + 8 <= len; i += 8) {
            const float32x4_t a0 = vld1q_f32(a + i), a1 = vld1q_f32(a + i + 4), b0 = vld1q_f32(b + i), b1 = vld1q_f32(b + i + 4);
            vst1q_f32(y + i, nbin_apply(op, a0, b0, c));
            vst1q_f32(y + i + 4, nbin_apply(op, a1, b1, c));
        }
    } else if (sa) {
        const float32x4_t bv = vdupq_n_f32(*b);
        for (; i + 8 <= len; i += 8) {
            const float32x4_t a0 = vld1q_f32(a + i), a1 = vld1q_f32(a + i + 4);
            vst1q_f32(y + i, nbin_apply(op, a0, bv, c));
            vst1q_f32(y + i + 4, nbin_apply(op, a1, bv, c));
        }
    } else if (sb) {
        const float32x4_t av = vdupq_n_f32(*a);
        for (; i + 8 <= len; i += 8) {
            const float32x4_t b0 = vld1q_f32(b + i), b1 = vld1q_f32(b + i + 4);
            vst1q_f32(y + i, nbin_apply(op, av, b0, c));
            vst1q_f32(y + i + 4, nbin_apply(op, av, b1, c));
        }
    }
    for (; i < len; i += 4) {   /* the tail (or a scalar-by-scalar row) through small buffers */
        float ta[4], tb[4], ty[4];
        const size_t k = len - i < 4 ? len - i : 4;
        for (size_t t = 0; t < 4; t++) {
            ta[t] = a[sa ? i + (t < k ? t : 0) : 0];
            tb[t] = b[sb ? i + (t < k ? t : 0) : 0];
        }
        vst1q_f32(ty, nbin_apply(op, vld1q_f32(ta), vld1q_f32(tb), c));
        for (size_t t = 0; t < k; t++) y[i + t] = ty[t];
    }
}

#define NBIN(OP, NAME)                                                                                 \
    static void nbin_row_##NAME(uint8_t *y, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, \
                                const dse_ew_ctx *c) {                                                  \
        (void)nx;                                                                                       \
        nbin_row_op(OP, (float *)y, (const float *)x[0], s[0], (const float *)x[1], s[1], len, c);      \
    }                                                                                                   \
    void dse_f32_##NAME##__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        dse_ew_ctx c = {{0.0f, 0.0f, 0.0f, 0.0f}, {0, 0}, 4, NULL};                                     \
        if ((OP) == NBIN_ADD) {                                                                         \
            const dse_attr *lo = dse__attr(n, DSE_A_act_min, DSE_ATTR_FLOAT), *hi = dse__attr(n, DSE_A_act_max, DSE_ATTR_FLOAT); \
            c.i[0] = lo || hi;                                                                          \
            c.f[0] = lo ? lo->f : -__builtin_inff();                                                    \
            c.f[1] = hi ? hi->f : __builtin_inff();                                                     \
        }                                                                                               \
        dse__ew_walk(m, n, arena, 2, nbin_row_##NAME, &c, cx);                                          \
    }
NBIN(NBIN_ADD, add)
NBIN(NBIN_SUB, sub)
NBIN(NBIN_MUL, mul)
NBIN(NBIN_DIV, div)
#undef NBIN

#endif
