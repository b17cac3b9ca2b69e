/* avx2/winograd.c: float32 3x3 stride-1 Conv (2-D, group 1, dilation 1, any padding, fused clamp)
 * as Winograd F(2x2, 3x3) with AVX2 + FMA: dse_f32_conv_wino__avx2, listed before
 * dse_f32_conv__avx2, which takes every node this check refuses. Which nodes, the blocks and
 * the scratch: dse__conv_f32_wino_plan (kernels/ref/conv.c).
 *
 * Arithmetic, per 2x2 output tile (tile (th, tw): outputs (2th + a, 2tw + b), a, b in {0, 1}) and
 * output channel m, d_c the 4x4 patch of the zero-padded input of channel c at padded rows and
 * columns 2th.., 2tw.., g_mc the 3x3 weights:
 *     U_mc = G g_mc G^T     G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]      (at every run)
 *     V_c  = B^T d_c B      B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *     M_m  = sum_c U_mc (.) V_c          (16 GEMMs [M x C] x [C x tiles], one per element ij:
 *                                         dse__avx2_sgemm, one FMA chain over c ascending)
 *     Y_m  = A^T M_m A      A^T = [1 1 1 0; 0 1 -1 -1],   then + bias[m], then the clamp.
 * In float32: G g (rows) then (G g) G^T (columns), each 1/2-row as ((a + b) + c) * 0.5 (or
 * ((a - b) + c) * 0.5); B^T d then (B^T d) B, one addition each; A^T M then (A^T M) A as
 * ((a + b) + c) and ((a - b) - c). Outputs past OH/OW (the last tile of an odd size) are
 * computed from zeros or inputs and not stored.
 *
 * Error bound (first order, u = 2^-24): the exact Y = sum_c sum_taps w x of an output expands
 * in the transforms into products w_c,t x_c,s of every weight of channel c with every input of
 * the output's 3x3 window (which cancel in exact arithmetic); with
 *     S_W = sum_c (sum_t |w_c,t|) (sum_s |x_c,s|) + |bias|    (window s of the output),
 * every rounding above is at most u times a sum of such absolute products whose coefficients
 * add up to at most 4 per (t, s) (the transforms' absolute row sums: 2 per axis), so
 *     |avx2 - exact| <= 4 (C + 12) u S_W
 * (U: 4 roundings, V: 2, the channel sum: C, Y: 4, bias: 1). S_W >= S, REF's sum of |w x|, and
 * exceeds it when inputs or weights vary a lot inside a window; on real activations the
 * result is within a few times REF's own error (docs/kernels.md, "Optimised float variants";
 * tests/runtime/test_kernels_f32_avx2.py checks the bound against float64).
 *
 * Work: the weight transform into the shared U (start of the session's scratch, parts = blocks
 * of output channels), then parts = (image, block of TB tiles in row-major tile order): the
 * block's V into the worker's scratch (per channel and tile row: the 4 padded input rows split
 * into even/odd column phases, 8 tiles per vector: tile tw's columns are even[tw], odd[tw],
 * even[tw+1], odd[tw+1]), the 16 GEMMs into M, the output transform 8 tiles per vector (two
 * output rows of 16 columns by an interleave). Each output is computed by one part in one order:
 * the same bytes for any thread count. */
#include "avx2_f32.h"

#if DSE_AVX2_F32

int dse__check_conv_wino_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_conv_geom g;
    if (dse__avx2_conv_f32_geom(m, n, &g, why)) return 1;
    dse_wino_plan p;
    const size_t need = dse__conv_f32_wino_plan(&g, &p);
    if (!need || dse__t(m, n->in[1])->layout != DSE_LAYOUT_PLAIN) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "Winograd: not a 3x3 stride-1 conv where it pays", 0, 0, 0, 0);
        return 1;
    }
    if (!dse__scratch_free(m, n, need)) {   /* an artifact planned before: the direct kernel */
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "Winograd: scratch not planned", 0, 0, 0, 0);
        return 1;
    }
    why->scratch = need;
    return 0;
}

typedef struct wino_job {
    const dse_ctx *cx;
    dse_conv_geom g;
    dse_wino_plan p;
    size_t C, M, nblk;
    const float *x, *w, *b;
    float *y, *U;
    int act, act_fn;
    float lo, hi;
    dse_sgemm_fn sgemm;   /* dse__avx2_sgemm, or the 512-bit one (the avx512vnni kernel) */
    dse_act_row_fn act_row;   /* the fused SiLU/GELU over stored outputs: 8 or 16 lanes, the same bytes */
} wino_job;

/* U[ij][m][c] = (G g_mc G^T)_ij for m in [m0, m1): 8 input channels per vector (their 9 taps
 * gathered first), the last < 8 through a zero-padded copy. */
static DSE_TARGET_AVX2 void wino_u_task(void *arg, size_t m0, size_t m1, unsigned worker) {
    const wino_job *j = arg;
    (void)worker;
    const size_t C = j->C, MC = j->M * C;
    const __m256 half = _mm256_set1_ps(0.5f);
    for (size_t mo = m0; mo < m1; mo++)
        for (size_t c0 = 0; c0 < C; c0 += 8) {
            const size_t nc = C - c0 < 8 ? C - c0 : 8;
            const float *wc = j->w + (mo * C + c0) * 9;
            __m256 gg[9], r[4][3];
            if (nc == 8) {   /* tap k of the 8 channels: floats k, k + 9, .., k + 63 of the 72 (a gather:
                              * scalar copies then vector loads stalled on store forwarding) */
                const __m256i idx = _mm256_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63);
                for (int k = 0; k < 9; k++) gg[k] = _mm256_i32gather_ps(wc + k, idx, 4);
            } else {
                float t[9][8];
                for (size_t l = 0; l < 8; l++)
                    for (int k = 0; k < 9; k++) t[k][l] = l < nc ? wc[l * 9 + (size_t)k] : 0.0f;
                for (int k = 0; k < 9; k++) gg[k] = _mm256_loadu_ps(t[k]);
            }
            for (int col = 0; col < 3; col++) {   /* G g: rows of the 4x3 */
                const __m256 g0 = gg[col], g1 = gg[3 + col], g2 = gg[6 + col];
                r[0][col] = g0;
                r[1][col] = _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(g0, g1), g2), half);
                r[2][col] = _mm256_mul_ps(_mm256_add_ps(_mm256_sub_ps(g0, g1), g2), half);
                r[3][col] = g2;
            }
            float *u = j->U + mo * C + c0;
            for (int i = 0; i < 4; i++) {   /* (G g) G^T */
                const __m256 a = r[i][0], b = r[i][1], c = r[i][2];
                const __m256 v[4] = {a, _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(a, b), c), half),
                                     _mm256_mul_ps(_mm256_add_ps(_mm256_sub_ps(a, b), c), half), c};
                for (int jj = 0; jj < 4; jj++) {
                    float *d = u + (size_t)(4 * i + jj) * MC;
                    if (nc == 8) { _mm256_storeu_ps(d, v[jj]); continue; }
                    float s[8];
                    _mm256_storeu_ps(s, v[jj]);
                    for (size_t l = 0; l < nc; l++) d[l] = s[l];
                }
            }
        }
}

/* V[ij][c][t - t0] for the tiles t0..t1-1 (row-major tile order) of image img. Within a channel,
 * tile rows in order, 8 tiles per store: the lanes past a row's end are overwritten by the next
 * row's tiles, or land in the ld - TB columns of slack after the block. */
static DSE_TARGET_AVX2 void wino_v(const wino_job *j, size_t img, size_t t0, size_t t1, float *V, float *rows) {
    const dse_conv_geom *g = &j->g;
    const size_t IH = g->in[1], IW = g->in[2], isz = IH * IW, pt = (size_t)g->pb[1], pl = (size_t)g->pb[2];
    const size_t TW = j->p.TW, L = j->p.L, ld = j->p.ld, CL = j->C * ld;
    const size_t th0 = t0 / TW, th1 = (t1 - 1) / TW;
    for (size_t c = 0; c < j->C; c++) {
        const float *xc = j->x + (img * j->C + c) * isz;
        float *vc = V + c * ld;
        for (size_t th = th0; th <= th1; th++) {
            const float *pr[4];
            for (size_t i = 0; i < 4; i++) {   /* padded row 2th + i: even phase, then odd, L floats each */
                float *r = rows + i * 2 * L;
                const size_t y = 2 * th + i;
                if (y < pt || y - pt >= IH) memset(r, 0, 2 * L * sizeof(float));
                else dse__avx2_fill_row(r, L, xc + (y - pt) * IW, IW, pl, 2, L);
                pr[i] = r;
            }
            const size_t twa = th == th0 ? t0 - th * TW : 0, twb = th == th1 ? t1 - th * TW : TW;
            for (size_t tw = twa; tw < twb; tw += 8) {
                __m256 h[4][4];
                for (int i = 0; i < 4; i++) {   /* B^T along the row: columns 2tw .. 2tw + 3 */
                    const float *e = pr[i] + tw, *o = pr[i] + L + tw;
                    const __m256 d0 = _mm256_loadu_ps(e), d1 = _mm256_loadu_ps(o), d2 = _mm256_loadu_ps(e + 1), d3 = _mm256_loadu_ps(o + 1);
                    h[i][0] = _mm256_sub_ps(d0, d2), h[i][1] = _mm256_add_ps(d1, d2);
                    h[i][2] = _mm256_sub_ps(d2, d1), h[i][3] = _mm256_sub_ps(d1, d3);
                }
                float *d = vc + th * TW + tw - t0;
                for (int k = 0; k < 4; k++) {   /* B^T down the columns */
                    _mm256_storeu_ps(d + (size_t)(0 + k) * CL, _mm256_sub_ps(h[0][k], h[2][k]));
                    _mm256_storeu_ps(d + (size_t)(4 + k) * CL, _mm256_add_ps(h[1][k], h[2][k]));
                    _mm256_storeu_ps(d + (size_t)(8 + k) * CL, _mm256_sub_ps(h[2][k], h[1][k]));
                    _mm256_storeu_ps(d + (size_t)(12 + k) * CL, _mm256_sub_ps(h[1][k], h[3][k]));
                }
            }
        }
    }
}

/* Y from M[ij][m][t - t0] for the block's tiles: A^T M A, + bias, clamp; 8 tiles per vector,
 * interleaved into 16 output columns of rows 2th and 2th + 1 (only the columns and rows
 * inside the output stored); then the fused activation function over the outputs written. */
static DSE_TARGET_AVX2 void wino_out(const wino_job *j, size_t img, size_t t0, size_t t1, const float *Mb) {
    const dse_conv_geom *g = &j->g;
    const size_t OH = g->out[1], OW = g->out[2], P = OH * OW, TW = j->p.TW, ld = j->p.ld, ML = j->M * ld;
    const size_t th0 = t0 / TW, th1 = (t1 - 1) / TW;
    const __m256 lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
    for (size_t mo = 0; mo < j->M; mo++) {
        const float *mm = Mb + mo * ld;
        float *ym = j->y + (img * j->M + mo) * P;
        const __m256 bias = _mm256_set1_ps(j->b ? j->b[mo] : 0.0f);
        for (size_t th = th0; th <= th1; th++) {
            const size_t twa = th == th0 ? t0 - th * TW : 0, twb = th == th1 ? t1 - th * TW : TW;
            for (size_t tw = twa; tw < twb; tw += 8) {
                const float *s = mm + th * TW + tw - t0;
                __m256 r0[4], r1[4];
                for (int k = 0; k < 4; k++) {   /* A^T down the columns */
                    const __m256 m0 = _mm256_loadu_ps(s + (size_t)k * ML), m1 = _mm256_loadu_ps(s + (size_t)(4 + k) * ML);
                    const __m256 m2 = _mm256_loadu_ps(s + (size_t)(8 + k) * ML), m3 = _mm256_loadu_ps(s + (size_t)(12 + k) * ML);
                    r0[k] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
                    r1[k] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
                }
                __m256 y[2][2];   /* [a][b]: output (2th + a, 2tw + b) of the 8 tiles */
                y[0][0] = _mm256_add_ps(_mm256_add_ps(r0[0], r0[1]), r0[2]);
                y[0][1] = _mm256_sub_ps(_mm256_sub_ps(r0[1], r0[2]), r0[3]);
                y[1][0] = _mm256_add_ps(_mm256_add_ps(r1[0], r1[1]), r1[2]);
                y[1][1] = _mm256_sub_ps(_mm256_sub_ps(r1[1], r1[2]), r1[3]);
                const size_t ow0 = 2 * tw, tiles = twb - tw < 8 ? twb - tw : 8;
                const size_t cols = 2 * tiles < OW - ow0 ? 2 * tiles : OW - ow0;
                for (int a = 0; a < 2; a++) {
                    const size_t oh = 2 * th + (size_t)a;
                    if (oh >= OH) break;
                    __m256 e = y[a][0], o = y[a][1];
                    if (j->b) e = _mm256_add_ps(e, bias), o = _mm256_add_ps(o, bias);
                    if (j->act) e = _mm256_min_ps(hi, _mm256_max_ps(lo, e)), o = _mm256_min_ps(hi, _mm256_max_ps(lo, o));
                    if (j->act_fn && DSE_ACT_FN_INLINE(j->act_fn)) e = dse__avx2_act_fn_inline(j->act_fn, e), o = dse__avx2_act_fn_inline(j->act_fn, o);
                    const __m256 l = _mm256_unpacklo_ps(e, o), h = _mm256_unpackhi_ps(e, o);
                    const __m256 q0 = _mm256_permute2f128_ps(l, h, 0x20), q1 = _mm256_permute2f128_ps(l, h, 0x31);
                    float *d = ym + oh * OW + ow0;
                    if (cols == 16) { _mm256_storeu_ps(d, q0); _mm256_storeu_ps(d + 8, q1); continue; }
                    float t[16];
                    _mm256_storeu_ps(t, q0);
                    _mm256_storeu_ps(t + 8, q1);
                    for (size_t c = 0; c < cols; c++) d[c] = t[c];
                }
            }
        }
        if (!j->act_fn || DSE_ACT_FN_INLINE(j->act_fn)) continue;
        /* the fused activation function over what this block wrote of the plane, while it is in
         * L1/L2 (in the tile loop above it would compute 16 columns per 8 tiles however few are
         * real: twice the separate Sigmoid's cost on a 20x20 plane): the block's tiles are rows
         * th0 .. th1 of tiles, from tile twa of th0 to tile twb - 1 of th1; the whole rows between
         * are one contiguous range (the whole plane when the block holds every tile) */
        const size_t twa = t0 - th0 * TW, twb = t1 - th1 * TW;   /* th0's first tile, th1's end (1 .. TW) */
        if (th0 == th1) {   /* one tile row: columns [2 twa, 2 twb) of its two rows */
            const size_t c1 = 2 * twb < OW ? 2 * twb : OW;
            for (size_t oh = 2 * th0; oh < 2 * th0 + 2 && oh < OH; oh++)
                j->act_row(j->act_fn, ym + oh * OW + 2 * twa, c1 - 2 * twa);
            continue;
        }
        size_t full0 = 2 * th0, full1 = 2 * th1 + 2 < OH ? 2 * th1 + 2 : OH;   /* rows [full0, full1): whole */
        if (twa) {   /* th0's part: columns [2 twa, OW) of its two rows */
            for (size_t oh = 2 * th0; oh < 2 * th0 + 2; oh++) j->act_row(j->act_fn, ym + oh * OW + 2 * twa, OW - 2 * twa);
            full0 += 2;
        }
        if (twb < TW) {   /* th1's part: columns [0, 2 twb) */
            for (size_t oh = 2 * th1; oh < 2 * th1 + 2 && oh < OH; oh++) j->act_row(j->act_fn, ym + oh * OW, 2 * twb);
            full1 = 2 * th1;
        }
        if (full1 > full0) j->act_row(j->act_fn, ym + full0 * OW, (full1 - full0) * OW);   /* one contiguous range */
    }
}

/* Part it = image * nblk + block: V, the 16 GEMMs, Y. */
static DSE_TARGET_AVX2 void wino_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const wino_job *j = arg;
    float *S = (float *)(void *)dse__worker_scratch(j->cx, worker) + j->p.u_floats;
    const size_t C = j->C, M = j->M, ld = j->p.ld;
    float *V = S, *Mb = V + 16 * C * ld, *rows = Mb + 16 * M * ld;
    for (size_t it = begin; it < end; it++) {
        const size_t img = it / j->nblk, t0 = it % j->nblk * j->p.TB, t1 = t0 + j->p.TB < j->p.T ? t0 + j->p.TB : j->p.T;
        wino_v(j, img, t0, t1, V, rows);
        for (size_t ij = 0; ij < 16; ij++) {
            dse_sgemm s;
            memset(&s, 0, sizeof s);
            s.K = C;
            s.A = j->U + ij * M * C; s.sai = C; s.sak = 1;
            s.B = V + ij * C * ld; s.ldb = ld;
            s.C = Mb + ij * M * ld; s.ldc = ld;
            j->sgemm(&s, 0, M, 0, t1 - t0);
        }
        wino_out(j, img, t0, t1, Mb);
    }
}

static void wino_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, dse_sgemm_fn sgemm, dse_act_row_fn act_row) {
    wino_job j;
    dse_why why;
    memset(&j, 0, sizeof j);
    j.sgemm = sgemm, j.act_row = act_row;
    dse__conv_f32_geom(m, n, &j.g, &why);   /* validated at load */
    dse__conv_f32_wino_plan(&j.g, &j.p);
    j.cx = cx;
    j.C = j.g.C, j.M = j.g.M;
    j.x = dse__data(m, arena, n->in[0]);
    j.w = dse__data(m, arena, n->in[1]);
    j.b = n->n_in == 3 && n->in[2] != DSE_NONE ? dse__data(m, arena, n->in[2]) : NULL;
    j.y = dse__data(m, arena, n->out[0]);
    j.U = (float *)(void *)cx->scratch;
    j.act = dse__nn_act(n, &j.lo, &j.hi);
    j.act_fn = dse__nn_act_fn(n);
    const size_t th = dse__threads(cx);
    if (th > 1 && j.g.N * ((j.p.T + j.p.TB - 1) / j.p.TB) < 2 * th) {
        /* too few blocks to share (a small image): smaller blocks, at least two per thread, in
         * whole vectors of 8 tiles; ld and the scratch stay the plan's, and every output keeps
         * its arithmetic (the bytes of any block size) */
        const size_t parts = (2 * th + j.g.N - 1) / j.g.N, tb = ((j.p.T + parts - 1) / parts + 7) / 8 * 8;
        if (tb < j.p.TB) j.p.TB = tb;
    }
    j.nblk = (j.p.T + j.p.TB - 1) / j.p.TB;
    dse__parallel(cx, j.M, dse__grain(j.M, (uint64_t)j.M * j.C * 16), wino_u_task, &j);
    const size_t items = j.g.N * j.nblk;
    dse__parallel(cx, items, dse__grain(items, (uint64_t)j.g.N * j.p.T * 16 * j.M * j.C), wino_task, &j);
}

void dse_f32_conv_wino__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    wino_run(m, n, arena, cx, dse__avx2_sgemm, dse__avx2_act_fn_row);
}

#if DSE_AVX512_F32
/* avx512vnni: the same transforms and bytes, the 16 GEMMs on 512-bit tiles (kernels/avx512vnni/sgemm.c) */
void dse_f32_conv_wino__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    wino_run(m, n, arena, cx, dse__avx512_sgemm, dse__avx512_act_fn_row);
}
#endif

#endif
