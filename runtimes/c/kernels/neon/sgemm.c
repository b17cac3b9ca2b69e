/* sgemm.c (NEON): register-blocked float32 matrix products on arm64 Advanced SIMD, the core of
 * the NEON float Conv, Gemm and MatMul kernels (declared in src/neon_f32.h, which states the
 * arithmetic and the tolerance).
 *
 * dse__neon_sgemm: B(k,j) with j contiguous (a row-major [K][N] matrix, x's channel rows of a
 * 1x1 Conv, or an im2col tile). A tile of up to 8 rows x 8 columns of C is held in 16 q-register
 * accumulators; per k, two vectors of B are loaded and each A(i,k) is taken from a vector of 4
 * consecutive k of row i (`fmla v.4s, v.4s, v.s[lane]`: A is read where it lies, weights in
 * their stored layout; 8 loads of A per 4 k), so a step of 4 k costs 8 + 8 loads for 64 fused
 * multiply-adds. Rows with a k stride (Gemm transA) and the last K % 4 k take A one element at
 * a time. Each C element is one sequential FMA chain over k (k ascending), then the epilogue.
 * Rows outer, column tiles inner within a chunk of dse__sgemm_pack_cols(K) columns (the chunk
 * of B stays in L2 while every row block streams it); with the planned packing buffer and at
 * least NEON_SG_PACK_ROWS rows, the chunk is first copied into panels of 8 columns. B given in
 * panels of 16 columns (bpanel: a constant in layout 9) is read in place, 8 columns per tile.
 *
 * dse__neon_sgemm_dot: B given as rows of k (Gemm transB, MatMul with one column). Tiles of up
 * to 2 rows x 4 columns, each element 8 partial sums in two vectors (16 accumulators), 8
 * consecutive k per step; the last K % 8 k go through zero-padded copies (one more step: lanes
 * past the end add 0 x 0); the partial sums are added ((l0 + l4) + (l2 + l6)) + ((l1 + l5) +
 * (l3 + l7)), then the epilogue: the AVX2 dot-product tile's arithmetic exactly
 * (kernels/avx2/sgemm.c), so both give the same bytes. */
#include "neon_f32.h"

#if DSE_NEON_F32

#define NEON_SG_PACK_ROWS 32   /* fewer rows: the copy of B does not pay */

/* The epilogue of one C row segment (4 lanes, `nl` of them real) at row i, column j: REF's
 * operations in REF's order (kernels/ref/gemm.c, conv.c). */
DSE_NEON_AI float32x4_t neon_sg_epi(const dse_sgemm *g, float32x4_t v, size_t i, size_t j, size_t nl) {
    if (g->use_alpha) v = vmulq_n_f32(v, g->alpha);
    if (g->bias_m) v = vaddq_f32(v, vdupq_n_f32(g->bias_m[i]));
    if (g->cmode) {
        const float *c = g->Cm + i * g->csi + j * g->csj;
        float32x4_t cv;
        if (!g->csj) {
            cv = vdupq_n_f32(*c);
        } else if (nl >= 4) {
            cv = vld1q_f32(c);
        } else {
            float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (size_t l = 0; l < nl; l++) t[l] = c[l];
            cv = vld1q_f32(t);
        }
        if (g->cmode == 2) cv = vmulq_n_f32(cv, g->beta);
        v = vaddq_f32(v, cv);
    }
    if (g->act) v = dse__neon_clamp(v, vdupq_n_f32(g->lo), vdupq_n_f32(g->hi));
    if (g->act_fn && DSE_ACT_FN_INLINE(g->act_fn)) v = dse__neon_act_fn_inline(g->act_fn, v);   /* (SiLU: neon_sg_flush) */
    return v;
}

DSE_NEON_AI void neon_sg_store(const dse_sgemm *g, float32x4_t v, size_t i, size_t j, size_t nl) {
    float *c = g->C + i * g->ldc + j;
    if (nl >= 4) { vst1q_f32(c, v); return; }
    float t[4];
    vst1q_f32(t, v);
    for (size_t l = 0; l < nl; l++) c[l] = t[l];
}

void dse__neon_act_fn_row(int fn, float *y, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t v[4];
        for (int k = 0; k < 4; k++) v[k] = vld1q_f32(y + i + 4 * (size_t)k);
        dse__neon_act_fn_n(fn, 4, v);
        for (int k = 0; k < 4; k++) vst1q_f32(y + i + 4 * (size_t)k, v[k]);
    }
    for (; i < n; i += 4) {   /* the last < 16 floats through a buffer */
        float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const size_t c = n - i < 4 ? n - i : 4;
        for (size_t k = 0; k < c; k++) t[k] = y[i + k];
        vst1q_f32(t, dse__neon_act_fn(fn, vld1q_f32(t)));
        for (size_t k = 0; k < c; k++) y[i + k] = t[k];
    }
}

/* The epilogue and stores of an mr x nr block of sums (acc: rows of 8 floats) at (i, j): one
 * copy of the epilogue code for every tile shape (library size). SiLU goes over the whole block at
 * once after the epilogue (4 vectors at a time); HardSwish in it (DSE_ACT_FN_INLINE). */
static DSE_NOINLINE void neon_sg_flush(const dse_sgemm *g, float *acc, size_t mr, size_t i, size_t j, size_t nr) {
    if (g->act_fn && !DSE_ACT_FN_INLINE(g->act_fn)) {
        for (size_t r = 0; r < mr; r++) {
            vst1q_f32(acc + 8 * r, neon_sg_epi(g, vld1q_f32(acc + 8 * r), i + r, j, nr > 4 ? 4 : nr));
            if (nr > 4) vst1q_f32(acc + 8 * r + 4, neon_sg_epi(g, vld1q_f32(acc + 8 * r + 4), i + r, j + 4, nr - 4));
        }
        dse__neon_act_fn_row(g->act_fn, acc, 8 * mr);
        for (size_t r = 0; r < mr; r++) {
            neon_sg_store(g, vld1q_f32(acc + 8 * r), i + r, j, nr > 4 ? 4 : nr);
            if (nr > 4) neon_sg_store(g, vld1q_f32(acc + 8 * r + 4), i + r, j + 4, nr - 4);
        }
        return;
    }
    for (size_t r = 0; r < mr; r++) {
        neon_sg_store(g, neon_sg_epi(g, vld1q_f32(acc + 8 * r), i + r, j, nr > 4 ? 4 : nr), i + r, j, nr > 4 ? 4 : nr);
        if (nr > 4) neon_sg_store(g, neon_sg_epi(g, vld1q_f32(acc + 8 * r + 4), i + r, j + 4, nr - 4), i + r, j + 4, nr - 4);
    }
}

/* One k of the tile with lane L of each row's A vector: c += b * a[r][L] */
#define NEON_SG_STEP(L)                                                                           \
    do {                                                                                          \
        const float *bk_ = b + (k + (L)) * bs;                                                    \
        const float32x4_t b0_ = vld1q_f32(bk_), b1_ = vld1q_f32(bk_ + 4);                          \
        DSE_NEON_UNROLL                                                                           \
        for (int r = 0; r < MR; r++) {                                                            \
            c0[r] = vfmaq_laneq_f32(c0[r], b0_, av[r], L);                                        \
            c1[r] = vfmaq_laneq_f32(c1[r], b1_, av[r], L);                                        \
        }                                                                                         \
    } while (0)

/* One MR x 8 tile at row i, column j with nr <= 8 real columns; B(k, j + l) = b[k*bs + l]. The
 * first kfull k read whole 8-float rows of b (inside B), the others a zero-padded copy of the
 * nr real floats. */
DSE_NEON_AI void neon_sg_tile(const dse_sgemm *g, const int MR, size_t i, size_t j, size_t nr, const float *b, size_t bs,
                              size_t kfull) {
    const size_t K = g->K, sai = g->sai, sak = g->sak;
    const float *a = g->A + i * sai;
    float32x4_t c0[8], c1[8];
    DSE_NEON_UNROLL
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = vdupq_n_f32(0.0f);
    size_t k = 0;
    const size_t k4 = sak == 1 ? (kfull < K ? kfull : K) & ~(size_t)3 : 0;
    for (; k < k4; k += 4) {
        float32x4_t av[8];
        DSE_NEON_UNROLL
        for (int r = 0; r < MR; r++) av[r] = vld1q_f32(a + r * sai + k);
        NEON_SG_STEP(0);
        NEON_SG_STEP(1);
        NEON_SG_STEP(2);
        NEON_SG_STEP(3);
    }
    for (; k < K; k++) {
        const float *bk = b + k * bs;
        float32x4_t b0, b1;
        if (k < kfull) {
            b0 = vld1q_f32(bk);
            b1 = vld1q_f32(bk + 4);
        } else {
            float t[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (size_t l = 0; l < nr; l++) t[l] = bk[l];
            b0 = vld1q_f32(t);
            b1 = vld1q_f32(t + 4);
        }
        DSE_NEON_UNROLL
        for (int r = 0; r < MR; r++) {
            const float ak = a[r * sai + k * sak];
            c0[r] = vfmaq_n_f32(c0[r], b0, ak);
            c1[r] = vfmaq_n_f32(c1[r], b1, ak);
        }
    }
    float acc[64];
    DSE_NEON_UNROLL
    for (int r = 0; r < MR; r++) {
        vst1q_f32(acc + 8 * r, c0[r]);
        vst1q_f32(acc + 8 * r + 4, c1[r]);
    }
    neon_sg_flush(g, acc, (size_t)MR, i, j, nr);
}
#undef NEON_SG_STEP

/* Columns [j0, j1) of rows [i, i + MR): B's column j at B + (panel 1 ? (j/8)*8*K : panel 2 ?
 * (j/16)*bpanel + j%16 : j), k stride bs; `bend` (row-major B) bounds the whole-row reads, NULL
 * when B is packed (always whole). */
#define NEON_SG_ROWS(MR)                                                                          \
    static void neon_sg_rows##MR(const dse_sgemm *g, size_t i, size_t j0, size_t j1, const float *B, size_t bs, \
                                 int panel, const float *bend) {                                  \
        for (size_t j = j0; j < j1; j += 8) {                                                     \
            const size_t nr = j1 - j < 8 ? j1 - j : 8;                                            \
            const float *b = panel == 2 ? B + j / 16 * g->bpanel + j % 16 : panel ? B + j * g->K : B + j; \
            size_t kfull = g->K;                                                                  \
            if (!panel && nr < 8) { /* the k with b + k*bs + 8 <= bend */                          \
                const size_t left = bend > b ? (size_t)(bend - b) : 0;                            \
                kfull = left >= 8 ? (left - 8) / bs + 1 : 0;                                      \
            }                                                                                     \
            neon_sg_tile(g, MR, i, j, nr, b, bs, kfull);                                          \
        }                                                                                         \
    }
NEON_SG_ROWS(1)
NEON_SG_ROWS(2)
NEON_SG_ROWS(3)
NEON_SG_ROWS(4)
NEON_SG_ROWS(5)
NEON_SG_ROWS(6)
NEON_SG_ROWS(7)
NEON_SG_ROWS(8)
#undef NEON_SG_ROWS

/* Rows in blocks of at most 8, as even as possible (10 rows: 5, 5; not 8, 2): a block of few
 * rows has too few accumulators to hide the FMA latency. */
static void neon_sg_blocks(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1, const float *B, size_t bs,
                           int panel, const float *bend) {
    const size_t rows = i1 - i0, nb = (rows + 7) / 8, base = rows / nb, extra = rows % nb;
    size_t i = i0;
    for (size_t blk = 0; blk < nb; blk++) {
        const size_t mr = base + (blk < extra);
        switch (mr) {
        case 8: neon_sg_rows8(g, i, j0, j1, B, bs, panel, bend); break;
        case 7: neon_sg_rows7(g, i, j0, j1, B, bs, panel, bend); break;
        case 6: neon_sg_rows6(g, i, j0, j1, B, bs, panel, bend); break;
        case 5: neon_sg_rows5(g, i, j0, j1, B, bs, panel, bend); break;
        case 4: neon_sg_rows4(g, i, j0, j1, B, bs, panel, bend); break;
        case 3: neon_sg_rows3(g, i, j0, j1, B, bs, panel, bend); break;
        case 2: neon_sg_rows2(g, i, j0, j1, B, bs, panel, bend); break;
        default: neon_sg_rows1(g, i, j0, j1, B, bs, panel, bend); break;
        }
        i += mr;
    }
}

/* Columns [jc, je) of row-major B into panels of 8 (panel q: K rows of 8 floats, zero past je). */
static void neon_sg_pack(const dse_sgemm *g, size_t jc, size_t je, float *dst) {
    const size_t K = g->K, n = je - jc;
    for (size_t q = 0; q < n; q += 8) {
        const size_t w = n - q < 8 ? n - q : 8;
        float *d = dst + q * K;
        const float *b = g->B + jc + q;
        if (w == 8) {
            for (size_t k = 0; k < K; k++, b += g->ldb, d += 8) {
                vst1q_f32(d, vld1q_f32(b));
                vst1q_f32(d + 4, vld1q_f32(b + 4));
            }
        } else {
            for (size_t k = 0; k < K; k++, b += g->ldb, d += 8) {
                size_t l = 0;
                for (; l < w; l++) d[l] = b[l];
                for (; l < 8; l++) d[l] = 0.0f;
            }
        }
    }
}

void dse__neon_sgemm(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1) {
    if (i1 <= i0 || j1 <= j0) return;
    const size_t jb = dse__sgemm_pack_cols(g->K);
    const float *bend = g->B + g->K * g->ldb;
    for (size_t jc = j0; jc < j1; jc += jb) {
        const size_t je = j1 - jc < jb ? j1 : jc + jb;
        if (g->bpanel) {   /* B already in panels of 16 (layout 9): each tile reads 8 columns of one, in place */
            neon_sg_blocks(g, i0, i1, jc, je, g->B, 16, 2, NULL);
            continue;
        }
        if (g->pack && g->K && i1 - i0 >= NEON_SG_PACK_ROWS) {
            dse_sgemm p = *g;
            neon_sg_pack(g, jc, je, g->pack);
            p.C = g->C + jc;
            if (p.cmode) p.Cm = g->Cm + jc * g->csj;
            neon_sg_blocks(&p, i0, i1, 0, je - jc, g->pack, 8, 1, NULL);
            continue;
        }
        neon_sg_blocks(g, i0, i1, jc, je, g->B, g->ldb, 0, bend);
    }
}

/* -- B transposed: dot products along k ---------------------------------------------------- */

/* The epilogue and stores of an mr x nr block of sums (v: rows of 4) at (i, j). */
static DSE_NOINLINE void neon_sg_dot_flush(const dse_sgemm *g, const float *v, size_t mr, size_t nr, size_t i, size_t j) {
    for (size_t r = 0; r < mr; r++)
        for (size_t c = 0; c < nr; c++) {
            float x = v[4 * r + c];
            if (g->use_alpha) x = x * g->alpha;
            if (g->bias_m) x = x + g->bias_m[i + r];
            if (g->cmode) {
                const float cv = g->Cm[(i + r) * g->csi + (j + c) * g->csj];
                x = x + (g->cmode == 2 ? cv * g->beta : cv);
            }
            if (g->act) { x = x < g->lo ? g->lo : x; x = x > g->hi ? g->hi : x; }
            if (g->act_fn) x = dse__neon_act_fn1(g->act_fn, x);
            g->C[(i + r) * g->ldc + j + c] = x;
        }
}

/* n (< 8) floats at p, zero padded to 8 (two vectors) */
DSE_NEON_AI void neon_sg_part8(const float *p, size_t n, float32x4_t *v0, float32x4_t *v1) {
    float t[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t l = 0; l < n; l++) t[l] = p[l];
    *v0 = vld1q_f32(t);
    *v1 = vld1q_f32(t + 4);
}

/* ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) of the 8 partial sums lo (lanes 0-3), hi (4-7) */
DSE_NEON_AI float neon_sg_hsum8(float32x4_t lo, float32x4_t hi) {
    const float32x4_t s = vaddq_f32(lo, hi);                               /* l0+l4 .. l3+l7 */
    const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));     /* (0)+(2), (1)+(3) */
    return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

/* MR x NR elements, each as 8 partial sums in two vectors: lane l (0..7) takes k = l mod 8 */
DSE_NEON_AI void neon_sg_dot_tile(const dse_sgemm *g, const int MR, const int NR, size_t i, size_t j) {
    const size_t K = g->K, K8 = K & ~(size_t)7;
    const float *a[2], *b[4];
    DSE_NEON_UNROLL
    for (int r = 0; r < MR; r++) a[r] = g->A + (i + (size_t)r) * g->sai;
    DSE_NEON_UNROLL
    for (int c = 0; c < NR; c++) b[c] = g->B + (j + (size_t)c) * g->ldb;
    float32x4_t lo[2][4], hi[2][4];
    DSE_NEON_UNROLL
    for (int r = 0; r < MR; r++)
        DSE_NEON_UNROLL
        for (int c = 0; c < NR; c++) lo[r][c] = hi[r][c] = vdupq_n_f32(0.0f);
    for (size_t k = 0; k < K; k += 8) {   /* the last step: the K % 8 tail, zero padded */
        float32x4_t a0[2], a1[2];
        const int full = k < K8;
        DSE_NEON_UNROLL
        for (int r = 0; r < MR; r++) {
            if (full) { a0[r] = vld1q_f32(a[r] + k); a1[r] = vld1q_f32(a[r] + k + 4); }
            else neon_sg_part8(a[r] + k, K - k, &a0[r], &a1[r]);
        }
        DSE_NEON_UNROLL
        for (int c = 0; c < NR; c++) {
            float32x4_t b0, b1;
            if (full) { b0 = vld1q_f32(b[c] + k); b1 = vld1q_f32(b[c] + k + 4); }
            else neon_sg_part8(b[c] + k, K - k, &b0, &b1);
            DSE_NEON_UNROLL
            for (int r = 0; r < MR; r++) {
                lo[r][c] = vfmaq_f32(lo[r][c], a0[r], b0);
                hi[r][c] = vfmaq_f32(hi[r][c], a1[r], b1);
            }
        }
    }
    float v[8];
    DSE_NEON_UNROLL
    for (int r = 0; r < MR; r++)
        DSE_NEON_UNROLL
        for (int c = 0; c < NR; c++) v[4 * r + c] = neon_sg_hsum8(lo[r][c], hi[r][c]);
    neon_sg_dot_flush(g, v, (size_t)MR, (size_t)NR, i, j);
}

static void neon_sg_dot24(const dse_sgemm *g, size_t i, size_t j) { neon_sg_dot_tile(g, 2, 4, i, j); }
static void neon_sg_dot21(const dse_sgemm *g, size_t i, size_t j) { neon_sg_dot_tile(g, 2, 1, i, j); }
static void neon_sg_dot14(const dse_sgemm *g, size_t i, size_t j) { neon_sg_dot_tile(g, 1, 4, i, j); }
static void neon_sg_dot11(const dse_sgemm *g, size_t i, size_t j) { neon_sg_dot_tile(g, 1, 1, i, j); }

/* Columns in blocks whose rows of B (K floats each) take at most 128 KiB, every row of A against
 * one block before the next (B read from memory once). Every element is the same tile
 * arithmetic whatever the block. */
void dse__neon_sgemm_dot(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1) {
    size_t nb = g->K ? 32768 / g->K / 4 * 4 : 256;
    if (nb < 4) nb = 4;
    for (size_t jb = j0; jb < j1; jb += nb) {
        const size_t je = j1 - jb < nb ? j1 : jb + nb;
        size_t i = i0;
        for (; i + 2 <= i1; i += 2) {
            size_t j = jb;
            for (; j + 4 <= je; j += 4) neon_sg_dot24(g, i, j);
            for (; j < je; j++) neon_sg_dot21(g, i, j);
        }
        for (; i < i1; i++) {
            size_t j = jb;
            for (; j + 4 <= je; j += 4) neon_sg_dot14(g, i, j);
            for (; j < je; j++) neon_sg_dot11(g, i, j);
        }
    }
}

#endif
