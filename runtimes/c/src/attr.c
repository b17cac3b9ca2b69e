/* attr.c: node attribute lookup for the kernels (declared in internal.h).
 *
 * A node's attributes are sorted by key string index at load; lookup is a linear scan by
 * name (a node has <= 64 attributes). An attribute that is absent or of another type gives
 * NULL / the caller's default. INTS are kept as the file's zigzag LEB128 varints (validated
 * by the loader) and decoded on request. These are functions rather than static inlines in
 * internal.h so that the ~100 call sites share one copy (library size, DESIGN.md §8.8). */
#include "internal.h"

const dse_attr *dse__attr(const dse_node *n, const char *name, int type) {
    for (uint32_t k = 0; k < n->n_attr; k++)
        if (strcmp(n->attrs[k].name, name) == 0) return n->attrs[k].type == type ? &n->attrs[k] : NULL;
    return NULL;
}
int64_t dse__attr_int(const dse_node *n, const char *name, int64_t def) {
    const dse_attr *a = dse__attr(n, name, DSE_ATTR_INT);
    return a ? a->i : def;
}
float dse__attr_float(const dse_node *n, const char *name, float def) {
    const dse_attr *a = dse__attr(n, name, DSE_ATTR_FLOAT);
    return a ? a->f : def;
}
const char *dse__attr_str(const dse_node *n, const char *name, const char *def) {
    const dse_attr *a = dse__attr(n, name, DSE_ATTR_STRING);
    return a ? a->s : def;
}

int dse__attr_ints(const dse_node *n, const char *name, int64_t *out, size_t cap) {
    const dse_attr *a = dse__attr(n, name, DSE_ATTR_INTS);
    if (!a || a->n > cap) return -1;
    const uint8_t *p = a->raw;
    for (size_t e = 0; e < a->n; e++) {
        uint64_t v = 0;
        for (unsigned sh = 0;; sh += 7) { uint8_t b = *p++; v |= (uint64_t)(b & 0x7f) << sh; if (!(b & 0x80)) break; }
        out[e] = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    }
    return (int)a->n;
}
