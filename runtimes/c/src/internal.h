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

#define DSE_NONE UINT32_MAX   /* an absent optional input/output */
#define DSE_STORAGE_CONST 0
#define DSE_STORAGE_ARENA 1

typedef struct dse_tensor {
    const char *name;
    uint8_t dtype, storage, layout, rank, quant;
    int32_t axis;
    size_t dims[DSE_MAX_RANK];
    size_t numel, nbytes, offset;
    size_t group_size, quant_count;
    float *scales;
    int32_t *zero_points;
} dse_tensor;

enum { DSE_ATTR_INT = 1, DSE_ATTR_FLOAT, DSE_ATTR_INTS, DSE_ATTR_FLOATS, DSE_ATTR_STRING, DSE_ATTR_TENSOR };

typedef struct dse_attr {
    const char *name;
    uint8_t type;
    int64_t i;              /* INT; TENSOR: tensor index */
    float f;                /* FLOAT */
    const char *s;          /* STRING */
    size_t n;               /* INTS/FLOATS: element count */
    const uint8_t *raw;     /* INTS: zigzag varints, FLOATS: n little-endian f32 (validated) */
    size_t raw_len;
} dse_attr;

struct dse_kernel;

typedef struct dse_node {
    uint32_t op;
    const char *name;
    uint32_t n_in, n_out, n_attr;
    uint32_t *in, *out;     /* tensor indices, DSE_NONE when absent */
    dse_attr *attrs;
    const struct dse_kernel *kernel;
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
};

/* A kernel: `check` runs at load for each node it is chosen for (writes a reason into msg
 * and returns non-zero to refuse it); `run` executes the node. */
typedef struct dse_kernel {
    uint16_t op;
    uint8_t dtype;          /* dtype of output 0; DSE_DTYPE_INVALID = any */
    int (*check)(const dse_model *m, const dse_node *n, char *msg, size_t cap);
    void (*run)(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch);
} dse_kernel;

static inline const dse_tensor *dse__t(const dse_model *m, uint32_t idx) {
    return idx == DSE_NONE ? NULL : &m->tensors[idx];
}

static inline void *dse__data(const dse_model *m, uint8_t *arena, uint32_t idx) {
    const dse_tensor *t = &m->tensors[idx];
    if (t->storage == DSE_STORAGE_CONST)
        return (void *)(uintptr_t)(m->blob + t->offset);   /* read-only: never written */
    return arena + t->offset;
}

const dse_kernel *dse__find_kernel(int op, int dtype);
const dse_kernel *dse__next_kernel(int op, int dtype, const dse_kernel *prev);   /* NULL: none after prev */
int dse__op_known(uint32_t op);
const char *dse__kernel_name(const dse_kernel *k);   /* its run function's name, e.g. "dse_i8_conv__ref" */
void dse__release_file(dse_model *m);   /* file.c: unmaps or frees what load_file owns */
void dse__set_error(dse_error *err, dse_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Attribute lookup by name for kernels (src/attr.c; a node has <= 64 attributes: a linear
 * scan). An attribute that is absent or has another type gives NULL / the default. Out of
 * line, not inline: one copy of the scan instead of one per call site (binary size). */
const dse_attr *dse__attr(const dse_node *n, const char *name, int type);
int64_t dse__attr_int(const dse_node *n, const char *name, int64_t def);
float dse__attr_float(const dse_node *n, const char *name, float def);
const char *dse__attr_str(const dse_node *n, const char *name, const char *def);
/* INTS attribute: decodes up to `cap` zigzag varints (validated at load) into out; returns
 * the element count, or -1 when absent, of another type or longer than cap. */
int dse__attr_ints(const dse_node *n, const char *name, int64_t *out, size_t cap);

/* Broadcasting walker shared by the elementwise kernels (kernels/ref/binary.c): the inputs
 * (numpy broadcasting, each aligned to the output's trailing axes) are walked in the output's
 * row-major order one innermost row at a time; `row` gets each input's row start and element
 * stride (0 = broadcast) and writes `len` output elements. */
typedef struct dse_ew_ctx { float f[4]; int64_t i[2]; size_t esize; } dse_ew_ctx;
typedef void (*dse_ew_row)(uint8_t *y, const uint8_t *const *x, const size_t *stride, uint32_t nx, size_t len,
                           const dse_ew_ctx *c);
int dse__ew_check_broadcast(const dse_model *m, const dse_node *n, uint32_t nx, char *msg, size_t cap);
void dse__ew_walk(const dse_model *m, const dse_node *n, uint8_t *arena, uint32_t nx, dse_ew_row row, const dse_ew_ctx *c);

/* Shared kernel checks (defined in kernels/ref) */
int dse__check_same_shape(const dse_model *m, const dse_node *n, int dtype, char *msg, size_t cap);

/* Byte-mover helpers shared by the dtype-generic kernels (kernels/ref/identity.c). */
size_t dse__mv_esize(int dtype);   /* bytes per element; 0 for sub-byte dtypes */
long dse__mv_const_ints(const dse_model *m, uint32_t idx, int64_t *out, size_t cap);   /* CONST int64/int32 rank<=1: count, or -1 */
void dse__mv_zero_elem(const dse_tensor *t, uint8_t elem[8]);   /* the bytes of real 0 (zero point if quantised int8/uint8) */
void dse__mv_fill(uint8_t *dst, size_t count, const uint8_t *elem, size_t esize);
void dse__mv_row_strides(const dse_tensor *t, int64_t *stride);   /* row-major element strides */
void dse__mv_copy_strided(uint8_t *dst, const uint8_t *src, size_t esize, unsigned rank, const size_t *dims,
                          const int64_t *stride);
int dse__mv_check_io(const dse_model *m, const dse_node *n, char *msg, size_t cap);

#endif
