/* threads_stress.c: a session's threads (src/pool.c) under stress, for sanitizer builds.
 *
 *     threads_stress model.dse [rounds]
 *
 * Fills every input with a fixed pattern, takes the outputs of a one-thread session as the
 * reference, then checks that the same bytes come out of: sessions of 1..16 threads created,
 * run and freed again and again (ASan: no leak, no use after free); several application
 * threads each running its own multi-threaded session of the shared model at once; one session
 * running many times back to back; a session on a caller-supplied arena. Prints "ok" and exits
 * 0, or names the first mismatch and exits 1. Used by tests/runtime/test_pool.py. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsedge.h"

static dse_model *stress_model;
static void **stress_inputs, **stress_want;
static size_t *stress_in_bytes, *stress_want_bytes, stress_n_in, stress_n_out;
static int stress_rounds = 4;

static void stress_fill(const dse_tensor_info *t, uint8_t *p) {
    for (size_t i = 0; i < t->nbytes; i++) p[i] = (uint8_t)(i * 37 + 11);
    if (t->dtype == DSE_DTYPE_FLOAT32)
        for (size_t i = 0; i < t->nbytes / 4; i++) ((float *)p)[i] = (float)((int)(i * 7 % 13) - 6) / 4.0f;
    if (t->dtype == DSE_DTYPE_INT64)
        for (size_t i = 0; i < t->nbytes / 8; i++) ((int64_t *)p)[i] = (int64_t)(i % 7);
    if (t->dtype == DSE_DTYPE_INT32)
        for (size_t i = 0; i < t->nbytes / 4; i++) ((int32_t *)p)[i] = (int32_t)(i % 7);
}

/* Runs s `times` times; 0 when every output equals the reference. */
static int stress_check(dse_session *s, int times, const char *what) {
    dse_error e;
    for (int r = 0; r < times; r++) {
        for (size_t i = 0; i < stress_n_in; i++)
            if (dse_session_set_input(s, i, stress_inputs[i], stress_in_bytes[i], &e) != DSE_OK) { fprintf(stderr, "%s: %s\n", what, e.message); return 1; }
        if (dse_session_run(s, &e) != DSE_OK) { fprintf(stderr, "%s: run: %s\n", what, e.message); return 1; }
        for (size_t i = 0; i < stress_n_out; i++) {
            const void *y;
            size_t ny;
            dse_session_get_output(s, i, &y, &ny);
            if (ny != stress_want_bytes[i] || memcmp(y, stress_want[i], ny) != 0) {
                fprintf(stderr, "%s: output %zu differs from the one-thread run (threads %u, run %d)\n", what, i,
                        dse_session_threads(s), r);
                return 1;
            }
        }
    }
    return 0;
}

static dse_session *stress_make(unsigned threads, void *arena, size_t arena_size) {
    dse_session_options o = {sizeof o, threads};
    dse_session *s = NULL;
    dse_error e;
    if (dse_session_create_ex(stress_model, arena, arena_size, &o, &s, &e) != DSE_OK) {
        fprintf(stderr, "create (threads %u): %s\n", threads, e.message);
        return NULL;
    }
    return s;
}

static void *stress_app_thread(void *arg) {
    unsigned threads = (unsigned)(uintptr_t)arg;
    dse_session *s = stress_make(threads, NULL, 0);
    int bad = !s || stress_check(s, 3 * stress_rounds, "parallel sessions");
    dse_session_free(s);
    return (void *)(uintptr_t)bad;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: threads_stress model.dse [rounds]\n"); return 2; }
    if (argc > 2) stress_rounds = atoi(argv[2]);
    dse_error e;
    if (dse_model_load_file(argv[1], 0, &stress_model, &e) != DSE_OK) { fprintf(stderr, "load: %s\n", e.message); return 1; }
    stress_n_in = dse_model_input_count(stress_model);
    stress_n_out = dse_model_output_count(stress_model);
    stress_inputs = calloc(stress_n_in + 1, sizeof *stress_inputs);
    stress_want = calloc(stress_n_out + 1, sizeof *stress_want);
    stress_in_bytes = calloc(stress_n_in + 1, sizeof *stress_in_bytes);
    stress_want_bytes = calloc(stress_n_out + 1, sizeof *stress_want_bytes);
    for (size_t i = 0; i < stress_n_in; i++) {
        dse_tensor_info t;
        dse_model_input(stress_model, i, &t);
        stress_inputs[i] = malloc(t.nbytes + 1);
        stress_in_bytes[i] = t.nbytes;
        stress_fill(&t, stress_inputs[i]);
    }
    dse_session *s = stress_make(1, NULL, 0);
    if (!s) return 1;
    for (size_t i = 0; i < stress_n_in; i++) dse_session_set_input(s, i, stress_inputs[i], stress_in_bytes[i], &e);
    if (dse_session_run(s, &e) != DSE_OK) { fprintf(stderr, "run: %s\n", e.message); return 1; }
    for (size_t i = 0; i < stress_n_out; i++) {
        const void *y;
        dse_session_get_output(s, i, &y, &stress_want_bytes[i]);
        stress_want[i] = malloc(stress_want_bytes[i] + 1);
        memcpy(stress_want[i], y, stress_want_bytes[i]);
    }
    dse_session_free(s);

    int bad = 0;
    /* sessions created, run and freed again and again, 1..16 threads (more than the CPUs) */
    static const unsigned counts[] = {1, 2, 3, 4, 5, 7, 8, 16, 0};
    for (int r = 0; r < stress_rounds && !bad; r++)
        for (int k = 0; counts[k] && !bad; k++) {
            s = stress_make(counts[k], NULL, 0);
            bad = !s || stress_check(s, 2, "create/free");
            dse_session_free(s);
        }
    /* a session created and freed without ever running */
    for (int r = 0; r < stress_rounds && !bad; r++) dse_session_free(stress_make(4, NULL, 0));
    /* application threads, each with its own multi-threaded session of the shared stress_model */
    enum { APPS = 4 };
    pthread_t th[APPS];
    int started = 0;
    while (!bad && started < APPS) {   /* threads 1, 3, 5, 1 */
        if (pthread_create(&th[started], NULL, stress_app_thread, (void *)(uintptr_t)(1 + started % 3 * 2))) bad = 1;
        else started++;
    }
    for (int a = 0; a < started; a++) {
        void *res = NULL;
        pthread_join(th[a], &res);
        bad |= res != NULL;
    }
    /* one session, many runs back to back */
    if (!bad) {
        s = stress_make(3, NULL, 0);
        bad = !s || stress_check(s, 20 * stress_rounds, "back to back");
        dse_session_free(s);
    }
    /* a caller-supplied arena */
    if (!bad) {
        size_t n = (dse_arena_size(stress_model) + DSE_ARENA_ALIGN - 1) / DSE_ARENA_ALIGN * DSE_ARENA_ALIGN;
        void *arena = aligned_alloc(DSE_ARENA_ALIGN, n ? n : DSE_ARENA_ALIGN);
        s = stress_make(2, arena, n);
        bad = !s || stress_check(s, 2, "caller arena");
        dse_session_free(s);
        free(arena);
    }
    for (size_t i = 0; i < stress_n_in; i++) free(stress_inputs[i]);
    for (size_t i = 0; i < stress_n_out; i++) free(stress_want[i]);
    free(stress_inputs), free(stress_want), free(stress_in_bytes), free(stress_want_bytes);
    dse_model_free(stress_model);
    if (bad) return 1;
    puts("ok");
    return 0;
}
