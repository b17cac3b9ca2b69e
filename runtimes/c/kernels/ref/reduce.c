/* reduce.c: fp32 ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSumExp (canonical opset-18+
 * form: `axes` is an optional constant int64 input; attributes keepdims, noop_with_empty_axes).
 *
 * Order (DESIGN.md §3, one documented order): for each output element, in the output's
 * row-major order, the reduced elements are visited in the input's row-major order (the
 * reduced axes' index counter, last axis fastest) and combined sequentially into one float32
 * accumulator starting from the identity: acc = acc + v (Sum, Mean, L1 |v|, L2 and SumSquare
 * v*v), acc * v (Prod), numpy maximum/minimum (Max/Min: NaN propagates; empty -> -inf/+inf).
 * Mean divides the sum by float32(n) (0 when n = 0); L2 is sqrtf(sum); LogSumExp subtracts
 * the (finite) max m: log(sum exp(v - m)) + m with the runtime's exp/log, -inf when m is
 * -inf, as the numpy reference. numpy sums pairwise, so Sum/Mean/L1/L2/SumSquare/LogSumExp
 * may differ from it in the last bits; the tests replay this order exactly.
 * Absent or empty axes reduce every axis, unless noop_with_empty_axes = 1: then the output is
 * the input with only the elementwise part applied (|v| for L1/L2, v*v for SumSquare). */
#include <math.h>

#include "internal.h"
#include "mathf.h"

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_SUMSQ, R_LSE };

/* Reduced-axis mask from the axes input; -1 when invalid, 0 for "noop". */
static int axes_mask(const dse_model *m, const dse_node *n, uint8_t *arena, unsigned rank, uint32_t *mask) {
    const dse_tensor *a = n->n_in > 1 ? dse__t(m, n->in[1]) : NULL;
    *mask = 0;
    if (!a || a->numel == 0) {
        if (dse__attr_int(n, DSE_A_noop_with_empty_axes, 0)) return 0;
        *mask = rank ? (1u << rank) - 1u : 0;
        return 1;
    }
    const int64_t *ax = dse__data(m, arena, n->in[1]);
    for (size_t k = 0; k < a->numel; k++) {
        int64_t v = ax[k] < 0 ? ax[k] + (int64_t)rank : ax[k];
        if (v < 0 || v >= (int64_t)rank || (*mask >> v & 1u)) return -1;
        *mask |= 1u << v;
    }
    return 1;
}

int dse__check_reduce_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    const dse_tensor *a = n->n_in > 1 ? dse__t(m, n->in[1]) : NULL;
    uint32_t mask;
    if (!x || !y || n->n_in > 2 || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_FLOAT32) goto bad;
    if (a && (a->dtype != DSE_DTYPE_INT64 || a->storage != DSE_STORAGE_CONST || a->rank > 1)) goto bad;
    int st = axes_mask(m, n, NULL, x->rank, &mask);
    if (st < 0) goto bad;
    int keep = dse__attr_int(n, DSE_A_keepdims, 1) != 0;
    size_t want[DSE_MAX_RANK];
    unsigned r = 0;
    for (unsigned d = 0; d < x->rank; d++) {
        if (!(mask >> d & 1u)) want[r++] = x->dims[d];
        else if (keep) want[r++] = 1;
    }
    if (y->rank != r || memcmp(y->dims, want, r * sizeof want[0]) != 0) goto bad;
    return 0;
bad:
    DSE_WHY(why, REDUCE_NEEDS_FLOAT32_DATA_OPTIONAL);
    return 1;
}

/* One combining step of each kind, in the documented order. */
static inline float red_step(int kind, float acc, float v) {
    switch (kind) {
    case R_MAX: return (acc > v || acc != acc) ? acc : v;
    case R_MIN: return (acc < v || acc != acc) ? acc : v;
    case R_PROD: return acc * v;
    case R_L1: return acc + dse_u2f(dse_f2u(v) & 0x7FFFFFFFu);
    case R_L2: case R_SUMSQ: return acc + v * v;
    default: return acc + v;
    }
}
static inline float red_init(int kind) {
    const float inf = dse_u2f(0x7F800000u);
    return kind == R_PROD ? 1.0f : kind == R_MAX ? -inf : kind == R_MIN ? inf : 0.0f;
}
static inline float red_finish(int kind, float acc, size_t nred) {
    if (kind == R_MEAN) acc = nred ? acc / (float)nred : 0.0f;
    else if (kind == R_L2) acc = sqrtf(acc);
    return dse_canonf(acc);
}

/* The input seen as [O kept][R reduced][I kept] (adjacent axes merged; any other layout, and
 * LogSumExp, take the general loop). Each output's accumulator still takes its R elements
 * one after the other in the input's order, so the results are the general loop's; the fast
 * part is that several outputs are accumulated side by side: I > 1, a chunk of I columns per
 * step over R (a row of independent sums the compiler vectorises); I == 1, four outputs at a
 * time (four independent chains). KIND is a constant in each instantiation. */
#define RED_CHUNK 256
#define RED_ORI(KIND)                                                                              \
    static void red_ori_##KIND(const float *x, float *y, size_t O, size_t R, size_t I) {           \
        if (I == 1) {                                                                              \
            size_t o = 0;                                                                          \
            for (; o + 4 <= O; o += 4) {                                                           \
                const float *x0 = x + o * R, *x1 = x0 + R, *x2 = x1 + R, *x3 = x2 + R;             \
                float a0 = red_init(KIND), a1 = a0, a2 = a0, a3 = a0;                              \
                for (size_t j = 0; j < R; j++) {                                                   \
                    a0 = red_step(KIND, a0, x0[j]); a1 = red_step(KIND, a1, x1[j]);                \
                    a2 = red_step(KIND, a2, x2[j]); a3 = red_step(KIND, a3, x3[j]);                \
                }                                                                                  \
                y[o] = red_finish(KIND, a0, R), y[o + 1] = red_finish(KIND, a1, R);                \
                y[o + 2] = red_finish(KIND, a2, R), y[o + 3] = red_finish(KIND, a3, R);            \
            }                                                                                      \
            for (; o < O; o++) {                                                                   \
                float a = red_init(KIND);                                                          \
                for (size_t j = 0; j < R; j++) a = red_step(KIND, a, x[o * R + j]);                \
                y[o] = red_finish(KIND, a, R);                                                     \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        float acc[RED_CHUNK];                                                                      \
        for (size_t o = 0; o < O; o++)                                                             \
            for (size_t i0 = 0; i0 < I; i0 += RED_CHUNK) {                                         \
                const size_t cn = I - i0 < RED_CHUNK ? I - i0 : RED_CHUNK;                         \
                const float *xo = x + o * R * I + i0;                                              \
                for (size_t k = 0; k < cn; k++) acc[k] = red_init(KIND);                           \
                for (size_t j = 0; j < R; j++) {                                                   \
                    const float *xr = xo + j * I;                                                  \
                    if (cn == RED_CHUNK)                                                           \
                        DSE_EW_LOOP(float, acc, RED_CHUNK, red_step(KIND, acc[i], xr[i]));         \
                    else                                                                           \
                        for (size_t k = 0; k < cn; k++) acc[k] = red_step(KIND, acc[k], xr[k]);    \
                }                                                                                  \
                for (size_t k = 0; k < cn; k++) y[o * I + i0 + k] = red_finish(KIND, acc[k], R);   \
            }                                                                                      \
    }
RED_ORI(R_SUM)
RED_ORI(R_MEAN)
RED_ORI(R_MAX)
RED_ORI(R_MIN)
RED_ORI(R_PROD)
RED_ORI(R_L1)
RED_ORI(R_L2)
RED_ORI(R_SUMSQ)

/* O, R, I of the [kept][reduced][kept] view, or 0 when the reduced axes are not one run. */
static int red_view(const dse_tensor *xt, uint32_t mask, size_t *O, size_t *R, size_t *I) {
    int seen_r = 0, after_r = 0;
    *O = *R = *I = 1;
    for (unsigned d = 0; d < xt->rank; d++) {
        const size_t e = xt->dims[d];
        if (e == 1) continue;                          /* an extent-1 axis changes nothing */
        if (mask >> d & 1u) {
            if (after_r) return 0;                     /* a second run of reduced axes */
            seen_r = 1, *R *= e;
        } else if (seen_r) {
            after_r = 1, *I *= e;
        } else {
            *O *= e;
        }
    }
    return 1;
}

static void reduce(const dse_model *m, const dse_node *n, uint8_t *arena, int kind) {
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    const float inf = dse_u2f(0x7F800000u);
    uint32_t mask;
    if (axes_mask(m, n, arena, xt->rank, &mask) == 0) {   /* noop: elementwise part only */
        for (size_t i = 0; i < xt->numel; i++) {
            const float v = x[i];
            y[i] = dse_canonf(kind == R_L1 || kind == R_L2 ? dse_u2f(dse_f2u(v) & 0x7FFFFFFFu) : kind == R_SUMSQ ? v * v : v);
        }
        return;
    }
    size_t O, R, I;
    if (kind != R_LSE && xt->numel && red_view(xt, mask, &O, &R, &I)) {
        void (*f)(const float *, float *, size_t, size_t, size_t) =
            kind == R_SUM ? red_ori_R_SUM : kind == R_MEAN ? red_ori_R_MEAN : kind == R_MAX ? red_ori_R_MAX :
            kind == R_MIN ? red_ori_R_MIN : kind == R_PROD ? red_ori_R_PROD : kind == R_L1 ? red_ori_R_L1 :
            kind == R_L2 ? red_ori_R_L2 : red_ori_R_SUMSQ;
        f(x, y, O, R, I);
        return;
    }
    /* kept axes (outer loop) and reduced axes (inner loop), with input element strides */
    size_t kd[DSE_MAX_RANK], ks[DSE_MAX_RANK], rd[DSE_MAX_RANK], rs[DSE_MAX_RANK], stride = 1, nred = 1, nout = 1;
    unsigned nk = 0, nr = 0;
    size_t st[DSE_MAX_RANK];
    for (int d = (int)xt->rank - 1; d >= 0; d--) { st[d] = stride; stride *= xt->dims[d]; }
    for (unsigned d = 0; d < xt->rank; d++) {
        if (mask >> d & 1u) { rd[nr] = xt->dims[d]; rs[nr++] = st[d]; nred *= xt->dims[d]; }
        else { kd[nk] = xt->dims[d]; ks[nk++] = st[d]; nout *= xt->dims[d]; }
    }
    size_t ki[DSE_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < nout; o++) {
        float mx = -inf;
        if (kind == R_LSE) {                              /* pass 1: the max, same order */
            size_t ri[DSE_MAX_RANK] = {0}, off = base;
            for (size_t j = 0; j < nred; j++) {
                const float v = x[off];
                mx = (mx > v || mx != mx) ? mx : v;
                for (int d = (int)nr - 1; d >= 0; d--) {
                    off += rs[d];
                    if (++ri[d] < rd[d]) break;
                    off -= rs[d] * ri[d];
                    ri[d] = 0;
                }
            }
        }
        const float shift = (mx == inf || mx == -inf) ? 0.0f : mx;   /* NaN max: NaN result anyway */
        float acc = kind == R_PROD ? 1.0f : kind == R_MAX ? -inf : kind == R_MIN ? inf : 0.0f;
        size_t ri[DSE_MAX_RANK] = {0}, off = base;
        for (size_t j = 0; j < nred; j++) {
            const float v = x[off];
            switch (kind) {
            case R_MAX: acc = (acc > v || acc != acc) ? acc : v; break;
            case R_MIN: acc = (acc < v || acc != acc) ? acc : v; break;
            case R_PROD: acc = acc * v; break;
            case R_L1: acc = acc + dse_u2f(dse_f2u(v) & 0x7FFFFFFFu); break;
            case R_L2: case R_SUMSQ: acc = acc + v * v; break;
            case R_LSE: acc = acc + dse_expf(v - shift); break;
            default: acc = acc + v; break;
            }
            for (int d = (int)nr - 1; d >= 0; d--) {
                off += rs[d];
                if (++ri[d] < rd[d]) break;
                off -= rs[d] * ri[d];
                ri[d] = 0;
            }
        }
        if (kind == R_MEAN) acc = nred ? acc / (float)nred : 0.0f;
        else if (kind == R_L2) acc = sqrtf(acc);
        else if (kind == R_LSE) acc = mx == -inf ? -inf : dse_logf(acc) + shift;
        y[o] = dse_canonf(acc);
        for (int d = (int)nk - 1; d >= 0; d--) {          /* next output element */
            base += ks[d];
            if (++ki[d] < kd[d]) break;
            base -= ks[d] * ki[d];
            ki[d] = 0;
        }
    }
}

#define REDUCE(NAME, KIND)                                                                         \
    void dse_f32_##NAME##__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        (void)cx;                                                                             \
        reduce(m, n, arena, KIND);                                                                 \
    }
REDUCE(reducesum, R_SUM)
REDUCE(reducemean, R_MEAN)
REDUCE(reducemax, R_MAX)
REDUCE(reducemin, R_MIN)
REDUCE(reduceprod, R_PROD)
REDUCE(reducel1, R_L1)
REDUCE(reducel2, R_L2)
REDUCE(reducesumsquare, R_SUMSQ)
REDUCE(reducelogsumexp, R_LSE)
