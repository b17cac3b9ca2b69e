/* maxpool_i8.c (AVX2): int8 MaxPool, 1-D and 2-D, W stride 1 or 2, any kernel, dilation, pads and
 * ceil_mode, rows of at most MPI_MAXW bytes (others: REF). The bytes of kernels/ref/maxpool_i8.c:
 * the maximum of the window's taps inside the input, starting from -128 (a tap in the padding
 * counts as -128, so an all-padding window gives -128); the maximum of bytes is exact and its
 * order free, so it is taken separably. Per (plane, output row): the element-wise vpmaxsb of the
 * kernel rows inside the input into a row padded with -128 (pl columns before it, enough after),
 * then per output column the maximum over the kernel's columns, 32 columns per vpmaxsb; W stride
 * 2 reads the padded row's even and odd bytes from de-interleaved copies, so every tap is one
 * contiguous load. Threads: blocks of (plane, output row). */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

#include "requant.h"

#define MPI_MAXW 4096   /* bytes of a padded row (and of each phase) on the stack */

typedef struct mpi_job {
    const int8_t *x;
    int8_t *y;
    dse_i8_geom g;
    size_t OWp;   /* OW rounded up to 32 */
    size_t NB;    /* bytes of the padded row read: the windows' extent, rounded up */
} mpi_job;

static int mpi_geom(const dse_model *m, const dse_node *n, mpi_job *j) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    dse_why why;
    if (dse_i8_geom_read(n, x, y, NULL, &j->g, &why)) return 1;
    const dse_i8_geom *g = &j->g;
    if (g->in[0] != 1 || g->out[0] != 1 || g->k[0] != 1 || g->pb[0] != 0 || g->s[2] < 1 || g->s[2] > 2 || g->d[2] < 1 ||
        g->pb[2] < 0 || g->out[2] < 1)
        return 1;
    j->OWp = ((size_t)g->out[2] + 31) / 32 * 32;
    const size_t span = (size_t)((g->k[2] - 1) * g->d[2]);
    /* the padded row holds column j of the windows: j < OWp * s + span (+ one for the odd phase) */
    size_t nb = j->OWp * (size_t)g->s[2] + span + 2;
    if (nb < (size_t)(g->pb[2] + g->in[2])) nb = (size_t)(g->pb[2] + g->in[2]);
    j->NB = (nb + 31) / 32 * 32;
    return j->NB > MPI_MAXW || (size_t)g->k[2] > MPI_MAXW;
}

int dse__check_i8_maxpool_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_maxpool_check(m, n, why)) return 1;
    mpi_job j;
    if (mpi_geom(m, n, &j)) {
        DSE_WHYF(why, I8_AVX2_NOT_COVERED, "3-D, W stride > 2 or long rows", 0, 0, 0, 0);
        return 1;
    }
    return 0;
}

DSE_TARGET_AVX2 static void mpi_task(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const mpi_job *j = arg;
    const dse_i8_geom *g = &j->g;
    const long long IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2], pl = g->pb[2];
    const long long KW = g->k[2], SW = g->s[2], DW = g->d[2];
    /* buf: the padded row (-128 outside [pl, pl + IW), which alone is written), with room for the
     * de-interleaving's 64-byte reads; ph: its even and odd bytes; out: the output row */
    int8_t buf[MPI_MAXW + 96], ph[2][MPI_MAXW / 2 + 64], out[MPI_MAXW];
    const int8_t *p[64];
    const __m256i lo = _mm256_set1_epi8(-128);
    for (size_t i = 0; i < sizeof buf; i += 32) _mm256_storeu_si256((__m256i *)(void *)(buf + i), lo);
    for (size_t it = begin; it < end; it++) {
        const size_t c = it / (size_t)OH;
        const long long oh = (long long)(it % (size_t)OH);
        const int8_t *xc = j->x + c * (size_t)(IH * IW);
        int8_t *yr = j->y + it * (size_t)OW;
        int64_t k0, k1;   /* the kernel rows inside the input */
        dse__tap_range(oh * g->s[1] - g->pb[1], g->k[1], g->d[1], 0, IH, &k0, &k1);
        if (k0 >= k1) { memset(yr, -128, (size_t)OW); continue; }
        int8_t *v = buf + pl;   /* the vertical maximum, in the padded row */
        for (int64_t kh = k0; kh < k1; kh++) {
            const int8_t *row = xc + (oh * g->s[1] - g->pb[1] + kh * g->d[1]) * IW;
            long long i = 0;
            if (kh == k0) {
                for (; i + 32 <= IW; i += 32)
                    _mm256_storeu_si256((__m256i *)(void *)(v + i), _mm256_loadu_si256((const __m256i *)(const void *)(row + i)));
                for (; i < IW; i++) v[i] = row[i];
            } else {
                for (; i + 32 <= IW; i += 32)
                    _mm256_storeu_si256((__m256i *)(void *)(v + i),
                                        _mm256_max_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(v + i)),
                                                        _mm256_loadu_si256((const __m256i *)(const void *)(row + i))));
                for (; i < IW; i++) v[i] = row[i] > v[i] ? row[i] : v[i];
            }
        }
        if (SW == 2) {   /* the even and odd bytes of the padded row */
            const __m256i ev = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                                0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
            for (size_t q = 0; 2 * q < j->NB; q += 32) {
                const __m256i a = _mm256_permute4x64_epi64(
                    _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(buf + 2 * q)), ev), 0xD8);
                const __m256i b = _mm256_permute4x64_epi64(
                    _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(buf + 2 * q + 32)), ev), 0xD8);
                _mm256_storeu_si256((__m256i *)(void *)(ph[0] + q), _mm256_permute2x128_si256(a, b, 0x20));
                _mm256_storeu_si256((__m256i *)(void *)(ph[1] + q), _mm256_permute2x128_si256(a, b, 0x31));
            }
        }
        /* out[o] = max over the kernel's columns k of (padded) column o * SW + k * DW, from -128,
         * 32 columns at a time, the taps in chunks of 64 */
        for (long long kc = 0; kc < KW; kc += 64) {
            const long long nk = KW - kc < 64 ? KW - kc : 64;
            for (long long k = 0; k < nk; k++) {
                const long long off = (kc + k) * DW;
                p[k] = SW == 1 ? buf + off : ph[off & 1] + off / 2;
            }
            for (size_t o = 0; o < j->OWp; o += 32) {
                __m256i b = kc ? _mm256_loadu_si256((const __m256i *)(const void *)(out + o)) : lo;
                for (long long k = 0; k < nk; k++) b = _mm256_max_epi8(b, _mm256_loadu_si256((const __m256i *)(const void *)(p[k] + o)));
                _mm256_storeu_si256((__m256i *)(void *)(out + o), b);
            }
        }
        memcpy(yr, out, (size_t)OW);
    }
}

DSE_TARGET_AVX2 void dse_i8_maxpool__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    mpi_job j;
    mpi_geom(m, n, &j);
    j.x = dse__data(m, arena, n->in[0]);
    j.y = dse__data(m, arena, n->out[0]);
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const size_t rows = xt->dims[0] * xt->dims[1] * (size_t)j.g.out[1];
    if (!rows) return;
    dse__parallel(cx, rows, dse__grain(rows, (uint64_t)rows * j.OWp * (uint64_t)(j.g.k[1] + j.g.k[2])), mpi_task, &j);
}

#endif
