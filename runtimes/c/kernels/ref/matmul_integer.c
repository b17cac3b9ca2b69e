/* matmul_integer.c: ONNX MatMulInteger (numpy matmul: batched with broadcasting, 1-D
 * operands), bit-exact with dsedge/ops/quantized.py (matmul_integer). Operands uint8 or int8
 * (each its own); a_zero_point one value or one per row of A (rank >= 2), b_zero_point one
 * value or one per column of B (rank >= 2), either dtype, possibly computed at run time.
 * Output int32: y = sum_k (a - za) * (b - zb), exact modulo 2^32 (conv_integer.c; the loop is
 * dse_int_matmul, kernels/ref/loops.c). No scratch (the plan, dse_int_gemm_plan of
 * min(M, DSE_INT_MM_ROWS) rows, is the optimised variants'). */
#include "requant.h"

int dse__check_matmul_integer(const dse_model *m, const dse_node *n, dse_why *why) {
    return dse__matmul_integer_valid(m, n, &why->scratch_plan, why);   /* the plan: the optimised variants' */
}

int dse__matmul_integer_valid(const dse_model *m, const dse_node *n, size_t *plan, dse_why *why) {
    const dse_tensor *a = n->n_in >= 2 && n->n_in <= 4 ? dse__t(m, n->in[0]) : NULL;
    const dse_tensor *b = a ? dse__t(m, n->in[1]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    const dse_tensor *za = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL, *zb = n->n_in > 3 ? dse__t(m, n->in[3]) : NULL;
    dse_mm_geom g;
    if (!dse__int_byte_operand(a) || !dse__int_byte_operand(b) || !y || y->dtype != DSE_DTYPE_INT32 || dse__matmul_geom(a, b, y, &g)) {
        DSE_WHYF(why, INTOP_NEEDS_UINT8_INT8, "A, B", 0, 0, 0, 0);
        return 1;
    }
    if ((za && (!dse__int_byte_operand(za) || (za->numel != 1 && (a->rank < 2 || za->numel != g.M || za->rank != 1)))) ||
        (zb && (!dse__int_byte_operand(zb) || (zb->numel != 1 && (b->rank < 2 || zb->numel != g.N || zb->rank != 1))))) {
        DSE_WHY(why, INTOP_MATMUL_ZERO_POINTS);
        return 1;
    }
    if (plan) *plan = dse_int_gemm_plan(g.M < DSE_INT_MM_ROWS ? g.M : DSE_INT_MM_ROWS, g.K);
    return 0;
}

void dse__matmul_integer_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, dse_int_mm_fn mm,
                             void *mm_arg) {
    const dse_tensor *at = &m->tensors[n->in[0]], *bt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    const dse_tensor *za = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL, *zb = n->n_in > 3 ? dse__t(m, n->in[3]) : NULL;
    dse_mm_geom g;
    memset(&g, 0, sizeof g);
    dse__matmul_geom(at, bt, yt, &g);
    const uint8_t *A = dse__data(m, arena, n->in[0]), *B = dse__data(m, arena, n->in[1]);
    int32_t *Y = dse__data(m, arena, n->out[0]);
    dse_int_mm p;
    memset(&p, 0, sizeof p);
    p.a_u8 = at->dtype == DSE_DTYPE_UINT8, p.b_u8 = bt->dtype == DSE_DTYPE_UINT8;
    if (za) p.za = dse__data(m, arena, n->in[2]), p.za_u8 = za->dtype == DSE_DTYPE_UINT8, p.za_step = za->numel == 1 ? 0 : 1;
    if (zb) p.zb = dse__data(m, arena, n->in[3]), p.zb_u8 = zb->dtype == DSE_DTYPE_UINT8, p.zb_step = zb->numel == 1 ? 0 : 1;
    p.M = g.M, p.K = g.K, p.N = g.N;
    size_t idx[DSE_MAX_RANK] = {0}, offa = 0, offb = 0, nbatch = 1;
    for (size_t d = 0; d < g.nb; d++) nbatch *= g.bdims[d];
    if (yt->numel == 0) return;
    for (size_t bi = 0; bi < nbatch; bi++) {   /* elements are bytes: offsets are byte offsets */
        p.a = A + offa, p.b = B + offb, p.y = Y + bi * g.M * g.N;
        mm(cx, &p, mm_arg);
        for (int d = (int)g.nb - 1; d >= 0; d--) {   /* advance the batch counter, carry left */
            offa += g.sa[d]; offb += g.sb[d];
            if (++idx[d] < g.bdims[d]) break;
            offa -= g.sa[d] * idx[d]; offb -= g.sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

static void ref_int_mm(const dse_ctx *cx, const dse_int_mm *p, void *arg) {
    (void)arg;
    dse_int_matmul(cx, p);
}

void dse_i32_matmulinteger__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse__matmul_integer_run(m, n, arena, cx, ref_int_mm, NULL);
}
