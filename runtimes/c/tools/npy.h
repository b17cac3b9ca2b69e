/* npy.h: read and write NumPy .npy files (format versions 1.0, 2.0, 3.0) for dsedge-run.
 *
 * The format: the magic "\x93NUMPY", a major and a minor version byte, the header length
 * (uint16 little-endian in 1.0, uint32 in 2.0/3.0), then the header, an ASCII (3.0: UTF-8)
 * Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (1, 8), }
 * padded with spaces and ended by '\n', then the raw C-order data. Supported element types:
 * <f4 <f2 <f8 <i8 <i4 <i2 |i1 |u1 <u2 <u4 <u8 |b1 (little-endian); 0-d arrays (shape ()) too.
 * Fortran-order files are refused. Written files are version 1.0 (a shape of rank <= 8 always
 * fits its header), padded so the data starts at a multiple of 64, as numpy writes them. */
#ifndef DSEDGE_NPY_H
#define DSEDGE_NPY_H

#include <stddef.h>

#include "dsedge.h"

typedef struct npy_array {
    int dtype;                    /* dse_dtype */
    size_t rank;
    size_t dims[DSE_MAX_RANK];
    size_t nbytes;
    void *data;                   /* 64-byte aligned, free() it */
} npy_array;

/* Returns 0 on success, else non-zero with a reason in msg. */
int npy_read(const char *path, npy_array *out, char *msg, size_t cap);
int npy_write(const char *path, int dtype, size_t rank, const size_t *dims, const void *data, size_t nbytes,
              char *msg, size_t cap);
/* The .npy descr of a dse dtype ("<f4", ...), NULL when it has none (int4/uint4). */
const char *npy_descr(int dtype);

#endif
