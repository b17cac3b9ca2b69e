/* matmul.c (AVX2): float32 MatMul (numpy semantics as kernels/ref/matmul.c: batched with
 * broadcasting, 1-D operands), B float32 (a constant or an activation: attention's products
 * too). Each batch's [M, K] x [K, N] by the SGEMM of sgemm.c (the broadcast kernel; the
 * dot-product kernel when N = 1), the sum over k by FMA, then the clamp. Float16 B is left to
 * REF (dse__check_matmul_f32_opt, kernels/ref/matmul.c). Threads: the (batch, block of rows or columns) parts of every batch. */
#include "avx2_f32.h"

#if DSE_AVX2_F32

typedef struct matmul_avx2_job {
    const dse_ctx *cx;
    int pack;             /* pack B's columns into the worker's scratch (planned) */
    dse_mm_geom g;
    dse_sgemm s;          /* batch 0's */
    int dot;
    size_t parts, rb, cb, by_rows, per;   /* per batch: `per` parts of rb rows or cb columns */
} matmul_avx2_job;

static DSE_TARGET_AVX2 void matmul_avx2_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const matmul_avx2_job *j = arg;
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
        (j->dot ? dse__avx2_sgemm_dot : dse__avx2_sgemm)(&s, i0, i1, j0, j1);
    }
}

void dse_f32_matmul__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    matmul_avx2_job j;
    memset(&j, 0, sizeof j);
    dse__matmul_f32_geom(m, n, &j.g);   /* validated at load */
    const dse_mm_geom *g = &j.g;
    size_t nbatch = 1;
    for (size_t d = 0; d < g->nb; d++) nbatch *= g->bdims[d];
    if (!nbatch || !g->M || !g->N) return;
    dse_sgemm *s = &j.s;
    s->K = g->K;
    s->A = dse__data(m, arena, n->in[0]); s->sai = g->K; s->sak = 1;
    s->B = dse__data(m, arena, n->in[1]);
    s->C = dse__data(m, arena, n->out[0]); s->ldc = g->N;
    s->act = dse__nn_act(n, &s->lo, &s->hi);
    j.dot = g->N == 1;
    j.cx = cx;
    j.pack = !j.dot && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(g->K);
    s->ldb = j.dot ? g->K : g->N;   /* dot: the column B[:, 0] is k-contiguous */
    const size_t threads = dse__threads(cx);
    if (j.pack) {   /* parts of whole packing chunks of columns (each packs its own once) */
        const size_t pc = dse__sgemm_pack_cols(g->K), chunks = (g->N + pc - 1) / pc;
        size_t parts = (2 * threads + nbatch - 1) / nbatch;   /* per batch: about 2 per thread overall */
        if (parts > chunks) parts = chunks;
        j.by_rows = 0;
        j.cb = pc * ((chunks + parts - 1) / parts);
        j.per = (g->N + j.cb - 1) / j.cb;
    } else {
        j.rb = j.dot ? 3 : 6 * ((g->M + 6 * 8 - 1) / (6 * 8));   /* at most ~8 row parts per batch */
        j.cb = j.dot ? 8 : 16;
        const size_t rows = (g->M + j.rb - 1) / j.rb, cols = (g->N + j.cb - 1) / j.cb;
        j.by_rows = nbatch * rows >= 2 * threads || rows >= cols;
        j.per = j.by_rows ? rows : cols;
    }
    dse__parallel(cx, nbatch * j.per, dse__grain(nbatch * j.per, (uint64_t)nbatch * g->M * g->N * g->K), matmul_avx2_task, &j);
}

#endif
