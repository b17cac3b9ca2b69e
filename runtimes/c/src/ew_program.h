/* ew_program.h: the float dsedge.Elementwise program kernel's shared parts (the kernel and its
 * format: kernels/ref/elementwise.c). Part 1 (once): the decoded program and the compares on
 * the float's bits. Part 2 (each time the header is included with EW_FN and EW_TARGET defined):
 * the block loop, compiled once per instruction set from this one source (EW_FN(name) names
 * the copy, EW_TARGET its function attribute); each copy computes the same IEEE operations in
 * the same order, so every copy gives REF's bytes (the AVX2 copy, kernels/avx2/elementwise.c,
 * is the same code with wider vectors). */
#ifndef DSEDGE_EW_PROGRAM_H
#define DSEDGE_EW_PROGRAM_H

#include <math.h>

#include "mathf.h"
#include "requant.h"

#define EW_BLOCK 128
#define EW_MAX_STEPS 16
#define EW_MAX_CONSTS 16
#define DSE_EW_ABSENT (-1000000)

typedef struct ew_step { int op, n, bk; int arg[3]; } ew_step;   /* bk: Clip with constant, non-NaN bounds */
typedef struct ew_prog {
    ew_step step[EW_MAX_STEPS];
    float c[EW_MAX_CONSTS];
    int n_steps, n_consts, result;
    int quant, q_zp;            /* int8 output: y = QuantizeLinear(f(x), q_scale, q_zp) */
    float unit[2];              /* 0 and 1, the bounds of clip01 (HardSwish, HardSigmoid), as data: a
                                 * clamp to constants the compiler sees is not vectorised by GCC */
    float q_scale;
    const float *x;
    void *y;
    size_t numel;
} ew_prog;

/* Decodes and validates a node's program into p (0 when well formed), and the run's fields
 * (x, y, the int8 output parameters) when arena is given. */
DSE_INTERNAL int dse__ew_read(const dse_model *m, const dse_node *n, ew_prog *p);
DSE_SHARED void dse__ew_bind(const dse_model *m, const dse_node *n, uint8_t *arena, int quant, ew_prog *p);
/* One step of a program over a block by REF's copy (for a copy whose own step function handles
 * only some ops: kernels/avx2/elementwise.c). */
DSE_SHARED void dse__ew_step_ref(const ew_step *s, float *o, const float *a, const float *b, const float *c,
                                 const float *unit);

/* numpy's maximum/minimum and the clamps on the float's bits, so that compilers vectorise them
 * (GCC does not if-convert the signalling compares < >): the same results as
 *     max_np(a, b) = (a > b || a != a) ? a : b,   min_np(a, b) = (a < b || a != a) ? a : b
 * with a > b on the bits: neither is NaN, not both zeros (+0 > -0 is false), and the integer
 * key (sign-magnitude made two's complement) of a above b's. NaN results are canonical. */
static inline int32_t ew_key(uint32_t u) { return (int32_t)(u ^ ((uint32_t)((int32_t)u >> 31) >> 1)); }
static inline uint32_t ew_isnan(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }
static inline uint32_t ew_gt(uint32_t ua, uint32_t ub) {
    const uint32_t numbers = (uint32_t)(ew_isnan(ua) == 0) & (uint32_t)(ew_isnan(ub) == 0);
    const uint32_t not_zeros = (uint32_t)(((ua | ub) & 0x7FFFFFFFu) != 0);
    return numbers & not_zeros & (uint32_t)(ew_key(ua) > ew_key(ub));
}
static inline float ew_canon(uint32_t u) { return dse_u2f(ew_isnan(u) ? DSE_NAN_BITS : u); }
static inline float ew_max(float a, float b) {
    const uint32_t ua = dse_f2u(a), ub = dse_f2u(b);
    return ew_canon((ew_gt(ua, ub) | ew_isnan(ua)) ? ua : ub);
}
static inline float ew_min(float a, float b) {
    const uint32_t ua = dse_f2u(a), ub = dse_f2u(b);
    return ew_canon((ew_gt(ub, ua) | ew_isnan(ua)) ? ua : ub);
}
/* clamp(v) to constant, non-NaN bounds [lo, hi] (Clip's max then min): NaN made canonical first,
 * then two key compares. klo is the key of lo with -0 taken as +0 and khi of hi with +0 taken
 * as -0, so that v == lo and v == hi (zeros of either sign included) give the bound, as the
 * float compares do; a canonical NaN stays (its key is above every number's, and it is
 * recognised for the min). */
typedef struct ew_bounds { int32_t klo, khi; uint32_t ulo, uhi; } ew_bounds;
static inline ew_bounds ew_bounds_of(float lo, float hi) {
    ew_bounds b;
    b.ulo = dse_f2u(lo), b.uhi = dse_f2u(hi);
    b.klo = ew_key((b.ulo & 0x7FFFFFFFu) ? b.ulo : 0u);
    b.khi = ew_key((b.uhi & 0x7FFFFFFFu) ? b.uhi : 0x80000000u);
    return b;
}
static inline float ew_clamp(float v, ew_bounds b) {
    uint32_t u = dse_f2u(v);
    u = ew_isnan(u) ? DSE_NAN_BITS : u;
    u = ew_key(u) > b.klo ? u : b.ulo;
    u = ((uint32_t)(ew_key(u) < b.khi) | (uint32_t)(u == DSE_NAN_BITS)) ? u : b.uhi;
    return dse_u2f(u);
}

#endif /* DSEDGE_EW_PROGRAM_H */

#if defined(EW_FN) && defined(EW_TARGET)
#ifndef EW_STEP_FN
/* One step over a block: o[i] = op(a[i], b[i], c[i]) (a constant operand is a block of copies of
 * it, an absent Clip bound -inf / +inf: max/min with them change nothing). Each value is the
 * op's own kernel's expression; the float arithmetic and the selects on bits are separate
 * loops (GCC if-converts a loop's selects only when it has no trapping float operation), so
 * every loop vectorises, except those calling the runtime's rounding functions. */
EW_TARGET static void EW_FN(ew_step_run)(const ew_step *s, float *restrict o, const float *restrict a, const float *restrict b,
                        const float *restrict c, const float *unit) {
    float t[EW_BLOCK];
#define EW_LOOP(EXPR) for (int i = 0; i < EW_BLOCK; i++) { const float x_ = a[i]; o[i] = (EXPR); }
#define EW_BITS(EXPR) for (int i = 0; i < EW_BLOCK; i++) { const uint32_t u_ = dse_f2u(o[i]); o[i] = (EXPR); }
    switch (s->op) {
    case DSE_OP_ADD: EW_LOOP(x_ + b[i]) EW_BITS(ew_canon(u_)) break;
    case DSE_OP_SUB: EW_LOOP(x_ - b[i]) EW_BITS(ew_canon(u_)) break;
    case DSE_OP_MUL: EW_LOOP(x_ * b[i]) EW_BITS(ew_canon(u_)) break;
    case DSE_OP_DIV: EW_LOOP(x_ / b[i]) EW_BITS(ew_canon(u_)) break;
    case DSE_OP_MIN: EW_LOOP(ew_min(x_, b[i])) break;
    case DSE_OP_MAX: EW_LOOP(ew_max(x_, b[i])) break;
    case DSE_OP_NEG: EW_LOOP(-x_) EW_BITS(ew_canon(u_)) break;
    case DSE_OP_ABS: EW_LOOP(ew_canon(dse_f2u(x_) & 0x7FFFFFFFu)) break;
    case DSE_OP_RELU: EW_LOOP(x_) EW_BITS(ew_canon((int32_t)u_ > 0 || ew_isnan(u_) ? u_ : 0u)) break;
    case DSE_OP_SQRT: EW_LOOP(sqrtf(x_)) EW_BITS(ew_canon(u_)) break;
    case DSE_OP_RECIPROCAL: EW_LOOP(1.0f / x_) EW_BITS(ew_canon(u_)) break;
    case DSE_OP_FLOOR: EW_LOOP(dse_canonf(dse_floorf(x_))) break;
    case DSE_OP_CEIL: EW_LOOP(dse_canonf(dse_ceilf(x_))) break;
    case DSE_OP_ROUND: EW_LOOP(dse_canonf(dse_rintf(x_))) break;
    case DSE_OP_SIGN:   /* x > 0: 1, x < 0: -1, +-0: +0, NaN: NaN */
        EW_LOOP(x_)
        EW_BITS(dse_u2f(ew_isnan(u_) ? DSE_NAN_BITS : !(u_ & 0x7FFFFFFFu) ? 0u : (u_ >> 31) ? 0xBF800000u : 0x3F800000u))
        break;
    case DSE_OP_HARDSWISH: {     /* x * clip01(x * (1/6) + 0.5) */
        for (int i = 0; i < EW_BLOCK; i++) o[i] = a[i] * (float)(1.0 / 6.0) + 0.5f;
        const ew_bounds u01 = ew_bounds_of(unit[0], unit[1]);
        for (int i = 0; i < EW_BLOCK; i++) t[i] = ew_clamp(o[i], u01);   /* not in place: vectorises */
        EW_LOOP(x_ * t[i]) EW_BITS(ew_canon(u_)) break;
    }
    case DSE_OP_SOFTSIGN: EW_LOOP(x_ / (1.0f + dse_u2f(dse_f2u(x_) & 0x7FFFFFFFu))) EW_BITS(ew_canon(u_)) break;
    case DSE_OP_LEAKYRELU:       /* x >= 0 ? x : x * alpha: true for +-0, false for NaN */
        EW_LOOP(x_ * b[i])
        for (int i = 0; i < EW_BLOCK; i++) {
            const uint32_t ux = dse_f2u(a[i]);
            o[i] = !ew_isnan(ux) && (!(ux >> 31) || !(ux & 0x7FFFFFFFu)) ? a[i] : o[i];
        }
        EW_BITS(ew_canon(u_)) break;
    case DSE_OP_HARDSIGMOID: {   /* clip01(alpha * x + beta) */
        for (int i = 0; i < EW_BLOCK; i++) t[i] = b[i] * a[i] + c[i];
        const ew_bounds u01 = ew_bounds_of(unit[0], unit[1]);
        for (int i = 0; i < EW_BLOCK; i++) o[i] = ew_clamp(t[i], u01);
        break;
    }
    case DSE_OP_CLIP:
        if (s->bk) {                                      /* constant, non-NaN bounds */
            const ew_bounds bb = ew_bounds_of(b[0], c[0]);
            EW_LOOP(ew_clamp(x_, bb)) break;
        }
        EW_LOOP(ew_min(ew_max(x_, b[i]), c[i])) break;
    default: EW_LOOP(x_) break;                           /* not reached: checked at load */
#undef EW_LOOP
#undef EW_BITS
    }
}
#define EW_STEP_FN EW_FN(ew_step_run)
#endif  /* EW_STEP_FN: a copy may bring its own step function (kernels/avx2/elementwise.c) */

EW_TARGET static void EW_FN(ew_blocks)(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const ew_prog *p = arg;
    float val[EW_MAX_STEPS + 1][EW_BLOCK], cb[EW_MAX_CONSTS + 2][EW_BLOCK];
    const float inf = dse_u2f(0x7F800000u);
    for (int j = 0; j < p->n_consts + 2; j++) {          /* constants, then -inf and +inf, as blocks */
        const float cv = j < p->n_consts ? p->c[j] : j == p->n_consts ? -inf : inf;
        for (int i = 0; i < EW_BLOCK; i++) cb[j][i] = cv;
    }
    for (size_t blk = begin; blk < end; blk++) {
        const size_t i0 = blk * EW_BLOCK, cnt = p->numel - i0 < EW_BLOCK ? p->numel - i0 : EW_BLOCK;
        const float *x0 = p->x + i0;                      /* value 0: x itself, read in place */
        if (cnt < EW_BLOCK) {                             /* a short last block: padded with zeros */
            for (size_t i = 0; i < cnt; i++) val[0][i] = p->x[i0 + i];
            for (size_t i = cnt; i < EW_BLOCK; i++) val[0][i] = 0.0f;
            x0 = val[0];
        }
        /* the last step writes y itself when it is the result of a whole float block and y is
         * not x (in place, a step would read the x it writes: through the copy below) */
        float *direct = !p->quant && cnt == EW_BLOCK && p->result == p->n_steps && (const void *)p->x != p->y
                            ? (float *)p->y + i0 : NULL;
        for (int k = 0; k < p->n_steps; k++) {
            const ew_step *s = &p->step[k];
            const float *in[3];
            for (int j = 0; j < 3; j++) {
                const int a = j < s->n ? s->arg[j] : DSE_EW_ABSENT;
                in[j] = a > 0 ? val[a] : a == 0 ? x0 : a == DSE_EW_ABSENT ? cb[p->n_consts + (j == 1 ? 0 : 1)] : cb[-1 - a];
            }
            EW_STEP_FN(s, direct && k + 1 == p->n_steps ? direct : val[k + 1], in[0], in[1], in[2], p->unit);
        }
        if (direct) continue;
        const float *r = p->result ? val[p->result] : x0;
        if (p->quant) {                                   /* QuantizeLinear's bytes (quantize.c) */
            int8_t qb[EW_BLOCK], *y = (int8_t *)p->y + i0;
#ifdef EW_QUANTIZE                                        /* an ISA's copy of the same arithmetic */
            EW_QUANTIZE(r, cnt == EW_BLOCK ? y : qb, p->q_scale, p->q_zp);
#else
            int32_t q[EW_BLOCK];
            for (int j = 0; j < EW_BLOCK; j += DSE_Q_BLOCK) dse_quantize_block(r + j, p->q_scale, p->q_zp, -128, 127, q + j);
            for (size_t i = 0; i < EW_BLOCK; i++) qb[i] = (int8_t)q[i];
            if (cnt == EW_BLOCK) for (size_t i = 0; i < EW_BLOCK; i++) y[i] = qb[i];
#endif
            if (cnt < EW_BLOCK) for (size_t i = 0; i < cnt; i++) y[i] = qb[i];
            continue;
        }
        float *y = (float *)p->y + i0;
        if (cnt == EW_BLOCK) for (size_t i = 0; i < EW_BLOCK; i++) y[i] = r[i];
        else for (size_t i = 0; i < cnt; i++) y[i] = r[i];
    }
}

#undef EW_FN
#undef EW_TARGET
#undef EW_QUANTIZE
#undef EW_STEP_FN
#endif
