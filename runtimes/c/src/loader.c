/* loader.c: parse and validate a .dse buffer (docs/format.md) into a dse_model.
 *
 * The file is: a 64-byte header (magic, version, flags, file/table/blob sizes, weight CRC,
 * table CRC), LEB128-varint tables (strings, metadata, memory plan, tensors, graph inputs,
 * nodes, graph outputs: each only refers backwards, so one pass validates), zero padding to a multiple of 64, and the weight blob used in place.
 *
 * Hardening: the buffer is untrusted. Fixed-width fields are read with memcpy (no unaligned
 * access); every varint is bounds-checked, at most 10 bytes, minimal and < 2^64; a 64-bit
 * value that does not fit size_t is DSE_ERR_RANGE; sizes are computed with overflow checks;
 * every count is bounded by the bytes that remain before anything is allocated; every index,
 * offset, dtype, op id and shape is checked, and each node's kernel validates its own
 * operands (shapes, dtypes) before the model is handed out; then the memory plan: a node's
 * operands share arena bytes only as its kernel's aliasing trait allows, and the arena and
 * scratch sizes are no larger than the plan uses (rounded to 64). The table CRC is always checked,
 * the weight CRC on request. Any failure frees everything and returns a code and a message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const uint8_t MAGIC[8] = {0x89, 'D', 'S', 'E', '\r', '\n', 0x1a, '\n'};
enum { HEADER_SIZE = 64, MAX_IO = 64, MAX_DIM = 0x7fffffff, DSE_SCRATCH_ALIGN = 16 };

void dse__set_error(dse_error *err, dse_status code, const char *fmt, ...) {
    if (!err) return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* Kernel refusal messages (messages.inc) as one NUL-separated string in list order. */
static const char MESSAGES[] =
#define DSE_MSG(id, text) text "\0"
#include "messages.inc"
#undef DSE_MSG
    ;

void dse__why(dse_why *w, int id, const char *s, int64_t a, int64_t b, int64_t c, int64_t d) {
    w->id = id, w->s = s, w->v[0] = a, w->v[1] = b, w->v[2] = c, w->v[3] = d;
}

void dse__why_format(const dse_why *w, char *buf, size_t cap) {
    const char *t = MESSAGES;
    if (w->id <= 0 || w->id >= DSE_MSG_COUNT_) t = "refused";   /* a kernel that gave no reason */
    else for (int k = 1; k < w->id; k++) t += strlen(t) + 1;
    size_t o = 0;
    for (; *t && o + 1 < cap; t++) {
        if (t[0] == '%' && t[1] >= '0' && t[1] <= '3') o += (size_t)snprintf(buf + o, cap - o, "%lld", (long long)w->v[*++t - '0']);
        else if (t[0] == '%' && t[1] == 's') o += (size_t)snprintf(buf + o, cap - o, "%s", w->s ? w->s : ""), t++;
        else buf[o++] = *t;
    }
    if (o >= cap) o = cap - 1;
    buf[o] = '\0';
}

/* CRC-32 (IEEE, reflected 0xEDB88320), as zlib.crc32; the table is built per call on the
 * stack (1 KB, negligible next to the data) so there is no global state to initialise. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    crc = ~crc;
    while (n--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }   /* LE host */
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* -- table reader ------------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p, *end;
    dse_status st;          /* first error */
    dse_error *err;
} rd;

#define FAIL(r, code, ...) do { if ((r)->st == DSE_OK) { (r)->st = (code); dse__set_error((r)->err, code, __VA_ARGS__); } } while (0)

static size_t left(const rd *r) { return (size_t)(r->end - r->p); }

static uint64_t rd_uv(rd *r) {
    uint64_t v = 0;
    if (r->st) return 0;
    for (int k = 0; k < 10; k++) {
        if (r->p >= r->end) { FAIL(r, DSE_ERR_FORMAT, "tables truncated inside a varint"); return 0; }
        uint8_t b = *r->p++;
        if (k == 9 && b > 1) break;
        v |= (uint64_t)(b & 0x7f) << (7 * k);
        if (!(b & 0x80)) {
            if (b == 0 && k > 0) { FAIL(r, DSE_ERR_FORMAT, "non-minimal varint"); return 0; }
            return v;
        }
    }
    FAIL(r, DSE_ERR_FORMAT, "varint exceeds 64 bits");
    return 0;
}

static int64_t rd_sv(rd *r) {
    uint64_t u = rd_uv(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* A size: refuses values beyond size_t (32-bit targets) and beyond `limit`. */
static size_t rd_size(rd *r, size_t limit, const char *what) {
    uint64_t v = rd_uv(r);
    if (r->st) return 0;
    if (v > (uint64_t)SIZE_MAX) { FAIL(r, DSE_ERR_RANGE, "%s %llu does not fit this platform", what, (unsigned long long)v); return 0; }
    if ((size_t)v > limit) { FAIL(r, DSE_ERR_FORMAT, "%s %llu exceeds %zu", what, (unsigned long long)v, limit); return 0; }
    return (size_t)v;
}

static uint8_t rd_u8(rd *r) {
    if (r->st) return 0;
    if (r->p >= r->end) { FAIL(r, DSE_ERR_FORMAT, "tables truncated"); return 0; }
    return *r->p++;
}

static const uint8_t *rd_bytes(rd *r, size_t n) {
    if (r->st) return NULL;
    if (n > left(r)) { FAIL(r, DSE_ERR_FORMAT, "tables truncated (%zu bytes needed)", n); return NULL; }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static float rd_f32(rd *r) {
    const uint8_t *p = rd_bytes(r, 4);
    float f = 0;
    if (p) memcpy(&f, p, 4);
    return f;
}

static const char *rd_str(rd *r, const dse_model *m) {
    size_t i = rd_size(r, m->n_strings ? m->n_strings - 1 : 0, "string index");
    return r->st ? "" : m->strings[i];
}

static void *alloc(rd *r, size_t n, size_t size) {
    if (r->st) return NULL;
    void *p = calloc(n ? n : 1, size);   /* calloc checks n * size for overflow */
    if (!p) FAIL(r, DSE_ERR_NOMEM, "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

/* -- size arithmetic ------------------------------------------------------------------------ */

static int mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static const struct { uint8_t bits, align; } DTYPES[] = {
    [0] = {0, 0},
#define X(n, id, s, bits, al) [id] = {bits, al},
    DSE_DTYPE_LIST(X)
#undef X
};
#define N_DTYPE_SLOTS (sizeof DTYPES / sizeof DTYPES[0])

/* Op and dtype names: all names in one NUL-separated string, in list order, with a parallel
 * id array (a table, not a switch: no code, pointer or relocation per name). */
static const char OP_NAMES[] =
#define X(n, id, s) s "\0"
    DSE_OP_LIST(X)
#undef X
    ;
static const uint16_t OP_IDS[] = {
#define X(n, id, s) id,
    DSE_OP_LIST(X)
#undef X
};
static const char DTYPE_NAMES[] =
#define X(n, id, s, bits, al) s "\0"
    DSE_DTYPE_LIST(X)
#undef X
    ;
static const uint8_t DTYPE_IDS[] = {
#define X(n, id, s, bits, al) id,
    DSE_DTYPE_LIST(X)
#undef X
};

static const char *name_of(const char *names, const void *ids, size_t count, size_t width, int id) {
    for (size_t i = 0; i < count; i++, names += strlen(names) + 1)
        if ((width == 1 ? ((const uint8_t *)ids)[i] : ((const uint16_t *)ids)[i]) == id) return names;
    return "?";
}

const char *dse_dtype_name(int dtype) { return name_of(DTYPE_NAMES, DTYPE_IDS, sizeof DTYPE_IDS, 1, dtype); }
const char *dse_op_name(int op) { return name_of(OP_NAMES, OP_IDS, sizeof OP_IDS / 2, 2, op); }

int dse__op_known(uint32_t op) { return op <= INT32_MAX && dse_op_name((int)op)[0] != '?'; }

/* -- sections ------------------------------------------------------------------------------- */

/* Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). */
static int utf8_ok(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || len > n - i) return 0;
        uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7f >> len));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

static void parse_strings(rd *r, dse_model *m) {
    m->n_strings = rd_size(r, left(r), "string count");
    m->strings = alloc(r, m->n_strings, sizeof *m->strings);
    for (size_t i = 0; i < m->n_strings && !r->st; i++) {
        size_t n = rd_size(r, left(r), "string length");
        const uint8_t *s = rd_bytes(r, n);
        if (r->st) return;
        if (rd_u8(r) != 0 || memchr(s, 0, n) || !utf8_ok(s, n)) { FAIL(r, DSE_ERR_FORMAT, "string %zu: not NUL-terminated UTF-8 without NUL", i); return; }
        m->strings[i] = (const char *)s;
        if (i > 0 && strcmp(m->strings[i - 1], m->strings[i]) >= 0) { FAIL(r, DSE_ERR_FORMAT, "string %zu: strings must be sorted and unique", i); return; }
    }
    if (!r->st && (m->n_strings == 0 || m->strings[0][0] != '\0'))
        FAIL(r, DSE_ERR_FORMAT, "string 0 must be the empty string");
}

static void parse_metadata(rd *r, dse_model *m) {
    m->n_meta = rd_size(r, left(r) / 3, "metadata count");
    m->meta = alloc(r, m->n_meta, sizeof *m->meta);
    size_t last = 0;
    for (size_t i = 0; i < m->n_meta && !r->st; i++) {
        dse_meta *e = &m->meta[i];
        size_t k = rd_size(r, m->n_strings - 1, "metadata key");
        if (!r->st && k <= last) { FAIL(r, DSE_ERR_FORMAT, "metadata keys must be non-empty and strictly increasing"); return; }
        last = k;
        e->key = m->strings[k];
        e->type = rd_u8(r);
        switch (e->type) {
        case DSE_META_STRING: e->str = rd_str(r, m); break;
        case DSE_META_INT64: e->i64 = rd_sv(r); break;
        case DSE_META_FLOAT64: { const uint8_t *p = rd_bytes(r, 8); if (p) memcpy(&e->f64, p, 8); break; }
        case DSE_META_BYTES: e->size = rd_size(r, left(r), "metadata bytes"); e->bytes = rd_bytes(r, e->size); break;
        case DSE_META_STRINGS: {
            e->count = rd_size(r, left(r), "string list length");
            const char **l = alloc(r, e->count, sizeof *l);
            e->strings = l;
            for (size_t j = 0; j < e->count && !r->st; j++) l[j] = rd_str(r, m);
            break;
        }
        default: FAIL(r, DSE_ERR_FORMAT, "metadata %s: unknown type %d", e->key, e->type);
        }
    }
}

/* The padding of a packed tensor (rows >= R, k >= K of the W[R][K] view) is zero. */
static int packed_padding_zero(const uint8_t *p, const dse_tensor *t) {
    size_t R, K;
    dse__packed_rk(t, &R, &K);
    if (t->layout == DSE_LAYOUT_I4_N8K4 || t->layout == DSE_LAYOUT_I4_N8K4_T) {   /* nibbles of rows >= R, k >= K */
        const size_t Rp = (R + 7) / 8 * 8, Kb = (K + 3) / 4;
        for (size_t rr = 0; rr < Rp; rr++)
            for (size_t k = rr < R ? K : 0; k < Kb * 4; k++)
                if (dse__i4_n8k4_at(p, Kb, rr, k)) return 0;
        return 1;
    }
    if (t->layout == DSE_LAYOUT_I4 || t->layout == DSE_LAYOUT_I4_T) {   /* the nibble after an odd K */
        size_t Kh = (K + 1) / 2;
        if (K % 2)
            for (size_t r = 0; r < R; r++)
                if (p[r * Kh + Kh - 1] >> 4) return 0;
        return 1;
    }
    size_t Rp = (R + 7) / 8 * 8, Kb = (K + 3) / 4;
    for (size_t rr = 0; rr < Rp; rr++)
        for (size_t k = rr < R ? K : 0; k < Kb * 4; k++)
            if (p[dse__n8k4_index(Kb, rr, k)]) return 0;
    return 1;
}

static void parse_tensors(rd *r, dse_model *m) {
    m->n_tensors = rd_size(r, left(r) / 6, "tensor count");
    if (!r->st && m->n_tensors > UINT32_MAX - 1) { FAIL(r, DSE_ERR_RANGE, "too many tensors"); return; }
    m->tensors = alloc(r, m->n_tensors, sizeof *m->tensors);
    for (size_t i = 0; i < m->n_tensors && !r->st; i++) {
        dse_tensor *t = &m->tensors[i];
        t->name = rd_str(r, m);
        t->dtype = rd_u8(r);
        uint8_t kind = rd_u8(r);
        t->layout = rd_u8(r);
        t->rank = rd_u8(r);
        t->storage = kind & 15;
        t->quant = kind >> 4;
        t->axis = -1;
        if (r->st) return;
        if (t->dtype == 0 || t->dtype >= N_DTYPE_SLOTS || DTYPES[t->dtype].bits == 0) {
            FAIL(r, DSE_ERR_UNSUPPORTED, "tensor %zu (%s): unknown dtype %d", i, t->name, t->dtype); return;
        }
        if (t->storage > DSE_STORAGE_ARENA || t->quant > DSE_QUANT_AXIS || t->layout > DSE_LAYOUT_MAX_ || t->rank > DSE_MAX_RANK) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): bad storage/quantisation/layout/rank byte", i, t->name); return;
        }
        /* layout 5: a float16 constant, not quantised, widened to float32 below (widen_f16) */
        if (t->layout == DSE_LAYOUT_F16W && (t->dtype != DSE_DTYPE_FLOAT16 || t->storage != DSE_STORAGE_CONST || t->quant)) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): layout 5 needs a float16 constant without quantisation", i, t->name); return;
        }
        /* packed weights (docs/format.md §4.4): layout 1 an int8 constant of rank >= 2, layout 2
         * of rank 2; layouts 3 and 6 (4 and 7) the same for int4 constants */
        const int i4 = dse__layout_i4(t->layout), i4b = t->layout == DSE_LAYOUT_I4_N8K4 || t->layout == DSE_LAYOUT_I4_N8K4_T;
        const int rows_view = t->layout == DSE_LAYOUT_N8K4 || t->layout == DSE_LAYOUT_I4 || t->layout == DSE_LAYOUT_I4_N8K4;
        const int packed = t->layout != DSE_LAYOUT_PLAIN && t->layout != DSE_LAYOUT_F16W && t->layout != DSE_LAYOUT_F32_O32 &&
                           t->layout != DSE_LAYOUT_F32_P16;
        /* layout 8: a float32 constant of rank >= 2, not quantised, dims[0] a multiple of 32 (below) */
        if (t->layout == DSE_LAYOUT_F32_O32 && (t->dtype != DSE_DTYPE_FLOAT32 || t->storage != DSE_STORAGE_CONST || t->quant || t->rank < 2)) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): layout 8 needs a float32 constant of rank >= 2 without quantisation", i, t->name); return;
        }
        /* layout 9: a float32 constant of rank 2, not quantised (the plain layout's size, no padding) */
        if (t->layout == DSE_LAYOUT_F32_P16 && (t->dtype != DSE_DTYPE_FLOAT32 || t->storage != DSE_STORAGE_CONST || t->quant || t->rank != 2)) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): layout 9 needs a float32 constant of rank 2 without quantisation", i, t->name); return;
        }
        if (packed && (t->dtype != (i4 ? DSE_DTYPE_INT4 : DSE_DTYPE_INT8) || t->storage != DSE_STORAGE_CONST ||
                                              (rows_view ? t->rank < 2 : t->rank != 2))) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): layout %d needs an %s constant of rank %s", i, t->name, t->layout,
                 i4 ? "int4" : "int8", rows_view ? ">= 2" : "2"); return;
        }
        size_t numel = 1;
        int empty = 0;
        for (unsigned d = 0; d < t->rank; d++) empty |= (t->dims[d] = rd_size(r, MAX_DIM, "dimension")) == 0;
        for (unsigned d = 0; d < t->rank && !empty && !r->st; d++)
            if (!mul_ok(numel, t->dims[d], &numel)) { FAIL(r, DSE_ERR_RANGE, "tensor %zu (%s): element count overflows", i, t->name); return; }
        if (empty) numel = 0;
        if (!r->st && t->layout == DSE_LAYOUT_F32_O32 && t->dims[0] % 32) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): layout 8 needs a first dimension that is a multiple of 32, not %zu", i, t->name, t->dims[0]); return;
        }
        t->numel = numel;
        size_t bits = DTYPES[t->dtype].bits, nbits;
        if (!mul_ok(numel, bits, &nbits)) { FAIL(r, DSE_ERR_RANGE, "tensor %zu (%s): byte size overflows", i, t->name); return; }
        t->nbytes = nbits / 8 + (nbits % 8 != 0);
        if (packed) {   /* ceil(R/8)*8 x ceil(K/4)*4 bytes (int4: R x ceil(K/2); blocks: half of int8's); dims <= 2^31 - 1 */
            size_t R, K;
            dse__packed_rk(t, &R, &K);
            if (!(i4b ? mul_ok((R + 7) / 8 * 4, (K + 3) / 4 * 4, &t->nbytes)
                      : i4 ? mul_ok(R, (K + 1) / 2, &t->nbytes) : mul_ok((R + 7) / 8 * 8, (K + 3) / 4 * 4, &t->nbytes))) { FAIL(r, DSE_ERR_RANGE, "tensor %zu (%s): byte size overflows", i, t->name); return; }
        }
        t->offset = rd_size(r, SIZE_MAX, "tensor offset");
        if (r->st) return;
        if (t->offset % DTYPES[t->dtype].align) { FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): offset %zu misaligned for %s", i, t->name, t->offset, dse_dtype_name(t->dtype)); return; }
        if (t->storage == DSE_STORAGE_CONST && (t->offset > m->blob_size || t->nbytes > m->blob_size - t->offset)) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): data [%zu, +%zu) outside the %zu-byte weight blob", i, t->name, t->offset, t->nbytes, m->blob_size); return;
        }
        if (t->storage == DSE_STORAGE_ARENA && (t->offset > m->arena_size || t->nbytes > m->arena_size - t->offset)) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): [%zu, +%zu) outside the %zu-byte arena", i, t->name, t->offset, t->nbytes, m->arena_size); return;
        }
        if (t->storage == DSE_STORAGE_CONST) t->cdata = m->blob + t->offset;
        if (packed && !packed_padding_zero(t->cdata, t)) {
            FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): packed layout %d has non-zero padding bytes", i, t->name, t->layout); return;
        }
        if (!t->quant) continue;
        size_t n = 1;
        if (t->quant == DSE_QUANT_AXIS) {
            size_t axis = rd_size(r, t->rank ? t->rank - 1u : 0, "quantisation axis");
            t->group_size = rd_size(r, MAX_DIM, "group size");
            if (r->st) return;
            if (!t->rank) { FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): per-axis quantisation of a scalar", i, t->name); return; }
            t->axis = (int32_t)axis;
            size_t d = t->dims[axis];
            if (t->group_size == 0) n = d;
            else n = d ? numel / d * (d / t->group_size + (d % t->group_size != 0)) : 0;   /* <= numel */
        }
        if (n > left(r) / 5) { FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): %zu quantisation parameters exceed the tables", i, t->name, n); return; }
        t->quant_count = n;
        t->scales = alloc(r, n, sizeof(float));
        t->zero_points = alloc(r, n, sizeof(int32_t));
        for (size_t j = 0; j < n && !r->st; j++) {
            float s = rd_f32(r);
            if (!(s > 0 && s <= 3.402823466e38f)) { FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): scale not finite and > 0", i, t->name); return; }
            t->scales[j] = s;
        }
        int64_t lo = INT32_MIN, hi = INT32_MAX;
        switch (t->dtype) {
        case DSE_DTYPE_INT8: lo = -128; hi = 127; break;
        case DSE_DTYPE_UINT8: lo = 0; hi = 255; break;
        case DSE_DTYPE_INT16: lo = -32768; hi = 32767; break;
        case DSE_DTYPE_UINT16: lo = 0; hi = 65535; break;
        case DSE_DTYPE_INT4: lo = -8; hi = 7; break;
        case DSE_DTYPE_UINT4: lo = 0; hi = 15; break;
        default: break;
        }
        for (size_t j = 0; j < n && !r->st; j++) {
            int64_t z = rd_sv(r);
            if (!r->st && (z < lo || z > hi)) { FAIL(r, DSE_ERR_FORMAT, "tensor %zu (%s): zero point %lld outside [%lld, %lld]", i, t->name, (long long)z, (long long)lo, (long long)hi); return; }
            t->zero_points[j] = (int32_t)z;
        }
    }
}

/* A varint-encoded tensor reference (+1 encoded when `plus1`, 0 = absent). */
static uint32_t rd_tensor(rd *r, const dse_model *m, int plus1, const char *what) {
    size_t v = rd_size(r, plus1 ? m->n_tensors : (m->n_tensors ? m->n_tensors - 1 : 0), what);
    if (r->st) return DSE_NONE;
    if (plus1) return v == 0 ? DSE_NONE : (uint32_t)(v - 1);
    if (m->n_tensors == 0) { FAIL(r, DSE_ERR_FORMAT, "%s refers to a tensor, but there are none", what); return DSE_NONE; }
    return (uint32_t)v;
}

static void parse_attrs(rd *r, dse_model *m, dse_node *n, size_t k) {
    n->n_attr = (uint32_t)rd_size(r, MAX_IO, "attribute count");
    n->attrs = alloc(r, n->n_attr, sizeof *n->attrs);
    size_t last = 0;
    for (uint32_t j = 0; j < n->n_attr && !r->st; j++) {
        dse_attr *a = &n->attrs[j];
        size_t key = rd_size(r, m->n_strings - 1, "attribute key");
        if (!r->st && key <= last) { FAIL(r, DSE_ERR_FORMAT, "node %zu (%s): attribute keys must be non-empty and increasing", k, n->name); return; }
        last = key;
        a->name = m->strings[key];
        a->key = (uint16_t)dse__attr_key(a->name);
        a->type = rd_u8(r);
        switch (a->type) {
        case DSE_ATTR_INT: a->i = rd_sv(r); break;
        case DSE_ATTR_FLOAT: a->f = rd_f32(r); break;
        case DSE_ATTR_INTS:
            a->n = rd_size(r, left(r), "ints length");
            a->raw = r->p;
            for (size_t e = 0; e < a->n && !r->st; e++) rd_sv(r);
            a->raw_len = (size_t)(r->p - a->raw);
            break;
        case DSE_ATTR_FLOATS:
            a->n = rd_size(r, left(r) / 4, "floats length");
            a->raw = rd_bytes(r, a->n * 4);
            a->raw_len = a->n * 4;
            break;
        case DSE_ATTR_STRING: a->s = rd_str(r, m); break;
        case DSE_ATTR_TENSOR: {
            uint32_t t = rd_tensor(r, m, 0, "tensor attribute");
            if (!r->st && (m->tensors[t].storage != DSE_STORAGE_CONST || m->tensors[t].layout != DSE_LAYOUT_PLAIN)) { FAIL(r, DSE_ERR_FORMAT, "node %zu (%s): attribute %s must reference a constant in layout 0", k, n->name, a->name); return; }
            a->i = t;
            break;
        }
        default: FAIL(r, DSE_ERR_FORMAT, "node %zu (%s): attribute %s has unknown type %d", k, n->name, a->name, a->type);
        }
    }
}

static void parse_nodes(rd *r, dse_model *m, uint8_t *defined) {
    m->n_nodes = rd_size(r, left(r) / 5, "node count");
    m->nodes = alloc(r, m->n_nodes, sizeof *m->nodes);
    for (size_t k = 0; k < m->n_nodes && !r->st; k++) {
        dse_node *n = &m->nodes[k];
        uint64_t op = rd_uv(r);
        n->name = rd_str(r, m);
        if (r->st) return;
        if (op > UINT32_MAX || !dse__op_known((uint32_t)op)) {
            FAIL(r, DSE_ERR_UNSUPPORTED, "node %zu (%s): op id %llu is unknown to this runtime (built for %d ops); update the runtime",
                 k, n->name, (unsigned long long)op, DSE_OP_COUNT); return;
        }
        n->op = (uint32_t)op;
        n->n_in = (uint32_t)rd_size(r, MAX_IO, "input count");
        n->in = alloc(r, n->n_in, sizeof *n->in);
        for (uint32_t j = 0; j < n->n_in && !r->st; j++) {
            uint32_t t = n->in[j] = rd_tensor(r, m, 1, "node input");
            if (!r->st && t != DSE_NONE && m->tensors[t].storage == DSE_STORAGE_ARENA && !defined[t]) {
                FAIL(r, DSE_ERR_FORMAT, "node %zu (%s %s): reads tensor %u (%s) before it is written", k, dse_op_name((int)n->op), n->name, t, m->tensors[t].name); return;
            }
        }
        n->n_out = (uint32_t)rd_size(r, MAX_IO, "output count");
        if (!r->st && n->n_out == 0) { FAIL(r, DSE_ERR_FORMAT, "node %zu (%s): no outputs", k, n->name); return; }
        n->out = alloc(r, n->n_out, sizeof *n->out);
        for (uint32_t j = 0; j < n->n_out && !r->st; j++) {
            uint32_t t = n->out[j] = rd_tensor(r, m, 1, "node output");
            if (r->st || t == DSE_NONE) continue;
            if (m->tensors[t].storage != DSE_STORAGE_ARENA || defined[t]) {
                FAIL(r, DSE_ERR_FORMAT, "node %zu (%s %s): output tensor %u (%s) is a constant, a graph input or written twice", k, dse_op_name((int)n->op), n->name, t, m->tensors[t].name); return;
            }
            defined[t] = 1;
        }
        parse_attrs(r, m, n, k);
    }
}

/* Layout-5 constants (fp16 weights) become float32 constants in layout 0, copied once into one
 * allocation (float16 -> float32 is exact): every float32 kernel then takes them as they are. */
static void widen_f16(rd *r, dse_model *m) {
    size_t total = 0;
    for (size_t i = 0; i < m->n_tensors && !r->st; i++) {
        const dse_tensor *t = &m->tensors[i];
        size_t b;
        if (t->layout != DSE_LAYOUT_F16W) continue;
        if (!mul_ok(t->numel, sizeof(float), &b) || b > SIZE_MAX - total) { FAIL(r, DSE_ERR_RANGE, "fp16 constants too large to widen"); return; }
        total += b;
    }
    if (r->st || !total) return;
    m->widened = alloc(r, total / sizeof(float), sizeof(float));
    if (r->st) return;
    m->widened_size = total;
    float *dst = m->widened;
    for (size_t i = 0; i < m->n_tensors; i++) {
        dse_tensor *t = &m->tensors[i];
        if (t->layout != DSE_LAYOUT_F16W) continue;
        for (size_t k = 0; k < t->numel; k++) {
            uint16_t h;
            memcpy(&h, t->cdata + 2 * k, 2);
            dst[k] = dse__f16_to_f32(h);
        }
        t->hdata = t->cdata;   /* the bits stay in the blob for the fp16-arithmetic kernels */
        t->cdata = (const uint8_t *)dst;
        t->dtype = DSE_DTYPE_FLOAT32;
        t->nbytes = t->numel * sizeof(float);
        t->layout = DSE_LAYOUT_PLAIN;
        dst += t->numel;
    }
}

static void parse_inputs(rd *r, dse_model *m, uint8_t *defined) {
    m->n_inputs = rd_size(r, left(r), "graph input count");
    m->inputs = alloc(r, m->n_inputs, sizeof *m->inputs);
    for (size_t i = 0; i < m->n_inputs && !r->st; i++) {
        uint32_t t = m->inputs[i] = rd_tensor(r, m, 0, "graph input");
        if (r->st) return;
        if (m->tensors[t].storage != DSE_STORAGE_ARENA || defined[t]) { FAIL(r, DSE_ERR_FORMAT, "graph input %zu: tensor %u is a constant or listed twice", i, t); return; }
        defined[t] = 1;
    }
}

static void parse_outputs(rd *r, dse_model *m, const uint8_t *defined) {
    m->n_outputs = rd_size(r, left(r), "graph output count");
    m->outputs = alloc(r, m->n_outputs, sizeof *m->outputs);
    for (size_t i = 0; i < m->n_outputs && !r->st; i++) {
        uint32_t t = m->outputs[i] = rd_tensor(r, m, 0, "graph output");
        if (!r->st && m->tensors[t].storage == DSE_STORAGE_ARENA && !defined[t]) { FAIL(r, DSE_ERR_FORMAT, "graph output %zu: tensor %u (%s) is never written", i, t, m->tensors[t].name); return; }
        if (!r->st && m->tensors[t].layout != DSE_LAYOUT_PLAIN) { FAIL(r, DSE_ERR_FORMAT, "graph output %zu: tensor %u (%s) is in a packed layout", i, t, m->tensors[t].name); return; }
    }
}

/* -- memory plan ---------------------------------------------------------------------------- */

/* [a, a + an) and [b, b + bn) share a byte (empty ranges share none). */
static int overlaps(size_t a, size_t an, size_t b, size_t bn) { return an && bn && a < b + bn && b < a + an; }

/* How node k's ARENA operands may share bytes (internal.h, DSE_ALIAS_*; docs/format.md 4.3):
 * outputs never share bytes with each other; an input shares none with an output, except
 * exactly the output's bytes (kernels declared SAME or SLICE) or bytes inside it (SLICE, the
 * kernel's check placed it); no operand overlaps the scratch bytes the node uses. All offsets
 * and sizes were bounds-checked against arena_size when the tensor table was read. */
static void check_node_memory(rd *r, const dse_model *m, const dse_node *n, size_t k) {
    int alias = dse__kernel_alias(n->kernel);
    for (uint32_t j = 0; j < n->n_out && !r->st; j++) {
        const dse_tensor *y = dse__t(m, n->out[j]);
        if (!y) continue;
        if (n->scratch && overlaps(y->offset, y->nbytes, m->scratch_offset, n->scratch)) {
            FAIL(r, DSE_ERR_FORMAT, "node %zu (%s %s): output %u (%s) overlaps the %zu bytes of scratch the node uses",
                 k, dse_op_name((int)n->op), n->name, j, y->name, n->scratch); return;
        }
        for (uint32_t j2 = j + 1; j2 < n->n_out; j2++) {
            const dse_tensor *y2 = dse__t(m, n->out[j2]);
            if (y2 && overlaps(y->offset, y->nbytes, y2->offset, y2->nbytes)) {
                FAIL(r, DSE_ERR_FORMAT, "node %zu (%s %s): outputs %u and %u share arena bytes", k, dse_op_name((int)n->op), n->name, j, j2); return;
            }
        }
        for (uint32_t i = 0; i < n->n_in; i++) {
            const dse_tensor *x = dse__t(m, n->in[i]);
            if (!x || x->storage != DSE_STORAGE_ARENA || !overlaps(x->offset, x->nbytes, y->offset, y->nbytes)) continue;
            int same = x->offset == y->offset && x->nbytes == y->nbytes;
            int inside = x->offset >= y->offset && x->offset + x->nbytes <= y->offset + y->nbytes;
            if ((same && alias != DSE_ALIAS_NONE) || (inside && alias == DSE_ALIAS_SLICE)) continue;
            FAIL(r, DSE_ERR_FORMAT, "node %zu (%s %s): input %u (%s, arena [%zu, +%zu)) %s output %u (%s, arena [%zu, +%zu)); "
                 "%s %s", k, dse_op_name((int)n->op), n->name, i, x->name, x->offset, x->nbytes,
                 same ? "is the same bytes as" : "partly overlaps", j, y->name, y->offset, y->nbytes, dse__kernel_name(n->kernel),
                 alias == DSE_ALIAS_NONE ? "never works in place" : alias == DSE_ALIAS_SAME ? "works in place only on exactly the same bytes"
                 : "works in place only on its slice of the output");
            return;
        }
    }
    for (uint32_t i = 0; n->scratch && i < n->n_in; i++) {
        const dse_tensor *x = dse__t(m, n->in[i]);
        if (x && x->storage == DSE_STORAGE_ARENA && overlaps(x->offset, x->nbytes, m->scratch_offset, n->scratch)) {
            FAIL(r, DSE_ERR_FORMAT, "node %zu (%s %s): input %u (%s) overlaps the %zu bytes of scratch the node uses",
                 k, dse_op_name((int)n->op), n->name, i, x->name, n->scratch); return;
        }
    }
    if (n->scratch > m->scratch_size)
        FAIL(r, DSE_ERR_FORMAT, "node %zu (%s %s): needs %zu bytes of scratch, the plan has %zu", k, dse_op_name((int)n->op), n->name,
             n->scratch, m->scratch_size);
}

/* The arena and scratch sizes the header claims may exceed what the plan uses only by the
 * rounding to DSE_ARENA_ALIGN (docs/format.md 4.3): the plan uses the end of the last ARENA
 * tensor and the end of the largest scratch any node uses (scratch_offset + max scratch).
 * A session allocates and clears the whole arena, so a file claiming more would make a few
 * KB of file cost gigabytes of memory. */
static size_t round_up(size_t v, size_t a) { return v > SIZE_MAX - (a - 1) ? SIZE_MAX : (v + a - 1) / a * a; }

static void check_arena_size(rd *r, const dse_model *m) {
    size_t used = 0, scratch = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const dse_tensor *t = &m->tensors[i];
        if (t->storage == DSE_STORAGE_ARENA && t->nbytes && t->offset + t->nbytes > used) used = t->offset + t->nbytes;
    }
    /* a node's plan is the most any variant of its kernel uses (an export for an optimised
     * variant plans more than REF uses when REF is chosen) */
    for (size_t k = 0; k < m->n_nodes; k++) {
        size_t s = m->nodes[k].scratch_plan > m->nodes[k].scratch ? m->nodes[k].scratch_plan : m->nodes[k].scratch;
        if (s > scratch) scratch = s;
    }
    size_t claimed = m->scratch_size < scratch ? m->scratch_size : scratch;   /* the plan's region in use */
    if (claimed && m->scratch_offset + claimed > used) used = m->scratch_offset + claimed;   /* <= arena_size: checked per node */
    size_t allowed = round_up(used ? used : 1, DSE_ARENA_ALIGN), allowed_scratch = round_up(scratch, DSE_ARENA_ALIGN);
    if (m->arena_size > allowed)
        FAIL(r, DSE_ERR_FORMAT, "arena_size %zu exceeds the %zu bytes the tensor table and scratch need (%zu rounded up to %d)",
             m->arena_size, allowed, used, DSE_ARENA_ALIGN);
    else if (m->scratch_size > allowed_scratch)
        FAIL(r, DSE_ERR_FORMAT, "scratch_size %zu exceeds the %zu bytes the nodes' kernels use (%zu rounded up to %d)",
             m->scratch_size, allowed_scratch, scratch, DSE_ARENA_ALIGN);
}

/* -- public --------------------------------------------------------------------------------- */

void dse_model_free(dse_model *m) {
    if (!m) return;
    for (size_t i = 0; m->meta && i < m->n_meta; i++) free((void *)(uintptr_t)m->meta[i].strings);
    for (size_t i = 0; m->tensors && i < m->n_tensors; i++) { free(m->tensors[i].scales); free(m->tensors[i].zero_points); }
    for (size_t i = 0; m->nodes && i < m->n_nodes; i++) { free(m->nodes[i].in); free(m->nodes[i].out); free(m->nodes[i].attrs); }
    free(m->strings); free(m->meta); free(m->tensors); free(m->nodes); free(m->inputs); free(m->outputs);
    free(m->widened);
    dse__release_file(m);
    free(m);
}

dse_status dse_model_load(const void *buf, size_t len, dse_model **out, dse_error *err) {
    return dse_model_load_ex(buf, len, 0, out, err);
}

dse_status dse_model_load_ex(const void *buf, size_t len, unsigned flags, dse_model **out, dse_error *err) {
    if (err) { err->code = DSE_OK; err->message[0] = '\0'; }
    if (!out) { dse__set_error(err, DSE_ERR_ARGUMENT, "out is NULL"); return DSE_ERR_ARGUMENT; }
    *out = NULL;
    if (!buf && len) { dse__set_error(err, DSE_ERR_ARGUMENT, "buffer is NULL"); return DSE_ERR_ARGUMENT; }
    if ((uintptr_t)buf % DSE_BUFFER_ALIGN) {
        dse__set_error(err, DSE_ERR_ALIGNMENT, "buffer is not %d-byte aligned: copy the file into an aligned buffer or use dse_model_load_file", DSE_BUFFER_ALIGN);
        return DSE_ERR_ALIGNMENT;
    }
    const uint8_t *b = buf;
    if (len < 8 || memcmp(b, MAGIC, 8) != 0) { dse__set_error(err, DSE_ERR_MAGIC, "not a .dse file (bad magic)"); return DSE_ERR_MAGIC; }
    if (len < HEADER_SIZE) { dse__set_error(err, DSE_ERR_TRUNCATED, "file of %zu bytes is shorter than the 64-byte header", len); return DSE_ERR_TRUNCATED; }
    uint32_t version = rd32(b + 8), hflags = rd32(b + 12), wcrc = rd32(b + 48), crc = rd32(b + 60);
    uint64_t fsize = rd64(b + 16), tsize = rd64(b + 24), boff = rd64(b + 32), bsize = rd64(b + 40);
    if (version != DSE_FORMAT_VERSION) { dse__set_error(err, DSE_ERR_VERSION, "format version %u; this runtime reads version %d", version, DSE_FORMAT_VERSION); return DSE_ERR_VERSION; }
    if (fsize != len) {
        dse_status st = fsize > len ? DSE_ERR_TRUNCATED : DSE_ERR_FORMAT;
        dse__set_error(err, st, "header says %llu bytes, buffer has %zu", (unsigned long long)fsize, len);
        return st;
    }
    if (hflags & ~1u || rd64(b + 52) != 0) { dse__set_error(err, DSE_ERR_FORMAT, "unknown header flags or non-zero reserved bytes"); return DSE_ERR_FORMAT; }
    /* fsize == len <= SIZE_MAX, so the comparisons below cannot overflow once tsize < fsize. */
    if (tsize > fsize - HEADER_SIZE || boff != ((HEADER_SIZE + tsize + 63) & ~(uint64_t)63) || boff > fsize || bsize != fsize - boff) {
        dse__set_error(err, DSE_ERR_FORMAT, "header sizes are inconsistent (tables %llu, blob at %llu size %llu, file %zu)",
                       (unsigned long long)tsize, (unsigned long long)boff, (unsigned long long)bsize, len);
        return DSE_ERR_FORMAT;
    }
    size_t tend = HEADER_SIZE + (size_t)tsize;
    if (crc32_update(crc32_update(0, b, 60), b + HEADER_SIZE, (size_t)tsize) != crc) {
        dse__set_error(err, DSE_ERR_CHECKSUM, "header/table checksum mismatch: the file is corrupt");
        return DSE_ERR_CHECKSUM;
    }
    for (size_t i = tend; i < (size_t)boff; i++)
        if (b[i]) { dse__set_error(err, DSE_ERR_FORMAT, "non-zero padding before the weight blob"); return DSE_ERR_FORMAT; }
    if (!(hflags & 1) && wcrc) { dse__set_error(err, DSE_ERR_FORMAT, "weight CRC present without its flag"); return DSE_ERR_FORMAT; }
    if ((flags & DSE_LOAD_VERIFY_WEIGHTS) && (hflags & 1) && crc32_update(0, b + boff, (size_t)bsize) != wcrc) {
        dse__set_error(err, DSE_ERR_CHECKSUM, "weight checksum mismatch: the weights are corrupt");
        return DSE_ERR_CHECKSUM;
    }

    dse_model *m = calloc(1, sizeof *m);
    if (!m) { dse__set_error(err, DSE_ERR_NOMEM, "out of memory"); return DSE_ERR_NOMEM; }
    m->buf = b;
    m->len = len;
    m->isas = (flags & DSE_LOAD_REF_KERNELS) ? DSE_ISA_BIT(REF) : dse__cpu_isas();
    if (flags & DSE_LOAD_NO_AMX) m->isas &= ~DSE_ISA_BIT(AMX);
    if (flags & DSE_LOAD_NO_AVX512) m->isas &= ~(DSE_ISA_BIT(AVX512VNNI) | DSE_ISA_BIT(AMX));
    m->blob = b + boff;
    m->blob_size = (size_t)bsize;
    rd r = {b + HEADER_SIZE, b + tend, DSE_OK, err};
    uint8_t *defined = NULL;
    parse_strings(&r, m);
    parse_metadata(&r, m);
    m->arena_size = rd_size(&r, SIZE_MAX - DSE_ARENA_ALIGN, "arena size");
    m->scratch_offset = rd_size(&r, m->arena_size, "scratch offset");
    m->scratch_size = rd_size(&r, m->arena_size - m->scratch_offset, "scratch size");
    if (!r.st && m->scratch_offset % DSE_SCRATCH_ALIGN)   /* kernels use scratch as float/int64 arrays */
        FAIL(&r, DSE_ERR_FORMAT, "scratch offset %zu is not a multiple of %d", m->scratch_offset, DSE_SCRATCH_ALIGN);
    parse_tensors(&r, m);
    widen_f16(&r, m);
    defined = alloc(&r, m->n_tensors, 1);
    parse_inputs(&r, m, defined);
    parse_nodes(&r, m, defined);
    parse_outputs(&r, m, defined);
    free(defined);
    if (!r.st && r.p != r.end) FAIL(&r, DSE_ERR_FORMAT, "%zu trailing bytes after the tables", left(&r));
    for (size_t k = 0; k < m->n_nodes && !r.st; k++) {   /* every node needs a kernel that accepts it */
        dse_node *n = &m->nodes[k];
        int dt = 0;   /* the dtype of the first present output (an RNN may omit Y) */
        for (uint32_t j = 0; j < n->n_out && !dt; j++) if (n->out[j] != DSE_NONE) dt = m->tensors[n->out[j]].dtype;
        /* the first listed kernel for (op, dtype) whose check accepts the node; when all
         * refuse, the message is the reason (each candidate's, named, if several). A variant
         * that is not meant for this node (e.g. the dynamic-int8 kernels for a float node:
         * DYN_I8_NOT_FOR_THIS_NODE, the two-activation MatMul's MATMUL_ACT_NOT_FOR_THIS_NODE for a
         * weighted or float MatMul, the int4-weight kernels' W4_NOT_INT4 for int8 weights, the fp16-arithmetic
         * kernels' FP16_NOT_FOR_THIS_NODE for a float node without fp16_arith, the int8 and int16
         * DequantizeLinear kernels' DEQUANTIZE_OTHER_DTYPE for each other's x) is left out of the message unless it is the only one. */
        char msg[160] = "", first_msg[160] = "", all[240] = "";
        int first = dse__next_kernel((int)n->op, dt, -1, m->isas), kk = first, refused = 0;
        const int64_t act_fn = dse__attr_int(n, DSE_A_act_fn, 0);
        size_t accepted_scratch = 0, accepted_plan = 0;
        uint32_t accepted_packed = 0;
        for (; kk >= 0; kk = dse__next_kernel((int)n->op, dt, kk, m->isas)) {
            dse_why w = {0, NULL, {0, 0, 0, 0}, 0, 0, 0, 0};
            int refuse = dse__kernel_check(kk, m, n, &w);
            if (!refuse && act_fn && (act_fn < 0 || act_fn > 31 || !(w.act_fns >> act_fn & 1))) {
                /* a fused activation function the kernel does not apply: never ignored */
                refuse = 1;
                DSE_WHYF(&w, ACT_FN_NOT_APPLIED, NULL, act_fn, 0, 0, 0);
            }
            if (!refuse) {
                accepted_scratch = w.scratch, accepted_plan = w.scratch_plan, accepted_packed = w.packed;
                break;
            }
            /* an optimised variant that refuses a node (a shape it does not cover, an artifact
             * planned without its scratch) leaves it to the next one, silently: the REF kernel
             * of the op is listed after it and gives the reason if it refuses too */
            if (dse__kernel_isa(kk) != DSE_ISA_REF) continue;
            dse__why_format(&w, msg, sizeof msg);
            if ((w.id == DSE_MSG_DYN_I8_NOT_FOR_THIS_NODE || w.id == DSE_MSG_MATMUL_ACT_NOT_FOR_THIS_NODE ||
                 w.id == DSE_MSG_W4_NOT_INT4 || w.id == DSE_MSG_DEQUANTIZE_OTHER_DTYPE ||
                 w.id == DSE_MSG_FP16_NOT_FOR_THIS_NODE) &&
                (refused || dse__next_kernel((int)n->op, dt, kk, m->isas) >= 0)) continue;
            size_t used = strlen(all);
            if (used + 1 < sizeof all) snprintf(all + used, sizeof all - used, "%s%s: %s", used ? "; " : "", dse__kernel_name(kk), msg);
            if (refused++ == 0) memcpy(first_msg, msg, sizeof msg);
        }
        n->kernel = (uint16_t)(kk >= 0 ? kk : 0);
        n->scratch = kk >= 0 ? accepted_scratch : 0;
        n->scratch_plan = kk >= 0 ? accepted_plan : 0;
        if (first < 0)
            FAIL(&r, DSE_ERR_UNSUPPORTED, "node %zu (%s %s): no kernel for %s output in this build", k, dse_op_name((int)n->op), n->name, dse_dtype_name(dt));
        else if (kk < 0)
            FAIL(&r, DSE_ERR_FORMAT, "node %zu (%s %s): %s", k, dse_op_name((int)n->op), n->name, refused > 1 ? all : first_msg);
        else
            check_node_memory(&r, m, n, k);
        /* a packed tensor is read only by a kernel that said it reads that input's layout */
        for (uint32_t j = 0; j < n->n_in && !r.st && kk >= 0; j++)
            if (n->in[j] != DSE_NONE && m->tensors[n->in[j]].layout != DSE_LAYOUT_PLAIN && (j >= 32 || !(accepted_packed >> j & 1)))
                FAIL(&r, DSE_ERR_FORMAT, "node %zu (%s %s): input %u (%s) is in packed layout %d, which %s does not read", k,
                     dse_op_name((int)n->op), n->name, j, m->tensors[n->in[j]].name, m->tensors[n->in[j]].layout, dse__kernel_name(kk));
    }
    if (!r.st) check_arena_size(&r, m);
    if (r.st) {
        dse_status st = r.st;
        dse_model_free(m);
        return st;
    }
    *out = m;
    return DSE_OK;
}
