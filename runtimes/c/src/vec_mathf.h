/* vec_mathf.h: the float32 vector exp, sigmoid, SiLU, tanh and erf of the optimised float kernels,
 * written once for every instruction set (a template, like ew_program.h's part 2): src/avx2_f32.h
 * instantiates it for AVX2 (8 lanes), src/neon_f32.h for arm64 NEON (4 lanes). Each instance is
 * the same sequence of IEEE float32 operations per lane (the same constants; a fused multiply-add
 * exactly where VM_FMA/VM_FNMA stand, every other product and sum rounded on its own: the files
 * are compiled with -ffp-contract=off), the same compares, selects and integer steps, so every
 * instance gives the same bytes for every input (NaN lanes included, up to the canonical NaN the
 * kernels write). Error over every finite float32: docs/kernels.md ("Optimised float variants").
 *
 * Before including, the ISA's header defines (and this file undefines at its end):
 *   VM_F, VM_I                 float and int32 vector types
 *   VM_AI                      the functions' attributes (static inline, target)
 *   VM_NAME(f)                 the instance's name of function f (e.g. dse__avx2_##f)
 *   VM_VL(N)                   a loop over v_ in [0, N), unrolled
 *   VM_C(c)                    every lane c
 *   VM_ADD VM_SUB VM_MUL VM_DIV(a, b)   one rounding each
 *   VM_FMA(a, b, c)            a*b + c, VM_FNMA(a, b, c): c - a*b, one rounding (FMA)
 *   VM_MIN(a, b), VM_MAX(a, b) x86's minps/maxps: a < b ? a : b, a > b ? a : b (so b when either
 *                              is NaN, and b for +-0 against -+0)
 *   VM_RINT(a)                 round to nearest, ties to even
 *   VM_CVT(a)                  an integral float to int32
 *   VM_ISRA1 VM_IADD VM_ISUB   int32 shift right arithmetic by 1, add, subtract; VM_I127 every lane 127
 *   VM_EXP2I(i)                the float whose bits are i << 23 (2^(i-127) for i in [1, 254])
 *   VM_OR VM_AND(a, b), VM_ANDNOT(a, b) = ~a & b on the bits
 *   VM_BLEND(a, b, m)          m ? b : a per lane (x86's blendv argument order)
 *   VM_GE VM_LT(a, b)          ordered compares (false when either is NaN); VM_ISNAN(a)
 * The vector functions work on N (1..4) vectors at once, statement by statement, so that the N
 * long dependency chains interleave (one chain is latency-bound); VM_NAME(exp)(x) etc. are the
 * one-vector forms. */

/* exp(xc) for xc in [-104, 88.7228394] (the clamped argument; NaN lanes give an unspecified value):
 * xc = n ln2 + r (Cody-Waite, |r| <= ln2/2), exp(r) by Cephes' degree-7 polynomial (FMA), times 2^n
 * as two exact powers of two (so subnormal results round once, correctly). */
VM_AI void VM_NAME(exp_clamped_n)(const int N, const VM_F *xc, VM_F *y) {
    VM_F n[4], r[4], p[4];
    VM_I ni[4];
    VM_VL(N) n[v_] = VM_RINT(VM_MUL(xc[v_], VM_C(1.44269504088896341f)));
    VM_VL(N) r[v_] = VM_FNMA(n[v_], VM_C(0.693359375f), xc[v_]);
    VM_VL(N) r[v_] = VM_FNMA(n[v_], VM_C(-2.12194440e-4f), r[v_]);
    VM_VL(N) p[v_] = VM_FMA(VM_C(1.9875691500e-4f), r[v_], VM_C(1.3981999507e-3f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], r[v_], VM_C(8.3334519073e-3f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], r[v_], VM_C(4.1665795894e-2f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], r[v_], VM_C(1.6666665459e-1f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], r[v_], VM_C(5.0000001201e-1f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], VM_MUL(r[v_], r[v_]), VM_ADD(r[v_], VM_C(1.0f)));
    VM_VL(N) ni[v_] = VM_CVT(n[v_]);
    VM_VL(N) {
        const VM_I n1 = VM_ISRA1(ni[v_]), n2 = VM_ISUB(ni[v_], n1);
        const VM_F s1 = VM_EXP2I(VM_IADD(n1, VM_I127)), s2 = VM_EXP2I(VM_IADD(n2, VM_I127));
        y[v_] = VM_MUL(VM_MUL(p[v_], s1), s2);
    }
}

/* exp(x): the argument clamped to [-104, 88.7228394] (so x >= 88.7228394 -> +inf, x <= -104 -> 0),
 * exp_clamped_n, NaN stays. */
VM_AI void VM_NAME(exp_n)(const int N, const VM_F *x, VM_F *y) {
    VM_F xc[4];
    VM_VL(N) xc[v_] = VM_MIN(VM_MAX(x[v_], VM_C(-104.0f)), VM_C(88.72283935546875f));
    VM_NAME(exp_clamped_n)(N, xc, y);
    VM_VL(N) y[v_] = VM_BLEND(y[v_], x[v_], VM_ISNAN(x[v_]));   /* NaN stays */
}

/* sigmoid(x) = 1 / (1 + exp(-x)) from e = exp(-|x|): 1 / (1 + e) for x >= 0 and e / (1 + e) below
 * (no cancellation; subnormal results kept). */
VM_AI VM_F VM_NAME(sigmoid_of_e)(VM_F x, VM_F e) {
    return VM_DIV(VM_BLEND(e, VM_C(1.0f), VM_GE(x, VM_C(0.0f))), VM_ADD(VM_C(1.0f), e));
}
VM_AI void VM_NAME(sigmoid_n)(const int N, const VM_F *x, VM_F *y) {
    VM_F m[4], e[4];
    VM_VL(N) m[v_] = VM_OR(x[v_], VM_C(-0.0f));   /* -|x| */
    VM_NAME(exp_n)(N, m, e);
    VM_VL(N) y[v_] = VM_NAME(sigmoid_of_e)(x[v_], e[v_]);
}

/* SiLU x * sigmoid(x) with sigmoid_n's bytes for every x that is not NaN (a NaN x gives a NaN, of
 * unspecified payload): e = exp(-|x|) with exp_n's operations but the two that change nothing for an
 * argument <= 0 that is not NaN (the upper clamp, min(., 88.72); the NaN blend: x * anything is NaN
 * when x is), then x * sigmoid_of_e. Not canonical. */
VM_AI void VM_NAME(silu_n)(const int N, const VM_F *x, VM_F *y) {
    VM_F mc[4], e[4];
    VM_VL(N) mc[v_] = VM_MAX(VM_OR(x[v_], VM_C(-0.0f)), VM_C(-104.0f));   /* max(-|x|, -104) */
    VM_NAME(exp_clamped_n)(N, mc, e);
    VM_VL(N) y[v_] = VM_MUL(x[v_], VM_NAME(sigmoid_of_e)(x[v_], e[v_]));
}

/* tanh: |x| < 0.625 by Cephes' odd polynomial, else 1 - 2 / (exp(2|x|) + 1); sign of x. */
VM_AI void VM_NAME(tanh_n)(const int N, const VM_F *x, VM_F *y) {
    VM_F a[4], z[4], p[4], e[4], a2[4];
    VM_VL(N) a[v_] = VM_ANDNOT(VM_C(-0.0f), x[v_]);
    VM_VL(N) a2[v_] = VM_ADD(a[v_], a[v_]);
    VM_NAME(exp_n)(N, a2, e);
    VM_VL(N) z[v_] = VM_MUL(a[v_], a[v_]);
    VM_VL(N) p[v_] = VM_FMA(VM_C(-5.70498872745e-3f), z[v_], VM_C(2.06390887954e-2f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], z[v_], VM_C(-5.37397155531e-2f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], z[v_], VM_C(1.33314422036e-1f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], z[v_], VM_C(-3.33332819422e-1f));
    VM_VL(N) {
        const VM_F small = VM_FMA(VM_MUL(p[v_], z[v_]), a[v_], a[v_]);
        const VM_F big = VM_SUB(VM_C(1.0f), VM_DIV(VM_C(2.0f), VM_ADD(e[v_], VM_C(1.0f))));
        const VM_F t = VM_BLEND(big, small, VM_LT(a[v_], VM_C(0.625f)));
        y[v_] = VM_OR(t, VM_AND(x[v_], VM_C(-0.0f)));   /* sign of x (NaN stays NaN) */
    }
}

/* erf: |x| < 0.875 by an odd polynomial, else 1 - erfc with erfc from exp (below); sign of x. */
VM_AI void VM_NAME(erf_n)(const int N, const VM_F *x, VM_F *y) {
    VM_F a[4], ac[4], t[4], q[4], arg[4], ex[4], p[4], z[4];
    VM_VL(N) a[v_] = VM_ANDNOT(VM_C(-0.0f), x[v_]);
    /* 0.875 <= |x| < 4: erfc = t exp(-x^2 + Q(t)), t = 1 / (1 + |x|/2), Q of degree 9 (Numerical
     * Recipes' erfcc, relative error < 1.2e-7); from 4 on erf = 1 in float32 (|x| is clamped at 4:
     * no subnormal exp, which is slow) */
    VM_VL(N) ac[v_] = VM_MIN(a[v_], VM_C(4.0f));
    VM_VL(N) t[v_] = VM_DIV(VM_C(1.0f), VM_FMA(VM_C(0.5f), ac[v_], VM_C(1.0f)));
    VM_VL(N) q[v_] = VM_FMA(VM_C(1.70872770e-1f), t[v_], VM_C(-8.22152230e-1f));
    VM_VL(N) q[v_] = VM_FMA(q[v_], t[v_], VM_C(1.48851587e+0f));
    VM_VL(N) q[v_] = VM_FMA(q[v_], t[v_], VM_C(-1.13520398e+0f));
    VM_VL(N) q[v_] = VM_FMA(q[v_], t[v_], VM_C(2.78868080e-1f));
    VM_VL(N) q[v_] = VM_FMA(q[v_], t[v_], VM_C(-1.86288060e-1f));
    VM_VL(N) q[v_] = VM_FMA(q[v_], t[v_], VM_C(9.67841800e-2f));
    VM_VL(N) q[v_] = VM_FMA(q[v_], t[v_], VM_C(3.74091960e-1f));
    VM_VL(N) q[v_] = VM_FMA(q[v_], t[v_], VM_C(1.00002368e+0f));
    VM_VL(N) q[v_] = VM_FMA(q[v_], t[v_], VM_C(-1.26551223e+0f));
    VM_VL(N) arg[v_] = VM_FNMA(ac[v_], ac[v_], q[v_]);
    VM_NAME(exp_n)(N, arg, ex);
    /* |x| < 0.875: x * P(x^2), P a degree-6 least-squares fit of erf(x)/x (relative error 3e-10) */
    VM_VL(N) z[v_] = VM_MUL(a[v_], a[v_]);
    VM_VL(N) p[v_] = VM_FMA(VM_C(8.643969340482727e-05f), z[v_], VM_C(-0.0008203426259569824f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], z[v_], VM_C(0.005206031259149313f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], z[v_], VM_C(-0.026861267164349556f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], z[v_], VM_C(0.11283726245164871f));
    VM_VL(N) p[v_] = VM_FMA(p[v_], z[v_], VM_C(-0.37612634897232056f));
    VM_VL(N) {
        /* a * (c0 + z p) with c0 = 2/sqrt(pi) as hi + lo: one rounding at the end */
        const VM_F small = VM_FMA(a[v_], VM_C(1.12837922573089599609375f),
                                  VM_FMA(a[v_], VM_C(-5.8635382771e-08f), VM_MUL(VM_MUL(a[v_], z[v_]), p[v_])));
        VM_F big = VM_SUB(VM_C(1.0f), VM_MUL(t[v_], ex[v_]));
        big = VM_BLEND(big, VM_C(1.0f), VM_GE(a[v_], VM_C(4.0f)));
        VM_F r = VM_BLEND(big, small, VM_LT(a[v_], VM_C(0.875f)));
        r = VM_OR(r, VM_AND(x[v_], VM_C(-0.0f)));
        y[v_] = VM_BLEND(r, x[v_], VM_ISNAN(x[v_]));   /* NaN stays (VM_MIN dropped it) */
    }
}

VM_AI VM_F VM_NAME(exp)(VM_F x) { VM_F y; VM_NAME(exp_n)(1, &x, &y); return y; }
VM_AI VM_F VM_NAME(sigmoid)(VM_F x) { VM_F y; VM_NAME(sigmoid_n)(1, &x, &y); return y; }
VM_AI VM_F VM_NAME(tanh)(VM_F x) { VM_F y; VM_NAME(tanh_n)(1, &x, &y); return y; }
VM_AI VM_F VM_NAME(erf)(VM_F x) { VM_F y; VM_NAME(erf_n)(1, &x, &y); return y; }

#undef VM_F
#undef VM_I
#undef VM_AI
#undef VM_NAME
#undef VM_VL
#undef VM_C
#undef VM_ADD
#undef VM_SUB
#undef VM_MUL
#undef VM_DIV
#undef VM_FMA
#undef VM_FNMA
#undef VM_MIN
#undef VM_MAX
#undef VM_RINT
#undef VM_CVT
#undef VM_ISRA1
#undef VM_IADD
#undef VM_ISUB
#undef VM_I127
#undef VM_EXP2I
#undef VM_OR
#undef VM_AND
#undef VM_ANDNOT
#undef VM_BLEND
#undef VM_GE
#undef VM_LT
#undef VM_ISNAN
