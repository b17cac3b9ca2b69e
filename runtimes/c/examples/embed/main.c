/* main.c: the smallest complete app that embeds the dsedge runtime (see CMakeLists.txt).
 *
 *   embed MODEL.dse [INPUT0.bin ...]
 *
 * Loads the model (memory-mapped), creates a session with a runtime-allocated arena, sets
 * every input — from a raw little-endian file of exactly the input's byte size when one is
 * given, else a deterministic test pattern (element i of every input: float32/float16 from
 * ((i * 7) % 13 - 6) / 4, integer types (i * 7) % 13 - 6, bool i % 2) — runs one inference and
 * prints each output as one line
 *     output <name> <dtype> [dims] bytes=<n> fnv1a=<64-bit FNV-1a hash of the output bytes>
 * followed by up to its first 8 values. The hash lets a test compare the bytes computed on one
 * target (e.g. arm64 under qemu) with those of another without shipping files around. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsedge.h"

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* IEEE half -> float, exact (for printing float16 outputs and making float16 inputs). */
static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    if (e == 0) {
        if (m == 0) bits = s;
        else { e = 113; while (!(m & 1024)) { m <<= 1; e--; } bits = s | e << 23 | (m & 1023) << 13; }
    } else if (e == 31) bits = s | 0x7f800000u | m << 13;
    else bits = s | (e + 112) << 23 | m << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t quarter_to_half(int q) {   /* q / 4 for |q| <= 6, exactly representable */
    if (q == 0) return 0;
    uint16_t s = q < 0 ? 0x8000 : 0;
    int a = q < 0 ? -q : q, e = 0;
    while ((a >> e) > 1) e++;                               /* a in [2^e, 2^(e+1)) */
    uint16_t m = (uint16_t)(((a << 10) >> e) & 1023);
    return (uint16_t)(s | (uint16_t)(e - 2 + 15) << 10 | m);
}

static void fill_pattern(void *buf, int dtype, size_t nbytes) {
    size_t bits = 8;
    switch (dtype) {
        case DSE_DTYPE_FLOAT32: case DSE_DTYPE_INT32: case DSE_DTYPE_UINT32: bits = 32; break;
        case DSE_DTYPE_FLOAT16: case DSE_DTYPE_INT16: case DSE_DTYPE_UINT16: bits = 16; break;
        case DSE_DTYPE_FLOAT64: case DSE_DTYPE_INT64: case DSE_DTYPE_UINT64: bits = 64; break;
        default: break;
    }
    size_t n = nbytes * 8 / bits;
    for (size_t i = 0; i < n; i++) {
        int q = (int)((i * 7) % 13) - 6;
        uint8_t *p = (uint8_t *)buf + i * bits / 8;
        switch (dtype) {
            case DSE_DTYPE_FLOAT32: { float f = (float)q / 4.0f; memcpy(p, &f, 4); break; }
            case DSE_DTYPE_FLOAT64: { double d = q / 4.0; memcpy(p, &d, 8); break; }
            case DSE_DTYPE_FLOAT16: { uint16_t h = quarter_to_half(q); memcpy(p, &h, 2); break; }
            case DSE_DTYPE_INT32: case DSE_DTYPE_UINT32: { int32_t v = q; memcpy(p, &v, 4); break; }
            case DSE_DTYPE_INT16: case DSE_DTYPE_UINT16: { int16_t v = (int16_t)q; memcpy(p, &v, 2); break; }
            case DSE_DTYPE_INT64: case DSE_DTYPE_UINT64: { int64_t v = q; memcpy(p, &v, 8); break; }
            case DSE_DTYPE_BOOL: *p = (uint8_t)(i % 2); break;
            default: *p = (uint8_t)(int8_t)q; break;
        }
    }
}

static void print_values(const void *data, int dtype, size_t nbytes) {
    for (size_t i = 0; i < 8; i++) {
        const uint8_t *p = (const uint8_t *)data;
        if (dtype == DSE_DTYPE_FLOAT32 && (i + 1) * 4 <= nbytes) { float f; memcpy(&f, p + 4 * i, 4); printf(" %.9g", (double)f); }
        else if (dtype == DSE_DTYPE_FLOAT16 && (i + 1) * 2 <= nbytes) { uint16_t h; memcpy(&h, p + 2 * i, 2); printf(" %.9g", (double)half_to_float(h)); }
        else if (dtype == DSE_DTYPE_INT8 && i < nbytes) printf(" %d", (int)(int8_t)p[i]);
        else if (dtype == DSE_DTYPE_UINT8 && i < nbytes) printf(" %d", (int)p[i]);
        else if (dtype == DSE_DTYPE_INT32 && (i + 1) * 4 <= nbytes) { int32_t v; memcpy(&v, p + 4 * i, 4); printf(" %ld", (long)v); }
        else if (dtype == DSE_DTYPE_INT64 && (i + 1) * 8 <= nbytes) { int64_t v; memcpy(&v, p + 8 * i, 8); printf(" %lld", (long long)v); }
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s MODEL.dse [INPUT0.bin ...]\n", argv[0]); return 2; }
    dse_model *m = NULL;
    dse_session *s = NULL;
    dse_error e;
    void *buf = NULL;
    int rc = 1;
    if (dse_model_load_file(argv[1], 0, &m, &e) != DSE_OK) { fprintf(stderr, "%s: %s\n", argv[1], e.message); return 1; }
    printf("dsedge %s: %s, %zu nodes, arena %zu bytes\n", dse_version(), argv[1], dse_model_node_count(m), dse_arena_size(m));
    if (dse_session_create(m, NULL, 0, &s, &e) != DSE_OK) { fprintf(stderr, "%s\n", e.message); goto done; }
    for (size_t i = 0; i < dse_model_input_count(m); i++) {
        dse_tensor_info t;
        dse_model_input(m, i, &t);
        free(buf);
        buf = calloc(1, t.nbytes ? t.nbytes : 1);
        if (!buf) { fprintf(stderr, "out of memory\n"); goto done; }
        if ((int)i + 2 < argc) {
            FILE *f = fopen(argv[i + 2], "rb");
            size_t got = f ? fread(buf, 1, t.nbytes, f) : 0;
            int extra = f ? fgetc(f) != EOF : 0;
            if (f) fclose(f);
            if (!f || got != t.nbytes || extra) { fprintf(stderr, "%s: needs exactly %zu bytes for input %s\n", argv[i + 2], t.nbytes, t.name); goto done; }
        } else {
            fill_pattern(buf, t.dtype, t.nbytes);
        }
        if (dse_session_set_input(s, i, buf, t.nbytes, &e) != DSE_OK) { fprintf(stderr, "%s\n", e.message); goto done; }
    }
    if (dse_session_run(s, &e) != DSE_OK) { fprintf(stderr, "run: %s\n", e.message); goto done; }
    for (size_t i = 0; i < dse_model_output_count(m); i++) {
        dse_tensor_info t;
        const void *data;
        size_t nbytes;
        dse_model_output(m, i, &t);
        dse_session_get_output(s, i, &data, &nbytes);
        printf("output %s %s [", t.name, dse_dtype_name(t.dtype));
        for (size_t d = 0; d < t.rank; d++) printf(d ? ", %zu" : "%zu", t.dims[d]);
        printf("] bytes=%zu fnv1a=%016llx\n", nbytes, (unsigned long long)fnv1a(data, nbytes));
        print_values(data, t.dtype, nbytes);
    }
    rc = 0;
done:
    free(buf);
    dse_session_free(s);
    dse_model_free(m);
    return rc;
}
