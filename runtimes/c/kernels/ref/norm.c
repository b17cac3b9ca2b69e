/* norm.c: fp32 BatchNormalization (inference), InstanceNormalization, LayerNormalization.
 * Parameters (scale, bias, mean, var) may be float32 or float16 constants (widened exactly).
 *
 * BatchNormalization, per channel c (x is N C ...):  inv = scale / sqrt(var + eps);
 *     shift = b - mean * inv;  y = x * inv + shift.  Elementwise, sqrtf is exact: bit-identical
 *     to the numpy reference.
 * InstanceNormalization, per (n, c) over the spatial elements in memory order:
 *     mean = (sequential sum of x) / cnt;  var = (sequential sum of (x - mean)^2) / cnt;
 *     y = (x - mean) / sqrt(var + eps) * scale[c] + b[c].
 * LayerNormalization (axis normalised like ONNX; stash_type 1 = float32): each of the
 *     prod(dims[:axis]) rows of prod(dims[axis:]) elements: mean and var as above, then
 *     inv = 1 / sqrt(var + eps);  y = (x - mean) * inv * scale[j] (+ b[j]); optional outputs
 *     Mean and InvStdDev (shape dims[:axis] + ones). scale/b hold prod(dims[axis:]) elements
 *     or one.
 * The sums are sequential (numpy's mean sums pairwise): ~1e-6 relative; LayerNormalization
 * takes the sums of four rows side by side (independent chains, each in that order). Rows are
 * read fully (mean, var) before any output is written, so the exporter may run these in place. */
#include <math.h>   /* sqrtf: exact, allowed (DESIGN.md §3) */

#include "internal.h"

static int norm_fh(const dse_tensor *t) { return t && (t->dtype == DSE_DTYPE_FLOAT32 || t->dtype == DSE_DTYPE_FLOAT16); }

static int same_xy(const dse_model *m, const dse_node *n) {
    const dse_tensor *x = n->n_in ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    return x && y && x->dtype == DSE_DTYPE_FLOAT32 && y->dtype == DSE_DTYPE_FLOAT32 && x->rank == y->rank &&
           !memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]);
}

int dse__check_batchnorm_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    int ok = n->n_in == 5 && n->n_out == 1 && same_xy(m, n) && m->tensors[n->in[0]].rank >= 2 &&
             !dse__attr_int(n, DSE_A_training_mode, 0);
    for (uint32_t k = 1; ok && k < 5; k++) {
        const dse_tensor *p = dse__t(m, n->in[k]);
        ok = norm_fh(p) && p->numel == m->tensors[n->in[0]].dims[1];
    }
    if (!ok) { DSE_WHY(why, NORM_BATCHNORMALIZATION_INFERENCE_NEEDS_FLOAT32); return 1; }
    return 0;
}

void dse_f32_batchnorm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const dse_tensor *ts = &m->tensors[n->in[1]], *tb = &m->tensors[n->in[2]], *tm = &m->tensors[n->in[3]], *tv = &m->tensors[n->in[4]];
    const void *ps = dse__data(m, arena, n->in[1]), *pb = dse__data(m, arena, n->in[2]);
    const void *pm = dse__data(m, arena, n->in[3]), *pv = dse__data(m, arena, n->in[4]);
    const float eps = dse__attr_float(n, DSE_A_epsilon, 1e-5f);
    const size_t N = xt->dims[0], C = xt->dims[1], sp = (N && C) ? xt->numel / (N * C) : 0;
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    for (size_t c = 0; c < C; c++) {
        const float inv = dse__nn_ld(ts, ps, c) / sqrtf(dse__nn_ld(tv, pv, c) + eps);
        const float shift = dse__nn_ld(tb, pb, c) - dse__nn_ld(tm, pm, c) * inv;
        for (size_t b = 0; b < N; b++) {
            const size_t o = (b * C + c) * sp;
            for (size_t i = 0; i < sp; i++) y[o + i] = x[o + i] * inv + shift;
        }
    }
}

int dse__check_instancenorm_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    int ok = n->n_in == 3 && n->n_out == 1 && same_xy(m, n) && m->tensors[n->in[0]].rank >= 3;
    for (uint32_t k = 1; ok && k < 3; k++) {
        const dse_tensor *p = dse__t(m, n->in[k]);
        ok = norm_fh(p) && p->numel == m->tensors[n->in[0]].dims[1];
    }
    if (!ok) { DSE_WHY(why, NORM_INSTANCENORMALIZATION_NEEDS_FLOAT32_X); return 1; }
    return 0;
}

/* mean and variance of v[0..cnt), sequential sums */
static void moments(const float *v, size_t cnt, float *mean, float *var) {
    float s = 0.0f, q = 0.0f;
    for (size_t i = 0; i < cnt; i++) s = s + v[i];
    const float mu = s / (float)cnt;
    for (size_t i = 0; i < cnt; i++) { const float d = v[i] - mu; q = q + d * d; }
    *mean = mu;
    *var = q / (float)cnt;
}

void dse_f32_instancenorm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]], *ts = &m->tensors[n->in[1]], *tb = &m->tensors[n->in[2]];
    const void *ps = dse__data(m, arena, n->in[1]), *pb = dse__data(m, arena, n->in[2]);
    const float eps = dse__attr_float(n, DSE_A_epsilon, 1e-5f);
    const size_t N = xt->dims[0], C = xt->dims[1], sp = (N && C) ? xt->numel / (N * C) : 0;
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    if (!sp) return;
    for (size_t b = 0; b < N; b++)
        for (size_t c = 0; c < C; c++) {
            const size_t o = (b * C + c) * sp;
            float mean, var;
            moments(x + o, sp, &mean, &var);
            const float sd = sqrtf(var + eps), sc = dse__nn_ld(ts, ps, c), bi = dse__nn_ld(tb, pb, c);
            for (size_t i = 0; i < sp; i++) y[o + i] = (x[o + i] - mean) / sd * sc + bi;
        }
}

static int ln_axis(const dse_tensor *x, const dse_node *n, size_t *rows, size_t *cols) {
    int64_t a = dse__attr_int(n, DSE_A_axis, -1);
    if (a < 0) a += (int64_t)x->rank;
    if (a < 0 || a >= (int64_t)x->rank) return -1;
    *rows = 1; *cols = 1;
    for (unsigned d = 0; d < x->rank; d++) { if ((int64_t)d < a) *rows *= x->dims[d]; else *cols *= x->dims[d]; }
    return (int)a;
}

int dse__check_layernorm_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t rows, cols;
    const dse_tensor *x = n->n_in ? dse__t(m, n->in[0]) : NULL;
    int a = x ? ln_axis(x, n, &rows, &cols) : -1;
    int ok = (n->n_in == 2 || n->n_in == 3) && n->n_out >= 1 && n->n_out <= 3 && same_xy(m, n) && a >= 0 &&
             dse__attr_int(n, DSE_A_stash_type, 1) == 1;
    for (uint32_t k = 1; ok && k < n->n_in; k++) {
        const dse_tensor *p = dse__t(m, n->in[k]);
        ok = k == 2 && !p ? 1 : norm_fh(p) && (p->numel == cols || p->numel == 1);
    }
    for (uint32_t k = 1; ok && k < n->n_out; k++) {   /* Mean, InvStdDev: dims[:axis] + ones */
        const dse_tensor *s = dse__t(m, n->out[k]);
        if (!s) continue;
        ok = s->dtype == DSE_DTYPE_FLOAT32 && s->rank == x->rank;
        for (unsigned d = 0; ok && d < x->rank; d++) ok = s->dims[d] == ((int)d < a ? x->dims[d] : 1);
    }
    if (!ok) { DSE_WHY(why, NORM_LAYERNORMALIZATION_NEEDS_FLOAT32_X); return 1; }
    return 0;
}

/* The moments of four rows side by side: four independent chains of the same sequential sums
 * (moments() order per row). */
static void moments4(const float *v, size_t stride, size_t cnt, float *mean, float *var) {
    const float *v0 = v, *v1 = v + stride, *v2 = v1 + stride, *v3 = v2 + stride;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (size_t i = 0; i < cnt; i++) s0 = s0 + v0[i], s1 = s1 + v1[i], s2 = s2 + v2[i], s3 = s3 + v3[i];
    const float m0 = s0 / (float)cnt, m1 = s1 / (float)cnt, m2 = s2 / (float)cnt, m3 = s3 / (float)cnt;
    float q0 = 0.0f, q1 = 0.0f, q2 = 0.0f, q3 = 0.0f;
    for (size_t i = 0; i < cnt; i++) {
        const float d0 = v0[i] - m0, d1 = v1[i] - m1, d2 = v2[i] - m2, d3 = v3[i] - m3;
        q0 = q0 + d0 * d0, q1 = q1 + d1 * d1, q2 = q2 + d2 * d2, q3 = q3 + d3 * d3;
    }
    mean[0] = m0, mean[1] = m1, mean[2] = m2, mean[3] = m3;
    var[0] = q0 / (float)cnt, var[1] = q1 / (float)cnt, var[2] = q2 / (float)cnt, var[3] = q3 / (float)cnt;
}

/* scale / bias element j..j+cn of a float32 or float16 parameter of `cols` elements or one: a
 * pointer into a float32 parameter, else widened into buf. */
#define LN_CHUNK 256
static const float *ln_param(const dse_tensor *t, const void *p, size_t j, size_t cn, float *buf) {
    if (t->numel != 1 && t->dtype == DSE_DTYPE_FLOAT32) return (const float *)p + j;
    for (size_t k = 0; k < cn; k++) buf[k] = dse__nn_ld(t, p, t->numel == 1 ? 0 : j + k);
    return buf;
}

typedef struct {
    const dse_tensor *ts, *tb;
    const void *ps, *pb;
    const float *x;
    float *y, *ym, *yv;
    size_t rows, cols;
    float eps;
} ln_job;

/* groups [g0, g1) of 4 rows (the last may be shorter) */
static void ln_groups(void *arg, size_t g0, size_t g1, unsigned worker) {
    (void)worker;
    const ln_job *jb = arg;
    const size_t rows = jb->rows, cols = jb->cols;
    const float *x = jb->x;
    float *y = jb->y;
    float sbuf[LN_CHUNK], bbuf[LN_CHUNK];
    for (size_t r = 4 * g0; r < rows && r < 4 * g1; r += 4) {
        const size_t nr = rows - r < 4 ? rows - r : 4;
        float mean[4], var[4], inv[4];
        if (nr == 4) moments4(x + r * cols, cols, cols, mean, var);
        else for (size_t k = 0; k < nr; k++) moments(x + (r + k) * cols, cols, &mean[k], &var[k]);
        for (size_t k = 0; k < nr; k++) inv[k] = 1.0f / sqrtf(var[k] + jb->eps);
        /* every row of the group is read (moments) before any of its outputs is written */
        for (size_t j = 0; j < cols; j += LN_CHUNK) {
            const size_t cn = cols - j < LN_CHUNK ? cols - j : LN_CHUNK;
            const float *sc = ln_param(jb->ts, jb->ps, j, cn, sbuf), *bi = jb->tb ? ln_param(jb->tb, jb->pb, j, cn, bbuf) : NULL;
            for (size_t k = 0; k < nr; k++) {
                const float *xr = x + (r + k) * cols + j;
                float *yr = y + (r + k) * cols + j;
                const float mu = mean[k], iv = inv[k];
                if (bi) DSE_EW_LOOP(float, yr, cn, (xr[i] - mu) * iv * sc[i] + bi[i]);
                else DSE_EW_LOOP(float, yr, cn, (xr[i] - mu) * iv * sc[i]);
            }
        }
        for (size_t k = 0; k < nr; k++) {
            if (jb->ym) jb->ym[r + k] = mean[k];
            if (jb->yv) jb->yv[r + k] = inv[k];
        }
    }
}

/* Threads: groups of 4 rows (each row's bytes do not depend on the partition). The grain counts
 * ~8 units a row element (two sequential sums, a sqrt per row, the output pass: 64 x 384 takes
 * ~19 us on one AMD Zen 3 core, MiniLM's LayerNormalizations). */
void dse_f32_layernorm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *ts = &m->tensors[n->in[1]];
    const dse_tensor *tb = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    ln_job jb;
    memset(&jb, 0, sizeof jb);
    ln_axis(xt, n, &jb.rows, &jb.cols);
    jb.eps = dse__attr_float(n, DSE_A_epsilon, 1e-5f);
    jb.ts = ts, jb.tb = tb;
    jb.ps = dse__data(m, arena, n->in[1]), jb.pb = tb ? dse__data(m, arena, n->in[2]) : NULL;
    jb.x = dse__data(m, arena, n->in[0]);
    jb.y = dse__data(m, arena, n->out[0]);
    jb.ym = n->n_out >= 2 && n->out[1] != DSE_NONE ? dse__data(m, arena, n->out[1]) : NULL;
    jb.yv = n->n_out >= 3 && n->out[2] != DSE_NONE ? dse__data(m, arena, n->out[2]) : NULL;
    if (!jb.cols || !jb.rows) return;
    const size_t groups = (jb.rows + 3) / 4;
    dse__parallel(cx, groups, dse__grain(groups, (uint64_t)8 * jb.rows * jb.cols), ln_groups, &jb);
}
