/* gemm.c: fp32 Gemm, Y = alpha * op(A) @ op(B) + beta * C (op = transpose when transA /
 * transB), C optional and unidirectionally broadcast to (M, N) (rank 0, 1 or 2); B and C may be
 * float16 constants (widened exactly); fused clamp act_min/act_max.
 *
 * Per output element, in this order (as numpy's reference applies them):
 *     acc = 0; for k in [0, K): acc = acc + A[i,k] * B[k,j]      (sequential over K)
 *     if alpha != 1: acc = acc * alpha
 *     if C present and beta != 0: acc = acc + (beta == 1 ? C[i,j] : C[i,j] * beta)
 *     clamp to [act_min, act_max]
 * Loop order i, k, j with a running row of accumulators in Y keeps the per-element order
 * above while streaming B by rows (the sum: dse_f32_gemm_rows, kernels/ref/loops.c; then the
 * rest, per element, here). */
#include "internal.h"

static int gemm_fh(const dse_tensor *t) { return t && (t->dtype == DSE_DTYPE_FLOAT32 || t->dtype == DSE_DTYPE_FLOAT16); }

int dse__check_gemm_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__gemm_f32_valid(m, n, why)) return 1;
    const dse_tensor *a = dse__t(m, n->in[0]);
    const int ta = dse__attr_int(n, DSE_A_transA, 0) != 0, tb = dse__attr_int(n, DSE_A_transB, 0) != 0;
    const int p16 = dse__t(m, n->in[1])->layout == DSE_LAYOUT_F32_P16;   /* B in layout 9: any shape, transB too */
    why->scratch_plan = tb || p16 ? 0 : 4 * dse__sgemm_pack_floats(a->dims[!ta]);   /* the optimised variants' (internal.h;
                                                                                      * layout 9: B read in place) */
    if (p16) why->packed = 1u << 1;
    return 0;
}

/* The check of the optimised float Gemm variants (kernels/avx2/gemm.c, kernels/neon/gemm_f32.c):
 * REF's, and float32 B and C, not transA with transB (those run REF); scratch: the packing buffer
 * of transB = 0 when the plan's region is free at this node, else none (B read in place). */
int dse__check_gemm_f32_opt(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__gemm_f32_valid(m, n, why)) return 1;
    const dse_tensor *b = dse__t(m, n->in[1]), *c = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    const int ta = dse__attr_int(n, DSE_A_transA, 0) != 0, tb = dse__attr_int(n, DSE_A_transB, 0) != 0;
    if (b->dtype != DSE_DTYPE_FLOAT32 || (c && c->dtype != DSE_DTYPE_FLOAT32) || (ta && tb)) {
        DSE_WHYF(why, F32_OPT_NOT_COVERED, "float16 B/C or transA with transB", 0, 0, 0, 0);
        return 1;
    }
    why->scratch_plan = tb || b->layout == DSE_LAYOUT_F32_P16 ? 0 : 4 * dse__sgemm_pack_floats(dse__t(m, n->in[0])->dims[!ta]);
    if (b->layout == DSE_LAYOUT_F32_P16) {   /* layout 9: read in place by the broadcast kernel; transB's dot product reads rows of k */
        if (tb) {
            DSE_WHYF(why, F32_OPT_NOT_COVERED, "a layout-9 B with transB", 0, 0, 0, 0);
            return 1;
        }
        why->packed = 1u << 1;   /* (no packing buffer: the panels are B itself) */
        return 0;
    }
    why->scratch = dse__scratch_free(m, n, why->scratch_plan) ? why->scratch_plan : 0;   /* else: B in place */
    return 0;
}

/* dse__gemm_f32_opt_run (internal.h) */
void dse__gemm_f32_opt_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, const dse_sgemm_isa *isa) {
    const dse_tensor *at = &m->tensors[n->in[0]], *bt = &m->tensors[n->in[1]];
    const dse_tensor *ct = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    const int ta = dse__attr_int(n, DSE_A_transA, 0) != 0, tb = dse__attr_int(n, DSE_A_transB, 0) != 0;
    const float alpha = dse__attr_float(n, DSE_A_alpha, 1.0f), beta = dse__attr_float(n, DSE_A_beta, 1.0f);
    dse_mm_geom g;
    dse_sgemm s;
    memset(&g, 0, sizeof g);   /* one batch */
    memset(&s, 0, sizeof s);
    g.M = at->dims[ta]; g.K = at->dims[!ta]; g.N = bt->dims[!tb];
    s.K = g.K;
    s.A = dse__data(m, arena, n->in[0]);
    s.sai = ta ? 1 : g.K; s.sak = ta ? g.M : 1;
    s.B = dse__data(m, arena, n->in[1]);
    s.ldb = tb ? g.K : g.N;   /* transB: rows of k for the dot-product kernel */
    s.C = dse__data(m, arena, n->out[0]); s.ldc = g.N;
    s.use_alpha = alpha != 1.0f; s.alpha = alpha;
    if (ct && beta != 0.0f) {
        const size_t cm = ct->rank == 2 ? ct->dims[0] : 1, cn = ct->rank >= 1 ? ct->dims[ct->rank - 1] : 1;
        s.cmode = beta == 1.0f ? 1 : 2; s.beta = beta;
        s.Cm = dse__data(m, arena, n->in[2]);
        s.csi = cm == 1 ? 0 : cn; s.csj = cn == 1 ? 0 : 1;
    }
    s.act = dse__nn_act(n, &s.lo, &s.hi);
    const int pack = !tb && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(g.K);
    dse_f32_sgemm_batched(cx, &g, &s, tb ? isa->dot : isa->gemm, pack, tb ? isa->dot_rt : isa->gemm_rt, tb ? isa->dot_ct : isa->gemm_ct,
                          !tb && bt->layout == DSE_LAYOUT_F32_P16);
}

int dse__gemm_f32_valid(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *a = n->n_in >= 2 ? dse__t(m, n->in[0]) : NULL, *b = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *c = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL, *y = dse__t(m, n->out[0]);
    if (n->n_in < 2 || n->n_in > 3 || n->n_out != 1 || !a || a->dtype != DSE_DTYPE_FLOAT32 || !gemm_fh(b) || !y ||
        y->dtype != DSE_DTYPE_FLOAT32 || a->rank != 2 || b->rank != 2 || y->rank != 2 || (c && (!gemm_fh(c) || c->rank > 2))) {
        DSE_WHY(why, GEMM_NEEDS_FLOAT32_2_D);
        return 1;
    }
    int ta = dse__attr_int(n, DSE_A_transA, 0) != 0, tb = dse__attr_int(n, DSE_A_transB, 0) != 0;
    size_t M = a->dims[ta], K = a->dims[!ta], N = b->dims[!tb];
    if (b->dims[tb] != K || y->dims[0] != M || y->dims[1] != N) {
        DSE_WHYF(why, GEMM_SHAPES_DO_NOT_MATCH, NULL, a->dims[0], a->dims[1], b->dims[0], b->dims[1]);
        return 1;
    }
    if (c) {
        size_t cm = c->rank == 2 ? c->dims[0] : 1, cn = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
        if ((cm != 1 && cm != M) || (cn != 1 && cn != N)) { DSE_WHYF(why, GEMM_C_DOES_NOT_BROADCAST, NULL, M, N, 0, 0); return 1; }
    }
    return 0;
}

void dse_f32_gemm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *at = &m->tensors[n->in[0]], *bt = &m->tensors[n->in[1]];
    const dse_tensor *ct = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    const int ta = dse__attr_int(n, DSE_A_transA, 0) != 0, tb = dse__attr_int(n, DSE_A_transB, 0) != 0;
    const float alpha = dse__attr_float(n, DSE_A_alpha, 1.0f), beta = dse__attr_float(n, DSE_A_beta, 1.0f);
    const size_t M = at->dims[ta], K = at->dims[!ta], N = bt->dims[!tb];
    const float *A = dse__data(m, arena, n->in[0]);
    const void *B = dse__data(m, arena, n->in[1]);
    const void *Cd = ct ? dse__data(m, arena, n->in[2]) : NULL;
    float *Y = dse__data(m, arena, n->out[0]);
    float lo, hi;
    const int act = dse__nn_act(n, &lo, &hi);
    const size_t sak = ta ? M : 1, sai = ta ? 1 : K;        /* A[i,k] = A[i*sai + k*sak] */
    const size_t sbk = tb ? 1 : N, sbj = tb ? K : 1;        /* B[k,j] = B[k*sbk + j*sbj] */
    size_t cm = 0, cn = 0;
    if (ct) {
        cm = ct->rank == 2 ? ct->dims[0] : 1;
        cn = ct->rank >= 1 ? ct->dims[ct->rank - 1] : 1;
    }
    const int bmode = bt->dtype == DSE_DTYPE_FLOAT16 ? 1 : bt->layout == DSE_LAYOUT_F32_P16 ? 2 + tb : 0;
    dse_f32_gemm_rows(cx, A, sai, sak, B, bmode, sbk, sbj, M, K, N, Y);
    for (size_t i = 0; i < M; i++) {
        float *yr = Y + i * N;
        for (size_t j = 0; j < N; j++) {
            float v = yr[j];
            if (alpha != 1.0f) v = v * alpha;
            if (ct && beta != 0.0f) {
                const float cv = dse__nn_ld(ct, Cd, (cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j));
                v = v + (beta == 1.0f ? cv : cv * beta);
            }
            if (act) { v = v < lo ? lo : v; v = v > hi ? hi : v; }
            yr[j] = v;
        }
    }
}
