/* sgemm.c: register-blocked float32 matrix products with AVX2 + FMA, the core of the AVX2
 * Conv, Gemm and MatMul kernels (declared in src/avx2_f32.h, which states the arithmetic).
 *
 * dse__avx2_sgemm: B(k,j) with j contiguous (a row-major [K][N] matrix, or im2col panels of 16
 * columns). A tile of up to 6 rows x 16 columns of C is held in 12 ymm accumulators; per k,
 * two vectors of B are loaded and each A(i,k) is broadcast (A is read where it lies: weights
 * in their stored layout, any strides). Each C element is one sequential FMA chain over k
 * (k ascending), then the epilogue. Tiles narrower than 16 columns read whole vectors of B
 * where they stay inside B's K x ldb region (the extra lanes are never stored) and masked
 * ones only on its last rows; they store through a small buffer (vmaskmovps is microcoded on
 * AMD Zen); tails of at most 8 columns use a 6x8 tile.
 * Rows outer, column tiles inner: the 6 x K block of A stays in L1/L2 while B streams.
 *
 * dse__avx2_sgemm_dot: B given as rows of k (Gemm transB, matrix-vector products). A tile of
 * 3 rows x 4 columns (12 accumulators of 8 partial sums; 1 x 8 for single rows) takes 8
 * consecutive k per step; lane l sums k = l mod 8 sequentially, lanes are then added
 * pairwise ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)). */
#include "avx2_f32.h"

#if DSE_AVX2_F32



/* The epilogue of one C row segment (8 lanes, `nl` of them real) at row i, column j, but the fused
 * activation function (sgemm_tile: HardSwish, DSE_ACT_FN_INLINE; dse__avx2_sgemm_act_rows: SiLU). */
DSE_AI __m256 sgemm_epi(const dse_sgemm *g, __m256 v, size_t i, size_t j, size_t nl) {
    if (g->use_alpha) v = _mm256_mul_ps(v, _mm256_set1_ps(g->alpha));
    if (g->bias_m) v = _mm256_add_ps(v, _mm256_set1_ps(g->bias_m[i]));
    if (g->cmode) {
        const float *c = g->Cm + i * g->csi + j * g->csj;
        __m256 cv = !g->csj ? _mm256_set1_ps(*c) : nl >= 8 ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, dse__avx2_mask(nl));
        if (g->cmode == 2) cv = _mm256_mul_ps(cv, _mm256_set1_ps(g->beta));
        v = _mm256_add_ps(v, cv);
    }
    if (g->act) v = _mm256_min_ps(_mm256_set1_ps(g->hi), _mm256_max_ps(_mm256_set1_ps(g->lo), v));
    return v;
}

/* Stores one finished C row segment. */
DSE_AI void sgemm_store(const dse_sgemm *g, __m256 v, size_t i, size_t j, size_t nl) {
    float *c = g->C + i * g->ldc + j;
    if (nl >= 8) { _mm256_storeu_ps(c, v); return; }
    float t[8];   /* not vmaskmovps: microcoded, ~10x slower than this on AMD Zen */
    _mm256_storeu_ps(t, v);
    for (size_t l = 0; l < nl; l++) c[l] = t[l];
}

/* With a column map (cw != 0): column j of the product is column (j % cw) of output row
 * j / cw, stored only when j % cw < cv, at C + i*ldc + (j / cw) * cv + j % cw. The segment
 * starts at row jr, column jo. */
DSE_AI void sgemm_store_map(const dse_sgemm *g, __m256 v, size_t i, size_t jr, size_t jo, size_t nl) {
    float *c = g->C + i * g->ldc;
    if (jo + nl <= g->cv && nl == 8) { _mm256_storeu_ps(c + jr * g->cv + jo, v); return; }
    float t[8];
    _mm256_storeu_ps(t, v);
    for (size_t l = 0; l < nl; l++) {
        size_t r = jr, o = jo + l;
        while (o >= g->cw) o -= g->cw, r++;
        if (o < g->cv) c[r * g->cv + o] = t[l];
    }
}

void dse__avx2_act_fn_row(int fn, float *y, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v[4];
        DSE_UNROLL
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(y + i + 8 * (size_t)k);
        dse__avx2_act_fn_n(fn, 4, v);
        DSE_UNROLL
        for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + i + 8 * (size_t)k, v[k]);
    }
    if (i == n) return;
    /* the last < 32 floats as 1 to 4 vectors at once: whole vectors, the last one by a masked load
     * (its lanes past n are 0) and stored through a buffer (no masked store: slow on AMD Zen) */
    const size_t c = n - i, nv = (c + 7) / 8, last = c - 8 * (nv - 1);
    __m256 v[4];
    for (size_t k = 0; k < 4; k++)
        v[k] = k + 1 < nv ? _mm256_loadu_ps(y + i + 8 * k)
             : k + 1 == nv ? _mm256_maskload_ps(y + i + 8 * k, dse__avx2_mask(last)) : _mm256_setzero_ps();
    switch (nv) {
    case 1: dse__avx2_act_fn_n(fn, 1, v); break;
    case 2: dse__avx2_act_fn_n(fn, 2, v); break;
    case 3: dse__avx2_act_fn_n(fn, 3, v); break;
    default: dse__avx2_act_fn_n(fn, 4, v); break;
    }
    for (size_t k = 0; k + 1 < nv; k++) _mm256_storeu_ps(y + i + 8 * k, v[k]);
    float t[8];
    _mm256_storeu_ps(t, v[nv - 1]);
    for (size_t k = 0; k < last; k++) y[i + 8 * (nv - 1) + k] = t[k];
}

enum { SG_ROWS, SG_MASKED, SG_OFFS };
#ifndef SG_PF_PK
#define SG_PF_PK 32   /* sgemm_pack_first's tiles (B from L3 or memory) */
#endif
#define SG_PF 6   /* SG_OFFS: prefetch the B row this many k ahead (its rows jump: no hardware prefetch) */

/* One MR x W tile (W 16 or 8) at row i, column j with nr <= W real columns. B(k, j):
 *   SG_ROWS   b[k*ldb + j] (or im2col panels: ldb 16 from the panel's start), full vectors
 *             (a full tile, or panels whose padding columns are never stored);
 *   SG_MASKED the same, narrower than W: whole vectors while they stay inside B's K x ldb
 *             region (extra lanes never stored), masked loads (slow) on the last rows only;
 *   SG_OFFS   B[boff[k] + j], full vectors (the caller's buffer has the slack);
 * pk (SG_ROWS, W = 16, a full tile; else NULL): the 16 columns of B read for each k are also
 *   stored at pk + 16 k, the panel that the packed row blocks below then read (the copy of
 *   B rides on the first row block's loads instead of a pass of its own). */
DSE_AI void sgemm_tile_pk(const dse_sgemm *g, const int MR, const int W, const int mode, size_t i, size_t j, size_t nr,
                          float *pk) {
    const size_t K = g->K, sai = g->sai, sak = g->sak;
    const float *a = g->A + i * sai, *b;
    const size_t *boff = g->boff;
    size_t ldb;
    if (mode == SG_OFFS) { b = g->B + j; ldb = 0; }
    else if (g->bpanel) { b = g->B + (j / 16) * g->bpanel + j % 16; ldb = 16; }
    else { b = g->B + j; ldb = g->ldb; }
    __m256 c0[12], c1[6];   /* (12 rows: W = 8 only) */
    DSE_UNROLL
    for (int r = 0; r < MR; r++) {
        c0[r] = _mm256_setzero_ps();
        if (W == 16) c1[r] = _mm256_setzero_ps();
    }
    size_t kfull = K;
    if (mode == SG_MASKED) kfull = K * ldb >= j + W ? (K * ldb - j - W) / ldb + 1 : 0;
    const __m256i m0 = dse__avx2_mask(nr), m1 = dse__avx2_mask(nr > 8 ? nr - 8 : 0);
    for (size_t k = 0; k < K; k++) {
        __m256 b0, b1 = _mm256_setzero_ps();
        const float *bk = mode == SG_OFFS ? b + boff[k] : b;
        if (pk) {   /* B from memory, once: further ahead */
            if (k + SG_PF_PK < K) _mm_prefetch((const char *)(b + SG_PF_PK * ldb), _MM_HINT_T0);
        } else if (mode != SG_OFFS && ldb != 16 && k + SG_PF < K) _mm_prefetch((const char *)(b + SG_PF * ldb), _MM_HINT_T0);
        if (mode == SG_OFFS && k + SG_PF < K) {
            const char *pf = (const char *)(b + boff[k + SG_PF]);
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 4 * W - 4, _MM_HINT_T0);   /* the row's last float: maybe the next line */
        }
        if (mode == SG_MASKED && k >= kfull) {
            b0 = _mm256_maskload_ps(bk, m0);
            if (W == 16) b1 = _mm256_maskload_ps(bk + 8, m1);
        } else {
            b0 = _mm256_loadu_ps(bk);
            if (W == 16) b1 = _mm256_loadu_ps(bk + 8);
        }
        b += ldb;
        if (pk) {
            _mm256_storeu_ps(pk + 16 * k, b0);
            _mm256_storeu_ps(pk + 16 * k + 8, b1);
        }
        DSE_UNROLL
        for (int r = 0; r < MR; r++) {
            const __m256 av = _mm256_broadcast_ss(a + r * sai);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            if (W == 16) c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
        a += sak;
    }
    /* the epilogue of the tile, o[r * (W / 8) + h]: row r, columns 8h .. 8h + 7 (of a W = 16 tile
     * with nr <= 8 the second half is never stored); then the fused activation function of all
     * of it at once (SiLU's chains interleave) */
    const int NV = W / 8;
    __m256 o[12];
    DSE_UNROLL
    for (int r = 0; r < MR; r++) {
        o[r * NV] = sgemm_epi(g, c0[r], i + r, j, nr > 8 ? 8 : nr);
        if (W == 16) o[r * NV + 1] = nr > 8 ? sgemm_epi(g, c1[r], i + r, j + 8, nr - 8) : c1[r];
    }
    if (g->act_fn && DSE_ACT_FN_INLINE(g->act_fn)) {   /* (the others: dse__avx2_sgemm_act_rows) */
        DSE_UNROLL
        for (int q = 0; q < MR * NV; q++) o[q] = dse__avx2_act_fn_inline(g->act_fn, o[q]);
    }
    if (g->cw) {
        size_t jr = j / g->cw, jo = j % g->cw, jr1 = jr, jo1 = jo + 8;
        while (jo1 >= g->cw) jo1 -= g->cw, jr1++;
        DSE_UNROLL
        for (int r = 0; r < MR; r++) {
            sgemm_store_map(g, o[r * NV], i + r, jr, jo, nr > 8 ? 8 : nr);
            if (W == 16 && nr > 8) sgemm_store_map(g, o[r * NV + 1], i + r, jr1, jo1, nr - 8);
        }
        return;
    }
    DSE_UNROLL
    for (int r = 0; r < MR; r++) {
        sgemm_store(g, o[r * NV], i + r, j, nr > 8 ? 8 : nr);
        if (W == 16 && nr > 8) sgemm_store(g, o[r * NV + 1], i + r, j + 8, nr - 8);
    }
}

DSE_AI void sgemm_tile(const dse_sgemm *g, const int MR, const int W, const int mode, size_t i, size_t j, size_t nr) {
    sgemm_tile_pk(g, MR, W, mode, i, j, nr, NULL);
}

#define SG_TILES(MR)                                                                              \
    static DSE_TARGET_AVX2 void sgemm_rows##MR(const dse_sgemm *g, size_t i, size_t j0, size_t j1) { \
        size_t j = j0;                                                                            \
        if (g->boff) {                                                                            \
            for (; j + 16 <= j1; j += 16) sgemm_tile(g, MR, 16, SG_OFFS, i, j, 16);               \
            if (j1 - j > 8) sgemm_tile(g, MR, 16, SG_OFFS, i, j, j1 - j);                         \
            else if (j1 > j) sgemm_tile(g, MR, 8, SG_OFFS, i, j, j1 - j);                         \
            return;                                                                               \
        }                                                                                         \
        const int full = g->bpanel != 0;   /* packed panels: whole vectors always */              \
        for (; j + 16 <= j1; j += 16) sgemm_tile(g, MR, 16, SG_ROWS, i, j, 16);                   \
        if (j1 - j > 8) {                                                                         \
            if (full) sgemm_tile(g, MR, 16, SG_ROWS, i, j, j1 - j);                               \
            else sgemm_tile(g, MR, 16, SG_MASKED, i, j, j1 - j);                                  \
        } else if (j1 > j) {                                                                      \
            if (full || j1 - j == 8) sgemm_tile(g, MR, 8, SG_ROWS, i, j, j1 - j);                 \
            else sgemm_tile(g, MR, 8, SG_MASKED, i, j, j1 - j);                                   \
        }                                                                                         \
    }
SG_TILES(1)
SG_TILES(2)
SG_TILES(3)
SG_TILES(4)
SG_TILES(5)
SG_TILES(6)

/* Rows in blocks of at most 6, as even as possible (16 rows: 6, 5, 5; not 6, 6, 4): a block of
 * few rows has too few accumulators to hide the FMA latency. Columns in chunks whose K x chunk
 * part of B stays in L2 (128 KiB) while every row block streams it. */
/* Columns [jc, je) of row-major B into panels of 16 (zero past je). */
static DSE_TARGET_AVX2 void sgemm_pack(const dse_sgemm *g, size_t jc, size_t je, float *dst) {
    const size_t K = g->K, n = je - jc;
    for (size_t q = 0; q < n; q += 16) {
        const size_t w = n - q < 16 ? n - q : 16;
        float *d = dst + q * K;   /* panel q / 16: K rows of 16 */
        const float *b = g->B + jc + q;
        if (w == 16) {
            for (size_t k = 0; k < K; k++, b += g->ldb, d += 16) {
                _mm256_storeu_ps(d, _mm256_loadu_ps(b));
                _mm256_storeu_ps(d + 8, _mm256_loadu_ps(b + 8));
            }
        } else {
            for (size_t k = 0; k < K; k++, b += g->ldb, d += 16) {
                size_t l = 0;
                for (; l < w; l++) d[l] = b[l];
                for (; l < 16; l++) d[l] = 0.0f;
            }
        }
    }
}

/* A fused activation function that is not applied in the tiles (DSE_ACT_FN_INLINE: SiLU) over the
 * outputs of rows [i, i + mr), product columns [jc, je), just stored by their tiles and still in
 * L1/L2: each row's contiguous stretches (with a column map, the stored part of each output row),
 * 4 vectors at a time (dse__avx2_act_fn_row). In the tiles, beside 12 accumulators, the sigmoid
 * spilled: it cost more than the separate Sigmoid and Mul nodes; through a buffer per tile, about
 * 10 % more than the Sigmoid kernel alone. */
DSE_NOINLINE void dse__avx2_sgemm_act_rows(const dse_sgemm *g, size_t i, size_t mr, size_t jc, size_t je, dse_act_row_fn row) {
    for (size_t r = i; r < i + mr; r++) {
        float *c = g->C + r * g->ldc;
        if (!g->cw) {
            row(g->act_fn, c + jc, je - jc);
            continue;
        }
        for (size_t orow = jc / g->cw; orow * g->cw < je; orow++) {   /* output rows of the column map */
            const size_t o0 = orow == jc / g->cw ? jc % g->cw : 0;
            size_t o1 = je - orow * g->cw < g->cw ? je - orow * g->cw : g->cw;
            if (o1 > g->cv) o1 = g->cv;
            if (o1 > o0) row(g->act_fn, c + orow * g->cv + o0, o1 - o0);
        }
    }
}

/* 12 rows x at most 8 columns (sgemm_blocks' narrow tails) */
static DSE_TARGET_AVX2 void sgemm_tail12(const dse_sgemm *g, size_t i, size_t j, size_t nr) {
    if (g->boff) sgemm_tile(g, 12, 8, SG_OFFS, i, j, nr);
    else if (g->bpanel || nr == 8) sgemm_tile(g, 12, 8, SG_ROWS, i, j, nr);
    else sgemm_tile(g, 12, 8, SG_MASKED, i, j, nr);
}

/* Rows [i0, i1) in blocks of at most 6, as even as possible, each against columns [jc, je); with
 * act, the fused activation function not applied in the tiles after each block. */
static DSE_TARGET_AVX2 void sgemm_row_blocks(const dse_sgemm *g, size_t i0, size_t i1, size_t jc, size_t je, int act) {
    if (i1 <= i0) return;
    const size_t rows = i1 - i0, nb = (rows + 5) / 6, base = rows / nb, extra = rows % nb;
    size_t i = i0;
    for (size_t blk = 0; blk < nb; blk++) {
        const size_t mr = base + (blk < extra);
        switch (mr) {
        case 6: sgemm_rows6(g, i, jc, je); break;
        case 5: sgemm_rows5(g, i, jc, je); break;
        case 4: sgemm_rows4(g, i, jc, je); break;
        case 3: sgemm_rows3(g, i, jc, je); break;
        case 2: sgemm_rows2(g, i, jc, je); break;
        default: sgemm_rows1(g, i, jc, je); break;
        }
        if (act) dse__avx2_sgemm_act_rows(g, i, mr, jc, je, dse__avx2_act_fn_row);
        i += mr;
    }
}

/* A tail of at most 8 columns (a 7x7 image: 49 = 3 x 16 + 1) with 12 rows or more: after the full
 * tiles of every row block, tiles of 12 rows x 8 columns (12 FMA chains; a 6 x 8 tile has 6 in
 * flight, fewer than the FMA latency x throughput of AMD Zen 3 (4 x 2), and took 2/3 of a 6 x 16
 * tile's time for 1/16 of its work), then the fused activation function over the whole chunk. */
static DSE_TARGET_AVX2 void sgemm_blocks(const dse_sgemm *g, size_t i0, size_t i1, size_t jc, size_t je) {
    const int act = g->act_fn && !DSE_ACT_FN_INLINE(g->act_fn);
    const size_t tail = (je - jc) % 16;
    /* (not when the 12 rows of A, sai apart, would share L1 sets: more than 6 in one of the 64 sets of
     * 64 bytes, e.g. K = 1024 or 2048 floats, resnet50's 1x1 convs of 7x7 and 14x14 images: 5-26 %
     * slower there) */
    int sets[64] = {0}, most = 0;
    for (size_t r = 0; r < 12; r++) {
        const int q = ++sets[(r * g->sai * sizeof(float) / 64) % 64];
        most = q > most ? q : most;
    }
    if (!tail || tail > 8 || i1 - i0 < 12 || most > 6) {
        sgemm_row_blocks(g, i0, i1, jc, je, act);
        return;
    }
    const size_t jf = je - tail;
    sgemm_row_blocks(g, i0, i1, jc, jf, 0);
    size_t i = i0;
    for (; i + 12 <= i1; i += 12) sgemm_tail12(g, i, jf, tail);
    sgemm_row_blocks(g, i, i1, jf, je, 0);
    if (act) dse__avx2_sgemm_act_rows(g, i0, i1 - i0, jc, je, dse__avx2_act_fn_row);
}

/* The packing of columns [jc, je) of row-major B into panels of 16 at dst together with rows
 * [i0, i0 + 6) of C: 6 x 16 tiles that read B where it lies (prefetched SG_PF_PK rows ahead) and store
 * each panel as they go; the last panel narrower than 16 columns is copied by sgemm_pack and its
 * columns of these rows computed from B in place. One pass over B instead of a copy then the
 * tiles (the copy, from L3 or memory, was ~10 % of MiniLM's 64-row products: 64 x 384 x 1536 took
 * 0.85 ms, 0.77 ms from B already packed, as onnxruntime's prepacked weights). */
static DSE_TARGET_AVX2 void sgemm_pack_first(const dse_sgemm *g, size_t i0, size_t jc, size_t je, float *dst) {
    const size_t nf = (je - jc) / 16 * 16;
    for (size_t q = 0; q < nf; q += 16) sgemm_tile_pk(g, 6, 16, SG_ROWS, i0, jc + q, 16, dst + q * g->K);
    if (nf < je - jc) {
        sgemm_pack(g, jc + nf, je, dst + nf * g->K);
        sgemm_rows6(g, i0, jc + nf, je);
    }
    if (g->act_fn && !DSE_ACT_FN_INLINE(g->act_fn)) dse__avx2_sgemm_act_rows(g, i0, 6, jc, je, dse__avx2_act_fn_row);
}

/* Rows in blocks of at most 6, as even as possible (16 rows: 6, 5, 5; not 6, 6, 4): a block of
 * few rows has too few accumulators to hide the FMA latency. Columns in chunks of at most
 * dse__sgemm_pack_cols(K) (as many as needed, of equal whole panels), whose part of B stays in
 * L2 (256 KiB) while every row block streams it; with g->pack and at least 48 rows, the chunk is
 * copied into panels of 16 by its first 6 rows' tiles (sgemm_pack_first), which the other rows'
 * tiles then read. */
void dse__sgemm_chunks(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1, dse_sgemm_pack_first_fn pack_first,
                       dse_sgemm_fn blocks) {
    if (i1 <= i0 || j1 <= j0) return;
    /* per-tap offsets (conv bands): the band is built to stay in L2 whole, no chunks (the
     * weights, A, are then read once) */
    size_t jb = g->boff ? j1 - j0 : dse__sgemm_pack_cols(g->K);
    if (!g->boff && j1 - j0 > jb) {   /* chunks of equal whole panels (384 = 128 x 3, not 160 + 160 + 64) */
        const size_t nch = (j1 - j0 + jb - 1) / jb, panels = (j1 - j0 + 15) / 16;
        jb = 16 * ((panels + nch - 1) / nch);
    }
    for (size_t jc = j0; jc < j1; jc += jb) {
        const size_t je = j1 - jc < jb ? j1 : jc + jb;
        if (g->pack && !g->bpanel && !g->boff && g->K && i1 - i0 >= 48) {   /* (fewer rows: the copy does not pay) */
            dse_sgemm p = *g;
            pack_first(g, i0, jc, je, g->pack);
            p.B = g->pack; p.bpanel = 16 * g->K; p.ldb = 16; p.pack = NULL;
            p.C = g->C + jc;
            if (p.cmode) p.Cm = g->Cm + jc * g->csj;
            blocks(&p, i0 + 6, i1, 0, je - jc);
            continue;
        }
        blocks(g, i0, i1, jc, je);
    }
}

void dse__avx2_sgemm(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1) {
    dse__sgemm_chunks(g, i0, i1, j0, j1, sgemm_pack_first, sgemm_blocks);
}

/* -- B transposed: dot products along k ---------------------------------------------------- */

DSE_AI float sgemm_hsum(__m256 v) {   /* ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)) */
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));   /* l0+l4 .. l3+l7 */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                          /* (0)+(2), (1)+(3) */
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

DSE_AI void sgemm_dot_store(const dse_sgemm *g, float v, size_t i, size_t j) {
    if (g->use_alpha) v = v * g->alpha;
    if (g->bias_m) v = v + g->bias_m[i];
    if (g->cmode) {
        const float c = g->Cm[i * g->csi + j * g->csj];
        v = v + (g->cmode == 2 ? c * g->beta : c);
    }
    if (g->act) { v = v < g->lo ? g->lo : v; v = v > g->hi ? g->hi : v; }
    if (g->act_fn) v = dse__avx2_act_fn1(g->act_fn, v);
    g->C[i * g->ldc + j] = v;
}

DSE_AI void sgemm_dot_tile(const dse_sgemm *g, const int MR, const int NR, size_t i, size_t j) {
    const size_t K = g->K, K8 = K & ~(size_t)7;
    const float *a[3], *b[8];
    DSE_UNROLL
    for (int r = 0; r < MR; r++) a[r] = g->A + (i + r) * g->sai;
    DSE_UNROLL
    for (int c = 0; c < NR; c++) b[c] = g->B + (j + c) * g->ldb;
    __m256 acc[3][8];
    DSE_UNROLL
    for (int r = 0; r < MR; r++)
        DSE_UNROLL
        for (int c = 0; c < NR; c++) acc[r][c] = _mm256_setzero_ps();
    for (size_t k = 0; k < K8; k += 8) {
        __m256 av[3];
        DSE_UNROLL
        for (int r = 0; r < MR; r++) av[r] = _mm256_loadu_ps(a[r] + k);
        DSE_UNROLL
        for (int c = 0; c < NR; c++) {
            const __m256 bv = _mm256_loadu_ps(b[c] + k);
            DSE_UNROLL
            for (int r = 0; r < MR; r++) acc[r][c] = _mm256_fmadd_ps(av[r], bv, acc[r][c]);
        }
    }
    if (K > K8) {
        const __m256i m = dse__avx2_mask(K - K8);
        __m256 av[3];
        DSE_UNROLL
        for (int r = 0; r < MR; r++) av[r] = _mm256_maskload_ps(a[r] + K8, m);
        DSE_UNROLL
        for (int c = 0; c < NR; c++) {
            const __m256 bv = _mm256_maskload_ps(b[c] + K8, m);
            DSE_UNROLL
            for (int r = 0; r < MR; r++) acc[r][c] = _mm256_fmadd_ps(av[r], bv, acc[r][c]);
        }
    }
    DSE_UNROLL
    for (int r = 0; r < MR; r++)
        DSE_UNROLL
        for (int c = 0; c < NR; c++) sgemm_dot_store(g, sgemm_hsum(acc[r][c]), i + r, j + c);
}

static DSE_TARGET_AVX2 void sgemm_dot34(const dse_sgemm *g, size_t i, size_t j) { sgemm_dot_tile(g, 3, 4, i, j); }
static DSE_TARGET_AVX2 void sgemm_dot31(const dse_sgemm *g, size_t i, size_t j) { sgemm_dot_tile(g, 3, 1, i, j); }
static DSE_TARGET_AVX2 void sgemm_dot18(const dse_sgemm *g, size_t i, size_t j) { sgemm_dot_tile(g, 1, 8, i, j); }
static DSE_TARGET_AVX2 void sgemm_dot11(const dse_sgemm *g, size_t i, size_t j) { sgemm_dot_tile(g, 1, 1, i, j); }

/* Columns in blocks whose rows of B (K floats each) take at most 128 KiB, every row of A against
 * one block before the next: B is read from memory once, each block then from L2 (rows outer
 * read all of B once per 3 rows: a Gemm with a large transposed weight and 20 rows streamed it
 * 7 times). Every element is the same tile arithmetic whatever the block. */
void dse__avx2_sgemm_dot(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1) {
    size_t nb = g->K ? 32768 / g->K / 8 * 8 : 256;
    if (nb < 8) nb = 8;
    for (size_t jb = j0; jb < j1; jb += nb) {
        const size_t je = j1 - jb < nb ? j1 : jb + nb;
        size_t i = i0;
        for (; i + 3 <= i1; i += 3) {
            size_t j = jb;
            for (; j + 4 <= je; j += 4) sgemm_dot34(g, i, j);
            for (; j < je; j++) sgemm_dot31(g, i, j);
        }
        for (; i < i1; i++) {
            size_t j = jb;
            for (; j + 8 <= je; j += 8) sgemm_dot18(g, i, j);
            for (; j < je; j++) sgemm_dot11(g, i, j);
        }
    }
}

#endif
