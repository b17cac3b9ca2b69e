/* integer.c (AVX2): the ops of onnxruntime's quantize_dynamic output: DynamicQuantizeLinear,
 * ConvInteger, MatMulInteger and com.microsoft DynamicQuantizeLSTM, byte-identical with the REF
 * kernels (kernels/ref/dynamic_quantize.c, conv_integer.c, matmul_integer.c, dyn_lstm.c) for
 * every node their checks accept.
 *
 * Arithmetic: y = sum_k (a_k - za) * (b_k - zb) modulo 2^32, as REF. Operands and zero points
 * are uint8 or int8, so each difference lies in [-383, 383] and is an exact int16 lane; vpmaddwd
 * forms a_k b_k + a_k+1 b_k+1 exactly in int32 (|.| <= 2 * 383^2 < 2^31), and the pairs are
 * added with vpaddd, which wraps modulo 2^32 as REF's uint32 sums do. A sum modulo 2^32 does
 * not depend on the order of its terms, nor on how it is split: MatMul sums (a - za) b and
 * subtracts zb * sum(a - za) at the end (as REF's loop does), Conv multiplies the differences.
 * So the int32 results are REF's bytes for any order, tile shape or thread count. A padding tap
 * of a Conv is x = zx (REF skips it: 0 either way).
 *
 * GEMM core: Y[r][j] = sum_k A'[r][k] B'[k][j] with A' = a - za packed as int16 pairs, one int32
 * per (row, k pair) (A's rows for MatMul, DSE_INT_MM_ROWS at a time, with their sums; the
 * weights, all O rows, for Conv), and 16 columns of B' per tile as each column's pairs: a panel
 * packed first (Conv: im2col of 16 output pixels, x - zx; MatMul with more than 6 rows: B's
 * columns), or B's rows read directly (MatMul with at most 6 rows: two rows' 16 bytes unpacked
 * into byte pairs and widened; one row: 64 columns, whole cache lines, at a time). The
 * microkernel keeps up to 6 rows x 16 columns in 12 accumulators: per k pair the 16 columns'
 * pairs, a broadcast of each row's pair, vpmaddwd + vpaddd. Rows in blocks of at most 6, as
 * even as possible. Scratch (requant.h dse_int_gemm_plan): the packed rows, then one panel per
 * worker. On the project's EPYC (Zen 1: a 256-bit vpmaddwd is two 128-bit halves) this runs at
 * ~16 G multiply-adds/s per core, the chip's vpmaddwd rate.
 *
 * ConvInteger: weights (w - zw, per output channel or one value) packed once per run; panels of
 * 16 consecutive output pixels of one image and group (they may span output rows), each k's 16
 * input bytes gathered by output row segments (stride-1 rows copied, zx where a tap is padding)
 * then widened; x_zero_point must have x's dtype (else REF; it then pads with it). MatMulInteger:
 * any batch broadcasting (dse__matmul_geom), zero points per row of A / column of B.
 * DynamicQuantizeLSTM: REF's run (dse__dyn_lstm_run: the quantisation, float scaling, cell) with
 * its two integer products on this core and its activations vectorised with REF's bits (below),
 * so its float outputs are REF's bytes. DynamicQuantizeLinear: REF's rule, 8 lanes.
 *
 * Threads: panels (Conv: image x group x panel; MatMul: per batch and row chunk, the 16-column
 * blocks), each packed by the worker that uses it into its own scratch; the packed rows are
 * made once, before, by the caller. Each output element is written by one part. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

#include <math.h>

#include "mathf.h"
#include "requant.h"

/* the register tiles' helpers are forced inline and their loops unrolled (accumulators in
 * registers), except in sanitizer builds (as src/avx2_f32.h) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IMM_AI static inline DSE_TARGET_AVX2
#define IMM_UNROLL
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IMM_AI static inline DSE_TARGET_AVX2
#define IMM_UNROLL
#endif
#endif
#ifndef IMM_AI
#define IMM_AI static inline __attribute__((always_inline)) DSE_TARGET_AVX2
#define IMM_UNROLL _Pragma("GCC unroll 8")
#endif

/* -- checks (plain C: they run at load) ----------------------------------------------------- */

int dse__check_conv_integer_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t plan = 0;
    if (dse__conv_integer_valid(m, n, &plan, why)) return 1;
    const dse_tensor *x = dse__t(m, n->in[0]), *zx = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL;
    if (zx && zx->dtype != x->dtype) return 1;   /* the padding fill needs zx as an x byte */
    if (!dse__scratch_free(m, n, plan)) return 1;   /* planned before this variant: REF */
    why->scratch = why->scratch_plan = plan;
    return 0;
}

int dse__check_matmul_integer_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t plan = 0;
    if (dse__matmul_integer_valid(m, n, &plan, why)) return 1;
    if (!dse__scratch_free(m, n, plan)) return 1;
    why->scratch = why->scratch_plan = plan;
    return 0;
}

int dse__check_dyn_lstm_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t ref = 0, plan = 0;
    if (dse__dyn_lstm_valid(m, n, &ref, &plan, why)) return 1;
    if (!dse__scratch_free(m, n, plan)) return 1;
    why->scratch = why->scratch_plan = plan;
    return 0;
}

/* -- packing ---------------------------------------------------------------------------------- */

static inline int32_t imm_at(const void *p, int u8, size_t i) {
    return u8 ? (int32_t)((const uint8_t *)p)[i] : (int32_t)((const int8_t *)p)[i];
}
static inline int32_t imm_pair(int32_t lo, int32_t hi) {   /* two int16 lanes in one int32 */
    return (int32_t)((uint32_t)(uint16_t)(int16_t)lo | (uint32_t)(uint16_t)(int16_t)hi << 16);
}

/* rows [r0, r0 + rows) of a (row stride lda elements), minus their zero point (per row or one), as
 * int16 pairs: ap[r * Kp2 + kp] = (a[r][2kp] - z, a[r][2kp+1] - z), 0 past K; S (or NULL) gets
 * each row's sum of a - z modulo 2^32 */
static void imm_pack_rows(const void *a, int a_u8, size_t lda, size_t r0, size_t rows, size_t K, const void *z, int z_u8,
                          size_t z_step, int32_t *ap, int32_t *S) {
    const size_t Kp2 = (K + 1) / 2;
    for (size_t r = 0; r < rows; r++) {
        const int32_t zr = z ? imm_at(z, z_u8, (r0 + r) * z_step) : 0;
        const size_t base = (r0 + r) * lda;
        int32_t *d = ap + r * Kp2;
        uint32_t sum = 0;
        for (size_t kp = 0; kp < K / 2; kp++) {
            const int32_t v0 = imm_at(a, a_u8, base + 2 * kp) - zr, v1 = imm_at(a, a_u8, base + 2 * kp + 1) - zr;
            d[kp] = imm_pair(v0, v1);
            sum += (uint32_t)v0 + (uint32_t)v1;
        }
        if (K & 1) {
            const int32_t v0 = imm_at(a, a_u8, base + K - 1) - zr;
            d[K / 2] = imm_pair(v0, 0);
            sum += (uint32_t)v0;
        }
        if (S) memcpy(S + r, &sum, 4);
    }
}

/* 16 bytes -> 16 int16 lanes minus z */
IMM_AI __m256i imm_widen(const uint8_t *p, int u8, __m256i z) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    return _mm256_sub_epi16(u8 ? _mm256_cvtepu8_epi16(v) : _mm256_cvtepi8_epi16(v), z);
}

/* The pairs of k (lanes v0) and k+1 (v1) of 16 columns into the panel row pp[0..15]. */
IMM_AI void imm_store_pairs(int32_t *pp, __m256i v0, __m256i v1) {
    v0 = _mm256_permute4x64_epi64(v0, 0xD8), v1 = _mm256_permute4x64_epi64(v1, 0xD8);   /* (columns 0-3, 8-11 | 4-7, 12-15) */
    _mm256_storeu_si256((__m256i *)pp, _mm256_unpacklo_epi16(v0, v1));                  /* columns 0-7 */
    _mm256_storeu_si256((__m256i *)(pp + 8), _mm256_unpackhi_epi16(v0, v1));            /* columns 8-15 */
}

/* Rows k and k+1 (16 bytes each, k+1 may be absent: NULL) of B as the 16 columns' int16 pairs,
 * no zero point subtracted: columns 0-7 in x0, 8-15 in x1 */
IMM_AI void imm_b_pairs(const uint8_t *r0, const uint8_t *r1, int u8, __m256i *x0, __m256i *x1) {
    const __m128i a = _mm_loadu_si128((const __m128i *)r0), b = r1 ? _mm_loadu_si128((const __m128i *)r1) : _mm_setzero_si128();
    const __m128i lo = _mm_unpacklo_epi8(a, b), hi = _mm_unpackhi_epi8(a, b);   /* byte pairs of columns 0-7, 8-15 */
    *x0 = u8 ? _mm256_cvtepu8_epi16(lo) : _mm256_cvtepi8_epi16(lo);
    *x1 = u8 ? _mm256_cvtepu8_epi16(hi) : _mm256_cvtepi8_epi16(hi);
}

/* MatMul: columns [n0, n0 + nl) (nl <= 16) of B (K x N bytes) as a panel, zb not subtracted
 * (the tile subtracts zb * sum(a - za) at the end); the lanes past nl are never stored */
static DSE_TARGET_AVX2 void imm_pack_panel_b(const uint8_t *B, int b_u8, size_t K, size_t N, size_t n0, size_t nl, int32_t *pp) {
    uint8_t t0[16] = {0}, t1[16] = {0};
    for (size_t k = 0; k < K; k += 2, pp += 16) {
        const uint8_t *r0 = B + k * N + n0, *r1 = k + 1 < K ? r0 + N : NULL;
        if (nl < 16) {
            memcpy(t0, r0, nl);
            if (r1) memcpy(t1, r1, nl);
            r0 = t0, r1 = r1 ? t1 : NULL;
        }
        __m256i x0, x1;
        imm_b_pairs(r0, r1, b_u8, &x0, &x1);
        _mm256_storeu_si256((__m256i *)pp, x0);
        _mm256_storeu_si256((__m256i *)(pp + 8), x1);
    }
}

/* -- the microkernel ------------------------------------------------------------------------- */


/* Where a tile reads its 16 columns: a panel (pp[kp * 16 + l]: column l's pair kp) or B's rows
 * themselves (16 bytes at b + k * ldb for every k < K), paired as they are loaded. */
enum { IMM_PANEL, IMM_DIRECT };
typedef struct imm_src {
    const int32_t *pp;
    const uint8_t *b;
    size_t ldb, K;
    int b_u8;
    const int32_t *S, *zbv;   /* MatMul: y -= zbv[l] * S[r] (NULL: nothing to subtract) */
} imm_src;

/* rows [0, MR) of ap (Kp2 pairs each) times the 16 columns of src: y[r * ldy + l] for l < nl */
IMM_AI void imm_tile(const int MR, const int mode, const int32_t *ap, size_t Kp2, const imm_src *src, int32_t *y, size_t ldy,
                     size_t nl) {
    __m256i c0[6], c1[6];
    IMM_UNROLL
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm256_setzero_si256();
    const int32_t *pp = src->pp;
    const uint8_t *b = src->b;
    const size_t ldb = src->ldb, K = src->K;
    for (size_t kp = 0; kp < Kp2; kp++) {
        __m256i x0, x1;
        if (mode == IMM_PANEL) {
            x0 = _mm256_loadu_si256((const __m256i *)(pp + 16 * kp)), x1 = _mm256_loadu_si256((const __m256i *)(pp + 16 * kp + 8));
        } else {
            const uint8_t *r0 = b + 2 * kp * ldb;
            imm_b_pairs(r0, 2 * kp + 1 < K ? r0 + ldb : NULL, src->b_u8, &x0, &x1);
        }
        IMM_UNROLL
        for (int r = 0; r < MR; r++) {
            const __m256i w = _mm256_set1_epi32(ap[r * Kp2 + kp]);
            c0[r] = _mm256_add_epi32(c0[r], _mm256_madd_epi16(x0, w));
            c1[r] = _mm256_add_epi32(c1[r], _mm256_madd_epi16(x1, w));
        }
    }
    if (src->zbv) {   /* sum (a - za) b - zb sum (a - za), modulo 2^32 */
        const __m256i z0 = _mm256_loadu_si256((const __m256i *)src->zbv), z1 = _mm256_loadu_si256((const __m256i *)(src->zbv + 8));
        IMM_UNROLL
        for (int r = 0; r < MR; r++) {
            const __m256i sr = _mm256_set1_epi32(src->S[r]);
            c0[r] = _mm256_sub_epi32(c0[r], _mm256_mullo_epi32(z0, sr));
            c1[r] = _mm256_sub_epi32(c1[r], _mm256_mullo_epi32(z1, sr));
        }
    }
    IMM_UNROLL
    for (int r = 0; r < MR; r++) {
        int32_t *d = y + r * ldy;
        if (nl == 16) {
            _mm256_storeu_si256((__m256i *)d, c0[r]);
            _mm256_storeu_si256((__m256i *)(d + 8), c1[r]);
        } else {
            int32_t t[16];
            _mm256_storeu_si256((__m256i *)t, c0[r]);
            _mm256_storeu_si256((__m256i *)(t + 8), c1[r]);
            memcpy(d, t, nl * sizeof(int32_t));
        }
    }
}

#define IMM_TILE(MR)                                                                                                       \
    static DSE_TARGET_AVX2 void imm_tile##MR(const int32_t *ap, size_t Kp2, const imm_src *s, int32_t *y, size_t ldy, size_t nl) {  \
        imm_tile(MR, IMM_PANEL, ap, Kp2, s, y, ldy, nl);                                                                    \
    }                                                                                                                      \
    static DSE_TARGET_AVX2 void imm_tiled##MR(const int32_t *ap, size_t Kp2, const imm_src *s, int32_t *y, size_t ldy, size_t nl) { \
        imm_tile(MR, IMM_DIRECT, ap, Kp2, s, y, ldy, nl);                                                                   \
    }
IMM_TILE(1)
IMM_TILE(2)
IMM_TILE(3)
IMM_TILE(4)
IMM_TILE(5)
IMM_TILE(6)

/* One row of A times 64 columns of B read directly (a matrix-vector product: each 64-byte line of
 * B's rows used whole, once): 8 accumulators. */
IMM_AI void imm_row64_k(__m256i *c, const uint8_t *r0, const uint8_t *r1, int u8, __m256i w) {
    IMM_UNROLL
    for (int q = 0; q < 4; q++) {
        __m256i x0, x1;
        imm_b_pairs(r0 + 16 * q, r1 ? r1 + 16 * q : NULL, u8, &x0, &x1);
        c[2 * q] = _mm256_add_epi32(c[2 * q], _mm256_madd_epi16(x0, w));
        c[2 * q + 1] = _mm256_add_epi32(c[2 * q + 1], _mm256_madd_epi16(x1, w));
    }
}

static DSE_TARGET_AVX2 void imm_row64(const int32_t *ap, size_t Kp2, const imm_src *src, int32_t *y) {
    __m256i c[8];
    IMM_UNROLL
    for (int v = 0; v < 8; v++) c[v] = _mm256_setzero_si256();
    const uint8_t *b = src->b;
    const size_t ldb = src->ldb, K = src->K;
    (void)Kp2;
    size_t kp = 0;
    if (src->b_u8)
        for (; kp < K / 2; kp++) imm_row64_k(c, b + 2 * kp * ldb, b + (2 * kp + 1) * ldb, 1, _mm256_set1_epi32(ap[kp]));
    else
        for (; kp < K / 2; kp++) imm_row64_k(c, b + 2 * kp * ldb, b + (2 * kp + 1) * ldb, 0, _mm256_set1_epi32(ap[kp]));
    if (K & 1) imm_row64_k(c, b + (K - 1) * ldb, NULL, src->b_u8, _mm256_set1_epi32(ap[kp]));
    if (src->zbv) {
        const __m256i sr = _mm256_set1_epi32(src->S[0]);
        IMM_UNROLL
        for (int v = 0; v < 8; v++) c[v] = _mm256_sub_epi32(c[v], _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(src->zbv + 8 * v)), sr));
    }
    IMM_UNROLL
    for (int v = 0; v < 8; v++) _mm256_storeu_si256((__m256i *)(y + 8 * v), c[v]);
}

/* rows [0, rows) of ap times 16 columns of src (direct: B's rows, at most 6 rows), into y (row
 * stride ldy), nl columns */
static DSE_TARGET_AVX2 void imm_rows(const int32_t *ap, size_t rows, size_t Kp2, const imm_src *src, int direct, int32_t *y,
                                     size_t ldy, size_t nl) {
    const size_t nb = (rows + 5) / 6, base = nb ? rows / nb : 0, extra = nb ? rows % nb : 0;
    for (size_t blk = 0, r = 0; blk < nb; blk++) {
        const size_t mr = base + (blk < extra);
        const int32_t *a = ap + r * Kp2;
        int32_t *d = y + r * ldy;
        imm_src s = *src;
        if (s.S) s.S += r;
        switch (mr * 2 + (direct != 0)) {
        case 12: imm_tile6(a, Kp2, &s, d, ldy, nl); break;
        case 13: imm_tiled6(a, Kp2, &s, d, ldy, nl); break;
        case 10: imm_tile5(a, Kp2, &s, d, ldy, nl); break;
        case 11: imm_tiled5(a, Kp2, &s, d, ldy, nl); break;
        case 8: imm_tile4(a, Kp2, &s, d, ldy, nl); break;
        case 9: imm_tiled4(a, Kp2, &s, d, ldy, nl); break;
        case 6: imm_tile3(a, Kp2, &s, d, ldy, nl); break;
        case 7: imm_tiled3(a, Kp2, &s, d, ldy, nl); break;
        case 4: imm_tile2(a, Kp2, &s, d, ldy, nl); break;
        case 5: imm_tiled2(a, Kp2, &s, d, ldy, nl); break;
        case 3: imm_tiled1(a, Kp2, &s, d, ldy, nl); break;
        default: imm_tile1(a, Kp2, &s, d, ldy, nl); break;
        }
        r += mr;
    }
}

/* a grain of dse__parallel for items of `macs` multiply-adds: >= 64K per part */
static size_t imm_grain(size_t macs) { return macs ? (65536 + macs - 1) / macs : 1; }

/* -- MatMul (MatMulInteger, DynamicQuantizeLSTM's products) ---------------------------------- */

typedef struct imm_job {
    const dse_ctx *cx;
    const dse_int_mm *p;
    const int32_t *ap;      /* the packed rows of this chunk */
    size_t rows, Kp2, poff;  /* chunk rows, pairs per row, the panel's offset in a worker's scratch */
    int32_t *y;             /* the chunk's first output row */
    int32_t S[DSE_INT_MM_ROWS];   /* the chunk rows' sums of a - za */
} imm_job;

/* column blocks [j0, j1) of 16: at most 6 rows read B's rows directly (one tile per block), more
 * pack the block into a panel first (it is then read once per 6 rows); tails always packed */
static DSE_TARGET_AVX2 void imm_panels(void *arg, size_t j0, size_t j1, unsigned worker) {
    const imm_job *j = arg;
    const dse_int_mm *p = j->p;
    int32_t *pp = (int32_t *)(void *)(dse__worker_scratch(j->cx, worker) + j->poff);
    int32_t zbv[64];
    imm_src src = {pp, NULL, p->N, p->K, p->b_u8, j->S, p->zb ? zbv : NULL};
    for (size_t jb = j0; jb < j1; jb++) {
        const size_t n0 = 16 * jb, nl = p->N - n0 < 16 ? p->N - n0 : 16;
        if (j->rows == 1 && jb % 4 == 0 && jb + 4 <= j1 && n0 + 64 <= p->N) {   /* 4 blocks at once */
            if (p->zb)
                for (size_t l = 0; l < 64; l++) zbv[l] = imm_at(p->zb, p->zb_u8, (n0 + l) * p->zb_step);
            src.b = (const uint8_t *)p->b + n0;
            imm_row64(j->ap, j->Kp2, &src, j->y + n0);
            jb += 3;
            continue;
        }
        if (p->zb)
            for (size_t l = 0; l < 16; l++) zbv[l] = l < nl ? imm_at(p->zb, p->zb_u8, (n0 + l) * p->zb_step) : 0;
        const int direct = j->rows <= 6 && nl == 16;
        if (direct) src.b = (const uint8_t *)p->b + n0;
        else imm_pack_panel_b(p->b, p->b_u8, p->K, p->N, n0, nl, pp);
        imm_rows(j->ap, j->rows, j->Kp2, &src, direct, j->y + n0, p->N, nl);
    }
}

/* Y = (A - za)(B - zb) for one matrix pair, with the scratch at `soff` bytes into each worker's */
static DSE_TARGET_AVX2 void imm_matmul(const dse_ctx *cx, const dse_int_mm *p, size_t soff) {
    if (!p->M || !p->N) return;
    if (!p->K) {
        memset(p->y, 0, p->M * p->N * sizeof(int32_t));
        return;
    }
    const size_t Kp2 = (p->K + 1) / 2, cap = p->M < DSE_INT_MM_ROWS ? p->M : DSE_INT_MM_ROWS, np = (p->N + 15) / 16;
    int32_t *ap = (int32_t *)(void *)(cx->scratch + soff);
    imm_job j;
    memset(&j, 0, sizeof j);
    j.cx = cx, j.p = p, j.ap = ap, j.Kp2 = Kp2, j.poff = soff + 4 * cap * Kp2;
    for (size_t r0 = 0; r0 < p->M; r0 += cap) {
        j.rows = p->M - r0 < cap ? p->M - r0 : cap;
        imm_pack_rows(p->a, p->a_u8, p->K, r0, j.rows, p->K, p->za, p->za_u8, p->za_step, ap, j.S);
        j.y = p->y + r0 * p->N;
        size_t grain = imm_grain(16 * j.rows * p->K);
        if (j.rows == 1) grain = (grain + 3) / 4 * 4;   /* whole 64-column groups (imm_row64) */
        dse__parallel(cx, np, grain, imm_panels, &j);
    }
}


/* A product of DynamicQuantizeLSTM (after REF's part of the scratch: *arg) or MatMulInteger (0) on this core */
static DSE_TARGET_AVX2 void imm_mm(const dse_ctx *cx, const dse_int_mm *p, void *arg) {
    imm_matmul(cx, p, *(const size_t *)arg);
}

/* MatMulInteger: REF's batch walk, each batch's product on this core (scratch from its start) */
void dse_i32_matmulinteger__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    size_t soff = 0;
    dse__matmul_integer_run(m, n, arena, cx, imm_mm, &soff);
}

/* REF's activations (dyn_lstm.c: MLAS's logistic and tanh, each Horner step a float64 multiply
 * and add rounded once to float32; relu as numpy maximum), 8 lanes, the same bits: float64
 * halves of 4 lanes for the Horner steps (a float32 product is exact in float64, the add rounds
 * once, cvtpd_ps rounds to nearest even as the C conversion does), float32 mul / div / add,
 * min/max in the operand order that keeps a NaN. */
DSE_TARGET_AVX2 static inline __m256 dqa_horner(__m256 v2, const float *c, int n) {
    const __m256d z0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v2)), z1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v2, 1));
    __m256d a0 = _mm256_add_pd(_mm256_mul_pd(z0, _mm256_set1_pd((double)c[0])), _mm256_set1_pd((double)c[1]));
    __m256d a1 = _mm256_add_pd(_mm256_mul_pd(z1, _mm256_set1_pd((double)c[0])), _mm256_set1_pd((double)c[1]));
    for (int k = 2; k < n; k++) {   /* acc = (float)((double)acc * v2 + c[k]) */
        a0 = _mm256_cvtps_pd(_mm256_cvtpd_ps(a0)), a1 = _mm256_cvtps_pd(_mm256_cvtpd_ps(a1));
        a0 = _mm256_add_pd(_mm256_mul_pd(a0, z0), _mm256_set1_pd((double)c[k]));
        a1 = _mm256_add_pd(_mm256_mul_pd(a1, z1), _mm256_set1_pd((double)c[k]));
    }
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(a0)), _mm256_cvtpd_ps(a1), 1);
}

DSE_TARGET_AVX2 static inline __m256 dqa_clamp(__m256 v, float lo, float hi) {   /* v < lo ? lo : v > hi ? hi : v */
    return _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), v));
}

DSE_TARGET_AVX2 static inline __m256 dqa_one(int kind, __m256 x) {
    static const float LP[5] = {4.37031012579801e-11f, 1.15627324459942e-07f, 6.08574864600143e-05f,
                                8.51377133304701e-03f, 2.48287947061529e-01f};
    static const float LQ[6] = {6.10247389755681e-13f, 5.76102136993427e-09f, 6.29106785017040e-06f,
                                1.70198817374094e-03f, 1.16817656904453e-01f, 9.93151921023180e-01f};
    static const float TP[7] = {-2.76076847742355e-16f, 2.00018790482477e-13f, -8.60467152213735e-11f,
                                5.12229709037114e-08f, 1.48572235717979e-05f, 6.37261928875436e-04f, 4.89352455891786e-03f};
    static const float TQ[4] = {1.19825839466702e-06f, 1.18534705686654e-04f, 2.26843463243900e-03f, 4.89352518554385e-03f};
    if (kind == DSE_DYNL_SIGMOID) {
        const __m256 v = dqa_clamp(x, -18.0f, 18.0f), v2 = _mm256_mul_ps(v, v);
        const __m256 p = _mm256_mul_ps(dqa_horner(v2, LP, 5), v);
        return dqa_clamp(_mm256_add_ps(_mm256_div_ps(p, dqa_horner(v2, LQ, 6)), _mm256_set1_ps(0.5f)), 0.0f, 1.0f);
    }
    if (kind == DSE_DYNL_TANH) {
        const __m256 v = dqa_clamp(x, -9.0f, 9.0f), v2 = _mm256_mul_ps(v, v);
        return _mm256_div_ps(_mm256_mul_ps(dqa_horner(v2, TP, 7), v), dqa_horner(v2, TQ, 4));
    }
    const __m256 r = _mm256_max_ps(x, _mm256_setzero_ps());   /* -0 -> +0 */
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));   /* NaN stays */
}

static DSE_TARGET_AVX2 void imm_dyn_lstm_act(int kind, const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, dqa_one(kind, _mm256_loadu_ps(x + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (n - i) * sizeof(float));
        _mm256_storeu_ps(t, dqa_one(kind, _mm256_loadu_ps(t)));
        memcpy(y + i, t, (n - i) * sizeof(float));
    }
}

void dse_f32_dynamicquantizelstm__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    size_t ref = 0;
    dse_why why;
    dse__dyn_lstm_valid(m, n, &ref, NULL, &why);   /* validated at load */
    const dse_dyn_lstm_ops ops = {imm_mm, &ref, imm_dyn_lstm_act};
    dse__dyn_lstm_run(m, n, arena, cx, &ops);
}

/* -- DynamicQuantizeLinear (REF's check: kernels/ref/dynamic_quantize.c, whose rule this is) --- */

/* min and max of x (NaN anywhere: the NaN flag), 4 x 8 lanes, then REF's scale and zero point.
 * The sign of a zero min/max may differ from REF's sequential pick; scale and zero point do not
 * depend on it (dynamic_quantize.c: lo = min(mn, 0), hi = max(mx, 0)). */
static DSE_TARGET_AVX2 void dqz_params(const float *x, size_t n, float *scale, uint8_t *zp) {
    float mn = 0.0f, mx = 0.0f;
    int nan = 0;
    size_t i = 0;
    if (n >= 8) {
        __m256 lo = _mm256_loadu_ps(x), hi = lo, bad = _mm256_cmp_ps(lo, lo, _CMP_UNORD_Q);
        for (i = 8; i + 8 <= n; i += 8) {
            const __m256 v = _mm256_loadu_ps(x + i);
            lo = _mm256_min_ps(lo, v), hi = _mm256_max_ps(hi, v);
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        float l[8], h[8];
        _mm256_storeu_ps(l, lo), _mm256_storeu_ps(h, hi);
        nan = _mm256_movemask_ps(bad) != 0;
        mn = l[0], mx = h[0];
        for (int k = 1; k < 8; k++) mn = l[k] < mn ? l[k] : mn, mx = h[k] > mx ? h[k] : mx;
    } else if (n) {
        mn = mx = x[0];
    }
    for (; i < n; i++) {
        const float v = x[i];
        nan |= v != v;
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    if (nan) {
        *scale = dse_u2f(DSE_NAN_BITS), *zp = 0;   /* REF: NaN range, scale NaN, zero point 0 */
        return;
    }
    const float lo = 0.0f < mn ? 0.0f : mn, hi = 0.0f > mx ? 0.0f : mx;
    const float s = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    float z = 0.0f - lo / s;
    z = z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z;
    z = nearbyintf(z);
    *scale = dse_canonf(s);
    *zp = z != z ? 0 : (uint8_t)z;
}

/* y = clamp(rint(x / scale) + zp, 0, 255), NaN -> 0, 8 lanes (REF's division and rounding) */
static DSE_TARGET_AVX2 void dqz_quantize(const float *x, size_t n, float scale, uint8_t zp, uint8_t *y) {
    const __m256 s = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-256.0f), hi = _mm256_set1_ps(256.0f);
    const __m256i z = _mm256_set1_epi32(zp);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256 ok = _mm256_cmp_ps(r, r, _CMP_ORD_Q);
        __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(hi, _mm256_max_ps(lo, r))), z);
        v = _mm256_and_si256(v, _mm256_castps_si256(ok));                     /* NaN -> 0 */
        const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));   /* int16, in range */
        _mm_storel_epi64((__m128i *)(y + i), _mm_packus_epi16(w, w));          /* clamp to [0, 255] */
    }
    for (; i < n; i++) {   /* REF's loop */
        const float r = nearbyintf(x[i] / scale);
        const int v = r != r || r <= -256.0f ? 0 : r >= 256.0f ? 255 : (int)r + zp;
        y[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

void dse_u8_dynamicquantizelinear__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const float *x = dse__data(m, arena, n->in[0]);
    float s;
    uint8_t z;
    dqz_params(x, xt->numel, &s, &z);
    dqz_quantize(x, xt->numel, s, z, dse__data(m, arena, n->out[0]));
    if (n->n_out >= 2 && n->out[1] != DSE_NONE) memcpy(dse__data(m, arena, n->out[1]), &s, sizeof s);
    if (n->n_out >= 3 && n->out[2] != DSE_NONE) *(uint8_t *)dse__data(m, arena, n->out[2]) = z;
}

/* -- ConvInteger ------------------------------------------------------------------------------ */

typedef struct icv_job {
    const dse_ctx *cx;
    const dse_i8_geom *g;
    const uint8_t *x;         /* bytes (uint8 or int8) */
    int x_u8;
    uint8_t zxb;              /* zx as an x byte: the padding */
    int16_t zx;
    const int32_t *wp;        /* all O rows of w - zw as pairs */
    size_t C, O, Cg, Og, K, Kp2, P, np, poff;
    int32_t *y;
} icv_job;

/* the panel of output pixels [p0, p0 + nl) of image b, group gr: for each k = (c, kd, kh, kw),
 * the 16 input bytes of its tap (zx for padding and for lanes >= nl), widened minus zx, paired */
static DSE_TARGET_AVX2 void icv_pack(const icv_job *j, size_t b, size_t gr, size_t p0, size_t nl, int32_t *pp) {
    const dse_i8_geom *g = j->g;
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2];
    /* output row segments of the panel: lanes [l0, l0 + len) at (od, oh), columns from ow */
    long long sod[16], soh[16], sow[16];
    size_t sl0[16], slen[16], ns = 0;
    for (size_t l = 0; l < nl; ns++) {
        const size_t pix = p0 + l;
        sow[ns] = (long long)(pix % (size_t)OW), soh[ns] = (long long)(pix / (size_t)OW % (size_t)OH);
        sod[ns] = (long long)(pix / ((size_t)OW * (size_t)OH));
        sl0[ns] = l, slen[ns] = (size_t)(OW - sow[ns]) < nl - l ? (size_t)(OW - sow[ns]) : nl - l;
        l += slen[ns];
    }
    const uint8_t *xg = j->x + (b * j->C + gr * j->Cg) * (size_t)(ID * IH * IW);
    const __m256i z = _mm256_set1_epi16(j->zx);
    uint8_t tb[2][16];
    size_t k = 0;
    for (size_t c = 0; c < j->Cg; c++)
        for (long long kd = 0; kd < g->k[0]; kd++)
            for (long long kh = 0; kh < g->k[1]; kh++)
                for (long long kw = 0; kw < g->k[2]; kw++, k++) {
                    uint8_t *t = tb[k & 1];
                    memset(t, j->zxb, 16);
                    for (size_t sg = 0; sg < ns; sg++) {
                        const long long id = sod[sg] * g->s[0] + kd * g->d[0] - g->pb[0];
                        const long long ih = soh[sg] * g->s[1] + kh * g->d[1] - g->pb[1];
                        if (id < 0 || id >= ID || ih < 0 || ih >= IH) continue;
                        const uint8_t *row = xg + ((c * (size_t)ID + (size_t)id) * (size_t)IH + (size_t)ih) * (size_t)IW;
                        const long long iw0 = sow[sg] * g->s[2] + kw * g->d[2] - g->pb[2], n = (long long)slen[sg];
                        if (g->s[2] == 1) {   /* lanes with iw0 + i in [0, IW) */
                            const long long lo = iw0 < 0 ? -iw0 : 0, hi = IW - iw0 < n ? IW - iw0 : n;
                            if (hi > lo) memcpy(t + sl0[sg] + lo, row + iw0 + lo, (size_t)(hi - lo));
                        } else {
                            for (long long i = 0; i < n; i++) {
                                const long long iw = iw0 + i * g->s[2];
                                if (iw >= 0 && iw < IW) t[sl0[sg] + (size_t)i] = row[iw];
                            }
                        }
                    }
                    if (k & 1) {
                        imm_store_pairs(pp, imm_widen(tb[0], j->x_u8, z), imm_widen(tb[1], j->x_u8, z));
                        pp += 16;
                    }
                }
    if (j->K & 1) imm_store_pairs(pp, imm_widen(tb[0], j->x_u8, z), _mm256_setzero_si256());
}

static DSE_TARGET_AVX2 void icv_parts(void *arg, size_t i0, size_t i1, unsigned worker) {
    const icv_job *j = arg;
    int32_t *pp = (int32_t *)(void *)(dse__worker_scratch(j->cx, worker) + j->poff);
    const size_t G = j->C / j->Cg;
    for (size_t it = i0; it < i1; it++) {   /* item = (image, group, panel) */
        const size_t pb = it % j->np, gr = it / j->np % G, b = it / j->np / G;
        const size_t p0 = 16 * pb, nl = j->P - p0 < 16 ? j->P - p0 : 16;
        icv_pack(j, b, gr, p0, nl, pp);
        const size_t o0 = gr * j->Og;
        const imm_src src = {pp, NULL, 0, j->K, 0, NULL, NULL};
        imm_rows(j->wp + o0 * j->Kp2, j->Og, j->Kp2, &src, 0, j->y + (b * j->O + o0) * j->P + p0, j->P, nl);
    }
}

void dse_i32_convinteger__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    const dse_tensor *zx = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL, *zw = n->n_in > 3 ? dse__t(m, n->in[3]) : NULL;
    dse_i8_geom g;
    dse_why why;
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    if (!yt->numel) return;
    icv_job j;
    memset(&j, 0, sizeof j);
    j.cx = cx, j.g = &g, j.x = dse__data(m, arena, n->in[0]), j.x_u8 = xt->dtype == DSE_DTYPE_UINT8;
    if (zx) {
        const uint8_t zb = *(const uint8_t *)dse__data(m, arena, n->in[2]);
        j.zxb = zb, j.zx = (int16_t)(j.x_u8 ? (int32_t)zb : (int32_t)(int8_t)zb);
    }
    j.C = xt->dims[1], j.O = wt->dims[0], j.Cg = wt->dims[1], j.Og = j.O / (j.C / j.Cg);
    j.K = wt->numel / j.O, j.Kp2 = (j.K + 1) / 2;
    j.P = (size_t)(g.out[0] * g.out[1] * g.out[2]), j.np = (j.P + 15) / 16;
    j.y = dse__data(m, arena, n->out[0]);
    int32_t *wp = (int32_t *)(void *)cx->scratch;
    const void *wz = zw ? dse__data(m, arena, n->in[3]) : NULL;
    imm_pack_rows(dse__data(m, arena, n->in[1]), wt->dtype == DSE_DTYPE_UINT8, j.K, 0, j.O, j.K, wz,
                  zw && zw->dtype == DSE_DTYPE_UINT8, zw && zw->numel != 1 ? 1 : 0, wp, NULL);
    j.wp = wp, j.poff = 4 * j.O * j.Kp2;
    const size_t items = xt->dims[0] * (j.C / j.Cg) * j.np;
    dse__parallel(cx, items, imm_grain(16 * j.Og * j.K), icv_parts, &j);
}

#endif
