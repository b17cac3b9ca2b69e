/* npy.c: the .npy reader and writer of dsedge-run (format described in npy.h).
 *
 * Reading parses only what a .npy header may hold: the three keys 'descr', 'fortran_order'
 * and 'shape' of a dict literal, with single or double quotes and any spacing. Every size is
 * checked for overflow and the data length must equal the product of the shape times the item
 * size exactly, so a truncated or padded file is an error, not a wrong answer. */
#define _POSIX_C_SOURCE 200809L
#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { int dtype; const char *descr; size_t size; } TYPES[] = {
    {DSE_DTYPE_FLOAT32, "<f4", 4}, {DSE_DTYPE_FLOAT16, "<f2", 2}, {DSE_DTYPE_FLOAT64, "<f8", 8},
    {DSE_DTYPE_INT64, "<i8", 8},   {DSE_DTYPE_INT32, "<i4", 4},   {DSE_DTYPE_INT16, "<i2", 2},
    {DSE_DTYPE_INT8, "|i1", 1},    {DSE_DTYPE_UINT8, "|u1", 1},   {DSE_DTYPE_UINT16, "<u2", 2},
    {DSE_DTYPE_UINT32, "<u4", 4},  {DSE_DTYPE_UINT64, "<u8", 8},  {DSE_DTYPE_BOOL, "|b1", 1},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

const char *npy_descr(int dtype) {
    for (size_t i = 0; i < NTYPES; i++)
        if (TYPES[i].dtype == dtype) return TYPES[i].descr;
    return NULL;
}

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Find `'key'` (or "key") followed by ':' in [p, end); returns the position after the ':'. */
static const char *find_key(const char *p, const char *end, const char *key) {
    size_t k = strlen(key);
    for (; p + k + 2 <= end; p++) {
        if ((*p == '\'' || *p == '"') && memcmp(p + 1, key, k) == 0 && p[k + 1] == *p) {
            const char *q = skip_ws(p + k + 2, end);
            if (q < end && *q == ':') return skip_ws(q + 1, end);
        }
    }
    return NULL;
}

static int parse_header(const char *h, size_t len, npy_array *out, size_t *itemsize, char *msg, size_t cap) {
    const char *end = h + len, *p;
    if (!(p = find_key(h, end, "descr")) || (*p != '\'' && *p != '"')) { snprintf(msg, cap, "header has no 'descr'"); return 1; }
    char q = *p++;
    const char *s = p;
    while (p < end && *p != q) p++;
    if (p >= end) { snprintf(msg, cap, "unterminated 'descr'"); return 1; }
    size_t dl = (size_t)(p - s);
    char descr[16] = {0};
    if (dl == 0 || dl >= sizeof descr) { snprintf(msg, cap, "unsupported descr"); return 1; }
    memcpy(descr, s, dl);
    descr[dl] = 0;
    /* '=' (native) is little-endian on every target; one-byte types may be written '<i1' */
    if (dl == 3 && (descr[0] == '=' || descr[0] == '<' || descr[0] == '|')) descr[0] = descr[2] == '1' ? '|' : '<';
    out->dtype = 0;
    for (size_t i = 0; i < NTYPES; i++)
        if (strcmp(TYPES[i].descr, descr) == 0) { out->dtype = TYPES[i].dtype; *itemsize = TYPES[i].size; }
    if (!out->dtype) { snprintf(msg, cap, "unsupported element type '%s' (supported: <f4 <f2 <f8 <i8 <i4 <i2 |i1 |u1 <u2 <u4 <u8 |b1)", descr); return 1; }
    if (!(p = find_key(h, end, "fortran_order"))) { snprintf(msg, cap, "header has no 'fortran_order'"); return 1; }
    if (end - p >= 4 && memcmp(p, "True", 4) == 0) { snprintf(msg, cap, "Fortran-order arrays are not supported (save with np.ascontiguousarray)"); return 1; }
    if (!(end - p >= 5 && memcmp(p, "False", 5) == 0)) { snprintf(msg, cap, "bad 'fortran_order'"); return 1; }
    if (!(p = find_key(h, end, "shape")) || *p != '(') { snprintf(msg, cap, "header has no 'shape' tuple"); return 1; }
    p++;
    out->rank = 0;
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == ')') break;
        if (p >= end || *p < '0' || *p > '9') { snprintf(msg, cap, "bad 'shape'"); return 1; }
        uint64_t v = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            v = v * 10 + (uint64_t)(*p++ - '0');
            if (v > (uint64_t)INT32_MAX) { snprintf(msg, cap, "dimension too large"); return 1; }
        }
        if (out->rank == DSE_MAX_RANK) { snprintf(msg, cap, "rank above %d", DSE_MAX_RANK); return 1; }
        out->dims[out->rank++] = (size_t)v;
        p = skip_ws(p, end);
        if (p < end && *p == ',') p++;
        else if (p < end && *p == ')') break;
        else { snprintf(msg, cap, "bad 'shape'"); return 1; }
    }
    return 0;
}

int npy_read(const char *path, npy_array *out, char *msg, size_t cap) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(msg, cap, "cannot open"); return 1; }
    unsigned char pre[12];
    int rc = 1;
    char *hdr = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) { snprintf(msg, cap, "not a .npy file"); goto done; }
    size_t hlen;
    if (pre[6] == 1) hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) { snprintf(msg, cap, "truncated header"); goto done; }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else { snprintf(msg, cap, ".npy format version %d.%d is not supported", pre[6], pre[7]); goto done; }
    if (hlen > (1u << 24)) { snprintf(msg, cap, "header too large"); goto done; }
    hdr = malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) { snprintf(msg, cap, "truncated header"); goto done; }
    hdr[hlen] = 0;
    size_t item = 0;
    if (parse_header(hdr, hlen, out, &item, msg, cap)) goto done;
    size_t n = item;
    for (size_t d = 0; d < out->rank; d++) {
        if (out->dims[d] && n > SIZE_MAX / out->dims[d]) { snprintf(msg, cap, "array too large"); goto done; }
        n *= out->dims[d];
    }
    out->nbytes = n;
    out->data = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    if (!out->data) { snprintf(msg, cap, "out of memory"); goto done; }
    if (fread(out->data, 1, n, f) != n) { snprintf(msg, cap, "data truncated: expected %zu bytes", n); goto done; }
    if (fgetc(f) != EOF) { snprintf(msg, cap, "trailing bytes after the %zu data bytes", n); goto done; }
    rc = 0;
done:
    if (rc) { free(out->data); out->data = NULL; }
    free(hdr);
    fclose(f);
    return rc;
}

int npy_write(const char *path, int dtype, size_t rank, const size_t *dims, const void *data, size_t nbytes,
              char *msg, size_t cap) {
    const char *descr = npy_descr(dtype);
    size_t packed_dim = nbytes;
    if (!descr) { descr = "|u1"; rank = 1; dims = &packed_dim; }   /* int4/uint4: the packed bytes */
    char h[64 + 24 * DSE_MAX_RANK + 64];
    int len = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (size_t d = 0; d < rank; d++)
        len += snprintf(h + len, sizeof h - (size_t)len, rank == 1 ? "%zu," : (d + 1 < rank ? "%zu, " : "%zu"), dims[d]);
    len += snprintf(h + len, sizeof h - (size_t)len, "), }");
    size_t total = 10 + (size_t)len + 1;               /* preamble + dict + '\n' */
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)len + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f) { snprintf(msg, cap, "cannot create"); return 1; }
    int bad = fwrite(pre, 1, 10, f) != 10 || fwrite(h, 1, (size_t)len, f) != (size_t)len;
    for (size_t i = 0; i < pad && !bad; i++) bad = fputc(' ', f) == EOF;
    bad = bad || fputc('\n', f) == EOF || (nbytes && fwrite(data, 1, nbytes, f) != nbytes);
    bad = fclose(f) != 0 || bad;
    if (bad) snprintf(msg, cap, "write error");
    return bad;
}
