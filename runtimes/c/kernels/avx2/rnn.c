/* rnn.c (AVX2): float32 LSTM and GRU with FMA. Same semantics, attributes and checks as
 * kernels/ref/rnn.c (directions, layouts 0/1, sequence_lens, initial states, peepholes, clip,
 * input_forget, linear_before_reset, optional outputs); float32 W, R, B, P only (a float16
 * weight leaves the node to REF), T, B, I, H >= 1.
 *
 * Per direction, for a chunk of Tc time steps (dse__rnn_f32_chunk: the chunk's buffers take at
 * most 256 KiB, else 1 step):
 *   1. the chunk's input rows are gathered, transposed, into XT[I][Tc*B]: column (t - t0)*B + b
 *      holds the x row that batch row b reads at step t (its own time index: reversed from its
 *      own sequence length in the reverse direction; zeros once its sequence has ended);
 *   2. the input projection of every step of the chunk at once, one SGEMM with the weights as
 *      stored (W[G*H][I] broadcast, XT's rows streamed; W is read once per chunk):
 *      GX^T[G*H][Tc*B] = W XT, each element one FMA chain over k = 0..I-1 (sgemm.c);
 *   3. per step, the recurrent sums of all batch rows, GH[B][G*H] = h R^T (dse__avx2_sgemm_dot
 *      on R as stored: 8 partial sums per element, lane l taking k = l mod 8, added pairwise),
 *      for GRU with linear_before_reset = 0 as two products (gates z, r with h, then gate h
 *      with r*h);
 *   4. the cell, 8 hidden units per vector, in REF's grouping: LSTM gate = (gx + gh) + (Wb + Rb)
 *      (the + bias only with B), peepholes as REF (gi + Pi*c, no FMA), clip, then sigmoid/tanh
 *      of src/avx2_f32.h (float32 polynomials: sigmoid <= 2.64 ulp, tanh <= 1.36 ulp, docs/
 *      kernels.md), c' = f*c + i*g(gc) and h' = o*h(c') rounded as REF (mul, mul, add); GRU
 *      (gx + Wb) + (gh + Rb) and REF's hh / h' formulas.
 * So each gate sum differs from REF (one sequential sum of rounded products for x, another for
 * h) only by the FMA and the 8-way split of the h sum: per gate |avx2 - ref| <= 4 (I + H + 2)
 * 2^-24 S (S the sum of the absolute values of the terms), plus the few ulp of each
 * sigmoid/tanh; through the recurrence these errors are carried from step to step (damped by
 * the gates' derivatives < 1 in the usual regime): tests/runtime/test_kernels_rnn_avx2.py
 * compares with REF and onnxruntime at 2e-5 relative to the output's scale.
 *
 * Threads: a bidirectional node runs its two directions on two workers (each with its own
 * scratch; the directions write disjoint outputs); one direction splits the chunk SGEMM over
 * blocks of W's rows and, for large R, each step's recurrent product over blocks of gate
 * columns. Every element is computed by one part in one order: the same bytes for any thread
 * count. Scratch: dse__rnn_f32_plan (internal.h), per direction (worker); an artifact planned
 * with less (before this kernel), or whose scratch region holds a tensor live at this node, is
 * refused so that REF runs it. */
#include "avx2_f32.h"

#if DSE_AVX2_F32

static int avx2rnn_check(const dse_model *m, const dse_node *n, int lstm, dse_why *why) {
    dse_rnn_geom g;
    if (dse__rnn_f32_geom(m, n, lstm, &g, why)) return 1;
    static const uint32_t wins[4] = {1, 2, 3, 7};
    for (int k = 0; k < 4; k++) {
        const dse_tensor *t = wins[k] < n->n_in ? dse__t(m, n->in[wins[k]]) : NULL;
        if (t && t->dtype != DSE_DTYPE_FLOAT32) {
            DSE_WHYF(why, F32_AVX2_NOT_COVERED, "float16 weights", 0, 0, 0, 0);
            return 1;
        }
    }
    if (!g.T || !g.B || !g.I || !g.H) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "an empty dimension", 0, 0, 0, 0);
        return 1;
    }
    const size_t need = dse__rnn_f32_plan(&g);
    if (!dse__scratch_free(m, n, need)) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "scratch not planned", 0, 0, 0, 0);
        return 1;
    }
    why->scratch = need;
    why->scratch_plan = need;
    return 0;
}

int dse__check_lstm_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) { return avx2rnn_check(m, n, 1, why); }
int dse__check_gru_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) { return avx2rnn_check(m, n, 0, why); }

typedef struct avx2rnn_job {
    const dse_ctx *cx;
    dse_rnn_geom g;
    size_t Tc;
    const float *X, *W, *R, *Bv, *P, *h0, *c0;
    const void *lens;
    int lens32;
    float *Y, *Yh, *Yc;
    int hasclip, ifg, lbr;
    float clip;
    size_t xt, xb, yt, yd, yb, sd, sb;   /* strides as REF: X[t][b], Y[t][d][b], state[d][b] */
} avx2rnn_job;

/* One direction's state during a step: the parts of a step (blocks of 8 hidden units) read it. */
typedef struct avx2rnn_step {
    const avx2rnn_job *j;
    size_t d, t, c0, nc;                 /* direction, step, the step's first column in gt, columns */
    int rev;
    const float *R, *Wb, *Rb, *P, *gt;
    float *h, *hn, *aux, *gx, *gh;
    const dse_sgemm *s;                  /* avx2rnn_gemm_part: the product in parts */
} avx2rnn_step;

static size_t avx2rnn_len(const avx2rnn_job *j, size_t b) {
    if (!j->lens) return j->g.T;
    const int64_t l = j->lens32 ? ((const int32_t *)j->lens)[b] : ((const int64_t *)j->lens)[b];
    return l < 0 ? 0 : (l > (int64_t)j->g.T ? j->g.T : (size_t)l);
}

/* the grain of dse__parallel for items of `macs` multiply-adds: >= 128K per part (a hand-off
 * costs ~1 us; a part of less is not worth it) */
static size_t avx2rnn_grain(size_t macs) { return macs ? (131072 + macs - 1) / macs : 1; }

static DSE_TARGET_AVX2 void avx2rnn_gemm_part(void *arg, size_t r0, size_t r1, unsigned worker) {   /* W rows [r0, r1) */
    (void)worker;
    const dse_sgemm *s = arg;
    dse__avx2_sgemm(s, r0, r1, 0, s->ldc);
}

DSE_AI __m256 avx2rnn_ld(const float *p, size_t nl) {
    return nl >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, dse__avx2_mask(nl));
}
DSE_AI void avx2rnn_st(float *p, __m256 v, size_t nl) {
    if (nl >= 8) { _mm256_storeu_ps(p, v); return; }
    float t[8];
    _mm256_storeu_ps(t, v);
    for (size_t l = 0; l < nl; l++) p[l] = t[l];
}
DSE_AI __m256 avx2rnn_clip(__m256 v, int has, float c) {   /* REF's clipv: NaN stays */
    if (!has) return v;
    return _mm256_min_ps(_mm256_set1_ps(c), _mm256_max_ps(_mm256_set1_ps(-c), v));
}

/* LSTM cell of one batch row, units [u0, u1): gx, gh its G*H gate sums, c its state (updated),
 * hn its new h, y its Y row (or NULL) */
static DSE_TARGET_AVX2 void avx2rnn_lstm_row(const avx2rnn_step *st, size_t u0, size_t u1, const float *gx, const float *gh, float *c,
                                         float *hn, float *y) {
    const avx2rnn_job *j = st->j;
    const size_t H = j->g.H;
    const float *Wb = st->Wb, *Rb = st->Rb, *P = st->P;
    const int hc = j->hasclip;
    const float cl = j->clip;
    for (size_t u = u0; u < u1; u += 8) {
        const size_t nl = u1 - u < 8 ? u1 - u : 8;
        __m256 gi = _mm256_add_ps(avx2rnn_ld(gx + u, nl), avx2rnn_ld(gh + u, nl));
        __m256 go = _mm256_add_ps(avx2rnn_ld(gx + H + u, nl), avx2rnn_ld(gh + H + u, nl));
        __m256 gf = _mm256_add_ps(avx2rnn_ld(gx + 2 * H + u, nl), avx2rnn_ld(gh + 2 * H + u, nl));
        __m256 gc = _mm256_add_ps(avx2rnn_ld(gx + 3 * H + u, nl), avx2rnn_ld(gh + 3 * H + u, nl));
        if (Wb) {
            gi = _mm256_add_ps(gi, _mm256_add_ps(avx2rnn_ld(Wb + u, nl), avx2rnn_ld(Rb + u, nl)));
            go = _mm256_add_ps(go, _mm256_add_ps(avx2rnn_ld(Wb + H + u, nl), avx2rnn_ld(Rb + H + u, nl)));
            gf = _mm256_add_ps(gf, _mm256_add_ps(avx2rnn_ld(Wb + 2 * H + u, nl), avx2rnn_ld(Rb + 2 * H + u, nl)));
            gc = _mm256_add_ps(gc, _mm256_add_ps(avx2rnn_ld(Wb + 3 * H + u, nl), avx2rnn_ld(Rb + 3 * H + u, nl)));
        }
        const __m256 cp = avx2rnn_ld(c + u, nl);
        if (P) {
            gi = _mm256_add_ps(gi, _mm256_mul_ps(avx2rnn_ld(P + u, nl), cp));
            gf = _mm256_add_ps(gf, _mm256_mul_ps(avx2rnn_ld(P + 2 * H + u, nl), cp));
        }
        __m256 a[2], s[2];
        a[0] = avx2rnn_clip(gi, hc, cl), a[1] = avx2rnn_clip(gf, hc, cl);
        dse__avx2_sigmoid_n(2, a, s);
        const __m256 i = s[0], f = j->ifg ? _mm256_sub_ps(_mm256_set1_ps(1.0f), i) : s[1];
        const __m256 g = dse__avx2_tanh(avx2rnn_clip(gc, hc, cl));
        const __m256 cn = _mm256_add_ps(_mm256_mul_ps(f, cp), _mm256_mul_ps(i, g));
        if (P) go = _mm256_add_ps(go, _mm256_mul_ps(avx2rnn_ld(P + H + u, nl), cn));
        a[0] = avx2rnn_clip(go, hc, cl), a[1] = cn;
        dse__avx2_sigmoid_n(1, a, s);
        dse__avx2_tanh_n(1, a + 1, s + 1);
        const __m256 hv = _mm256_mul_ps(s[0], s[1]);
        avx2rnn_st(c + u, cn, nl);
        avx2rnn_st(hn + u, hv, nl);
        if (y) avx2rnn_st(y + u, hv, nl);
    }
}

/* GRU cell of one batch row, units [u0, u1). pass 0: z and r; linear_before_reset = 1 then the
 * new h; = 0: z is stored over gx's z gates and r*h into rh, and pass 1 (after the product of
 * gate h's rows with r*h) finishes the cell. */
static DSE_TARGET_AVX2 void avx2rnn_gru_row(const avx2rnn_step *st, size_t u0, size_t u1, float *gx, const float *gh, const float *hp,
                                        float *rh, float *hn, float *y, int pass) {
    const avx2rnn_job *j = st->j;
    const size_t H = j->g.H;
    const float *Wb = st->Wb, *Rb = st->Rb;
    const int hc = j->hasclip;
    const float cl = j->clip;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t u = u0; u < u1; u += 8) {
        const size_t nl = u1 - u < 8 ? u1 - u : 8;
        const __m256 h = avx2rnn_ld(hp + u, nl);
        __m256 z, r;
        if (pass == 0) {
            __m256 xz = avx2rnn_ld(gx + u, nl), hz = avx2rnn_ld(gh + u, nl), xr = avx2rnn_ld(gx + H + u, nl), hr = avx2rnn_ld(gh + H + u, nl);
            if (Wb) {
                xz = _mm256_add_ps(xz, avx2rnn_ld(Wb + u, nl)), hz = _mm256_add_ps(hz, avx2rnn_ld(Rb + u, nl));
                xr = _mm256_add_ps(xr, avx2rnn_ld(Wb + H + u, nl)), hr = _mm256_add_ps(hr, avx2rnn_ld(Rb + H + u, nl));
            }
            __m256 a[2], s[2];
            a[0] = avx2rnn_clip(_mm256_add_ps(xz, hz), hc, cl), a[1] = avx2rnn_clip(_mm256_add_ps(xr, hr), hc, cl);
            dse__avx2_sigmoid_n(2, a, s);
            z = s[0], r = s[1];
            if (!j->lbr) {
                avx2rnn_st(gx + u, z, nl);
                avx2rnn_st(rh + u, _mm256_mul_ps(r, h), nl);
                continue;
            }
        } else {
            z = avx2rnn_ld(gx + u, nl), r = _mm256_setzero_ps();
        }
        __m256 xh = avx2rnn_ld(gx + 2 * H + u, nl), rb = Wb ? avx2rnn_ld(Rb + 2 * H + u, nl) : _mm256_setzero_ps(), v;
        if (Wb) xh = _mm256_add_ps(xh, avx2rnn_ld(Wb + 2 * H + u, nl));
        if (j->lbr) v = _mm256_add_ps(xh, _mm256_mul_ps(r, _mm256_add_ps(avx2rnn_ld(gh + 2 * H + u, nl), rb)));
        else v = _mm256_add_ps(_mm256_add_ps(xh, avx2rnn_ld(gh + 2 * H + u, nl)), rb);
        const __m256 hh = dse__avx2_tanh(avx2rnn_clip(v, hc, cl));
        const __m256 hv = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(one, z), hh), _mm256_mul_ps(z, h));
        avx2rnn_st(hn + u, hv, nl);
        if (y) avx2rnn_st(y + u, hv, nl);
    }
}

/* Part of a step: hidden units [8 g0, 8 g1) of every batch row. Pass 0: the recurrent sums of
 * their gate rows (h R^T; GRU with linear_before_reset = 0: gates z and r only), the input
 * projection's columns of the step, the cell (LSTM, GRU lbr = 1) or its first half (GRU lbr = 0);
 * pass 1 (GRU lbr = 0): gate h's rows times r*h, the rest of the cell. Rows whose sequence has
 * ended keep their state and get Y = 0 at this step. */
static DSE_TARGET_AVX2 void avx2rnn_step_part(const avx2rnn_step *st, size_t g0, size_t g1, int pass) {
    const avx2rnn_job *j = st->j;
    const size_t B = j->g.B, H = j->g.H, GH = j->g.G * H, u0 = 8 * g0, u1 = 8 * g1 < H ? 8 * g1 : H, t = st->t, d = st->d;
    const int lstm = j->g.lstm;
    dse_sgemm q;
    memset(&q, 0, sizeof q);
    q.K = H, q.sai = H, q.ldb = H, q.ldc = GH;
    if (pass == 0) {
        q.A = st->h, q.B = st->R, q.C = st->gh;
        for (size_t gq = 0; gq < (lstm || j->lbr ? j->g.G : 2); gq++) dse__avx2_sgemm_dot(&q, 0, B, gq * H + u0, gq * H + u1);
    } else {
        q.A = st->aux, q.B = st->R, q.C = st->gh;
        dse__avx2_sgemm_dot(&q, 0, B, 2 * H + u0, 2 * H + u1);
    }
    for (size_t b = 0; b < B; b++) {
        const size_t len = avx2rnn_len(j, b), c = st->c0 + b;
        float *hn = st->hn + b * H, *hp = st->h + b * H, *aux = st->aux + b * H, *gx = st->gx + b * GH, *gh = st->gh + b * GH;
        if (t >= len) {   /* sequence over: state kept, Y = 0 */
            if (pass) continue;
            if (j->Y) memset(j->Y + t * j->yt + d * j->yd + b * j->yb + u0, 0, (u1 - u0) * sizeof(float));
            memcpy(hn + u0, hp + u0, (u1 - u0) * sizeof(float));
            if (!lstm) memset(aux + u0, 0, (u1 - u0) * sizeof(float));   /* (r*h: read by pass 1's product) */
            continue;
        }
        float *y = j->Y ? j->Y + (st->rev ? len - 1 - t : t) * j->yt + d * j->yd + b * j->yb : NULL;
        if (pass == 0)
            for (size_t gq = 0; gq < j->g.G; gq++)
                for (size_t u = u0; u < u1; u++) gx[gq * H + u] = st->gt[(gq * H + u) * st->nc + c];
        if (lstm) avx2rnn_lstm_row(st, u0, u1, gx, gh, aux, hn, y);
        else avx2rnn_gru_row(st, u0, u1, gx, gh, hp, aux, hn, y, pass);
    }
}
static DSE_TARGET_AVX2 void avx2rnn_step0(void *arg, size_t g0, size_t g1, unsigned worker) { (void)worker; avx2rnn_step_part(arg, g0, g1, 0); }
static DSE_TARGET_AVX2 void avx2rnn_step1(void *arg, size_t g0, size_t g1, unsigned worker) { (void)worker; avx2rnn_step_part(arg, g0, g1, 1); }

static DSE_TARGET_AVX2 void avx2rnn_dir(const avx2rnn_job *j, size_t d, float *s) {
    const dse_rnn_geom *g = &j->g;
    const size_t T = g->T, B = g->B, I = g->I, H = g->H, GH = g->G * H, Tc = j->Tc, ng = (H + 7) / 8;
    const int lstm = g->lstm;
    avx2rnn_step st;
    memset(&st, 0, sizeof st);
    st.j = j, st.d = d, st.rev = g->reverse_only || d == 1;
    st.h = s, st.hn = s + B * H, st.aux = st.hn + B * H, st.gx = st.aux + B * H, st.gh = st.gx + B * GH;
    float *xt = st.gh + B * GH, *gt = xt + I * Tc * B;
    const float *W = j->W + d * GH * I;
    st.R = j->R + d * GH * H, st.gt = gt;
    st.Wb = j->Bv ? j->Bv + d * 2 * GH : NULL, st.Rb = st.Wb ? st.Wb + GH : NULL, st.P = j->P ? j->P + d * 3 * H : NULL;
    for (size_t b = 0; b < B; b++)
        for (size_t u = 0; u < H; u++) {
            st.h[b * H + u] = j->h0 ? j->h0[d * j->sd + b * j->sb + u] : 0.0f;
            st.aux[b * H + u] = lstm && j->c0 ? j->c0[d * j->sd + b * j->sb + u] : 0.0f;
        }
    /* a step in parts of whole 8-unit groups (one part when it is small, and always inside a
     * direction that already runs on its own worker: nested dse__parallel calls run serially) */
    const size_t sgrain = avx2rnn_grain(B * g->G * 8 * H);
    for (size_t t0 = 0; t0 < T; t0 += Tc) {
        const size_t nt = T - t0 < Tc ? T - t0 : Tc, nc = nt * B;
        for (size_t tl = 0; tl < nt; tl++)   /* 1. XT */
            for (size_t b = 0; b < B; b++) {
                const size_t t = t0 + tl, len = avx2rnn_len(j, b), c = tl * B + b;
                if (t >= len) {
                    for (size_t k = 0; k < I; k++) xt[k * nc + c] = 0.0f;
                    continue;
                }
                const float *src = j->X + (st.rev ? len - 1 - t : t) * j->xt + b * j->xb;
                for (size_t k = 0; k < I; k++) xt[k * nc + c] = src[k];
            }
        dse_sgemm sg;   /* 2. GX^T = W XT, in blocks of W rows (whole 6-row blocks) */
        memset(&sg, 0, sizeof sg);
        sg.K = I, sg.A = W, sg.sai = I, sg.sak = 1, sg.B = xt, sg.ldb = nc, sg.C = gt, sg.ldc = nc;
        dse__parallel(j->cx, GH, (avx2rnn_grain(I * nc) + 5) / 6 * 6, avx2rnn_gemm_part, &sg);
        st.nc = nc;
        for (size_t tl = 0; tl < nt; tl++) {   /* 3., 4. */
            st.t = t0 + tl, st.c0 = tl * B;
            dse__parallel(j->cx, ng, sgrain, avx2rnn_step0, &st);
            if (!lstm && !j->lbr) dse__parallel(j->cx, ng, sgrain, avx2rnn_step1, &st);
            float *sw = st.h;
            st.h = st.hn, st.hn = sw;
        }
    }
    for (size_t b = 0; b < B; b++) {
        if (j->Yh) memcpy(j->Yh + d * j->sd + b * j->sb, st.h + b * H, H * sizeof(float));
        if (j->Yc) memcpy(j->Yc + d * j->sd + b * j->sb, st.aux + b * H, H * sizeof(float));
    }
}

static DSE_TARGET_AVX2 void avx2rnn_dirs(void *arg, size_t d0, size_t d1, unsigned worker) {
    const avx2rnn_job *j = arg;
    float *s = (float *)(void *)dse__worker_scratch(j->cx, worker);
    for (size_t d = d0; d < d1; d++) avx2rnn_dir(j, d, s);
}

static DSE_TARGET_AVX2 void avx2rnn_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, int lstm) {
    avx2rnn_job j;
    memset(&j, 0, sizeof j);
    dse_why why;
    dse__rnn_f32_geom(m, n, lstm, &j.g, &why);   /* validated at load */
    const dse_rnn_geom *g = &j.g;
    const void *pin[8] = {0};
    for (uint32_t k = 0; k < n->n_in && k < 8; k++)
        if (n->in[k] != DSE_NONE) pin[k] = dse__data(m, arena, n->in[k]);
    j.cx = cx, j.Tc = dse__rnn_f32_chunk(g);
    j.X = pin[0], j.W = pin[1], j.R = pin[2], j.Bv = pin[3], j.h0 = pin[5];
    j.c0 = lstm ? pin[6] : NULL, j.P = lstm ? pin[7] : NULL;
    if (pin[4]) j.lens = pin[4], j.lens32 = m->tensors[n->in[4]].dtype == DSE_DTYPE_INT32;
    j.Y = n->out[0] != DSE_NONE ? dse__data(m, arena, n->out[0]) : NULL;
    j.Yh = n->n_out >= 2 && n->out[1] != DSE_NONE ? dse__data(m, arena, n->out[1]) : NULL;
    j.Yc = lstm && n->n_out >= 3 && n->out[2] != DSE_NONE ? dse__data(m, arena, n->out[2]) : NULL;
    const dse_attr *ca = dse__attr(n, DSE_A_clip, DSE_ATTR_FLOAT);
    j.hasclip = ca != NULL, j.clip = ca ? ca->f : 0.0f;
    j.ifg = lstm && dse__attr_int(n, DSE_A_input_forget, 0) != 0;
    j.lbr = !lstm && dse__attr_int(n, DSE_A_linear_before_reset, 0) != 0;
    const size_t T = g->T, B = g->B, I = g->I, H = g->H;
    j.xt = g->layout ? I : B * I, j.xb = g->layout ? T * I : I;
    j.yt = g->layout ? g->D * H : g->D * B * H, j.yd = g->layout ? H : B * H, j.yb = g->layout ? T * g->D * H : H;
    j.sd = g->layout ? H : B * H, j.sb = g->layout ? g->D * H : H;
    /* a step big enough for two parts: the directions one after the other, each step split over
     * the threads (the step's R stays in the shared cache: two directions' R at once may not);
     * else the directions side by side */
    if (dse__threads(cx) > 1 && B * g->G * H * H >= 2 * 131072) {
        for (size_t d = 0; d < g->D; d++) avx2rnn_dir(&j, d, (float *)(void *)cx->scratch);
        return;
    }
    dse__parallel(cx, g->D, 1, avx2rnn_dirs, &j);
}

void dse_f32_lstm__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { avx2rnn_run(m, n, arena, cx, 1); }
void dse_f32_gru__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { avx2rnn_run(m, n, arena, cx, 0); }

#endif
