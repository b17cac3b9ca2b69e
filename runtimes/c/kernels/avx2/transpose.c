/* transpose.c (AVX2): Transpose of 4-byte elements (float32, int32, uint32) that moves the
 * innermost axis: after dropping size-1 axes and merging the ones that stay adjacent
 * (dse__mv_merge), the output's last axis walks the input with a stride other than 1 while
 * another output axis q is the input's contiguous one. Each (q, last) plane is copied in 8 x 8
 * blocks transposed in registers (8 row loads, 24 shuffles, 8 row stores) instead of one strided
 * element at a time; block edges and other transposes are REF's walk. Data movement only: the
 * bytes of dse_any_transpose__ref. Threads: the planes, or the blocks of rows of one plane. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

typedef struct tr_job {
    const uint32_t *x;
    uint32_t *y;
    unsigned r, q;                       /* merged axes; q: the input-contiguous one */
    size_t d2[DSE_MAX_RANK + 2], ds[DSE_MAX_RANK + 2];   /* dims, output strides */
    int64_t s2[DSE_MAX_RANK + 2];        /* input strides */
    size_t planes, rblocks;              /* outer index count, 8-row blocks per plane */
} tr_job;

static int tr_plan(const dse_model *m, const dse_node *n, tr_job *j) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t perm[DSE_MAX_RANK], xs[DSE_MAX_RANK], stride[DSE_MAX_RANK];
    if (dse__mv_esize(x->dtype) != 4 || dse__transpose_perm(m, n, perm)) return 1;
    dse__mv_row_strides(x, xs);
    for (unsigned d = 0; d < y->rank; d++) stride[d] = xs[perm[d]];
    j->r = dse__mv_merge(y->rank, y->dims, stride, j->d2, j->s2);
    if (j->r < 2 || j->s2[j->r - 1] == 1) return 1;   /* empty, or the last axis already contiguous */
    j->q = j->r;
    for (unsigned d = 0; d + 1 < j->r; d++)
        if (j->s2[d] == 1) j->q = d;
    if (j->q == j->r || j->d2[j->q] < 8 || j->d2[j->r - 1] < 8) return 1;   /* no 8 x 8 block */
    j->ds[j->r - 1] = 1;
    for (int d = (int)j->r - 2; d >= 0; d--) j->ds[d] = j->ds[d + 1] * j->d2[d + 1];
    j->planes = 1;
    for (unsigned d = 0; d + 1 < j->r; d++)
        if (d != j->q) j->planes *= j->d2[d];
    j->rblocks = (j->d2[j->q] + 7) / 8;
    return 0;
}

int dse__check_transpose_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (n->n_out != 1 || dse__mv_check_io(m, n, why)) return 1;   /* REF's check (its own unit in a bundle) */
    tr_job j;
    if (tr_plan(m, n, &j)) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "Transpose: not 4-byte elements moving the innermost axis", 0, 0, 0, 0);
        return 1;
    }
    return 0;
}

/* rows [i0, i0 + 8) of one plane: out[i][c] = in[i + c * sl], i along q, c along the last axis */
static DSE_TARGET_AVX2 void tr_rows(const tr_job *j, const uint32_t *src, uint32_t *dst, size_t i0) {
    const size_t nc = j->d2[j->r - 1], dq = j->ds[j->q], sl = (size_t)j->s2[j->r - 1];
    const size_t ni = j->d2[j->q] - i0 < 8 ? j->d2[j->q] - i0 : 8;
    size_t c = 0;
    if (ni == 8) {
        for (; c + 8 <= nc; c += 8) {
            const float *s = (const float *)(const void *)(src + i0 + c * sl);
            const __m256 a0 = _mm256_loadu_ps(s), a1 = _mm256_loadu_ps(s + sl), a2 = _mm256_loadu_ps(s + 2 * sl),
                         a3 = _mm256_loadu_ps(s + 3 * sl), a4 = _mm256_loadu_ps(s + 4 * sl), a5 = _mm256_loadu_ps(s + 5 * sl),
                         a6 = _mm256_loadu_ps(s + 6 * sl), a7 = _mm256_loadu_ps(s + 7 * sl);
            const __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1), t2 = _mm256_unpacklo_ps(a2, a3),
                         t3 = _mm256_unpackhi_ps(a2, a3), t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5),
                         t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                         u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                         u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = (float *)(void *)(dst + i0 * dq + c);
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + dq, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * dq, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * dq, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * dq, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * dq, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * dq, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * dq, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    }
    for (size_t i = i0; i < i0 + ni; i++)   /* the columns left (all of them in a short last block) */
        for (size_t cc = c; cc < nc; cc++) dst[i * dq + cc] = src[i + cc * sl];
}

static DSE_TARGET_AVX2 void tr_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const tr_job *j = arg;
    for (size_t it = begin; it < end; it++) {
        size_t p = it / j->rblocks, so = 0, doff = 0;
        const size_t rb = it % j->rblocks;
        for (int d = (int)j->r - 2; d >= 0; d--) {   /* plane p's offsets (axes other than q and the last) */
            if ((unsigned)d == j->q) continue;
            const size_t i = p % j->d2[d];
            p /= j->d2[d];
            so += i * (size_t)j->s2[d];
            doff += i * j->ds[d];
        }
        tr_rows(j, j->x + so, j->y + doff, 8 * rb);
    }
}

void dse_any_transpose__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    tr_job j;
    tr_plan(m, n, &j);   /* validated at load */
    j.x = dse__data(m, arena, n->in[0]);
    j.y = dse__data(m, arena, n->out[0]);
    const size_t items = j.planes * j.rblocks;
    dse__parallel(cx, items, dse__grain(items, (uint64_t)m->tensors[n->out[0]].numel), tr_task, &j);
}

#endif
