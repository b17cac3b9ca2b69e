/* kernels.c: the kernel table, expanded from kernels.inc, and the lookup used at load. */
#include "internal.h"

#define DSE_KERNEL(op, dt, check, run) \
    int check(const dse_model *, const dse_node *, char *, size_t); \
    void run(const dse_model *, const dse_node *, uint8_t *, uint8_t *);
#include "kernels.inc"
#undef DSE_KERNEL

_Static_assert(DSE_OP_ID_END_ <= 0x10000 && DSE_DTYPE_ID_END_ <= 0x100, "op ids must fit dse_kernel.op, dtype ids .dtype");

static const dse_kernel KERNELS[] = {
#define DSE_KERNEL(op, dt, check, run) {DSE_OP_##op, DSE_DTYPE_##dt, check, run},
#include "kernels.inc"
#undef DSE_KERNEL
};

/* The kernel after `prev` (NULL: the first) listed for (op, dtype). The loader gives a node
 * the first of these whose check accepts it (e.g. Conv with a float32 output: the int8
 * float_out kernel accepts only an int8 x, the f32 kernel takes the rest). */
const dse_kernel *dse__next_kernel(int op, int dtype, const dse_kernel *prev) {
    for (size_t i = prev ? (size_t)(prev - KERNELS) + 1 : 0; i < sizeof KERNELS / sizeof KERNELS[0]; i++)
        if (KERNELS[i].op == op && (KERNELS[i].dtype == DSE_DTYPE_INVALID || KERNELS[i].dtype == dtype)) return &KERNELS[i];
    return NULL;
}

/* Kernel names (for load errors) as one NUL-separated string in table order: no pointer
 * (and relocation) per entry. */
static const char NAMES[] =
#define DSE_KERNEL(op, dt, check, run) #run "\0"
#include "kernels.inc"
#undef DSE_KERNEL
    ;

const char *dse__kernel_name(const dse_kernel *k) {
    const char *s = NAMES;
    for (size_t i = (size_t)(k - KERNELS); i--;) s += strlen(s) + 1;
    return s;
}

const dse_kernel *dse__find_kernel(int op, int dtype) { return dse__next_kernel(op, dtype, NULL); }
