/* pool.c: the session's thread pool (dse__parallel, internal.h). */
#include "internal.h"

unsigned dse__threads(const dse_ctx *cx) { (void)cx; return 1; }

void dse__parallel(const dse_ctx *cx, size_t count, size_t grain, dse_task_fn fn, void *arg) {
    (void)cx, (void)grain;
    if (count) fn(arg, 0, count, 0);
}

uint8_t *dse__worker_scratch(const dse_ctx *cx, unsigned worker) { (void)worker; return cx->scratch; }
