/* binary.c (AVX2): float32 Add (with its fused clamp), Sub, Mul, Div with numpy broadcasting,
 * 8 elements per instruction. One IEEE operation per element as REF (kernels/ref/{add,binary}.c),
 * NaN results canonical, the clamp as numpy's maximum/minimum: the REF kernels' bytes exactly.
 *
 * Broadcasting: each input gets an element stride per output axis (0 where it broadcasts);
 * adjacent axes are merged where both inputs continue contiguously (or both broadcast), so
 * e.g. x[N, C, H, W] * s[1, C, 1, 1] runs as C rows of H*W elements times one scalar each.
 * The innermost merged axis has strides 1 or 0: a row is vector (op) vector, vector (op)
 * scalar or scalar (op) vector. In place allowed (element i read before it is written).
 * Threads: rows, or chunks of long rows. */
#include "avx2_f32.h"

#if DSE_AVX2_F32

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };
#define BIN_CHUNK 8192   /* elements of a row per part */

typedef struct bin_job {
    const float *a, *b;
    float *y;
    int op, act;
    float lo, hi;
    unsigned r;                                    /* merged axes; the last is the row */
    size_t dims[DSE_MAX_RANK], sa[DSE_MAX_RANK], sb[DSE_MAX_RANK];
    size_t len, rows, upr;                         /* row length, rows, parts per row */
} bin_job;


DSE_AI __m256 bin_apply(const bin_job *j, const int op, __m256 a, __m256 b) {
    __m256 v = op == BIN_ADD ? _mm256_add_ps(a, b) : op == BIN_SUB ? _mm256_sub_ps(a, b)
             : op == BIN_MUL ? _mm256_mul_ps(a, b) : _mm256_div_ps(a, b);
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    if (op == BIN_ADD && j->act) {   /* v > lo || NaN ? v : lo; then < hi (kernels/ref/add.c) */
        const __m256 lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
        v = _mm256_blendv_ps(lo, v, _mm256_or_ps(_mm256_cmp_ps(v, lo, _CMP_GT_OQ), nan));
        v = _mm256_blendv_ps(hi, v, _mm256_or_ps(_mm256_cmp_ps(v, hi, _CMP_LT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
        return _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    return _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)), nan);
}

/* y[0, n) = a (op) b, a and b with element strides 1 or 0. */
DSE_AI void bin_row_op(const bin_job *j, const int op, float *y, const float *a, size_t as, const float *b, size_t bs, size_t n) {
    size_t i = 0;
    if (as && bs) {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, bin_apply(j, op, _mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    } else if (as) {
        const __m256 bv = _mm256_set1_ps(*b);
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, bin_apply(j, op, _mm256_loadu_ps(a + i), bv));
    } else if (bs) {
        const __m256 av = _mm256_set1_ps(*a);
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, bin_apply(j, op, av, _mm256_loadu_ps(b + i)));
    }
    if (i < n) {   /* the tail (or a scalar-by-scalar row) through small buffers */
        float ta[8], tb[8], ty[8];
        const size_t k = n - i < 8 ? n - i : 8;
        for (size_t t = 0; t < 8; t++) { ta[t] = a[as ? i + (t < k ? t : 0) : 0]; tb[t] = b[bs ? i + (t < k ? t : 0) : 0]; }
        _mm256_storeu_ps(ty, bin_apply(j, op, _mm256_loadu_ps(ta), _mm256_loadu_ps(tb)));
        if (as || bs) { for (size_t t = 0; t < k; t++) y[i + t] = ty[t]; }
        else { for (size_t t = i; t < n; t++) y[t] = ty[0]; }
    }
}

#define BIN_ROWS(OP, NAME)                                                                         \
    static DSE_TARGET_AVX2 void NAME(const bin_job *j, float *y, const float *a, const float *b, size_t n) { \
        bin_row_op(j, OP, y, a, j->sa[j->r - 1], b, j->sb[j->r - 1], n);                           \
    }
BIN_ROWS(BIN_ADD, bin_row_add)
BIN_ROWS(BIN_SUB, bin_row_sub)
BIN_ROWS(BIN_MUL, bin_row_mul)
BIN_ROWS(BIN_DIV, bin_row_div)

static void bin_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const bin_job *j = arg;
    void (*row)(const bin_job *, float *, const float *, const float *, size_t) =
        j->op == BIN_ADD ? bin_row_add : j->op == BIN_SUB ? bin_row_sub : j->op == BIN_MUL ? bin_row_mul : bin_row_div;
    size_t idx[DSE_MAX_RANK] = {0}, rowi = begin / j->upr, oa = 0, ob = 0;
    for (int d = (int)j->r - 2; d >= 0; d--) {   /* the first row's counter and offsets */
        idx[d] = rowi % j->dims[d];
        rowi /= j->dims[d];
        oa += idx[d] * j->sa[d];
        ob += idx[d] * j->sb[d];
    }
    rowi = begin / j->upr;
    for (size_t u = begin; u < end;) {
        const size_t part = u % j->upr, c0 = part * BIN_CHUNK;
        const size_t c1 = j->upr == 1 ? j->len : (c0 + BIN_CHUNK < j->len ? c0 + BIN_CHUNK : j->len);
        const size_t sa = j->sa[j->r - 1], sb = j->sb[j->r - 1];
        row(j, j->y + rowi * j->len + c0, j->a + oa + c0 * sa, j->b + ob + c0 * sb, c1 - c0);
        if (++u % j->upr) continue;
        rowi++;
        for (int d = (int)j->r - 2; d >= 0; d--) {   /* next row: carry leftwards */
            oa += j->sa[d]; ob += j->sb[d];
            if (++idx[d] < j->dims[d]) break;
            oa -= j->sa[d] * idx[d]; ob -= j->sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

static void bin_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, int op) {
    const dse_tensor *y = &m->tensors[n->out[0]];
    if (!y->numel) return;
    bin_job j;
    memset(&j, 0, sizeof j);
    j.op = op;
    if (op == BIN_ADD) {
        const float inf = __builtin_inff();
        const dse_attr *lo = dse__attr(n, DSE_A_act_min, DSE_ATTR_FLOAT), *hi = dse__attr(n, DSE_A_act_max, DSE_ATTR_FLOAT);
        j.act = lo || hi;
        j.lo = lo ? lo->f : -inf;
        j.hi = hi ? hi->f : inf;
    }
    j.a = dse__data(m, arena, n->in[0]);
    j.b = dse__data(m, arena, n->in[1]);
    j.y = dse__data(m, arena, n->out[0]);
    /* per output axis, each input's element stride (0: broadcast), right-aligned */
    size_t dims[DSE_MAX_RANK], sa[DSE_MAX_RANK], sb[DSE_MAX_RANK];
    const unsigned r = y->rank;
    for (int k = 0; k < 2; k++) {
        const dse_tensor *x = &m->tensors[n->in[k]];
        size_t *s = k ? sb : sa, st = 1;
        for (int d = (int)r - 1; d >= 0; d--) {
            const int xd = d - (int)(r - x->rank);
            s[d] = xd >= 0 && x->dims[xd] != 1 ? st : 0;
            if (xd >= 0) st *= x->dims[xd];
        }
    }
    for (unsigned d = 0; d < r; d++) dims[d] = y->dims[d];
    /* merge axes from the innermost out: axis d-1 joins d when both inputs continue across it */
    unsigned out = 0;
    size_t cd = 1, ca = 0, cb = 0;   /* the axis being built (innermost first) */
    size_t md[DSE_MAX_RANK], ma[DSE_MAX_RANK], mb[DSE_MAX_RANK];
    int have = 0;
    for (int d = (int)r - 1; d >= 0; d--) {
        if (dims[d] == 1) continue;
        if (!have) { cd = dims[d]; ca = sa[d]; cb = sb[d]; have = 1; continue; }
        if (sa[d] == ca * cd && sb[d] == cb * cd) { cd *= dims[d]; continue; }
        md[out] = cd; ma[out] = ca; mb[out] = cb; out++;
        cd = dims[d]; ca = sa[d]; cb = sb[d];
    }
    if (!have) { cd = 1; ca = 1; cb = 1; }   /* one element: a row of 1 */
    md[out] = cd; ma[out] = ca; mb[out] = cb; out++;
    j.r = out;
    for (unsigned d = 0; d < out; d++) {   /* back to outermost-first order */
        j.dims[d] = md[out - 1 - d]; j.sa[d] = ma[out - 1 - d]; j.sb[d] = mb[out - 1 - d];
    }
    /* (the innermost merged axis has stride 1 or 0 in both inputs: an input's axes after it have
     * output extent 1, so they are 1 in the input too) */
    j.len = j.dims[j.r - 1];
    j.rows = y->numel / j.len;
    j.upr = (j.len + BIN_CHUNK - 1) / BIN_CHUNK;
    dse__parallel(cx, j.rows * j.upr, j.upr > 1 ? 1 : (BIN_CHUNK + j.len - 1) / j.len, bin_task, &j);
}

void dse_f32_add__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { bin_run(m, n, arena, cx, BIN_ADD); }
void dse_f32_sub__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { bin_run(m, n, arena, cx, BIN_SUB); }
void dse_f32_mul__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { bin_run(m, n, arena, cx, BIN_MUL); }
void dse_f32_div__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { bin_run(m, n, arena, cx, BIN_DIV); }

#endif
