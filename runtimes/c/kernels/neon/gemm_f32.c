/* gemm_f32.c (NEON): float32 Gemm and MatMul on arm64 with the SGEMM of sgemm.c.
 *
 * Gemm: Y = alpha * op(A) @ op(B) + beta * C, clamp (kernels/ref/gemm.c). transB = 0 (any
 * transA: A read with its strides) by the broadcast tile, transB = 1 (transA = 0) by the
 * dot-product tile; C of rank 0, 1 or 2 broadcast as REF. Per element REF's order: the sum over
 * k (FMA chains, src/neon_f32.h), * alpha when alpha != 1, + C or C * beta when C is present and
 * beta != 0, the clamp. Float16 B or C and transA with transB are left to REF
 * (dse__check_gemm_f32_opt, kernels/ref/gemm.c, shared with the AVX2 variant).
 * MatMul: numpy semantics as kernels/ref/matmul.c (batched with broadcasting, 1-D operands), B
 * float32 (a constant or an activation); each batch's [M, K] x [K, N] by the broadcast tile
 * (the dot-product tile when N = 1: the column is k-contiguous), then the clamp. Float16 B: REF
 * (dse__check_matmul_f32_opt, kernels/ref/matmul.c).
 * Scratch: the packing buffer the plan gives Gemm with transB = 0 and MatMul with N > 1
 * (4 * dse__sgemm_pack_floats(K), as the AVX2 variant: the same plan), used when the region is
 * free at the node, else B is read in place. Threads: the (batch, block of rows or columns)
 * parts of every batch; with packing, whole packing chunks of columns (each part packs its own). */
#include "neon_f32.h"

#if DSE_NEON_F32

typedef struct neon_gf_job {
    const dse_ctx *cx;
    int pack, dot, by_rows;
    dse_mm_geom g;        /* Gemm: one batch (nb = 0) */
    dse_sgemm s;          /* batch 0's */
    size_t rb, cb, per;   /* per batch: `per` parts of rb rows or cb columns */
} neon_gf_job;

static void neon_gf_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const neon_gf_job *j = arg;
    const dse_mm_geom *g = &j->g;
    for (size_t it = begin; it < end; it++) {
        const size_t bi = it / j->per, part = it % j->per;
        size_t offa = 0, offb = 0, r = bi;
        for (int d = (int)g->nb - 1; d >= 0; d--) {   /* batch index -> A/B matrix offsets */
            const size_t idx = r % g->bdims[d];
            r /= g->bdims[d];
            offa += idx * g->sa[d];
            offb += idx * g->sb[d];
        }
        dse_sgemm s = j->s;
        s.A += offa; s.B += offb; s.C += bi * g->M * g->N;
        if (j->pack) s.pack = (float *)(void *)dse__worker_scratch(j->cx, worker);
        size_t i0 = 0, i1 = g->M, j0 = 0, j1 = g->N;
        if (j->by_rows) { i0 = part * j->rb; i1 = i0 + j->rb < g->M ? i0 + j->rb : g->M; }
        else { j0 = part * j->cb; j1 = j0 + j->cb < g->N ? j0 + j->cb : g->N; }
        if (j->dot) dse__neon_sgemm_dot(&s, i0, i1, j0, j1);
        else dse__neon_sgemm(&s, i0, i1, j0, j1);
    }
}

/* Cuts j (g, s, dot, pack set) into parts over the session's threads and runs them. */
static void neon_gf_run(neon_gf_job *j, const dse_ctx *cx) {
    const dse_mm_geom *g = &j->g;
    size_t nbatch = 1;
    for (size_t d = 0; d < g->nb; d++) nbatch *= g->bdims[d];
    if (!nbatch || !g->M || !g->N) return;
    const size_t threads = dse__threads(cx);
    if (j->pack) {   /* whole packing chunks of columns, about 2 parts per thread overall */
        const size_t pc = dse__sgemm_pack_cols(g->K), chunks = (g->N + pc - 1) / pc;
        size_t parts = (2 * threads + nbatch - 1) / nbatch;
        if (parts > chunks) parts = chunks;
        j->by_rows = 0;
        j->cb = pc * ((chunks + parts - 1) / parts);
        j->per = (g->N + j->cb - 1) / j->cb;
    } else {
        j->rb = j->dot ? 4 : 8 * ((g->M + 8 * 8 - 1) / (8 * 8));   /* at most ~8 row parts per batch */
        j->cb = j->dot ? 4 : 8;
        const size_t rows = (g->M + j->rb - 1) / j->rb, cols = (g->N + j->cb - 1) / j->cb;
        j->by_rows = nbatch * rows >= 2 * threads || rows >= cols;
        j->per = j->by_rows ? rows : cols;
    }
    dse__parallel(cx, nbatch * j->per, dse__grain(nbatch * j->per, (uint64_t)nbatch * g->M * g->N * g->K), neon_gf_task, j);
}

void dse_f32_gemm__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *at = &m->tensors[n->in[0]], *bt = &m->tensors[n->in[1]];
    const dse_tensor *ct = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    const int ta = dse__attr_int(n, DSE_A_transA, 0) != 0, tb = dse__attr_int(n, DSE_A_transB, 0) != 0;
    const float alpha = dse__attr_float(n, DSE_A_alpha, 1.0f), beta = dse__attr_float(n, DSE_A_beta, 1.0f);
    neon_gf_job j;
    memset(&j, 0, sizeof j);
    j.cx = cx;
    j.g.M = at->dims[ta]; j.g.K = at->dims[!ta]; j.g.N = bt->dims[!tb];
    j.dot = tb;
    j.pack = !tb && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(j.g.K);
    dse_sgemm *s = &j.s;
    s->K = j.g.K;
    s->A = dse__data(m, arena, n->in[0]);
    s->sai = ta ? 1 : j.g.K; s->sak = ta ? j.g.M : 1;
    s->B = dse__data(m, arena, n->in[1]);
    s->ldb = tb ? j.g.K : j.g.N;
    s->C = dse__data(m, arena, n->out[0]); s->ldc = j.g.N;
    s->use_alpha = alpha != 1.0f; s->alpha = alpha;
    if (ct && beta != 0.0f) {
        const size_t cm = ct->rank == 2 ? ct->dims[0] : 1, cn = ct->rank >= 1 ? ct->dims[ct->rank - 1] : 1;
        s->cmode = beta == 1.0f ? 1 : 2; s->beta = beta;
        s->Cm = dse__data(m, arena, n->in[2]);
        s->csi = cm == 1 ? 0 : cn; s->csj = cn == 1 ? 0 : 1;
    }
    s->act = dse__nn_act(n, &s->lo, &s->hi);
    neon_gf_run(&j, cx);
}

void dse_f32_matmul__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    neon_gf_job j;
    memset(&j, 0, sizeof j);
    dse__matmul_f32_geom(m, n, &j.g);   /* validated at load */
    j.cx = cx;
    j.dot = j.g.N == 1;
    j.pack = !j.dot && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(j.g.K);
    dse_sgemm *s = &j.s;
    s->K = j.g.K;
    s->A = dse__data(m, arena, n->in[0]); s->sai = j.g.K; s->sak = 1;
    s->B = dse__data(m, arena, n->in[1]);
    s->ldb = j.dot ? j.g.K : j.g.N;   /* dot: the column B[:, 0] is k-contiguous */
    s->C = dse__data(m, arena, n->out[0]); s->ldc = j.g.N;
    s->act = dse__nn_act(n, &s->lo, &s->hi);
    neon_gf_run(&j, cx);
}

#endif
