/* dsedge.h: the public C API of the dsedge runtime (C11, libc only).
 *
 * Lifecycle:
 *     dse_model *m; dse_error e;
 *     if (dse_model_load_file("net.dse", 0, &m, &e) != DSE_OK) { puts(e.message); ... }
 *     dse_session *s;  dse_session_create(m, NULL, 0, &s, &e);   // or your own arena
 *     dse_session_set_input(s, 0, pixels, nbytes, &e);
 *     dse_session_run(s, &e);
 *     const void *y; size_t ny; dse_session_get_output(s, 0, &y, &ny);
 *     dse_session_free(s); dse_model_free(m);
 *
 * Memory: loading allocates the model's small index structures; the weights are used in
 * place from the buffer given to dse_model_load (which must stay valid and unchanged until
 * dse_model_free) or from the file mapping, except fp16 weights (layout 5, docs/format.md
 * §4.4), which loading widens once into a float32 copy (4 bytes per weight). A session holds the arena (dse_arena_size()
 * bytes, 64-byte aligned, supplied by the caller or allocated once by dse_session_create).
 * set_input, run and get_output never allocate.
 *
 * Thread-safety: a dse_model is immutable after loading and may be shared by any number of
 * threads and sessions. A dse_session is used by one thread at a time (run sessions in
 * parallel, one per thread). All functions are reentrant; there is no global state.
 *
 * Threads: a session created by dse_session_create_ex with options.threads = N > 1 runs each
 * inference on N threads, the caller's and N - 1 workers it starts (POSIX threads; a build
 * without them runs serially). The outputs are the same bytes for every N. The workers, and
 * their scratch buffers, live from creation to dse_session_free: a run allocates nothing.
 * Still one run at a time per session. A session with threads does not survive fork() (the
 * child has no workers): create it after forking.
 *
 * Errors: functions return a dse_status; those taking a dse_error * (which may be NULL)
 * also fill it with the code and a message naming the field, tensor or node at fault.
 */
#ifndef DSEDGE_H
#define DSEDGE_H

#include <stddef.h>
#include <stdint.h>

#include "dsedge_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DSE_VERSION_MAJOR 0
#define DSE_VERSION_MINOR 1
#define DSE_VERSION_PATCH 0
#define DSE_VERSION_STRING "0.1.0"
#define DSE_MAX_RANK 8
#define DSE_ARENA_ALIGN 64   /* alignment required of a caller-supplied arena */
#define DSE_BUFFER_ALIGN 16  /* alignment required of the buffer given to dse_model_load */

typedef enum dse_status {
    DSE_OK = 0,
    DSE_ERR_ARGUMENT,     /* a NULL pointer, an index out of range, a wrong byte size */
    DSE_ERR_NOMEM,        /* an allocation at load or session creation failed */
    DSE_ERR_IO,           /* the file could not be opened, mapped or read */
    DSE_ERR_MAGIC,        /* not a .dse file */
    DSE_ERR_VERSION,      /* a .dse format version this runtime does not read */
    DSE_ERR_TRUNCATED,    /* the file is shorter than its header says */
    DSE_ERR_CHECKSUM,     /* table or weight CRC-32 mismatch: the file is corrupt */
    DSE_ERR_FORMAT,       /* a field violates docs/format.md */
    DSE_ERR_RANGE,        /* a size does not fit this platform's size_t */
    DSE_ERR_UNSUPPORTED,  /* an op id or dtype without a kernel in this build */
    DSE_ERR_ALIGNMENT,    /* buffer or arena not aligned as required */
    DSE_ERR_NOT_FOUND,    /* no such metadata key / tensor name */
    DSE_ERR_STATE,        /* run before every input was set */
    DSE_STATUS_COUNT_
} dse_status;

typedef struct dse_error {
    dse_status code;
    char message[256];
} dse_error;

typedef struct dse_model dse_model;
typedef struct dse_session dse_session;

/* Quantisation kinds of dse_tensor_info.quant */
enum { DSE_QUANT_NONE = 0, DSE_QUANT_TENSOR = 1, DSE_QUANT_AXIS = 2 };

typedef struct dse_tensor_info {
    const char *name;           /* "" when unnamed; valid while the model lives */
    dse_dtype dtype;
    size_t rank;
    size_t dims[DSE_MAX_RANK];
    size_t nbytes;
    int quant;                  /* DSE_QUANT_* ; real = scale * (q - zero_point) */
    int axis;                   /* per-axis: the channel axis, else -1 */
    size_t group_size;          /* per-axis: 0 = per channel, else block size along axis */
    size_t quant_count;         /* number of scales / zero points */
    const float *scales;
    const int32_t *zero_points;
} dse_tensor_info;

/* Metadata value types (docs/format.md §4.2) */
enum { DSE_META_STRING = 1, DSE_META_INT64 = 2, DSE_META_FLOAT64 = 3, DSE_META_BYTES = 4, DSE_META_STRINGS = 5 };

typedef struct dse_meta {
    const char *key;
    int type;
    const char *str;            /* STRING */
    int64_t i64;                /* INT64 */
    double f64;                 /* FLOAT64 */
    const void *bytes;          /* BYTES (size bytes) */
    size_t size;
    const char *const *strings; /* STRINGS (count entries), e.g. an OCR character list */
    size_t count;
} dse_meta;

/* Version of this library and of the .dse format it reads. */
const char *dse_version(void);
uint32_t dse_format_version(void);
const char *dse_status_string(dse_status code);
const char *dse_dtype_name(int dtype);   /* "float32", ...; "?" if unknown */
const char *dse_op_name(int op_id);      /* "Conv", ...; "?" if unknown */

/* Load flags */
#define DSE_LOAD_VERIFY_WEIGHTS 1u       /* also check the weight CRC (one pass over the weights) */
#define DSE_LOAD_REF_KERNELS 2u          /* use only the portable reference kernels, not the optimised
                                          * variants chosen for this CPU (to compare them: integer
                                          * outputs are the same bytes either way) */
#define DSE_LOAD_NO_AMX 4u               /* x86-64: not the AMX kernels, even where the CPU has AMX (the
                                          * tile state adds 8 KB to each thread's saved context; and to
                                          * compare them with the avx512vnni variants) */
#define DSE_LOAD_NO_AVX512 8u            /* x86-64: not the AVX-512 kernels (avx512vnni, amx), even where the CPU
                                          * has them: the AVX2 and AVX-VNNI ones (to compare them in one process;
                                          * the 512-bit float kernels give the AVX2 ones' bytes) */

/* Load from memory. buf must be DSE_BUFFER_ALIGN-aligned and outlive the model (no copy). */
dse_status dse_model_load(const void *buf, size_t len, dse_model **out, dse_error *err);
dse_status dse_model_load_ex(const void *buf, size_t len, unsigned flags, dse_model **out, dse_error *err);
/* Load a file: memory-mapped where the platform allows, else read into an aligned buffer. */
dse_status dse_model_load_file(const char *path, unsigned flags, dse_model **out, dse_error *err);
void dse_model_free(dse_model *model);

size_t dse_model_input_count(const dse_model *model);
size_t dse_model_output_count(const dse_model *model);
dse_status dse_model_input(const dse_model *model, size_t index, dse_tensor_info *out);
dse_status dse_model_output(const dse_model *model, size_t index, dse_tensor_info *out);
int dse_model_find_input(const dse_model *model, const char *name);   /* index or -1 */
int dse_model_find_output(const dse_model *model, const char *name);  /* index or -1 */
size_t dse_model_node_count(const dse_model *model);
/* Node i (0 <= i < node_count, in run order): its op id (dse_op_name gives the name), its name
 * ("" when unnamed), the kernel chosen for it at load (its run function's name, e.g.
 * "dse_i8_conv__avx2" or "dse_i8_conv__ref": docs/kernels.md) and that kernel's instruction set
 * ("ref", "avx2", "neon-dotprod", ...). -1 / NULL when i is out of range. */
int dse_model_node_op(const dse_model *model, size_t index);
const char *dse_model_node_name(const dse_model *model, size_t index);
const char *dse_model_node_kernel(const dse_model *model, size_t index);
const char *dse_model_node_isa(const dse_model *model, size_t index);

size_t dse_model_metadata_count(const dse_model *model);
dse_status dse_model_metadata_at(const dse_model *model, size_t index, dse_meta *out);
dse_status dse_model_metadata(const dse_model *model, const char *key, dse_meta *out);

/* Bytes of arena a session needs (activations + kernel scratch). */
size_t dse_arena_size(const dse_model *model);

/* arena: NULL to allocate one, else arena_size >= dse_arena_size() bytes aligned to
 * DSE_ARENA_ALIGN, owned by the caller and outliving the session. */
dse_status dse_session_create(const dse_model *model, void *arena, size_t arena_size,
                              dse_session **out, dse_error *err);

/* Options of dse_session_create_ex. Set struct_size = sizeof(dse_session_options) (fields
 * added later are read only when struct_size covers them) and zero what you do not set. */
typedef struct dse_session_options {
    size_t struct_size;
    unsigned threads;           /* threads running each inference, the caller's included; 0 or 1:
                                 * the caller's only. At most DSE_MAX_THREADS. */
} dse_session_options;
#define DSE_MAX_THREADS 256
/* dse_session_create with options (NULL: the defaults, as dse_session_create). */
dse_status dse_session_create_ex(const dse_model *model, void *arena, size_t arena_size,
                                 const dse_session_options *options, dse_session **out, dse_error *err);
unsigned dse_session_threads(const dse_session *session);   /* threads a run uses (1 without a pool) */
void dse_session_free(dse_session *session);
/* Copies nbytes (must equal the input's nbytes) into the arena. */
dse_status dse_session_set_input(dse_session *session, size_t index, const void *data, size_t nbytes,
                                 dse_error *err);
dse_status dse_session_run(dse_session *session, dse_error *err);
/* dse_session_run, also timing each node: node_ns[i] receives the nanoseconds node i took
 * (node_ns has dse_model_node_count() entries; a monotonic clock, read between nodes). The
 * outputs are the same as dse_session_run's. DSE_ERR_UNSUPPORTED (nothing run) on a platform
 * without a monotonic clock (POSIX clock_gettime). */
dse_status dse_session_run_profile(dse_session *session, uint64_t *node_ns, dse_error *err);
/* A pointer into the arena (or the weights), valid until the next run or set_input. */
dse_status dse_session_get_output(const dse_session *session, size_t index, const void **data,
                                  size_t *nbytes);

#ifdef __cplusplus
}
#endif
#endif /* DSEDGE_H */
