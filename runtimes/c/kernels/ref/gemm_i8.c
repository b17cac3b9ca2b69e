/* gemm_i8.c: int8 Gemm (transA 0, transB 0/1), bit-exact with intref.gemm_int8, and the
 * row-times-matrix core shared with int8 MatMul.
 *
 * acc[r, j] = bias[j] + sum_k (x[r, k] - zp_in) * w(k, j): the same integer as the
 * reference's sum x*w + (bias - zp_in * sum w) (docs/quant-arith.md §4); int32 sum (the
 * check bounds K * 255 * 127 < 2^31), bias added in int64, then the per-column (output
 * channel = last axis) requantisation, or float_out. alpha and beta were folded into the
 * scales by the quantiser; the int8 node carries them for information only.
 *
 * Loops: transB = 1 (w is N x K) is a dot product of two contiguous rows per output;
 * transB = 0 (w is K x N) accumulates a stack tile of TILE output columns, walking each
 * weight row contiguously. No scratch memory.
 */
#include "requant.h"

#define TILE 64

void dse_i8_gemm_rows(const int8_t *x, size_t rows, size_t K, const int8_t *w, size_t N, int transB,
                      const int32_t *bias, const dse_i8_out *o, void *y) {
    const int32_t zp = o->zp_in;
    for (size_t r = 0; r < rows; r++) {
        const int8_t *xr = x + r * K;
        if (transB) {
            for (size_t j = 0; j < N; j++) {
                const int8_t *wr = w + j * K;
                int32_t acc = 0;
                for (size_t k = 0; k < K; k++) acc += ((int32_t)xr[k] - zp) * wr[k];
                dse_i8_store(o, y, r * N + j, j, (int64_t)acc + bias[j]);
            }
            continue;
        }
        for (size_t j0 = 0; j0 < N; j0 += TILE) {
            const size_t tn = N - j0 < TILE ? N - j0 : TILE;
            int32_t acc[TILE] = {0};
            for (size_t k = 0; k < K; k++) {
                const int32_t xv = (int32_t)xr[k] - zp;
                const int8_t *wr = w + k * N + j0;
                for (size_t j = 0; j < tn; j++) acc[j] += xv * wr[j];
            }
            for (size_t j = 0; j < tn; j++) dse_i8_store(o, y, r * N + j0 + j, j0 + j, (int64_t)acc[j] + bias[j0 + j]);
        }
    }
}

int dse__check_i8_gemm(const dse_model *m, const dse_node *n, char *msg, size_t cap) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    int64_t ta = dse__attr_int(n, "transA", 0), tb = dse__attr_int(n, "transB", 0);
    if (!x || !w || !y || x->rank != 2 || w->rank != 2 || y->rank != 2 || ta != 0 || (tb != 0 && tb != 1)) {
        snprintf(msg, cap, "int8 Gemm needs 2-D x, w, int32 bias, one 2-D output, transA 0 and transB 0/1");
        return 1;
    }
    size_t K = x->dims[1], N = tb ? w->dims[0] : w->dims[1];
    if ((tb ? w->dims[1] : w->dims[0]) != K || y->dims[0] != x->dims[0] || y->dims[1] != N) {
        snprintf(msg, cap, "shapes do not agree: x [%zu, %zu], w [%zu, %zu], transB %lld, y [%zu, %zu]", x->dims[0],
                 x->dims[1], w->dims[0], w->dims[1], (long long)tb, y->dims[0], y->dims[1]);
        return 1;
    }
    if (dse_i8_weighted_operands(m, n, N, K, msg, cap)) return 1;
    dse_i8_out o;
    return dse_i8_out_params(m, n, N, &o, msg, cap);
}

void dse_i8_gemm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    (void)scratch;
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    dse_i8_out o;
    char msg[8];
    dse_i8_out_params(m, n, y->dims[1], &o, msg, sizeof msg);
    dse_i8_gemm_rows(dse__data(m, arena, n->in[0]), x->dims[0], x->dims[1], dse__data(m, arena, n->in[1]), y->dims[1],
                     (int)dse__attr_int(n, "transB", 0), dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}
