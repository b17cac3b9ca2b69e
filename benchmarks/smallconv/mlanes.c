/* mlanes.c: a standalone microbenchmark of a 1x1 float Conv on a small image (issue 10, session 18:
 * mobilenet_v2's 7x7 1x1 convs, 49 columns, a bad fit for the runtime's 6 x 16 SGEMM tiles) with the
 * register tile along output channels: 3 pixels x 32 output channels (12 ymm accumulators), per k 4
 * vectors of W^T (32 channels) and 3 broadcast pixels of x's row k; k in chunks of KC (accumulators
 * kept in a [P][32] buffer between chunks: the float sum is the same), then + bias and a transpose
 * (8x8 blocks) into the NCHW output. Each output is one FMA chain over k ascending, then + bias: the
 * runtime's bytes, checked against a scalar fmaf() chain ("exact=1").
 * Weight modes: 0 "W^T" (a plain [K][M] transpose: rows M floats apart thrash L1 sets when M is a
 * multiple of 512 floats), 1 "transpose" (W as stored, each 32-channel block transposed into an L1
 * panel per call: what an AVX2-only kernel could do), 2 "panels" (W packed [M/32][K][32] ahead of
 * time: what a packed layout chosen at export gives).
 *   gcc -O2 -mavx2 -mfma -ffp-contract=off -o /tmp/mlanes benchmarks/smallconv/mlanes.c -lm
 *   /work/s16/quiet /tmp/mlanes M K P REPEAT [KC]     (e.g. 960 160 49 300 64) */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static size_t KC = 1u<<30;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec*1e-6;}
/* W^T: wt[k*ldw + m] (ldw = M for layout T; 32 for a panel). X[k*P+p]. out buf[p*32+v*8..]  */
static inline __attribute__((always_inline)) void tile(int NP, const float *wt, size_t ldw, const float *x, size_t P, size_t K, size_t p0, const float *bias, float *buf, int first, int last) {
    __m256 acc[3][4];
    _Pragma("GCC unroll 16") for (int a = 0; a < NP; a++) _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) acc[a][v] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(buf + (p0 + a) * 32 + v * 8);
    const float *xp = x + p0;
    for (size_t k = 0; k < K; k++) {
        const float *w = wt + k * ldw;
        __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8), w2 = _mm256_loadu_ps(w + 16), w3 = _mm256_loadu_ps(w + 24);
        _Pragma("GCC unroll 16") for (int a = 0; a < NP; a++) {
            __m256 xb = _mm256_broadcast_ss(xp + a);
            acc[a][0] = _mm256_fmadd_ps(xb, w0, acc[a][0]);
            acc[a][1] = _mm256_fmadd_ps(xb, w1, acc[a][1]);
            acc[a][2] = _mm256_fmadd_ps(xb, w2, acc[a][2]);
            acc[a][3] = _mm256_fmadd_ps(xb, w3, acc[a][3]);
        }
        xp += P;
    }
    _Pragma("GCC unroll 16") for (int a = 0; a < NP; a++) _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
        _mm256_storeu_ps(buf + (p0 + a) * 32 + v * 8, last ? _mm256_add_ps(acc[a][v], _mm256_loadu_ps(bias + v * 8)) : acc[a][v]);
}
static __attribute__((noinline)) void tile3(const float *wt, size_t ldw, const float *x, size_t P, size_t K, size_t p0, const float *b, float *buf, int f, int l){tile(3,wt,ldw,x,P,K,p0,b,buf,f,l);}
static __attribute__((noinline)) void tile2(const float *wt, size_t ldw, const float *x, size_t P, size_t K, size_t p0, const float *b, float *buf, int f, int l){tile(2,wt,ldw,x,P,K,p0,b,buf,f,l);}
static __attribute__((noinline)) void tile1(const float *wt, size_t ldw, const float *x, size_t P, size_t K, size_t p0, const float *b, float *buf, int f, int l){tile(1,wt,ldw,x,P,K,p0,b,buf,f,l);}
static inline void tr8(__m256 *r) {
    __m256 t0=_mm256_unpacklo_ps(r[0],r[1]),t1=_mm256_unpackhi_ps(r[0],r[1]),t2=_mm256_unpacklo_ps(r[2],r[3]),t3=_mm256_unpackhi_ps(r[2],r[3]);
    __m256 t4=_mm256_unpacklo_ps(r[4],r[5]),t5=_mm256_unpackhi_ps(r[4],r[5]),t6=_mm256_unpacklo_ps(r[6],r[7]),t7=_mm256_unpackhi_ps(r[6],r[7]);
    __m256 s0=_mm256_shuffle_ps(t0,t2,0x44),s1=_mm256_shuffle_ps(t0,t2,0xEE),s2=_mm256_shuffle_ps(t1,t3,0x44),s3=_mm256_shuffle_ps(t1,t3,0xEE);
    __m256 s4=_mm256_shuffle_ps(t4,t6,0x44),s5=_mm256_shuffle_ps(t4,t6,0xEE),s6=_mm256_shuffle_ps(t5,t7,0x44),s7=_mm256_shuffle_ps(t5,t7,0xEE);
    r[0]=_mm256_permute2f128_ps(s0,s4,0x20);r[1]=_mm256_permute2f128_ps(s1,s5,0x20);r[2]=_mm256_permute2f128_ps(s2,s6,0x20);r[3]=_mm256_permute2f128_ps(s3,s7,0x20);
    r[4]=_mm256_permute2f128_ps(s0,s4,0x31);r[5]=_mm256_permute2f128_ps(s1,s5,0x31);r[6]=_mm256_permute2f128_ps(s2,s6,0x31);r[7]=_mm256_permute2f128_ps(s3,s7,0x31);
}
static void out_T(const float *buf, size_t P, float *y) { /* y[m*P+p] = buf[p*32+m], m<32 */
    size_t p = 0;
    for (; p + 8 <= P; p += 8) for (size_t m = 0; m < 32; m += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(buf + (p + i) * 32 + m);
        tr8(r);
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(y + (m + i) * P + p, r[i]);
    }
    for (size_t m = 0; m < 32; m++) for (size_t q = p; q < P; q++) y[m * P + q] = buf[q * 32 + m];
}
static float *wp;
static void conv_mlanes(int mode, const float *w, const float *wt, const float *x, const float *bias, float *y, size_t M, size_t K, size_t P, float *panel, float *buf) {
    for (size_t m0 = 0; m0 < M; m0 += 32) {
        const float *src; size_t ldw;
        if (mode == 0) { src = wt + m0; ldw = M; }
        else if (mode == 2) { src = wp + m0 * K; ldw = 32; }
        else { /* transpose W[m0..m0+32][K] into panel[K][32] */
            for (size_t k = 0; k < K; k += 8) for (size_t mm = 0; mm < 32; mm += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(w + (m0 + mm + i) * K + k);
                __m256 t0=_mm256_unpacklo_ps(r[0],r[1]),t1=_mm256_unpackhi_ps(r[0],r[1]),t2=_mm256_unpacklo_ps(r[2],r[3]),t3=_mm256_unpackhi_ps(r[2],r[3]);
                __m256 t4=_mm256_unpacklo_ps(r[4],r[5]),t5=_mm256_unpackhi_ps(r[4],r[5]),t6=_mm256_unpacklo_ps(r[6],r[7]),t7=_mm256_unpackhi_ps(r[6],r[7]);
                __m256 s0=_mm256_shuffle_ps(t0,t2,0x44),s1=_mm256_shuffle_ps(t0,t2,0xEE),s2=_mm256_shuffle_ps(t1,t3,0x44),s3=_mm256_shuffle_ps(t1,t3,0xEE);
                __m256 s4=_mm256_shuffle_ps(t4,t6,0x44),s5=_mm256_shuffle_ps(t4,t6,0xEE),s6=_mm256_shuffle_ps(t5,t7,0x44),s7=_mm256_shuffle_ps(t5,t7,0xEE);
                __m256 o[8]={_mm256_permute2f128_ps(s0,s4,0x20),_mm256_permute2f128_ps(s1,s5,0x20),_mm256_permute2f128_ps(s2,s6,0x20),_mm256_permute2f128_ps(s3,s7,0x20),
                             _mm256_permute2f128_ps(s0,s4,0x31),_mm256_permute2f128_ps(s1,s5,0x31),_mm256_permute2f128_ps(s2,s6,0x31),_mm256_permute2f128_ps(s3,s7,0x31)};
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(panel + (k + i) * 32 + mm, o[i]);
            }
            src = panel; ldw = 32;
        }
        for (size_t k0 = 0; k0 < K; k0 += KC) {
        const size_t kn = K - k0 < KC ? K - k0 : KC; const int f = k0 == 0, l = k0 + kn == K;
        const float *s2 = src + k0 * ldw, *x2 = x + k0 * P;
        size_t p = 0;
        for (; p + 3 <= P; p += 3) tile3(s2, ldw, x2, P, kn, p, bias + m0, buf, f, l);
        if (P - p == 2) tile2(s2, ldw, x2, P, kn, p, bias + m0, buf, f, l);
        else if (P - p == 1) tile1(s2, ldw, x2, P, kn, p, bias + m0, buf, f, l);
        }
        out_T(buf, P, y + m0 * P);
    }
}
int main(int argc, char **argv) {
    size_t M = atoi(argv[1]), K = atoi(argv[2]), P = atoi(argv[3]); int reps = atoi(argv[4]); if (argc > 5) KC = atoi(argv[5]);
    float *w = aligned_alloc(64, M*K*4), *wt = aligned_alloc(64, M*K*4), *x = aligned_alloc(64, K*P*4), *b = aligned_alloc(64, M*4);
    float *y = aligned_alloc(64, M*P*4), *yr = aligned_alloc(64, M*P*4), *panel = aligned_alloc(64, K*32*4), *buf = aligned_alloc(64, P*32*4+64);
    srand(1);
    for (size_t i = 0; i < M*K; i++) w[i] = rand() / (float)RAND_MAX - 0.5f;
    for (size_t m = 0; m < M; m++) for (size_t k = 0; k < K; k++) wt[k*M+m] = w[m*K+k];
    for (size_t i = 0; i < K*P; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < M; i++) b[i] = rand() / (float)RAND_MAX;
    for (size_t m = 0; m < M; m++) for (size_t p = 0; p < P; p++) { float a = 0; for (size_t k = 0; k < K; k++) a = fmaf(w[m*K+k], x[k*P+p], a); yr[m*P+p] = a + b[m]; }
    wp = aligned_alloc(64, M*K*4); for (size_t m = 0; m < M; m++) for (size_t k = 0; k < K; k++) wp[(m/32)*K*32 + k*32 + m%32] = w[m*K+k];
    for (int mode = 0; mode < 3; mode++) {
        double best = 1e9;
        for (int r = 0; r < reps; r++) { double t = now(); conv_mlanes(mode, w, wt, x, b, y, M, K, P, panel, buf); t = now() - t; if (t < best) best = t; }
        int ok = !memcmp(y, yr, M*P*4);
        printf("M%zu K%zu P%zu mode %s: %.4f ms  %.1f%% of 51.8 GMAC/s  exact=%d\n", M, K, P, mode == 2 ? "panels" : mode ? "transpose" : "W^T", best, 100.0 * M*K*P / (best * 1e-3) / 51.8e9, ok);
    }
}
