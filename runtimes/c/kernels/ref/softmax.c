/* softmax.c: fp32 Softmax and LogSoftmax along `axis` (normalised >= 0 by the exporter), or,
 * with coerce_2d = 1 (opset < 13 semantics), over the whole trailing block [axis, rank).
 *
 * The input is viewed as (outer, len, inner): len = dims[axis] (coerce_2d: the product of
 * dims[axis:], inner = 1). For each of the outer*inner lines, in memory order along the line:
 *     mx = max (NaN propagates);  sum = 0; for each: sum = sum + exp(x - mx)   (sequential)
 *     Softmax:    y = exp(x - mx) / sum          (the exp is stored in y first, then divided)
 *     LogSoftmax: y = (x - mx) - log(sum)
 * exp/log are the runtime's own (mathf.c), so every target gives the same bits; numpy's
 * reference uses libm and pairwise sums: agreement ~1e-6 relative. A line holding a NaN or +inf
 * (or only -inf) gives NaN everywhere, written as the canonical 0x7FC00000 (x86 and arm64 make
 * other NaN bits for inf - inf). Each element is read before
 * its own output is written, so the exporter may run these in place. */
#include "internal.h"
#include "mathf.h"

int dse__softmax_f32_lines(const dse_model *m, const dse_node *n, size_t *outer, size_t *len, size_t *inner) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    if (!x || !y || n->n_out != 1 || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_FLOAT32 || x->rank < 1 ||
        y->rank != x->rank || memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]))
        return 1;
    int64_t axis = dse__attr_int(n, DSE_A_axis, (int64_t)x->rank - 1), c2 = dse__attr_int(n, DSE_A_coerce_2d, 0);
    if (axis < 0 || axis >= (int64_t)x->rank || (c2 != 0 && c2 != 1)) return 1;
    *outer = 1; *len = 1; *inner = 1;
    for (int64_t d = 0; d < (int64_t)x->rank; d++) {
        if (d < axis) *outer *= x->dims[d];
        else if (d == axis || c2) *len *= x->dims[d];
        else *inner *= x->dims[d];
    }
    return 0;
}

int dse__check_softmax_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t a, b, c;
    if (dse__softmax_f32_lines(m, n, &a, &b, &c)) {
        DSE_WHY(why, SOFTMAX_NEEDS_ONE_FLOAT32_INPUT);
        return 1;
    }
    return 0;
}

/* The optimised float variants (kernels/avx2/softmax.c, kernels/neon/softmax.c): REF's check, and
 * lines strided by 2 to 7 elements (neither one line per vector nor a vector of lines) left to REF. */
int dse__check_softmax_f32_opt(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t outer, len, inner;
    if (dse__check_softmax_f32(m, n, why)) return 1;
    dse__softmax_f32_lines(m, n, &outer, &len, &inner);
    if (inner != 1 && inner < 8) {
        DSE_WHYF(why, F32_OPT_NOT_COVERED, "lines strided by 2 to 7", 0, 0, 0, 0);
        return 1;
    }
    return 0;
}

/* One line of L elements at stride S, in the order above, with the exp function `ex`. */
static inline void softmax_line(const float *x, float *y, size_t L, size_t S, int logsm, float (*ex)(float)) {
    float mx = x[0], sum = 0.0f;
    for (size_t k = 1; k < L; k++) { const float v = x[k * S]; if (!(v <= mx)) mx = v; }
    if (logsm) {
        for (size_t k = 0; k < L; k++) sum = sum + ex(x[k * S] - mx);
        const float ls = dse_logf(sum);
        for (size_t k = 0; k < L; k++) y[k * S] = dse_canonf((x[k * S] - mx) - ls);
        return;
    }
    for (size_t k = 0; k < L; k++) { const float e = ex(x[k * S] - mx); y[k * S] = e; sum = sum + e; }
    for (size_t k = 0; k < L; k++) y[k * S] = dse_canonf(y[k * S] / sum);
}

static void softmax_run(const dse_model *m, const dse_node *n, uint8_t *arena, int logsm) {
    size_t outer, len, inner;
    dse__softmax_f32_lines(m, n, &outer, &len, &inner);
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    if (!len) return;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) softmax_line(x + o * len * inner + i, y + o * len * inner + i, len, inner, logsm, dse_expf);
}

/* dse__softmax_f32_opt_run (internal.h) */
typedef struct { dse_softmax_job j; const dse_softmax_isa *isa; } softmax_cols_job;

static void softmax_cols(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const softmax_cols_job *c = arg;
    const dse_softmax_job *j = &c->j;
    const size_t w = c->isa->width, nb = (j->inner + w - 1) / w, L = j->len, S = j->inner;
    for (size_t b = begin; b < end; b++) {
        const size_t o = b / nb;
        size_t i = b % nb * w;
        if (i + w <= S) { c->isa->block(j, o, i); continue; }
        for (; i < S; i++) softmax_line(j->x + o * L * S + i, j->y + o * L * S + i, L, S, j->logsm, c->isa->exp1);
    }
}

void dse__softmax_f32_opt_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, int logsm,
                              const dse_softmax_isa *isa) {
    softmax_cols_job c;
    dse_softmax_job *j = &c.j;
    dse__softmax_f32_lines(m, n, &j->outer, &j->len, &j->inner);
    j->x = dse__data(m, arena, n->in[0]);
    j->y = dse__data(m, arena, n->out[0]);
    j->logsm = logsm;
    c.isa = isa;
    if (!j->len || !j->outer || !j->inner) return;
    if (j->inner == 1) dse__parallel(cx, j->outer, 1 + 8192 / j->len, isa->rows, j);
    else dse__parallel(cx, j->outer * ((j->inner + isa->width - 1) / isa->width), 1, softmax_cols, &c);
}

void dse_f32_softmax__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    softmax_run(m, n, arena, 0);
}

void dse_f32_logsoftmax__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    softmax_run(m, n, arena, 1);
}
