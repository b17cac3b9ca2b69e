/* avx2/conv_i8.c: int8 Conv (group 1 and depthwise), Gemm and MatMul for x86-64 AVX2,
 * byte-identical with the REF kernels (kernels/ref/conv_i8.c, gemm_i8.c, matmul_i8.c).
 *
 * Arithmetic (docs/quant-arith.md §4, the REF kernels' form): acc = bias + sum (x - zp_in) * w
 * over the taps inside the input. Every product is formed exactly: x - zp_in (|.| <= 255) and
 * w (|.| <= 127) are int16 lanes of vpmaddwd, which adds two products (|.| <= 64770) into an
 * int32 lane; the check bounds K * 255 * 127 + max|bias| < 2^31, so no partial or final sum
 * overflows int32 (a node outside the bound is left to REF, which sums bias in int64). Never
 * vpmaddubsw on x and w: it adds pairs in saturating int16. Then the requantisation rule
 * (src/requant.h) in int64 lanes: p = acc * M (vpmuldq), (p + 2^(n-1)) >> n as a logical
 * shift of p xor its sign mask (an arithmetic 64-bit shift, which AVX2 lacks), clamped to
 * [qmin - zp_out, qmax - zp_out] in int64 before zp_out is added; float_out nodes go through
 * REF's dse_i8_store (the same int32 value, so the same float).
 *
 * GEMM core (Conv with group 1 on layout-1 weights, Gemm on layout 1/2, MatMul on layout 2):
 * Y[r][p] = W[r][k] X[k][p], with W the packed weights (docs/format.md §4.4: 32-byte blocks of
 * 8 output channels x 4 consecutive k) and X packed per tile of at most DSE_I8_PACK_TILE
 * columns (output pixels of one image, or rows of x) into the scratch as int16 x - zp_in
 * (padding taps and k >= K are 0): columns in groups of 4, group g at g*4*Kp int16, holding
 * for each k-block its nr (<= 4) columns x 4 k. The microkernel keeps 8 channels x 4 columns in
 * 8 ymm accumulators: per k-block two vpmovsxbw of the weight block (channels 0-3 and 4-7, 4 k
 * each) and per column a 64-bit broadcast of its 4 int16 x's, then vpmaddwd + vpaddd (the two
 * int32 lanes of a channel hold k0+k1 and k2+k3; vphaddd joins them). Conv: 1x1 stride-1
 * unpadded convs pack straight from the input rows (a 4 x 16 byte transpose per k-block),
 * others through the same path with each k's 16 source bytes gathered (im2col). Scratch: the
 * tile, 2 * Kp * min(P, 256) bytes (dse_i8_gemm_scratch_plan; the plan adds 4096).
 *
 * Depthwise Conv (group == C_in == C_out, layout 0, 1-D or 2-D): per channel plane, input rows
 * are converted once into int16 x - zp_in rows with their padding (0) and split by the
 * stride's phase (row_phi[j] = x_padded[j*sw + phi]), kept in a ring of (kh-1)*dh + 1 rows, so
 * that every tap reads 16 consecutive int16 for 16 consecutive outputs; taps are taken in
 * pairs (two rows interleaved with vpunpck[lh]wd, one vpmaddwd against the broadcast weight
 * pair). The pack of 16 int32 back to bytes undoes the unpack's lane order.
 *
 * Work is split with dse__parallel: GEMM nodes over (image, tile) pairs, each split further into
 * chunks of output-channel bands when there are few tiles for the session's threads; Winograd
 * over (image, tile row); depthwise over channel planes. Each part uses its worker's scratch
 * and writes its own output bytes.
 */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

#include "requant.h"

/* -- checks (plain C: they run at load, before any AVX2 code) --------------------------------- */

/* max|bias| + K * 255 * 127 < 2^31: every int32 sum here is exact (else REF, which adds the
 * bias in int64, takes the node). */
static int avx2_i8_bias_fits(const dse_model *m, const dse_node *n, size_t C, size_t K) {
    const dse_tensor *b = &m->tensors[n->in[2]];
    const int32_t *bd = (const int32_t *)(m->blob + b->offset);
    int64_t big = 0;
    for (size_t c = 0; c < C; c++) {
        int64_t v = bd[c] < 0 ? -(int64_t)bd[c] : bd[c];
        if (v > big) big = v;
    }
    return big + (int64_t)K * 255 * 127 < ((int64_t)1 << 31);
}

/* Scratch of a GEMM node: one int16 tile of T = min(P, 256) columns of Kp, and for Conv the
 * im2col stage, 4 rows of T + 32 bytes rounded to 16 (<= 1152 bytes: inside the plan's 4096). */
static size_t avx2_i8_gemm_scratch(size_t K, size_t P, int stage) {
    size_t T = P < DSE_I8_PACK_TILE ? P : DSE_I8_PACK_TILE;
    return 2 * ((K + 3) / 4 * 4) * T + (stage ? 4 * ((T + 31) / 16 * 16) : 0);
}

/* Depthwise: int16 phase rows of the input (a ring, or the whole plane when it fits), a zero
 * row and the padded int8 row the conversion goes through. Whole plane: every row is converted
 * before any is read (freshly stored rows read at other offsets stall store forwarding); ring:
 * the rows of two consecutive output rows, converted one output row ahead. */
typedef struct avx2_dw_plan {
    long long ring, L, sw, whole;   /* ring rows (IH when whole), int16 per phase row, phases */
    size_t rows_bytes;
} avx2_dw_plan;

static void avx2_dw_plan_of(const dse_i8_geom *g, size_t budget, avx2_dw_plan *p) {
    const long long OWr = (g->out[2] + 15) / 16 * 16;
    p->sw = g->s[2];
    p->L = (OWr + (g->k[2] - 1) * g->d[2] / g->s[2] + 1 + 15) / 16 * 16;
    const size_t row = (size_t)(p->sw * p->L) * 2, tmp = (size_t)(p->sw * p->L) + 64;
    p->whole = (size_t)(g->in[1] + 1) * row + tmp <= budget;
    p->ring = p->whole ? g->in[1] : (g->k[1] - 1) * g->d[1] + 1 + g->s[1];
    p->rows_bytes = (size_t)(p->ring + 1) * row + tmp;
}

/* -- Winograd F(2x2, 3x3), exact in int32 ------------------------------------------------------- */

/* 3x3 convolutions with stride 1 and dilation 1 (group 1, 2-D) as F(2x2, 3x3) on integers:
 * 4 Y = A^T [ (G' g G'^T) (.) (B^T d B) ] A per 2x2 output tile, d the 4x4 input patch of
 * x - zp_in (0 outside the input), g the 3x3 weights, G' = 2 G = [2 0 0; 1 1 1; 1 -1 1; 0 0 2]
 * (integer), B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1].
 * |B^T d B| <= 4 * 255 and |G' g G'^T| <= 9 * 127 fit int16, so the 16 channel sums per tile
 * (M_ij = sum_c U_ij,c V_ij,c) are GEMMs on the same vpmaddwd microkernel with int16 weights.
 * The sums are computed in wrapping int32 arithmetic, i.e. exactly modulo 2^32; the result
 * 4 Y = 4 * sum (x - zp) w has |4 Y| <= 4 * K * 255 * 127 < 2^31 when K <= 16577 (the check),
 * so the wrapped int32 value is the true one and >> 2 is the exact division. Then bias and the
 * requantisation as everywhere. 2.25x fewer multiplies than the direct form.
 * Blocks: R tile rows of TWp tiles (the tile row rounded up to 4, at most 64), so that groups of
 * 4 tiles never straddle tile rows; V = B^T d B of a block for all channels (int16, the GEMM
 * column layout per ij), U = G' g G'^T for UB bands of 8 output channels (int16, [ij][c/4][8][4]);
 * V is recomputed once per band chunk. Scratch: V, U, the input's int16 phase rows. */
typedef struct avx2_wino_plan {
    long long TH, TW, TWp, R, T, UB, L, Cp, Kb, nbands;
    size_t need, v_off, u_off, rows_off;
} avx2_wino_plan;

/* 1 when the node takes the Winograd path within `budget` bytes of scratch (fills wp). */
static int avx2_wino_plan_of(const dse_i8_geom *g, size_t C, size_t O, size_t budget, avx2_wino_plan *wp) {
    if (g->sp != 2 || g->k[1] != 3 || g->k[2] != 3 || g->s[1] != 1 || g->s[2] != 1 || g->d[1] != 1 || g->d[2] != 1)
        return 0;
    if (C < 8 || 9 * C > 16577 || g->out[1] < 4 || g->out[2] < 4 || g->out[1] * g->out[2] < 36) return 0;
    wp->TH = (g->out[1] + 1) / 2, wp->TW = (g->out[2] + 1) / 2, wp->TWp = (wp->TW + 3) / 4 * 4;
    if (wp->TWp > 64) return 0;
    wp->Cp = (long long)(C + 3) / 4 * 4, wp->Kb = wp->Cp / 4, wp->nbands = (long long)(O + 7) / 8;
    wp->L = (wp->TWp + 15) / 16 * 16 + 16;                  /* int16 per phase row: tiles + 1, 16-wide reads */
    const size_t rows = 2 * (4 * 2 * (size_t)wp->L * 2) + (size_t)wp->L * 2 * 2 + 128;   /* 4 rows x 2 phases, zero row, tmp */
    const size_t u1 = 16 * (size_t)wp->Kb * 64, vrow = 16 * (size_t)wp->TWp * (size_t)wp->Cp * 2;
    /* whole image: V once (all tile rows), U per chunk of bands; else one tile row per block,
     * V recomputed once per chunk of UB bands (so as many bands per chunk as fit) */
    for (int whole = 1; whole >= 0; whole--) {
        const long long R = whole ? wp->TH : 1;
        const size_t v = vrow * (size_t)R;
        if (v + u1 + rows > budget) continue;
        long long UB = (long long)((budget - v - rows) / u1);
        if (UB > wp->nbands) UB = wp->nbands;
        wp->R = R, wp->T = R * wp->TWp, wp->UB = UB;
        wp->v_off = 0, wp->u_off = v, wp->rows_off = v + (size_t)UB * u1;
        wp->need = wp->rows_off + rows;
        return 1;
    }
    return 0;
}

int dse__check_i8_conv_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_conv_check(m, n, why)) return 1;   /* REF's checks: operands, geometry, params */
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t O = w->dims[0], Cg = w->dims[1], K = Cg;
    for (unsigned d = 2; d < w->rank; d++) K *= w->dims[d];
    int64_t group = dse__attr_int(n, DSE_A_group, 1);
    size_t P = y->dims[0] && O ? y->numel / (y->dims[0] * O) : 0;
    size_t plan = why->scratch_plan, need;
    if (!P || !avx2_i8_bias_fits(m, n, O, K)) return 1;
    if (group == 1) {
        if (w->layout != DSE_LAYOUT_N8K4) return 1;   /* layout-0 artifacts: REF */
        need = avx2_i8_gemm_scratch(K, P, 1);
        dse_i8_geom g;
        dse_why tmp;
        avx2_wino_plan wp;
        dse_i8_geom_read(n, x, y, w->dims + 2, &g, &tmp);
        if (avx2_wino_plan_of(&g, Cg, O, plan < m->scratch_size ? plan : m->scratch_size, &wp)) need = wp.need;
    } else {
        dse_i8_geom g;
        dse_why tmp;
        if (!(group == (int64_t)x->dims[1] && O == x->dims[1] && Cg == 1) || x->rank > 4 || K > 128) return 1;
        dse_i8_geom_read(n, x, y, w->dims + 2, &g, &tmp);
        avx2_dw_plan dp;
        avx2_dw_plan_of(&g, plan < m->scratch_size ? plan : m->scratch_size, &dp);
        if (!dp.whole && dp.ring > 64) return 1;
        need = dp.rows_bytes;
    }
    if (need > m->scratch_size || need > plan) return 1;   /* planned without it: REF */
    why->scratch = need;
    return 0;
}

int dse__check_i8_gemm_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_gemm_check(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = x->dims[1], N = y->dims[1], need = avx2_i8_gemm_scratch(K, x->dims[0], 0);
    if (w->layout == DSE_LAYOUT_PLAIN || !x->dims[0] || !N || !avx2_i8_bias_fits(m, n, N, K)) return 1;
    if (need > m->scratch_size || need > why->scratch_plan) return 1;
    why->scratch = need;
    return 0;
}

int dse__check_i8_matmul_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_matmul_check(m, n, why)) return 1;
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = w->dims[0], N = w->dims[1], rows = N ? y->numel / N : 0, need = avx2_i8_gemm_scratch(K, rows, 0);
    if (w->layout != DSE_LAYOUT_N8K4_T || !rows || !avx2_i8_bias_fits(m, n, N, K)) return 1;
    if (need > m->scratch_size || need > why->scratch_plan) return 1;
    why->scratch = need;
    return 0;
}

/* -- requantisation of 8 int32 lanes ------------------------------------------------------------ */

/* Two exact forms of the rule, per 8 channels (lane i: channel c[i]):
 * fast, when every n >= 31 (a multiplier < 1, the usual case): acc is first clamped to
 *   [-L, L] with L = min(2^31 - 1, 2^(n + 8 - e)), 2^e <= M < 2^(e+1) (beyond L the output
 *   saturates anyway: the rule is monotone in acc and |f(L)| >= 256 > qmax - qmin), so
 *   |r| <= 512 for r = (p + 2^(n-1)) >> n, p = acc * M; t = p + 2^(n-1) + B * 2^n with
 *   B = 2^min(9, 62 - n) is then in [0, 2^64) and t >>> n (logical) = r + B exactly, a small
 *   int32: zp_out - B is added and qmin/qmax applied in int32;
 * general: (p + 2^(n-1)) >> n as a logical shift of p xor its sign mask (AVX2 has no 64-bit
 *   arithmetic shift), clamped to [qmin - zp_out, qmax - zp_out] in int64, then + zp_out. */
typedef struct avx2_i8_rq {
    int fast;
    __m256i M, Mo, sh_e, sh_o;       /* M (int32 lanes); M of odd lanes in the low halves; shifts */
    __m256i L, nL, C_e, C_o, zpB;    /* fast form */
    __m256i rnd_e, rnd_o, lo, hi;    /* general form */
    __m256i zp, qmin, qmax;
} avx2_i8_rq;

DSE_TARGET_AVX2 static void avx2_i8_rq_init1(avx2_i8_rq *q, const dse_i8_out *o, size_t c);

DSE_TARGET_AVX2 static void avx2_i8_rq_init(avx2_i8_rq *q, const dse_i8_out *o, const size_t *c, int count) {
    if (count == 8 && c[0] == c[7] && c[0] == c[1] && c[0] == c[2] && c[0] == c[3] && c[0] == c[4] && c[0] == c[5] &&
        c[0] == c[6]) {   /* one channel in every lane (depthwise): each quantity once */
        avx2_i8_rq_init1(q, o, c[0]);
        return;
    }
    int32_t Mv[8] = {0}, Lv[8], nLv[8], zb[8];
    int64_t re[4] = {0}, ro[4] = {0}, se[4] = {1, 1, 1, 1}, so[4] = {1, 1, 1, 1}, ce[4] = {0}, co[4] = {0};
    q->fast = !o->float_out;
    for (int i = 0; i < 8; i++) {
        const size_t ch = c[i < count ? i : 0];
        const int sh = o->float_out ? 31 : o->shift[ch];
        const uint32_t M = o->float_out || i >= count ? 0 : (uint32_t)o->M[ch];
        /* L = 2^(n + 8 - e), M in [2^e, 2^(e+1)): L * M in [2^(n+8), 2^(n+9)) */
        int64_t L = 0x7fffffff, B = (int64_t)1 << (62 - sh < 9 ? 62 - sh : 9);
        if (M) {
            const int e = 31 - __builtin_clz(M);
            if (sh >= 31 && sh + 8 - e < 31) L = (int64_t)1 << (sh + 8 - e);   /* (only the fast form uses L) */
        }
        q->fast &= sh >= 31;
        Mv[i] = (int32_t)M, Lv[i] = (int32_t)L, nLv[i] = (int32_t)-L, zb[i] = o->zp_out - (int32_t)(sh >= 31 ? B : 0);
        const int64_t rnd = (int64_t)1 << (sh - 1), C = sh >= 31 ? rnd + B * ((int64_t)1 << sh) : 0;
        if (i & 1) ro[i / 2] = rnd, so[i / 2] = sh, co[i / 2] = C;
        else re[i / 2] = rnd, se[i / 2] = sh, ce[i / 2] = C;
    }
    int64_t mo[4];
    for (int i = 0; i < 4; i++) mo[i] = (uint32_t)Mv[2 * i + 1];
    memcpy(&q->M, Mv, 32), memcpy(&q->Mo, mo, 32), memcpy(&q->sh_e, se, 32), memcpy(&q->sh_o, so, 32);
    memcpy(&q->L, Lv, 32), memcpy(&q->nL, nLv, 32), memcpy(&q->C_e, ce, 32), memcpy(&q->C_o, co, 32), memcpy(&q->zpB, zb, 32);
    memcpy(&q->rnd_e, re, 32), memcpy(&q->rnd_o, ro, 32);
    int64_t lo = o->qmin - o->zp_out, hi = o->qmax - o->zp_out;
    int64_t lv[4] = {lo, lo, lo, lo}, hv[4] = {hi, hi, hi, hi};
    int32_t zv[8], qn[8], qx[8];
    for (int i = 0; i < 8; i++) zv[i] = o->zp_out, qn[i] = o->qmin, qx[i] = o->qmax;
    memcpy(&q->lo, lv, 32), memcpy(&q->hi, hv, 32), memcpy(&q->zp, zv, 32), memcpy(&q->qmin, qn, 32), memcpy(&q->qmax, qx, 32);
}

/* avx2_i8_rq_init with channel c in all 8 lanes. */
DSE_TARGET_AVX2 static void avx2_i8_rq_init1(avx2_i8_rq *q, const dse_i8_out *o, size_t c) {
    const int sh = o->float_out ? 31 : o->shift[c];
    const uint32_t M = o->float_out ? 0 : (uint32_t)o->M[c];
    int64_t L = 0x7fffffff, B = (int64_t)1 << (62 - sh < 9 ? 62 - sh : 9);
    if (M) {
        const int e = 31 - __builtin_clz(M);
        if (sh >= 31 && sh + 8 - e < 31) L = (int64_t)1 << (sh + 8 - e);
    }
    const int64_t rnd = (int64_t)1 << (sh - 1), C = sh >= 31 ? rnd + B * ((int64_t)1 << sh) : 0;
    q->fast = !o->float_out && sh >= 31;
    q->M = _mm256_set1_epi32((int32_t)M), q->Mo = _mm256_set1_epi64x((int64_t)M);
    q->sh_e = q->sh_o = _mm256_set1_epi64x(sh);
    q->L = _mm256_set1_epi32((int32_t)L), q->nL = _mm256_set1_epi32((int32_t)-L);
    q->C_e = q->C_o = _mm256_set1_epi64x(C);
    q->zpB = _mm256_set1_epi32(o->zp_out - (int32_t)(sh >= 31 ? B : 0));
    q->rnd_e = q->rnd_o = _mm256_set1_epi64x(rnd);
    q->lo = _mm256_set1_epi64x(o->qmin - o->zp_out), q->hi = _mm256_set1_epi64x(o->qmax - o->zp_out);
    q->zp = _mm256_set1_epi32(o->zp_out), q->qmin = _mm256_set1_epi32(o->qmin), q->qmax = _mm256_set1_epi32(o->qmax);
}

DSE_TARGET_AVX2 static inline __m256i avx2_i8_rq_half(__m256i p, __m256i rnd, __m256i sh, __m256i lo, __m256i hi) {
    p = _mm256_add_epi64(p, rnd);
    __m256i s = _mm256_cmpgt_epi64(_mm256_setzero_si256(), p);
    p = _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(p, s), sh), s);   /* arithmetic >> sh */
    p = _mm256_blendv_epi8(p, lo, _mm256_cmpgt_epi64(lo, p));
    return _mm256_blendv_epi8(p, hi, _mm256_cmpgt_epi64(p, hi));
}

/* acc (int32, bias included) -> clamp(zp_out + round_shift(acc * M, n), qmin, qmax) as int32 lanes */
DSE_TARGET_AVX2 static inline __m256i avx2_i8_requant(__m256i acc, const avx2_i8_rq *q) {
    if (q->fast) {
        acc = _mm256_min_epi32(_mm256_max_epi32(acc, q->nL), q->L);
        __m256i pe = _mm256_mul_epi32(acc, q->M), po = _mm256_mul_epi32(_mm256_srli_epi64(acc, 32), q->Mo);
        pe = _mm256_srlv_epi64(_mm256_add_epi64(pe, q->C_e), q->sh_e);
        po = _mm256_srlv_epi64(_mm256_add_epi64(po, q->C_o), q->sh_o);
        __m256i r = _mm256_add_epi32(_mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA), q->zpB);
        return _mm256_min_epi32(_mm256_max_epi32(r, q->qmin), q->qmax);
    }
    __m256i pe = _mm256_mul_epi32(acc, q->M);
    __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(acc, 32), q->Mo);
    pe = avx2_i8_rq_half(pe, q->rnd_e, q->sh_e, q->lo, q->hi);
    po = avx2_i8_rq_half(po, q->rnd_o, q->sh_o, q->lo, q->hi);
    return _mm256_add_epi32(_mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA), q->zp);
}

/* -- the GEMM core ------------------------------------------------------------------------------ */

/* 8 channels x NR columns over Kb k-blocks: out[j] = the 8 channel sums of column j. Written
 * out per column count (the accumulators must stay in registers: 2 * NR + 3 ymm). */
#define AVX2_I8_MK_COL(j)                                                                                      \
    {                                                                                                          \
        int64_t av;                                                                                            \
        memcpy(&av, a + 4 * (j), 8);                                                                           \
        const __m256i x = _mm256_set1_epi64x(av);                                                              \
        c##j##a = _mm256_add_epi32(c##j##a, _mm256_madd_epi16(w0, x));                                         \
        c##j##b = _mm256_add_epi32(c##j##b, _mm256_madd_epi16(w1, x));                                         \
    }
#define AVX2_I8_MK(NR, COLS, OUT)                                                                              \
    DSE_TARGET_AVX2 static void avx2_i8_mk##NR(const int16_t *a, const int8_t *wb, size_t Kb, __m256i *out) {  \
        __m256i c0a = _mm256_setzero_si256(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a, c3a = c0a, \
                c3b = c0a;                                                                                     \
        for (size_t kb = 0; kb < Kb; kb++, wb += 32, a += 4 * NR) {                                            \
            const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb));                     \
            const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wb + 16)));              \
            COLS                                                                                               \
        }                                                                                                      \
        OUT                                                                                                    \
        (void)c0a, (void)c0b, (void)c1a, (void)c1b, (void)c2a, (void)c2b, (void)c3a, (void)c3b;                \
    }
#define AVX2_I8_MK_OUT(j) out[j] = _mm256_permute4x64_epi64(_mm256_hadd_epi32(c##j##a, c##j##b), 0xD8);
AVX2_I8_MK(1, AVX2_I8_MK_COL(0), AVX2_I8_MK_OUT(0))
AVX2_I8_MK(2, AVX2_I8_MK_COL(0) AVX2_I8_MK_COL(1), AVX2_I8_MK_OUT(0) AVX2_I8_MK_OUT(1))
AVX2_I8_MK(3, AVX2_I8_MK_COL(0) AVX2_I8_MK_COL(1) AVX2_I8_MK_COL(2), AVX2_I8_MK_OUT(0) AVX2_I8_MK_OUT(1) AVX2_I8_MK_OUT(2))

/* The main microkernel in assembly: compilers keep 8 accumulators + 2 weight + broadcast
 * registers poorly (gcc 12 copies every accumulator each iteration and spills one). Registers:
 * ymm0-7 accumulators (column j: ymm2j channels 0-3, ymm2j+1 channels 4-7), ymm8/9 the weight
 * block as int16, ymm10/11 broadcasts, ymm12-15 products. */
DSE_TARGET_AVX2 static void avx2_i8_mk4(const int16_t *a, const int8_t *wb, size_t Kb, __m256i *out) {
    __asm__ volatile(
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
        "test %[kb], %[kb]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n"
        "1:\n\t"
        "vpmovsxbw (%[w]), %%ymm8\n\t"
        "vpmovsxbw 16(%[w]), %%ymm9\n\t"
        "vpbroadcastq (%[a]), %%ymm10\n\t"
        "vpbroadcastq 8(%[a]), %%ymm11\n\t"
        "vpmaddwd %%ymm10, %%ymm8, %%ymm12\n\t"
        "vpmaddwd %%ymm10, %%ymm9, %%ymm13\n\t"
        "vpmaddwd %%ymm11, %%ymm8, %%ymm14\n\t"
        "vpmaddwd %%ymm11, %%ymm9, %%ymm15\n\t"
        "vpaddd %%ymm12, %%ymm0, %%ymm0\n\t"
        "vpaddd %%ymm13, %%ymm1, %%ymm1\n\t"
        "vpaddd %%ymm14, %%ymm2, %%ymm2\n\t"
        "vpaddd %%ymm15, %%ymm3, %%ymm3\n\t"
        "vpbroadcastq 16(%[a]), %%ymm10\n\t"
        "vpbroadcastq 24(%[a]), %%ymm11\n\t"
        "vpmaddwd %%ymm10, %%ymm8, %%ymm12\n\t"
        "vpmaddwd %%ymm10, %%ymm9, %%ymm13\n\t"
        "vpmaddwd %%ymm11, %%ymm8, %%ymm14\n\t"
        "vpmaddwd %%ymm11, %%ymm9, %%ymm15\n\t"
        "vpaddd %%ymm12, %%ymm4, %%ymm4\n\t"
        "vpaddd %%ymm13, %%ymm5, %%ymm5\n\t"
        "vpaddd %%ymm14, %%ymm6, %%ymm6\n\t"
        "vpaddd %%ymm15, %%ymm7, %%ymm7\n\t"
        "add $32, %[w]\n\t"
        "add $32, %[a]\n\t"
        "dec %[kb]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "vphaddd %%ymm1, %%ymm0, %%ymm0\n\t"
        "vphaddd %%ymm3, %%ymm2, %%ymm2\n\t"
        "vphaddd %%ymm5, %%ymm4, %%ymm4\n\t"
        "vphaddd %%ymm7, %%ymm6, %%ymm6\n\t"
        "vpermq $0xd8, %%ymm0, %%ymm0\n\t"
        "vpermq $0xd8, %%ymm2, %%ymm2\n\t"
        "vpermq $0xd8, %%ymm4, %%ymm4\n\t"
        "vpermq $0xd8, %%ymm6, %%ymm6\n\t"
        "vmovdqu %%ymm0, (%[out])\n\t"
        "vmovdqu %%ymm2, 32(%[out])\n\t"
        "vmovdqu %%ymm4, 64(%[out])\n\t"
        "vmovdqu %%ymm6, 96(%[out])\n\t"
        : [w] "+r"(wb), [a] "+r"(a), [kb] "+r"(Kb)
        : [out] "r"(out)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

/* What a GEMM-like node writes: Y[r][p] at y + r*ys_r + p*ys_p (elements), for r < R rows
 * (output channels) and p < the tile's columns. */
typedef struct avx2_i8_gemm {
    const int8_t *w;             /* packed W[R][K] */
    size_t R, K, Kb;
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    size_t ys_r, ys_p;
    size_t r_begin, r_end;       /* the rows (multiples of 8, or R) this part computes */
} avx2_i8_gemm;

/* Parts of a GEMM-like node for dse__parallel: `units` column tiles, each split into `split`
 * chunks of 8-row bands when there are few tiles for the session's threads (a part then packs
 * its tile itself; consecutive parts of one tile on one worker pack it once). */
static size_t avx2_i8_split(const dse_ctx *cx, size_t units, size_t R) {
    const size_t T = dse__threads(cx), bands = (R + 7) / 8;
    if (T <= 1 || units >= 4 * T) return 1;
    return T < bands ? T : bands;
}

static void avx2_i8_part_rows(avx2_i8_gemm *G, size_t chunk, size_t split) {
    const size_t bands = (G->R + 7) / 8, per = (bands + split - 1) / split;
    G->r_begin = chunk * per * 8 < G->R ? chunk * per * 8 : G->R;
    G->r_end = (chunk + 1) * per * 8 < G->R ? (chunk + 1) * per * 8 : G->R;
}

/* Y[:, p0 + 0..T-1] from the packed tile a (T columns). */
DSE_TARGET_AVX2 static void avx2_i8_gemm_tile(const avx2_i8_gemm *G, const int16_t *a, size_t T, size_t p0) {
    const size_t Kp = G->Kb * 4;
    const dse_i8_out *o = G->o;
    for (size_t r0 = G->r_begin; r0 < G->r_end; r0 += 8) {
        const int8_t *wb = G->w + (r0 / 8) * G->Kb * 32;
        const int nc = G->R - r0 < 8 ? (int)(G->R - r0) : 8;
        size_t ch[8];
        int32_t bv[8] = {0};
        for (int i = 0; i < 8; i++) ch[i] = r0 + (size_t)(i < nc ? i : 0), bv[i] = i < nc ? G->bias[r0 + (size_t)i] : 0;
        __m256i bias;
        memcpy(&bias, bv, 32);
        avx2_i8_rq q;
        avx2_i8_rq_init(&q, o, ch, nc);
        __m256 fscale = _mm256_setzero_ps(), fmin = _mm256_set1_ps(o->act_min), fmax = _mm256_set1_ps(o->act_max);
        if (o->float_out) {
            float sv[8] = {0};
            for (int i = 0; i < nc; i++) sv[i] = o->scale[r0 + (size_t)i];
            fscale = _mm256_loadu_ps(sv);
        }
        for (size_t c0 = 0; c0 < T; c0 += 4) {
            const int nr = T - c0 < 4 ? (int)(T - c0) : 4;
            const int16_t *ag = a + c0 * Kp;
            __m256i acc[4];
            switch (nr) {
            case 4: avx2_i8_mk4(ag, wb, G->Kb, acc); break;
            case 3: avx2_i8_mk3(ag, wb, G->Kb, acc); break;
            case 2: avx2_i8_mk2(ag, wb, G->Kb, acc); break;
            default: avx2_i8_mk1(ag, wb, G->Kb, acc); break;
            }
            const size_t p = p0 + c0;
            if (o->float_out) {   /* REF's output stage, 8 channels at a time: (float)acc * scale, then
                                   * max(act_min, v) and min(act_max, v) in that operand order, which
                                   * keep v when equal (REF keeps -0.0 against a 0.0 bound) and NaN */
                float t[4][8];
                for (int j = 0; j < nr; j++) {
                    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc[j], bias)), fscale);
                    _mm256_storeu_ps(t[j], _mm256_min_ps(fmax, _mm256_max_ps(fmin, v)));
                }
                float *yf = (float *)G->y;
                if (G->ys_p == 1)
                    for (int i = 0; i < nc; i++)
                        for (int j = 0; j < nr; j++) yf[(r0 + (size_t)i) * G->ys_r + p + (size_t)j] = t[j][i];
                else
                    for (int j = 0; j < nr; j++) memcpy(yf + r0 + (p + (size_t)j) * G->ys_p, t[j], (size_t)nc * 4);
                continue;
            }
            __m256i v[4];
            for (int j = 0; j < 4; j++) v[j] = j < nr ? avx2_i8_requant(_mm256_add_epi32(acc[j], bias), &q) : q.zp;
            /* bytes: lane 0 [j][c0..3], lane 1 [j][c4..7] */
            __m256i b8 = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
            int8_t *y = (int8_t *)G->y;
            if (G->ys_p == 1) {   /* Conv (NCHW): per channel, nr consecutive pixels */
                const __m256i tr = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                                    0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
                int32_t cb[8];
                _mm256_storeu_si256((__m256i *)cb, _mm256_shuffle_epi8(b8, tr));   /* dword c = channel c's 4 bytes */
                if (nr == 4)
                    for (int i = 0; i < nc; i++) memcpy(y + (r0 + (size_t)i) * G->ys_r + p, &cb[i], 4);
                else
                    for (int i = 0; i < nc; i++) memcpy(y + (r0 + (size_t)i) * G->ys_r + p, &cb[i], (size_t)nr);
            } else {              /* Gemm/MatMul (rows x N): per row, nc consecutive channels */
                int64_t rb[4];
                _mm256_storeu_si256((__m256i *)rb, _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
                if (nc == 8)
                    for (int j = 0; j < nr; j++) memcpy(y + r0 * G->ys_r + (p + (size_t)j) * G->ys_p, &rb[j], 8);
                else
                    for (int j = 0; j < nr; j++) memcpy(y + r0 * G->ys_r + (p + (size_t)j) * G->ys_p, &rb[j], (size_t)nc);
            }
        }
    }
}

/* Store 16 columns x 4 k (src[c] = 16 int8 of k-row c, x - zp as int16 after conversion) into
 * the tile at columns q..q+15 (groups of 4; a short last group has nr columns), k-block kb. */
DSE_TARGET_AVX2 static inline void avx2_i8_put16(int16_t *a, size_t T, size_t Kp, size_t q, size_t kb, __m128i r0,
                                                 __m128i r1, __m128i r2, __m128i r3, __m256i zp) {
    __m128i t01l = _mm_unpacklo_epi8(r0, r1), t01h = _mm_unpackhi_epi8(r0, r1);
    __m128i t23l = _mm_unpacklo_epi8(r2, r3), t23h = _mm_unpackhi_epi8(r2, r3);
    __m128i g[4] = {_mm_unpacklo_epi16(t01l, t23l), _mm_unpackhi_epi16(t01l, t23l), _mm_unpacklo_epi16(t01h, t23h),
                    _mm_unpackhi_epi16(t01h, t23h)};   /* g[i]: columns 4i..4i+3, 4 k each */
    for (int i = 0; i < 4; i++) {
        size_t c0 = q + 4 * (size_t)i;
        if (c0 >= T) break;
        __m256i v = _mm256_sub_epi16(_mm256_cvtepi8_epi16(g[i]), zp);
        size_t nr = T - c0 < 4 ? T - c0 : 4;
        int16_t *dst = a + c0 * Kp + kb * 4 * nr;
        if (nr == 4) _mm256_storeu_si256((__m256i *)dst, v);
        else {
            int16_t tmp[16];
            _mm256_storeu_si256((__m256i *)tmp, v);
            memcpy(dst, tmp, nr * 8);
        }
    }
}

/* -- Gemm / MatMul -------------------------------------------------------------------------------- */

typedef struct avx2_i8_rows_job {
    avx2_i8_gemm G;
    const dse_ctx *cx;
    const int8_t *x;   /* rows x K */
    size_t rows, T, split;
} avx2_i8_rows_job;

/* Tile of rows r0..r0+T-1 of x (rows x K): a[group][kb][j][4] = x[r][4kb + c] - zp (0 past K). */
DSE_TARGET_AVX2 static void avx2_i8_pack_rows(int16_t *a, const int8_t *x, size_t K, size_t r0, size_t T, int zp) {
    const size_t Kb = (K + 3) / 4, Kp = Kb * 4, K16 = K / 16 * 16;
    const __m256i z = _mm256_set1_epi16((int16_t)zp);
    for (size_t c0 = 0; c0 < T; c0 += 4) {
        const size_t nr = T - c0 < 4 ? T - c0 : 4;
        const int8_t *xr[4];
        for (size_t j = 0; j < 4; j++) xr[j] = x + (r0 + c0 + (j < nr ? j : 0)) * K;
        int16_t *ag = a + c0 * Kp;
        for (size_t k = 0; k < K16; k += 16) {   /* 4 rows x 16 k: a 4x4 transpose of dwords */
            __m128i v0 = _mm_loadu_si128((const __m128i *)(xr[0] + k)), v1 = _mm_loadu_si128((const __m128i *)(xr[1] + k));
            __m128i v2 = _mm_loadu_si128((const __m128i *)(xr[2] + k)), v3 = _mm_loadu_si128((const __m128i *)(xr[3] + k));
            __m128i t0 = _mm_unpacklo_epi32(v0, v1), t1 = _mm_unpackhi_epi32(v0, v1);
            __m128i t2 = _mm_unpacklo_epi32(v2, v3), t3 = _mm_unpackhi_epi32(v2, v3);
            __m128i b[4] = {_mm_unpacklo_epi64(t0, t2), _mm_unpackhi_epi64(t0, t2), _mm_unpacklo_epi64(t1, t3),
                            _mm_unpackhi_epi64(t1, t3)};   /* b[i]: k-block k/4 + i, rows 0..3 */
            for (size_t i = 0; i < 4; i++) {
                __m256i v = _mm256_sub_epi16(_mm256_cvtepi8_epi16(b[i]), z);
                int16_t *dst = ag + (k / 4 + i) * 4 * nr;
                if (nr == 4) _mm256_storeu_si256((__m256i *)dst, v);
                else {
                    int16_t tmp[16];
                    _mm256_storeu_si256((__m256i *)tmp, v);
                    memcpy(dst, tmp, nr * 8);
                }
            }
        }
        for (size_t k = K16; k < Kp; k++)
            for (size_t j = 0; j < nr; j++)
                ag[(k / 4) * 4 * nr + j * 4 + (k & 3)] = (int16_t)(k < K ? xr[j][k] - zp : 0);
    }
}

DSE_TARGET_AVX2 static void avx2_i8_rows_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_rows_job *J = arg;
    int16_t *a = (int16_t *)(void *)dse__worker_scratch(J->cx, worker);
    size_t packed = (size_t)-1;
    for (size_t t = begin; t < end; t++) {
        const size_t tile = t / J->split, r0 = tile * J->T, T = J->rows - r0 < J->T ? J->rows - r0 : J->T;
        if (tile != packed) avx2_i8_pack_rows(a, J->x, J->G.K, r0, T, J->G.o->zp_in), packed = tile;
        avx2_i8_gemm G = J->G;
        avx2_i8_part_rows(&G, t % J->split, J->split);
        avx2_i8_gemm_tile(&G, a, T, r0);
    }
}

/* rows x K times the packed W[N][K] (layout 1 or 2) */
DSE_TARGET_AVX2 static void avx2_i8_rows(const dse_ctx *cx, const int8_t *x, size_t rows, size_t K, const int8_t *w,
                                         size_t N, const int32_t *bias, const dse_i8_out *o, void *y) {
    avx2_i8_rows_job J;
    J.G.w = w, J.G.R = N, J.G.K = K, J.G.Kb = (K + 3) / 4, J.G.bias = bias, J.G.o = o, J.G.y = y;
    J.G.ys_r = 1, J.G.ys_p = N;
    J.cx = cx, J.x = x, J.rows = rows, J.T = rows < DSE_I8_PACK_TILE ? rows : DSE_I8_PACK_TILE;
    const size_t tiles = (rows + J.T - 1) / J.T;
    J.split = avx2_i8_split(cx, tiles, N);
    dse__parallel(cx, tiles * J.split, 1, avx2_i8_rows_task, &J);
}

DSE_TARGET_AVX2 void dse_i8_gemm__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_why why;
    dse_i8_out_params(m, n, y->dims[1], &o, &why);
    avx2_i8_rows(cx, dse__data(m, arena, n->in[0]), x->dims[0], x->dims[1], dse__data(m, arena, n->in[1]), y->dims[1],
                 dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}

DSE_TARGET_AVX2 void dse_i8_matmul__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = w->dims[0], N = w->dims[1];
    dse_i8_out o;
    dse_why why;
    dse_i8_out_params(m, n, N, &o, &why);
    avx2_i8_rows(cx, dse__data(m, arena, n->in[0]), y->numel / N, K, dse__data(m, arena, n->in[1]), N,
                 dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}

/* -- Conv, group 1 ------------------------------------------------------------------------------ */

typedef struct avx2_i8_conv_job {
    avx2_i8_gemm G;
    const dse_ctx *cx;
    const int8_t *x;
    const dse_i8_geom *g;
    long long C;          /* input channels */
    size_t P, T, tiles;   /* output pixels per image, tile width, tiles per image */
    size_t split;         /* band chunks per tile (avx2_i8_split) */
    int direct;           /* 1x1, stride 1, no padding: k-row c is input channel c */
} avx2_i8_conv_job;

/* The im2col tile of image xb (C x ID x IH x IW): columns p0..p0+T-1 (output pixels, row-major
 * over (od, oh, ow)), k = ((ci * KD + kd) * KH + kh) * KW + kw. */
DSE_TARGET_AVX2 static void avx2_i8_pack_conv(int16_t *a, const avx2_i8_conv_job *J, const int8_t *xb, size_t p0, size_t T) {
    const dse_i8_geom *g = J->g;
    const size_t K = J->G.K, Kb = J->G.Kb, Kp = Kb * 4;
    const int zp = J->G.o->zp_in;
    const __m256i z = _mm256_set1_epi16((int16_t)zp);
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2];
    const long long KD = g->k[0], KH = g->k[1], KW = g->k[2];
    const size_t isz = (size_t)(ID * IH * IW);
    int8_t pad[16];
    memset(pad, zp, 16);
    if (J->direct) {   /* k-row c = channel c's pixels p0.. (contiguous); k >= K: zp */
        for (size_t kb = 0; kb < Kb; kb++) {
            const int8_t *src[4];
            for (size_t c = 0; c < 4; c++) src[c] = 4 * kb + c < K ? xb + (4 * kb + c) * isz + p0 : NULL;
            size_t q = 0;
            for (; q + 16 <= T; q += 16) {
                __m128i r[4];
                for (int c = 0; c < 4; c++)
                    r[c] = src[c] ? _mm_loadu_si128((const __m128i *)(src[c] + q)) : _mm_loadu_si128((const __m128i *)pad);
                avx2_i8_put16(a, T, Kp, q, kb, r[0], r[1], r[2], r[3], z);
            }
            if (q < T) {
                int8_t tmp[4][16];
                for (int c = 0; c < 4; c++) {
                    memset(tmp[c], zp, 16);
                    if (src[c]) memcpy(tmp[c], src[c] + q, T - q);
                }
                avx2_i8_put16(a, T, Kp, q, kb, _mm_loadu_si128((const __m128i *)tmp[0]), _mm_loadu_si128((const __m128i *)tmp[1]),
                              _mm_loadu_si128((const __m128i *)tmp[2]), _mm_loadu_si128((const __m128i *)tmp[3]), z);
            }
        }
        return;
    }
    /* general: per k-block, each of its 4 k's im2col row (the tile's T pixels) is staged as
     * int8 (out-of-input taps = zp) in `stage` (4 x (T + 32) bytes after the tile), then the 4
     * rows go through the same 4 x 16 transpose as the direct path */
    const long long sd = g->s[0], sh = g->s[1], sw = g->s[2], dd = g->d[0], dh = g->d[1], dw = g->d[2];
    const size_t SR = (T + 31) / 16 * 16;   /* a stage row, with room for a 16-byte overrun */
    int8_t *stage = (int8_t *)(a + T * Kp);
    const long long q0 = (long long)p0;
    const long long ow_s = q0 % OW, oh_s = q0 / OW % OH, od_s = q0 / (OW * OH);
    for (size_t kb = 0; kb < Kb; kb++) {
        for (size_t c = 0; c < 4; c++) {
            int8_t *st = stage + c * SR;
            const size_t k = 4 * kb + c;
            if (k >= K) { memset(st, zp, T); continue; }
            const long long kw = (long long)(k % (size_t)KW), kh = (long long)(k / (size_t)KW % (size_t)KH),
                            kd = (long long)(k / (size_t)(KW * KH) % (size_t)KD), ci = (long long)(k / (size_t)(KW * KH * KD));
            const int8_t *xc = xb + (size_t)ci * isz;
            const long long off = kw * dw - g->pb[2];   /* iw = ow * sw + off */
            /* output columns whose tap is inside the input row: [lo, hi) */
            const long long lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
            const long long hi = IW - 1 - off < 0 ? 0 : (IW - 1 - off) / sw + 1 < OW ? (IW - 1 - off) / sw + 1 : OW;
            long long ow = ow_s, oh = oh_s, od = od_s;
            size_t pos = 0;
            while (pos < T) {
                const size_t seg = (size_t)(OW - ow) < T - pos ? (size_t)(OW - ow) : T - pos;   /* rest of this output row */
                const long long id = od * sd + kd * dd - g->pb[0], ih = oh * sh + kh * dh - g->pb[1];
                int8_t *dst = st + pos;
                if (id < 0 || id >= ID || ih < 0 || ih >= IH || lo >= hi) {
                    memset(dst, zp, seg);
                } else {
                    const int8_t *row = xc + (id * IH + ih) * IW;
                    const long long e = ow + (long long)seg;
                    const long long a0 = ow > lo ? ow : lo, b0 = e < hi ? e : hi;   /* inside: [a0, b0) */
                    if (a0 > ow) memset(dst, zp, (size_t)((a0 < e ? a0 : e) - ow));
                    if (b0 > a0) {
                        int8_t *d = dst + (a0 - ow);
                        const int8_t *src = row + a0 * sw + off;
                        long long n = b0 - a0, j = 0;
                        if (sw == 1) {
                            memcpy(d, src, (size_t)n);
                        } else if (sw == 2) {
                            const __m128i ev = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
                            for (; j + 16 <= n && (a0 + j + 15) * 2 + off + 2 <= IW; j += 16) {   /* 32 bytes in the row */
                                __m128i l = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(src + 2 * j)), ev);
                                __m128i h = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(src + 2 * j + 16)), ev);
                                _mm_storeu_si128((__m128i *)(d + j), _mm_unpacklo_epi64(l, h));
                            }
                            for (; j < n; j++) d[j] = src[2 * j];
                        } else {
                            for (; j < n; j++) d[j] = src[j * sw];
                        }
                    }
                    if (e > b0) memset(dst + ((b0 > ow ? b0 : ow) - ow), zp, (size_t)(e - (b0 > ow ? b0 : ow)));
                }
                pos += seg;
                ow = 0;
                if (++oh == OH) oh = 0, od++;
            }
        }
        for (size_t q = 0; q < T; q += 16)
            avx2_i8_put16(a, T, Kp, q, kb, _mm_loadu_si128((const __m128i *)(stage + q)),
                          _mm_loadu_si128((const __m128i *)(stage + SR + q)), _mm_loadu_si128((const __m128i *)(stage + 2 * SR + q)),
                          _mm_loadu_si128((const __m128i *)(stage + 3 * SR + q)), z);
    }
}

DSE_TARGET_AVX2 static void avx2_i8_conv_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_conv_job *J = arg;
    int16_t *a = (int16_t *)(void *)dse__worker_scratch(J->cx, worker);
    const size_t isz = (size_t)(J->g->in[0] * J->g->in[1] * J->g->in[2]);
    size_t packed = (size_t)-1;
    for (size_t t = begin; t < end; t++) {
        const size_t u = t / J->split, b = u / J->tiles, p0 = u % J->tiles * J->T, T = J->P - p0 < J->T ? J->P - p0 : J->T;
        if (u != packed) avx2_i8_pack_conv(a, J, J->x + b * (size_t)J->C * isz, p0, T), packed = u;
        avx2_i8_gemm G = J->G;
        avx2_i8_part_rows(&G, t % J->split, J->split);
        G.y = (J->G.o->float_out ? (void *)((float *)G.y + b * G.R * J->P) : (void *)((int8_t *)G.y + b * G.R * J->P));
        avx2_i8_gemm_tile(&G, a, T, p0);
    }
}

/* -- depthwise ---------------------------------------------------------------------------------- */

typedef struct avx2_i8_dw_job {
    const dse_ctx *cx;
    const int8_t *x, *w;
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    const dse_i8_geom *g;
    long long C;
    avx2_dw_plan dp;
} avx2_i8_dw_job;

/* Input row `row` (IW bytes) into phase rows dst[phi * L + j] = x_padded[j*sw + phi] - zp (0 in
 * the padding, x_padded[u] = row[u - pw]), through tmp (sw * L + 64 bytes): the padded int8 row
 * (padding = zp) written with vector stores, then converted 16 outputs at a time (stride 1: a
 * 16-byte load; stride 2: a 32-byte load split into even and odd bytes). */
DSE_TARGET_AVX2 static void avx2_i8_dw_row(int16_t *dst, const int8_t *row, int8_t *tmp, long long IW, long long pw,
                                           long long sw, long long L, int zp) {
    const __m256i z = _mm256_set1_epi16((int16_t)zp), zb = _mm256_set1_epi8((char)zp);
    const long long n = sw * L + 32;
    for (long long i = 0; i < n; i += 32) _mm256_storeu_si256((__m256i *)(tmp + i), zb);
    const long long cnt = pw + IW <= n ? IW : (n > pw ? n - pw : 0);   /* bytes of the row that are used */
    int8_t *d = tmp + pw;
    if (cnt >= 32) {
        for (long long i = 0; i + 32 <= cnt; i += 32) _mm256_storeu_si256((__m256i *)(d + i), _mm256_loadu_si256((const __m256i *)(row + i)));
        _mm256_storeu_si256((__m256i *)(d + cnt - 32), _mm256_loadu_si256((const __m256i *)(row + cnt - 32)));
    } else if (cnt >= 16) {
        _mm_storeu_si128((__m128i *)d, _mm_loadu_si128((const __m128i *)row));
        _mm_storeu_si128((__m128i *)(d + cnt - 16), _mm_loadu_si128((const __m128i *)(row + cnt - 16)));
    } else if (cnt >= 8) {
        memcpy(d, row, 8), memcpy(d + cnt - 8, row + cnt - 8, 8);
    } else if (cnt >= 4) {
        memcpy(d, row, 4), memcpy(d + cnt - 4, row + cnt - 4, 4);
    } else {
        for (long long i = 0; i < cnt; i++) d[i] = row[i];
    }
    if (sw == 1) {
        for (long long j = 0; j < L; j += 16)
            _mm256_storeu_si256((__m256i *)(dst + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(tmp + j))), z));
    } else if (sw == 2) {
        const __m256i ev = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                            0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        for (long long j = 0; j < L; j += 16) {
            __m256i v = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(tmp + 2 * j)), ev);
            v = _mm256_permute4x64_epi64(v, 0xD8);   /* evens 0-15 | odds 0-15 */
            _mm256_storeu_si256((__m256i *)(dst + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)), z));
            _mm256_storeu_si256((__m256i *)(dst + L + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)), z));
        }
    } else {
        for (long long phi = 0; phi < sw; phi++)
            for (long long j = 0; j < L; j++) dst[phi * L + j] = (int16_t)(tmp[j * sw + phi] - zp);
    }
}

/* The int16 phase rows of input row ih of plane xc (converted on first use in ring mode). */
DSE_TARGET_AVX2 static inline const int16_t *avx2_i8_dw_get(const avx2_i8_dw_job *J, int16_t *rows, int8_t *tmp, long long *tag,
                                                            const int8_t *xc, long long ih) {
    const dse_i8_geom *g = J->g;
    const long long rowlen = J->dp.sw * J->dp.L, slot = J->dp.whole ? ih : ih % J->dp.ring;
    int16_t *rs = rows + slot * rowlen;
    if (!J->dp.whole && tag[slot] != ih) {
        avx2_i8_dw_row(rs, xc + ih * g->in[2], tmp, g->in[2], g->pb[2], J->dp.sw, J->dp.L, J->o->zp_in);
        tag[slot] = ih;
    }
    return rs;
}

DSE_TARGET_AVX2 static void avx2_i8_dw_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_dw_job *J = arg;
    const dse_i8_geom *g = J->g;
    const dse_i8_out *o = J->o;
    const long long IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2], KH = g->k[1], KW = g->k[2];
    const long long sh = g->s[1], sw = g->s[2], dh = g->d[1], dw = g->d[2], L = J->dp.L, ring = J->dp.ring;
    const long long taps = KH * KW, npairs = (taps + 1) / 2, rowlen = sw * L;
    int16_t *rows = (int16_t *)(void *)dse__worker_scratch(J->cx, worker);
    int16_t *zero = rows + ring * rowlen;   /* sw * L zeros: a row of padding */
    int8_t *tmp = (int8_t *)(zero + rowlen);
    memset(zero, 0, (size_t)rowlen * 2);
    long long tkh[128], toff[128], tag[64];
    for (long long t = 0; t < taps; t++) {   /* tap t = (kh, kw): its row and its offset in the phase rows */
        const long long kw = t % KW, u = kw * dw;
        tkh[t] = t / KW, toff[t] = (u % sw) * L + u / sw;
    }
    for (size_t pl = begin; pl < end; pl++) {
        const size_t c = pl % (size_t)J->C;
        const int8_t *xc = J->x + pl * (size_t)(IH * IW);
        const int8_t *wc = J->w + c * (size_t)taps;
        if (J->dp.whole)
            for (long long ih = 0; ih < IH; ih++) avx2_i8_dw_row(rows + ih * rowlen, xc + ih * IW, tmp, IW, g->pb[2], sw, L, o->zp_in);
        else
            for (long long i = 0; i < ring; i++) tag[i] = -1;
        avx2_i8_rq q;   /* one channel in every lane */
        const size_t cc[8] = {c, c, c, c, c, c, c, c};
        avx2_i8_rq_init(&q, o, cc, 8);
        const __m256i bias = _mm256_set1_epi32(J->bias[c]);
        int32_t wp[64];
        for (long long pi = 0; pi < npairs; pi++) {
            const long long t0 = 2 * pi, t1 = 2 * pi + 1;
            const int16_t w0 = wc[t0], w1 = t1 < taps ? wc[t1] : 0;
            wp[pi] = (int32_t)((uint32_t)(uint16_t)w0 | (uint32_t)(uint16_t)w1 << 16);
        }
        for (long long oh = 0; oh < OH; oh++) {
            const int16_t *rp[64], *pa[64], *pb[64];
            for (long long kh = 0; kh < KH; kh++) {
                const long long ih = oh * sh + kh * dh - g->pb[1];
                rp[kh] = ih >= 0 && ih < IH ? avx2_i8_dw_get(J, rows, tmp, tag, xc, ih) : zero;
            }
            if (!J->dp.whole && oh + 1 < OH)   /* the next output row's new rows, ahead of their use */
                for (long long kh = 0; kh < KH; kh++) {
                    const long long ih = (oh + 1) * sh + kh * dh - g->pb[1];
                    if (ih >= 0 && ih < IH) avx2_i8_dw_get(J, rows, tmp, tag, xc, ih);
                }
            for (long long pi = 0; pi < npairs; pi++) {
                const long long t0 = 2 * pi, t1 = 2 * pi + 1 < taps ? 2 * pi + 1 : 2 * pi;
                pa[pi] = rp[tkh[t0]] + toff[t0], pb[pi] = rp[tkh[t1]] + toff[t1];
            }
            const size_t yrow = (pl * (size_t)OH + (size_t)oh) * (size_t)OW;
            for (long long ow = 0; ow < OW; ow += 16) {
                __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
                for (long long pi = 0; pi < npairs; pi++) {
                    const __m256i va = _mm256_loadu_si256((const __m256i *)(pa[pi] + ow));
                    const __m256i vb = _mm256_loadu_si256((const __m256i *)(pb[pi] + ow));
                    const __m256i wv = _mm256_set1_epi32(wp[pi]);
                    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(va, vb), wv));
                    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(va, vb), wv));
                }
                /* lo: outputs 0-3, 8-11; hi: 4-7, 12-15 */
                const long long nw = OW - ow < 16 ? OW - ow : 16;
                const size_t yi = yrow + (size_t)ow;
                if (o->float_out) {
                    int32_t tl[8], th[8];
                    _mm256_storeu_si256((__m256i *)tl, lo), _mm256_storeu_si256((__m256i *)th, hi);
                    for (long long j = 0; j < nw; j++) {
                        int32_t v = (j & 4) ? th[(j & 3) + (j >= 8 ? 4 : 0)] : tl[(j & 3) + (j >= 8 ? 4 : 0)];
                        dse_i8_store(o, J->y, yi + (size_t)j, c, (int64_t)v + J->bias[c]);
                    }
                    continue;
                }
                __m256i rl = avx2_i8_requant(_mm256_add_epi32(lo, bias), &q), rh = avx2_i8_requant(_mm256_add_epi32(hi, bias), &q);
                __m256i p16 = _mm256_packs_epi32(rl, rh);   /* lane 0: outputs 0-7, lane 1: 8-15 */
                __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
                int8_t *yp = (int8_t *)J->y + yi;
                if (nw == 16) _mm_storeu_si128((__m128i *)yp, b8);
                else {
                    int8_t t[16];
                    _mm_storeu_si128((__m128i *)t, b8);
                    for (long long j = 0; j < nw; j++) yp[j] = t[j];
                }
            }
        }
    }
}

/* -- Winograd run -- */

/* 8 channels x 4 tiles over Kb k-blocks of int16 weights (64 bytes: channels 0-3 x 4 c, then
 * 4-7): the raw accumulators (out[2j], out[2j+1] = column j's channels 0-3 / 4-7 lane pairs). */
DSE_TARGET_AVX2 static void avx2_i8_mk4w(const int16_t *a, const int16_t *wb, size_t Kb, __m256i *out) {
    __asm__ volatile(
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
        "test %[kb], %[kb]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n"
        "1:\n\t"
        "vmovdqu (%[w]), %%ymm8\n\t"
        "vmovdqu 32(%[w]), %%ymm9\n\t"
        "vpbroadcastq (%[a]), %%ymm10\n\t"
        "vpbroadcastq 8(%[a]), %%ymm11\n\t"
        "vpmaddwd %%ymm10, %%ymm8, %%ymm12\n\t"
        "vpmaddwd %%ymm10, %%ymm9, %%ymm13\n\t"
        "vpmaddwd %%ymm11, %%ymm8, %%ymm14\n\t"
        "vpmaddwd %%ymm11, %%ymm9, %%ymm15\n\t"
        "vpaddd %%ymm12, %%ymm0, %%ymm0\n\t"
        "vpaddd %%ymm13, %%ymm1, %%ymm1\n\t"
        "vpaddd %%ymm14, %%ymm2, %%ymm2\n\t"
        "vpaddd %%ymm15, %%ymm3, %%ymm3\n\t"
        "vpbroadcastq 16(%[a]), %%ymm10\n\t"
        "vpbroadcastq 24(%[a]), %%ymm11\n\t"
        "vpmaddwd %%ymm10, %%ymm8, %%ymm12\n\t"
        "vpmaddwd %%ymm10, %%ymm9, %%ymm13\n\t"
        "vpmaddwd %%ymm11, %%ymm8, %%ymm14\n\t"
        "vpmaddwd %%ymm11, %%ymm9, %%ymm15\n\t"
        "vpaddd %%ymm12, %%ymm4, %%ymm4\n\t"
        "vpaddd %%ymm13, %%ymm5, %%ymm5\n\t"
        "vpaddd %%ymm14, %%ymm6, %%ymm6\n\t"
        "vpaddd %%ymm15, %%ymm7, %%ymm7\n\t"
        "add $64, %[w]\n\t"
        "add $32, %[a]\n\t"
        "dec %[kb]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "vmovdqu %%ymm0, (%[out])\n\t"
        "vmovdqu %%ymm1, 32(%[out])\n\t"
        "vmovdqu %%ymm2, 64(%[out])\n\t"
        "vmovdqu %%ymm3, 96(%[out])\n\t"
        "vmovdqu %%ymm4, 128(%[out])\n\t"
        "vmovdqu %%ymm5, 160(%[out])\n\t"
        "vmovdqu %%ymm6, 192(%[out])\n\t"
        "vmovdqu %%ymm7, 224(%[out])\n\t"
        : [w] "+r"(wb), [a] "+r"(a), [kb] "+r"(Kb)
        : [out] "r"(out)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

typedef struct avx2_i8_wino_job {
    const dse_ctx *cx;
    const int8_t *x, *w;   /* w: packed W[O][C*9] (layout 1) */
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    const dse_i8_geom *g;
    size_t C, O;
    avx2_wino_plan wp;
    size_t blocks;         /* per image */
    size_t split;          /* whole-image plans: band chunks per image (threads) */
} avx2_i8_wino_job;

/* U of bands b0..b0+nb-1: U[band][ij][c/4][o%8][c%4] = (G' g G'^T)_ij of W[o][c], 0 past O or C.
 * Four channels at a time: tap t of channels c0..c0+3 (k = 9c + t, nine 32-byte weight blocks
 * of the band from k = 9 c0) is gathered into [o][c] byte order with one vpshufb per channel
 * (the byte of row o stays in its 128-bit lane), so the transformed values come out in the
 * U block order directly; the last, partial quad per element. */
DSE_TARGET_AVX2 static void avx2_i8_wino_u(int16_t *U, const avx2_i8_wino_job *J, long long b0, long long nb) {
    const avx2_wino_plan *wp = &J->wp;
    const size_t Kb9 = (J->C * 9 + 3) / 4, band = 16 * (size_t)wp->Kb * 32, C4 = J->C / 4 * 4;
    __m256i mask[9][4];
    for (int t = 0; t < 9; t++)
        for (int c = 0; c < 4; c++) {
            int8_t mb[32];
            for (int i = 0; i < 32; i++) mb[i] = (i & 3) == c ? (int8_t)((i & ~3 & 15) + ((c + t) & 3)) : (int8_t)-128;
            memcpy(&mask[t][c], mb, 32);
        }
    for (long long b = 0; b < nb; b++) {
        int16_t *Ub = U + (size_t)b * band;
        const size_t ob = (size_t)(b0 + b);
        const int8_t *wband = J->w + ob * Kb9 * 32;
        if (ob * 8 >= J->O) { memset(Ub, 0, band * 2); continue; }
        for (size_t c0 = 0; c0 < C4; c0 += 4) {
            const int8_t *blk = wband + (9 * c0 / 4) * 32;
            __m256i tap[9][2];
            for (int t = 0; t < 9; t++) {
                __m256i v = _mm256_setzero_si256();
                for (int c = 0; c < 4; c++)
                    v = _mm256_or_si256(v, _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(blk + ((9 * c + t) >> 2) * 32)), mask[t][c]));
                tap[t][0] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v));        /* o 0-3 x c 0-3 */
                tap[t][1] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1));   /* o 4-7 x c 0-3 */
            }
            for (int h = 0; h < 2; h++) {
                __m256i tt[4][3];
                for (int j = 0; j < 3; j++) {   /* G' g, column j */
                    const __m256i g0 = tap[j][h], g1 = tap[3 + j][h], g2 = tap[6 + j][h];
                    tt[0][j] = _mm256_add_epi16(g0, g0);
                    tt[1][j] = _mm256_add_epi16(_mm256_add_epi16(g0, g1), g2);
                    tt[2][j] = _mm256_add_epi16(_mm256_sub_epi16(g0, g1), g2);
                    tt[3][j] = _mm256_add_epi16(g2, g2);
                }
                for (int i = 0; i < 4; i++) {   /* (G' g) G'^T */
                    const __m256i t0 = tt[i][0], t1 = tt[i][1], t2 = tt[i][2];
                    const __m256i u[4] = {_mm256_add_epi16(t0, t0), _mm256_add_epi16(_mm256_add_epi16(t0, t1), t2),
                                          _mm256_add_epi16(_mm256_sub_epi16(t0, t1), t2), _mm256_add_epi16(t2, t2)};
                    for (int j = 0; j < 4; j++)
                        _mm256_storeu_si256((__m256i *)(Ub + ((size_t)(4 * i + j) * (size_t)wp->Kb + c0 / 4) * 32 + (size_t)h * 16), u[j]);
                }
            }
        }
        for (size_t c = C4; c < (size_t)wp->Cp; c++)   /* the partial quad: 0 past C */
            for (size_t oi = 0; oi < 8; oi++) {
                const size_t o = ob * 8 + oi;
                int32_t gg[9] = {0}, t[4][3];
                if (o < J->O && c < J->C)
                    for (int k = 0; k < 9; k++) gg[k] = J->w[dse__n8k4_index(Kb9, o, c * 9 + (size_t)k)];
                for (int j = 0; j < 3; j++) {
                    const int32_t g0 = gg[j], g1 = gg[3 + j], g2 = gg[6 + j];
                    t[0][j] = 2 * g0, t[1][j] = g0 + g1 + g2, t[2][j] = g0 - g1 + g2, t[3][j] = 2 * g2;
                }
                for (int i = 0; i < 4; i++) {
                    const int32_t u[4] = {2 * t[i][0], t[i][0] + t[i][1] + t[i][2], t[i][0] - t[i][1] + t[i][2], 2 * t[i][2]};
                    for (int j = 0; j < 4; j++) Ub[((size_t)(4 * i + j) * (size_t)wp->Kb + c / 4) * 32 + oi * 4 + c % 4] = (int16_t)u[j];
                }
            }
    }
}

/* V of the block of tile rows th0..th0+R-1 of image xb: V[ij][group][c/4][tile%4][c%4]. */
DSE_TARGET_AVX2 static void avx2_i8_wino_v(int16_t *V, int16_t *rows, const avx2_i8_wino_job *J, const int8_t *xb, long long th0,
                                           long long R) {
    const avx2_wino_plan *wp = &J->wp;
    const dse_i8_geom *g = J->g;
    const long long IH = g->in[1], IW = g->in[2], L = wp->L, TWp = wp->TWp;
    const size_t T = (size_t)(R * TWp), Cp = (size_t)wp->Cp, isz = (size_t)(IH * IW);
    int16_t *ph = rows, *zero = rows + 8 * L;   /* 4 input rows x 2 phases (even, odd); a zero row, 2 phases */
    int8_t *tmp = (int8_t *)(zero + 2 * L);
    memset(zero, 0, (size_t)L * 4);
    int16_t vt[4][16][64];   /* 4 channels x 16 ij x the row's tiles */
    for (long long r = 0; r < R; r++) {
        const long long th = th0 + r;
        for (size_t c0 = 0; c0 < Cp; c0 += 4) {
            for (size_t cc = 0; cc < 4; cc++) {
                const size_t c = c0 + cc;
                if (c >= J->C) { memset(vt[cc], 0, sizeof vt[cc]); continue; }
                const int16_t *pr[4];
                for (int i = 0; i < 4; i++) {
                    const long long ih = 2 * th - g->pb[1] + i;
                    pr[i] = zero;
                    if (ih < 0 || ih >= IH) continue;
                    avx2_i8_dw_row(ph + (size_t)(i * 2 * L), xb + c * isz + (size_t)(ih * IW), tmp, IW, g->pb[2], 2, L, J->o->zp_in);
                    pr[i] = ph + i * 2 * L;
                }
                for (long long tw0 = 0; tw0 < TWp; tw0 += 16) {
                    __m256i h[4][4];
                    for (int i = 0; i < 4; i++) {   /* columns 2tw..2tw+3 = even[tw], odd[tw], even[tw+1], odd[tw+1] */
                        const __m256i d0 = _mm256_loadu_si256((const __m256i *)(pr[i] + tw0));
                        const __m256i d1 = _mm256_loadu_si256((const __m256i *)(pr[i] + L + tw0));
                        const __m256i d2 = _mm256_loadu_si256((const __m256i *)(pr[i] + tw0 + 1));
                        const __m256i d3 = _mm256_loadu_si256((const __m256i *)(pr[i] + L + tw0 + 1));
                        h[i][0] = _mm256_sub_epi16(d0, d2), h[i][1] = _mm256_add_epi16(d1, d2);
                        h[i][2] = _mm256_sub_epi16(d2, d1), h[i][3] = _mm256_sub_epi16(d1, d3);
                    }
                    for (int j = 0; j < 4; j++) {
                        _mm256_storeu_si256((__m256i *)(vt[cc][0 * 4 + j] + tw0), _mm256_sub_epi16(h[0][j], h[2][j]));
                        _mm256_storeu_si256((__m256i *)(vt[cc][1 * 4 + j] + tw0), _mm256_add_epi16(h[1][j], h[2][j]));
                        _mm256_storeu_si256((__m256i *)(vt[cc][2 * 4 + j] + tw0), _mm256_sub_epi16(h[2][j], h[1][j]));
                        _mm256_storeu_si256((__m256i *)(vt[cc][3 * 4 + j] + tw0), _mm256_sub_epi16(h[1][j], h[3][j]));
                    }
                }
            }
            /* [c][tile] -> per group of 4 tiles [tile][c], 16 tiles at a time */
            for (long long tw0 = 0; tw0 < TWp; tw0 += 16) {
                const size_t t0 = (size_t)(r * TWp + tw0);
                const long long ng = (TWp - tw0 < 16 ? TWp - tw0 : 16) / 4;
                for (int ij = 0; ij < 16; ij++) {
                    const __m256i v0 = _mm256_loadu_si256((const __m256i *)(vt[0][ij] + tw0));
                    const __m256i v1 = _mm256_loadu_si256((const __m256i *)(vt[1][ij] + tw0));
                    const __m256i v2 = _mm256_loadu_si256((const __m256i *)(vt[2][ij] + tw0));
                    const __m256i v3 = _mm256_loadu_si256((const __m256i *)(vt[3][ij] + tw0));
                    const __m256i a = _mm256_unpacklo_epi16(v0, v1), b = _mm256_unpackhi_epi16(v0, v1);
                    const __m256i c = _mm256_unpacklo_epi16(v2, v3), d = _mm256_unpackhi_epi16(v2, v3);
                    const __m256i e = _mm256_unpacklo_epi32(a, c), f = _mm256_unpackhi_epi32(a, c);
                    const __m256i gg = _mm256_unpacklo_epi32(b, d), hh = _mm256_unpackhi_epi32(b, d);
                    const __m256i grp[4] = {_mm256_permute2x128_si256(e, f, 0x20), _mm256_permute2x128_si256(gg, hh, 0x20),
                                            _mm256_permute2x128_si256(e, f, 0x31), _mm256_permute2x128_si256(gg, hh, 0x31)};
                    int16_t *base = V + (size_t)ij * T * Cp + (t0 / 4) * 4 * Cp + c0 * 4;
                    for (long long q = 0; q < ng; q++) _mm256_storeu_si256((__m256i *)(base + (size_t)q * 4 * Cp), grp[q]);
                }
            }
        }
    }
}

/* The 4 tiles of group gi of block (image b, tile rows th0..): outputs through A^T M A / 4,
 * bias, the output stage. m: the raw accumulators [ij][tile j][2]. */
DSE_TARGET_AVX2 static void avx2_i8_wino_out(const avx2_i8_wino_job *J, const __m256i (*m)[8], size_t b, long long th, long long tw0,
                                             size_t o0, const avx2_i8_rq *q, __m256i bias) {
    const dse_i8_geom *g = J->g;
    const dse_i8_out *o = J->o;
    const long long OH = g->out[1], OW = g->out[2];
    const size_t nc = J->O - o0 < 8 ? J->O - o0 : 8, P = (size_t)(OH * OW);
    int32_t res[4][4][8];   /* tile, output (00, 01, 10, 11), channel */
    for (int j = 0; j < 4; j++) {
        __m256i y[4][2];
        for (int hv = 0; hv < 2; hv++) {
            __m256i r0[4], r1[4];
            for (int s = 0; s < 4; s++) {
                const __m256i m0 = m[s][2 * j + hv], m1 = m[4 + s][2 * j + hv], m2 = m[8 + s][2 * j + hv], m3 = m[12 + s][2 * j + hv];
                r0[s] = _mm256_add_epi32(_mm256_add_epi32(m0, m1), m2);
                r1[s] = _mm256_sub_epi32(_mm256_sub_epi32(m1, m2), m3);
            }
            y[0][hv] = _mm256_add_epi32(_mm256_add_epi32(r0[0], r0[1]), r0[2]);
            y[1][hv] = _mm256_sub_epi32(_mm256_sub_epi32(r0[1], r0[2]), r0[3]);
            y[2][hv] = _mm256_add_epi32(_mm256_add_epi32(r1[0], r1[1]), r1[2]);
            y[3][hv] = _mm256_sub_epi32(_mm256_sub_epi32(r1[1], r1[2]), r1[3]);
        }
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_permute4x64_epi64(_mm256_hadd_epi32(y[k][0], y[k][1]), 0xD8);
            v = _mm256_srai_epi32(v, 2);   /* 4 Y -> Y: exact */
            if (o->float_out) _mm256_storeu_si256((__m256i *)res[j][k], v);
            else _mm256_storeu_si256((__m256i *)res[j][k], avx2_i8_requant(_mm256_add_epi32(v, bias), q));
        }
    }
    if (!o->float_out && 2 * tw0 + 8 <= OW) {   /* 8 whole columns: per channel and row, 8 bytes */
        const __m256i tr = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        for (int di = 0; di < 2; di++) {
            const long long oh = 2 * th + di;
            if (oh >= OH) break;
            __m256i c[8];   /* column 2j + dj = tile j, output (di, dj) */
            for (int col = 0; col < 8; col++) c[col] = _mm256_loadu_si256((const __m256i *)res[col >> 1][2 * di + (col & 1)]);
            __m256i b0 = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
            __m256i b1 = _mm256_packs_epi16(_mm256_packs_epi32(c[4], c[5]), _mm256_packs_epi32(c[6], c[7]));
            b0 = _mm256_shuffle_epi8(b0, tr), b1 = _mm256_shuffle_epi8(b1, tr);   /* dword ch: its 4 columns */
            int64_t q[8];
            _mm256_storeu_si256((__m256i *)q, _mm256_unpacklo_epi32(b0, b1));        /* ch 0, 1, 4, 5 */
            _mm256_storeu_si256((__m256i *)(q + 4), _mm256_unpackhi_epi32(b0, b1));  /* ch 2, 3, 6, 7 */
            static const int at[8] = {0, 1, 4, 5, 2, 3, 6, 7};   /* q index of channel i */
            int8_t *yb = (int8_t *)J->y + (b * J->O + o0) * P + (size_t)(oh * OW + 2 * tw0);
            for (size_t i = 0; i < nc; i++) memcpy(yb + i * P, &q[at[i]], 8);
        }
        return;
    }
    for (int j = 0; j < 4; j++) {
        const long long tw = tw0 + j;
        for (int k = 0; k < 4; k++) {
            const long long oh = 2 * th + (k >> 1), ow = 2 * tw + (k & 1);
            if (oh >= OH || ow >= OW) continue;
            const size_t idx = (b * J->O + o0) * P + (size_t)(oh * OW + ow);
            if (o->float_out)
                for (size_t i = 0; i < nc; i++) dse_i8_store(o, J->y, idx + i * P, o0 + i, (int64_t)res[j][k][i] + J->bias[o0 + i]);
            else
                for (size_t i = 0; i < nc; i++) ((int8_t *)J->y)[idx + i * P] = (int8_t)res[j][k][i];
        }
    }
}

/* Bands b0..b0+nb-1 (their U at U) of the tile rows th0.. of image b, from the block's V (T tiles). */
DSE_TARGET_AVX2 static void avx2_i8_wino_block(const avx2_i8_wino_job *J, const int16_t *V, size_t T, long long th0, size_t b,
                                               const int16_t *U, long long b0, long long nb) {
    const avx2_wino_plan *wp = &J->wp;
    const size_t Cp = (size_t)wp->Cp, band = 16 * (size_t)wp->Kb * 32;
    __m256i m[16][8];
    for (long long bi = 0; bi < nb; bi++) {
        const size_t o0 = (size_t)(b0 + bi) * 8;
        const size_t nc = J->O - o0 < 8 ? J->O - o0 : 8;
        size_t ch[8];
        int32_t bv[8] = {0};
        for (size_t i = 0; i < 8; i++) ch[i] = o0 + (i < nc ? i : 0), bv[i] = i < nc ? J->bias[o0 + i] : 0;
        __m256i bias;
        memcpy(&bias, bv, 32);
        avx2_i8_rq q;
        avx2_i8_rq_init(&q, J->o, ch, (int)nc);
        const int16_t *Ub = U + (size_t)bi * band;
        for (size_t gi = 0; gi < T / 4; gi++) {
            const long long th = th0 + (long long)(gi * 4) / wp->TWp, tw0 = (long long)(gi * 4) % wp->TWp;
            if (tw0 >= wp->TW) continue;   /* padding tiles of the row */
            for (int ij = 0; ij < 16; ij++)
                avx2_i8_mk4w(V + (size_t)ij * T * Cp + gi * 4 * Cp, Ub + (size_t)ij * (size_t)wp->Kb * 32, (size_t)wp->Kb, m[ij]);
            avx2_i8_wino_out(J, (const __m256i(*)[8])m, b, th, tw0, o0, &q, bias);
        }
    }
}

/* Parts: whole-image plans (R == TH): part t = image t / split, bands of chunk t % split, V once
 * per image; row plans: part t = (image, tile row), all bands, V once per chunk of UB bands. */
DSE_TARGET_AVX2 static void avx2_i8_wino_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_wino_job *J = arg;
    const avx2_wino_plan *wp = &J->wp;
    uint8_t *S = dse__worker_scratch(J->cx, worker);
    int16_t *V = (int16_t *)(void *)(S + wp->v_off), *U = (int16_t *)(void *)(S + wp->u_off), *rows = (int16_t *)(void *)(S + wp->rows_off);
    const size_t isz = (size_t)(J->g->in[1] * J->g->in[2]);
    if (wp->R == wp->TH) {
        size_t have = (size_t)-1;
        for (size_t t = begin; t < end; t++) {
            const size_t b = t / J->split, part = t % J->split, per = ((size_t)wp->nbands + J->split - 1) / J->split;
            const long long p0 = (long long)(part * per), p1 = (long long)((part + 1) * per) < wp->nbands ? (long long)((part + 1) * per) : wp->nbands;
            if (p0 >= p1) continue;
            if (b != have) avx2_i8_wino_v(V, rows, J, J->x + b * J->C * isz, 0, wp->TH), have = b;
            for (long long b0 = p0; b0 < p1; b0 += wp->UB) {
                const long long nb = p1 - b0 < wp->UB ? p1 - b0 : wp->UB;
                avx2_i8_wino_u(U, J, b0, nb);
                avx2_i8_wino_block(J, V, (size_t)wp->T, 0, b, U, b0, nb);
            }
        }
        return;
    }
    for (long long b0 = 0; b0 < wp->nbands; b0 += wp->UB) {
        const long long nb = wp->nbands - b0 < wp->UB ? wp->nbands - b0 : wp->UB;
        avx2_i8_wino_u(U, J, b0, nb);
        for (size_t t = begin; t < end; t++) {
            const size_t b = t / J->blocks;
            const long long th0 = (long long)(t % J->blocks);
            avx2_i8_wino_v(V, rows, J, J->x + b * J->C * isz, th0, 1);
            avx2_i8_wino_block(J, V, (size_t)wp->TWp, th0, b, U, b0, nb);
        }
    }
}

DSE_TARGET_AVX2 void dse_i8_conv__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    const size_t O = wt->dims[0], NB = xt->dims[0], P = yt->numel / (NB * O);
    if (wt->layout == DSE_LAYOUT_PLAIN) {   /* depthwise (the check accepts nothing else in layout 0) */
        avx2_i8_dw_job J = {cx, dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), dse__data(m, arena, n->in[2]),
                            &o, dse__data(m, arena, n->out[0]), &g, (long long)O, {0, 0, 0, 0, 0}};
        avx2_dw_plan_of(&g, n->scratch, &J.dp);
        dse__parallel(cx, NB * O, 1, avx2_i8_dw_task, &J);
        return;
    }
    avx2_wino_plan wp;
    if (avx2_wino_plan_of(&g, wt->dims[1], O, n->scratch, &wp)) {
        avx2_i8_wino_job W = {cx, dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), dse__data(m, arena, n->in[2]),
                              &o, dse__data(m, arena, n->out[0]), &g, xt->dims[1], O, wp, 0, 1};
        W.blocks = (size_t)((wp.TH + wp.R - 1) / wp.R);
        W.split = wp.R == wp.TH ? avx2_i8_split(cx, NB, O) : 1;
        dse__parallel(cx, wp.R == wp.TH ? NB * W.split : NB * W.blocks, 1, avx2_i8_wino_task, &W);
        return;
    }
    avx2_i8_conv_job J;
    size_t K = wt->numel / O;
    J.G.w = dse__data(m, arena, n->in[1]), J.G.R = O, J.G.K = K, J.G.Kb = (K + 3) / 4;
    J.G.bias = dse__data(m, arena, n->in[2]), J.G.o = &o, J.G.y = dse__data(m, arena, n->out[0]);
    J.G.ys_r = P, J.G.ys_p = 1;
    J.cx = cx, J.x = dse__data(m, arena, n->in[0]), J.g = &g, J.C = (long long)xt->dims[1], J.P = P;
    J.T = P < DSE_I8_PACK_TILE ? P : DSE_I8_PACK_TILE;
    J.tiles = (P + J.T - 1) / J.T;
    J.direct = 1;
    for (int i = 0; i < 3; i++)
        J.direct &= g.k[i] == 1 && g.s[i] == 1 && g.pb[i] == 0 && g.pe[i] == 0;
    J.split = avx2_i8_split(cx, NB * J.tiles, O);
    dse__parallel(cx, NB * J.tiles * J.split, 1, avx2_i8_conv_task, &J);
}

#endif
