/* fp16_arith.c (NEON fp16): float Conv, Gemm and MatMul marked for fp16 arithmetic
 * (docs/quant-arith.md §16) on ARMv8.2-A FEAT_FP16 cores (HWCAP_ASIMDHP), giving exactly the bytes
 * of kernels/ref/fp16_arith.c.
 *
 * One HGEMM core, C[i, j] for a block of rows and columns:
 *     acc = h(bias) (per row for Conv, per column for Gemm's C, else +0), in binary16
 *     for k = 0 .. K-1: acc = fma16(A(i,k), B(k,j), acc)     (`fmla .8h` by element: one rounding)
 *     C = float32(acc), the clamp (compare-and-select, REF's `if`s), NaN written as 0x7FC00000
 * A(i,k): a float32 activation rounded to binary16 by `fcvtn` (round to nearest even: the FPCR's
 * default RMode, FZ = FZ16 = 0 on Linux, qemu included, so subnormals are kept), or binary16 bits;
 * B(k,j): binary16 bits, rows of j (B[k*ldb + j]) or, transposed, rows of k (B[j*ldb + k], 8 x 8
 * blocks transposed in registers). Register tile: 4 rows (the last M % 4 one at a time) x 16 or 8
 * columns (up to 8 accumulators of 8 lanes); k in blocks of 8 (a vector of A per row, one `fmla` per lane), the last K % 8 k one
 * lane at a time, so each accumulator sees k = 0, 1, ... K-1 in order, nothing more: exactly REF.
 * Columns past the end of B (the last block's) are read from a zero-padded copy, never stored.
 *   - Gemm (transA 0, alpha = beta = 1, B either transB, C absent or [N]) and MatMul (constant 2-D
 *     B: A's rows are all rows of the product): A = the activation rows, B = the weights as stored,
 *     no scratch; threads over blocks of 16 rows x 64 columns.
 *   - Conv (any: 1-3 spatial axes, groups, depthwise, strides, dilations, pads): per image, group
 *     and tile of nt output pixels, the tile's K x pw im2col block (dse_f32_conv_im2col,
 *     kernels/ref/loops.c: REF's k order, +0 in the padding, zero columns up to pw = nt rounded up
 *     to 8) in the worker's scratch, converted in place to binary16 by `fcvtn` (8 halves written
 *     behind the 8 floats just read), then C[M/group, nt] = W[M/group, K] X[K, pw] with the
 *     weights as stored. Scratch: 4 * K * pw bytes within the plan every float Conv has
 *     (dse__conv_f32_scratch_plan, dsedge/export/scratch.py), pw the largest multiple of 8 that
 *     fits (at most max(16, 32768 / K) rounded down to 8, or P rounded up to 8), or, when the plan
 *     holds fewer than 8 pixels, as many as it holds (blocks exactly as wide as their tile). A plan
 *     that holds no pixel, or whose region holds a tensor live at the node, leaves the node to REF
 *     (binary16 still: the NEON float32 Conv refuses fp16-arithmetic nodes on cores with FP16).
 *     Threads over (image, group, tile).
 * The same bytes for any thread count (each output is computed by one part, in the order above). */
#include "isa.h"
#include "mathf.h"

#if DSE_ARCH_ARM64
#include <arm_neon.h>

#define FH_AI static inline __attribute__((always_inline)) DSE_TARGET_NEON_FP16

typedef struct {
    size_t K;
    const void *A; size_t lda; int a32;      /* A(i,k) = A[i*lda + k]: float32 (rounded) or binary16 */
    const uint16_t *B; size_t ldb, nb; int bt;   /* B(k,j) = B[k*ldb + j] or (bt) B[j*ldb + k]; j < nb exist */
    const uint16_t *bias_m, *bias_n;             /* binary16 per row / per column, or NULL */
    float *C; size_t ldc;
    int act; float lo, hi;
    int act_fn;   /* Conv's fused activation function, applied to the stored float32 (scalar: REF's bytes;
                   * so SiLU only where REF's Sigmoid runs, dse__act_fns) */
} fh_gemm;

/* A's 8 values k0 .. k0 + kr - 1 of row i as binary16 lanes (lanes >= kr unused); not inlined, as
 * fh_load_b: one copy of each operand form instead of one per register tile (code size) */
static DSE_NOINLINE DSE_TARGET_NEON_FP16 float16x8_t fh_load_a(const fh_gemm *g, size_t i, size_t k0, size_t kr) {
    if (g->a32) {
        const float *p = (const float *)g->A + i * g->lda + k0;
        float t[8] = {0};
        if (kr < 8) { memcpy(t, p, kr * sizeof(float)); p = t; }
        return vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(p)), vld1q_f32(p + 4));
    }
    const uint16_t *p = (const uint16_t *)g->A + i * g->lda + k0;
    uint16_t t[8] = {0};
    if (kr < 8) { memcpy(t, p, kr * 2); p = t; }
    return vreinterpretq_f16_u16(vld1q_u16(p));
}

/* 8 halves from p, of which n < 8 exist (the rest 0) */
FH_AI uint16x8_t fh_load_part(const uint16_t *p, size_t n) {
    uint16_t t[8] = {0};
    memcpy(t, p, n * 2);
    return vld1q_u16(t);
}

/* b[l] = B(k0 + l, j .. j + 7) for l < kr (columns >= nb as 0) */
static DSE_NOINLINE DSE_TARGET_NEON_FP16 void fh_load_b(const fh_gemm *g, size_t k0, size_t kr, size_t j, float16x8_t b[8]) {
    const size_t have = g->nb - j < 8 ? g->nb - j : 8;
    if (!g->bt) {
        for (size_t l = 0; l < 8; l++) {
            const uint16_t *p = g->B + (k0 + l) * g->ldb + j;
            b[l] = vreinterpretq_f16_u16(l >= kr ? vdupq_n_u16(0) : have == 8 ? vld1q_u16(p) : fh_load_part(p, have));
        }
        return;
    }
    uint16x8_t r[8];   /* rows j .. j + 7 of B^T, k0 .. k0 + 7, then transposed */
    for (size_t c = 0; c < 8; c++)
        r[c] = c >= have ? vdupq_n_u16(0) : kr == 8 ? vld1q_u16(g->B + (j + c) * g->ldb + k0)
                                                    : fh_load_part(g->B + (j + c) * g->ldb + k0, kr);
    uint16x8_t t[8];
    for (int c = 0; c < 8; c += 2) t[c] = vtrn1q_u16(r[c], r[c + 1]), t[c + 1] = vtrn2q_u16(r[c], r[c + 1]);
    uint32x4_t s[8];
    for (int h = 0; h < 8; h += 4) {   /* s[h + q]: columns q and q + 4 of rows h .. h + 3 */
        s[h] = vtrn1q_u32(vreinterpretq_u32_u16(t[h]), vreinterpretq_u32_u16(t[h + 2]));
        s[h + 1] = vtrn1q_u32(vreinterpretq_u32_u16(t[h + 1]), vreinterpretq_u32_u16(t[h + 3]));
        s[h + 2] = vtrn2q_u32(vreinterpretq_u32_u16(t[h]), vreinterpretq_u32_u16(t[h + 2]));
        s[h + 3] = vtrn2q_u32(vreinterpretq_u32_u16(t[h + 1]), vreinterpretq_u32_u16(t[h + 3]));
    }
    for (int q = 0; q < 4; q++) {
        const uint64x2_t lo = vreinterpretq_u64_u32(s[q]), hi = vreinterpretq_u64_u32(s[q + 4]);
        b[q] = vreinterpretq_f16_u64(vtrn1q_u64(lo, hi));
        b[q + 4] = vreinterpretq_f16_u64(vtrn2q_u64(lo, hi));
    }
}

/* rows i .. i + MR - 1, columns j .. j + 8 NV - 1 (only the first jn stored) */
FH_AI void fh_tile(const fh_gemm *g, const int MR, const int NV, size_t i, size_t j, size_t jn) {
    float16x8_t acc[4][2], a[4], b[2][8];
    for (int v = 0; v < NV; v++) {
        float16x8_t init = vreinterpretq_f16_u16(vdupq_n_u16(0));
        if (g->bias_n) {
            const size_t have = g->nb - (j + 8 * (size_t)v) < 8 ? g->nb - (j + 8 * (size_t)v) : 8;
            init = vreinterpretq_f16_u16(have == 8 ? vld1q_u16(g->bias_n + j + 8 * v) : fh_load_part(g->bias_n + j + 8 * v, have));
        }
        for (int r = 0; r < MR; r++)
            acc[r][v] = g->bias_m ? vreinterpretq_f16_u16(vdupq_n_u16(g->bias_m[i + (size_t)r])) : init;
    }
    for (size_t k0 = 0; k0 < g->K; k0 += 8) {
        const size_t kr = g->K - k0 < 8 ? g->K - k0 : 8;
        for (int r = 0; r < MR; r++) a[r] = fh_load_a(g, i + (size_t)r, k0, kr);
        for (int v = 0; v < NV; v++) fh_load_b(g, k0, kr, j + 8 * (size_t)v, b[v]);
#define FH_STEP(L)                                                                             \
        if ((L) < kr)                                                                          \
            for (int r = 0; r < MR; r++)                                                       \
                for (int v = 0; v < NV; v++) acc[r][v] = vfmaq_laneq_f16(acc[r][v], b[v][L], a[r], L);
        FH_STEP(0) FH_STEP(1) FH_STEP(2) FH_STEP(3) FH_STEP(4) FH_STEP(5) FH_STEP(6) FH_STEP(7)
#undef FH_STEP
    }
    const float32x4_t lo = vdupq_n_f32(g->lo), hi = vdupq_n_f32(g->hi);
    const uint32x4_t qnan = vdupq_n_u32(0x7FC00000u);
    for (int r = 0; r < MR; r++) {
        float out[16];
        for (int v = 0; v < NV; v++)
            for (int h = 0; h < 2; h++) {
                float32x4_t y = h ? vcvt_high_f32_f16(acc[r][v]) : vcvt_f32_f16(vget_low_f16(acc[r][v]));
                if (g->act) {
                    y = vbslq_f32(vcltq_f32(y, lo), lo, y);
                    y = vbslq_f32(vcgtq_f32(y, hi), hi, y);
                }
                y = vreinterpretq_f32_u32(vbslq_u32(vceqq_f32(y, y), vreinterpretq_u32_f32(y), qnan));
                vst1q_f32(out + 8 * v + 4 * h, y);
            }
        if (g->act_fn)
            for (size_t l = 0; l < jn; l++) out[l] = dse__act_fnf(g->act_fn, out[l]);
        memcpy(g->C + (i + (size_t)r) * g->ldc + j, out, jn * sizeof(float));
    }
}

/* C[i, j] for i in [i0, i1), j in [j0, j1): tiles of 4 rows (the last rows one at a time) x 16 or 8 columns */
static DSE_TARGET_NEON_FP16 void fh_run(const fh_gemm *g, size_t i0, size_t i1, size_t j0, size_t j1) {
    for (size_t j = j0; j < j1;) {
        const size_t left = j1 - j, jn = left < 16 ? left : 16;
        size_t i = i0;
        if (jn > 8) {
            for (; i + 4 <= i1; i += 4) fh_tile(g, 4, 2, i, j, jn);
            for (; i < i1; i++) fh_tile(g, 1, 2, i, j, jn);
        } else {
            for (; i + 4 <= i1; i += 4) fh_tile(g, 4, 1, i, j, jn);
            for (; i < i1; i++) fh_tile(g, 1, 1, i, j, jn);
        }
        j += jn;
    }
}

/* -- Gemm, MatMul -------------------------------------------------------------------------------- */

#define FH_RB 16   /* rows and columns of a thread's part */
#define FH_CB 64

typedef struct { fh_gemm g; size_t R, N, ncb; } fh_gemm_job;

static void fh_gemm_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const fh_gemm_job *j = arg;
    for (size_t it = begin; it < end; it++) {
        const size_t i0 = it / j->ncb * FH_RB, j0 = it % j->ncb * FH_CB;
        fh_run(&j->g, i0, j->R - i0 < FH_RB ? j->R : i0 + FH_RB, j0, j->N - j0 < FH_CB ? j->N : j0 + FH_CB);
    }
}

/* Gemm (transA 0) or MatMul (2-D B): R rows of A, B as stored */
static void fh_gemm_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, int gemm) {
    const dse_tensor *bt = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    const int tb = gemm && dse__attr_int(n, DSE_A_transB, 0) != 0;
    fh_gemm_job j;
    memset(&j, 0, sizeof j);
    j.g.K = bt->dims[tb];
    j.N = bt->dims[!tb];
    j.R = j.N ? y->numel / j.N : 0;
    j.g.A = dse__data(m, arena, n->in[0]); j.g.lda = j.g.K; j.g.a32 = 1;
    j.g.B = dse__fp16_bits(bt); j.g.ldb = tb ? j.g.K : j.N; j.g.nb = j.N; j.g.bt = tb;
    j.g.bias_n = gemm && n->n_in >= 3 ? dse__fp16_bits(dse__t(m, n->in[2])) : NULL;
    j.g.C = dse__data(m, arena, n->out[0]); j.g.ldc = j.N;
    j.g.act = dse__nn_act(n, &j.g.lo, &j.g.hi);
    if (!j.R || !j.N) return;
    j.ncb = (j.N + FH_CB - 1) / FH_CB;
    const size_t items = (j.R + FH_RB - 1) / FH_RB * j.ncb;
    dse__parallel(cx, items, dse__grain(items, (uint64_t)j.R * j.N * j.g.K), fh_gemm_task, &j);
}

int dse__check_gemm_fp16_neon(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__fp16_check(m, n, why)) return 1;
    why->scratch = 0;   /* the plan stays the float32 kernels' */
    return 0;
}

void dse_f32_gemm_fp16__neon_fp16(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    fh_gemm_run(m, n, arena, cx, 1);
}

void dse_f32_matmul_fp16__neon_fp16(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    fh_gemm_run(m, n, arena, cx, 0);
}

/* -- Conv ---------------------------------------------------------------------------------------- */

/* pixels per im2col tile for K taps, P pixels and `plan` bytes: a block of K x pw floats, pw a multiple
 * of 8 (the last tile's block rounded up to 8 columns too) when the plan holds 8, else K x pw with
 * pw < 8 (*pad8 = 0: blocks exactly as wide as their tile); 0: the plan holds no pixel */
static size_t fh_conv_pw(size_t K, size_t P, size_t plan, int *pad8) {
    size_t pw = K ? plan / 4 / K : 0;
    const size_t cap = (K < 32768 / 16 ? 32768 / K : 16) / 8 * 8, p8 = (P + 7) / 8 * 8;
    *pad8 = pw >= 8;
    if (pw < 8) return pw < P ? pw : P;
    pw = pw / 8 * 8;
    if (pw > cap) pw = cap;
    return pw > p8 ? p8 : pw;
}

int dse__check_conv_fp16_neon(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_conv_geom g;
    int pad8;
    if (dse__fp16_check(m, n, why) || dse__conv_f32_geom(m, n, &g, why)) return 1;
    const size_t K = g.C / g.G * (size_t)(g.k[0] * g.k[1] * g.k[2]), P = g.out[0] * g.out[1] * g.out[2];
    const size_t pw = fh_conv_pw(K, P, why->scratch_plan, &pad8), need = 4 * K * pw;
    if (!pw || !dse__scratch_free(m, n, need)) {   /* REF's binary16 runs it (dse__check_conv_f32_neon refuses it) */
        DSE_WHYF(why, F32_OPT_NOT_COVERED, "scratch not planned", 0, 0, 0, 0);
        return 1;
    }
    why->scratch = need;
    why->act_fns = dse__act_fns(m, 0);   /* REF's scalar dse__act_fnf: no SiLU where NEON's Sigmoid runs */
    return 0;
}

typedef struct {
    const dse_ctx *cx;
    dse_conv_geom g;
    size_t cg, mg, K, P, isz, pw, ntiles;
    int pad8;   /* blocks padded to a multiple of 8 columns */
    const float *x;
    const uint16_t *w, *b;
    float *y;
    int act, act_fn;
    float lo, hi;
} fh_conv_job;

/* n floats at p to binary16 at p (as halves), in place: 8 (then 1) halves written behind the floats
 * read (the compiler barriers keep every store after the loads before it: float and uint16_t
 * accesses to the same bytes, which the compiler could otherwise take for independent) */
static DSE_TARGET_NEON_FP16 void fh_narrow(float *p, size_t n) {
    uint16_t *h = (uint16_t *)(void *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t v = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(p + i)), vld1q_f32(p + i + 4));
        __asm__ __volatile__("" ::: "memory");
        vst1q_u16(h + i, vreinterpretq_u16_f16(v));
    }
    for (; i < n; i++) {
        const uint16x4_t v = vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(p[i])));
        __asm__ __volatile__("" ::: "memory");
        h[i] = vget_lane_u16(v, 0);
    }
    __asm__ __volatile__("" ::: "memory");
}

static void fh_conv_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const fh_conv_job *j = arg;
    const dse_conv_geom *g = &j->g;
    float *scratch = (float *)(void *)dse__worker_scratch(j->cx, worker);
    for (size_t it = begin; it < end; it++) {
        const size_t tile = it % j->ntiles, grp = it / j->ntiles % g->G, img = it / j->ntiles / g->G;
        const size_t p0 = tile * j->pw, cnt = j->P - p0 < j->pw ? j->P - p0 : j->pw, pw = j->pad8 ? (cnt + 7) / 8 * 8 : cnt;
        dse_f32_conv_im2col(g, j->cg, j->x + (img * g->C + grp * j->cg) * j->isz, p0, cnt, pw, scratch);
        fh_narrow(scratch, j->K * pw);
        fh_gemm s;
        memset(&s, 0, sizeof s);
        s.K = j->K;
        s.A = j->w + grp * j->mg * j->K; s.lda = j->K;
        s.B = (const uint16_t *)(const void *)scratch; s.ldb = pw; s.nb = pw;
        s.bias_m = j->b ? j->b + grp * j->mg : NULL;
        s.C = j->y + (img * g->M + grp * j->mg) * j->P + p0; s.ldc = j->P;
        s.act = j->act; s.lo = j->lo; s.hi = j->hi; s.act_fn = j->act_fn;
        fh_run(&s, 0, j->mg, 0, cnt);
    }
}

void dse_f32_conv_fp16__neon_fp16(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    fh_conv_job j;
    dse_why why;
    memset(&j, 0, sizeof j);
    dse__conv_f32_geom(m, n, &j.g, &why);   /* validated at load */
    const dse_conv_geom *g = &j.g;
    j.cx = cx;
    j.cg = g->C / g->G; j.mg = g->M / g->G;
    j.K = j.cg * (size_t)(g->k[0] * g->k[1] * g->k[2]);
    j.P = g->out[0] * g->out[1] * g->out[2];
    j.isz = g->in[0] * g->in[1] * g->in[2];
    j.pw = fh_conv_pw(j.K, j.P, n->scratch_plan, &j.pad8);   /* the check's (n->scratch = 4 K pw) */
    j.x = dse__data(m, arena, n->in[0]);
    j.w = dse__fp16_bits(&m->tensors[n->in[1]]);
    j.b = n->n_in == 3 ? dse__fp16_bits(dse__t(m, n->in[2])) : NULL;
    j.y = dse__data(m, arena, n->out[0]);
    j.act = dse__nn_act(n, &j.lo, &j.hi);
    j.act_fn = dse__nn_act_fn(n);
    if (!j.P || !g->M || !j.pw) return;
    j.ntiles = (j.P + j.pw - 1) / j.pw;
    const size_t items = g->N * g->G * j.ntiles;
    dse__parallel(cx, items, dse__grain(items, (uint64_t)g->N * g->M * j.P * j.K), fh_conv_task, &j);
}

#endif
