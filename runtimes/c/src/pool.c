/* pool.c: the session's thread pool (dse__parallel, internal.h).
 *
 * A session created with threads = T > 1 owns T - 1 worker threads, started by
 * dse_session_create_ex and joined by dse_session_free; the thread that calls
 * dse_session_run is worker 0. Everything a run needs (threads, their scratch buffers, the
 * synchronisation objects) is made at session creation: dse__parallel never allocates.
 *
 * dse__parallel(cx, count, grain, fn, arg) cuts [0, count) into `chunks` consecutive ranges,
 * chunks = min(T, count / grain) (so each is >= grain items), sizes differing by at most one,
 * range w on worker w: a static partition, the same for every run. The caller runs range 0,
 * then every range whose worker has not started it yet (a CAS on the slot's `claim` decides
 * who runs it: a worker that is asleep or has no CPU, e.g. while another library's threads
 * spin on a 2-core machine, costs a scheduler time slice of waiting otherwise), then waits
 * for the ranges in progress. Which thread runs a range never changes its bytes. A call made while one is in progress (from inside fn, on any
 * worker) runs serially on its thread. Kernels split their work so that each range writes
 * its own bytes, computed in the same order whatever the partition: the output does not
 * depend on T.
 *
 * Hand-off (a kernel calls dse__parallel once per node, hundreds of times per inference):
 * each worker has its own slot (cache line) with a ticket the caller increments to give it
 * range w of the current task. A worker spins on its ticket for a while (DSE_POOL_SPIN_WORKER
 * steps, a fraction of a millisecond: long enough to cover the serial nodes between two
 * parallel ones) and then sleeps on its slot's condition variable; the caller signals only a worker
 * that said it sleeps. The caller waits for the `pending` count the same way. Sequentially
 * consistent atomics on (ticket, sleeping) and (pending, caller_sleeping) rule out a lost
 * wake-up: of the two sides, at least one sees the other's store. With more threads than
 * online CPUs nobody spins (a spinner would take the CPU a working thread needs).
 *
 * Threads need POSIX threads and C11 atomics (Linux, Android, macOS, the BSDs); elsewhere,
 * or with -DDSE_NO_THREADS, sessions run serially whatever `threads` says. */
#include <stdlib.h>

#include "internal.h"

#if !defined(DSE_NO_THREADS) && !defined(__STDC_NO_ATOMICS__) && (defined(__unix__) || defined(__APPLE__)) && \
    !(defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__))
#define DSE_POOL_THREADS 1
#else
#define DSE_POOL_THREADS 0
#endif

#if DSE_POOL_THREADS
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define DSE_POOL_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
#define DSE_POOL_RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define DSE_POOL_RELAX() ((void)0)
#endif

/* Spin-wait steps before sleeping: a step is a pause (x86 `pause`: 35 ns on the EPYC this was
 * measured on, ~3 ns on pre-Skylake Intel; arm `yield`: ~1 ns), every 64th a sched_yield
 * (~0.5 us), so 16384 steps are ~0.7 ms on that EPYC and ~0.3 ms on an arm64 core: longer
 * than the serial nodes between two parallel ones. runtimes/c/README.md, "Threads". -D to tune. */
#ifndef DSE_POOL_SPIN_WORKER
#define DSE_POOL_SPIN_WORKER 16384
#endif
#ifndef DSE_POOL_SPIN_CALLER
#define DSE_POOL_SPIN_CALLER 65536
#endif
#define DSE_POOL_STACK ((size_t)1 << 20)                /* virtual; only touched pages count */

typedef struct dse_pool_slot {
    atomic_uint ticket;      /* incremented by the caller: run your range of the current task */
    atomic_uint claim;       /* the last ticket whose range was taken (by this worker, or by the
                              * caller when the worker had not started it): one CAS decides */
    atomic_int sleeping;     /* 1 while the worker waits on cv (or is about to) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t tid;
    dse_pool *pool;
    unsigned index;
    int started;
    char pad_[64];           /* keeps two workers' slots off one cache line */
} dse_pool_slot;

struct dse_pool {
    unsigned n;              /* threads, the caller's included */
    int spin;                /* pauses a worker spins before it sleeps; 0 (with more threads than
                              * CPUs): workers and caller sleep at once */
    size_t stride;           /* bytes of scratch per extra worker */
    uint8_t *scratch;        /* (n - 1) * stride */
    dse_pool_slot *slots;         /* [1, n): the workers' */
    /* the current task: written by the caller before it hands out tickets */
    dse_task_fn fn;
    void *arg;
    size_t count;
    unsigned chunks;
    atomic_int active;       /* a task is in progress: nested calls run serially */
    atomic_int stop;
    char pad0_[64];
    atomic_uint pending;     /* ranges of the current task the workers have not finished */
    atomic_int caller_sleeping;
    pthread_mutex_t dmu;
    pthread_cond_t dcv;
};

/* One step of a spin-wait: a pause, and every 64th step a yield (a thread with work to do
 * gets this CPU on a busy machine; returns at once on an idle one). */
static void pool_pause(int i) {
    if (i % 64) DSE_POOL_RELAX();
    else sched_yield();
}

static void pool_range(size_t count, unsigned chunks, unsigned w, size_t *b, size_t *e) {
    size_t base = count / chunks, rem = count % chunks;
    *b = w * base + (w < rem ? w : rem);
    *e = *b + base + (w < rem);
}

static void pool_worker_done(dse_pool *p) {
    if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping)) {
        pthread_mutex_lock(&p->dmu);
        pthread_cond_signal(&p->dcv);
        pthread_mutex_unlock(&p->dmu);
    }
}

static void *pool_worker_main(void *arg) {
    dse_pool_slot *s = arg;
    dse_pool *p = s->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned t = atomic_load_explicit(&s->ticket, memory_order_acquire);
        for (int i = 1; t == seen && i <= p->spin && !atomic_load_explicit(&p->stop, memory_order_relaxed); i++) {
            pool_pause(i);
            t = atomic_load_explicit(&s->ticket, memory_order_acquire);
        }
        if (t == seen) {
            pthread_mutex_lock(&s->mu);
            atomic_store(&s->sleeping, 1);
            while ((t = atomic_load(&s->ticket)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&s->cv, &s->mu);
            atomic_store(&s->sleeping, 0);
            pthread_mutex_unlock(&s->mu);
        }
        if (t == seen) return NULL;   /* stop */
        seen = t;
        unsigned prev = t - 1;
        if (!atomic_compare_exchange_strong(&s->claim, &prev, t)) continue;   /* the caller ran it */
        size_t b, e;
        pool_range(p->count, p->chunks, s->index, &b, &e);
        p->fn(p->arg, b, e, s->index);
        pool_worker_done(p);
    }
}

static unsigned pool_online_cpus(void) {
#if defined(_SC_NPROCESSORS_ONLN)
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (unsigned)c : 1;
#else
    return 1;
#endif
}

dse_status dse__pool_create(unsigned threads, size_t scratch, dse_pool **out) {
    *out = NULL;
    if (threads <= 1) return DSE_OK;
    dse_pool *p = calloc(1, sizeof *p);
    if (!p) return DSE_ERR_NOMEM;
    p->n = 1;   /* grows as workers start: dse__pool_free joins those */
    p->spin = threads <= pool_online_cpus() ? DSE_POOL_SPIN_WORKER : 0;
    p->stride = (scratch + DSE_ARENA_ALIGN - 1) / DSE_ARENA_ALIGN * DSE_ARENA_ALIGN;
    atomic_init(&p->active, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->caller_sleeping, 0);
    int ok = pthread_mutex_init(&p->dmu, NULL) == 0;
    if (ok && pthread_cond_init(&p->dcv, NULL) != 0) { pthread_mutex_destroy(&p->dmu); ok = 0; }
    if (!ok) { free(p); return DSE_ERR_NOMEM; }
    p->slots = calloc(threads, sizeof *p->slots);
    if (p->stride && p->slots) p->scratch = aligned_alloc(DSE_ARENA_ALIGN, p->stride * (threads - 1));
    if (!p->slots || (p->stride && !p->scratch)) { dse__pool_free(p); return DSE_ERR_NOMEM; }
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr) pthread_attr_setstacksize(&attr, DSE_POOL_STACK);   /* else the default size */
    for (unsigned w = 1; w < threads; w++) {
        dse_pool_slot *s = &p->slots[w];
        atomic_init(&s->ticket, 0);
        atomic_init(&s->claim, 0);
        atomic_init(&s->sleeping, 0);
        s->pool = p;
        s->index = w;
        if (pthread_mutex_init(&s->mu, NULL) != 0) break;
        if (pthread_cond_init(&s->cv, NULL) != 0) { pthread_mutex_destroy(&s->mu); break; }
        if (pthread_create(&s->tid, have_attr ? &attr : NULL, pool_worker_main, s) != 0) {
            pthread_cond_destroy(&s->cv);
            pthread_mutex_destroy(&s->mu);
            break;
        }
        s->started = 1;
        p->n = w + 1;
    }
    if (have_attr) pthread_attr_destroy(&attr);
    if (p->n != threads) { dse__pool_free(p); return DSE_ERR_NOMEM; }
    *out = p;
    return DSE_OK;
}

void dse__pool_free(dse_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, 1);
    for (unsigned w = 1; w < p->n; w++) {
        dse_pool_slot *s = &p->slots[w];
        pthread_mutex_lock(&s->mu);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    for (unsigned w = 1; w < p->n; w++) {
        dse_pool_slot *s = &p->slots[w];
        pthread_join(s->tid, NULL);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    pthread_cond_destroy(&p->dcv);
    pthread_mutex_destroy(&p->dmu);
    free(p->scratch);
    free(p->slots);
    free(p);
}

unsigned dse__threads(const dse_ctx *cx) { return cx && cx->pool ? cx->pool->n : 1; }

/* The worker running on this thread, for a nested call (0 if it is none of them). */
static unsigned pool_self_index(const dse_pool *p) {
    pthread_t me = pthread_self();
    for (unsigned w = 1; w < p->n; w++)
        if (pthread_equal(me, p->slots[w].tid)) return w;
    return 0;
}

void dse__parallel(const dse_ctx *cx, size_t count, size_t grain, dse_task_fn fn, void *arg) {
    if (!count) return;
    dse_pool *p = cx ? cx->pool : NULL;
    if (!grain) grain = 1;
    size_t most = count / grain;
    unsigned chunks = !p ? 1 : most < p->n ? (unsigned)most : p->n;
    if (chunks <= 1) {
        fn(arg, 0, count, p && atomic_load_explicit(&p->active, memory_order_relaxed) ? pool_self_index(p) : 0);
        return;
    }
    if (atomic_load_explicit(&p->active, memory_order_relaxed)) {   /* nested: serially, on this thread */
        fn(arg, 0, count, pool_self_index(p));
        return;
    }
    atomic_store_explicit(&p->active, 1, memory_order_relaxed);
    p->fn = fn, p->arg = arg, p->count = count, p->chunks = chunks;
    atomic_store_explicit(&p->pending, chunks - 1, memory_order_relaxed);
    for (unsigned w = 1; w < chunks; w++) {
        dse_pool_slot *s = &p->slots[w];
        atomic_fetch_add(&s->ticket, 1);   /* seq_cst: publishes the task (release) */
        if (atomic_load(&s->sleeping)) {
            pthread_mutex_lock(&s->mu);
            pthread_cond_signal(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
    }
    size_t b, e;
    pool_range(count, chunks, 0, &b, &e);
    fn(arg, b, e, 0);
    /* A range whose worker has not started it yet (asleep, or descheduled on a busy machine)
     * runs here: waiting for a thread that has no CPU costs a scheduler time slice (ms). */
    for (unsigned w = 1; w < chunks; w++) {
        dse_pool_slot *s = &p->slots[w];
        unsigned t = atomic_load_explicit(&s->ticket, memory_order_relaxed), prev = t - 1;   /* only we write it */
        if (atomic_load_explicit(&s->claim, memory_order_relaxed) != prev) continue;
        if (!atomic_compare_exchange_strong(&s->claim, &prev, t)) continue;
        pool_range(count, chunks, w, &b, &e);
        fn(arg, b, e, 0);
        atomic_fetch_sub(&p->pending, 1);
    }
    for (int i = 1, n = p->spin ? DSE_POOL_SPIN_CALLER : 0; i <= n && atomic_load_explicit(&p->pending, memory_order_acquire); i++)
        pool_pause(i);
    if (atomic_load(&p->pending)) {
        pthread_mutex_lock(&p->dmu);
        atomic_store(&p->caller_sleeping, 1);
        while (atomic_load(&p->pending)) pthread_cond_wait(&p->dcv, &p->dmu);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->dmu);
    }
    atomic_store_explicit(&p->active, 0, memory_order_relaxed);
}

uint8_t *dse__worker_scratch(const dse_ctx *cx, unsigned worker) {
    if (!worker || !cx->pool || worker >= cx->pool->n) return cx->scratch;
    return cx->pool->scratch + (size_t)(worker - 1) * cx->pool->stride;
}

#else /* serial: no threads on this target */

struct dse_pool { int unused; };

dse_status dse__pool_create(unsigned threads, size_t scratch, dse_pool **out) {
    (void)threads, (void)scratch;
    *out = NULL;
    return DSE_OK;
}

void dse__pool_free(dse_pool *p) { (void)p; }

unsigned dse__threads(const dse_ctx *cx) { (void)cx; return 1; }

void dse__parallel(const dse_ctx *cx, size_t count, size_t grain, dse_task_fn fn, void *arg) {
    (void)cx, (void)grain;
    if (count) fn(arg, 0, count, 0);
}

uint8_t *dse__worker_scratch(const dse_ctx *cx, unsigned worker) { (void)worker; return cx->scratch; }

#endif
