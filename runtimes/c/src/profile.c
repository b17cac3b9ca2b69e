/* profile.c: per-node queries (op, name, the kernel chosen at load) and the monotonic clock that
 * dse_session_run_profile (session.c) times each node with.
 *
 * The clock is POSIX clock_gettime(CLOCK_MONOTONIC) on Unix-like systems (Linux, Android,
 * macOS, the BSDs); elsewhere, or built with -DDSE_NO_CLOCK, there is none and profiling
 * returns DSE_ERR_UNSUPPORTED (plain runs are unaffected). */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "internal.h"

#if (defined(__unix__) || defined(__APPLE__)) && !defined(DSE_NO_CLOCK)
#include <time.h>
#endif

int dse__clock_ns(uint64_t *ns) {
#if (defined(__unix__) || defined(__APPLE__)) && !defined(DSE_NO_CLOCK) && defined(CLOCK_MONOTONIC)
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    *ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return 1;
#else
    (void)ns;
    return 0;
#endif
}

int dse_model_node_op(const dse_model *m, size_t i) { return m && i < m->n_nodes ? (int)m->nodes[i].op : -1; }

const char *dse_model_node_name(const dse_model *m, size_t i) {
    return m && i < m->n_nodes ? (m->nodes[i].name ? m->nodes[i].name : "") : NULL;
}

const char *dse_model_node_kernel(const dse_model *m, size_t i) {
    return m && i < m->n_nodes ? dse__kernel_name(m->nodes[i].kernel) : NULL;
}

const char *dse_model_node_isa(const dse_model *m, size_t i) {
    return m && i < m->n_nodes ? dse__isa_name(dse__kernel_isa(m->nodes[i].kernel)) : NULL;
}
