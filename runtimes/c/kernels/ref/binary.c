/* binary.c: the numpy-broadcasting walker shared by the elementwise kernels, and the fp32
 * binary/variadic ops Sub, Mul, Div, Pow, Mod (fmod=1), Min, Max, Sum, Mean, PRelu (Add with
 * its fused clamp is in add.c).
 *
 * Walker: every input is aligned to the output's trailing axes; an input axis of extent 1 gets
 * element stride 0. The output is visited in row-major order, one innermost row at a time
 * (the row function gets each input's row start and element stride); a counter per outer
 * axis carries leftwards. The output may alias an input of the output's shape (in-place
 * plans): element i of that input is read before element i of the output is written.
 *
 * Arithmetic: one IEEE float32 operation per element and input, in input order for the
 * variadic ops (Sum: ((x0 + x1) + x2) + ...; Mean: that sum / n in float32, as the numpy
 * reference); no reduction order issue. Min/Max follow numpy's maximum/minimum on x86_64:
 * NaN propagates, and for equal operands (+0 vs -0) the second one is returned. Pow and
 * Mod use mathf.c (C99 pow special cases; exact C fmod). NaN results are canonical
 * (0x7FC00000), so every target writes the same bytes. */
#include "internal.h"
#include "mathf.h"

#define EW_MAX_IN 64   /* docs/format.md: a node has at most 64 inputs */

static size_t esize_of(int dtype) {
    switch (dtype) {
    case DSE_DTYPE_FLOAT32: case DSE_DTYPE_INT32: case DSE_DTYPE_UINT32: return 4;
    case DSE_DTYPE_FLOAT16: case DSE_DTYPE_INT16: case DSE_DTYPE_UINT16: return 2;
    case DSE_DTYPE_FLOAT64: case DSE_DTYPE_INT64: case DSE_DTYPE_UINT64: return 8;
    case DSE_DTYPE_INT8: case DSE_DTYPE_UINT8: case DSE_DTYPE_BOOL: return 1;
    default: return 0;
    }
}

/* The first nx inputs are present, each broadcasts to output 0, and output 0 is exactly
 * their broadcast shape. Dtypes are the caller's to check. */
int dse__ew_check_broadcast(const dse_model *m, const dse_node *n, uint32_t nx, dse_why *why) {
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!y || n->n_in < nx || nx == 0 || !esize_of(y->dtype)) goto bad;
    for (uint32_t k = 0; k < nx; k++) {
        const dse_tensor *x = dse__t(m, n->in[k]);
        if (!x || x->rank > y->rank || !esize_of(x->dtype)) goto bad;
        for (unsigned d = 0; d < x->rank; d++) {
            size_t xd = x->dims[d], yd = y->dims[y->rank - x->rank + d];
            if (xd != yd && xd != 1) goto bad;
        }
    }
    for (unsigned d = 0; d < y->rank; d++) {
        size_t want = 1;
        for (uint32_t k = 0; k < nx; k++) {
            const dse_tensor *x = dse__t(m, n->in[k]);
            int xd = (int)d - (int)(y->rank - x->rank);
            if (xd >= 0 && x->dims[xd] != 1) want = x->dims[xd];
        }
        if (y->dims[d] != want) goto bad;
    }
    return 0;
bad:
    DSE_WHYF(why, BINARY_NEEDS_INPUT_THAT_BROADCAST, NULL, (unsigned)nx, 0, 0, 0);
    return 1;
}

/* The walk, prepared once per run: the output's axes after merging (an axis merges into the
 * next inner one when, for every input, stepping it once is the same as stepping the inner
 * one across its whole extent: both broadcast, or both contiguous), so a same-shape or
 * scalar operand gives one row of the whole tensor and [N,C,H,W] x [1,C,1,1] rows of H*W;
 * extent-1 axes are dropped. Element strides are then 0 or 1 on the innermost axis. */
typedef struct ew_plan {
    uint32_t nx;
    unsigned r;                          /* merged rank (>= 1) */
    size_t dims[DSE_MAX_RANK];           /* merged extents, outermost first */
    size_t st[EW_MAX_IN][DSE_MAX_RANK];  /* element strides per input and merged axis */
    size_t es[EW_MAX_IN], yes;
    const uint8_t *base[EW_MAX_IN];
    uint8_t *out;
    size_t upr;                          /* parts per row (rows of more than EW_CHUNK elements) */
    dse_ew_row row;
    const dse_ew_ctx *c;
} ew_plan;

#define EW_CHUNK 16384   /* elements of a row per part of a long row */

/* Parts [begin, end) of the rows: part u is chunk u % upr of row u / upr. */
static void ew_rows(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const ew_plan *p = arg;
    const unsigned r = p->r;
    const size_t len = p->dims[r - 1];
    size_t idx[DSE_MAX_RANK] = {0}, q = begin / p->upr;
    const uint8_t *cur[EW_MAX_IN];
    size_t inner[EW_MAX_IN];
    for (int d = (int)r - 2; d >= 0; d--) {              /* the first row's multi-index */
        idx[d] = q % p->dims[d];
        q /= p->dims[d];
    }
    for (uint32_t k = 0; k < p->nx; k++) inner[k] = p->st[k][r - 1];
    for (size_t u = begin; u < end; u++) {
        const size_t row = u / p->upr, c0 = u % p->upr * EW_CHUNK, c1 = c0 + EW_CHUNK < len ? c0 + EW_CHUNK : len;
        for (uint32_t k = 0; k < p->nx; k++) {
            size_t off = c0 * inner[k];
            for (unsigned d = 0; d + 1 < r; d++) off += idx[d] * p->st[k][d];
            cur[k] = p->base[k] + off * p->es[k];
        }
        p->row(p->out + (row * len + c0) * p->yes, cur, inner, p->nx, c1 - c0, p->c);
        if ((u + 1) % p->upr) continue;
        for (int d = (int)r - 2; d >= 0; d--) {          /* next row: carry leftwards */
            if (++idx[d] < p->dims[d]) break;
            idx[d] = 0;
        }
    }
}

void dse__ew_walk(const dse_model *m, const dse_node *n, uint8_t *arena, uint32_t nx, dse_ew_row row, const dse_ew_ctx *c,
                  const dse_ctx *cx) {
    const dse_tensor *y = &m->tensors[n->out[0]];
    if (y->numel == 0) return;
    ew_plan p;
    size_t full[EW_MAX_IN][DSE_MAX_RANK];
    unsigned r = y->rank;
    p.nx = nx, p.row = row, p.c = c;
    for (uint32_t k = 0; k < nx; k++) {
        const dse_tensor *x = &m->tensors[n->in[k]];
        p.base[k] = dse__data(m, arena, n->in[k]);
        p.es[k] = esize_of(x->dtype);
        size_t s = 1;
        for (unsigned d = 0; d < r; d++) full[k][d] = 0;
        for (int d = (int)x->rank - 1; d >= 0; d--) {
            full[k][r - x->rank + (unsigned)d] = x->dims[d] == 1 ? 0 : s;
            s *= x->dims[d];
        }
    }
    /* Merge from the innermost axis outwards (p.dims / p.st filled innermost first, then
     * reversed). */
    unsigned nr = 0;
    for (int d = (int)r - 1; d >= 0; d--) {
        if (y->dims[d] == 1) continue;
        int merge = nr > 0;
        for (uint32_t k = 0; merge && k < nx; k++)
            merge = full[k][d] == p.st[k][nr - 1] * p.dims[nr - 1];
        if (merge) {
            p.dims[nr - 1] *= y->dims[d];
            continue;
        }
        p.dims[nr] = y->dims[d];
        for (uint32_t k = 0; k < nx; k++) p.st[k][nr] = full[k][d];
        nr++;
    }
    if (nr == 0) {                                        /* one element */
        p.dims[0] = 1;
        for (uint32_t k = 0; k < nx; k++) p.st[k][0] = 0;
        nr = 1;
    }
    p.r = nr;
    for (unsigned a = 0, b = nr - 1; a < b; a++, b--) {
        size_t t = p.dims[a];
        p.dims[a] = p.dims[b], p.dims[b] = t;
        for (uint32_t k = 0; k < nx; k++) t = p.st[k][a], p.st[k][a] = p.st[k][b], p.st[k][b] = t;
    }
    p.out = dse__data(m, arena, n->out[0]);
    p.yes = esize_of(y->dtype);
    size_t len = p.dims[nr - 1], rows = y->numel / len;
    p.upr = (len + EW_CHUNK - 1) / EW_CHUNK;
    dse__parallel(cx, rows * p.upr, len >= EW_CHUNK ? 1 : EW_CHUNK / len, ew_rows, &p);
}

/* -- fp32 binary and variadic ops ---------------------------------------------------------- */

#define F(k, i) (((const float *)x[k])[(i) * s[k]])
#define BINARY(NAME, EXPR)                                                                         \
    static inline float op_##NAME(float a, float b, const dse_ew_ctx *c) { (void)c; return dse_canonf(EXPR); } \
    static void row_##NAME(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, \
                           const dse_ew_ctx *c) {                                                  \
        (void)nx;                                                                                  \
        float *y = (float *)yb;                                                                    \
        DSE_EW_ROW2(float, y, float, (const float *)x[0], s[0], float, (const float *)x[1], s[1], len, op_##NAME, c); \
    }                                                                                              \
    void dse_f32_##NAME##__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        dse__ew_walk(m, n, arena, 2, row_##NAME, NULL, cx);                                        \
    }

static inline float max_np(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float min_np(float a, float b) { return (a < b || a != a) ? a : b; }

BINARY(sub, a - b)
BINARY(mul, a * b)
BINARY(div, a / b)
/* Pow: a constant exponent of 2 (magnitudes, variances: x ** 2 in the model) is x * x, which is what
 * dse_powf returns for it after its special cases, none of which differs from x * x there (NaN ->
 * NaN, +-0 -> +0, +-inf -> +inf, 1 -> 1): the same bytes without a call per element. */
static inline float op_pow(float a, float b, const dse_ew_ctx *c) { (void)c; return dse_canonf(dse_powf(a, b)); }
static inline float op_sq(float a, float b, const dse_ew_ctx *c) { (void)b, (void)c; return dse_canonf(a * a); }
static void row_pow(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, const dse_ew_ctx *c) {
    (void)nx;
    float *y = (float *)yb;
    if (s[1] == 0 && ((const float *)x[1])[0] == 2.0f)
        DSE_EW_ROW2(float, y, float, (const float *)x[0], s[0], float, (const float *)x[1], 0, len, op_sq, c);
    else
        DSE_EW_ROW2(float, y, float, (const float *)x[0], s[0], float, (const float *)x[1], s[1], len, op_pow, c);
}
void dse_f32_pow__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse__ew_walk(m, n, arena, 2, row_pow, NULL, cx);
}
BINARY(mod, dse_fmodf(a, b))
BINARY(prelu, a < 0.0f ? a * b : a)

#define VARIADIC(NAME, INIT, STEP, FINISH)                                                         \
    static void row_##NAME(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, \
                           const dse_ew_ctx *c) {                                                  \
        (void)c;                                                                                   \
        float *y = (float *)yb;                                                                    \
        for (size_t i = 0; i < len; i++) {                                                         \
            float acc = INIT;                                                                      \
            for (uint32_t k = 1; k < nx; k++) { const float b = F(k, i); acc = STEP; }             \
            y[i] = dse_canonf(FINISH);                                                             \
        }                                                                                          \
    }                                                                                              \
    void dse_f32_##NAME##__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        dse__ew_walk(m, n, arena, n->n_in, row_##NAME, NULL, cx);                                  \
    }

VARIADIC(min, F(0, i), min_np(acc, b), acc)
VARIADIC(max, F(0, i), max_np(acc, b), acc)
VARIADIC(sum, F(0, i), acc + b, acc)
VARIADIC(mean, F(0, i), acc + b, acc / (float)nx)

/* All inputs float32 and present, broadcasting to the float32 output; `nx` inputs exactly
 * (0: any number >= 1). */
static int check_f32(const dse_model *m, const dse_node *n, uint32_t nx, dse_why *why) {
    uint32_t k_n = nx ? nx : n->n_in;
    if ((nx && n->n_in != nx) || k_n == 0 || n->n_out != 1) goto bad;
    for (uint32_t k = 0; k < k_n; k++) {
        const dse_tensor *x = dse__t(m, n->in[k]);
        if (!x || x->dtype != DSE_DTYPE_FLOAT32) goto bad;
    }
    if (dse__t(m, n->out[0])->dtype != DSE_DTYPE_FLOAT32) goto bad;
    return dse__ew_check_broadcast(m, n, k_n, why);
bad:
    DSE_WHYF(why, BINARY_NEEDS_FLOAT32_INPUTS_ONE, nx ? "two" : "one or more", 0, 0, 0, 0);
    return 1;
}

int dse__check_binary_f32(const dse_model *m, const dse_node *n, dse_why *why) { return check_f32(m, n, 2, why); }
int dse__check_variadic_f32(const dse_model *m, const dse_node *n, dse_why *why) { return check_f32(m, n, 0, why); }

int dse__check_mod_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__attr_int(n, DSE_A_fmod, 0) != 1) {
        DSE_WHY(why, BINARY_FLOAT_MOD_NEEDS_FMOD);
        return 1;
    }
    return check_f32(m, n, 2, why);
}

int dse__check_prelu_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    if (check_f32(m, n, 2, why)) return 1;
    const dse_tensor *x = dse__t(m, n->in[0]), *y = dse__t(m, n->out[0]);
    if (x->rank != y->rank || memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) != 0) {
        DSE_WHY(why, BINARY_PRELU_SLOPE_BROADCAST_X);
        return 1;
    }
    return 0;
}
