/* matmul.c: fp32 MatMul with numpy semantics: batched over the leading axes with broadcasting
 * (ranks up to 8), a 1-D left operand is a row (1, K) and a 1-D right operand a column (K, 1)
 * whose unit axis is dropped from the output; B may be a float16 constant (widened exactly);
 * fused clamp act_min/act_max.
 *
 * Per output element: acc = 0; for k in [0, K): acc = acc + A[..,i,k] * B[..,k,j] (sequential
 * over K), then the clamp. The loop order is batch, i, k, j with the row of Y as the running
 * accumulators, which keeps that per-element order (dse_f32_gemm_rows, kernels/ref/loops.c,
 * per batch). The batch walk uses per-axis strides with stride 0 on broadcast axes. */
#include "internal.h"

int dse__matmul_f32_geom(const dse_model *m, const dse_node *n, dse_mm_geom *g) {
    const dse_tensor *a = n->n_in == 2 ? dse__t(m, n->in[0]) : NULL, *b = n->n_in == 2 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = dse__t(m, n->out[0]);
    if (!a || !b || !y || n->n_out != 1 || a->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_FLOAT32 ||
        (b->dtype != DSE_DTYPE_FLOAT32 && b->dtype != DSE_DTYPE_FLOAT16))
        return 1;
    return dse__matmul_geom(a, b, y, g);
}

int dse__matmul_geom(const dse_tensor *a, const dse_tensor *b, const dse_tensor *y, dse_mm_geom *g) {
    if (a->rank < 1 || b->rank < 1) return 1;
    const int a1 = a->rank == 1, b1 = b->rank == 1;
    const size_t ra = a1 ? 2 : a->rank, rb = b1 ? 2 : b->rank;
    size_t adims[DSE_MAX_RANK], bdims[DSE_MAX_RANK];
    if (a1) { adims[0] = 1; adims[1] = a->dims[0]; } else memcpy(adims, a->dims, ra * sizeof adims[0]);
    if (b1) { bdims[0] = b->dims[0]; bdims[1] = 1; } else memcpy(bdims, b->dims, rb * sizeof bdims[0]);
    g->M = adims[ra - 2]; g->K = adims[ra - 1]; g->N = bdims[rb - 1];
    if (bdims[rb - 2] != g->K) return 1;
    g->nb = (ra > rb ? ra : rb) - 2;
    size_t sA = g->M * g->K, sB = g->K * g->N;
    for (int d = (int)g->nb - 1; d >= 0; d--) {      /* right-aligned broadcast of the batch axes */
        int da = d - (int)(g->nb - (ra - 2)), db = d - (int)(g->nb - (rb - 2));
        size_t xa = da >= 0 ? adims[da] : 1, xb = db >= 0 ? bdims[db] : 1;
        if (xa != xb && xa != 1 && xb != 1) return 1;
        g->bdims[d] = xa > xb ? xa : xb;
        g->sa[d] = xa == 1 ? 0 : sA;
        g->sb[d] = xb == 1 ? 0 : sB;
        sA *= xa; sB *= xb;
    }
    /* expected output shape: batch + (M unless a1) + (N unless b1) */
    size_t want[DSE_MAX_RANK + 2], r = 0;
    for (size_t d = 0; d < g->nb; d++) want[r++] = g->bdims[d];
    if (!a1) want[r++] = g->M;
    if (!b1) want[r++] = g->N;
    if (y->rank != r) return 1;
    for (size_t d = 0; d < r; d++) if (y->dims[d] != want[d]) return 1;
    return 0;
}

int dse__check_matmul_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_mm_geom g;
    if (dse__matmul_f32_geom(m, n, &g)) {
        DSE_WHY(why, MATMUL_NEEDS_FLOAT32_FLOAT32_FLOAT16);
        return 1;
    }
    const int p16 = m->tensors[n->in[1]].layout == DSE_LAYOUT_F32_P16;   /* B in layout 9 (rank 2): any shape */
    why->scratch_plan = g.N > 1 && !p16 ? 4 * dse__sgemm_pack_floats(g.K) : 0;   /* the optimised variants' (internal.h;
                                                                                 * layout 9: B read in place) */
    if (p16) why->packed = 1u << 1;
    return 0;
}

/* dse__matmul_f32_opt_run (internal.h) */
void dse__matmul_f32_opt_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, const dse_sgemm_isa *isa) {
    dse_mm_geom g;
    dse_sgemm s;
    memset(&g, 0, sizeof g);
    memset(&s, 0, sizeof s);
    dse__matmul_f32_geom(m, n, &g);   /* validated at load */
    const int dot = g.N == 1;
    s.K = g.K;
    s.A = dse__data(m, arena, n->in[0]); s.sai = g.K; s.sak = 1;
    s.B = dse__data(m, arena, n->in[1]);
    s.ldb = dot ? g.K : g.N;   /* dot: the column B[:, 0] is k-contiguous */
    s.C = dse__data(m, arena, n->out[0]); s.ldc = g.N;
    s.act = dse__nn_act(n, &s.lo, &s.hi);
    const int pack = !dot && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(g.K);
    dse_f32_sgemm_batched(cx, &g, &s, dot ? isa->dot : isa->gemm, pack, dot ? isa->dot_rt : isa->gemm_rt, dot ? isa->dot_ct : isa->gemm_ct,
                          !dot && m->tensors[n->in[1]].layout == DSE_LAYOUT_F32_P16);   /* (N = 1: layout 9 is plain) */
}

/* The check of the optimised float MatMul variants (kernels/avx2/matmul.c, kernels/neon/gemm_f32.c):
 * REF's, and a float32 B (float16: REF); scratch: the packing buffer when N > 1 and the plan's
 * region is free at this node, else none (B read in place). */
int dse__check_matmul_f32_opt(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_mm_geom g;
    if (dse__matmul_f32_geom(m, n, &g)) {
        DSE_WHY(why, MATMUL_NEEDS_FLOAT32_FLOAT32_FLOAT16);
        return 1;
    }
    if (m->tensors[n->in[1]].dtype != DSE_DTYPE_FLOAT32) {
        DSE_WHYF(why, F32_OPT_NOT_COVERED, "float16 B", 0, 0, 0, 0);
        return 1;
    }
    if (m->tensors[n->in[1]].layout == DSE_LAYOUT_F32_P16) {   /* layout 9 (rank 2): panels read in place, no packing buffer */
        why->packed = 1u << 1;
        return 0;
    }
    why->scratch_plan = g.N > 1 ? 4 * dse__sgemm_pack_floats(g.K) : 0;
    why->scratch = dse__scratch_free(m, n, why->scratch_plan) ? why->scratch_plan : 0;   /* else: B in place */
    return 0;
}

void dse_f32_matmul__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_mm_geom g;
    memset(&g, 0, sizeof g);
    dse__matmul_f32_geom(m, n, &g);
    const dse_tensor *bt = &m->tensors[n->in[1]];
    const float *A = dse__data(m, arena, n->in[0]);
    const void *B = dse__data(m, arena, n->in[1]);
    float *Y = dse__data(m, arena, n->out[0]);
    float lo, hi;
    const int act = dse__nn_act(n, &lo, &hi), b32 = bt->dtype == DSE_DTYPE_FLOAT32, p16 = bt->layout == DSE_LAYOUT_F32_P16;
    size_t idx[DSE_MAX_RANK] = {0}, offa = 0, offb = 0, nbatch = 1;
    for (size_t d = 0; d < g.nb; d++) nbatch *= g.bdims[d];
    for (size_t bi = 0; bi < nbatch; bi++) {
        const float *a = A + offa;
        float *y = Y + bi * g.M * g.N;
        dse_f32_gemm_rows(cx, a, g.K, 1, b32 ? (const void *)((const float *)B + offb) : (const void *)((const uint16_t *)B + offb),
                          p16 ? 2 : !b32, g.N, 1, g.M, g.K, g.N, y);   /* (layout 9: rank 2, offb 0) */
        if (act)
            for (size_t j = 0; j < g.M * g.N; j++) { float v = y[j]; v = v < lo ? lo : v; y[j] = v > hi ? hi : v; }
        for (int d = (int)g.nb - 1; d >= 0; d--) {   /* advance the batch counter, carry left */
            offa += g.sa[d]; offb += g.sb[d];
            if (++idx[d] < g.bdims[d]) break;
            offa -= g.sa[d] * idx[d]; offb -= g.sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}
