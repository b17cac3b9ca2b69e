/* kernels.c: the kernel table, expanded from kernels.inc, and the lookup used at load. */
#include "internal.h"

#define DSE_KERNEL(op, dt, check, run) \
    int check(const dse_model *, const dse_node *, char *, size_t); \
    void run(const dse_model *, const dse_node *, uint8_t *, uint8_t *);
#include "kernels.inc"
#undef DSE_KERNEL

static const dse_kernel KERNELS[] = {
#define DSE_KERNEL(op, dt, check, run) {DSE_OP_##op, DSE_DTYPE_##dt, #run, check, run},
#include "kernels.inc"
#undef DSE_KERNEL
};

const dse_kernel *dse__find_kernel(int op, int dtype) {
    for (size_t i = 0; i < sizeof KERNELS / sizeof KERNELS[0]; i++)
        if (KERNELS[i].op == op && (KERNELS[i].dtype == DSE_DTYPE_INVALID || KERNELS[i].dtype == dtype)) return &KERNELS[i];
    return NULL;
}
