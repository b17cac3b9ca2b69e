/* mathf.c: the runtime's own exp, expm1, log, tanh, sigmoid, erf, erfc, sin, cos, pow, fmod,
 * rint/floor/ceil, GELU and softplus for float32 (DESIGN.md §3: no libm transcendental, the
 * same bits on every target).
 *
 * Determinism. Every function takes a float, widens it to double (exact), evaluates with
 * IEEE double +, -, *, / only (no fma: the build uses -ffp-contract=off; no x87: x86_64 and
 * ARM evaluate double in double, FLT_EVAL_METHOD 0), and rounds once to float at the end.
 * Polynomial coefficients are hexadecimal double literals or constant quotients of exact
 * integers (1.0/5040.0), which every C compiler folds to the same correctly rounded double.
 * Integer conversions are of in-range values only. Hence identical bits on every target.
 * NaN results are the canonical 0x7FC00000 (x86 and ARM generate different default NaNs).
 *
 * Accuracy. The double evaluation has a relative error below ~1e-13, ~2^-43, so the final
 * rounding to float is the correctly rounded result except when the exact value lies within
 * 2^-19 ulp of a rounding boundary: measured max error 0.5 ulp + that sliver, i.e. <= 1 ulp.
 *
 * Algorithms (all in double):
 *   exp(y)   y = k ln2 + r, k = nearest integer to y/ln2, r = y - k*LN2_HI - k*LN2_LO
 *            (Cody-Waite: LN2_HI has 32 trailing zero bits, so k*LN2_HI is exact), |r| <= 0.347;
 *            exp(r) by its Taylor series to r^11 (truncation < 1e-14); times 2^k built from
 *            the exponent bits. y > 709 -> inf, y < -708 -> 0 (far below float range).
 *   expm1(y) |y| < ln2/2: the same Taylor series without its leading 1 (no cancellation);
 *            otherwise exp(y) - 1 (result >= 0.29 in magnitude: at most 2 bits of double lost).
 *   log(y)   y = 2^e m with m in [sqrt(1/2), sqrt(2)); s = (m-1)/(m+1) (|s| <= 0.172);
 *            log m = 2 atanh s = 2 (s + s^3/3 + ... + s^21/21) (truncation < 1e-16);
 *            log y = e*LN2_HI + (e*LN2_LO + log m). log1p(y) = log(u) * y/(u-1), u = 1+y
 *            (Goldberg's correction; y itself when u == 1).
 *   tanh(x)  = e/(e+2) with e = expm1(2|x|), sign restored; |x| > 20 -> +-1.
 *   sigmoid  = 1/(1 + exp(-x)).
 *   erf/erfc a = |x|. a < 1: erf = a * P(a^2), P the Taylor series of erf(a)/a to a^28
 *            (alternating, terms < 4e-13 at a = 1). 1 <= a < 11: erfc = exp(-a^2) * R_i(a - c_i)
 *            with R_i ~ erfcx(a) = exp(a^2) erfc(a) fitted on 5 intervals (least squares on
 *            Chebyshev nodes against mpmath, relative error < 5e-13, coefficients below),
 *            erf = 1 - erfc (a^2 is exact in double for a float a). a >= 11: erfc = 0 (erfc(11)
 *            ~ 1e-54, below every float that matters: gelu(x) underflows from x ~ -14.2).
 *   sin/cos  Quadrant reduction x = n pi/2 + r, |r| <= pi/4, for every finite |x| >= pi/4 by
 *            Payne-Hanek in 64-bit integers: x = M 2^E (M the 24-bit significand); x * 2/pi mod 4
 *            only needs the 96 bits of 2/pi starting 1 bit before the binary position E (the
 *            earlier bits contribute multiples of 4); M * those bits is formed with three
 *            32x32 products mod 2^96, giving x*2/pi mod 4 in units of 2^-62 (error < 2^-61,
 *            while no float lies closer than ~2^-29 to a multiple of pi/2). n = nearest
 *            quadrant, r = remainder * pi/2 * 2^-62. sin r and cos r by Taylor series to r^15
 *            and r^16 (truncation < 2e-14), combined by n mod 4; sin is odd, cos even.
 *   pow(x,y) C99 Annex F special cases (zeros, infinities, 1, NaN, negative bases with
 *            integer exponents), then exp(y * log|x|) in double: the exponent's error is
 *            <= 710 * 2^-52, so relative error < 2e-13. y == 2 is x*x (correctly rounded).
 *   fmod     exact, by integer long division of the significands (as musl's fmodf).
 *   rint     (|x| + 2^23) - 2^23 under round-to-nearest-even, sign restored; floor and ceil
 *            correct rint by one where it went the wrong way.
 *   gelu     x >= 0: x/2 (2 - erfc(x/sqrt2)) ; x < 0: x/2 erfc(|x|/sqrt2) (no cancellation).
 *            tanh form: x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).
 *   softplus x > 0: x + log1p(exp(-x)); else log1p(exp(x)).
 */
#include "mathf.h"

#define LN2_HI 0x1.62e42feep-1          /* ln 2 rounded to 33 bits (k*LN2_HI exact for |k| < 2^20) */
#define LN2_LO 0x1.a39ef35793c76p-33    /* ln 2 - LN2_HI */
#define INV_LN2 0x1.71547652b82fep0
#define PIO2_2M62 0x1.921fb54442d18p-62 /* pi/2 * 2^-62 */

static inline double u2d(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static inline uint64_t d2u(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static inline float nanf_(void) { return dse_u2f(DSE_NAN_BITS); }
static inline float copysign_(float mag, float sgn) {
    return dse_u2f((dse_f2u(mag) & 0x7FFFFFFFu) | (dse_f2u(sgn) & 0x80000000u));
}

/* exp(r) - 1 for |r| <= 0.35: Taylor series to r^11, Horner. */
static double expm1_poly(double r) {
    double p = 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    return p * r;
}

static double exp_d(double y) {
    if (y != y) return y;
    if (y > 709.0) return u2d(0x7FF0000000000000ull);   /* +inf */
    if (y < -708.0) return 0.0;
    double t = y * INV_LN2;
    int k = (int)(t < 0 ? t - 0.5 : t + 0.5);          /* k in [-1021, 1023]: 2^k is a normal double */
    double r = (y - k * LN2_HI) - k * LN2_LO;
    double p = 1.0 + expm1_poly(r);
    return p * u2d((uint64_t)(k + 1023) << 52);
}

static double expm1_d(double y) {
    if (y > -0.3465 && y < 0.3465) return expm1_poly(y);
    return exp_d(y) - 1.0;
}

/* log of a positive, finite, normal double. */
static double log_d(double y) {
    uint64_t u = d2u(y);
    int e = (int)(u >> 52) - 1023;
    double m = u2d((u & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);   /* [1, 2) */
    if (m > 0x1.6a09e667f3bcdp0) { m = m * 0.5; e += 1; }                 /* > sqrt 2 */
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    double logm = 2.0 * s + 2.0 * s * s2 * p;
    return e * LN2_HI + (e * LN2_LO + logm);
}

/* log(1 + y) for y >= 0 (finite). */
static double log1p_d(double y) {
    double u = 1.0 + y;
    if (u == 1.0) return y;
    return log_d(u) * (y / (u - 1.0));
}

/* -- erf / erfc ------------------------------------------------------------------------- */

static const double ERF_T[15] = {   /* erf(a)/a = sum ERF_T[n] a^(2n): 2/sqrt(pi) (-1)^n / (n! (2n+1)) */
    0x1.20dd750429b6dp+0, -0x1.812746b0379e7p-2, 0x1.ce2f21a042be2p-4, -0x1.b82ce31288b51p-6,
    0x1.565bcd0e6a53fp-8, -0x1.c02db40040b86p-11, 0x1.f9a326f9b89b7p-14, -0x1.f4d25c3e0c2ebp-17,
    0x1.b9e6c9dc651a3p-20, -0x1.5f742ec43e71ap-23, 0x1.fcc5720624c1cp-27, -0x1.51d7181c5d36dp-30,
    0x1.9e6ad5e55a730p-34, -0x1.d8453cb0c46eap-38, 0x1.f683ae4a97007p-42,
};

/* erfcx(a) = exp(a^2) erfc(a) on [lo, hi): polynomial in (a - mid), coefficients low to high. */
static const struct { double hi, mid; int n; double c[15]; } ERFCX[5] = {
    {2, 1.5, 15, {0x1.494daffa2ad6cp-2, -0x1.4f1988444cb53p-3, 0x1.37ea271bc555fp-4, -0x1.0dc51d293542dp-5, 0x1.b65944f322bbap-7, -0x1.513ed7714b4b7p-8, 0x1.ee705ea487464p-10, -0x1.5b0ab5686a0e4p-11, 0x1.d45085867df86p-13, -0x1.30c433b9f9eccp-14, 0x1.7f9f586049c4fp-16, -0x1.d2fdaeb5455e7p-18, 0x1.149f3dfea7afap-19, -0x1.5791afa80126dp-21, 0x1.84f62671c951bp-23}},
    {3, 2.5, 13, {0x1.afbb3f3b73440p-3, -0x1.3086d7f01a8d8p-4, 0x1.98958a7a8d3abp-6, -0x1.06320768d6752p-7, 0x1.435c04e40d153p-9, -0x1.809ce712f8e28p-11, 0x1.ba8a64f04a81ep-13, -0x1.edd5814a2783dp-15, 0x1.0bcc9de731102p-16, -0x1.1a8856e6fb2e7p-18, 0x1.22f7dd3ba6a88p-20, -0x1.33891273e80e9p-22, 0x1.2fa99cf4f93b7p-24}},
    {4.5, 3.75, 14, {0x1.2a2af19c14939p-3, -0x1.2aa6503acda83p-5, 0x1.22f0664f386c1p-7, -0x1.1434ae0573e83p-9, 0x1.fff032b030322p-12, -0x1.cfcdea3f1fa60p-14, 0x1.9b50c6acf6482p-16, -0x1.65777a66012fap-18, 0x1.30c62e2b92f9ep-20, -0x1.fe4617d72aacfp-23, 0x1.a2b64bc0f6092p-25, -0x1.528908995044dp-27, 0x1.236c8d9d8e895p-29, -0x1.cc6f4ec4e58a0p-32}},
    {6.5, 5.5, 12, {0x1.9d8a8f2284974p-4, -0x1.238ca71b92917p-6, 0x1.95252b96662cbp-9, -0x1.15976de2988e2p-11, 0x1.774f4379ea69ap-14, -0x1.f4e463331bf15p-17, 0x1.4a1a5d2fddf4ep-19, -0x1.addbe5e446cdap-22, 0x1.1404bc16ee306p-24, -0x1.5f2068ffe9b60p-27, 0x1.dc59c31f53f9bp-30, -0x1.29e59f7f03ca0p-32}},
    {11, 8.75, 14, {0x1.0669c59167384p-4, -0x1.d9c4ed2159156p-8, 0x1.a909f19227483p-11, -0x1.7b02260e37c99p-14, 0x1.4ff300ec5ba46p-17, -0x1.2809b6f977f34p-20, 0x1.035c985aef0f5p-23, -0x1.c3e35356590edp-27, 0x1.87c4f70f1b65fp-30, -0x1.51995dfa006a7p-33, 0x1.1bc9b737a25abp-36, -0x1.e2670c3a1f4a8p-40, 0x1.fe2fa966b1bdep-43, -0x1.b38854dbf31c8p-46}},
};

static double erf_small(double a) {   /* a < 1 */
    double a2 = a * a, p = ERF_T[14];
    for (int i = 13; i >= 0; i--) p = p * a2 + ERF_T[i];
    return a * p;
}

/* erfc(a) for 1 <= a (0 from 11 on). */
static double erfc_large(double a) {
    for (int i = 0; i < 5; i++) {
        if (a < ERFCX[i].hi) {
            double t = a - ERFCX[i].mid, p = ERFCX[i].c[ERFCX[i].n - 1];
            for (int k = ERFCX[i].n - 2; k >= 0; k--) p = p * t + ERFCX[i].c[k];
            return exp_d(-(a * a)) * p;
        }
    }
    return 0.0;
}

static double erf_d(double a) { return a < 1.0 ? erf_small(a) : 1.0 - erfc_large(a); }      /* a >= 0 */
static double erfc_d(double a) { return a < 1.0 ? 1.0 - erf_small(a) : erfc_large(a); }     /* a >= 0 */

/* -- sin / cos ---------------------------------------------------------------------------- */

/* 2/pi in binary, preceded by 32 zero bits: bit i of the fraction (i = 1 first) is bit i + 31
 * of this array (most significant bit of word 0 first). */
static const uint32_t TWO_OVER_PI[8] = {
    0x00000000, 0xa2f9836e, 0x4e441529, 0xfc2757d1, 0xf534ddc0, 0xdb629599, 0x3c439041, 0xfe5163ab,
};

/* |x| (float bits ax, finite, >= pi/4) = n pi/2 + r: returns r, sets *n (mod 4). */
static double reduce_pio2(uint32_t ax, unsigned *n) {
    int E = (int)(ax >> 23) - 150;                       /* |x| = M 2^E, E in [-24, 104] */
    uint64_t M = (ax & 0x7FFFFFu) | 0x800000u;
    unsigned q = (unsigned)(E + 30);                     /* array bit of fraction bit E - 1 */
    unsigned j = q >> 5, s = q & 31;
    uint32_t w[3];
    for (int i = 0; i < 3; i++)
        w[i] = s ? (TWO_OVER_PI[j + i] << s) | (TWO_OVER_PI[j + i + 1] >> (32 - s)) : TWO_OVER_PI[j + i];
    /* (M * w0w1w2 mod 2^96) >> 32: |x| * 2/pi mod 4 in units of 2^-62 */
    uint64_t R = ((uint64_t)(uint32_t)(M * w[0]) << 32) + M * w[1] + ((M * w[2]) >> 32);
    uint64_t k = (R + (1ull << 61)) >> 62;               /* nearest quadrant (wraps to 0 at 4) */
    uint64_t f = R - (k << 62);                          /* two's complement, |f| <= 2^61 */
    double r = (f >> 63) ? -(double)(0 - f) : (double)f;
    *n = (unsigned)k & 3u;
    return r * PIO2_2M62;
}

static double sin_poly(double r) {
    double r2 = r * r, p = -1.0 / 1307674368000.0;
    p = p * r2 + 1.0 / 6227020800.0;
    p = p * r2 - 1.0 / 39916800.0;
    p = p * r2 + 1.0 / 362880.0;
    p = p * r2 - 1.0 / 5040.0;
    p = p * r2 + 1.0 / 120.0;
    p = p * r2 - 1.0 / 6.0;
    return r + r * r2 * p;
}

static double cos_poly(double r) {
    double r2 = r * r, p = 1.0 / 20922789888000.0;
    p = p * r2 - 1.0 / 87178291200.0;
    p = p * r2 + 1.0 / 479001600.0;
    p = p * r2 - 1.0 / 3628800.0;
    p = p * r2 + 1.0 / 40320.0;
    p = p * r2 - 1.0 / 720.0;
    p = p * r2 + 1.0 / 24.0;
    return 1.0 - 0.5 * r2 + r2 * r2 * p;
}

/* sin (want_cos 0) or cos (1) of |x|, x finite. */
static double sincos_abs(float x, int want_cos) {
    uint32_t ax = dse_f2u(x) & 0x7FFFFFFFu;
    unsigned n = 0;
    double r = ax < 0x3F490FDBu ? (double)dse_u2f(ax) : reduce_pio2(ax, &n);
    n = (n + (unsigned)want_cos) & 3u;                   /* cos t = sin(t + pi/2) */
    double v = (n & 1u) ? cos_poly(r) : sin_poly(r);
    return (n & 2u) ? -v : v;
}

/* -- public float functions -------------------------------------------------------------- */

float dse_expf(float x) {
    if (x != x) return nanf_();
    return (float)exp_d(x);
}

float dse_expm1f(float x) {
    if (x != x) return nanf_();
    if (x < -30.0f) return -1.0f;
    return (float)expm1_d(x);
}

float dse_logf(float x) {
    if (x != x || x < 0.0f) return nanf_();
    if (x == 0.0f) return dse_u2f(0xFF800000u);          /* -inf */
    if (dse_f2u(x) == 0x7F800000u) return x;
    return (float)log_d(x);
}

float dse_tanhf(float x) {
    if (x != x) return nanf_();
    float a = copysign_(x, 1.0f);
    if (a > 20.0f) return copysign_(1.0f, x);
    double e = expm1_d(2.0 * (double)a);
    return copysign_((float)(e / (e + 2.0)), x);
}

float dse_sigmoidf(float x) {
    if (x != x) return nanf_();
    return (float)(1.0 / (1.0 + exp_d(-(double)x)));
}

float dse_erff(float x) {
    if (x != x) return nanf_();
    return copysign_((float)erf_d(copysign_(x, 1.0f)), x);
}

float dse_erfcf(float x) {
    if (x != x) return nanf_();
    double a = copysign_(x, 1.0f);
    return (float)(x < 0.0f ? 2.0 - erfc_d(a) : erfc_d(a));
}

float dse_sinf(float x) {
    if (x != x || (dse_f2u(x) & 0x7FFFFFFFu) == 0x7F800000u) return nanf_();
    float v = (float)sincos_abs(x, 0);
    return (dse_f2u(x) >> 31) ? -v : v;
}

float dse_cosf(float x) {
    if (x != x || (dse_f2u(x) & 0x7FFFFFFFu) == 0x7F800000u) return nanf_();
    return (float)sincos_abs(x, 1);
}

/* 0: y not an integer, 1: odd integer, 2: even integer (y finite). */
static int int_kind(float y) {
    float a = copysign_(y, 1.0f);
    if (a >= 16777216.0f) return 2;                      /* 2^24: every float is an even integer */
    int32_t i = (int32_t)a;
    if ((float)i != a) return 0;
    return (i & 1) ? 1 : 2;
}

float dse_powf(float x, float y) {
    const float inf = dse_u2f(0x7F800000u);
    if (y == 0.0f || x == 1.0f) return 1.0f;
    if (x != x || y != y) return nanf_();
    float ay = copysign_(y, 1.0f), ax = copysign_(x, 1.0f);
    if (ay == inf) {
        if (ax == 1.0f) return 1.0f;                     /* (-1)^+-inf */
        return (ax < 1.0f) == (y < 0.0f) ? inf : 0.0f;
    }
    int k = int_kind(y);
    float sign = (x < 0.0f || (dse_f2u(x) >> 31)) && k == 1 ? -1.0f : 1.0f;   /* -0 and -inf too */
    if (x == 0.0f) return sign * (y < 0.0f ? inf : 0.0f);
    if (ax == inf) return sign * (y < 0.0f ? 0.0f : inf);
    if (x < 0.0f && k == 0) return nanf_();
    if (y == 2.0f) return x * x;
    if (y == 1.0f) return x;
    return sign * (float)exp_d((double)y * log_d(ax));
}

float dse_fmodf(float x, float y) {
    uint32_t ux = dse_f2u(x), uy = dse_f2u(y);
    uint32_t sx = ux & 0x80000000u, ax = ux & 0x7FFFFFFFu, ay = uy & 0x7FFFFFFFu;
    if (ay == 0 || ax >= 0x7F800000u || ay > 0x7F800000u) return nanf_();
    if (ax < ay) return x;                               /* also y = inf, x = +-0 */
    int ex = (int)(ax >> 23), ey = (int)(ay >> 23);
    uint32_t mx, my;
    if (ex == 0) { mx = ax; ex = 1; while (mx < 0x800000u) { mx <<= 1; ex--; } } else mx = (ax & 0x7FFFFFu) | 0x800000u;
    if (ey == 0) { my = ay; ey = 1; while (my < 0x800000u) { my <<= 1; ey--; } } else my = (ay & 0x7FFFFFu) | 0x800000u;
    for (; ex > ey; ex--) {                              /* long division, one bit per step */
        if (mx >= my) { mx -= my; if (mx == 0) return dse_u2f(sx); }
        mx <<= 1;
    }
    if (mx >= my) { mx -= my; if (mx == 0) return dse_u2f(sx); }
    while (mx < 0x800000u) { mx <<= 1; ex--; }
    uint32_t r = ex > 0 ? ((uint32_t)ex << 23) | (mx & 0x7FFFFFu) : mx >> (1 - ex);   /* subnormal: exact */
    return dse_u2f(r | sx);
}

float dse_rintf(float x) {
    float a = copysign_(x, 1.0f);
    if (!(a < 8388608.0f)) return dse_canonf(x);         /* NaN, inf, or already an integer */
    return copysign_((a + 8388608.0f) - 8388608.0f, x);
}

float dse_floorf(float x) {
    float r = dse_rintf(x);
    return r > x ? r - 1.0f : r;                          /* x < 0 here, so r - 1 <= -1 */
}

float dse_ceilf(float x) {
    float r = dse_rintf(x);
    return r < x ? copysign_(r + 1.0f, x) : r;            /* ceil(-0.7) = -0 */
}

float dse_geluf(float x) {
    if (x != x) return nanf_();
    double v = x, a = copysign_(x, 1.0f) * 0x1.6a09e667f3bcdp-1;    /* |x| / sqrt 2 */
    return dse_canonf((float)(x < 0.0f ? 0.5 * v * erfc_d(a) : 0.5 * v * (1.0 + erf_d(a))));   /* -inf: NaN, as numpy */
}

float dse_gelu_tanhf(float x) {
    if (x != x) return nanf_();
    double v = x, u = 0x1.9884533d43651p-1 * (v + 0.044715 * (v * v * v));   /* sqrt(2/pi) */
    return dse_canonf((float)(v / (1.0 + exp_d(-2.0 * u))));
}

float dse_softplusf(float x) {
    if (x != x) return nanf_();
    double v = x;
    return (float)(v > 0.0 ? v + log1p_d(exp_d(-v)) : log1p_d(exp_d(v)));
}
