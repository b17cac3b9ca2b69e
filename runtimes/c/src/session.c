/* session.c: model queries, sessions (arena + input flags) and the run loop.
 *
 * A session owns (or borrows) the arena; inputs are copied to their planned arena offsets,
 * nodes run in file order with the kernel chosen at load, outputs are read in place. Nothing
 * here allocates after dse_session_create. */
#include <stdlib.h>

#include "internal.h"

struct dse_session {
    const dse_model *m;
    uint8_t *arena;
    void *owned_arena;
    uint8_t *input_set;    /* one flag per graph input */
    dse_pool *pool;        /* the session's threads (src/pool.c); NULL: one thread */
};

const char *dse_version(void) { return DSE_VERSION_STRING; }
uint32_t dse_format_version(void) { return DSE_FORMAT_VERSION; }

const char *dse_status_string(dse_status code) {
    static const char *const names[DSE_STATUS_COUNT_] = {
        "ok", "invalid argument", "out of memory", "I/O error", "not a .dse file",
        "unsupported .dse format version", "file truncated", "checksum mismatch (corrupt file)",
        "malformed .dse file", "value too large for this platform", "unsupported op or dtype",
        "misaligned buffer", "not found", "inputs not set",
    };
    return (unsigned)code < DSE_STATUS_COUNT_ ? names[code] : "unknown status";
}

size_t dse_model_input_count(const dse_model *m) { return m ? m->n_inputs : 0; }
size_t dse_model_output_count(const dse_model *m) { return m ? m->n_outputs : 0; }
size_t dse_model_node_count(const dse_model *m) { return m ? m->n_nodes : 0; }
size_t dse_arena_size(const dse_model *m) { return m ? m->arena_size : 0; }

static dse_status tensor_info(const dse_model *m, uint32_t idx, dse_tensor_info *o) {
    const dse_tensor *t = &m->tensors[idx];
    memset(o, 0, sizeof *o);
    o->name = t->name;
    o->dtype = (dse_dtype)t->dtype;
    o->rank = t->rank;
    for (unsigned d = 0; d < t->rank; d++) o->dims[d] = t->dims[d];
    o->nbytes = t->nbytes;
    o->quant = t->quant;
    o->axis = t->axis;
    o->group_size = t->group_size;
    o->quant_count = t->quant_count;
    o->scales = t->scales;
    o->zero_points = t->zero_points;
    return DSE_OK;
}

dse_status dse_model_input(const dse_model *m, size_t i, dse_tensor_info *out) {
    if (!m || !out || i >= m->n_inputs) return DSE_ERR_ARGUMENT;
    return tensor_info(m, m->inputs[i], out);
}

dse_status dse_model_output(const dse_model *m, size_t i, dse_tensor_info *out) {
    if (!m || !out || i >= m->n_outputs) return DSE_ERR_ARGUMENT;
    return tensor_info(m, m->outputs[i], out);
}

static int find(const dse_model *m, const uint32_t *list, size_t n, const char *name) {
    for (size_t i = 0; m && name && i < n && i < INT32_MAX; i++)
        if (strcmp(m->tensors[list[i]].name, name) == 0) return (int)i;
    return -1;
}
int dse_model_find_input(const dse_model *m, const char *name) { return m ? find(m, m->inputs, m->n_inputs, name) : -1; }
int dse_model_find_output(const dse_model *m, const char *name) { return m ? find(m, m->outputs, m->n_outputs, name) : -1; }

size_t dse_model_metadata_count(const dse_model *m) { return m ? m->n_meta : 0; }

dse_status dse_model_metadata_at(const dse_model *m, size_t i, dse_meta *out) {
    if (!m || !out || i >= m->n_meta) return DSE_ERR_ARGUMENT;
    *out = m->meta[i];
    return DSE_OK;
}

dse_status dse_model_metadata(const dse_model *m, const char *key, dse_meta *out) {
    if (!m || !key || !out) return DSE_ERR_ARGUMENT;
    /* Strings are sorted and keys increasing (checked at load): binary search. */
    size_t lo = 0, hi = m->n_meta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->meta[mid].key, key);
        if (c == 0) { *out = m->meta[mid]; return DSE_OK; }
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return DSE_ERR_NOT_FOUND;
}

dse_status dse_session_create(const dse_model *m, void *arena, size_t arena_size, dse_session **out, dse_error *err) {
    return dse_session_create_ex(m, arena, arena_size, NULL, out, err);
}

dse_status dse_session_create_ex(const dse_model *m, void *arena, size_t arena_size, const dse_session_options *opt,
                                 dse_session **out, dse_error *err) {
    if (!m || !out) { dse__set_error(err, DSE_ERR_ARGUMENT, "model or out is NULL"); return DSE_ERR_ARGUMENT; }
    *out = NULL;
    /* options: a field past opt->struct_size (an older caller's struct) takes its default */
#define DSE_OPT(field, def) (opt && opt->struct_size >= offsetof(dse_session_options, field) + sizeof opt->field ? opt->field : (def))
    unsigned threads = DSE_OPT(threads, 1u);
#undef DSE_OPT
    if (threads > DSE_MAX_THREADS) { dse__set_error(err, DSE_ERR_ARGUMENT, "threads is %u, at most %d", threads, DSE_MAX_THREADS); return DSE_ERR_ARGUMENT; }
    if (arena && (uintptr_t)arena % DSE_ARENA_ALIGN) { dse__set_error(err, DSE_ERR_ALIGNMENT, "arena is not %d-byte aligned", DSE_ARENA_ALIGN); return DSE_ERR_ALIGNMENT; }
    if (arena && arena_size < m->arena_size) { dse__set_error(err, DSE_ERR_ARGUMENT, "arena has %zu bytes, the model needs %zu", arena_size, m->arena_size); return DSE_ERR_ARGUMENT; }
    dse_session *s = calloc(1, sizeof *s + m->n_inputs);
    if (!s) { dse__set_error(err, DSE_ERR_NOMEM, "out of memory"); return DSE_ERR_NOMEM; }
    s->m = m;
    s->input_set = (uint8_t *)(s + 1);
    if (!arena) {
        size_t n = (m->arena_size + DSE_ARENA_ALIGN - 1) / DSE_ARENA_ALIGN * DSE_ARENA_ALIGN;   /* loader bounds arena_size */
        arena = s->owned_arena = aligned_alloc(DSE_ARENA_ALIGN, n ? n : DSE_ARENA_ALIGN);
        if (!arena) { free(s); dse__set_error(err, DSE_ERR_NOMEM, "cannot allocate a %zu-byte arena", m->arena_size); return DSE_ERR_NOMEM; }
        memset(arena, 0, n ? n : DSE_ARENA_ALIGN);
    }
    s->arena = arena;
    if (threads > 1) {   /* each extra worker gets a scratch buffer the size of the largest node's */
        size_t most = 0;
        for (size_t k = 0; k < m->n_nodes; k++) if (m->nodes[k].scratch > most) most = m->nodes[k].scratch;
        if (dse__pool_create(threads, most, &s->pool) != DSE_OK) {
            dse_session_free(s);
            dse__set_error(err, DSE_ERR_NOMEM, "cannot start %u threads", threads);
            return DSE_ERR_NOMEM;
        }
    }
    *out = s;
    return DSE_OK;
}

unsigned dse_session_threads(const dse_session *s) {
    dse_ctx cx = {NULL, s ? s->pool : NULL};
    return s ? dse__threads(&cx) : 0;
}

void dse_session_free(dse_session *s) {
    if (!s) return;
    dse__pool_free(s->pool);
    free(s->owned_arena);
    free(s);
}

dse_status dse_session_set_input(dse_session *s, size_t i, const void *data, size_t nbytes, dse_error *err) {
    if (!s || i >= s->m->n_inputs || (!data && nbytes)) { dse__set_error(err, DSE_ERR_ARGUMENT, "bad session, input index or data"); return DSE_ERR_ARGUMENT; }
    const dse_tensor *t = &s->m->tensors[s->m->inputs[i]];
    if (nbytes != t->nbytes) { dse__set_error(err, DSE_ERR_ARGUMENT, "input %zu (%s) takes %zu bytes, got %zu", i, t->name, t->nbytes, nbytes); return DSE_ERR_ARGUMENT; }
    /* Guard (docs/format.md 4.2): an input pinned at export (metadata "guard.<input name>",
     * BYTES = the value it was specialised to) accepts only that value. */
    for (size_t k = 0; k < s->m->n_meta; k++) {
        const dse_meta *g = &s->m->meta[k];
        if (g->type != DSE_META_BYTES || strncmp(g->key, "guard.", 6) != 0 || strcmp(g->key + 6, t->name) != 0) continue;
        if (g->size != nbytes || (nbytes && memcmp(g->bytes, data, nbytes) != 0)) {
            dse__set_error(err, DSE_ERR_ARGUMENT, "input %zu (%s): this model was specialised at export to one value of "
                           "this input (metadata %s) and cannot run with another; re-export it for the value you use",
                           i, t->name, g->key);
            return DSE_ERR_ARGUMENT;
        }
    }
    if (nbytes) memcpy(s->arena + t->offset, data, nbytes);
    s->input_set[i] = 1;
    return DSE_OK;
}

/* The run loop; node_ns (dse_session_run_profile): also time each node. */
static dse_status session_run(dse_session *s, uint64_t *node_ns, dse_error *err) {
    if (!s) { dse__set_error(err, DSE_ERR_ARGUMENT, "session is NULL"); return DSE_ERR_ARGUMENT; }
    const dse_model *m = s->m;
    for (size_t i = 0; i < m->n_inputs; i++)
        if (!s->input_set[i]) { dse__set_error(err, DSE_ERR_STATE, "input %zu (%s) was not set", i, m->tensors[m->inputs[i]].name); return DSE_ERR_STATE; }
    dse_ctx cx = {s->arena + m->scratch_offset, s->pool};
    uint64_t t0 = 0, t1 = 0;
    if (node_ns && !dse__clock_ns(&t0)) {
        dse__set_error(err, DSE_ERR_UNSUPPORTED, "no monotonic clock on this platform: cannot time nodes");
        return DSE_ERR_UNSUPPORTED;
    }
    for (size_t k = 0; k < m->n_nodes; k++) {
        dse__kernel_run(m->nodes[k].kernel, m, &m->nodes[k], s->arena, &cx);
        if (node_ns) {
            dse__clock_ns(&t1);
            node_ns[k] = t1 - t0;
            t0 = t1;
        }
    }
    return DSE_OK;
}

dse_status dse_session_run(dse_session *s, dse_error *err) { return session_run(s, NULL, err); }

dse_status dse_session_run_profile(dse_session *s, uint64_t *node_ns, dse_error *err) {
    if (s && !node_ns && s->m->n_nodes) { dse__set_error(err, DSE_ERR_ARGUMENT, "node_ns is NULL"); return DSE_ERR_ARGUMENT; }
    uint64_t dummy;
    return session_run(s, node_ns ? node_ns : &dummy, err);
}

dse_status dse_session_get_output(const dse_session *s, size_t i, const void **data, size_t *nbytes) {
    if (!s || !data || i >= s->m->n_outputs) return DSE_ERR_ARGUMENT;
    uint32_t idx = s->m->outputs[i];
    *data = dse__data(s->m, s->arena, idx);
    if (nbytes) *nbytes = s->m->tensors[idx].nbytes;
    return DSE_OK;
}
