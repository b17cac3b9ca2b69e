/* pool.c (AVX2): float32 MaxPool, 1-D and 2-D, W stride 1 or 2, without the Indices output
 * (others are left to REF). The REF kernel's bytes (kernels/ref/pool.c): the first maximum in
 * row-major window order with a strict >, taps outside the input skipped: 8 output columns per
 * vector, each lane taking its first valid tap and then any tap that is greater (mp_chunk).
 * Threads: blocks of (channel, output row). */
#include "avx2_f32.h"

#if DSE_AVX2_F32

#define MP_MAXW 2048   /* floats of the row buffer on the stack (wider rows: REF) */

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
    if ((n->n_out == 2 && n->out[1] != DSE_NONE) || mp_geom(m, n, &j) || j.sw > 2 ||
        (size_t)j.pl + j.IW + 1 > MP_MAXW || (j.OW + 7) / 8 * 8 * (size_t)j.sw + (size_t)((j.kw - 1) * j.dw) + 8 > MP_MAXW) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "Indices, 3-D, W stride > 2 or long rows", 0, 0, 0, 0);
        return 1;
    }
    return 0;
}

static DSE_TARGET_AVX2 __m256 mp_load(const float *p, int64_t sw) {   /* p[0], p[sw], ..., p[7*sw] */
    if (sw == 1) return _mm256_loadu_ps(p);
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* Output row oh, vectors [v0, v0 + NV) (NV <= 4, in registers). The valid kernel rows are
 * copied one at a time into buf at column pl; buf's other columns stay -inf. A lane starts with
 * its first valid tap (REF takes it whatever it is, NaN included: the buffer column first[ow]
 * of the first valid kernel row), then every tap of the valid rows in window order replaces it
 * when strictly greater: padding (-inf) never does, so each lane gets REF's value. */
DSE_AI void mp_chunk(const mp_job *j, const int NV, const float *xc, size_t oh, int64_t v0, float *yr, float *buf,
                    const int32_t *first) {
    __m256 best[4];
    int any = 0;
    DSE_UNROLL
    for (int v = 0; v < NV; v++) best[v] = _mm256_set1_ps(-__builtin_inff());   /* no valid row: -inf */
    for (int64_t kh = 0; kh < j->kh; kh++) {
        const int64_t ih = (int64_t)oh * j->sh - j->pt + kh * j->dh;
        if (ih < 0 || ih >= (int64_t)j->IH) continue;
        memcpy(buf + j->pl, xc + (size_t)ih * j->IW, j->IW * sizeof(float));   /* input column iw at buf[pl + iw] */
        if (!any) {   /* the first valid kernel row: each lane's first valid tap */
            DSE_UNROLL
            for (int v = 0; v < NV; v++)
                best[v] = _mm256_i32gather_ps(buf, _mm256_loadu_si256((const __m256i *)(first + 8 * (v0 + v))), 4);
            any = 1;
        }
        for (int64_t kw = 0; kw < j->kw; kw++) {
            const float *src = buf + 8 * v0 * j->sw + kw * j->dw;
            DSE_UNROLL
            for (int v = 0; v < NV; v++) {
                const __m256 x = mp_load(src + 8 * v * j->sw, j->sw);
                best[v] = _mm256_blendv_ps(best[v], x, _mm256_cmp_ps(x, best[v], _CMP_GT_OQ));
            }
        }
    }
    DSE_UNROLL
    for (int v = 0; v < NV; v++) {
        const int64_t ow = 8 * (v0 + v);
        const __m256 y = best[v];
        if (ow + 8 <= (int64_t)j->OW) { _mm256_storeu_ps(yr + ow, y); continue; }
        float t[8];
        _mm256_storeu_ps(t, y);
        for (int64_t l = 0; ow + l < (int64_t)j->OW; l++) yr[ow + l] = t[l];
    }
}

#define MP_CHUNK(NV)                                                                                          \
    static DSE_TARGET_AVX2 void mp_chunk##NV(const mp_job *j, const float *xc, size_t oh, int64_t v0, float *yr, \
                                             float *buf, const int32_t *first) {                              \
        mp_chunk(j, NV, xc, oh, v0, yr, buf, first);                                                          \
    }
MP_CHUNK(1)
MP_CHUNK(2)
MP_CHUNK(3)
MP_CHUNK(4)

static DSE_TARGET_AVX2 void mp_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const mp_job *j = arg;
    float buf[MP_MAXW];
    int32_t first[MP_MAXW];
    const int64_t nv = ((int64_t)j->OW + 7) / 8;
    for (size_t i = 0; i < MP_MAXW; i++) buf[i] = -__builtin_inff();
    for (int64_t ow = 0; ow < 8 * nv; ow++) {   /* each column's first valid tap (column MP_MAXW - 1: -inf) */
        first[ow] = MP_MAXW - 1;
        for (int64_t kw = 0; ow < (int64_t)j->OW && kw < j->kw; kw++) {
            const int64_t iw = ow * j->sw - j->pl + kw * j->dw;
            if (iw >= 0 && iw < (int64_t)j->IW) { first[ow] = (int32_t)(j->pl + iw); break; }
        }
    }
    for (size_t it = begin; it < end; it++) {
        const size_t c = it / j->OH, oh = it % j->OH;
        const float *xc = j->x + c * j->IH * j->IW;
        float *yr = j->y + (c * j->OH + oh) * j->OW;
        for (int64_t v0 = 0; v0 < nv; v0 += 4) {
            switch (nv - v0 < 4 ? nv - v0 : 4) {
            case 4: mp_chunk4(j, xc, oh, v0, yr, buf, first); break;
            case 3: mp_chunk3(j, xc, oh, v0, yr, buf, first); break;
            case 2: mp_chunk2(j, xc, oh, v0, yr, buf, first); break;
            default: mp_chunk1(j, xc, oh, v0, yr, buf, first); break;
            }
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
