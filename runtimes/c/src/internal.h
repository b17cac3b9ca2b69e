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
    int op;
    int dtype;              /* dtype of output 0; DSE_DTYPE_INVALID = any */
    const char *name;
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
int dse__op_known(uint32_t op);
void dse__release_file(dse_model *m);   /* file.c: unmaps or frees what load_file owns */
void dse__set_error(dse_error *err, dse_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Shared kernel checks (defined in kernels/ref) */
int dse__check_same_shape(const dse_model *m, const dse_node *n, int dtype, char *msg, size_t cap);

#endif
