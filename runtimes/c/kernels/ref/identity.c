/* identity.c: Identity for any dtype, and the helpers every dtype-generic byte mover shares.
 *
 * Byte movers (Identity, Reshape, Transpose, Concat, Split, Slice, Gather, Tile, Expand, Pad,
 * DepthToSpace, SpaceToDepth, nearest Resize) never look at element values: an element is
 * 1, 2, 4 or 8 opaque bytes (dtypes of fewer than 8 bits are refused at load), so one kernel
 * serves float32, float16, int8, int64, bool, ... and int8 results are trivially bit-exact
 * with the numpy reference (DESIGN.md §3: byte-moving ops share one (scale, zp)).
 *
 * The workhorse is dse__mv_copy_strided: the output is written in row-major order while the
 * input is read at `sum(index[d] * stride[d])` elements, with any (also zero or negative)
 * element stride per output axis. Transpose, Slice (steps), Expand (stride 0 on broadcast
 * axes) and DepthToSpace/SpaceToDepth (a 6-D transpose) are all this one walk. Before
 * walking, axes of size 1 are dropped and neighbouring axes that are contiguous in the input
 * (stride[d] == stride[d+1] * dims[d+1]) are merged, so the innermost run is as long as
 * possible; a unit-stride innermost run is one memcpy, other runs copy element by element
 * with a constant-size memcpy per element (no alignment assumptions, no aliasing UB).
 *
 * Constant parameter inputs (shapes, axes, starts, pads, repeats, split sizes) are int64 or
 * int32 tensors in the weight blob, read with memcpy; INTS attributes come from dse__attr_ints.
 */
#include "internal.h"

size_t dse__mv_esize(int dtype) {
    switch (dtype) {
#define X(n, id, s, bits, al) case id: return (bits) % 8 == 0 ? (size_t)(bits) / 8 : 0;
        DSE_DTYPE_LIST(X)
#undef X
        default: return 0;
    }
}

long dse__mv_const_ints(const dse_model *m, uint32_t idx, int64_t *out, size_t cap) {
    const dse_tensor *t = dse__t(m, idx);
    if (!t || t->storage != DSE_STORAGE_CONST || t->rank > 1 ||
        (t->dtype != DSE_DTYPE_INT64 && t->dtype != DSE_DTYPE_INT32))
        return -1;
    const uint8_t *p = t->cdata;
    for (size_t k = 0; k < t->numel && k < cap; k++) {
        if (t->dtype == DSE_DTYPE_INT64) {
            memcpy(&out[k], p + 8 * k, 8);
        } else {
            int32_t v;
            memcpy(&v, p + 4 * k, 4);
            out[k] = v;
        }
    }
    return (long)t->numel;
}

void dse__mv_zero_elem(const dse_tensor *t, uint8_t elem[8]) {
    memset(elem, 0, 8);
    if (t->quant == DSE_QUANT_TENSOR && t->quant_count == 1 && (t->dtype == DSE_DTYPE_INT8 || t->dtype == DSE_DTYPE_UINT8))
        elem[0] = (uint8_t)t->zero_points[0];
}

void dse__mv_fill(uint8_t *dst, size_t count, const uint8_t *elem, size_t esize) {
    for (size_t i = 0; i < count; i++) memcpy(dst + i * esize, elem, esize);
}

#define COPY_RUN(ES)                                                                         \
    for (size_t i = 0; i < len; i++) memcpy(dst + i * (ES), src + (ptrdiff_t)i * step * (ES), (ES))

static void copy_run(uint8_t *dst, const uint8_t *src, size_t len, ptrdiff_t step, size_t es) {
    if (step == 1) { memcpy(dst, src, len * es); return; }
    switch (es) {   /* constant sizes let the compiler turn each memcpy into one load/store */
        case 1: COPY_RUN(1); break;
        case 2: COPY_RUN(2); break;
        case 4: COPY_RUN(4); break;
        default: COPY_RUN(8); break;
    }
}

unsigned dse__mv_merge(unsigned rank, const size_t *dims, const int64_t *stride, size_t *d2, int64_t *s2) {
    unsigned r = 0;
    for (unsigned d = 0; d < rank; d++) {
        if (dims[d] == 0) return 0;                     /* empty output */
        if (dims[d] == 1) continue;                     /* size-1 axes never move the index */
        if (r && s2[r - 1] == stride[d] * (int64_t)dims[d]) {   /* contiguous with the previous axis */
            d2[r - 1] *= dims[d];
            s2[r - 1] = stride[d];
            continue;
        }
        d2[r] = dims[d];
        s2[r++] = stride[d];
    }
    if (r == 0) { d2[0] = 1; s2[0] = 1; r = 1; }
    return r;
}

void dse__mv_copy_strided(uint8_t *dst, const uint8_t *src, size_t es, unsigned rank, const size_t *dims,
                          const int64_t *stride) {
    size_t d2[DSE_MAX_RANK + 2];
    int64_t s2[DSE_MAX_RANK + 2];
    const unsigned r = dse__mv_merge(rank, dims, stride, d2, s2);
    if (!r) return;
    size_t len = d2[r - 1], idx[DSE_MAX_RANK + 2] = {0}, row = len * es;
    ptrdiff_t step = (ptrdiff_t)s2[r - 1], off = 0;
    for (;;) {
        copy_run(dst, src + off * (ptrdiff_t)es, len, step, es);
        dst += row;
        int d = (int)r - 2;
        for (; d >= 0; d--) {                           /* advance the outer counter, carry left */
            off += (ptrdiff_t)s2[d];
            if (++idx[d] < d2[d]) break;
            off -= (ptrdiff_t)s2[d] * (ptrdiff_t)idx[d];
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

void dse__mv_row_strides(const dse_tensor *t, int64_t *stride) {
    int64_t s = 1;
    for (int d = (int)t->rank - 1; d >= 0; d--) {
        stride[d] = s;
        s *= (int64_t)t->dims[d];
    }
}

/* Data input 0 and output 0 present, same dtype, a whole-byte element size. */
int dse__mv_check_io(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    if (!x || !y) { DSE_WHY(why, IDENTITY_NEEDS_DATA_INPUT_OUTPUT); return 1; }
    if (x->dtype != y->dtype) { DSE_WHYF(why, IDENTITY_OUTPUT_DTYPE_DIFFERS_FROM, dse_dtype_name(x->dtype), 0, 0, 0, 0); return 1; }
    if (!dse__mv_esize(x->dtype)) { DSE_WHYF(why, IDENTITY_DTYPE_NOT_WHOLE_NUMBER, dse_dtype_name(x->dtype), 0, 0, 0, 0); return 1; }
    return 0;
}

int dse__check_identity(const dse_model *m, const dse_node *n, dse_why *why) {
    if (n->n_in != 1 || n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, IDENTITY_NEEDS_ONE_INPUT_ONE);
        return 1;
    }
    if (m->tensors[n->in[0]].numel != m->tensors[n->out[0]].numel) {
        DSE_WHY(why, IDENTITY_NEEDS_ONE_INPUT_ONE);
        return 1;
    }
    return 0;
}

/* A copy, or nothing when the plan placed output and input at the same bytes (memmove:
 * partial overlap is allowed too). */
void dse_any_identity__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const uint8_t *x = dse__data(m, arena, n->in[0]);
    uint8_t *y = dse__data(m, arena, n->out[0]);
    if (x != y) memmove(y, x, m->tensors[n->out[0]].nbytes);
}
