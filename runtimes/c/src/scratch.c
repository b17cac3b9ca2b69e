/* scratch.c: may a node use the first bytes of the plan's scratch region? (internal.h)
 *
 * The exporter plans each node's scratch by its kernel's formula (dsedge/export/scratch.py)
 * and lets tensors share the rest of the scratch region while that node runs. An optimised
 * kernel variant whose scratch exceeds what an older plan gave the node must not assume the
 * region is free just because scratch_size (another node's need) is large enough: this scan
 * finds whether any ARENA tensor live at the node overlaps the bytes it would use. */
#include <stdlib.h>

#include "internal.h"

static int scratch_hits(const dse_model *m, uint32_t t, size_t lo, size_t hi) {
    if (t == DSE_NONE) return 0;
    const dse_tensor *x = &m->tensors[t];
    return x->storage == DSE_STORAGE_ARENA && x->nbytes && x->offset < hi && lo < x->offset + x->nbytes;
}

int dse__scratch_free(const dse_model *m, const dse_node *n, size_t bytes) {
    if (!bytes) return 1;
    if (bytes > m->scratch_size || n < m->nodes || n >= m->nodes + m->n_nodes) return 0;
    const size_t k = (size_t)(n - m->nodes), lo = m->scratch_offset, hi = lo + bytes;
    uint8_t *born = calloc(m->n_tensors ? m->n_tensors : 1, 1);   /* produced at or before node k */
    if (!born) return 0;
    int busy = 0;
    for (size_t i = 0; i < m->n_inputs && !busy; i++) busy = scratch_hits(m, m->inputs[i], lo, hi);   /* live all run */
    for (size_t j = 0; j <= k; j++)
        for (uint32_t o = 0; o < m->nodes[j].n_out; o++)
            if (m->nodes[j].out[o] != DSE_NONE) born[m->nodes[j].out[o]] = 1;
    for (size_t i = 0; i < m->n_outputs && !busy; i++) busy = born[m->outputs[i]] && scratch_hits(m, m->outputs[i], lo, hi);
    for (uint32_t o = 0; o < n->n_out && !busy; o++) busy = scratch_hits(m, n->out[o], lo, hi);
    for (size_t j = k; j < m->n_nodes && !busy; j++)
        for (uint32_t i = 0; i < m->nodes[j].n_in && !busy; i++) {
            const uint32_t t = m->nodes[j].in[i];
            busy = t != DSE_NONE && born[t] && scratch_hits(m, t, lo, hi);
        }
    free(born);
    return !busy;
}
