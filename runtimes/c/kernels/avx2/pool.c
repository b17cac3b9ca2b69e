/* pool.c (AVX2): float32 MaxPool, 1-D and 2-D, W stride 1 or 2, at most 64 kernel columns,
 * without the Indices output (others are left to REF). The REF kernel's bytes (kernels/ref/pool.c):
 * the first maximum in row-major window order with a strict >, taps outside the input skipped,
 * computed as separable vmaxps folds (mp_task's comment). Threads: blocks of (channel, output row).
 * float32 AveragePool, 1-D and 2-D (3-D and rows longer than AP_MAXB: REF), REF's bytes too
 * (ap_task's comment). */
#include "avx2_f32.h"

#if DSE_AVX2_F32

#define MP_MAXW 2048   /* floats of the row buffer on the stack (wider rows: REF) */
#define MP_MAXK 64     /* kernel columns (wider: REF) */

/* a 1-D or 2-D pool's geometry (1-D as one row): both pools' jobs start from it */
typedef struct avx2_pool_geom {
    size_t NC, IH, IW, OH, OW;
    int64_t kh, kw, sh, sw, dh, dw, pt, pb, pl, pr;
} avx2_pool_geom;

static int avx2_pool_geom_of(const dse_model *m, const dse_node *n, avx2_pool_geom *g) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t k[3], s[3], d[3], pb[3], pe[3];
    if (x->rank < 3 || x->rank > 4 || dse__nn_spatial(n, x->rank - 2, NULL, k, s, d, pb, pe)) return 1;
    g->NC = x->dims[0] * x->dims[1];
    g->IH = x->rank == 4 ? x->dims[2] : 1; g->IW = x->dims[x->rank - 1];
    g->OH = y->rank == 4 ? y->dims[2] : 1; g->OW = y->dims[y->rank - 1];
    g->kh = k[1]; g->kw = k[2]; g->sh = s[1]; g->sw = s[2]; g->dh = d[1]; g->dw = d[2];
    g->pt = pb[1]; g->pb = pe[1]; g->pl = pb[2]; g->pr = pe[2];
    return 0;
}

typedef struct mp_job {
    const float *x;
    float *y;
    avx2_pool_geom g;
} mp_job;

int dse__check_maxpool_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__maxpool_f32_valid(m, n, why)) return 1;
    mp_job j;
    if ((n->n_out == 2 && n->out[1] != DSE_NONE) || avx2_pool_geom_of(m, n, &j.g) || j.g.sw > 2 || j.g.kw > MP_MAXK ||
        (size_t)j.g.pl + j.g.IW + 1 > MP_MAXW || (j.g.OW + 7) / 8 * 8 * (size_t)j.g.sw + (size_t)((j.g.kw - 1) * j.g.dw) + 8 > MP_MAXW) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "Indices, 3-D, W stride > 2 or long rows", 0, 0, 0, 0);
        return 1;
    }
    return 0;
}

/* The fold REF computes, "start with the window's first valid tap t0, take every later tap that
 * is strictly greater", is vmaxps(tap, best) (= tap > best ? tap : best, NaN and -0 included).
 * Its result: t0 when t0 is NaN; otherwise the first tap, in row-major window order, of the
 * largest non-NaN value. That splits by rows: each kernel row's horizontal fold from -inf (the
 * row's first tap of its largest non-NaN value, -inf for none), then the vertical fold of those
 * from -inf, and at last t0 where t0 is NaN. Padding is -inf in the row buffer, which never
 * wins a strict >. A horizontal row serves every output row that reads it (kh / sh of them): the
 * last MP_SLOTS rows are kept. W stride 2 reads even and odd columns from de-interleaved copies
 * of the row, so every tap is one contiguous load. */
#define MP_SLOTS 8

typedef struct mp_ws {   /* per task, on the stack, sized to the row (at most about 100 KB) */
    float *buf;           /* the padded input row: -inf outside [pl, pl + IW) */
    float *ev, *od;       /* W stride 2: its even and odd columns */
    float *h;             /* MP_SLOTS horizontal folds of recent rows, OWp floats each */
    int64_t tag[MP_SLOTS];   /* c * IH + ih of each slot, -1 = empty */
    int nan[MP_SLOTS];       /* the row has a NaN: 1, none: 0, not looked: -1 */
    float *v;             /* the vertical fold of the current output row */
    int32_t *fidx, *fok;  /* each output column's first valid input column */
} mp_ws;

/* best[o] = max over kw of p[kw][o], from -inf, for o < OWp (4 vectors at a time) */
static DSE_TARGET_AVX2 void mp_hfold(const float *const *p, int64_t nk, size_t OWp, float *h) {
    const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
    size_t o = 0;
    for (; o + 32 <= OWp; o += 32) {
        __m256 b0 = ninf, b1 = ninf, b2 = ninf, b3 = ninf;
        for (int64_t k = 0; k < nk; k++) {
            const float *q = p[k] + o;
            b0 = _mm256_max_ps(_mm256_loadu_ps(q), b0);
            b1 = _mm256_max_ps(_mm256_loadu_ps(q + 8), b1);
            b2 = _mm256_max_ps(_mm256_loadu_ps(q + 16), b2);
            b3 = _mm256_max_ps(_mm256_loadu_ps(q + 24), b3);
        }
        _mm256_storeu_ps(h + o, b0); _mm256_storeu_ps(h + o + 8, b1);
        _mm256_storeu_ps(h + o + 16, b2); _mm256_storeu_ps(h + o + 24, b3);
    }
    for (; o < OWp; o += 8) {
        __m256 b = ninf;
        for (int64_t k = 0; k < nk; k++) b = _mm256_max_ps(_mm256_loadu_ps(p[k] + o), b);
        _mm256_storeu_ps(h + o, b);
    }
}

/* The slot holding row `tag`'s horizontal fold (computed when not kept). */
static DSE_TARGET_AVX2 int mp_hrow(const mp_job *j, mp_ws *w, const float *xr, int64_t tag, size_t OWp, unsigned *next) {
    for (int s = 0; s < MP_SLOTS; s++)
        if (w->tag[s] == tag) return s;
    const int s = (int)((*next)++ % MP_SLOTS);
    float *h = w->h + (size_t)s * OWp;
    const float *p[MP_MAXK];
    w->tag[s] = tag;
    w->nan[s] = -1;
    if (j->g.sw == 1) {
        memcpy(w->buf + j->g.pl, xr, j->g.IW * sizeof(float));
        for (int64_t kw = 0; kw < j->g.kw; kw++) p[kw] = w->buf + kw * j->g.dw;
    } else {   /* blocks of 16 columns inside the row are read from it; only the edge blocks need buf */
        const size_t IW = j->g.IW, pl = (size_t)j->g.pl;
        if (IW <= 32) {
            memcpy(w->buf + pl, xr, IW * sizeof(float));
        } else {
            memcpy(w->buf + pl, xr, 16 * sizeof(float));
            memcpy(w->buf + pl + IW - 16, xr + IW - 16, 16 * sizeof(float));
        }
        const size_t half = OWp + (size_t)((j->g.kw - 1) * j->g.dw) / 2 + 1;   /* columns of each phase read */
        for (size_t q = 0; q < half; q += 8) {
            const float *src = 2 * q >= pl && 2 * q + 16 <= pl + IW ? xr + (2 * q - pl) : w->buf + 2 * q;
            const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 8);
            const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            _mm256_storeu_ps(w->ev + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
            _mm256_storeu_ps(w->od + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0))));
        }
        for (int64_t kw = 0; kw < j->g.kw; kw++) {
            const int64_t off = kw * j->g.dw;
            p[kw] = (off & 1 ? w->od : w->ev) + off / 2;
        }
    }
    mp_hfold(p, j->g.kw, OWp, h);
    return s;
}

static DSE_TARGET_AVX2 int mp_has_nan(const float *r, size_t n) {
    __m256 u = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(r + i);
        u = _mm256_or_ps(u, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    }
    for (; i < n; i++) if (r[i] != r[i]) return 1;
    return _mm256_movemask_ps(u) != 0;
}

static DSE_TARGET_AVX2 void mp_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const mp_job *j = arg;
    const size_t OWp = (j->g.OW + 7) / 8 * 8, span = (size_t)((j->g.kw - 1) * j->g.dw);
    const size_t half = (OWp + span / 2 + 1 + 7) / 8 * 8 + 8;   /* floats of ev and od */
    size_t nb = OWp * (size_t)j->g.sw + span + 48;
    if (nb < (size_t)j->g.pl + j->g.IW + 8) nb = (size_t)j->g.pl + j->g.IW + 8;
    if (nb < 2 * half + 16) nb = 2 * half + 16;
    mp_ws ws, *w = &ws;
    float *mem = (float *)__builtin_alloca(sizeof(float) * (nb + 2 * half + (MP_SLOTS + 1) * OWp) + 2 * sizeof(int32_t) * OWp);
    w->buf = mem; w->ev = w->buf + nb; w->od = w->ev + half; w->h = w->od + half; w->v = w->h + MP_SLOTS * OWp;
    w->fidx = (int32_t *)(void *)(w->v + OWp); w->fok = w->fidx + OWp;
    unsigned next = 0;
    for (size_t i = 0; i < nb; i++) w->buf[i] = -__builtin_inff();
    for (int s = 0; s < MP_SLOTS; s++) w->tag[s] = -1;
    for (size_t ow = 0; ow < OWp; ow++) {   /* each column's first valid tap (none: masked out) */
        w->fidx[ow] = 0; w->fok[ow] = 0;
        for (int64_t kw = 0; ow < j->g.OW && kw < j->g.kw; kw++) {
            const int64_t iw = (int64_t)ow * j->g.sw - j->g.pl + kw * j->g.dw;
            if (iw >= 0 && iw < (int64_t)j->g.IW) { w->fidx[ow] = (int32_t)iw; w->fok[ow] = -1; break; }
        }
    }
    const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
    for (size_t it = begin; it < end; it++) {
        const size_t c = it / j->g.OH, oh = it % j->g.OH;
        const float *xc = j->x + c * j->g.IH * j->g.IW;
        float *yr = j->y + (c * j->g.OH + oh) * j->g.OW;
        int64_t first = -1;
        int seen = 0;
        for (size_t o = 0; o < OWp; o += 8) _mm256_storeu_ps(w->v + o, ninf);
        int64_t k0, k1;   /* the kernel rows inside the input (the others are skipped) */
        dse__tap_range((int64_t)oh * j->g.sh - j->g.pt, j->g.kh, j->g.dh, 0, (int64_t)j->g.IH, &k0, &k1);
        for (int64_t kh = k0; kh < k1; kh++) {
            const int64_t ih = (int64_t)oh * j->g.sh - j->g.pt + kh * j->g.dh;
            const int sl = mp_hrow(j, w, xc + (size_t)ih * j->g.IW, (int64_t)(c * j->g.IH) + ih, OWp, &next);
            if (!seen) {   /* the first valid row: does it hold a NaN (then t0 may be one)? */
                seen = 1;
                if (w->nan[sl] < 0) w->nan[sl] = mp_has_nan(xc + (size_t)ih * j->g.IW, j->g.IW);
                if (w->nan[sl]) first = ih;
            }
            const float *h = w->h + (size_t)sl * OWp;
            for (size_t o = 0; o < OWp; o += 8)
                _mm256_storeu_ps(w->v + o, _mm256_max_ps(_mm256_loadu_ps(h + o), _mm256_loadu_ps(w->v + o)));
        }
        for (size_t o = 0; o < OWp; o += 8) {
            __m256 y = _mm256_loadu_ps(w->v + o);
            if (first >= 0) {   /* t0, the window's first valid tap: NaN there is REF's answer (rare: gathered) */
                const __m256 t0 = _mm256_mask_i32gather_ps(ninf, xc + (size_t)first * j->g.IW,
                                                           _mm256_loadu_si256((const __m256i *)(const void *)(w->fidx + o)),
                                                           _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(const void *)(w->fok + o))), 4);
                y = _mm256_blendv_ps(y, t0, _mm256_cmp_ps(t0, t0, _CMP_UNORD_Q));
            }
            if (o + 8 <= j->g.OW) { _mm256_storeu_ps(yr + o, y); continue; }
            float t[8];
            _mm256_storeu_ps(t, y);
            for (size_t l = 0; o + l < j->g.OW; l++) yr[o + l] = t[l];
        }
    }
}

void dse_f32_maxpool__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    mp_job j;
    avx2_pool_geom_of(m, n, &j.g);
    j.x = dse__data(m, arena, n->in[0]);
    j.y = dse__data(m, arena, n->out[0]);
    if (!j.g.NC || !j.g.OH || !j.g.OW) return;
    dse__parallel(cx, j.g.NC * j.g.OH, 1 + 4096 / j.g.OW, mp_task, &j);
}


/* AveragePool, 1-D and 2-D (any kernel, stride, dilation, pads, ceil_mode, count_include_pad):
 * REF's bytes (kernels/ref/pool.c). REF sums each window separably, per kernel row
 * row = x[kw=0] + x[1] + ... (taps in the padding are +0.0), then plane = row(kh=0) + row(1) + ...
 * (rows in the padding are +0.0 sums), and divides by the window's count converted to float. Here
 * each lane is one output column and does that same sequence of single-rounded adds (vaddps) and
 * the one division (vdivps): the same bytes. An input row is copied once into a zero-padded
 * buffer (the padding), and for a W stride s > 1 split into its s phases (column q of phase p is
 * padded column q * s + p), so tap kw of 8 consecutive output columns is one contiguous load.
 * Two taps at W stride 2 (2x2/2, rapidocr/rec's 3x2/3x2): x[2o] + x[2o + 1] of 8 columns is one
 * vhaddps of 16 input columns (read in place when inside the row), its 64-bit pairs reordered.
 * Counts: per column (W) and per output row (H), their product in int32 (REF's int64 product,
 * the same value: kh * kw < 2^31 is checked), converted by vcvtdq2ps (round to nearest, as REF's
 * int64 to float). The row sums of the last AP_SLOTS input rows are kept: an output row reuses
 * those it shares with the previous ones (kh > sh). Threads: blocks of (channel, output row). */
#define AP_MAXB 4096   /* floats of the padded row buffer on the stack (longer rows: REF) */
#define AP_SLOTS 8     /* row sums kept for the next output rows (rows of at most AP_MAXB / 8 floats) */

typedef struct ap_job {
    const float *x;
    float *y;
    avx2_pool_geom g;
    size_t OWp, L, NB;   /* OWp: OW rounded up to 8; L: floats of each phase; NB: of the buffer */
    int incl, pair;   /* pair: kw 2, W stride 2, W dilation 1 (the hadd path) */
} ap_job;

static int ap_geom(const dse_model *m, const dse_node *n, ap_job *j) {
    if (avx2_pool_geom_of(m, n, &j->g)) return 1;
    j->incl = dse__attr_int(n, DSE_A_count_include_pad, 0) != 0;
    if (j->g.kh < 1 || j->g.kw < 1 || j->g.sw < 1 || j->g.dw < 1 || j->g.pl < 0 || j->g.kh > (1 << 15) || j->g.kw > (1 << 15)) return 1;
    j->OWp = (j->g.OW + 7) / 8 * 8;
    const size_t span = (size_t)((j->g.kw - 1) * j->g.dw), sw = (size_t)j->g.sw;
    j->L = (j->OWp + span / sw + 7) / 8 * 8;   /* phase columns read: q < OWp + span / sw */
    size_t nb = j->L * sw + 16;
    if (nb < (size_t)j->g.pl + j->g.IW + 8) nb = (size_t)j->g.pl + j->g.IW + 8;
    if (nb < j->OWp + span + 8) nb = j->OWp + span + 8;
    j->NB = nb;
    j->pair = j->g.kw == 2 && j->g.sw == 2 && j->g.dw == 1;
    return 0;
}

int dse__check_avgpool_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__avgpool_f32_valid(m, n, why)) return 1;
    ap_job j;
    if (ap_geom(m, n, &j) || j.NB > AP_MAXB || j.g.sw > 64) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "3-D, W stride > 64 or long rows", 0, 0, 0, 0);
        return 1;
    }
    return 0;
}

/* Taps inside [lo, hi) of the window starting at o * s - p with k taps d apart (REF's count). */
static int32_t ap_count(int64_t o, int64_t k, int64_t s, int64_t d, int64_t p, int64_t lo, int64_t hi) {
    int64_t t0, t1;
    dse__tap_range(o * s - p, k, d, lo, hi, &t0, &t1);
    return (int32_t)(t1 - t0);
}

/* plane = row (first kernel row inside the input: `first`) or plane + row: REF's order */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 void ap_acc(float *plane, __m256 row, int first) {
    _mm256_storeu_ps(plane, first ? row : _mm256_add_ps(_mm256_loadu_ps(plane), row));
}

/* REF's row sum x[kw=0] + x[1] + ... of each output column o < OWp for input row xr, stored to h
 * (kh 0) or added to it (h + sum: ap_acc). */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 void ap_hrow(const ap_job *j, const float *xr, float *buf, float *ph,
                                                                           float *h, int first) {
    const size_t OWp = j->OWp, L = j->L, sw = (size_t)j->g.sw, pl = (size_t)j->g.pl;
    if (j->pair) {   /* 2 taps, W stride 2: x[2o] + x[2o + 1] is vhaddps of 16 columns, reordered */
        int copied = 0;
        for (size_t o = 0; o < OWp; o += 8) {
            const int64_t c0 = 2 * (int64_t)o - j->g.pl;
            const float *src;
            if (c0 >= 0 && c0 + 16 <= (int64_t)j->g.IW) {
                src = xr + c0;
            } else {
                if (!copied) { memcpy(buf + pl, xr, j->g.IW * sizeof(float)); copied = 1; }
                src = buf + 2 * o;
            }
            const __m256 s = _mm256_hadd_ps(_mm256_loadu_ps(src), _mm256_loadu_ps(src + 8));
            ap_acc(h + o, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0))), first);
        }
        return;
    }
    memcpy(buf + pl, xr, j->g.IW * sizeof(float));
    const float *base = buf;
    if (sw == 2) {
        for (size_t q = 0; q < L; q += 8) {
            const __m256 a = _mm256_loadu_ps(buf + 2 * q), b = _mm256_loadu_ps(buf + 2 * q + 8);
            const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            _mm256_storeu_ps(ph + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
            _mm256_storeu_ps(ph + L + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0))));
        }
        base = ph;
    } else if (sw > 2) {
        for (size_t p = 0; p < sw; p++)
            for (size_t q = 0; q < L; q++) ph[p * L + q] = buf[q * sw + p];
        base = ph;
    }
    for (size_t o = 0; o < OWp; o += 8) {
        __m256 r = _mm256_loadu_ps(base + o);   /* kw = 0: offset 0, phase 0 */
        for (int64_t kw = 1; kw < j->g.kw; kw++) {
            const size_t off = (size_t)(kw * j->g.dw);
            r = _mm256_add_ps(r, _mm256_loadu_ps(base + (off % sw) * L + off / sw + o));
        }
        ap_acc(h + o, r, first);
    }
}

static DSE_TARGET_AVX2 void ap_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const ap_job *j = arg;
    const size_t OWp = j->OWp, L = j->L, sw = (size_t)j->g.sw;
    const int reuse = (j->g.kh - 1) * j->g.dh + 1 > j->g.sh && j->g.OH > 1;   /* output rows share input rows */
    const size_t nslot = !reuse ? 0 : OWp * AP_SLOTS <= AP_MAXB ? AP_SLOTS : 1;
    float *mem = (float *)__builtin_alloca(sizeof(float) * (j->NB + (sw > 1 ? sw * L : 0) + OWp * (1 + nslot)) + sizeof(int32_t) * OWp + 64);
    float *buf = mem, *ph = buf + j->NB, *plane = ph + (sw > 1 ? sw * L : 0), *hs = plane + OWp;
    int32_t *cw = (int32_t *)(void *)(hs + OWp * nslot);
    int64_t tag[AP_SLOTS];
    size_t next = 0;
    for (size_t i = 0; i < AP_SLOTS; i++) tag[i] = -1;
    for (size_t i = 0; i < j->NB; i++) buf[i] = 0.0f;
    const int64_t wlo = j->incl ? -j->g.pl : 0, whi = (int64_t)j->g.IW + (j->incl ? j->g.pr : 0);
    const int64_t hlo = j->incl ? -j->g.pt : 0, hhi = (int64_t)j->g.IH + (j->incl ? j->g.pb : 0);
    for (size_t ow = 0; ow < OWp; ow++) cw[ow] = ow < j->g.OW ? ap_count((int64_t)ow, j->g.kw, j->g.sw, j->g.dw, j->g.pl, wlo, whi) : 1;
    for (size_t it = begin; it < end; it++) {
        const size_t c = it / j->g.OH, oh = it % j->g.OH;
        const float *xc = j->x + c * j->g.IH * j->g.IW;
        float *yr = j->y + (c * j->g.OH + oh) * j->g.OW;
        /* Only the kernel rows inside the input are summed (REF's order). A row in the padding
         * sums to +0.0, and adding +0.0 changes a sum only from -0.0 to +0.0 (REF's argument,
         * kernels/ref/pool.c): so when the window has such rows, + 0.0 at the end. */
        int64_t k0, k1;
        dse__tap_range((int64_t)oh * j->g.sh - j->g.pt, j->g.kh, j->g.dh, 0, (int64_t)j->g.IH, &k0, &k1);
        if (k0 >= k1)
            for (size_t o = 0; o < OWp; o += 8) _mm256_storeu_ps(plane + o, _mm256_setzero_ps());
        for (int64_t kh = k0; kh < k1; kh++) {
            const int64_t ih = (int64_t)oh * j->g.sh - j->g.pt + kh * j->g.dh;
            if (!reuse) {   /* no row is shared by two output rows: summed straight into the plane */
                ap_hrow(j, xc + (size_t)ih * j->g.IW, buf, ph, plane, kh == k0);
                continue;
            }
            const int64_t tg = (int64_t)(c * j->g.IH) + ih;
            size_t sl = 0;
            while (sl < nslot && tag[sl] != tg) sl++;
            if (sl == nslot) {   /* not kept: its horizontal sums into the next slot */
                sl = next++ % nslot;
                tag[sl] = tg;
                ap_hrow(j, xc + (size_t)ih * j->g.IW, buf, ph, hs + sl * OWp, 1);
            }
            const float *h = hs + sl * OWp;
            for (size_t o = 0; o < OWp; o += 8) ap_acc(plane + o, _mm256_loadu_ps(h + o), kh == k0);
        }
        if (k1 - k0 < j->g.kh)
            for (size_t o = 0; o < OWp; o += 8) _mm256_storeu_ps(plane + o, _mm256_add_ps(_mm256_loadu_ps(plane + o), _mm256_setzero_ps()));
        const __m256i ch = _mm256_set1_epi32(ap_count((int64_t)oh, j->g.kh, j->g.sh, j->g.dh, j->g.pt, hlo, hhi));
        for (size_t o = 0; o < OWp; o += 8) {
            const __m256 cnt = _mm256_cvtepi32_ps(_mm256_mullo_epi32(ch, _mm256_loadu_si256((const __m256i *)(const void *)(cw + o))));
            const __m256 y = _mm256_div_ps(_mm256_loadu_ps(plane + o), cnt);
            if (o + 8 <= j->g.OW) _mm256_storeu_ps(yr + o, y);
            else _mm256_maskstore_ps(yr + o, dse__avx2_mask(j->g.OW - o), y);
        }
    }
}

void dse_f32_avgpool__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ap_job j;
    ap_geom(m, n, &j);
    j.x = dse__data(m, arena, n->in[0]);
    j.y = dse__data(m, arena, n->out[0]);
    if (!j.g.NC || !j.g.OH || !j.g.OW) return;
    dse__parallel(cx, j.g.NC * j.g.OH, 1 + 4096 / j.g.OW, ap_task, &j);
}

#endif
