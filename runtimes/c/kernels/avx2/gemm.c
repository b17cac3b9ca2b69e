/* gemm.c (AVX2): float32 Gemm, Y = alpha * op(A) @ op(B) + beta * C, clamp, with the SGEMM of
 * sgemm.c: transB = 0 by the broadcast kernel (any transA), transB = 1 by the dot-product
 * kernel (transA = 0). Per element the REF order of kernels/ref/gemm.c: the sum over k
 * (FMA), * alpha, + C or C * beta, the clamp. Float16 B or C, and transA with transB, are
 * left to REF (dse__check_gemm_f32_opt, kernels/ref/gemm.c). Threads: blocks of rows, or of columns when
 * there are few rows. */
#include "avx2_f32.h"

#if DSE_AVX2_F32

/* The parts of an M x N product: blocks of `rb` rows when there are enough, else columns in
 * chunks of `cb`. */
typedef struct gemm_avx2_job {
    const dse_ctx *cx;
    int pack;
    dse_sgemm s;
    int dot;
    size_t M, N, rb, cb, by_rows;
} gemm_avx2_job;

static DSE_TARGET_AVX2 void gemm_avx2_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const gemm_avx2_job *j = arg;
    size_t i0 = 0, i1 = j->M, j0 = 0, j1 = j->N;
    if (j->by_rows) { i0 = begin * j->rb; i1 = end * j->rb < j->M ? end * j->rb : j->M; }
    else { j0 = begin * j->cb; j1 = end * j->cb < j->N ? end * j->cb : j->N; }
    if (j->dot) { dse__avx2_sgemm_dot(&j->s, i0, i1, j0, j1); return; }
    dse_sgemm s = j->s;
    if (j->pack) s.pack = (float *)(void *)dse__worker_scratch(j->cx, worker);
    dse__avx2_sgemm(&s, i0, i1, j0, j1);
}

/* Runs j (s, dot, M, N set) over the session's threads. */
static void gemm_avx2_run(gemm_avx2_job *j, const dse_ctx *cx) {
    const size_t threads = dse__threads(cx);
    j->rb = j->dot ? 3 : 6;
    j->cb = j->dot ? 8 : 16;
    if (j->pack) {   /* parts of whole packing chunks of columns (each packs its own once) */
        const size_t chunks = (j->N + dse__sgemm_pack_cols(j->s.K) - 1) / dse__sgemm_pack_cols(j->s.K);
        const size_t per = (chunks + threads - 1) / threads;
        j->cb = dse__sgemm_pack_cols(j->s.K) * per;
        j->by_rows = 0;
        dse__parallel(cx, (j->N + j->cb - 1) / j->cb, dse__grain((j->N + j->cb - 1) / j->cb, (uint64_t)j->M * j->N * j->s.K), gemm_avx2_task, j);
        return;
    }
    const size_t rows = (j->M + j->rb - 1) / j->rb, cols = (j->N + j->cb - 1) / j->cb;
    j->by_rows = rows >= 2 * threads || rows >= cols;
    dse__parallel(cx, j->by_rows ? rows : cols, dse__grain(j->by_rows ? rows : cols, (uint64_t)j->M * j->N * j->s.K), gemm_avx2_task, j);
}

void dse_f32_gemm__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *at = &m->tensors[n->in[0]], *bt = &m->tensors[n->in[1]];
    const dse_tensor *ct = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    const int ta = dse__attr_int(n, DSE_A_transA, 0) != 0, tb = dse__attr_int(n, DSE_A_transB, 0) != 0;
    const float alpha = dse__attr_float(n, DSE_A_alpha, 1.0f), beta = dse__attr_float(n, DSE_A_beta, 1.0f);
    const size_t M = at->dims[ta], K = at->dims[!ta], N = bt->dims[!tb];
    gemm_avx2_job j;
    memset(&j, 0, sizeof j);
    j.M = M; j.N = N; j.dot = tb;
    j.cx = cx;
    j.pack = !tb && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(K);
    dse_sgemm *s = &j.s;
    s->K = K;
    s->A = dse__data(m, arena, n->in[0]);
    s->sai = ta ? 1 : K; s->sak = ta ? M : 1;
    s->B = dse__data(m, arena, n->in[1]);
    s->ldb = tb ? K : N;
    s->C = dse__data(m, arena, n->out[0]); s->ldc = N;
    s->use_alpha = alpha != 1.0f; s->alpha = alpha;
    if (ct && beta != 0.0f) {
        const size_t cm = ct->rank == 2 ? ct->dims[0] : 1, cn = ct->rank >= 1 ? ct->dims[ct->rank - 1] : 1;
        s->cmode = beta == 1.0f ? 1 : 2; s->beta = beta;
        s->Cm = dse__data(m, arena, n->in[2]);
        s->csi = cm == 1 ? 0 : cn; s->csj = cn == 1 ? 0 : 1;
    }
    s->act = dse__nn_act(n, &s->lo, &s->hi);
    if (M && N) gemm_avx2_run(&j, cx);
}

#endif
