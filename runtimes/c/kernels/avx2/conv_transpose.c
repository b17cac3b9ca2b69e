/* conv_transpose.c (AVX2): float32 ConvTranspose with FMA, 1-D and 2-D (groups, strides,
 * dilations, pads, output_padding, fused clamp); float32 weights and bias (float16 ones, and
 * 3-D nodes, are left to REF). Same geometry as kernels/ref/conv_transpose.c: output position o
 * on an axis receives input i through tap k when o + pad_begin = i * stride + k * dilation.
 *
 * The sum of one tap over the input channels is a GEMM on the weights as stored (C, M/group,
 * kH, kW): tap (m, t) of input pixel p is sum_c W[c, m, t] x[c, p], computed by the SGEMM of
 * kernels/avx2/sgemm.c with B the rows of x read in place (no copy) and A the weights (DIRECT:
 * read as stored, rows i = (m, t) at stride 1, column stride M/group * kH*kW). Two paths
 * (dse__convt_plan, src/internal.h, which also gives the scratch):
 *   - DIRECT: (k - 1) * d < s on both axes (e.g. the usual k = s = 2), so every output receives
 *     at most one tap. Per input row, blocks of JC input columns: the GEMM of every (m, tap) row
 *     of a block of mb output channels into scratch, then each row stored at its output
 *     positions with the bias and the clamp (stride 2 with two adjacent taps per row: the two
 *     rows interleaved into whole vectors). Outputs no tap reaches (gaps, output_padding, taps
 *     cut by the pads) get bias and clamp alone.
 *   - GENERAL (taps overlap: k = 4 s = 2, k = 3 s = 2, stride 1, ...): the block's weights are
 *     first copied tap by tap into scratch (A(m, c) of one tap then contiguous in m: read as
 *     stored, each product's weight would sit on its own cache line); per output row, chunks of
 *     sw * QC output columns held in scratch split by the W stride into sw phases (the columns
 *     ow = ow0 + q * sw + f of phase f), so that every tap (kh, kw) reaching the row lands on
 *     consecutive q of one phase: its GEMM over the input columns that reach the chunk is added
 *     there by the SGEMM's epilogue (C + the previous value). Then bias, clamp and the phases
 *     interleaved into the output row.
 * Order of the sum of one output element: each tap reaching it is one FMA chain over the input
 * channels (c ascending, from 0); DIRECT: that sum (or 0); GENERAL: 0 + the taps in (kh, kw)
 * order; then + bias, then the clamp. REF sums c outer, taps inner, with a rounded product and a
 * rounded sum per term: the difference is within 4 (K + 1) 2^-24 S per element (K = C/group *
 * taps, S = sum of |x w| + |bias|; docs/kernels.md "Optimised float variants", tested in
 * tests/runtime/test_kernels_f32_avx2.py).
 * Scratch: the plan's bytes, refused (REF runs the node) when the artifact planned less or a
 * live tensor lies there (dse__scratch_free). Threads: (image, group, block of mb output
 * channels, band of rows: input rows for DIRECT, output rows for GENERAL), each writing its own
 * outputs; each output's value does not depend on the cut, so every thread count gives the
 * same bytes. */
#include "avx2_f32.h"

#if DSE_AVX2_F32

typedef struct convt_job {
    const dse_ctx *cx;
    dse_conv_geom g;
    dse_convt_plan pl;
    size_t cg, mg, T, isz, osz, nmb, nbands;
    size_t IH, IW, OH, OW, KH, KW, sh, sw, dh, dw;
    long long pbh, pbw;
    int cols_full;   /* DIRECT: every output column is reached by some kw from some input column */
    const float *x, *w, *b;
    float *y;
    int act;
    float lo, hi;
} convt_job;

int dse__check_conv_transpose_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_conv_geom g;
    if (dse__conv_transpose_f32_geom(m, n, &g, why)) return 1;
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]), *b = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    if (w->dtype != DSE_DTYPE_FLOAT32 || (b && b->dtype != DSE_DTYPE_FLOAT32)) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "float16 weights", 0, 0, 0, 0);
        return 1;
    }
    dse_convt_plan p;
    const size_t need = dse__convt_plan(x->rank - 2, g.C / g.G, g.M / g.G, (size_t)g.k[1], (size_t)g.k[2], (size_t)g.s[1],
                                        (size_t)g.s[2], (size_t)g.d[1], (size_t)g.d[2], 0, &p);
    if (!need) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "3-D, or stride/kernel too large", 0, 0, 0, 0);
        return 1;
    }
    if (!dse__scratch_free(m, n, need)) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "scratch not planned", 0, 0, 0, 0);
        return 1;
    }
    why->scratch = why->scratch_plan = need;
    return 0;
}

/* REF's epilogue: v + bias (when there is a bias), then the clamp */
static inline float convt_epi1(const convt_job *j, float v, float bias) {
    if (j->b) v = v + bias;
    if (j->act) { v = v < j->lo ? j->lo : v; v = v > j->hi ? j->hi : v; }
    return v;
}

DSE_AI __m256 convt_epi(const convt_job *j, __m256 v, __m256 bias) {
    if (j->b) v = _mm256_add_ps(v, bias);
    if (j->act) v = _mm256_min_ps(_mm256_set1_ps(j->hi), _mm256_max_ps(_mm256_set1_ps(j->lo), v));
    return v;
}

/* One output row yr (OW floats) from F source rows: src[f][q] goes to column base[f] + q * sw for
 * q < cnt[f] (columns outside [0, OW) are skipped), through the epilogue. Two rows at stride 2
 * with base[1] = base[0] + 1 are interleaved 16 outputs at a time; stride 1 is contiguous. */
static DSE_TARGET_AVX2 void convt_store(const convt_job *j, float *yr, const float *const *src, const long long *base,
                                        const size_t *cnt, size_t F, float bias) {
    const long long OW = (long long)j->OW, sw = (long long)j->sw;
    const __m256 bv = _mm256_set1_ps(bias);
    long long v0 = 0, v1 = 0;   /* q in [v0, v1): stored by the vector loop for every source */
    if (F == 2 && sw == 2 && base[1] == base[0] + 1) {
        v0 = base[0] >= 0 ? 0 : (1 - base[0]) / 2;
        long long e = (OW - base[0]) / 2;   /* q < e: both columns inside the row */
        if (e > (long long)cnt[0]) e = (long long)cnt[0];
        if (e > (long long)cnt[1]) e = (long long)cnt[1];
        for (v1 = v0; v1 + 8 <= e; v1 += 8) {
            const __m256 a = convt_epi(j, _mm256_loadu_ps(src[0] + v1), bv), b = convt_epi(j, _mm256_loadu_ps(src[1] + v1), bv);
            const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);   /* a0 b0 a1 b1 | a4 b4 a5 b5 */
            float *d = yr + base[0] + 2 * v1;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(lo, hi, 0x20));
            _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
        }
    } else if (F == 1 && sw == 1) {
        v0 = base[0] >= 0 ? 0 : -base[0];
        long long e = OW - base[0];
        if (e > (long long)cnt[0]) e = (long long)cnt[0];
        for (v1 = v0; v1 + 8 <= e; v1 += 8) _mm256_storeu_ps(yr + base[0] + v1, convt_epi(j, _mm256_loadu_ps(src[0] + v1), bv));
    }
    if (v1 < v0) v1 = v0;
    for (size_t f = 0; f < F; f++)
        for (long long q = 0; q < (long long)cnt[f]; q++) {
            if (q == v0 && v1 > v0) q = v1;
            if (q >= (long long)cnt[f]) break;
            const long long ow = base[f] + q * sw;
            if (ow >= 0 && ow < OW) yr[ow] = convt_epi1(j, src[f][q], bias);
        }
}

/* 1 when output position o + pb is i * s + k * d for some tap k < K and input i < L */
static int convt_reached(long long o, long long pb, size_t K, size_t d, size_t s, size_t L) {
    for (size_t k = 0; k < K; k++) {
        const long long t = o + pb - (long long)(k * d);
        if (t >= 0 && t % (long long)s == 0 && t / (long long)s < (long long)L) return 1;
    }
    return 0;
}

static DSE_TARGET_AVX2 void convt_fill(const convt_job *j, float *yr, float bias) {
    const __m256 v = _mm256_set1_ps(convt_epi1(j, 0.0f, bias));
    size_t i = 0;
    for (; i + 8 <= j->OW; i += 8) _mm256_storeu_ps(yr + i, v);
    for (; i < j->OW; i++) yr[i] = convt_epi1(j, 0.0f, bias);
}

/* DIRECT: input rows [ih0, ih1) of one image and group, output channels [m0, m1) of the group. */
static DSE_TARGET_AVX2 void convt_direct(const convt_job *j, const float *xg, float *yg, const float *bg, size_t m0, size_t m1,
                                         size_t ih0, size_t ih1, float *buf) {
    const size_t T = j->T, KW = j->KW, JC = j->pl.JC, IW = j->IW, OH = j->OH, OW = j->OW;
    /* the output rows this band owns: its input rows' (and, at the ends, those before or after) */
    long long own0 = ih0 ? (long long)(ih0 * j->sh) - j->pbh : 0, own1 = ih1 < j->IH ? (long long)(ih1 * j->sh) - j->pbh : (long long)OH;
    own0 = own0 < 0 ? 0 : own0 > (long long)OH ? (long long)OH : own0;
    own1 = own1 < own0 ? own0 : own1 > (long long)OH ? (long long)OH : own1;
    for (long long oh = own0; oh < own1; oh++)
        if (!j->cols_full || !convt_reached(oh, j->pbh, j->KH, j->dh, j->sh, j->IH))
            for (size_t m = m0; m < m1; m++) convt_fill(j, yg + m * j->osz + (size_t)oh * OW, bg ? bg[m] : 0.0f);
    dse_sgemm s;
    memset(&s, 0, sizeof s);
    s.K = j->cg;
    s.A = j->w + m0 * T; s.sai = 1; s.sak = j->mg * T;
    s.B = xg; s.ldb = j->isz;   /* columns: pixels of the group's planes (the region SGEMM may read) */
    s.ldc = JC;
    for (size_t ih = ih0; ih < ih1; ih++)
        for (size_t iw0 = 0; iw0 < IW; iw0 += JC) {
            const size_t jn = IW - iw0 < JC ? IW - iw0 : JC, c0 = ih * IW + iw0;
            s.C = buf - c0;   /* C(i, c0 + q) = buf[i * JC + q] */
            dse__avx2_sgemm(&s, 0, (m1 - m0) * T, c0, c0 + jn);
            for (size_t m = m0; m < m1; m++)
                for (size_t kh = 0; kh < j->KH; kh++) {
                    const long long oh = (long long)(ih * j->sh + kh * j->dh) - j->pbh;
                    if (oh < 0 || oh >= (long long)OH) continue;
                    const float *src[64];
                    long long base[64];
                    size_t cnt[64];
                    for (size_t kw = 0; kw < KW; kw++) {
                        src[kw] = buf + ((m - m0) * T + kh * KW + kw) * JC;
                        base[kw] = (long long)(iw0 * j->sw + kw * j->dw) - j->pbw;
                        cnt[kw] = jn;
                    }
                    convt_store(j, yg + m * j->osz + (size_t)oh * OW, src, base, cnt, KW, bg ? bg[m] : 0.0f);
                }
        }
}

/* GENERAL: output rows [oh0, oh1) of one image and group, output channels [m0, m1). */
static DSE_TARGET_AVX2 void convt_general(const convt_job *j, const float *xg, float *yg, const float *bg, size_t m0, size_t m1,
                                          size_t oh0, size_t oh1, float *scratch) {
    const size_t T = j->T, KW = j->KW, QC = j->pl.QC, sw = j->sw, IW = j->IW, OW = j->OW, ld = sw * QC, mbk = m1 - m0, cg = j->cg;
    /* the block's weights tap by tap, wt[(t * cg + c) * mbk + mm] (as stored, a tap's weights of
     * one channel are kH*kW floats apart: a cache line per product) */
    float *wt = scratch, *acc = (float *)(void *)((uint8_t *)scratch + j->pl.acc_off);
    for (size_t c = 0; c < cg; c++)
        for (size_t mm = 0; mm < mbk; mm++) {
            const float *src = j->w + (c * j->mg + m0 + mm) * T;
            for (size_t t = 0; t < T; t++) wt[(t * cg + c) * mbk + mm] = src[t];
        }
    dse_sgemm s;
    memset(&s, 0, sizeof s);
    s.K = cg;
    s.sai = 1; s.sak = mbk;
    s.B = xg; s.ldb = j->isz;
    s.ldc = ld; s.cmode = 1; s.csi = ld; s.csj = 1;   /* C = the chunk + the sum: the taps accumulate */
    for (size_t oh = oh0; oh < oh1; oh++)
        for (size_t ow0 = 0; ow0 < OW; ow0 += ld) {
            size_t qn[16];   /* outputs of phase f in the chunk: ow0 + q * sw + f < OW */
            for (size_t f = 0; f < sw; f++) {
                const size_t left = OW > ow0 + f ? (OW - ow0 - f + sw - 1) / sw : 0;
                qn[f] = left < QC ? left : QC;
            }
            memset(acc, 0, mbk * ld * sizeof(float));
            for (size_t kh = 0; kh < j->KH; kh++) {
                const long long th = (long long)oh + j->pbh - (long long)(kh * j->dh);
                if (th < 0 || th % (long long)j->sh || th / (long long)j->sh >= (long long)j->IH) continue;
                const size_t ih = (size_t)(th / (long long)j->sh);
                for (size_t kw = 0; kw < KW; kw++) {
                    /* ow = iw * sw + kw * dw - pbw = ow0 + q * sw + f: f fixed by kw, iw = q + e */
                    const long long off = (long long)(kw * j->dw) - j->pbw, r = ((off - (long long)ow0) % (long long)sw + (long long)sw) % (long long)sw;
                    const size_t f = (size_t)r;
                    const long long e = ((long long)ow0 + r - off) / (long long)sw;
                    long long q0 = e < 0 ? -e : 0, q1 = (long long)IW - e;
                    if (q1 > (long long)qn[f]) q1 = (long long)qn[f];
                    if (q0 >= q1) continue;
                    const size_t c0 = ih * IW + (size_t)(q0 + e);
                    s.A = wt + (kh * KW + kw) * cg * mbk;
                    s.C = acc + f * QC + (size_t)q0 - c0;   /* C(i, c0 + u) = acc[i * ld + f * QC + q0 + u] */
                    s.Cm = s.C;
                    dse__avx2_sgemm(&s, 0, mbk, c0, c0 + (size_t)(q1 - q0));
                }
            }
            for (size_t m = m0; m < m1; m++) {
                const float *src[16];
                long long base[16];
                for (size_t f = 0; f < sw; f++) src[f] = acc + (m - m0) * ld + f * QC, base[f] = (long long)(ow0 + f);
                convt_store(j, yg + m * j->osz + oh * OW, src, base, qn, sw, bg ? bg[m] : 0.0f);
            }
        }
}

static DSE_TARGET_AVX2 void convt_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const convt_job *j = arg;
    float *scratch = (float *)(void *)dse__worker_scratch(j->cx, worker);
    const size_t rows = j->pl.direct ? j->IH : j->OH;
    for (size_t it = begin; it < end; it++) {
        size_t r = it;
        const size_t band = r % j->nbands; r /= j->nbands;
        const size_t mbi = r % j->nmb; r /= j->nmb;
        const size_t grp = r % j->g.G, img = r / j->g.G;
        const size_t r0 = rows * band / j->nbands, r1 = rows * (band + 1) / j->nbands;
        const size_t m0 = mbi * j->pl.mb, m1 = m0 + j->pl.mb < j->mg ? m0 + j->pl.mb : j->mg;
        const float *xg = j->x + (img * j->g.C + grp * j->cg) * j->isz;
        float *yg = j->y + (img * j->g.M + grp * j->mg) * j->osz;
        const float *bg = j->b ? j->b + grp * j->mg : NULL;
        convt_job jg = *j;
        jg.w = j->w + grp * j->cg * j->mg * j->T;
        if (j->pl.direct) convt_direct(&jg, xg, yg, bg, m0, m1, r0, r1, scratch);
        else convt_general(&jg, xg, yg, bg, m0, m1, r0, r1, scratch);
    }
}

void dse_f32_conv_transpose__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    convt_job j;
    dse_why why;
    memset(&j, 0, sizeof j);
    dse__conv_transpose_f32_geom(m, n, &j.g, &why);   /* validated at load */
    const dse_conv_geom *g = &j.g;
    j.cx = cx;
    j.cg = g->C / g->G, j.mg = g->M / g->G;
    j.IH = g->in[1], j.IW = g->in[2], j.OH = g->out[1], j.OW = g->out[2];
    j.KH = (size_t)g->k[1], j.KW = (size_t)g->k[2], j.sh = (size_t)g->s[1], j.sw = (size_t)g->s[2];
    j.dh = (size_t)g->d[1], j.dw = (size_t)g->d[2], j.pbh = g->pb[1], j.pbw = g->pb[2];
    dse__convt_plan(m->tensors[n->in[0]].rank - 2, j.cg, j.mg, j.KH, j.KW, j.sh, j.sw, j.dh, j.dw, 0, &j.pl);
    j.T = j.pl.T;
    j.isz = j.IH * j.IW, j.osz = j.OH * j.OW;
    j.x = dse__data(m, arena, n->in[0]);
    j.w = dse__data(m, arena, n->in[1]);
    j.b = n->n_in == 3 && n->in[2] != DSE_NONE ? dse__data(m, arena, n->in[2]) : NULL;
    j.y = dse__data(m, arena, n->out[0]);
    j.act = dse__nn_act(n, &j.lo, &j.hi);
    if (!j.osz || !g->M || !g->N) return;
    j.cols_full = 1;
    for (size_t ow = 0; ow < j.OW && j.cols_full; ow++) j.cols_full = convt_reached((long long)ow, j.pbw, j.KW, j.dw, j.sw, j.IW);
    j.nmb = (j.mg + j.pl.mb - 1) / j.pl.mb;
    const size_t threads = dse__threads(cx), units = g->N * g->G * j.nmb, rows = j.pl.direct ? j.IH : j.OH;
    j.nbands = 1;
    if (threads > 1 && units < 4 * threads) {   /* few channel blocks: bands of rows too */
        j.nbands = (4 * threads + units - 1) / units;
        if (j.nbands > rows) j.nbands = rows;
        if (!j.nbands) j.nbands = 1;
    }
    dse__parallel(cx, units * j.nbands, 1, convt_task, &j);
}

#endif
