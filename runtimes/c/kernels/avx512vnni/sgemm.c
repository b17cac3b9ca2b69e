/* avx512vnni/sgemm.c: the float32 SGEMM of kernels/avx2/sgemm.c (dse__avx2_sgemm, the dse_sgemm
 * contract of src/internal.h) on 512-bit vectors, for the avx512vnni float Conv, Gemm and MatMul
 * (ISA avx512vnni: AVX-512 F/BW/VL, which every AVX512-VNNI CPU has; the float code needs F only).
 *
 * The same bytes as the AVX2 SGEMM: each C element is one sequential FMA chain over k (k
 * ascending, from 0), then the same epilogue operations in the same order (* alpha, + bias, + C or
 * C * beta, the clamp as max then min with the same operand order, so NaN goes the same way), then
 * the fused activation function: HardSwish on each 256-bit half by the AVX2 code itself
 * (dse__avx2_act_fn_inline), SiLU/GELU over the stored rows by dse__avx2_act_fn_row, as there.
 * Only the width of a tile differs: up to 12 rows x 32 columns (24 zmm accumulators; per k two
 * vectors of B and each A(i, k) broadcast into the FMA), where AVX2 holds 6 x 16 in ymm. Tails
 * narrower than the tile load B with masks (fault-suppressing: no read past B) and store with
 * masks. Rows in blocks of at most 12, as even as possible (6 where 12 rows of A, sai apart, would
 * crowd one L1 set); column chunks, the packing into panels of 16 riding on the first row block's
 * loads, and the per-tap offsets of the conv bands as in the AVX2 SGEMM (its comments say why).
 * Not in the VNNI emulation build (that one says an AVX2 CPU has AVX-512). */
#include "avx2_f32.h"

#if DSE_AVX2_F32 && DSE_VNNI_OK && !defined(DSE_EMULATE_VNNI)

#if defined(DSE_AVX2_SANITIZED)
#define Z_AI static inline DSE_TARGET_AVX512VNNI
#else
#define Z_AI static inline __attribute__((always_inline)) DSE_TARGET_AVX512VNNI
#endif
#define Z_FN static DSE_TARGET_AVX512VNNI

enum { Z_ROWS, Z_OFFS };
#define Z_PF 6       /* row-major B (its rows jump: no hardware prefetch), this many k ahead */
#define Z_PF_PK 32   /* the packing tiles (B from L3 or memory) */
#define Z_MAXR 12


/* The epilogue of one row segment of 16 lanes (`nl` real) at row i, column j, but the fused
 * activation function: the AVX2 SGEMM's operations (sgemm_epi) on 16 lanes. */
Z_AI __m512 z_epi(const dse_sgemm *g, __m512 v, size_t i, size_t j, size_t nl) {
    if (g->use_alpha) v = _mm512_mul_ps(v, _mm512_set1_ps(g->alpha));
    if (g->bias_m) v = _mm512_add_ps(v, _mm512_set1_ps(g->bias_m[i]));
    if (g->cmode) {
        const float *c = g->Cm + i * g->csi + j * g->csj;
        __m512 cv = !g->csj ? _mm512_set1_ps(*c) : _mm512_maskz_loadu_ps(dse__avx512_mask(nl), c);
        if (g->cmode == 2) cv = _mm512_mul_ps(cv, _mm512_set1_ps(g->beta));
        v = _mm512_add_ps(v, cv);
    }
    if (g->act) v = _mm512_min_ps(_mm512_set1_ps(g->hi), _mm512_max_ps(_mm512_set1_ps(g->lo), v));
    return v;
}

Z_AI void z_store(const dse_sgemm *g, __m512 v, size_t i, size_t j, size_t nl) {
    float *c = g->C + i * g->ldc + j;
    if (nl >= 16) _mm512_storeu_ps(c, v);
    else _mm512_mask_storeu_ps(c, dse__avx512_mask(nl), v);
}

/* With a column map (cw != 0), as the AVX2 SGEMM's sgemm_store_map: column j of the product is
 * column j % cw of output row j / cw, stored when j % cw < cv. The segment starts at row jr, column jo. */
Z_AI void z_store_map(const dse_sgemm *g, __m512 v, size_t i, size_t jr, size_t jo, size_t nl) {
    float *c = g->C + i * g->ldc;
    if (jo + nl <= g->cv && nl == 16) { _mm512_storeu_ps(c + jr * g->cv + jo, v); return; }
    float t[16];
    _mm512_storeu_ps(t, v);
    for (size_t l = 0; l < nl; l++) {
        size_t r = jr, o = jo + l;
        while (o >= g->cw) o -= g->cw, r++;
        if (o < g->cv) c[r * g->cv + o] = t[l];
    }
}

/* The epilogue of an MR x W tile whose sums are acc[2r] (columns j..j+15 of row i + r) and acc[2r + 1]
 * (j+16..j+31, W = 32), nr real columns: z_epi, the inline activation, the stores (or the column map). */
static DSE_NOINLINE DSE_TARGET_AVX512VNNI void z_finish(const dse_sgemm *g, __m512 *acc, int MR, int W, size_t i, size_t j, size_t nr) {
    const size_t n0 = nr > 16 ? 16 : nr, n1 = nr > 16 ? nr - 16 : 0;
    size_t jr = 0, jo = 0, jr1 = 0, jo1 = 0;
    if (g->cw) {
        jr = j / g->cw, jo = j % g->cw, jr1 = jr, jo1 = jo + 16;
        while (jo1 >= g->cw) jo1 -= g->cw, jr1++;
    }
    for (int r = 0; r < MR; r++)
        for (int h = 0; h < W / 16; h++) {
            const size_t nl = h ? n1 : n0;
            if (!nl) continue;
            __m512 v = z_epi(g, acc[2 * r + h], i + (size_t)r, j + 16 * (size_t)h, nl);
            if (g->act_fn && DSE_ACT_FN_INLINE(g->act_fn)) v = dse__avx512_act_fn_inline(g->act_fn, v);
            if (g->cw) z_store_map(g, v, i + (size_t)r, h ? jr1 : jr, h ? jo1 : jo, nl);
            else z_store(g, v, i + (size_t)r, j + 16 * (size_t)h, nl);
        }
}

/* One MR x W tile (W 32 or 16) at row i, column j, nr <= W real columns. B(k, j):
 *   Z_ROWS  b[k*ldb + j], or panels of 16 (bpanel: the second vector is the next panel's, whole
 *           vectors always: a panel's columns past the matrix are zeros never stored);
 *   Z_OFFS  B[boff[k] + j];
 * in both, a row narrower than the tile by masked loads. pk (Z_ROWS, W = 32, full): the 32 columns
 * read for each k are also stored at pk + 16 k and pk + 16 (K + k), the two panels that the other
 * row blocks then read (sgemm.c's sgemm_tile_pk). */
Z_AI void z_tile_pk(const dse_sgemm *g, const int MR, const int W, const int mode, size_t i, size_t j, size_t nr, float *pk) {
    const size_t K = g->K, sai = g->sai, sak = g->sak;
    const float *a = g->A + i * sai, *b;
    const size_t *boff = g->boff;
    size_t ldb, b1o = 16;
    int full = nr >= (size_t)W;
    if (mode == Z_OFFS) { b = g->B + j; ldb = 0; }
    else if (g->bpanel) { b = g->B + (j / 16) * g->bpanel + j % 16; ldb = 16; b1o = g->bpanel; full = 1; }
    else { b = g->B + j; ldb = g->ldb; }
    __m512 c0[Z_MAXR], c1[Z_MAXR];
    DSE_UNROLL
    for (int r = 0; r < MR; r++) {
        c0[r] = _mm512_setzero_ps();
        if (W == 32) c1[r] = _mm512_setzero_ps();
    }
    const __mmask16 m0 = dse__avx512_mask(nr), m1 = dse__avx512_mask(nr > 16 ? nr - 16 : 0);
    for (size_t k = 0; k < K; k++) {
        const float *bk = mode == Z_OFFS ? b + boff[k] : b;
        if (pk) {
            if (k + Z_PF_PK < K) {
                _mm_prefetch((const char *)(b + Z_PF_PK * ldb), _MM_HINT_T0);
                _mm_prefetch((const char *)(b + Z_PF_PK * ldb + 16), _MM_HINT_T0);
            }
        } else if (mode != Z_OFFS && ldb != 16 && k + Z_PF < K) {
            _mm_prefetch((const char *)(b + Z_PF * ldb), _MM_HINT_T0);
            if (W == 32) _mm_prefetch((const char *)(b + Z_PF * ldb + 16), _MM_HINT_T0);
        }
        if (mode == Z_OFFS && k + Z_PF < K) {
            const char *pf = (const char *)(b + boff[k + Z_PF]);
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 4 * W - 4, _MM_HINT_T0);
        }
        __m512 b0, b1 = _mm512_setzero_ps();
        if (full) {
            b0 = _mm512_loadu_ps(bk);
            if (W == 32) b1 = _mm512_loadu_ps(bk + b1o);
        } else {
            b0 = _mm512_maskz_loadu_ps(m0, bk);
            if (W == 32) b1 = _mm512_maskz_loadu_ps(m1, bk + b1o);
        }
        b += ldb;
        if (pk) {
            _mm512_storeu_ps(pk + 16 * k, b0);
            _mm512_storeu_ps(pk + 16 * (K + k), b1);
        }
        DSE_UNROLL
        for (int r = 0; r < MR; r++) {
            const __m512 av = _mm512_set1_ps(a[r * sai]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            if (W == 32) c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
        a += sak;
    }
    /* the epilogue, out of line (one copy for every tile shape: compiled per shape, it tripled this file's
     * compile time, for a few % on the shortest sums only) */
    __m512 acc[2 * Z_MAXR];
    DSE_UNROLL
    for (int r = 0; r < MR; r++) {
        acc[2 * r] = c0[r];
        acc[2 * r + 1] = W == 32 ? c1[r] : _mm512_setzero_ps();
    }
    z_finish(g, acc, MR, W, i, j, nr);
}

/* The tiles of MR rows over columns [j0, j1): 32 at a time, then one of 32 (masked) or 16. */
#define Z_TILES(MR)                                                                               \
    Z_FN void z_rows##MR(const dse_sgemm *g, size_t i, size_t j0, size_t j1) {                   \
        size_t j = j0;                                                                            \
        if (g->boff) {                                                                            \
            for (; j + 32 <= j1; j += 32) z_tile_pk(g, MR, 32, Z_OFFS, i, j, 32, NULL);           \
            if (j1 - j > 16) z_tile_pk(g, MR, 32, Z_OFFS, i, j, j1 - j, NULL);                    \
            else if (j1 > j) z_tile_pk(g, MR, 16, Z_OFFS, i, j, j1 - j, NULL);                    \
            return;                                                                               \
        }                                                                                         \
        for (; j + 32 <= j1; j += 32) z_tile_pk(g, MR, 32, Z_ROWS, i, j, 32, NULL);               \
        if (j1 - j > 16) z_tile_pk(g, MR, 32, Z_ROWS, i, j, j1 - j, NULL);                        \
        else if (j1 > j) z_tile_pk(g, MR, 16, Z_ROWS, i, j, j1 - j, NULL);                        \
    }
Z_TILES(1)
Z_TILES(2)
Z_TILES(3)
Z_TILES(4)
Z_TILES(5)
Z_TILES(6)
Z_TILES(7)
Z_TILES(8)
Z_TILES(9)
Z_TILES(10)
Z_TILES(11)
Z_TILES(12)

static void (*const z_rows[Z_MAXR + 1])(const dse_sgemm *, size_t, size_t, size_t) = {
    NULL, z_rows1, z_rows2, z_rows3, z_rows4, z_rows5, z_rows6, z_rows7, z_rows8, z_rows9, z_rows10, z_rows11, z_rows12};

/* The most rows of a block: 12, or 6 where 12 rows of A (sai apart) would put more than 6 of them in
 * one of L1's 64 sets of 64 bytes (K = 1024 floats and its multiples: every row in one set). */
static size_t z_maxr(const dse_sgemm *g) {
    int sets[64] = {0}, most = 0;
    for (size_t r = 0; r < Z_MAXR; r++) {
        const int q = ++sets[(r * g->sai * sizeof(float) / 64) % 64];
        most = q > most ? q : most;
    }
    return most > 6 ? 6 : Z_MAXR;
}

/* Rows [i0, i1) in blocks of at most z_maxr(g), as even as possible (a block of few rows has too few
 * accumulators to hide the FMA latency), each against columns [jc, je); then the fused activation
 * function not applied in the tiles, over the block's outputs still in L1/L2. */
Z_FN void z_blocks(const dse_sgemm *g, size_t i0, size_t i1, size_t jc, size_t je) {
    if (i1 <= i0) return;
    const size_t maxr = z_maxr(g);
    const int act = g->act_fn && !DSE_ACT_FN_INLINE(g->act_fn);
    const size_t rows = i1 - i0, nb = (rows + maxr - 1) / maxr, base = rows / nb, extra = rows % nb;
    size_t i = i0;
    for (size_t blk = 0; blk < nb; blk++) {
        const size_t mr = base + (blk < extra);
        z_rows[mr](g, i, jc, je);
        if (act) dse__avx2_sgemm_act_rows(g, i, mr, jc, je, dse__avx512_act_fn_row);
        i += mr;
    }
}

/* Columns [jc, je) of row-major B into panels of 16 at dst (zeros past je). */
Z_FN void z_pack(const dse_sgemm *g, size_t jc, size_t je, float *dst) {
    for (size_t q = 0; q < je - jc; q += 16) {
        const __mmask16 m = dse__avx512_mask(je - jc - q);
        float *d = dst + q * g->K;
        const float *b = g->B + jc + q;
        for (size_t k = 0; k < g->K; k++, b += g->ldb, d += 16) _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(m, b));
    }
}

/* The packing of columns [jc, je) of B into panels of 16 at dst together with rows [i0, i0 + 6) of
 * C (sgemm.c's sgemm_pack_first): 6 x 32 tiles that store the two panels they read; a last part
 * narrower than 32 columns is copied by z_pack and its columns of these rows computed from B in place. */
Z_FN void z_pack_first(const dse_sgemm *g, size_t i0, size_t jc, size_t je, float *dst) {
    const size_t nf = (je - jc) / 32 * 32;
    for (size_t q = 0; q < nf; q += 32) z_tile_pk(g, 6, 32, Z_ROWS, i0, jc + q, 32, dst + q * g->K);
    if (nf < je - jc) {
        z_pack(g, jc + nf, je, dst + nf * g->K);
        z_rows6(g, i0, jc + nf, je);
    }
    if (g->act_fn && !DSE_ACT_FN_INLINE(g->act_fn)) dse__avx2_sgemm_act_rows(g, i0, 6, jc, je, dse__avx512_act_fn_row);
}

/* dse__avx2_sgemm's driver (dse__sgemm_chunks) with this file's packing tiles and row blocks */
void dse__avx512_sgemm(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1) {
    dse__sgemm_chunks(g, i0, i1, j0, j1, z_pack_first, z_blocks);
}

/* conv.c's O32 chunk (dse_o32_chunk, avx2_f32.h) on 512-bit vectors: tiles of NP (up to 12) pixels x
 * 32 channels (24 accumulators; per k the panel's 2 vectors and each pixel's x broadcast), each sum
 * the same FMA chain over k as the AVX2 tiles of 3 pixels, then the same epilogue (the inline
 * activation function by the AVX2 code, half by half). */
Z_AI void z_o32_tile(const dse_o32_chunk *c, const int NP, size_t p0, float *buf) {
    __m512 a0[Z_MAXR], a1[Z_MAXR];
    DSE_UNROLL
    for (int a = 0; a < NP; a++) {
        float *bp = buf + (p0 + (size_t)a) * 32;
        a0[a] = c->first ? _mm512_setzero_ps() : _mm512_loadu_ps(bp);
        a1[a] = c->first ? _mm512_setzero_ps() : _mm512_loadu_ps(bp + 16);
    }
    const float *xp = c->x + p0, *wp = c->wp;
    for (size_t k = 0; k < c->kn; k++, wp += 32, xp += c->P) {
        const __m512 w0 = _mm512_loadu_ps(wp), w1 = _mm512_loadu_ps(wp + 16);
        DSE_UNROLL
        for (int a = 0; a < NP; a++) {
            const __m512 xb = _mm512_set1_ps(xp[a]);
            a0[a] = _mm512_fmadd_ps(xb, w0, a0[a]);
            a1[a] = _mm512_fmadd_ps(xb, w1, a1[a]);
        }
    }
    DSE_UNROLL
    for (int a = 0; a < NP; a++) {
        __m512 o[2] = {a0[a], a1[a]};
        if (c->last) {
            DSE_UNROLL
            for (int v = 0; v < 2; v++) {
                if (c->bias) o[v] = _mm512_add_ps(o[v], _mm512_loadu_ps(c->bias + 16 * v));
                if (c->act) o[v] = _mm512_min_ps(_mm512_set1_ps(c->hi), _mm512_max_ps(_mm512_set1_ps(c->lo), o[v]));
                if (c->act_fn && DSE_ACT_FN_INLINE(c->act_fn)) o[v] = dse__avx512_act_fn_inline(c->act_fn, o[v]);
            }
        }
        _mm512_storeu_ps(buf + (p0 + (size_t)a) * 32, o[0]);
        _mm512_storeu_ps(buf + (p0 + (size_t)a) * 32 + 16, o[1]);
    }
}
#define Z_O32(NP) \
    Z_FN void z_o32_##NP(const dse_o32_chunk *c, size_t p0, float *buf) { z_o32_tile(c, NP, p0, buf); }
Z_O32(1)
Z_O32(2)
Z_O32(3)
Z_O32(4)
Z_O32(5)
Z_O32(6)
Z_O32(7)
Z_O32(8)
Z_O32(9)
Z_O32(10)
Z_O32(11)
Z_O32(12)
static void (*const z_o32[Z_MAXR + 1])(const dse_o32_chunk *, size_t, float *) = {
    NULL, z_o32_1, z_o32_2, z_o32_3, z_o32_4, z_o32_5, z_o32_6, z_o32_7, z_o32_8, z_o32_9, z_o32_10, z_o32_11, z_o32_12};

/* Pixels [pa, pb) in tiles of at most 12, as even as possible. */
void dse__avx512_o32_chunk(const dse_o32_chunk *c, size_t pa, size_t pb, float *buf) {
    if (pb <= pa) return;
    const size_t n = pb - pa, nb = (n + Z_MAXR - 1) / Z_MAXR, base = n / nb, extra = n % nb;
    size_t p = pa;
    for (size_t b = 0; b < nb; b++) {
        const size_t np = base + (b < extra);
        z_o32[np](c, p, buf);
        p += np;
    }
}

void dse_f32_gemm__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_sgemm_isa isa = {dse__avx512_sgemm, dse__avx2_sgemm_dot, 12, 32, 3, 8};
    dse__gemm_f32_opt_run(m, n, arena, cx, &isa);
}

void dse_f32_matmul__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_sgemm_isa isa = {dse__avx512_sgemm, dse__avx2_sgemm_dot, 12, 32, 3, 8};
    dse__matmul_f32_opt_run(m, n, arena, cx, &isa);
}

#endif
