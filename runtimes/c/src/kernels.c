/* kernels.c: the kernel table, expanded from kernels.inc, and the lookup and dispatch used at
 * load and run time.
 *
 * The table holds no pointers: each kernel is an index (its position in the list), its
 * (op, dtype, aliasing trait) triple is a row of a plain array, and check/run dispatch is a switch on the
 * index, so the library carries no relocation per kernel (DESIGN.md §8.8: library size).
 * The enumerator DSE_K_<op>_<dtype>_<run> of every entry also makes a duplicate line in the
 * list a compile error. */
#include "internal.h"

enum {
#define DSE_KERNEL(op, dt, isa, check, run, alias) DSE_K_##op##_##dt##_##run,
#include "kernels.inc"
#undef DSE_KERNEL
    DSE_KERNEL_COUNT_
};

_Static_assert(DSE_OP_ID_END_ <= 0x10000 && DSE_DTYPE_ID_END_ <= 0x100, "op ids must fit uint16_t, dtype ids uint8_t");
_Static_assert(DSE_KERNEL_COUNT_ < 0x8000, "kernel indices must fit dse_node.kernel");

static const struct { uint16_t op; uint8_t dtype, alias, isa; } KERNELS[] = {
#define DSE_KERNEL(op, dt, isa, check, run, alias) {DSE_OP_##op, DSE_DTYPE_##dt, DSE_ALIAS_##alias, DSE_ISA_##isa},
#include "kernels.inc"
#undef DSE_KERNEL
};

/* The kernel after `prev` (-1: the first) listed for (op, dtype). The loader gives a node the
 * first of these whose check accepts it (e.g. Conv with a float32 output: the int8 float_out
 * kernel accepts only an int8 x, the f32 kernel takes the rest). */
int dse__next_kernel(int op, int dtype, int prev, unsigned isas) {
    for (int i = prev + 1; i < DSE_KERNEL_COUNT_; i++)
        if (KERNELS[i].op == op && (KERNELS[i].dtype == DSE_DTYPE_INVALID || KERNELS[i].dtype == dtype) &&
            (isas >> KERNELS[i].isa & 1u))
            return i;
    return -1;
}

int dse__kernel_check(int k, const dse_model *m, const dse_node *n, dse_why *why) {
    switch (k) {
#define DSE_KERNEL(op, dt, isa, check, run, alias) case DSE_K_##op##_##dt##_##run: return check(m, n, why);
#include "kernels.inc"
#undef DSE_KERNEL
    default: return 1;
    }
}

void dse__kernel_run(int k, const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    switch (k) {
#define DSE_KERNEL(op, dt, isa, check, run, alias) case DSE_K_##op##_##dt##_##run: run(m, n, arena, cx); break;
#include "kernels.inc"
#undef DSE_KERNEL
    default: break;
    }
}

int dse__kernel_isa(int k) { return k >= 0 && k < DSE_KERNEL_COUNT_ ? KERNELS[k].isa : DSE_ISA_REF; }

int dse__kernel_alias(int k) { return k >= 0 && k < DSE_KERNEL_COUNT_ ? KERNELS[k].alias : DSE_ALIAS_NONE; }

/* Kernel names (for load errors) as one NUL-separated string in table order: no pointer
 * (and relocation) per entry. */
static const char NAMES[] =
#define DSE_KERNEL(op, dt, isa, check, run, alias) #run "\0"
#include "kernels.inc"
#undef DSE_KERNEL
    ;

const char *dse__kernel_name(int k) {
    const char *s = NAMES;
    while (k-- > 0) s += strlen(s) + 1;
    return s;
}
