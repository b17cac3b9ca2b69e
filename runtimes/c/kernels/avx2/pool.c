/* pool.c (AVX2): float32 MaxPool, 1-D and 2-D, W stride 1 or 2, at most 64 kernel columns,
 * without the Indices output (others are left to REF). The REF kernel's bytes (kernels/ref/pool.c):
 * the first maximum in row-major window order with a strict >, taps outside the input skipped,
 * computed as separable vmaxps folds (mp_task's comment). Threads: blocks of (channel, output row). */
#include "avx2_f32.h"

#if DSE_AVX2_F32

#define MP_MAXW 2048   /* floats of the row buffer on the stack (wider rows: REF) */
#define MP_MAXK 64     /* kernel columns (wider: REF) */

typedef struct mp_job {
    const float *x;
    float *y;
    size_t NC, IH, IW, OH, OW;
    int64_t kh, kw, sh, sw, dh, dw, pt, pl;
} mp_job;

static int mp_geom(const dse_model *m, const dse_node *n, mp_job *j) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t k[3], s[3], d[3], pb[3], pe[3];
    if (x->rank < 3 || x->rank > 4 || dse__nn_spatial(n, x->rank - 2, NULL, k, s, d, pb, pe)) return 1;
    j->NC = x->dims[0] * x->dims[1];
    j->IH = x->rank == 4 ? x->dims[2] : 1; j->IW = x->dims[x->rank - 1];
    j->OH = y->rank == 4 ? y->dims[2] : 1; j->OW = y->dims[y->rank - 1];
    j->kh = k[1]; j->kw = k[2]; j->sh = s[1]; j->sw = s[2]; j->dh = d[1]; j->dw = d[2]; j->pt = pb[1]; j->pl = pb[2];
    return 0;
}

int dse__check_maxpool_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__maxpool_f32_valid(m, n, why)) return 1;
    mp_job j;
    if ((n->n_out == 2 && n->out[1] != DSE_NONE) || mp_geom(m, n, &j) || j.sw > 2 || j.kw > MP_MAXK ||
        (size_t)j.pl + j.IW + 1 > MP_MAXW || (j.OW + 7) / 8 * 8 * (size_t)j.sw + (size_t)((j.kw - 1) * j.dw) + 8 > MP_MAXW) {
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
    if (j->sw == 1) {
        memcpy(w->buf + j->pl, xr, j->IW * sizeof(float));
        for (int64_t kw = 0; kw < j->kw; kw++) p[kw] = w->buf + kw * j->dw;
    } else {   /* blocks of 16 columns inside the row are read from it; only the edge blocks need buf */
        const size_t IW = j->IW, pl = (size_t)j->pl;
        if (IW <= 32) {
            memcpy(w->buf + pl, xr, IW * sizeof(float));
        } else {
            memcpy(w->buf + pl, xr, 16 * sizeof(float));
            memcpy(w->buf + pl + IW - 16, xr + IW - 16, 16 * sizeof(float));
        }
        const size_t half = OWp + (size_t)((j->kw - 1) * j->dw) / 2 + 1;   /* columns of each phase read */
        for (size_t q = 0; q < half; q += 8) {
            const float *src = 2 * q >= pl && 2 * q + 16 <= pl + IW ? xr + (2 * q - pl) : w->buf + 2 * q;
            const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 8);
            const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            _mm256_storeu_ps(w->ev + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
            _mm256_storeu_ps(w->od + q, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0))));
        }
        for (int64_t kw = 0; kw < j->kw; kw++) {
            const int64_t off = kw * j->dw;
            p[kw] = (off & 1 ? w->od : w->ev) + off / 2;
        }
    }
    mp_hfold(p, j->kw, OWp, h);
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
    const size_t OWp = (j->OW + 7) / 8 * 8, span = (size_t)((j->kw - 1) * j->dw);
    const size_t half = (OWp + span / 2 + 1 + 7) / 8 * 8 + 8;   /* floats of ev and od */
    size_t nb = OWp * (size_t)j->sw + span + 48;
    if (nb < (size_t)j->pl + j->IW + 8) nb = (size_t)j->pl + j->IW + 8;
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
        for (int64_t kw = 0; ow < j->OW && kw < j->kw; kw++) {
            const int64_t iw = (int64_t)ow * j->sw - j->pl + kw * j->dw;
            if (iw >= 0 && iw < (int64_t)j->IW) { w->fidx[ow] = (int32_t)iw; w->fok[ow] = -1; break; }
        }
    }
    const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
    for (size_t it = begin; it < end; it++) {
        const size_t c = it / j->OH, oh = it % j->OH;
        const float *xc = j->x + c * j->IH * j->IW;
        float *yr = j->y + (c * j->OH + oh) * j->OW;
        int64_t first = -1;
        int seen = 0;
        for (size_t o = 0; o < OWp; o += 8) _mm256_storeu_ps(w->v + o, ninf);
        for (int64_t kh = 0; kh < j->kh; kh++) {
            const int64_t ih = (int64_t)oh * j->sh - j->pt + kh * j->dh;
            if (ih < 0 || ih >= (int64_t)j->IH) continue;
            const int sl = mp_hrow(j, w, xc + (size_t)ih * j->IW, (int64_t)(c * j->IH) + ih, OWp, &next);
            if (!seen) {   /* the first valid row: does it hold a NaN (then t0 may be one)? */
                seen = 1;
                if (w->nan[sl] < 0) w->nan[sl] = mp_has_nan(xc + (size_t)ih * j->IW, j->IW);
                if (w->nan[sl]) first = ih;
            }
            const float *h = w->h + (size_t)sl * OWp;
            for (size_t o = 0; o < OWp; o += 8)
                _mm256_storeu_ps(w->v + o, _mm256_max_ps(_mm256_loadu_ps(h + o), _mm256_loadu_ps(w->v + o)));
        }
        for (size_t o = 0; o < OWp; o += 8) {
            __m256 y = _mm256_loadu_ps(w->v + o);
            if (first >= 0) {   /* t0, the window's first valid tap: NaN there is REF's answer (rare: gathered) */
                const __m256 t0 = _mm256_mask_i32gather_ps(ninf, xc + (size_t)first * j->IW,
                                                           _mm256_loadu_si256((const __m256i *)(const void *)(w->fidx + o)),
                                                           _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(const void *)(w->fok + o))), 4);
                y = _mm256_blendv_ps(y, t0, _mm256_cmp_ps(t0, t0, _CMP_UNORD_Q));
            }
            if (o + 8 <= j->OW) { _mm256_storeu_ps(yr + o, y); continue; }
            float t[8];
            _mm256_storeu_ps(t, y);
            for (size_t l = 0; o + l < j->OW; l++) yr[o + l] = t[l];
        }
    }
}

void dse_f32_maxpool__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    mp_job j;
    mp_geom(m, n, &j);
    j.x = dse__data(m, arena, n->in[0]);
    j.y = dse__data(m, arena, n->out[0]);
    if (!j.NC || !j.OH || !j.OW) return;
    dse__parallel(cx, j.NC * j.OH, 1 + 4096 / j.OW, mp_task, &j);
}

#endif
