/* fp16_arith.c: float Conv, Gemm and MatMul computed in binary16 (docs/quant-arith.md §16), the
 * reference of what an ARMv8.2 FEAT_FP16 core computes with `fmla .8h` (kernels/neon_fp16/), on
 * every target, in portable C (no _Float16: a software binary16 rounding).
 *
 * A node takes these kernels when it carries INT `fp16_arith` = 1 and its weight (and bias / C,
 * when present) is a float16 constant: layout 5 in the file (the loader keeps the original bits
 * in `hdata` next to its float32 copy, internal.h), or a float16 constant in layout 0. The kernel
 * reads those binary16 bits. Per output element, with h(v) = v rounded to binary16 (nearest,
 * ties to even, subnormals kept, overflow to ±inf, NaN stays NaN) and fma16(a, b, c) = h(a·b + c)
 * with a·b + c exact (one rounding):
 *     acc = h(bias[o])  (+0 without a bias)
 *     for k in order: acc = fma16(h(x_k), w_k, acc)
 *     y = float32(acc)  (exact); y = min(max(y, act_min), act_max); NaN written as 0x7FC00000
 * k order: Conv, the group's input channels c then the kernel offsets (kd, kh, kw) row-major,
 * padded taps included with x = +0 (they can change the sign of a zero accumulator); Gemm
 * (transA 0, alpha = beta = 1, C absent or [N]) and MatMul (constant 2-D B, any A): k = 0..K-1.
 *
 * The exact rounding of a·b + c: a, b, c are binary16 values held in doubles; p = a·b is exact
 * (22-bit significands; the smallest product 2^-48); s = p + c rounded to double, with its error
 * e from the two-sum (exact: no overflow or underflow is possible); when e != 0, s is moved to
 * the neighbour with an odd significand towards the exact sum (round to odd), and the
 * round-to-odd double rounded to binary16 is the correctly rounded result (53 >= 11 + 2). An
 * exact zero sum is +0 unless p and c are both -0, as IEEE 754 (and the double sum) gives.
 *
 * Threads: Conv output rows (n, m, od, oh), Gemm/MatMul rows (tiles of 256 columns), one
 * dse__parallel each: every element is computed by one range in the order above, so the bytes
 * do not depend on the thread count. No scratch; the checks report the float32 kernels' plan
 * (the exporter plans that for every float Conv/Gemm/MatMul; the NEON fp16 kernels use at most
 * it, kernels/neon_fp16/). */
#include "internal.h"
#include "mathf.h"

/* v (a double) rounded to binary16: the bits (RNE, subnormals, overflow to inf, NaN -> 0x7E00). */
static uint16_t fp16_from_f64(double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    const uint16_t sign = (uint16_t)((u >> 48) & 0x8000u);
    const uint64_t a = u & 0x7FFFFFFFFFFFFFFFull;
    if (a >= 0x7FF0000000000000ull) return a == 0x7FF0000000000000ull ? (uint16_t)(sign | 0x7C00u) : (uint16_t)0x7E00u;
    const int E = (int)(a >> 52) - 1023;             /* v = 1.m * 2^E (double subnormals: E = -1023, far below) */
    if (E > 15) return (uint16_t)(sign | 0x7C00u);   /* >= 2^16 */
    if (E < -26) return sign;                        /* < 2^-26: below half the smallest subnormal */
    const uint64_t mant = (a & 0xFFFFFFFFFFFFFull) | (1ull << 52);
    /* normal: keep 11 significant bits (shift 42), the exponent field added below; subnormal: the
     * multiple of 2^-24, mant * 2^(E - 52 + 24) */
    const int sh = E >= -14 ? 42 : 28 - E;           /* 43 .. 54 for subnormals */
    uint64_t q = mant >> sh;
    const uint64_t rem = mant & ((1ull << sh) - 1), half = 1ull << (sh - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    /* normal: (E + 14) << 10 plus q in [1024, 2048] (a carry to 2048 moves to the next binade, 2^16 to inf) */
    return (uint16_t)(sign | (E >= -14 ? ((uint64_t)(E + 14) << 10) + q : q));
}

static double fp16_to_f64(uint16_t h) { return (double)dse__f16_to_f32(h); }

/* h(a·b + c) for binary16 values a, b, c (as doubles), as a double (a binary16 value). */
static double fp16_fma(double a, double b, double c) {
    const double p = a * b, s = p + c;
    if (s - s != 0.0) return s;   /* inf or NaN (from an inf or NaN operand): h keeps it */
    const double bb = s - p, e = (p - (s - bb)) + (c - bb);
    double r = s;
    if (e != 0.0) {               /* round to odd: s's neighbour with an odd significand, towards s + e */
        uint64_t u;
        memcpy(&u, &r, 8);
        if (!(u & 1)) u = (e > 0.0) == (s > 0.0) ? u + 1 : u - 1;
        memcpy(&r, &u, 8);
    }
    return fp16_to_f64(fp16_from_f64(r));
}

/* float32(acc), clamped, the fused activation function (Conv: act_fn), NaN canonical */
static void fp16_store(float *y, double acc, int act, float lo, float hi, int act_fn) {
    float v = (float)acc;
    if (act) { v = v < lo ? lo : v; v = v > hi ? hi : v; }
    if (act_fn) v = dse__act_fnf(act_fn, v);
    if (v != v) { const uint32_t qnan = 0x7FC00000u; memcpy(y, &qnan, 4); return; }
    *y = v;
}

/* -- checks ------------------------------------------------------------------------------------ */

/* input j (absent allowed when `optional`) must be a float16 constant */
static int fp16_const_ok(const dse_model *m, const dse_node *n, uint32_t j, int optional, const char *what, dse_why *why) {
    const dse_tensor *t = j < n->n_in ? dse__t(m, n->in[j]) : NULL;
    if ((!t && optional) || dse__fp16_bits(t)) return 1;
    DSE_WHYF(why, FP16_NEEDS_FLOAT16_CONST, what, 0, 0, 0, 0);
    return 0;
}

/* dse__fp16_check (internal.h): the float op's own check (geometry, dtypes; it sets the plan), then §16's
 * marking, form and float16 constants */
int dse__fp16_check(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__attr_int(n, DSE_A_fp16_arith, 0) != 1) { DSE_WHY(why, FP16_NOT_FOR_THIS_NODE); return 1; }
    if (n->op == DSE_OP_CONV || n->op == DSE_OP_DSEDGE_FUSEDCONV) {   /* FusedConv: Conv + act_fn */
        if (dse__check_conv_f32(m, n, why)) return 1;
        return !fp16_const_ok(m, n, 1, 0, "weight", why) || !fp16_const_ok(m, n, 2, 1, "bias", why);
    }
    if (n->op == DSE_OP_GEMM) {
        if (dse__check_gemm_f32(m, n, why)) return 1;
        const dse_tensor *b = dse__t(m, n->in[1]), *c = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
        const size_t N = b->dims[dse__attr_int(n, DSE_A_transB, 0) == 0];
        if (dse__attr_int(n, DSE_A_transA, 0) != 0 || dse__attr_float(n, DSE_A_alpha, 1.0f) != 1.0f ||
            dse__attr_float(n, DSE_A_beta, 1.0f) != 1.0f || (c && (c->rank != 1 || c->dims[0] != N))) {
            DSE_WHYF(why, FP16_GEMM_FORM, NULL, N, 0, 0, 0);
            return 1;
        }
        return !fp16_const_ok(m, n, 1, 0, "B", why) || !fp16_const_ok(m, n, 2, 1, "C", why);
    }
    if (dse__check_matmul_f32(m, n, why)) return 1;   /* MatMul (the kernel list lists no other op) */
    if (m->tensors[n->in[1]].rank != 2) { DSE_WHY(why, FP16_MATMUL_B_2D); return 1; }
    return !fp16_const_ok(m, n, 1, 0, "B", why);
}

int dse__check_conv_fp16(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__fp16_check(m, n, why)) return 1;
    why->act_fns = dse__act_fns(m, 0);   /* mathf.h dse__act_fnf on the float32 result */
    return 0;
}
int dse__check_gemm_fp16(const dse_model *m, const dse_node *n, dse_why *why) { return dse__fp16_check(m, n, why); }
int dse__check_matmul_fp16(const dse_model *m, const dse_node *n, dse_why *why) { return dse__fp16_check(m, n, why); }

/* -- Conv ------------------------------------------------------------------------------------- */

typedef struct {
    dse_conv_geom g;
    const float *x;
    const uint16_t *w, *b;
    int act, act_fn;
    float lo, hi;
    float *y;
} fp16_conv_job;

/* output rows [r0, r1) of the N * M * OD * OH rows */
static void fp16_conv_rows(void *arg, size_t r0, size_t r1, unsigned worker) {
    (void)worker;
    const fp16_conv_job *j = arg;
    const dse_conv_geom *g = &j->g;
    const size_t cg = g->C / g->G, mg = g->M / g->G, ksz = (size_t)(g->k[0] * g->k[1] * g->k[2]);
    const size_t isz = g->in[0] * g->in[1] * g->in[2], osz = g->out[0] * g->out[1] * g->out[2];
    for (size_t r = r0; r < r1; r++) {
        const size_t oh = r % g->out[1], od = r / g->out[1] % g->out[0], boc = r / (g->out[1] * g->out[0]);
        const size_t oc = boc % g->M, bi = boc / g->M;
        const float *xg = j->x + (bi * g->C + oc / mg * cg) * isz;
        const uint16_t *wo = j->w + oc * cg * ksz;
        float *yo = j->y + (bi * g->M + oc) * osz + (od * g->out[1] + oh) * g->out[2];
        for (size_t ow = 0; ow < g->out[2]; ow++) {
            double acc = j->b ? fp16_to_f64(j->b[oc]) : 0.0;
            const int64_t d0 = (int64_t)od * g->s[0] - g->pb[0], h0 = (int64_t)oh * g->s[1] - g->pb[1],
                          w0 = (int64_t)ow * g->s[2] - g->pb[2];
            size_t wi = 0;
            for (size_t c = 0; c < cg; c++)
                for (int64_t kd = 0; kd < g->k[0]; kd++) {
                    const int64_t id = d0 + kd * g->d[0];
                    for (int64_t kh = 0; kh < g->k[1]; kh++) {
                        const int64_t ih = h0 + kh * g->d[1];
                        const int rin = id >= 0 && id < (int64_t)g->in[0] && ih >= 0 && ih < (int64_t)g->in[1];
                        const float *xr = rin ? xg + ((c * g->in[0] + (size_t)id) * g->in[1] + (size_t)ih) * g->in[2] : NULL;
                        for (int64_t kw = 0; kw < g->k[2]; kw++, wi++) {
                            const int64_t iw = w0 + kw * g->d[2];
                            const float xv = xr && iw >= 0 && iw < (int64_t)g->in[2] ? xr[iw] : 0.0f;   /* padding: +0 */
                            acc = fp16_fma(fp16_to_f64(fp16_from_f64(xv)), fp16_to_f64(wo[wi]), acc);
                        }
                    }
                }
            fp16_store(yo + ow, acc, j->act, j->lo, j->hi, j->act_fn);
        }
    }
}

void dse_f32_conv_fp16__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    fp16_conv_job j;
    dse_why why;
    memset(&j, 0, sizeof j);
    dse__conv_f32_geom(m, n, &j.g, &why);   /* validated at load */
    j.x = dse__data(m, arena, n->in[0]);
    j.w = dse__fp16_bits(&m->tensors[n->in[1]]);
    j.b = n->n_in == 3 ? dse__fp16_bits(dse__t(m, n->in[2])) : NULL;
    j.y = dse__data(m, arena, n->out[0]);
    j.act = dse__nn_act(n, &j.lo, &j.hi);
    j.act_fn = dse__nn_act_fn(n);
    const dse_conv_geom *g = &j.g;
    const size_t rows = g->N * g->M * g->out[0] * g->out[1];
    const uint64_t macs = (uint64_t)rows * g->out[2] * (g->C / g->G) * (uint64_t)(g->k[0] * g->k[1] * g->k[2]);
    dse__parallel(cx, rows, dse__grain(rows, 16 * macs), fp16_conv_rows, &j);   /* a software fma16 ~ 16 float MACs */
}

/* -- Gemm, MatMul: Y[R, N] = A[R, K] B[K, N] (+ C[N]) --------------------------------------------- */

#define FP16_TILE 256

typedef struct {
    const float *A;
    const uint16_t *B, *C;
    size_t R, K, N, sbk, sbj, nb;   /* B[k, j] = B[k*sbk + j*sbj]; nb column tiles per row */
    int act;
    float lo, hi;
    float *Y;
} fp16_gemm_job;

static void fp16_gemm_part(void *arg, size_t i0, size_t i1, unsigned worker) {
    (void)worker;
    const fp16_gemm_job *j = arg;
    double acc[FP16_TILE];
    for (size_t it = i0; it < i1; it++) {
        const size_t i = it / j->nb, c0 = it % j->nb * FP16_TILE, c1 = j->N - c0 < FP16_TILE ? j->N : c0 + FP16_TILE;
        for (size_t c = c0; c < c1; c++) acc[c - c0] = j->C ? fp16_to_f64(j->C[c]) : 0.0;
        for (size_t k = 0; k < j->K; k++) {
            const double a = fp16_to_f64(fp16_from_f64(j->A[i * j->K + k]));
            const uint16_t *br = j->B + k * j->sbk;
            for (size_t c = c0; c < c1; c++) acc[c - c0] = fp16_fma(a, fp16_to_f64(br[c * j->sbj]), acc[c - c0]);
        }
        for (size_t c = c0; c < c1; c++) fp16_store(j->Y + i * j->N + c, acc[c - c0], j->act, j->lo, j->hi, 0);
    }
}

static void fp16_gemm(const dse_ctx *cx, fp16_gemm_job *j) {
    j->nb = (j->N + FP16_TILE - 1) / FP16_TILE;
    const size_t items = j->R * j->nb;
    dse__parallel(cx, items, dse__grain(items, 16 * (uint64_t)j->R * j->K * j->N), fp16_gemm_part, j);
}

void dse_f32_gemm_fp16__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *at = &m->tensors[n->in[0]], *bt = &m->tensors[n->in[1]];
    const int tb = dse__attr_int(n, DSE_A_transB, 0) != 0;
    fp16_gemm_job j;
    memset(&j, 0, sizeof j);
    j.A = dse__data(m, arena, n->in[0]);
    j.B = dse__fp16_bits(bt);
    j.C = n->n_in >= 3 ? dse__fp16_bits(dse__t(m, n->in[2])) : NULL;
    j.R = at->dims[0]; j.K = at->dims[1]; j.N = bt->dims[!tb];
    j.sbk = tb ? 1 : j.N; j.sbj = tb ? j.K : 1;
    j.Y = dse__data(m, arena, n->out[0]);
    j.act = dse__nn_act(n, &j.lo, &j.hi);
    fp16_gemm(cx, &j);
}

void dse_f32_matmul_fp16__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *bt = &m->tensors[n->in[1]];
    fp16_gemm_job j;   /* B is 2-D: the batch axes are A's, so A is R = numel / K rows */
    memset(&j, 0, sizeof j);
    j.A = dse__data(m, arena, n->in[0]);
    j.B = dse__fp16_bits(bt);
    j.K = bt->dims[0]; j.N = bt->dims[1];
    j.R = j.N ? m->tensors[n->out[0]].numel / j.N : 0;
    j.sbk = j.N; j.sbj = 1;
    j.Y = dse__data(m, arena, n->out[0]);
    j.act = dse__nn_act(n, &j.lo, &j.hi);
    fp16_gemm(cx, &j);
}
