/* pad.c: Pad for any dtype; modes constant, reflect, edge, wrap; negative pads crop.
 *
 * Inputs: data, pads (constant int64, begins then ends, one pair per padded axis), the
 * optional constant_value (a constant of the data's dtype with 0 or 1 element), optional
 * axes (constant int64). An int8 node has no constant_value input: it pads with the INT
 * attribute `pad_value` (the zero point, docs/kernels.md); with neither, the value is 0.
 *
 * With begin pad b on an axis, output index o maps to input index i = o - b. Negative pads
 * crop first (numpy reference), so the valid input range is [lo, hi) = [max(-b, 0),
 * dim - max(-e, 0)) of length c. Inside it the element is copied; outside, constant mode
 * writes the value, and the other modes fold j = i - lo into [0, c): edge clamps, wrap takes
 * j mod c, reflect mirrors without repeating the edge (period 2(c-1); c == 1 repeats the
 * single element) — the same as numpy's np.pad for pads of any width, because each mode is
 * separable per axis. Rows of the last axis copy their in-range middle with one memcpy. */
#include "internal.h"

enum { M_CONSTANT, M_REFLECT, M_EDGE, M_WRAP };

typedef struct {
    int mode;
    int64_t b[DSE_MAX_RANK];          /* begin pad per axis (negative: crop) */
    int64_t lo[DSE_MAX_RANK], c[DSE_MAX_RANK];
} pad_plan;

static int pad_mkplan(const dse_model *m, const dse_node *n, pad_plan *p, dse_why *why) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    unsigned r = x->rank;
    const char *mode = dse__attr_str(n, DSE_A_mode, "constant");
    if (!strcmp(mode, "constant")) p->mode = M_CONSTANT;
    else if (!strcmp(mode, "reflect")) p->mode = M_REFLECT;
    else if (!strcmp(mode, "edge")) p->mode = M_EDGE;
    else if (!strcmp(mode, "wrap")) p->mode = M_WRAP;
    else { DSE_WHYF(why, PAD_MODE_NOT_ONE_CONSTANT, mode, 0, 0, 0, 0); return 1; }
    int64_t pads[2 * DSE_MAX_RANK], ax[DSE_MAX_RANK];
    long np_ = n->n_in > 1 ? dse__mv_const_ints(m, n->in[1], pads, 2 * DSE_MAX_RANK) : -1, na;
    if (np_ < 0 || np_ > 2 * DSE_MAX_RANK) { DSE_WHY(why, PAD_PADS_CONSTANT_INT64_TENSOR); return 1; }
    if (n->n_in > 3 && n->in[3] != DSE_NONE) {
        na = dse__mv_const_ints(m, n->in[3], ax, DSE_MAX_RANK);
        if (na < 0 || na > (long)r) { DSE_WHY(why, PAD_AXES_CONSTANT_INT64_TENSOR); return 1; }
    } else {
        na = (long)r;
        for (long j = 0; j < na; j++) ax[j] = j;
    }
    if (np_ != 2 * na || y->rank != r) { DSE_WHYF(why, PAD_PADS_HAS_ENTRIES_AXES, NULL, np_, na, 0, 0); return 1; }
    int64_t e[DSE_MAX_RANK];
    unsigned seen = 0;
    for (unsigned d = 0; d < r; d++) p->b[d] = e[d] = 0;
    for (long j = 0; j < na; j++) {
        int64_t a = ax[j] < 0 ? ax[j] + (int64_t)r : ax[j];
        if (a < 0 || a >= (int64_t)r || (seen >> a & 1u)) { DSE_WHYF(why, PAD_AXIS_OUT_RANGE_REPEATED, NULL, ax[j], 0, 0, 0); return 1; }
        seen |= 1u << a;
        p->b[a] = pads[j];
        e[a] = pads[j + na];
    }
    for (unsigned d = 0; d < r; d++) {
        int64_t dim = (int64_t)x->dims[d], b = p->b[d];
        if (b < -dim || b > INT32_MAX || e[d] < -dim || e[d] > INT32_MAX) { DSE_WHYF(why, PAD_ON_AXIS_OUT_RANGE, NULL, d, 0, 0, 0); return 1; }
        p->lo[d] = b < 0 ? -b : 0;
        p->c[d] = dim - p->lo[d] - (e[d] < 0 ? -e[d] : 0);
        if (p->c[d] < 0) { DSE_WHYF(why, PAD_NEGATIVE_PADS_CROP_MORE, NULL, d, 0, 0, 0); return 1; }
        int64_t want = p->c[d] + (b > 0 ? b : 0) + (e[d] > 0 ? e[d] : 0);
        if ((int64_t)y->dims[d] != want) { DSE_WHYF(why, PAD_OUTPUT_DIM_PADDING_GIVES, NULL, d, y->dims[d], want, 0); return 1; }
        if (p->mode != M_CONSTANT && p->c[d] == 0 && want > 0) { DSE_WHYF(why, PAD_PADDING_EMPTY_AXIS, mode, d, 0, 0, 0); return 1; }
    }
    return 0;
}

int dse__check_pad(const dse_model *m, const dse_node *n, dse_why *why) {
    pad_plan p;
    if (n->n_in < 2 || n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, PAD_NEEDS_DATA_PADS_ONE);
        return 1;
    }
    const dse_tensor *v = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL;
    if (v && (v->storage != DSE_STORAGE_CONST || v->dtype != m->tensors[n->in[0]].dtype || v->numel > 1)) {
        DSE_WHY(why, PAD_CONSTANT_VALUE_CONSTANT_DATA);
        return 1;
    }
    return pad_mkplan(m, n, &p, why);
}

/* Input index along an axis for output index o, or -1 for the constant value. */
static int64_t src_index(const pad_plan *p, unsigned d, int64_t o) {
    int64_t j = o - p->b[d] - p->lo[d], c = p->c[d];
    if (j >= 0 && j < c) return p->lo[d] + j;
    switch (p->mode) {
        case M_CONSTANT: return -1;
        case M_EDGE: j = j < 0 ? 0 : c - 1; break;
        case M_WRAP: j %= c; if (j < 0) j += c; break;
        default:
            if (c == 1) { j = 0; break; }
            j %= 2 * (c - 1);
            if (j < 0) j += 2 * (c - 1);
            if (j >= c) j = 2 * (c - 1) - j;
    }
    return p->lo[d] + j;
}

void dse_any_pad__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    pad_plan p;
    dse_why why;
    pad_mkplan(m, n, &p, &why);
    if (y->numel == 0) return;
    size_t es = dse__mv_esize(x->dtype), idx[DSE_MAX_RANK] = {0};
    uint8_t value[8] = {0};
    const dse_tensor *v = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL;
    if (v && v->numel == 1) memcpy(value, v->cdata, es);
    else if (!v) {   /* int8 form: INT pad_value (the zero point), little-endian in es bytes */
        int64_t pv = dse__attr_int(n, DSE_A_pad_value, 0);
        for (size_t k = 0; k < es; k++) value[k] = (uint8_t)((uint64_t)pv >> (8 * k));
    }
    const uint8_t *src = dse__data(m, arena, n->in[0]);
    uint8_t *dst = dse__data(m, arena, n->out[0]);
    if (x->rank == 0) { memcpy(dst, src, es); return; }
    int64_t xs[DSE_MAX_RANK];
    dse__mv_row_strides(x, xs);
    unsigned last = x->rank - 1;
    int64_t w = (int64_t)y->dims[last], mid0 = p.b[last] > 0 ? p.b[last] : 0, mid1 = mid0 + p.c[last];
    for (;;) {
        int64_t off = 0;
        int outside = 0;
        for (unsigned d = 0; d < last; d++) {
            int64_t s = src_index(&p, d, (int64_t)idx[d]);
            if (s < 0) outside = 1;
            else off += s * xs[d];
        }
        if (outside) {
            dse__mv_fill(dst, (size_t)w, value, es);
        } else {
            const uint8_t *row = src + (size_t)off * es;
            for (int64_t o = 0; o < mid0; o++) {
                int64_t s = src_index(&p, last, o);
                if (s < 0) memcpy(dst + o * es, value, es); else memcpy(dst + o * es, row + s * es, es);
            }
            memcpy(dst + mid0 * es, row + p.lo[last] * es, (size_t)(mid1 - mid0) * es);
            for (int64_t o = mid1; o < w; o++) {
                int64_t s = src_index(&p, last, o);
                if (s < 0) memcpy(dst + o * es, value, es); else memcpy(dst + o * es, row + s * es, es);
            }
        }
        dst += (size_t)w * es;
        int d = (int)last - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}
