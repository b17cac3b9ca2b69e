/* internal.h: the loaded model's structures and the kernel interface (not installed).
 *
 * The loader (loader.c) turns a validated .dse buffer into these structs once; kernels get
 * the model, their node and the session's arena, and find tensor data with dse__data().
 * Every offset and size here has been bounds-checked at load, so kernels do no checks of
 * their own beyond what their `check` function verified for their node at load time.
 */
#ifndef DSEDGE_INTERNAL_H
#define DSEDGE_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dsedge.h"

/* Linkage of the runtime's internal functions: extern in the per-file build (Makefile, CMake,
 * the Python extension), `static` when `dsedge export` compiles the library as one
 * translation unit (-DDSE_INTERNAL=static, dsedge/export/bundle.py): internal calls are then
 * resolved by the compiler, and the archive carries no relocation or symbol for them. So every
 * internal function is declared once, in a header, with DSE_INTERNAL, before its definition. */
#ifndef DSE_INTERNAL
#define DSE_INTERNAL
#endif
/* Linkage of the few internal functions that cross between kernels/ref/loops.c (the inner
 * loops, compiled -O2 by `dsedge export`) and the rest of the library (-Os): extern, hidden
 * from the final binary's dynamic symbols (-DDSE_SHARED=... in the bundle build). */
#ifndef DSE_SHARED
#define DSE_SHARED
#endif
/* For small helpers with many call sites: one copy instead of one per call (binary size). */
#if defined(__GNUC__)
#define DSE_NOINLINE __attribute__((noinline))
#else
#define DSE_NOINLINE
#endif
/* 1 on 32-bit ARM (ARMv7-A or later, with an FPU) when the compiler can enable NEON for single
 * functions (GCC >= 8: target("fpu=neon"); clang >= 20, whose arm_neon.h no longer needs NEON for
 * the whole file), or when the whole build has NEON: the armv7 NEON kernel variants (src/isa.h
 * DSE_ARCH_ARM32) are then compiled and listed (kernels.inc); else armv7 runs REF kernels only. */
#if defined(__arm__) && defined(__ARM_FP) && __ARM_ARCH >= 7 && defined(__ARM_ARCH_PROFILE) &&           \
    __ARM_ARCH_PROFILE == 'A' && defined(__GNUC__) && !defined(DSE_REF_ONLY) &&                            \
    (defined(__ARM_NEON) || (defined(__clang__) && __clang_major__ >= 20) ||                              \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 8))
#define DSE_NEON32_OK 1
#else
#define DSE_NEON32_OK 0
#endif

/* 1 on x86-64 when the compiler can build the VNNI kernel variants (kernels/avxvnni/,
 * kernels/avx512vnni/: target("avxvnni") and _mm256_dpbusd_avx_epi32 need GCC >= 11 or clang >= 12,
 * Apple clang >= 13), or in the emulation test build (-DDSE_EMULATE_VNNI, AVX2 only): they are
 * then compiled and listed (kernels_x86.inc); else they compile to nothing and AVX2 takes their
 * nodes. */
#if defined(__x86_64__) && !defined(DSE_REF_ONLY) &&                                                     \
    (defined(DSE_EMULATE_VNNI) ||                                                                        \
     (defined(__clang__) && (defined(__apple_build_version__) ? __clang_major__ >= 13 : __clang_major__ >= 12)) || \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define DSE_VNNI_OK 1
#else
#define DSE_VNNI_OK 0
#endif
/* The AMX variants (kernels/amx/): the same compilers (AMX intrinsics: gcc 11, clang 12), on Linux
 * only, where a process asks the kernel for the tile state (src/cpu.c); elsewhere not compiled. */
#if DSE_VNNI_OK && defined(__linux__)
#define DSE_AMX_OK 1
#else
#define DSE_AMX_OK 0
#endif

#define DSE_NONE UINT32_MAX   /* an absent optional input/output */
#define DSE_STORAGE_CONST 0
#define DSE_STORAGE_ARENA 1

typedef struct dse_tensor {
    const char *name;
    uint8_t dtype, storage, layout, rank, quant;
    int32_t axis;
    size_t dims[DSE_MAX_RANK];
    size_t numel, nbytes, offset;
    const uint8_t *cdata;   /* a constant's bytes: blob + offset, or its float32 copy (layout 5, below) */
    const uint8_t *hdata;   /* layout 5: the file's float16 bits (blob + offset; the fp16-arithmetic kernels read
                             * them), else NULL */
    size_t group_size, quant_count;
    float *scales;
    int32_t *zero_points;
} dse_tensor;

/* Tensor layouts (docs/format.md §4.4): 0 row-major; 1 "N8K4 rows" (an int8 constant viewed
 * as W[R][K], R = dims[0], K = the product of the other dims); 2 "N8K4 transposed" (an int8
 * rank-2 constant B[K][N] viewed as W[R = N][K] = B[k][n]). Packed bytes: 32-byte blocks of
 * 8 rows x 4 consecutive k (row r, then k), the ceil(K/4) blocks of an 8-row band in k order,
 * then the next band; rows >= R and k >= K are 0 (the loader checks). */
/* Layouts 3 "I4 rows" and 4 "I4 transposed" are the same two views of an int4 constant (W4A8
 * weights), each row packed along K on its own: ceil(K/2) bytes, W[r][k] in the low nibble
 * (even k) or high nibble (odd k) of byte r*ceil(K/2) + k/2, two's complement; the high nibble
 * after an odd K is 0 (the loader checks). */
/* Layouts 6 "I4 N8K4 rows" and 7 "I4 N8K4 transposed" are the views of layouts 1 and 2 for an int4
 * constant (per-channel W4A8 weights of Conv group 1, Gemm, MatMul) in the same 8 x 4 blocks, each
 * block in 16 bytes: byte j (0..15) holds block element j (= (r%8)*4 + k%4) in its low nibble and
 * element j + 16 in its high nibble, two's complement; padding nibbles 0 (the loader checks). So
 * W[r][k] is the (r%8)/4 nibble (0 low, 1 high) of byte ((r/8)*Kb + k/4)*16 + (r%4)*4 + k%4. */
/* Layout 5 "float16 storage of a float32 constant" (fp16 weights): the loader widens it into a
 * float32 copy once (exact), so the kernels see a float32 constant in layout 0: half the file,
 * the float32 kernels' speed, the float32 bytes in memory; `hdata` keeps the file's float16 bits
 * for the fp16-arithmetic kernels (docs/quant-arith.md §16). */
enum { DSE_LAYOUT_PLAIN = 0, DSE_LAYOUT_N8K4 = 1, DSE_LAYOUT_N8K4_T = 2, DSE_LAYOUT_I4 = 3, DSE_LAYOUT_I4_T = 4,
       DSE_LAYOUT_F16W = 5, DSE_LAYOUT_I4_N8K4 = 6, DSE_LAYOUT_I4_N8K4_T = 7, DSE_LAYOUT_F32_O32 = 8,
       DSE_LAYOUT_F32_P16 = 9, DSE_LAYOUT_MAX_ = 9 };
/* Layout 8 "F32 O32 panels" (docs/format.md §4.4): a float32 constant W[R][K] (R = dims[0], a
 * multiple of 32; K = the other dims' product) as panels of 32 rows, k-major inside:
 * W[r][k] = data[((r / 32) * K + k) * 32 + r % 32]. Read by the float Conv kernels (REF: any
 * geometry; AVX2 and NEON: 1x1 kernels, unit strides, no padding). */
static inline size_t dse__o32_index(size_t r, size_t k, size_t K) { return (r / 32 * K + k) * 32 + r % 32; }
/* Layout 9 "F32 P16 panels" (docs/format.md §4.4): a float32 rank-2 constant T[R][C] (R = dims[0],
 * C = dims[1]; MatMul's and Gemm's B[K][N]) as the panels of 16 columns that the optimised SGEMMs
 * read in place (dse_sgemm.bpanel): the C16 = C / 16 * 16 first columns as panels of R rows x 16,
 * panel after panel, T[r][c] = data[((c / 16) * R + r) * 16 + c % 16]; then the last C - C16
 * columns row-major, T[r][c] = data[C16 * R + r * (C - C16) + c - C16] (no padding: the plain
 * layout's size; C < 16 is the plain layout's bytes). Read by the float Gemm (transB = 0; REF: also
 * transB = 1) and MatMul kernels. */
static inline size_t dse__p16_index(size_t r, size_t c, size_t R, size_t C) {
    const size_t c16 = C / 16 * 16;
    return c < c16 ? (c / 16 * R + r) * 16 + c % 16 : c16 * R + r * (C - c16) + (c - c16);
}

static inline int dse__layout_i4(int layout) {   /* an int4 constant's layout (3, 4, 6, 7) */
    return layout == DSE_LAYOUT_I4 || layout == DSE_LAYOUT_I4_T || layout == DSE_LAYOUT_I4_N8K4 || layout == DSE_LAYOUT_I4_N8K4_T;
}

/* (R, K) of the W[R][K] view of a packed tensor (layouts 1 to 4, 6, 7). */
static inline void dse__packed_rk(const dse_tensor *t, size_t *R, size_t *K) {
    if (t->layout == DSE_LAYOUT_N8K4_T || t->layout == DSE_LAYOUT_I4_T || t->layout == DSE_LAYOUT_I4_N8K4_T) {
        *R = t->dims[1], *K = t->dims[0];
        return;
    }
    size_t k = 1;
    for (unsigned d = 1; d < t->rank; d++) k *= t->dims[d];
    *R = t->dims[0], *K = t->rank && t->dims[0] ? k : 0;
}

/* Byte index of W[r][k] in a packed tensor with Kb = ceil(K/4) k-blocks per 8-row band. */
static inline size_t dse__n8k4_index(size_t Kb, size_t r, size_t k) {
    return ((r >> 3) * Kb + (k >> 2)) * 32 + (r & 7) * 4 + (k & 3);
}

/* W[r][k] of an int4 constant in layout 6/7 (Kb = ceil(K/4)), sign-extended. */
static inline int32_t dse__i4_n8k4_at(const uint8_t *w, size_t Kb, size_t r, size_t k) {
    const int32_t b = w[((r >> 3) * Kb + (k >> 2)) * 16 + (r & 3) * 4 + (k & 3)];
    return (((r & 4) ? b >> 4 : b & 15) ^ 8) - 8;
}

enum { DSE_ATTR_INT = 1, DSE_ATTR_FLOAT, DSE_ATTR_INTS, DSE_ATTR_FLOATS, DSE_ATTR_STRING, DSE_ATTR_TENSOR };

/* Attribute key ids: DSE_A_<name> for every name in attr_keys.inc, from 1; 0 = a name no
 * kernel reads. */
enum {
    DSE_A_UNKNOWN_ = 0,
#define DSE_ATTR_KEY(name) DSE_A_##name,
#include "attr_keys.inc"
#undef DSE_ATTR_KEY
    DSE_A_COUNT_
};

typedef struct dse_attr {
    const char *name;
    uint16_t key;           /* DSE_A_<name>, or 0 */
    uint8_t type;
    int64_t i;              /* INT; TENSOR: tensor index */
    float f;                /* FLOAT */
    const char *s;          /* STRING */
    size_t n;               /* INTS/FLOATS: element count */
    const uint8_t *raw;     /* INTS: zigzag varints, FLOATS: n little-endian f32 (validated) */
    size_t raw_len;
} dse_attr;

typedef struct dse_node {
    uint32_t op;
    const char *name;
    uint32_t n_in, n_out, n_attr;
    uint32_t *in, *out;     /* tensor indices, DSE_NONE when absent */
    dse_attr *attrs;
    uint16_t kernel;        /* the kernel chosen at load: its index in the kernel list (kernels.c) */
    size_t scratch;         /* bytes of scratch that kernel uses for this node (its check's report) */
    size_t scratch_plan;    /* bytes the exporter plans for the node: the most any variant of its
                             * kernel uses (>= scratch; the loader's bound on scratch_size) */
} dse_node;

struct dse_model {
    const uint8_t *buf;     /* the file */
    size_t len;
    void *owned;            /* what dse_model_free releases: a mapping or a heap copy */
    size_t owned_len;
    int owned_is_map;
    const uint8_t *blob;
    size_t blob_size;
    const char **strings;
    size_t n_strings;
    dse_meta *meta;
    size_t n_meta;
    dse_tensor *tensors;
    size_t n_tensors;
    dse_node *nodes;
    size_t n_nodes;
    uint32_t *inputs, *outputs;
    size_t n_inputs, n_outputs;
    size_t arena_size, scratch_offset, scratch_size;
    float *widened;         /* the float32 copies of the layout-5 (fp16) constants, one allocation */
    size_t widened_size;    /* its bytes */
    unsigned isas;          /* DSE_ISA_* bits the kernels may use: the CPU's (dse__cpu_isas), or
                             * only REF with DSE_LOAD_REF_KERNELS */
};

/* Instruction sets of kernel variants: the ISA column of the kernel list. A variant is
 * compiled only for its architecture (the kernel list includes kernels_<arch>.inc under the
 * architecture's macro) and chosen at load only when the CPU has its ISA (src/cpu.c: cpuid
 * on x86, getauxval(AT_HWCAP) on Linux/Android arm). REF is portable C, always present. */
enum {
    DSE_ISA_REF = 0,
    DSE_ISA_AVX2,           /* x86-64: AVX2 + FMA (+ F16C), with the OS saving ymm state */
    DSE_ISA_AVX512VNNI,     /* x86-64: AVX-512 F/BW/VL + VNNI */
    DSE_ISA_AVXVNNI,        /* x86-64: AVX-VNNI (vpdpbusd on ymm) */
    DSE_ISA_NEON,           /* arm64 Advanced SIMD (baseline), or armv7 with NEON */
    DSE_ISA_NEON_DOTPROD,   /* arm64 sdot/udot (ARMv8.2 dotprod) */
    DSE_ISA_NEON_I8MM,      /* arm64 smmla (ARMv8.6 i8mm) */
    DSE_ISA_NEON_FP16,      /* arm64 fp16 arithmetic (ARMv8.2 fphp/asimdhp) */
    DSE_ISA_AMX,            /* x86-64: AMX-TILE + AMX-INT8 (with AVX512VNNI), the OS granting the tile
                             * state (Linux: arch_prctl ARCH_REQ_XCOMP_PERM) */
    DSE_ISA_COUNT_
};
#define DSE_ISA_BIT(isa) (1u << DSE_ISA_##isa)
/* (a new ISA also needs its name in cpu.c and a DSE_KLINK_<ISA> line below) */
DSE_INTERNAL unsigned dse__cpu_isas(void);           /* DSE_ISA_* bits of this CPU (REF always) */
DSE_INTERNAL const char *dse__isa_name(int isa);     /* "ref", "avx2", ... */

/* Why a kernel refuses a node. A kernel is a pair of functions named in the kernel list
 * (kernels.inc): `int check(const dse_model *, const dse_node *, dse_why *why)` runs at load
 * for each node the kernel is considered for and returns non-zero to refuse it, after
 * setting why->id to a message of src/messages.inc (DSE_WHY), optionally with up to four
 * numbers and one string that the message shows as %0..%3 and %s (DSE_WHYF); a kernel that
 * uses scratch memory sets why->scratch to its size when it accepts; `void run(m, n, arena,
 * scratch)` executes the node. The loader formats the message once, naming the node
 * (dse__why_format): the kernels hold no format strings and call no printf.
 *
 * Each kernel also declares how its operands may share arena bytes (the last column of the
 * kernel list), which the loader enforces for every node before the model is handed out:
 *   NONE   every ARENA input is disjoint from every output (the kernel reads inputs after
 *          writing output bytes, or copies with memcpy);
 *   SAME   an input may also occupy exactly the output's bytes (same offset and size): views
 *          (src == dst: nothing to do) and elementwise kernels (element i is read before
 *          element i is written);
 *   SLICE  an input may also lie inside the output: Concat, where the kernel's own check
 *          requires such an input to sit exactly at its slice (dse__concat_check_alias).
 * Partial overlap is refused for every kernel, outputs of one node never share bytes, and no
 * ARENA operand of a node overlaps the scratch bytes that node uses. */
enum { DSE_ALIAS_NONE = 0, DSE_ALIAS_SAME, DSE_ALIAS_SLICE };
enum {
    DSE_MSG_NONE_ = 0,
#define DSE_MSG(id, text) DSE_MSG_##id,
#include "messages.inc"
#undef DSE_MSG
    DSE_MSG_COUNT_
};
typedef struct dse_why {
    int id;                 /* DSE_MSG_<id>; 0 = none given */
    const char *s;          /* %s */
    int64_t v[4];           /* %0 .. %3 */
    size_t scratch;         /* on acceptance: the scratch bytes the kernel uses for the node (its
                             * scratch formula, dsedge/export/scratch.py); 0 = none */
    size_t scratch_plan;    /* on acceptance: the scratch the exporter plans for the node, the
                             * most any variant of the kernel uses; 0 = the same as scratch */
    uint32_t packed;        /* on acceptance: bit j set = input j may be in a packed layout (the
                             * kernel reads t->layout); the loader refuses any other packed input */
    uint32_t act_fns;       /* on acceptance: bit f set = the kernel applies the fused activation
                             * function f (INT act_fn, DSE_ACT_FN_*); the loader takes a node with
                             * act_fn only by a kernel that says so (else: the next kernel) */
} dse_why;
#define DSE_WHY(w, ID) ((void)((w)->id = DSE_MSG_##ID))
#define DSE_WHYF(w, ID, s, a, b, c, d) dse__why(w, DSE_MSG_##ID, s, (int64_t)(a), (int64_t)(b), (int64_t)(c), (int64_t)(d))
DSE_SHARED DSE_NOINLINE void dse__why(dse_why *w, int id, const char *s, int64_t a, int64_t b, int64_t c, int64_t d);
DSE_INTERNAL void dse__why_format(const dse_why *w, char *buf, size_t cap);   /* the message, %0..%3 and %s filled in */

static inline const dse_tensor *dse__t(const dse_model *m, uint32_t idx) {
    return idx == DSE_NONE ? NULL : &m->tensors[idx];
}

static inline void *dse__data(const dse_model *m, uint8_t *arena, uint32_t idx) {
    const dse_tensor *t = &m->tensors[idx];
    if (t->storage == DSE_STORAGE_CONST)
        return (void *)(uintptr_t)t->cdata;   /* read-only: never written */
    return arena + t->offset;
}

/* What a kernel's run gets besides the model, its node and the arena: the session's scratch
 * (the plan's scratch region) and its thread pool. A kernel that splits its work calls
 * dse__parallel (src/pool.c); the pool runs the parts on the session's threads (the caller's
 * thread is one of them) and returns when all are done. Every part must write bytes that no
 * other part writes, so the output is the same for any number of threads. */
typedef struct dse_pool dse_pool;
typedef struct dse_ctx {
    uint8_t *scratch;
    dse_pool *pool;         /* NULL: one thread */
} dse_ctx;
/* fn(arg, begin, end, worker) for consecutive ranges [begin, end) covering [0, count): at most
 * dse__threads(cx) of them, each at least `grain` items long (one range, [0, count), when
 * count < 2 * grain), the same partition on every run; worker < dse__threads(cx) names the
 * thread. A call made inside fn runs serially on its thread. */
typedef void (*dse_task_fn)(void *arg, size_t begin, size_t end, unsigned worker);
/* The grain for dse__parallel of `count` items that together do `work` units (multiply-adds
 * of a Conv/Gemm/MatMul, elements of an elementwise node): each range gets at least
 * DSE_PAR_MIN_WORK of them, so that a node too small to gain from a second thread (a hand-off
 * costs ~1 us with the worker spinning, ~8 us when it must be woken; DSE_PAR_MIN_WORK int8
 * multiply-adds take ~3 us on one AVX2 core) runs on the caller's thread alone. */
#ifndef DSE_PAR_MIN_WORK
#define DSE_PAR_MIN_WORK ((uint64_t)1 << 16)
#endif
static inline size_t dse__grain(size_t count, uint64_t work) {
    if (!count || work / count >= DSE_PAR_MIN_WORK) return 1;
    const uint64_t per = work / count ? work / count : 1;   /* work of one item (>= 1) */
    const uint64_t g = (DSE_PAR_MIN_WORK + per - 1) / per;
    return g >= count ? count : (size_t)g;
}
/* DSE_SHARED: optimised variants call them from the bundle's other unit (README.md, "Bundle build") */
DSE_SHARED void dse__parallel(const dse_ctx *cx, size_t count, size_t grain, dse_task_fn fn, void *arg);
DSE_SHARED unsigned dse__threads(const dse_ctx *cx);
/* The scratch of worker `worker` inside a dse__parallel task: n->scratch bytes (the node's
 * kernel's declared scratch) that no other worker uses; worker 0's is cx->scratch (the plan's
 * region in the arena), the others' are buffers the session allocated at creation (the
 * largest node scratch of the model, once per extra thread). */
DSE_SHARED uint8_t *dse__worker_scratch(const dse_ctx *cx, unsigned worker);
/* The pool of a session with `threads` threads (the caller's included) whose extra workers
 * get `scratch` bytes each; NULL (no pool) for threads <= 1 or where the build has no threads.
 * Freeing joins the workers (session.c). */
DSE_INTERNAL dse_status dse__pool_create(unsigned threads, size_t scratch, dse_pool **out);
DSE_INTERNAL void dse__pool_free(dse_pool *p);
/* For a check at load (src/scratch.c): 1 when the first `bytes` of the scratch region fit it
 * (<= scratch_size) and no ARENA tensor live at node n (a graph input, or produced at or
 * before n and read at or after n or a graph output) overlaps them; 0 otherwise. An
 * optimised variant that needs more scratch than its REF kernel asks this, so an artifact
 * planned before the variant existed (other tensors may live in that scratch) falls back to
 * REF instead of corrupting them. */
DSE_SHARED int dse__scratch_free(const dse_model *m, const dse_node *n, size_t bytes);

/* The kernel list (kernels.c): the index of the next kernel after `prev` (-1: from the
 * first) listed for (op, dtype of output 0) whose ISA is in `isas`, -1 when none; check and
 * run by index. */
DSE_INTERNAL int dse__next_kernel(int op, int dtype, int prev, unsigned isas);
DSE_INTERNAL int dse__kernel_check(int k, const dse_model *m, const dse_node *n, dse_why *why);
DSE_INTERNAL void dse__kernel_run(int k, const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx);
DSE_INTERNAL int dse__kernel_isa(int k);            /* DSE_ISA_* */
DSE_INTERNAL const char *dse__kernel_name(int k);   /* its run function's name, e.g. "dse_i8_conv__ref" */
DSE_INTERNAL int dse__kernel_alias(int k);          /* DSE_ALIAS_NONE / SAME / SLICE */
DSE_INTERNAL int dse__op_known(uint32_t op);
DSE_INTERNAL void dse__release_file(dse_model *m);   /* file.c: unmaps or frees what load_file owns */
DSE_INTERNAL int dse__clock_ns(uint64_t *ns);        /* profile.c: monotonic nanoseconds; 0 = no clock here */
DSE_INTERNAL void dse__set_error(dse_error *err, dse_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Attribute lookup by key id (DSE_A_<name>) for kernels (src/attr.c; a node has <= 64
 * attributes: a linear scan). An attribute that is absent or has another type gives NULL /
 * the default. Out of line, not inline: one copy of the scan instead of one per call site
 * (binary size). */
DSE_INTERNAL int dse__attr_key(const char *name);   /* DSE_A_<name>, or 0 (loader) */
DSE_SHARED DSE_NOINLINE const dse_attr *dse__attr(const dse_node *n, int key, int type);
DSE_SHARED DSE_NOINLINE int64_t dse__attr_int(const dse_node *n, int key, int64_t def);
DSE_SHARED DSE_NOINLINE float dse__attr_float(const dse_node *n, int key, float def);
DSE_INTERNAL DSE_NOINLINE const char *dse__attr_str(const dse_node *n, int key, const char *def);
/* INTS attribute: decodes up to `cap` zigzag varints (validated at load) into out; returns
 * the element count, or -1 when absent, of another type or longer than cap. */
DSE_INTERNAL DSE_NOINLINE int dse__attr_ints(const dse_node *n, int key, int64_t *out, size_t cap);

/* Broadcasting walker shared by the elementwise kernels (kernels/ref/binary.c): the inputs
 * (numpy broadcasting, each aligned to the output's trailing axes) are walked in the output's
 * row-major order one innermost row at a time, after merging the axes that can be merged
 * (a same-shape or scalar operand makes one row of the whole output); `row` gets each
 * input's row start and element stride (0 = broadcast, else 1) and writes `len` output
 * elements. Rows (rows longer than 16384 elements in parts of that many) are split over the
 * session's threads (cx) in disjoint ranges; `c` carries
 * the kernel's constants (`p` anything else it needs, read only). */
typedef struct dse_ew_ctx { float f[4]; int64_t i[2]; size_t esize; const void *p; } dse_ew_ctx;
typedef void (*dse_ew_row)(uint8_t *y, const uint8_t *const *x, const size_t *stride, uint32_t nx, size_t len,
                           const dse_ew_ctx *c);
DSE_INTERNAL int dse__ew_check_broadcast(const dse_model *m, const dse_node *n, uint32_t nx, dse_why *why);
DSE_SHARED void dse__ew_walk(const dse_model *m, const dse_node *n, uint8_t *arena, uint32_t nx, dse_ew_row row,
                               const dse_ew_ctx *c, const dse_ctx *cx);

/* Elementwise loops that compilers vectorise: Y[i] = EXPR for i in [0, LEN) (EXPR uses i),
 * computed DSE_EW_BLOCK elements at a time into a local array of T that is then stored. GCC at
 * -O2 vectorises only loops of a known count (its "very cheap" cost model), and the local
 * array makes an output that is exactly an input (in-place plans) read before it is
 * written, with no aliasing check. Each element is the same scalar operations as the plain
 * loop, so the bytes do not change. Inside EXPR, compare floats with == / != only where the
 * loop should vectorise: GCC does not if-convert the signalling compares < > <= >= (they may
 * raise FE_INVALID), so such a loop stays scalar (and correct). */
#define DSE_EW_BLOCK 16
#define DSE_EW_LOOP(T, Y, LEN, EXPR)                                                              \
    do {                                                                                          \
        size_t i_ = 0, n_ = (LEN);                                                                \
        for (; i_ + DSE_EW_BLOCK <= n_; i_ += DSE_EW_BLOCK) {                                     \
            T t_[DSE_EW_BLOCK];                                                                   \
            for (size_t j_ = 0; j_ < DSE_EW_BLOCK; j_++) { const size_t i = i_ + j_; t_[j_] = (EXPR); } \
            for (size_t j_ = 0; j_ < DSE_EW_BLOCK; j_++) (Y)[i_ + j_] = t_[j_];                  \
        }                                                                                         \
        for (; i_ < n_; i_++) { const size_t i = i_; (Y)[i] = (EXPR); }                          \
    } while (0)
/* A binary row: Y[i] = OP(A[i*SA], B[i*SB], C) (OP a static inline function) with strides 0 or 1,
 * one loop per stride pattern (a broadcast operand is read once), so each is contiguous; any
 * other stride, one plain loop. */
#define DSE_EW_ROW2(T, Y, TA, A, SA, TB, B, SB, LEN, OP, C)                                        \
    do {                                                                                          \
        const TA *A_ = (A);                                                                       \
        const TB *B_ = (B);                                                                       \
        if ((SA) == 1 && (SB) == 1) {                                                             \
            DSE_EW_LOOP(T, Y, LEN, OP(A_[i], B_[i], C));                            \
        } else if ((SA) == 1 && (SB) == 0) {                                                      \
            const TB bc_ = B_[0];                                                                 \
            DSE_EW_LOOP(T, Y, LEN, OP(A_[i], bc_, C));                              \
        } else if ((SA) == 0 && (SB) == 1) {                                                      \
            const TA ac_ = A_[0];                                                                 \
            DSE_EW_LOOP(T, Y, LEN, OP(ac_, B_[i], C));                              \
        } else {                                                                                  \
            const size_t sa_ = (SA), sb_ = (SB);                                                  \
            for (size_t i = 0; i < (LEN); i++) (Y)[i] = OP(A_[i * sa_], B_[i * sb_], C); \
        }                                                                                         \
    } while (0)

/* Every kernel's check and run function (kernels/<isa>/<op>.c), from the kernel list. REF
 * kernels are DSE_INTERNAL; an optimised variant's are DSE_SHARED, because bundles compile
 * kernels/<isa>/ in the hot (-O2) unit and the kernel table (kernels.c) in the other one
 * (runtimes/c/README.md, "Bundle build"). Two passes, REF first: a variant may reuse a REF
 * check, which then keeps its first (internal) linkage. DSE_KLINK_<ISA>: R = REF, V = variant. */
#define DSE_KLINK_REF R
#define DSE_KLINK_AVX2 V
#define DSE_KLINK_AVX512VNNI V
#define DSE_KLINK_AVXVNNI V
#define DSE_KLINK_NEON V
#define DSE_KLINK_NEON_DOTPROD V
#define DSE_KLINK_NEON_I8MM V
#define DSE_KLINK_NEON_FP16 V
#define DSE_KLINK_AMX V
#define DSE_KDECL_(link, check, run) \
    link int check(const dse_model *, const dse_node *, dse_why *); \
    link void run(const dse_model *, const dse_node *, uint8_t *, const dse_ctx *);
#define DSE_KPASS1_R(check, run) DSE_KDECL_(DSE_INTERNAL, check, run)
#define DSE_KPASS1_V(check, run)
#define DSE_KPASS2_R(check, run)
#define DSE_KPASS2_V(check, run) DSE_KDECL_(DSE_SHARED, check, run)
#define DSE_KPASS_(pass, cls) DSE_KPASS##pass##_##cls
#define DSE_KPASS(pass, cls) DSE_KPASS_(pass, cls)
#define DSE_KERNEL(op, dt, isa, check, run, alias) DSE_KPASS(1, DSE_KLINK_##isa)(check, run)
#include "kernels.inc"
#undef DSE_KERNEL
#define DSE_KERNEL(op, dt, isa, check, run, alias) DSE_KPASS(2, DSE_KLINK_##isa)(check, run)
#include "kernels.inc"
#undef DSE_KERNEL

/* Float NN helpers shared by conv, conv_transpose, gemm, matmul, norm, rnn, pool
 * (kernels/ref/conv.c) and the float16 conversions (kernels/ref/cast.c). The DSE_SHARED ones
 * are also called by optimised variants (bundle units, README.md). */
DSE_INTERNAL float dse__nn_ld(const dse_tensor *t, const void *p, size_t i);   /* element i of a float32/float16 tensor */
DSE_SHARED int dse__nn_spatial(const dse_node *n, size_t nd, const size_t *k_from, int64_t k[3], int64_t s[3],
                                 int64_t d[3], int64_t pb[3], int64_t pe[3]);
DSE_SHARED int dse__nn_act(const dse_node *n, float *lo, float *hi);   /* fused clamp: 1 when present */
/* The taps t in [0, k) of a window along one axis whose position base + t * d (base = o * stride -
 * pad_begin, d >= 1) lies in [lo, hi): t in [*t0, *t1), empty when *t0 >= *t1. O(1), so a pooling
 * window that lies mostly in its padding costs only the taps inside (a 512-byte file asking for a
 * 20000-tap window over 1 pixel took 10 s per run in the fuzzer's build when every tap was tested). */
static inline void dse__tap_range(int64_t base, int64_t k, int64_t d, int64_t lo, int64_t hi, int64_t *t0, int64_t *t1) {
    int64_t a = 0, b = k;
    if (base < lo) a = (lo - base + d - 1) / d;
    if (hi - base <= 0) b = 0;
    else if ((hi - base - 1) / d + 1 < b) b = (hi - base - 1) / d + 1;
    *t0 = a;
    *t1 = b > a ? b : a;
}
/* Fused activation function (INT `act_fn`, docs/kernels.md "Fused activation"), applied after the
 * clamp: the bytes of the separate float32 nodes on the op's output, as this ISA's kernels of those
 * nodes give them (NaN canonical). Absent: NONE. Codes: dsedge/ops (registry ActFn; a test checks
 * this list against it). HARDSWISH: the HardSwish kernels are exact, REF's bytes everywhere. SILU
 * x * Sigmoid(x): the Sigmoid kernel's bytes, which are the vectorised sigmoid of src/vec_mathf.h
 * where an optimised Sigmoid kernel runs (AVX2, NEON) and mathf.c's dse_sigmoidf on REF; then the
 * product (exact). A kernel that applies f sets bit f of why->act_fns: dse__act_fns(m, vec) gives
 * the float Conv kernels' mask, vec = 1 when the kernel's SiLU is the vectorised one, 0 when it is
 * mathf.c's (SILU is in the mask only when that is the sigmoid of the model's Sigmoid kernel).
 * GELU x * (1 + erf(x / sqrt 2)) * 0.5 as PyTorch exports it (Div by float32 sqrt 2, Erf, Add 1,
 * Mul by x, Mul by 0.5; one rounding each): the Erf kernel's erf the same way (vec: vec_mathf.h's,
 * else mathf.c's dse_erff), the four IEEE steps exact. */
enum { DSE_ACT_FN_NONE = 0, DSE_ACT_FN_HARDSWISH = 1, DSE_ACT_FN_SILU = 2, DSE_ACT_FN_GELU = 3 };
/* A few operations (HardSwish): the optimised kernels apply it in each output vector's epilogue.
 * Else (SiLU's sigmoid, ~28 vector operations): in a pass over a finished tile or plane while it
 * is in L1/L2, 4 vectors at a time (inlined beside a register tile it spills). */
#define DSE_ACT_FN_INLINE(fn) ((fn) == DSE_ACT_FN_HARDSWISH)
DSE_SHARED uint32_t dse__act_fns(const dse_model *m, int vec);
DSE_SHARED int dse__nn_act_fn(const dse_node *n);
DSE_INTERNAL uint16_t dse__f32_to_f16(float v);
DSE_SHARED float dse__f16_to_f32(uint16_t h);   /* exact */

/* fp16 arithmetic (docs/quant-arith.md §16; kernels/ref/fp16_arith.c, kernels/neon_fp16/): the float16
 * bits of a float16 constant (layout 5: the file's bits, `hdata`; layout 0: its data), else NULL; and the
 * check every fp16-arithmetic kernel starts with (Conv, Gemm or MatMul by n->op: INT fp16_arith = 1, the
 * float op's own checks, §16's form, float16 weights; it sets why->scratch_plan to the float32 plan). */
static inline const uint16_t *dse__fp16_bits(const dse_tensor *t) {
    if (!t || t->storage != DSE_STORAGE_CONST) return NULL;
    if (t->hdata) return (const uint16_t *)(const void *)t->hdata;
    return t->dtype == DSE_DTYPE_FLOAT16 ? (const uint16_t *)(const void *)t->cdata : NULL;
}
DSE_SHARED int dse__fp16_check(const dse_model *m, const dse_node *n, dse_why *why);

/* Float Conv geometry (conv.c), spatial axes as three (D, H, W), and the float inner loops
 * (kernels/ref/loops.c): Conv; and Y[M,N] = A[M,K] B[K,N] with element strides
 * (A[i,k] = A[i*sai + k*sak], B[k,j] = B[k*sbk + j*sbj]; B float32, or float16 when b16),
 * each Y element one sequential sum over k, for Gemm and MatMul. */
typedef struct dse_conv_geom {
    size_t N, C, M, G, in[3], out[3];
    int64_t k[3], s[3], d[3], pb[3], pe[3];
} dse_conv_geom;
DSE_SHARED int dse__conv_f32_geom(const dse_model *m, const dse_node *n, dse_conv_geom *g, dse_why *why);   /* conv.c: reads and checks */
/* How the optimised float Conv variants compute a conv (conv.c explains the paths) and the
 * scratch they use, which is the plan for every float Conv: dse__conv_f32_plan's result. */
enum { DSE_CONV_GEMM, DSE_CONV_DW8, DSE_CONV_DW, DSE_CONV_BAND1, DSE_CONV_BANDS, DSE_CONV_IM2COL };
typedef struct dse_conv_plan {
    int path;
    size_t K, Lw, R, NRp, CS;   /* DW: Lw = phase length; BAND*: R, NRp, CS (floats per channel), Lw as conv.c */
} dse_conv_plan;
DSE_SHARED size_t dse__conv_f32_plan(const dse_conv_geom *g, dse_conv_plan *p);
/* The same with the BANDS path's band at most `bands` floats: dse__conv_f32_plan's is DSE_CONV_BANDS_FLOATS
 * (what the exporter plans, and the x86 kernels use: a strided conv's weights, streamed once per band,
 * then pass over more output rows at a time: resnet50's 3x3/2 convs 1.4x faster than with bands of
 * 65536 floats); DSE_CONV_BANDS_FLOATS_V1 is what artifacts exported before planned (the x86 kernels'
 * fallback) and what the NEON kernel plans with (smaller L2s). */
#define DSE_CONV_BANDS_FLOATS 262144
#define DSE_CONV_BANDS_FLOATS_V1 65536
DSE_SHARED size_t dse__conv_f32_plan_bands(const dse_conv_geom *g, dse_conv_plan *p, size_t bands);
/* The DW path's plan for a depthwise 1-D/2-D conv that dse__conv_f32_plan gives DW8: what runs
 * when the artifact planned only DW's scratch (written before DW8 took wider outputs). */
DSE_SHARED size_t dse__conv_f32_plan_dw(const dse_conv_geom *g, dse_conv_plan *p);
/* Winograd F(2x2, 3x3) for float32 3x3 stride-1 convs (kernels/avx2/winograd.c, which states the
 * arithmetic and its error bound): whether a node takes it and the scratch it uses
 * (kernels/ref/conv.c explains the formula; dsedge/export/scratch.py has the same). Returns the
 * bytes, 0 when the node does not take it. dse__conv_f32_scratch_plan: what the exporter plans for
 * a float Conv, the larger of both (every float Conv check reports it as the plan). */
typedef struct dse_wino_plan {
    size_t TH, TW, T, TB, ld, L;   /* tiles per column, per row, per image; per block; V/M row stride; phase row */
    size_t u_floats, w_floats;     /* U (shared, at the start of cx->scratch); each worker's V, M, rows after it */
} dse_wino_plan;
DSE_SHARED size_t dse__conv_f32_wino_plan(const dse_conv_geom *g, dse_wino_plan *p);
DSE_SHARED size_t dse__conv_f32_scratch_plan(const dse_conv_geom *g);
/* The AVX2 conv's IMGS path (tiles across the images of a batch when each has < 16 output pixels;
 * kernels/ref/conv.c explains it): its scratch, 0 when the node does not take it; *tw its tile width. */
DSE_SHARED size_t dse__conv_f32_imgs_plan(const dse_conv_geom *g, size_t *tw);
/* REF's float Conv loop nest (kernels/ref/loops.c): w16 = 1 float16 weights, 2 float32 weights in
 * layout 8 (dse__o32_index), 0 float32 weights as stored. */
DSE_SHARED void dse_f32_conv_loop(const dse_ctx *cx, const dse_conv_geom *g, const float *x, const void *w, int w16, const void *b, int b16,
                                  int act, float lo, float hi, int act_fn, float *y);
/* im2col of the optimised float Conv variants (kernels/ref/loops.c; AVX2 IM2COL tiles, NEON general
 * convs): the taps of output pixels [p0, p0 + nt) of one image and group (xg: the group's first
 * input channel, cg channels) as panels pw columns wide, dst[(q / pw) * K * pw + k * pw + q % pw]
 * = tap k (c, kd, kh, kw: REF's weight order) of pixel p0 + q, 0 in the padding; when nt % pw
 * != 0, the last panel's columns from nt on are zeroed. pw >= nt: one row-major K x pw block. */
DSE_SHARED void dse_f32_conv_im2col(const dse_conv_geom *g, size_t cg, const float *xg, size_t p0, size_t nt, size_t pw, float *dst);
/* The IMGS path's widest tile (dse__conv_f32_imgs_plan; src/conv_imgs.h, its im2col). */
#define DSE_CONV_IMGS_TW 128
/* Float MatMul geometry (matmul.c): M, K, N, and the batch axes of the output with the element
 * offsets of A's and B's matrices per step on each (0 on a broadcast axis). 0 = valid. */
typedef struct dse_mm_geom {
    size_t M, K, N, nb;                         /* nb: batch rank (of the output) */
    size_t bdims[DSE_MAX_RANK], sa[DSE_MAX_RANK], sb[DSE_MAX_RANK];   /* per batch axis: size, A/B matrix strides */
} dse_mm_geom;
DSE_SHARED int dse__matmul_f32_geom(const dse_model *m, const dse_node *n, dse_mm_geom *g);
/* Float LSTM/GRU geometry (kernels/ref/rnn.c: reads and checks everything but the scratch);
 * G gates per hidden unit (4 LSTM, 3 GRU). 0 = valid. */
typedef struct dse_rnn_geom {
    size_t T, B, I, H, D, G;
    int layout, reverse_only, lstm;
} dse_rnn_geom;
DSE_SHARED int dse__rnn_f32_geom(const dse_model *m, const dse_node *n, int lstm, dse_rnn_geom *g, dse_why *why);
/* The scratch planned for every float LSTM/GRU: what the optimised variants use (kernels/avx2/rnn.c),
 * per direction: h, h_next, c or r*h (B*H floats each), the input and the recurrent gate sums
 * (B*G*H each), and for a chunk of Tc time steps the transposed inputs (I x Tc*B) and their
 * projection (G*H x Tc*B), Tc = 65536 / (B*(G*H + I)) clamped to [1, T] (dse__rnn_f32_chunk).
 * REF uses the first 3*B*H floats. dsedge/export/scratch.py has the same formula. */
static inline size_t dse__rnn_f32_chunk(const dse_rnn_geom *g) {
    const size_t per = g->B * (g->G * g->H + g->I);
    size_t tc = per ? 65536 / per : 1;
    if (tc < 1) tc = 1;
    return tc > g->T ? g->T : tc;
}
static inline size_t dse__rnn_f32_plan(const dse_rnn_geom *g) {
    const size_t B = g->B, GH = g->G * g->H;
    return 4 * (3 * B * g->H + 2 * B * GH + dse__rnn_f32_chunk(g) * B * (GH + g->I));
}
/* Pre-quantised ONNX models (kernels/ref/dynamic_quantize.c, conv_integer.c): the dynamic
 * uint8 parameters of n floats (DynamicQuantizeLinear's rule), quantising with them, and
 * "uint8 or int8 tensor" for the integer ops' operands. */
DSE_INTERNAL void dse__dynq_params(const float *x, size_t n, float *scale, uint8_t *zp);
DSE_INTERNAL void dse__dynq_quantize(const float *x, size_t n, float scale, uint8_t zp, uint8_t *y);
DSE_INTERNAL int dse__int_byte_operand(const dse_tensor *t);
/* The same geometry from the shapes alone (any dtypes; MatMulInteger): 0 = valid. */
DSE_SHARED int dse__matmul_geom(const dse_tensor *a, const dse_tensor *b, const dse_tensor *y, dse_mm_geom *g);   /* (shared: kernels/avx2/integer.c) */
/* The optimised float GEMMs copy B, a chunk of dse__sgemm_pack_cols(K) columns at a time
 * (16 <= cols <= 256, K * cols <= 65536 where possible), into panels of 16 in scratch:
 * 4 * dse__sgemm_pack_floats(K) bytes, planned for float Gemm (transB = 0), MatMul (N > 1)
 * and 1x1 Conv (matmul.c; dsedge/export/scratch.py). */
static inline size_t dse__sgemm_pack_cols(size_t K) {
    size_t c = K ? 65536 / K / 16 * 16 : 256;
    return c < 16 ? 16 : c > 256 ? 256 : c;
}
static inline size_t dse__sgemm_pack_floats(size_t K) { return K * dse__sgemm_pack_cols(K); }
/* One float SGEMM call of the optimised variants (the AVX2 one: src/avx2_f32.h, kernels/avx2/sgemm.c,
 * every field; the NEON one: src/neon_f32.h, kernels/neon/sgemm.c, all but boff and the column map):
 * C[i, j] for i in [i0, i1), j in [j0, j1) of
 *     v = sum_k A(i,k) B(k,j)           (k ascending, FMA)
 *     v = v * alpha                     (when use_alpha)
 *     v = v + bias_m[i]                 (when bias_m)
 *     v = v + Cm(i,j)  or  Cm(i,j)*beta (cmode 1 / 2; Cm(i,j) = Cm[i*csi + j*csj], csj 0 or 1)
 *     v = min(max(v, lo), hi)           (when act)
 *     v = f(v), NaN canonical            (when act_fn: the separate float32 node's bytes)
 * A(i,k) = A[i*sai + k*sak]; B(k,j) = B[k*ldb + j] (j contiguous), or, with bpanel != 0, B is
 * packed in panels of 16 columns: B(k,j) = B[(j/16)*bpanel + k*16 + j%16] (j counted from 0
 * at the start of the packed tile: the caller passes j0 = 0 relative to it and C shifted; a
 * constant B in layout 9 is such panels: j0 then a multiple of 16, the NEON SGEMM's too), or,
 * with boff, B(k,j) = B[boff[k] + j] (rows anywhere; B must have 16 floats of slack after
 * the last column any row is read to). C(i,j) = C[i*ldc + j], or, with a column map cw != 0,
 * C[i*ldc + (j / cw) * cv + j % cw], stored only where j % cw < cv (output rows of cv columns
 * computed as rows of cw). */
typedef struct dse_sgemm {
    size_t K;
    const float *A; size_t sai, sak;
    const float *B; size_t ldb, bpanel;
    const size_t *boff;
    float *pack;      /* row-major B only: scratch of dse__sgemm_pack_floats(K) floats, or NULL; when set,
                       * each chunk of columns of B is copied into panels first (AVX2: 16 columns, NEON:
                       * 8; contiguous rows for the tiles: a large ldb costs a page per k otherwise) */
    float *C; size_t ldc, cw, cv;
    int use_alpha; float alpha;
    const float *bias_m;
    int cmode; const float *Cm; size_t csi, csj; float beta;
    int act; float lo, hi;
    int act_fn;       /* then the fused activation function (Conv's INT act_fn, DSE_ACT_FN_*), 0 = none */
} dse_sgemm;
/* ConvTranspose (float32: conv_transpose.c; int8: conv_transpose_i8.c): the float geometry, and
 * how the optimised variants (kernels/avx2/conv_transpose*.c, which explain the two paths) cut
 * a 1-D or 2-D node, with the scratch they use: the plan the REF checks report for every
 * ConvTranspose (dsedge/export/scratch.py `convtranspose_plan`: the same formula). Spatial
 * arguments are the H and W axes (1-D: kh = sh = dh = 1); cg = input channels per group,
 * mg = output channels per group. Returns the bytes (0: no variant takes the node: 3-D, or a
 * stride/kernel too large for the bounds below).
 *   DIRECT  (k - 1) * d < s on both axes (no output receives two taps) and kh*kw <= 64: GEMM
 *           rows (m, tap) of mb output channels x JC = 64 input columns; float32: the block of
 *           columns, 4 * mb*T * JC; int8: + the int16 pairs of the weights (4 * mb*T * Kp2) and
 *           of x (4 * Kp2 * JC) first.
 *   GENERAL otherwise (sw <= 16, kh*kw <= 1024): per output row, chunks of sw * QC (QC = 32)
 *           output columns accumulated phase by phase, 4 * mb * sw * QC, after the weights of
 *           the block tap by tap (float32: 4 * mb*T * cg; int8: the pairs, 4 * mb*T * Kp2) and
 *           (int8) the x pairs of XW columns (4 * Kp2 * XW).
 * mb = min(mg, max(1, 48 / T)) (DIRECT) or min(mg, 48, max(1, 96 / sw)) (GENERAL); where the
 * weights are copied (int8, float32 GENERAL) also at most max(1, 16384 / (T * Kw)) (Kw = cg,
 * or Kp2 = ceil(cg / 2) for int8), XW = roundup(QC + ((kw - 1) * dw + 2*sw - 1) / sw + 1, 8) + 8. */
typedef struct dse_convt_plan {
    int direct;
    size_t T, mb, Kp2, JC, QC, XW;
    size_t x2_off, acc_off;   /* byte offsets of the x pairs (int8) and of the block of sums (copied weights at 0) */
} dse_convt_plan;
#define DSE_CONVT_JC 64
#define DSE_CONVT_QC 32
static inline size_t dse__convt_plan(size_t nd, size_t cg, size_t mg, size_t kh, size_t kw, size_t sh, size_t sw, size_t dh,
                                     size_t dw, int i8, dse_convt_plan *p) {
    memset(p, 0, sizeof *p);
    if (nd < 1 || nd > 2 || !cg || !mg || !kh || !kw || !sh || !sw || kh > 1024 || kw > 1024 || dh > 65536 || dw > 65536)
        return 0;
    const size_t T = kh * kw, Kp2 = (cg + 1) / 2;
    p->T = T, p->Kp2 = Kp2, p->JC = DSE_CONVT_JC, p->QC = DSE_CONVT_QC;
    p->direct = (kh - 1) * dh < sh && (kw - 1) * dw < sw && T <= 64;
    if (!p->direct && (sw > 16 || T > 1024)) return 0;
    const size_t Kw = i8 ? Kp2 : cg, packw = i8 || !p->direct;
    size_t mb = p->direct ? 48 / T : 96 / sw;
    if (!p->direct && mb > 48) mb = 48;
    if (packw && mb > 16384 / (T * Kw)) mb = 16384 / (T * Kw);
    if (mb < 1) mb = 1;
    if (mb > mg) mb = mg;
    p->mb = mb;
    const size_t w2 = packw ? 4 * mb * T * Kw : 0;
    if (p->direct) {
        p->x2_off = w2;
        p->acc_off = w2 + (i8 ? 4 * Kp2 * p->JC : 0);
        return p->acc_off + 4 * mb * T * p->JC;
    }
    p->XW = (p->QC + ((kw - 1) * dw + 2 * sw - 1) / sw + 1 + 7) / 8 * 8 + 8;
    p->x2_off = w2;
    p->acc_off = w2 + (i8 ? 4 * Kp2 * p->XW : 0);
    return p->acc_off + 4 * mb * sw * p->QC;
}
DSE_SHARED int dse__conv_transpose_f32_geom(const dse_model *m, const dse_node *n, dse_conv_geom *g, dse_why *why);
/* What the REF checks of Gemm, MaxPool and Softmax verify (gemm.c, pool.c, softmax.c), for the
 * optimised variants; Softmax's lines: (outer, len along the axis, inner). 0 = valid. */
DSE_SHARED int dse__gemm_f32_valid(const dse_model *m, const dse_node *n, dse_why *why);
/* The optimised float Gemm/MatMul driver (kernels/ref/loops.c): every batch of g (nb = 0: one) by
 * fn(s with A, B, C moved to the batch's matrices), cut into parts for the session's threads:
 * with pack (the planned packing buffer: s->pack set to each worker's scratch), parts of columns:
 * on 1 thread whole packing chunks (at most 2 parts), on more about 2 parts per thread of whole
 * panels of 16 columns (each part packs its own columns, in chunks of at most
 * dse__sgemm_pack_cols(K)); else blocks of rt * ceil(M / (8 rt)) rows or ct
 * columns (rt x ct: fn's register tile). Each element is computed by one part: the same bytes for
 * any thread count. p16: B is one [K][N] constant in layout 9 (fn the broadcast kernel): no packing,
 * each part's columns of whole panels read as fn's panels of 16 (bpanel), its columns past N / 16 * 16
 * as a row-major matrix; parts of columns as with packing when there are 2 panels per thread. */
typedef void (*dse_sgemm_fn)(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);
DSE_SHARED void dse_f32_sgemm_batched(const dse_ctx *cx, const dse_mm_geom *g, const dse_sgemm *s, dse_sgemm_fn fn, int pack,
                                      size_t rt, size_t ct, int p16);
/* An ISA's SGEMMs for the two helpers below: the broadcast kernel (B's columns contiguous) and
 * the dot-product kernel (B's rows of k), each with its register tile (rows x columns). */
typedef struct dse_sgemm_isa {
    dse_sgemm_fn gemm, dot;
    size_t gemm_rt, gemm_ct, dot_rt, dot_ct;
} dse_sgemm_isa;
/* The run of an optimised float Gemm / MatMul variant (kernels/ref/gemm.c, matmul.c): the node's
 * SGEMM (A with its strides, B as stored, C, alpha, C's broadcast by strides (unused when absent
 * or beta is 0), the clamp; MatMul: per batch) by the ISA's broadcast kernel, or its dot-product
 * kernel for Gemm transB = 1 and MatMul N = 1, with the planned packing buffer when the node's
 * scratch holds it, through dse_f32_sgemm_batched. */
DSE_SHARED void dse__gemm_f32_opt_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                      const dse_sgemm_isa *isa);
DSE_SHARED void dse__matmul_f32_opt_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                        const dse_sgemm_isa *isa);
/* The element offsets of batch bi's A and B matrices in a MatMul (the batch index row-major over
 * g->bdims, broadcast axes stride 0). */
static inline void dse__mm_batch(const dse_mm_geom *g, size_t bi, size_t *offa, size_t *offb) {
    *offa = *offb = 0;
    for (int d = (int)g->nb - 1; d >= 0; d--) {
        const size_t idx = bi % g->bdims[d];
        bi /= g->bdims[d];
        *offa += idx * g->sa[d];
        *offb += idx * g->sb[d];
    }
}
/* The checks of the optimised float Gemm, MatMul and Softmax variants (every ISA: what they leave to REF and
 * their scratch; gemm.c, matmul.c). */
DSE_SHARED int dse__check_gemm_f32_opt(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse__check_matmul_f32_opt(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse__check_softmax_f32_opt(const dse_model *m, const dse_node *n, dse_why *why);   /* softmax.c */
DSE_SHARED int dse__maxpool_f32_valid(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse__avgpool_f32_valid(const dse_model *m, const dse_node *n, dse_why *why);   /* ref/pool.c */
DSE_SHARED int dse__softmax_f32_lines(const dse_model *m, const dse_node *n, size_t *outer, size_t *len, size_t *inner);
/* The optimised float Softmax/LogSoftmax (kernels/avx2/softmax.c, kernels/neon/softmax.c) run on one
 * driver (kernels/ref/softmax.c): lines along the last axis by `rows` (dse__parallel over outer,
 * arg the job); strided lines `width` at a time by `block`, the last inner % width one by one in
 * REF's order with the ISA's vector exp on one value (`exp1`). */
typedef struct dse_softmax_job {
    const float *x;
    float *y;
    size_t outer, len, inner;
    int logsm;
} dse_softmax_job;
typedef struct dse_softmax_isa {
    dse_task_fn rows;
    void (*block)(const dse_softmax_job *j, size_t o, size_t i);
    float (*exp1)(float);
    size_t width;
} dse_softmax_isa;
DSE_SHARED void dse__softmax_f32_opt_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                         int logsm, const dse_softmax_isa *isa);
/* REF's float Gemm/MatMul sums (kernels/ref/loops.c): Y[i][j] = sum_k A[i*sai + k*sak] B(k, j), k ascending;
 * b16 = 0: float32 B(k, j) = B[k*sbk + j*sbj]; 1: float16, the same; 2: float32 [K][N] in layout 9
 * (dse__p16_index(k, j, K, N)); 3: float32 stored [N][K] in layout 9 (Gemm transB: dse__p16_index(j, k, N, K)). */
DSE_SHARED void dse_f32_gemm_rows(const dse_ctx *cx, const float *A, size_t sai, size_t sak, const void *B, int b16, size_t sbk, size_t sbj,
                                  size_t M, size_t K, size_t N, float *Y);

/* Shared kernel checks (defined in kernels/ref) */
DSE_INTERNAL int dse__check_same_shape(const dse_model *m, const dse_node *n, int dtype, dse_why *why);

/* Byte-mover helpers shared by the dtype-generic kernels (kernels/ref/identity.c). */
DSE_SHARED size_t dse__mv_esize(int dtype);   /* bytes per element; 0 for sub-byte dtypes */
DSE_INTERNAL long dse__mv_const_ints(const dse_model *m, uint32_t idx, int64_t *out, size_t cap);   /* CONST int64/int32 rank<=1: count, or -1 */
DSE_INTERNAL void dse__mv_zero_elem(const dse_tensor *t, uint8_t elem[8]);   /* the bytes of real 0 (zero point if quantised int8/uint8) */
DSE_INTERNAL void dse__mv_fill(uint8_t *dst, size_t count, const uint8_t *elem, size_t esize);
DSE_SHARED void dse__mv_row_strides(const dse_tensor *t, int64_t *stride);   /* row-major element strides */
DSE_INTERNAL void dse__mv_copy_strided(uint8_t *dst, const uint8_t *src, size_t esize, unsigned rank, const size_t *dims,
                          const int64_t *stride);
DSE_SHARED int dse__mv_check_io(const dse_model *m, const dse_node *n, dse_why *why);
/* (DSE_SHARED: the AVX2 Transpose variant, kernels/avx2/transpose.c, calls these from the bundle's other unit.)
 * The walk of dse__mv_copy_strided with size-1 axes dropped and axes that stay adjacent merged:
 * the merged axes' dims and strides into d2, s2 (rank + 2 entries), their count (0: empty). */
DSE_SHARED unsigned dse__mv_merge(unsigned rank, const size_t *dims, const int64_t *stride, size_t *d2, int64_t *s2);
/* Transpose's permutation (kernels/ref/transpose.c): 0 when valid. */
DSE_SHARED int dse__transpose_perm(const dse_model *m, const dse_node *n, int64_t *perm);
/* Concat (kernels/ref/concat.c, also the int8 Concat): an input that lies inside the output
 * must sit exactly at its slice, which is contiguous only when every dim before axis is 1. */
DSE_INTERNAL int dse__concat_check_alias(const dse_model *m, const dse_node *n, unsigned axis, dse_why *why);

#endif
