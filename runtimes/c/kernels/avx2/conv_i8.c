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
 * Depthwise Conv (dwconv_i8.c) and Winograd F(2x2, 3x3) for 3x3 stride-1 convs (winograd_i8.c)
 * share the plans, the requantisation and the thread split of i8_avx2.h.
 *
 * Work is split with dse__parallel: GEMM nodes over (image, tile) pairs, each split further into
 * chunks of output-channel bands when there are few tiles for the session's threads; Winograd
 * over (image, tile row); depthwise over channel planes. Each part uses its worker's scratch
 * and writes its own output bytes.
 */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "i8_avx2.h"

/* -- checks (plain C: they run at load, before any AVX2 code) --------------------------------- */

/* max|bias| + K * 255 * 127 < 2^31: every int32 sum here is exact (else REF, which adds the
 * bias in int64, takes the node). */
static int avx2_i8_bias_fits(const dse_model *m, const dse_node *n, size_t C, size_t K) {
    const dse_tensor *b = &m->tensors[n->in[2]];
    const int32_t *bd = (const int32_t *)b->cdata;
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
        int direct = 1;
        for (unsigned d = 2; d < w->rank; d++) direct &= w->dims[d] == 1;
        if (P < 16 && K * P <= 4096 && 2 * ((K + 3) / 4 * 4) * P + K * P > need)
            need = 2 * ((K + 3) / 4 * 4) * P + K * P;   /* the im2row stage of small tiles (avx2_i8_pack_conv) */
        const size_t T = dse_i8_conv_imgs_tile(K, P, y->dims[0]), imgs = 2 * ((K + 3) / 4 * 4) * T + K * T;
        if (T && imgs <= plan && imgs > need && dse__scratch_free(m, n, imgs))
            need = imgs;   /* tiles across the images (avx2_i8_conv_gemm_run); else one image at a time */
        if (direct && avx2_i8_trans_k(K, P)) {   /* strides, pads: checked at run; the need covers both */
            const size_t t = avx2_i8_trans_need(K, P);
            if (t > need) need = t;
        }
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
        need = dse_i8_dwconv_scratch_avx2(m, n, &g, (int)dse__attr_int(n, DSE_A_float_out, 0), plan, 0);
        if (need == (size_t)-1) return 1;
        why->scratch = need;
        return 0;
    }
    /* more than the plan, or an artifact planned before this kernel (tensors may live in the
     * scratch region at this node): REF */
    if (need > plan || !dse__scratch_free(m, n, need)) return 1;
    why->scratch = need;
    return 0;
}

int dse__check_i8_gemm_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_gemm_check(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = x->dims[1], N = y->dims[1], need = avx2_i8_gemm_scratch(K, x->dims[0], 0);
    if (w->layout == DSE_LAYOUT_PLAIN || !x->dims[0] || !N || !avx2_i8_bias_fits(m, n, N, K)) return 1;
    if (need > why->scratch_plan || !dse__scratch_free(m, n, need)) return 1;   /* see the Conv check */
    why->scratch = need;
    return 0;
}

int dse__check_i8_matmul_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_matmul_check(m, n, why)) return 1;
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = w->dims[0], N = w->dims[1], rows = N ? y->numel / N : 0, need = avx2_i8_gemm_scratch(K, rows, 0);
    if (w->layout != DSE_LAYOUT_N8K4_T || !rows || !avx2_i8_bias_fits(m, n, N, K)) return 1;
    if (need > why->scratch_plan || !dse__scratch_free(m, n, need)) return 1;   /* see the Conv check */
    why->scratch = need;
    return 0;
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
    int w4;                      /* w: int4 in layout 6 (16-byte blocks; the pixels-in-lanes form only) */
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    size_t ys_r, ys_p;
    size_t r_begin, r_end;       /* the rows (multiples of 8, or R) this part computes */
    size_t img_p, img_ys;        /* tiles across images: column p is pixel p % img_p of image p / img_p,
                                  * whose Y starts img_ys elements after the previous one's; 0: one image */
} avx2_i8_gemm;

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
        __m256 fscale = _mm256_setzero_ps();
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
            __m256i v[4];
            for (int j = 0; j < nr; j++) v[j] = _mm256_add_epi32(acc[j], bias);
            if (!G->img_p) {
                avx2_i8_store_tile(G->y, G->ys_r, G->ys_p, o, r0, nc, v, nr, p0 + c0, &q, fscale);
                continue;
            }
            for (int j = 0; j < nr;) {   /* the columns of each image in the group */
                const size_t u = p0 + c0 + (size_t)j, img = u / G->img_p, p = u % G->img_p;
                const int run = (size_t)(nr - j) < G->img_p - p ? nr - j : (int)(G->img_p - p);
                void *yi = o->float_out ? (void *)((float *)G->y + img * G->img_ys) : (void *)((int8_t *)G->y + img * G->img_ys);
                avx2_i8_store_tile(yi, G->ys_r, G->ys_p, o, r0, nc, v + j, run, p, &q, fscale);
                j += run;
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
    J.G.w = w, J.G.R = N, J.G.K = K, J.G.Kb = (K + 3) / 4, J.G.w4 = 0, J.G.bias = bias, J.G.o = o, J.G.y = y;
    J.G.ys_r = 1, J.G.ys_p = N, J.G.img_p = 0, J.G.img_ys = 0;
    J.cx = cx, J.x = x, J.rows = rows, J.T = rows < DSE_I8_PACK_TILE ? rows : DSE_I8_PACK_TILE;
    const size_t tiles = (rows + J.T - 1) / J.T;
    J.split = avx2_i8_split(cx, tiles, N);
    dse__parallel(cx, tiles * J.split, dse__grain(tiles * J.split, (uint64_t)rows * K * N), avx2_i8_rows_task, &J);
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
    int trans;            /* direct with K <= 128: pixels in the lanes (avx2_i8_tile_T) */
    int im2row;           /* tiles of < 16 pixels through a [T][K] stage (avx2_i8_pack_conv) */
    int imgs;             /* tiles of T columns across the images (P < 16), through the same stage */
    size_t NP;            /* imgs: the batch's columns, N * P */
} avx2_i8_conv_job;

/* The im2col tile of image xb (C x ID x IH x IW): columns p0..p0+T-1 (output pixels, row-major
 * over (od, oh, ow)), k = ((ci * KD + kd) * KH + kh) * KW + kw. */
DSE_TARGET_AVX2 static void avx2_i8_pack_conv(int16_t *a, const avx2_i8_conv_job *J, const int8_t *xb, size_t p0, size_t T) {
    const dse_i8_geom *g = J->g;
    const size_t K = J->G.K, Kb = J->G.Kb, Kp = Kb * 4;
    const int zp = J->G.o->zp_in;
    const __m256i z = _mm256_set1_epi16((int16_t)zp);
    const size_t isz = (size_t)(g->in[0] * g->in[1] * g->in[2]);
    int8_t pad[16];
    memset(pad, zp, 16);
    if (J->im2row) {
        /* A tile of fewer than 16 pixels (small images, e.g. 1-D convs over a few frames of a
         * batch: one tile per image), or with J->imgs a tile of columns across the images of the
         * batch xb (column p0 + j: pixel (p0 + j) % P of image (p0 + j) / P; the plan's scratch,
         * dse_i8_conv_scratch_plan), with taps contiguous along W (dilation 1): im2col by rows,
         * stage[j][k] = the tile's pixel j's tap k (dse_i8_im2row_pixel), then the [T][K] rows go through
         * avx2_i8_pack_rows' 4 x 16 transposes. avx2_i8_im2col_tap's set-up per k (divisions,
         * a call) cost more than these tiles' rows; the bytes are the same. */
        int8_t *st = (int8_t *)(a + T * Kp);   /* T x K bytes: the check's need */
        for (size_t j = 0; j < T; j++)   /* imgs: column p0 + j is pixel (p0 + j) % P of image (p0 + j) / P (xb: the batch) */
            dse_i8_im2row_pixel(J->imgs ? xb + (p0 + j) / J->P * (size_t)J->C * isz : xb, g, (size_t)J->C,
                                J->imgs ? (p0 + j) % J->P : p0 + j, (int8_t)zp, st + j * K);
        avx2_i8_pack_rows(a, st, K, 0, T, zp);
        return;
    }
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
     * int8 (out-of-input taps = zp) in `stage` (4 x (T + 32) bytes after the tile; avx2_i8_im2col_tap,
     * i8_avx2.h), then the 4 rows go through the same 4 x 16 transpose as the direct path */
    const size_t SR = (T + 31) / 16 * 16;   /* a stage row, with room for a 16-byte overrun */
    int8_t *stage = (int8_t *)(a + T * Kp);
    if (T < 16) {
        /* A tile of fewer than 16 pixels (small images, e.g. 1-D convs over a few frames of a
         * batch: one tile per image): avx2_i8_im2col_tap's set-up per k (divisions to find the
         * k's tap and the tile's first pixel, a call) cost more than the row itself. Here each
         * pixel's input origin is found once per tile and the k's tap is stepped without
         * division; the bytes are avx2_i8_im2col_tap's (zp outside the input and for k >= K). */
        long long oz[16], oy[16], ox[16];   /* the pixel's input origin: o*s - pad per axis */
        for (size_t j = 0; j < T; j++) {
            const long long q = (long long)(p0 + j);
            oz[j] = q / (g->out[2] * g->out[1]) * g->s[0] - g->pb[0];
            oy[j] = q / g->out[2] % g->out[1] * g->s[1] - g->pb[1];
            ox[j] = q % g->out[2] * g->s[2] - g->pb[2];
        }
        const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], KD = g->k[0], KH = g->k[1], KW = g->k[2];
        long long kw = 0, kh = 0, kd = 0;
        const int8_t *xc = xb;   /* channel ci's plane */
        const uint64_t zp8 = 0x0101010101010101ull * (uint8_t)zp;
        for (size_t kb = 0; kb < Kb; kb++) {
            __m128i r[4];   /* the 4 k's rows, built in registers (bytes stored and then loaded as a
                             * vector would miss store forwarding) */
            for (size_t c = 0; c < 4; c++) {
                uint64_t lo = zp8, hi = zp8;
                if (4 * kb + c < K) {
                    const long long dz = kd * g->d[0], dy = kh * g->d[1], dx = kw * g->d[2];
                    for (size_t j = 0; j < T; j++) {
                        const long long id = oz[j] + dz, ih = oy[j] + dy, iw = ox[j] + dx;
                        if ((unsigned long long)id < (unsigned long long)ID && (unsigned long long)ih < (unsigned long long)IH &&
                            (unsigned long long)iw < (unsigned long long)IW) {
                            const uint64_t v = (uint8_t)xc[(id * IH + ih) * IW + iw], sh = 8 * (j & 7);
                            if (j < 8) lo = (lo & ~(0xFFull << sh)) | v << sh;
                            else hi = (hi & ~(0xFFull << sh)) | v << sh;
                        }
                    }
                    if (++kw == KW) {   /* the next k: k = ((ci * KD + kd) * KH + kh) * KW + kw */
                        kw = 0;
                        if (++kh == KH) {
                            kh = 0;
                            if (++kd == KD) kd = 0, xc += isz;
                        }
                    }
                }
                r[c] = _mm_set_epi64x((long long)hi, (long long)lo);
            }
            avx2_i8_put16(a, T, Kp, 0, kb, r[0], r[1], r[2], r[3], z);
        }
        (void)stage, (void)SR;
        return;
    }
    const avx2_i8_pix pix = avx2_i8_pix_of(g, p0);
    avx2_i8_tap tap = avx2_i8_tap_of(g, 0);
    for (size_t kb = 0; kb < Kb; kb++) {
        avx2_i8_stage_kblock(stage, SR, g, xb, &tap, pix, kb, K, T, zp);
        for (size_t q = 0; q < T; q += 16)
            avx2_i8_put16(a, T, Kp, q, kb, _mm_loadu_si128((const __m128i *)(stage + q)),
                          _mm_loadu_si128((const __m128i *)(stage + SR + q)), _mm_loadu_si128((const __m128i *)(stage + 2 * SR + q)),
                          _mm_loadu_si128((const __m128i *)(stage + 3 * SR + q)), z);
    }
}

DSE_TARGET_AVX2 static void avx2_i8_pack_T(int32_t *a2, const int8_t *xb, size_t K, size_t P, size_t p0, size_t T, int zp);
DSE_TARGET_AVX2 static void avx2_i8_tile_T(const avx2_i8_gemm *G, const int32_t *a2, size_t T, size_t p0, int32_t *w2buf);

DSE_TARGET_AVX2 static void avx2_i8_conv_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_conv_job *J = arg;
    int16_t *a = (int16_t *)(void *)dse__worker_scratch(J->cx, worker);
    const size_t isz = (size_t)(J->g->in[0] * J->g->in[1] * J->g->in[2]);
    size_t packed = (size_t)-1;
    int32_t w2[AVX2_I8_TRANS_KMAX / 4 * 16];   /* avx2_i8_tile_T's weights of 8 channels as int16 pairs */
    for (size_t t = begin; t < end; t++) {
        /* u: (image, tile) pairs, or with imgs the tiles of the batch's N * P columns (image 0 below) */
        const size_t u = t / J->split, b = J->imgs ? 0 : u / J->tiles, cols = J->imgs ? J->NP : J->P;
        const size_t p0 = u % J->tiles * J->T, T = cols - p0 < J->T ? cols - p0 : J->T;
        const int8_t *xb = J->x + b * (size_t)J->C * isz;
        if (u != packed) {
            if (J->trans) avx2_i8_pack_T((int32_t *)(void *)a, xb, J->G.K, J->P, p0, T, J->G.o->zp_in);
            else avx2_i8_pack_conv(a, J, xb, p0, T);
            packed = u;
        }
        avx2_i8_gemm G = J->G;
        avx2_i8_part_rows(&G, t % J->split, J->split);
        G.y = (J->G.o->float_out ? (void *)((float *)G.y + b * G.R * J->P) : (void *)((int8_t *)G.y + b * G.R * J->P));
        if (J->trans) avx2_i8_tile_T(&G, (const int32_t *)(const void *)a, T, p0, w2);
        else avx2_i8_gemm_tile(&G, a, T, p0);
    }
}

/* -- Conv 1x1, small K: output pixels in the vector lanes ---------------------------------------- */

/* For 1x1 stride-1 unpadded convs with K <= 128 the output stage dominates; this form avoids its
 * transposes: columns are pixels, 16 per block, packed per pair of input channels as int16
 * pairs (x[c][p] - zp, x[c+1][p] - zp) (q = channels 2q, 2q+1; T rounded up to 16 columns, each
 * block of 16 as [px 0-3, 8-11 | px 4-7, 12-15], as vpunpck[lh]wd leave them); the weights
 * of 4 output channels as int16 pairs (w[o][2q], w[o][2q+1]) broadcast per channel; 4 channels
 * x 16 pixels per call (a block's pairs are contiguous: a2 is [block][q][16 pixels]); each
 * channel's 16 sums then requantise and pack back to pixel order
 * (vpackssdw of the two halves) and store as 16 contiguous bytes. */
DSE_TARGET_AVX2 static void avx2_i8_mkT(const int32_t *a, size_t rs, const int32_t *w2, size_t Kq, __m256i *out) {
    __asm__ volatile(
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
        "test %[kq], %[kq]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n"
        "1:\n\t"
        "vmovdqu (%[a]), %%ymm8\n\t"
        "vmovdqu 32(%[a]), %%ymm9\n\t"
        "vpbroadcastd (%[w]), %%ymm10\n\t"
        "vpbroadcastd 4(%[w]), %%ymm11\n\t"
        "vpmaddwd %%ymm10, %%ymm8, %%ymm12\n\t"
        "vpmaddwd %%ymm10, %%ymm9, %%ymm13\n\t"
        "vpmaddwd %%ymm11, %%ymm8, %%ymm14\n\t"
        "vpmaddwd %%ymm11, %%ymm9, %%ymm15\n\t"
        "vpaddd %%ymm12, %%ymm0, %%ymm0\n\t"
        "vpaddd %%ymm13, %%ymm1, %%ymm1\n\t"
        "vpaddd %%ymm14, %%ymm2, %%ymm2\n\t"
        "vpaddd %%ymm15, %%ymm3, %%ymm3\n\t"
        "vpbroadcastd 8(%[w]), %%ymm10\n\t"
        "vpbroadcastd 12(%[w]), %%ymm11\n\t"
        "vpmaddwd %%ymm10, %%ymm8, %%ymm12\n\t"
        "vpmaddwd %%ymm10, %%ymm9, %%ymm13\n\t"
        "vpmaddwd %%ymm11, %%ymm8, %%ymm14\n\t"
        "vpmaddwd %%ymm11, %%ymm9, %%ymm15\n\t"
        "vpaddd %%ymm12, %%ymm4, %%ymm4\n\t"
        "vpaddd %%ymm13, %%ymm5, %%ymm5\n\t"
        "vpaddd %%ymm14, %%ymm6, %%ymm6\n\t"
        "vpaddd %%ymm15, %%ymm7, %%ymm7\n\t"
        "add %[rs], %[a]\n\t"
        "add $16, %[w]\n\t"
        "dec %[kq]\n\t"
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
        : [w] "+r"(w2), [a] "+r"(a), [kq] "+r"(Kq)
        : [out] "r"(out), [rs] "r"(rs)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

/* Pixels p0..p0+T-1 of the K channel rows of image xb (P pixels each) into a2 (see above). */
DSE_TARGET_AVX2 static void avx2_i8_pack_T(int32_t *a2, const int8_t *xb, size_t K, size_t P, size_t p0, size_t T, int zp) {
    const size_t Kq = (K + 1) / 2, T16 = (T + 15) / 16 * 16;
    const __m256i z = _mm256_set1_epi16((int16_t)zp);
    int8_t pad[16];
    memset(pad, zp, 16);
    for (size_t q = 0; q < Kq; q++) {
        const int8_t *r0 = xb + 2 * q * P + p0, *r1 = 2 * q + 1 < K ? xb + (2 * q + 1) * P + p0 : NULL;
        int32_t *dst = a2 + q * 16;
        for (size_t p = 0; p < T16; p += 16, dst += Kq * 16) {
            __m128i v0, v1;
            if (p + 16 <= T) {
                v0 = _mm_loadu_si128((const __m128i *)(r0 + p));
                v1 = r1 ? _mm_loadu_si128((const __m128i *)(r1 + p)) : _mm_loadu_si128((const __m128i *)pad);
            } else {   /* the tile's last, partial block: zp (0 after - zp) past the end */
                int8_t t0[16], t1[16];
                memset(t0, zp, 16), memset(t1, zp, 16);
                memcpy(t0, r0 + p, T - p);
                if (r1) memcpy(t1, r1 + p, T - p);
                v0 = _mm_loadu_si128((const __m128i *)t0), v1 = _mm_loadu_si128((const __m128i *)t1);
            }
            const __m256i a = _mm256_sub_epi16(_mm256_cvtepi8_epi16(v0), z), b = _mm256_sub_epi16(_mm256_cvtepi8_epi16(v1), z);
            _mm256_storeu_si256((__m256i *)dst, _mm256_unpacklo_epi16(a, b));
            _mm256_storeu_si256((__m256i *)(dst + 8), _mm256_unpackhi_epi16(a, b));
        }
    }
}

/* Y[r][p0 + 0..T-1] for the rows [G->r_begin, G->r_end) from the pixel-pair tile a2. */
DSE_TARGET_AVX2 static void avx2_i8_tile_T(const avx2_i8_gemm *G, const int32_t *a2, size_t T, size_t p0, int32_t *w2buf) {
    const dse_i8_out *o = G->o;
    const size_t Kq = (G->K + 1) / 2, T16 = (T + 15) / 16 * 16;
    const __m256i perm = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    int32_t *w2[2] = {w2buf, w2buf + G->Kb * 8};   /* per half band: [k pair][4 channels], Kb * 8 entries */
    const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1), m4 = _mm_set1_epi8(0x0F);
    for (size_t r0 = G->r_begin; r0 < G->r_end; r0 += 8) {
        const int8_t *wb = G->w + (r0 / 8) * G->Kb * (G->w4 ? 16 : 32);
        for (size_t kb = 0; kb < G->Kb; kb++)   /* [o][4 k] int8 -> per half: [k pair][o] int16 pairs */
            for (int h = 0; h < 2; h++) {
                __m128i b;
                if (G->w4) {   /* layout 6: half h (channels 4h..4h+3) is nibble h of the block's 16 bytes */
                    const __m128i v4 = _mm_loadu_si128((const __m128i *)(wb + kb * 16));
                    b = _mm_shuffle_epi8(lut, _mm_and_si128(h ? _mm_srli_epi16(v4, 4) : v4, m4));
                } else
                    b = _mm_loadu_si128((const __m128i *)(wb + kb * 32 + h * 16));
                const __m256i v = _mm256_cvtepi8_epi16(b);
                _mm256_storeu_si256((__m256i *)(w2[h] + kb * 8), _mm256_permutevar8x32_epi32(v, perm));
            }
        for (int h = 0; h < 2; h++) {
            const size_t o0 = r0 + 4 * (size_t)h;
            if (o0 >= G->R) break;
            const int nc = G->R - o0 < 4 ? (int)(G->R - o0) : 4;
            avx2_i8_rq q[4];
            __m256i bias[4];
            for (int i = 0; i < nc; i++) avx2_i8_rq_init1(&q[i], o, o0 + (size_t)i), bias[i] = _mm256_set1_epi32(G->bias[o0 + (size_t)i]);
            for (size_t p = 0; p < T16; p += 16) {
                __m256i acc[8];
                avx2_i8_mkT(a2 + p * Kq, 64, w2[h], Kq, acc);
                const size_t nw = T - p < 16 ? T - p : 16;
                for (int i = 0; i < nc; i++) {
                    const size_t yo = (o0 + (size_t)i) * G->ys_r + p0 + p;
                    if (o->float_out) {   /* as gemm_tile: (float)acc * scale, then the clamps in REF's order */
                        const __m256 sc = _mm256_set1_ps(o->scale[o0 + (size_t)i]);
                        const __m256 fmin = _mm256_set1_ps(o->act_min), fmax = _mm256_set1_ps(o->act_max);
                        __m256 lo = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc[2 * i], bias[i])), sc);
                        __m256 hi = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc[2 * i + 1], bias[i])), sc);
                        lo = _mm256_min_ps(fmax, _mm256_max_ps(fmin, lo)), hi = _mm256_min_ps(fmax, _mm256_max_ps(fmin, hi));
                        float t[16];
                        _mm256_storeu_ps(t, _mm256_permute2f128_ps(lo, hi, 0x20));       /* pixels 0-7 */
                        _mm256_storeu_ps(t + 8, _mm256_permute2f128_ps(lo, hi, 0x31));   /* pixels 8-15 */
                        memcpy((float *)G->y + yo, t, nw * 4);
                        continue;
                    }
                    const __m256i rl = avx2_i8_requant(_mm256_add_epi32(acc[2 * i], bias[i]), &q[i]);
                    const __m256i rh = avx2_i8_requant(_mm256_add_epi32(acc[2 * i + 1], bias[i]), &q[i]);
                    const __m256i p16 = _mm256_packs_epi32(rl, rh);   /* pixels 0-7 | 8-15 */
                    const __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
                    int8_t *yp = (int8_t *)G->y + yo;
                    if (nw == 16) _mm_storeu_si128((__m128i *)yp, b8);
                    else {
                        int8_t t[16];
                        _mm_storeu_si128((__m128i *)t, b8);
                        memcpy(yp, t, nw);
                    }
                }
            }
        }
    }
}

static void avx2_i8_conv_gemm_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                  const dse_i8_out *o, const dse_i8_geom *g, int w4);

DSE_TARGET_AVX2 void dse_i8_conv__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    if (wt->layout == DSE_LAYOUT_PLAIN) {   /* depthwise (the check accepts nothing else in layout 0) */
        dse_i8_dwconv_run_avx2(m, n, arena, cx, &o, &g, dse__data(m, arena, n->in[1]), n->scratch);
        return;
    }
    if (dse_i8_wino_run_avx2(m, n, arena, cx, &o, &g)) return;
    avx2_i8_conv_gemm_run(m, n, arena, cx, &o, &g, 0);
}

/* 1x1 stride-1 unpadded convs with per-channel int4 weights in layout 6 (avx2_i8_trans_k: the W4 kernel,
 * kernels/avx2/conv_i8_w4.c, calls it): the pixels-in-lanes form above on the weights expanded per band. */
DSE_TARGET_AVX2 void dse_i8_conv_trans_w4_run_avx2(const dse_model *m, const dse_node *n, uint8_t *arena,
                                                   const dse_ctx *cx, const dse_i8_out *o, const dse_i8_geom *g) {
    avx2_i8_conv_gemm_run(m, n, arena, cx, o, g, 1);
}

DSE_TARGET_AVX2 static void avx2_i8_conv_gemm_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                                  const dse_i8_out *o, const dse_i8_geom *gp, int w4) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    const size_t O = wt->dims[0], NB = xt->dims[0], P = yt->numel / (NB * O);
    dse_i8_geom g = *gp;
    /* An innermost spatial axis of size 1 everywhere (input, output, kernel 1, no padding), as
     * TF/JAX exports write 1-D convs ((H, 1) images), carries nothing: shift it out so the
     * im2col copies rows of OH pixels, not OH rows of one pixel (magika's (5, 1) conv: 26 -> 19 ms).
     * k = ((ci * KD + kd) * KH + kh) * KW + kw and the pixel order are unchanged by the shift. */
    for (int shift = 0; shift < 2 && g.in[2] == 1 && g.out[2] == 1 && g.k[2] == 1 && g.pb[2] == 0 && g.pe[2] == 0 &&
                        (g.in[0] > 1 || g.in[1] > 1); shift++) {
        long long *ax[7] = {g.in, g.out, g.k, g.s, g.d, g.pb, g.pe};
        const long long unit[7] = {1, 1, 1, 1, 1, 0, 0};
        for (int i = 0; i < 7; i++) ax[i][2] = ax[i][1], ax[i][1] = ax[i][0], ax[i][0] = unit[i];
    }
    avx2_i8_conv_job J;
    size_t K = wt->numel / O;
    J.G.w = dse__data(m, arena, n->in[1]), J.G.R = O, J.G.K = K, J.G.Kb = (K + 3) / 4, J.G.w4 = w4;
    J.G.bias = dse__data(m, arena, n->in[2]), J.G.o = o, J.G.y = dse__data(m, arena, n->out[0]);
    J.G.ys_r = P, J.G.ys_p = 1;
    J.cx = cx, J.x = dse__data(m, arena, n->in[0]), J.g = &g, J.C = (long long)xt->dims[1], J.P = P;
    J.T = P < DSE_I8_PACK_TILE ? P : DSE_I8_PACK_TILE;
    if (P >= 64) {   /* tiles of equal width (multiples of 16), and with threads at least one per thread
                      * (else two parts of one tile would each pack it) */
        size_t nt = (P + DSE_I8_PACK_TILE - 1) / DSE_I8_PACK_TILE;
        const size_t th = dse__threads(cx);
        if (th > 1 && NB * nt < th) nt = (th + NB - 1) / NB;
        const size_t T = ((P + nt - 1) / nt + 15) / 16 * 16;
        J.T = T < J.T ? T : J.T;
    }
    J.direct = 1;
    for (int i = 0; i < 3; i++)
        J.direct &= g.k[i] == 1 && g.s[i] == 1 && g.pb[i] == 0 && g.pe[i] == 0;
    J.trans = J.direct && avx2_i8_trans_k(K, P);   /* always, for w4 (its caller's condition) */
    J.im2row = !J.direct && P < 16 && g.d[2] == 1 && 2 * J.G.Kb * 4 * P + K * P <= n->scratch;
    J.imgs = 0, J.NP = 0, J.G.img_p = 0, J.G.img_ys = 0;
    const size_t Ti = w4 || g.d[2] != 1 ? 0 : dse_i8_conv_imgs_tile(K, P, NB);
    if (Ti && 2 * J.G.Kb * 4 * Ti + K * Ti <= n->scratch) {   /* small images, several: tiles across them */
        J.imgs = 1, J.im2row = 1, J.trans = 0, J.NP = NB * P, J.T = Ti;
        J.G.img_p = P, J.G.img_ys = O * P;
        const size_t th = dse__threads(cx);
        if (th > 1 && J.NP < th * Ti) {   /* fewer tiles than threads: narrower ones (columns in groups of 4),
                                            * not parts of one tile that would each pack it */
            const size_t w = (J.NP + th - 1) / th;
            J.T = (w + 3) / 4 * 4 < Ti ? (w + 3) / 4 * 4 : Ti;
        }
    }
    J.tiles = ((J.imgs ? J.NP : P) + J.T - 1) / J.T;
    const size_t units = J.imgs ? J.tiles : NB * J.tiles;
    J.split = avx2_i8_split(cx, units, O);
    dse__parallel(cx, units * J.split, dse__grain(units * J.split, (uint64_t)NB * P * K * O), avx2_i8_conv_task, &J);
}


#endif
