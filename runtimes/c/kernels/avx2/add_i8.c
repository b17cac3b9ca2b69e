/* add_i8.c (AVX2): int8 Add and Sub, the bytes of kernels/ref/add_i8.c.
 *
 * The rule (docs/quant-arith.md §6): t = (a - za) * Ma + (b - zb) * Mb' (Mb' = Mb, or -Mb for
 * Sub) in int64, y = clamp(zp + ((t + 2^(n-1)) >> n), qmin, qmax), >> arithmetic. Eight
 * elements at a time: a - za and b - zb widened to int32, the products by vpmuldq (signed
 * 32 x 32 -> 64 bits; |a - za| <= 255, |Mb'| < 2^31) on the even and the odd lanes, the sum
 * plus 2^(n-1) + 2^62 shifted right logically by n: t + 2^62 is positive (|t| < 2^40 + 2^61)
 * and 2^n divides 2^62, so that is (t + 2^(n-1)) >> n + 2^(62-n) exactly; the offset and zp
 * are one constant subtracted, then the clamp (in 32 bits when n >= 10, where every result
 * fits: |t| / 2^n + |zp| + 1 < 2^31; else in 64 bits, vpcmpgtq) and packs to int8. A row
 * that is constant in b (a per-channel or scalar operand) takes b's term as one constant.
 * Rows come from the elementwise walker (kernels/ref/binary.c); strides other than 0/1 and the
 * last elements of a row use the formula one element at a time, as REF does.
 *
 * Compiled a second time by kernels/avx512vnni/add_i8.c with DSE_ADD_I8_512: the same arithmetic on
 * 16 lanes (vpmuldq, vpsrlq, the 64-bit clamps vpminsq/vpmaxsq, the bytes by vpmovsdb of values already
 * in [qmin, qmax]): dse_i8_{add,sub}__avx512vnni, the same bytes. */
#include "isa.h"

#if DSE_ARCH_X86_64 && (!defined(DSE_ADD_I8_512) || (DSE_VNNI_OK && !defined(DSE_EMULATE_VNNI)))
#include <immintrin.h>

#include "requant.h"

/* the file's static names, distinct in each compile (bundles compile every hot source in one unit) */
#if defined(DSE_ADD_I8_512)
#define AD(name) add512_##name
#else
#define AD(name) add256_##name
#endif

typedef struct AD(params) {
    int za, zb, qmin, qmax, sh;
    int64_t Ma, Mb, bias;       /* bias = 2^(n-1) + 2^62; result offset: zp - 2^(62-n) */
    int64_t off;
    int zp;
} AD(params);

static inline int8_t AD(one)(const AD(params) *p, int a, int b) {
    const int64_t t = (int64_t)(a - p->za) * p->Ma + (int64_t)(b - p->zb) * p->Mb;
    return dse_i8_clamp(p->zp + dse_i8_round_shift(t, p->sh), p->qmin, p->qmax);
}

#if !defined(DSE_ADD_I8_512)
/* 8 int32 lanes: clamp(zp + ((dv * Mv (+ dw * Mw, or + k) + 2^(n-1)) >> n)), int32, element order. */
DSE_TARGET_AVX2 static inline __m256i add8(__m256i dv, __m256i dw, int has_w, int narrow, __m256i mv, __m256i mw,
                                           __m256i k, __m256i bias, __m128i sh, __m256i off, __m256i lo, __m256i hi) {
    __m256i te = _mm256_mul_epi32(dv, mv), to = _mm256_mul_epi32(_mm256_srli_epi64(dv, 32), mv);
    if (has_w) {
        te = _mm256_add_epi64(te, _mm256_mul_epi32(dw, mw));
        to = _mm256_add_epi64(to, _mm256_mul_epi32(_mm256_srli_epi64(dw, 32), mw));
    } else {
        te = _mm256_add_epi64(te, k);
        to = _mm256_add_epi64(to, k);
    }
    te = _mm256_add_epi64(_mm256_srl_epi64(_mm256_add_epi64(te, bias), sh), off);
    to = _mm256_add_epi64(_mm256_srl_epi64(_mm256_add_epi64(to, bias), sh), off);
    if (narrow) {            /* every result fits in int32: clamp after joining the lanes */
        const __m256i v = _mm256_blend_epi32(te, _mm256_slli_epi64(to, 32), 0xAA);
        return _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
    }
    te = _mm256_blendv_epi8(te, lo, _mm256_cmpgt_epi64(lo, te));
    te = _mm256_blendv_epi8(te, hi, _mm256_cmpgt_epi64(te, hi));
    to = _mm256_blendv_epi8(to, lo, _mm256_cmpgt_epi64(lo, to));
    to = _mm256_blendv_epi8(to, hi, _mm256_cmpgt_epi64(to, hi));
    return _mm256_blend_epi32(te, _mm256_slli_epi64(to, 32), 0xAA);   /* odd lanes back in place */
}

DSE_TARGET_AVX2 static inline __m256i load8(const int8_t *x, __m256i z) {
    return _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)x)), z);
}

/* The vector part of a row (AD(row) below): elements [0, returned) of y from v (a, or b when only b
 * varies) and, when both vary, b; kc the constant operand's term otherwise. */
DSE_TARGET_AVX2 static size_t AD(block)(const AD(params) *p, int8_t *y, const int8_t *v, const int8_t *b, int both, int only_b,
                                        int64_t kc, size_t len) {
    size_t i = 0;
    const __m256i zv = _mm256_set1_epi32(only_b ? p->zb : p->za), zw = _mm256_set1_epi32(p->zb);
    const __m256i mv = _mm256_set1_epi64x(only_b ? p->Mb : p->Ma), mw = _mm256_set1_epi64x(p->Mb);
    const __m256i k = _mm256_set1_epi64x(kc);
    const __m256i bias = _mm256_set1_epi64x(p->bias), off = _mm256_set1_epi64x(p->off);
    const __m256i lo = _mm256_set1_epi64x(p->qmin), hi = _mm256_set1_epi64x(p->qmax);
    const __m256i lo32 = _mm256_set1_epi32(p->qmin), hi32 = _mm256_set1_epi32(p->qmax);
    const __m128i sh = _mm_cvtsi32_si128(p->sh);
    const int narrow = p->sh >= 10;   /* |result| <= 255 * 2^32 / 2^n + 130 < 2^31 */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; i + 32 <= len; i += 32) {
        __m256i r[4];
        for (int q = 0; q < 4; q++) {
            const __m256i dv = load8(v + i + 8 * q, zv);
            const __m256i dw = both ? load8(b + i + 8 * q, zw) : dv;
            r[q] = narrow ? add8(dv, dw, both, 1, mv, mw, k, bias, sh, off, lo32, hi32)
                          : add8(dv, dw, both, 0, mv, mw, k, bias, sh, off, lo, hi);
        }
        const __m256i w01 = _mm256_packs_epi32(r[0], r[1]), w23 = _mm256_packs_epi32(r[2], r[3]);
        _mm256_storeu_si256((__m256i *)(void *)(y + i), _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), order));
    }
    return i;
}
#define ADD_KERNEL(name) name##__avx2
#else
/* add8 on 16 lanes (the clamp in 64 bits always: vpmaxsq/vpminsq) */
DSE_TARGET_AVX512VNNI static inline __m512i add16(__m512i dv, __m512i dw, int has_w, __m512i mv, __m512i mw, __m512i k,
                                                  __m512i bias, __m128i sh, __m512i off, __m512i lo, __m512i hi) {
    __m512i te = _mm512_mul_epi32(dv, mv), to = _mm512_mul_epi32(_mm512_srli_epi64(dv, 32), mv);
    if (has_w) {
        te = _mm512_add_epi64(te, _mm512_mul_epi32(dw, mw));
        to = _mm512_add_epi64(to, _mm512_mul_epi32(_mm512_srli_epi64(dw, 32), mw));
    } else {
        te = _mm512_add_epi64(te, k);
        to = _mm512_add_epi64(to, k);
    }
    te = _mm512_add_epi64(_mm512_srl_epi64(_mm512_add_epi64(te, bias), sh), off);
    to = _mm512_add_epi64(_mm512_srl_epi64(_mm512_add_epi64(to, bias), sh), off);
    te = _mm512_min_epi64(_mm512_max_epi64(te, lo), hi);
    to = _mm512_min_epi64(_mm512_max_epi64(to, lo), hi);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, te, _mm512_slli_epi64(to, 32));   /* odd lanes back in place */
}

DSE_TARGET_AVX512VNNI static size_t AD(block)(const AD(params) *p, int8_t *y, const int8_t *v, const int8_t *b, int both,
                                              int only_b, int64_t kc, size_t len) {
    size_t i = 0;
    const __m512i zv = _mm512_set1_epi32(only_b ? p->zb : p->za), zw = _mm512_set1_epi32(p->zb);
    const __m512i mv = _mm512_set1_epi64(only_b ? p->Mb : p->Ma), mw = _mm512_set1_epi64(p->Mb);
    const __m512i k = _mm512_set1_epi64(kc);
    const __m512i bias = _mm512_set1_epi64(p->bias), off = _mm512_set1_epi64(p->off);
    const __m512i lo = _mm512_set1_epi64(p->qmin), hi = _mm512_set1_epi64(p->qmax);
    const __m128i sh = _mm_cvtsi32_si128(p->sh);
    for (; i + 64 <= len; i += 64)
        for (int q = 0; q < 4; q++) {
            const __m512i dv = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(v + i + 16 * q))), zv);
            const __m512i dw = both ? _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b + i + 16 * q))), zw) : dv;
            _mm_storeu_si128((__m128i *)(void *)(y + i + 16 * q), _mm512_cvtsepi32_epi8(add16(dv, dw, both, mv, mw, k, bias, sh, off, lo, hi)));
        }
    return i;
}
#define ADD_KERNEL(name) name##__avx512vnni
#endif

/* A row: both operands contiguous, or one contiguous and the other constant along the row (its
 * term is then one constant; the sum is the same whichever operand varies): AD(block)'s vectors,
 * then (and for other strides) the formula one element at a time. */
static void AD(row)(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, const dse_ew_ctx *c) {
    (void)nx;
    const AD(params) *p = c->p;
    int8_t *y = (int8_t *)yb;
    const int8_t *a = (const int8_t *)x[0], *b = (const int8_t *)x[1];
    size_t i = 0;
    const int both = s[0] == 1 && s[1] == 1, only_a = s[0] == 1 && s[1] == 0, only_b = s[0] == 0 && s[1] == 1;
    if (both || only_a || only_b) {
        const int64_t kc = only_a ? (int64_t)(b[0] - p->zb) * p->Mb : only_b ? (int64_t)(a[0] - p->za) * p->Ma : 0;
        i = AD(block)(p, y, only_b ? b : a, b, both, only_b, kc, len);
    }
    for (; i < len; i++) y[i] = AD(one)(p, a[i * s[0]], b[i * s[1]]);
}

static void AD(run)(const dse_model *m, const dse_node *n, uint8_t *arena, int sign, const dse_ctx *cx) {
    dse_i8_addp q;
    dse_i8_add_params(n, &q);
    AD(params) p;
    p.za = q.za, p.zb = q.zb, p.qmin = q.qmin, p.qmax = q.qmax, p.sh = q.n, p.zp = q.zp;
    p.Ma = q.Ma, p.Mb = sign * q.Mb;
    p.bias = ((int64_t)1 << (q.n - 1)) + ((int64_t)1 << 62);
    p.off = (int64_t)q.zp - ((int64_t)1 << (62 - q.n));
    dse_ew_ctx c = {{0, 0, 0, 0}, {0, 0}, 1, &p};
    dse__ew_walk(m, n, arena, 2, AD(row), &c, cx);
}

void ADD_KERNEL(dse_i8_add)(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    AD(run)(m, n, arena, 1, cx);
}

void ADD_KERNEL(dse_i8_sub)(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    AD(run)(m, n, arena, -1, cx);
}

#undef AD
#undef ADD_KERNEL

#endif
