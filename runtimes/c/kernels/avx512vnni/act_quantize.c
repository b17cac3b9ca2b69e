/* avx512vnni/act_quantize.c: dsedge.ActFnQuantize on 512-bit vectors (ISA avx512vnni: AVX-512
 * F/BW/VL, which every AVX512-VNNI CPU has), the bytes of the AVX2 kernel (kernels/avx2/act_quantize.c,
 * whose check it uses: SiLU only where the AVX2 Sigmoid kernel runs). Every lane goes through the
 * same IEEE operations in the same order as there: f(x) from the template the AVX2 functions come
 * from (src/vec_mathf.h, instantiated here for __m512: vroundps -> vrndscaleps with the same
 * rounding, vblendvps -> masked blends of the same comparisons, the bit operations on integer
 * vectors), SiLU's 4 vectors interleaved as there (which changes only the schedule), HardSwish as
 * dse__avx2_hardswish, NaN made canonical; then QuantizeLinear as quantize_avx2.h's avx2_q8 (the
 * float32 division, the 1.5 * 2^23 rounding trick on its bits, the clamps), each int32 narrowed to
 * its byte (vpmovdb: the values are already in [-128, 127]). 16 lanes where AVX2 has 8: the
 * function's arithmetic (not its divisions) is what the AVX2 kernel spends its time on (yolo-style
 * models keep 50-100 SiLUs in float). Tails by masked loads and stores. Blocks of 256 elements,
 * over the session's threads, as the AVX2 kernel. Not in the VNNI emulation build (that one says an
 * AVX2 CPU has AVX-512: this file's instructions are real). The same template's Exp, Sigmoid, Tanh and
 * Erf are the 16-lane float kernels of those ops (the AVX2 ones' bytes). The same 16-lane function over a row of
 * floats in place is the fused SiLU/GELU of the 512-bit float Conv, Gemm and MatMul
 * (dse__avx512_act_fn_row, src/avx2_f32.h). */
#include "avx2_f32.h"

#if DSE_AVX2_F32 && DSE_VNNI_OK && !defined(DSE_EMULATE_VNNI)
#include "requant.h"

#define VM_F __m512
#define VM_I __m512i
#define VM_AI static inline __attribute__((always_inline)) DSE_TARGET_AVX512VNNI
#define VM_NAME(f) z512_##f
#define VM_VL(N) DSE_VL(N)
#define VM_C(c) _mm512_set1_ps(c)
#define VM_ADD(a, b) _mm512_add_ps(a, b)
#define VM_SUB(a, b) _mm512_sub_ps(a, b)
#define VM_MUL(a, b) _mm512_mul_ps(a, b)
#define VM_DIV(a, b) _mm512_div_ps(a, b)
#define VM_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VM_FNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define VM_MIN(a, b) _mm512_min_ps(a, b)
#define VM_MAX(a, b) _mm512_max_ps(a, b)
#define VM_RINT(a) _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VM_CVT(a) _mm512_cvtps_epi32(a)
#define VM_ISRA1(i) _mm512_srai_epi32(i, 1)
#define VM_IADD(i, j) _mm512_add_epi32(i, j)
#define VM_ISUB(i, j) _mm512_sub_epi32(i, j)
#define VM_I127 _mm512_set1_epi32(127)
#define VM_EXP2I(i) _mm512_castsi512_ps(_mm512_slli_epi32(i, 23))
#define VM_OR(a, b) _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VM_AND(a, b) _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VM_ANDNOT(a, b) _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VM_BLEND(a, b, m) _mm512_mask_blend_ps(m, a, b)   /* b where m (a mask, not a vector, here) */
#define VM_GE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ)
#define VM_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define VM_ISNAN(a) _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q)
#include "vec_mathf.h"

DSE_TARGET_AVX512VNNI static void z512_act_fn_4(int fn, __m512 *v);
DSE_TARGET_AVX512VNNI static void z512_act_fn_row(int fn, float *y, size_t n) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 v[4];
        for (size_t k = 0; k < 4; k++) v[k] = _mm512_loadu_ps(y + i + 16 * k);
        z512_act_fn_4(fn, v);
        for (size_t k = 0; k < 4; k++) _mm512_storeu_ps(y + i + 16 * k, v[k]);
    }
    if (i == n) return;
    __m512 v[4];
    __mmask16 mk[4];
    for (size_t k = 0; k < 4; k++) {
        const size_t at = i + 16 * k, nl = at >= n ? 0 : n - at > 16 ? 16 : n - at;
        mk[k] = dse__avx512_mask(nl);
        v[k] = _mm512_maskz_loadu_ps(mk[k], y + at);
    }
    z512_act_fn_4(fn, v);
    for (size_t k = 0; k < 4; k++) _mm512_mask_storeu_ps(y + i + 16 * k, mk[k], v[k]);
}

/* dse__avx2_act_fn_n's f on 16 lanes: SiLU 4 vectors at a time, HardSwish (REF's operations, no FMA),
 * GELU from the Erf kernel's erf; NaN canonical */
DSE_TARGET_AVX512VNNI static void z512_act_fn_4(int fn, __m512 *v) {
    if (fn == DSE_ACT_FN_SILU) {
        __m512 y[4];
        z512_silu_n(4, v, y);
        for (int k = 0; k < 4; k++) v[k] = y[k];
    } else if (fn == DSE_ACT_FN_GELU) {
        __m512 t[4], e[4];
        for (int k = 0; k < 4; k++) t[k] = _mm512_div_ps(v[k], _mm512_set1_ps(1.41421353816986083984375f));
        z512_erf_n(4, t, e);
        for (int k = 0; k < 4; k++)
            v[k] = _mm512_mul_ps(_mm512_mul_ps(v[k], _mm512_add_ps(e[k], _mm512_set1_ps(1.0f))), _mm512_set1_ps(0.5f));
    } else {   /* DSE_ACT_FN_HARDSWISH */
        for (int k = 0; k < 4; k++) {
            __m512 h = _mm512_add_ps(_mm512_mul_ps(v[k], _mm512_set1_ps((float)(1.0 / 6.0))), _mm512_set1_ps(0.5f));
            h = _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_setzero_ps(), h));
            v[k] = _mm512_mul_ps(v[k], h);
        }
    }
    for (int k = 0; k < 4; k++)
        v[k] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v[k], v[k], _CMP_UNORD_Q), v[k],
                                    _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000)));
}

/* dse__avx2_act_fn_row on 16 lanes (avx2_f32.h dse__avx512_act_fn_row): 4 vectors at a time, the
 * last ones by masked loads and stores (their lanes past n: zeros, not stored) */
void dse__avx512_act_fn_row(int fn, float *y, size_t n) { z512_act_fn_row(fn, y, n); }

/* Exp, Sigmoid, Tanh, Erf (float32) on 16 lanes: the AVX2 kernels' bytes (kernels/avx2/unary.c: the
 * same template function per lane, 4 vectors at a time, NaN canonical), their checks; the last
 * vectors by masked loads and stores. Parts of 256 vectors (the AVX2 kernels': 16K elements). */
typedef struct z512_un_job { const float *x; float *y; size_t n; int op; } z512_un_job;
enum { Z512_EXP, Z512_SIGMOID, Z512_TANH, Z512_ERF };

DSE_TARGET_AVX512VNNI static void z512_un_part(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const z512_un_job *j = arg;
    const size_t hi = end * 64 < j->n ? end * 64 : j->n;
    for (size_t i = begin * 64; i < hi; i += 64) {
        __m512 x[4], y[4];
        __mmask16 mk[4];
        for (size_t k = 0; k < 4; k++) {
            const size_t at = i + 16 * k, nl = at >= hi ? 0 : hi - at > 16 ? 16 : hi - at;
            mk[k] = dse__avx512_mask(nl);
            x[k] = _mm512_maskz_loadu_ps(mk[k], j->x + at);
        }
        switch (j->op) {
        case Z512_EXP: z512_exp_n(4, x, y); break;
        case Z512_SIGMOID: z512_sigmoid_n(4, x, y); break;
        case Z512_TANH: z512_tanh_n(4, x, y); break;
        default: z512_erf_n(4, x, y); break;
        }
        for (size_t k = 0; k < 4; k++) {
            const __m512 v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y[k], y[k], _CMP_UNORD_Q), y[k],
                                                  _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000)));
            _mm512_mask_storeu_ps(j->y + i + 16 * k, mk[k], v);
        }
    }
}

static void z512_un_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, int op) {
    z512_un_job j = {dse__data(m, arena, n->in[0]), dse__data(m, arena, n->out[0]), m->tensors[n->out[0]].numel, op};
    dse__parallel(cx, (j.n + 63) / 64, 256, z512_un_part, &j);
}
void dse_f32_exp__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { z512_un_run(m, n, arena, cx, Z512_EXP); }
void dse_f32_sigmoid__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { z512_un_run(m, n, arena, cx, Z512_SIGMOID); }
void dse_f32_tanh__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { z512_un_run(m, n, arena, cx, Z512_TANH); }
void dse_f32_erf__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { z512_un_run(m, n, arena, cx, Z512_ERF); }

/* avx2_q8 on 16 lanes: the values (in int32 lanes) of QuantizeLinear(v, s, zp) clamped to [lo, hi] */
DSE_TARGET_AVX512VNNI static inline __m512i z512_q16(__m512 v, __m512 s, __m512i zp, __m512i lo, __m512i hi) {
    const __m512 r = _mm512_div_ps(v, s), m = _mm512_add_ps(r, _mm512_set1_ps(12582912.0f));
    const __m512i rb = _mm512_castps_si512(r), mb = _mm512_castps_si512(m);
    const __m512i mag = _mm512_and_si512(rb, _mm512_set1_epi32(0x7FFFFFFF)), neg = _mm512_srli_epi32(rb, 31);
    __m512i q = _mm512_sub_epi32(_mm512_and_si512(mb, _mm512_set1_epi32(0x7FFFFF)), _mm512_set1_epi32(0x400000));
    q = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x43FFFFFF)), q,   /* |r| >= 512 */
                                _mm512_sub_epi32(_mm512_set1_epi32(1024), _mm512_slli_epi32(neg, 11)));
    q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, zp), lo), hi);
    return _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7F800000)), q, zp);   /* NaN: zp */
}

#define Z512_ACT_Q_BLOCK 256
typedef struct z512_act_q_args { const float *x; int8_t *y; size_t n; dse_act_q p; } z512_act_q_args;

DSE_TARGET_AVX512VNNI static void z512_act_q_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const z512_act_q_args *a = arg;
    const __m512 s = _mm512_set1_ps(a->p.s);
    const __m512i zp = _mm512_set1_epi32(a->p.zp), lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
    for (size_t b = begin; b < end; b++) {
        const size_t i0 = b * Z512_ACT_Q_BLOCK, c = a->n - i0 < Z512_ACT_Q_BLOCK ? a->n - i0 : Z512_ACT_Q_BLOCK;
        for (size_t j = 0; j < c; j += 64) {   /* 4 vectors (their lanes past c: zeros, not stored) */
            __m512 v[4];
            __mmask16 mk[4];
            for (size_t k = 0; k < 4; k++) {
                const size_t at = j + 16 * k, nl = at >= c ? 0 : c - at > 16 ? 16 : c - at;
                mk[k] = dse__avx512_mask(nl);
                v[k] = _mm512_maskz_loadu_ps(mk[k], a->x + i0 + at);
            }
            z512_act_fn_4(a->p.fn, v);
            for (size_t k = 0; k < 4; k++)
                if (mk[k]) _mm512_mask_cvtepi32_storeu_epi8(a->y + i0 + j + 16 * k, mk[k], z512_q16(v[k], s, zp, lo, hi));
        }
    }
}

void dse_i8_act_quantize__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    z512_act_q_args a;
    dse_why why;
    dse__act_q_params(m, n, &a.p, &why);
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    a.n = m->tensors[n->out[0]].numel;
    const size_t nb = (a.n + Z512_ACT_Q_BLOCK - 1) / Z512_ACT_Q_BLOCK;
    dse__parallel(cx, nb, 64, z512_act_q_range, &a);
}

/* QuantizeLinear float32 -> int8 / uint8 per tensor on 16 lanes (kernels/avx2/quantize_i8.c's bytes and
 * check: z512_q16 is its avx2_q8; every value in [lo, hi], so vpmovdb's truncation is the byte), 64
 * elements a step, the last ones by masked loads and stores; parts of 1024 steps. */
typedef struct z512_q_args { const float *x; uint8_t *y; size_t n; float s; int zp, lo, hi; } z512_q_args;

DSE_TARGET_AVX512VNNI static void z512_q_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const z512_q_args *a = arg;
    const __m512 s = _mm512_set1_ps(a->s);
    const __m512i zp = _mm512_set1_epi32(a->zp), lo = _mm512_set1_epi32(a->lo), hi = _mm512_set1_epi32(a->hi);
    const size_t e = end * 64 < a->n ? end * 64 : a->n;
    for (size_t i = begin * 64; i < e; i += 64)
        for (size_t k = 0; k < 4; k++) {
            const size_t at = i + 16 * k, nl = at >= e ? 0 : e - at > 16 ? 16 : e - at;
            const __mmask16 mk = dse__avx512_mask(nl);
            if (mk) _mm512_mask_cvtepi32_storeu_epi8(a->y + at, mk, z512_q16(_mm512_maskz_loadu_ps(mk, a->x + at), s, zp, lo, hi));
        }
}

void dse_i8_quantize__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    z512_q_args a;
    const int qtype = m->tensors[n->out[0]].dtype, u8 = qtype == DSE_DTYPE_UINT8;
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    a.n = m->tensors[n->out[0]].numel;
    dse__quantize_params(m, n, qtype, &a.s, &a.zp);   /* (checked at load) */
    a.lo = u8 ? 0 : -128, a.hi = u8 ? 255 : 127;
    dse__parallel(cx, (a.n + 63) / 64, 1024, z512_q_range, &a);
}

#endif
