/* attr.c: node attribute lookup for the kernels (declared in internal.h).
 *
 * Kernels name attributes by key id (DSE_A_<name>, src/attr_keys.inc); the loader gave every
 * node attribute its id (0 for a name no kernel reads). Lookup is a linear scan (a node has
 * <= 64 attributes). An attribute that is absent or of another type gives NULL / the caller's
 * default. INTS are kept as the file's zigzag LEB128 varints (validated by the loader) and
 * decoded on request. These are functions rather than static inlines in internal.h so that
 * the ~150 call sites share one copy (library size, DESIGN.md §8.8). */
#include "internal.h"

const dse_attr *dse__attr(const dse_node *n, int key, int type) {
    for (uint32_t k = 0; k < n->n_attr; k++)
        if (n->attrs[k].key == key) return n->attrs[k].type == type ? &n->attrs[k] : NULL;
    return NULL;
}
int64_t dse__attr_int(const dse_node *n, int key, int64_t def) {
    const dse_attr *a = dse__attr(n, key, DSE_ATTR_INT);
    return a ? a->i : def;
}
float dse__attr_float(const dse_node *n, int key, float def) {
    const dse_attr *a = dse__attr(n, key, DSE_ATTR_FLOAT);
    return a ? a->f : def;
}
const char *dse__attr_str(const dse_node *n, int key, const char *def) {
    const dse_attr *a = dse__attr(n, key, DSE_ATTR_STRING);
    return a ? a->s : def;
}

int dse__attr_ints(const dse_node *n, int key, int64_t *out, size_t cap) {
    const dse_attr *a = dse__attr(n, key, DSE_ATTR_INTS);
    if (!a || a->n > cap) return -1;
    const uint8_t *p = a->raw;
    for (size_t e = 0; e < a->n; e++) {
        uint64_t v = 0;
        for (unsigned sh = 0;; sh += 7) { uint8_t b = *p++; v |= (uint64_t)(b & 0x7f) << sh; if (!(b & 0x80)) break; }
        out[e] = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    }
    return (int)a->n;
}

/* The key id of attribute name s (DSE_A_<name>), 0 when no kernel reads it: a scan of the
 * key list, kept as one NUL-separated string (no pointer table to relocate). Once per node
 * attribute at load. */
static const char KEYS[] =
#define DSE_ATTR_KEY(name) #name "\0"
#include "attr_keys.inc"
#undef DSE_ATTR_KEY
    ;

int dse__attr_key(const char *s) {
    int id = 1;
    for (const char *k = KEYS; id < DSE_A_COUNT_; k += strlen(k) + 1, id++)
        if (strcmp(s, k) == 0) return id;
    return 0;
}
