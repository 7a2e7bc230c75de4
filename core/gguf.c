/*
 * gguf: the GGUF v2/v3 reader (contract in gguf.h; format in the facts sheet §1).
 *
 * One forward pass over the header with a bounds-checked cursor: every read
 * first checks the bytes left, every size computation uses the overflow
 * builtins, and no allocation is sized from a count before the bytes that
 * count describes are known to exist. The kv and tensor arrays grow
 * geometrically as records are parsed (a claimed kv_count of 2^40 allocates
 * nothing before failing); a string array is walked once to validate every
 * length, then its view array is allocated (n views for n strings that are
 * really in the file, so its size is bounded by the file size).
 *
 * Duplicates are found with open-addressing hash tables (FNV-1a) that are kept
 * for gguf_find_kv / gguf_find_tensor; overlap of tensor data is found by
 * sorting tensor indices by offset. Everything is O(n log n) at worst, so a
 * 262k-token vocabulary and 700+ tensors open in milliseconds.
 *
 * Decisions where the spec leaves room (all documented in messages):
 *  - keys: non-empty, <= 65535 bytes, valid UTF-8 without NUL; tensor names:
 *    1..63 bytes, valid UTF-8 without NUL. String values are raw bytes.
 *  - nested arrays are rejected (ggml does too; no real file has them).
 *  - BOOL bytes must be 0 or 1 (the spec's rule; ggml is laxer).
 *  - n_dims 1..4 (ggml also takes 0); every dim 1..2^63-1, product < 2^63.
 *  - tensor offsets need only be aligned, in the file and non-overlapping (not
 *    ggml's strict running sum); the trailing padding may be missing.
 * Typed getters live in gguf-kv.c.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "quant.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf assumes a little-endian host"
#endif

#define GGUF_KEY_MAX 65535u
#define GGUF_NAME_MAX 64u /* names are shorter than this */
/* Smallest possible records: key len + 1 key byte + type + a 1-byte value; a
 * tensor info with a 1-byte name and one dim. */
#define GGUF_MIN_KV_BYTES (8u + 1u + 4u + 1u)
#define GGUF_MIN_TENSOR_BYTES (8u + 1u + 4u + 8u + 4u + 8u)

/* The parse cursor and the context for messages. */
struct rd {
    struct gguf_file *f;
    const uint8_t *p; /* == f->base */
    uint64_t size;
    uint64_t pos;
    char field[192]; /* "metadata kv 3 ('tokenizer.ggml.tokens')" */
};

static hearth_status rd_fail(const struct rd *r, uint64_t off, const char *fmt, ...)
    ERR_PRINTF(3, 4);

static hearth_status rd_fail(const struct rd *r, uint64_t off, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return err_set(HEARTH_ERR_BAD_FILE, "%s: offset %llu: %s: %s", r->f->path,
                   (unsigned long long)off, r->field, what);
}

static void rd_field(struct rd *r, const char *fmt, ...) ERR_PRINTF(2, 3);

static void rd_field(struct rd *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->field, sizeof r->field, fmt, ap);
    va_end(ap);
}

/*
 * Appends " ('name')" to a field, with at most 64 bytes of the name and any
 * byte outside printable ASCII shown as '?', so hostile names stay one line.
 */
static void rd_field_name(struct rd *r, const char *prefix, uint64_t i, const uint8_t *s,
                          uint64_t len)
{
    char buf[72];
    size_t n = len > 64 ? 64 : (size_t)len;
    for (size_t k = 0; k < n; k++)
        buf[k] = (s[k] >= 0x20 && s[k] < 0x7f && s[k] != '\'') ? (char)s[k] : '?';
    buf[n] = '\0';
    rd_field(r, "%s %llu ('%s%s')", prefix, (unsigned long long)i, buf, len > 64 ? "..." : "");
}

static uint64_t rd_left(const struct rd *r)
{
    return r->size - r->pos;
}

/* Reads n (<= 8) bytes as a little-endian integer; what names the field. */
static hearth_status rd_uint(struct rd *r, unsigned n, const char *what, uint64_t *out)
{
    *out = 0;
    if (rd_left(r) < n)
        return rd_fail(r, r->pos, "%s: needs %u bytes but only %llu are left in the file", what, n,
                       (unsigned long long)rd_left(r));
    uint64_t v = 0;
    memcpy(&v, r->p + r->pos, n);
    r->pos += n;
    *out = v;
    return HEARTH_OK;
}

static hearth_status rd_u32(struct rd *r, const char *what, uint32_t *out)
{
    uint64_t v = 0;
    hearth_status st = rd_uint(r, 4, what, &v);
    *out = (uint32_t)v;
    return st;
}

/* A GGUF string: u64 length (checked against the bytes left), then the bytes. */
static hearth_status rd_str(struct rd *r, const char *what, struct gguf_str *out)
{
    uint64_t at = r->pos, len = 0;
    char lw[48];
    snprintf(lw, sizeof lw, "%s length", what);
    hearth_status st = rd_uint(r, 8, lw, &len);
    if (st != HEARTH_OK)
        return st;
    if (len > rd_left(r))
        return rd_fail(r, at, "%s length %llu exceeds the %llu bytes left in the file", what,
                       (unsigned long long)len, (unsigned long long)rd_left(r));
    out->len = len;
    out->ptr = (const char *)r->p + r->pos;
    r->pos += len;
    return HEARTH_OK;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), no NUL: -1, or the bad byte's index. */
static int64_t utf8_bad_at(const uint8_t *s, uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0)
            return (int64_t)i;
        if (c < 0x80) {
            i++;
            continue;
        }
        unsigned k;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return (int64_t)i;
        }
        if (n - i <= k)
            return (int64_t)i;
        for (unsigned j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return (int64_t)i;
            cp = (cp << 6) | (s[i + j] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return (int64_t)i;
        i += k + 1;
    }
    return -1;
}

size_t gguf_vtype_size(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_INT8:
    case GGUF_VT_BOOL:
        return 1;
    case GGUF_VT_UINT16:
    case GGUF_VT_INT16:
        return 2;
    case GGUF_VT_UINT32:
    case GGUF_VT_INT32:
    case GGUF_VT_FLOAT32:
        return 4;
    case GGUF_VT_UINT64:
    case GGUF_VT_INT64:
    case GGUF_VT_FLOAT64:
        return 8;
    case GGUF_VT_STRING:
    case GGUF_VT_ARRAY:
    case GGUF_VT_COUNT:
        break;
    }
    return 0;
}

const char *gguf_vtype_name(enum gguf_vtype t)
{
    static const char *const names[GGUF_VT_COUNT] = {
        "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
        "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
    return (unsigned)t < GGUF_VT_COUNT ? names[t] : "unknown";
}

bool gguf_str_eq(struct gguf_str s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}

static uint64_t name_hash(const char *s, uint64_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Array-of-scalars payload: n elements of size es, BOOL elements 0/1. */
static hearth_status rd_scalar_array(struct rd *r, enum gguf_vtype et, uint64_t n)
{
    uint64_t es = gguf_vtype_size(et), bytes;
    if (__builtin_mul_overflow(n, es, &bytes))
        return rd_fail(r, r->pos, "array of %llu %s elements needs more than 2^64 bytes",
                       (unsigned long long)n, gguf_vtype_name(et));
    if (bytes > rd_left(r))
        return rd_fail(r, r->pos,
                       "array of %llu %s elements needs %llu bytes but only %llu are left in "
                       "the file",
                       (unsigned long long)n, gguf_vtype_name(et), (unsigned long long)bytes,
                       (unsigned long long)rd_left(r));
    if (et == GGUF_VT_BOOL) {
        for (uint64_t i = 0; i < n; i++)
            if (r->p[r->pos + i] > 1)
                return rd_fail(r, r->pos + i, "bool element %llu is %u, expected 0 or 1",
                               (unsigned long long)i, r->p[r->pos + i]);
    }
    r->pos += bytes;
    return HEARTH_OK;
}

/* Array of strings: validates every length, then builds kv->arr_strs. */
static hearth_status rd_string_array(struct rd *r, struct gguf_kv *kv)
{
    uint64_t n = kv->arr_n, need;
    if (__builtin_mul_overflow(n, (uint64_t)8, &need))
        return rd_fail(r, r->pos, "array of %llu strings needs more than 2^64 bytes",
                       (unsigned long long)n);
    if (need > rd_left(r))
        return rd_fail(r, r->pos,
                       "array of %llu strings needs at least %llu bytes but only %llu are left "
                       "in the file",
                       (unsigned long long)n, (unsigned long long)need,
                       (unsigned long long)rd_left(r));
    uint64_t start = r->pos;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t at = r->pos, len;
        if (rd_left(r) < 8)
            return rd_fail(r, at,
                           "array string %llu: length needs 8 bytes but only %llu are "
                           "left in the file",
                           (unsigned long long)i, (unsigned long long)rd_left(r));
        memcpy(&len, r->p + at, 8);
        r->pos += 8;
        if (len > rd_left(r))
            return rd_fail(r, at,
                           "array string %llu: length %llu exceeds the %llu bytes left in "
                           "the file",
                           (unsigned long long)i, (unsigned long long)len,
                           (unsigned long long)rd_left(r));
        r->pos += len;
    }
    /* n strings exist, each >= 8 bytes: n * sizeof(view) is bounded by twice the file size. */
    kv->arr_strs = malloc(n ? (size_t)n * sizeof *kv->arr_strs : 1);
    if (!kv->arr_strs)
        return err_set(HEARTH_ERR_NO_MEMORY, "%s: %s: out of memory for %llu string views",
                       r->f->path, r->field, (unsigned long long)n);
    uint64_t p = start;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        memcpy(&len, r->p + p, 8);
        kv->arr_strs[i].len = len;
        kv->arr_strs[i].ptr = (const char *)r->p + p + 8;
        p += 8 + len;
    }
    return HEARTH_OK;
}

static hearth_status rd_kv(struct rd *r, uint64_t i, struct gguf_kv *kv)
{
    hearth_status st;
    memset(kv, 0, sizeof *kv);
    kv->offset = r->pos;
    rd_field(r, "metadata kv %llu", (unsigned long long)i);
    if ((st = rd_str(r, "key", &kv->key)) != HEARTH_OK)
        return st;
    if (kv->key.len == 0)
        return rd_fail(r, kv->offset, "key is empty, expected a non-empty key");
    if (kv->key.len > GGUF_KEY_MAX)
        return rd_fail(r, kv->offset, "key length %llu, expected at most %u",
                       (unsigned long long)kv->key.len, GGUF_KEY_MAX);
    int64_t bad = utf8_bad_at((const uint8_t *)kv->key.ptr, kv->key.len);
    if (bad >= 0)
        return rd_fail(r, kv->offset + 8 + (uint64_t)bad,
                       "key byte %lld is 0x%02x, expected valid UTF-8 without NUL", (long long)bad,
                       (uint8_t)kv->key.ptr[bad]);
    rd_field_name(r, "metadata kv", i, (const uint8_t *)kv->key.ptr, kv->key.len);
    uint64_t at = r->pos;
    uint32_t type;
    if ((st = rd_u32(r, "value type", &type)) != HEARTH_OK)
        return st;
    if (type >= GGUF_VT_COUNT)
        return rd_fail(r, at, "value type id %u, expected 0..12", type);
    kv->type = (enum gguf_vtype)type;
    kv->data = r->p + r->pos;
    if (kv->type == GGUF_VT_STRING) {
        struct gguf_str s;
        return rd_str(r, "string value", &s);
    }
    if (kv->type != GGUF_VT_ARRAY) {
        size_t es = gguf_vtype_size(kv->type);
        if (rd_left(r) < es)
            return rd_fail(r, r->pos, "%s value needs %zu bytes but only %llu are left in the file",
                           gguf_vtype_name(kv->type), es, (unsigned long long)rd_left(r));
        if (kv->type == GGUF_VT_BOOL && r->p[r->pos] > 1)
            return rd_fail(r, r->pos, "bool value %u, expected 0 or 1", r->p[r->pos]);
        r->pos += es;
        return HEARTH_OK;
    }
    at = r->pos;
    uint32_t et;
    if ((st = rd_u32(r, "array element type", &et)) != HEARTH_OK)
        return st;
    if (et == GGUF_VT_ARRAY)
        return rd_fail(r, at,
                       "array element type 9 (ARRAY): nested arrays are not supported, "
                       "expected a scalar or STRING element type");
    if (et >= GGUF_VT_COUNT)
        return rd_fail(r, at, "array element type id %u, expected 0..12", et);
    kv->arr_type = (enum gguf_vtype)et;
    if ((st = rd_uint(r, 8, "array count", &kv->arr_n)) != HEARTH_OK)
        return st;
    kv->data = r->p + r->pos;
    if (kv->arr_type == GGUF_VT_STRING)
        return rd_string_array(r, kv);
    return rd_scalar_array(r, kv->arr_type, kv->arr_n);
}

static hearth_status rd_tensor(struct rd *r, uint64_t i, struct gguf_tensor *t)
{
    hearth_status st;
    memset(t, 0, sizeof *t);
    t->info_offset = r->pos;
    rd_field(r, "tensor info %llu", (unsigned long long)i);
    if ((st = rd_str(r, "name", &t->name)) != HEARTH_OK)
        return st;
    if (t->name.len == 0 || t->name.len >= GGUF_NAME_MAX)
        return rd_fail(r, t->info_offset, "name length %llu, expected 1 to %u",
                       (unsigned long long)t->name.len, GGUF_NAME_MAX - 1);
    int64_t bad = utf8_bad_at((const uint8_t *)t->name.ptr, t->name.len);
    if (bad >= 0)
        return rd_fail(r, t->info_offset + 8 + (uint64_t)bad,
                       "name byte %lld is 0x%02x, expected valid UTF-8 without NUL", (long long)bad,
                       (uint8_t)t->name.ptr[bad]);
    rd_field_name(r, "tensor info", i, (const uint8_t *)t->name.ptr, t->name.len);
    uint64_t at = r->pos;
    if ((st = rd_u32(r, "n_dims", &t->n_dims)) != HEARTH_OK)
        return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return rd_fail(r, at, "n_dims %u, expected 1 to %d", t->n_dims, GGUF_MAX_DIMS);
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        char what[16];
        snprintf(what, sizeof what, "ne[%u]", d);
        at = r->pos;
        if ((st = rd_uint(r, 8, what, &t->ne[d])) != HEARTH_OK)
            return st;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return rd_fail(r, at, "ne[%u] = %llu, expected 1 to 2^63-1", d,
                           (unsigned long long)t->ne[d]);
        if (__builtin_mul_overflow(n_el, t->ne[d], &n_el) || n_el > (uint64_t)INT64_MAX)
            return rd_fail(r, at, "ne[%u] = %llu makes the element count overflow 2^63-1", d,
                           (unsigned long long)t->ne[d]);
    }
    at = r->pos;
    uint32_t type;
    if ((st = rd_u32(r, "type", &type)) != HEARTH_OK)
        return st;
    const struct quant_traits *q = type < HEARTH_DTYPE_COUNT ? quant_get((hearth_dtype)type) : NULL;
    if (!q)
        return rd_fail(r, at,
                       "type id %u is not a known ggml type, expected one of the ids in "
                       "0..%d that are not retired",
                       type, HEARTH_DTYPE_COUNT - 1);
    t->type = (hearth_dtype)type;
    uint64_t row_bytes, rows = n_el / t->ne[0];
    if (!quant_row_bytes(t->type, t->ne[0], &row_bytes))
        return rd_fail(r, at, "ne[0] = %llu is not a multiple of the %s block size %lld",
                       (unsigned long long)t->ne[0], q->name, (long long)q->blck);
    if (__builtin_mul_overflow(row_bytes, rows, &t->nbytes) || t->nbytes > (uint64_t)INT64_MAX)
        return rd_fail(r, at, "%s data of %llu elements overflows 2^63-1 bytes", q->name,
                       (unsigned long long)n_el);
    return rd_uint(r, 8, "offset", &t->offset);
}

/* Grows *arr (elements of size es) to hold at least n+1 elements. */
static bool grow(void **arr, uint64_t *cap, uint64_t n, size_t es)
{
    if (n < *cap)
        return true;
    uint64_t nc = *cap ? 2 * *cap : 64;
    void *p = realloc(*arr, (size_t)nc * es);
    if (!p)
        return false;
    *arr = p;
    *cap = nc;
    return true;
}

static const struct gguf_str *rec_name(const struct gguf_file *f, bool is_kv, uint64_t i)
{
    return is_kv ? &f->kv[i].key : &f->tensors[i].name;
}

static uint64_t rec_offset(const struct gguf_file *f, bool is_kv, uint64_t i)
{
    return is_kv ? f->kv[i].offset : f->tensors[i].info_offset;
}

/* Builds the hash table over the n keys (or tensor names); the first duplicate is BAD_FILE. */
static hearth_status build_hash(struct rd *r, bool is_kv, uint64_t n, size_t **slots_out,
                                size_t *cap_out)
{
    const char *what = is_kv ? "key" : "tensor name";
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return err_set(HEARTH_ERR_NO_MEMORY, "%s: out of memory for a %s index", r->f->path, what);
    for (uint64_t i = 0; i < n; i++) {
        const struct gguf_str *s = rec_name(r->f, is_kv, i);
        size_t p = (size_t)name_hash(s->ptr, s->len) & (cap - 1);
        for (; slots[p]; p = (p + 1) & (cap - 1)) {
            uint64_t first = slots[p] - 1;
            const struct gguf_str *o = rec_name(r->f, is_kv, first);
            if (o->len == s->len && memcmp(o->ptr, s->ptr, (size_t)s->len) == 0) {
                free(slots);
                rd_field_name(r, is_kv ? "metadata kv" : "tensor info", i, (const uint8_t *)s->ptr,
                              s->len);
                return rd_fail(r, rec_offset(r->f, is_kv, i),
                               "duplicate %s, first used by record %llu at offset %llu; "
                               "expected unique %ss",
                               what, (unsigned long long)first,
                               (unsigned long long)rec_offset(r->f, is_kv, first), what);
            }
        }
        slots[p] = (size_t)i + 1;
    }
    *slots_out = slots;
    *cap_out = cap;
    return HEARTH_OK;
}

static int64_t hash_find(const struct gguf_file *f, bool is_kv, const char *name)
{
    size_t cap = is_kv ? f->kv_hash_cap_ : f->tensor_hash_cap_;
    const size_t *slots = is_kv ? f->kv_hash_ : f->tensor_hash_;
    if (!cap || !name)
        return -1;
    size_t n = strlen(name);
    for (size_t p = (size_t)name_hash(name, n) & (cap - 1); slots[p]; p = (p + 1) & (cap - 1)) {
        const struct gguf_str *s = rec_name(f, is_kv, slots[p] - 1);
        if (s->len == n && memcmp(s->ptr, name, n) == 0)
            return (int64_t)(slots[p] - 1);
    }
    return -1;
}

const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key)
{
    int64_t i = hash_find(f, true, key);
    return i < 0 ? NULL : &f->kv[i];
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    int64_t i = hash_find(f, false, name);
    return i < 0 ? NULL : &f->tensors[i];
}

/* general.alignment, if present: UINT32, nonzero power of two. */
static hearth_status rd_alignment(struct rd *r)
{
    r->f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = hash_find(r->f, true, "general.alignment");
    if (i < 0)
        return HEARTH_OK;
    const struct gguf_kv *kv = &r->f->kv[i];
    uint64_t at = (uint64_t)(kv->data - r->p);
    rd_field_name(r, "metadata kv", (uint64_t)i, (const uint8_t *)kv->key.ptr, kv->key.len);
    if (kv->type != GGUF_VT_UINT32)
        return rd_fail(r, at - 4, "general.alignment has type %s, expected UINT32",
                       gguf_vtype_name(kv->type));
    uint32_t a;
    memcpy(&a, kv->data, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return rd_fail(r, at, "general.alignment is %u, expected a nonzero power of two", a);
    r->f->alignment = a;
    return HEARTH_OK;
}

struct off_idx {
    uint64_t off;
    size_t idx;
};

static int cmp_off_idx(const void *a, const void *b)
{
    const struct off_idx *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Data section: aligned, inside the file, no two tensors overlapping. */
static hearth_status rd_data(struct rd *r)
{
    struct gguf_file *f = r->f;
    uint64_t a = f->alignment, end_infos = r->pos;
    uint64_t rem = end_infos % a;
    f->data_offset = end_infos;
    f->data_size = 0;
    if (rem && __builtin_add_overflow(end_infos, a - rem, &f->data_offset))
        return rd_fail(r, end_infos, "data section start overflows");
    if (f->n_tensors == 0)
        return HEARTH_OK;
    rd_field(r, "padding");
    if (f->data_offset > f->size)
        return rd_fail(r, end_infos,
                       "file ends at %llu, expected padding up to the data "
                       "section at %llu (alignment %llu)",
                       (unsigned long long)f->size, (unsigned long long)f->data_offset,
                       (unsigned long long)a);
    uint64_t room = f->size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        rd_field_name(r, "tensor info", i, (const uint8_t *)t->name.ptr, t->name.len);
        uint64_t at = t->info_offset + 8 + t->name.len + 4 + 8ull * t->n_dims + 4;
        if (t->offset % a)
            return rd_fail(r, at, "data offset %llu is not a multiple of the alignment %llu",
                           (unsigned long long)t->offset, (unsigned long long)a);
        if (t->offset > room || t->nbytes > room - t->offset)
            return rd_fail(r, at,
                           "data [%llu, +%llu) ends past the end of the file (%llu bytes "
                           "of data section), expected it inside the file",
                           (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                           (unsigned long long)room);
        t->data = f->base + f->data_offset + t->offset;
        if (t->offset + t->nbytes > f->data_size)
            f->data_size = t->offset + t->nbytes;
    }
    /* Overlap: sort by offset, each must start at or after the previous end. */
    struct off_idx *order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order)
        return err_set(HEARTH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    bool sorted = true;
    for (size_t i = 0; i < f->n_tensors; i++) {
        order[i] = (struct off_idx){f->tensors[i].offset, i};
        if (i && f->tensors[i].offset < f->tensors[i - 1].offset)
            sorted = false;
    }
    if (!sorted) /* writers emit offsets in order: skip the sort in the usual case */
        qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_off_idx);
    hearth_status st = HEARTH_OK;
    for (size_t k = 1; k < f->n_tensors; k++) {
        const struct gguf_tensor *p = &f->tensors[order[k - 1].idx];
        const struct gguf_tensor *t = &f->tensors[order[k].idx];
        if (t->offset < p->offset + p->nbytes) {
            rd_field_name(r, "tensor info", order[k].idx, (const uint8_t *)t->name.ptr,
                          t->name.len);
            st = rd_fail(r, t->info_offset + 8 + t->name.len + 4 + 8ull * t->n_dims + 4,
                         "data [%llu, %llu) overlaps tensor %zu at [%llu, %llu), expected "
                         "disjoint tensors",
                         (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes),
                         order[k - 1].idx, (unsigned long long)p->offset,
                         (unsigned long long)(p->offset + p->nbytes));
            break;
        }
    }
    free(order);
    return st;
}

static hearth_status rd_header(struct rd *r)
{
    struct gguf_file *f = r->f;
    hearth_status st;
    uint32_t magic;
    rd_field(r, "header");
    if ((st = rd_u32(r, "magic", &magic)) != HEARTH_OK)
        return st;
    if (magic != GGUF_MAGIC)
        return rd_fail(r, 0,
                       "magic is %02x %02x %02x %02x, expected \"GGUF\" (47 47 55 46): "
                       "not a GGUF file",
                       r->p[0], r->p[1], r->p[2], r->p[3]);
    if ((st = rd_u32(r, "version", &f->version)) != HEARTH_OK)
        return st;
    if (f->version != 0 && (f->version & 0xffffu) == 0)
        return rd_fail(r, 4,
                       "version reads as 0x%08x: big-endian GGUF files are not supported, "
                       "expected a little-endian file (version 2 or 3)",
                       f->version);
    if (f->version == 1)
        return rd_fail(r, 4, "version 1 (32-bit counts) is no longer supported, expected 2 or 3");
    if (f->version != 2 && f->version != 3)
        return rd_fail(r, 4, "version %u, expected 2 or 3", f->version);
    uint64_t nt = 0, nkv = 0, need_t, need_kv, need;
    if ((st = rd_uint(r, 8, "tensor_count", &nt)) != HEARTH_OK ||
        (st = rd_uint(r, 8, "kv_count", &nkv)) != HEARTH_OK)
        return st;
    uint64_t left = rd_left(r);
    if (__builtin_mul_overflow(nt, (uint64_t)GGUF_MIN_TENSOR_BYTES, &need_t) || need_t > left)
        return rd_fail(r, 8,
                       "tensor_count %llu needs at least %u bytes each but only %llu bytes "
                       "follow the header",
                       (unsigned long long)nt, GGUF_MIN_TENSOR_BYTES, (unsigned long long)left);
    if (__builtin_mul_overflow(nkv, (uint64_t)GGUF_MIN_KV_BYTES, &need_kv) || need_kv > left)
        return rd_fail(r, 16,
                       "kv_count %llu needs at least %u bytes each but only %llu bytes "
                       "follow the header",
                       (unsigned long long)nkv, GGUF_MIN_KV_BYTES, (unsigned long long)left);
    if (__builtin_add_overflow(need_t, need_kv, &need) || need > left)
        return rd_fail(r, 16,
                       "%llu tensor infos and %llu kvs need at least %llu bytes but only "
                       "%llu follow the header",
                       (unsigned long long)nt, (unsigned long long)nkv,
                       (unsigned long long)(need_t + need_kv), (unsigned long long)left);
    f->n_tensors = nt;
    f->n_kv = nkv;
    return HEARTH_OK;
}

static hearth_status rd_all(struct rd *r)
{
    struct gguf_file *f = r->f;
    hearth_status st;
    if ((st = rd_header(r)) != HEARTH_OK)
        return st;
    uint64_t n_kv = f->n_kv, n_t = f->n_tensors, cap = 0;
    /* Counts stay 0 until the records exist, so close() frees only what was built. */
    f->n_kv = f->n_tensors = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        if (!grow((void **)&f->kv, &cap, i, sizeof *f->kv))
            return err_set(HEARTH_ERR_NO_MEMORY, "%s: out of memory for metadata", f->path);
        st = rd_kv(r, i, &f->kv[i]);
        if (f->kv[i].arr_strs || st == HEARTH_OK)
            f->n_kv = i + 1; /* so close() frees this record's views */
        if (st != HEARTH_OK)
            return st;
    }
    if ((st = build_hash(r, true, n_kv, &f->kv_hash_, &f->kv_hash_cap_)) != HEARTH_OK)
        return st;
    if ((st = rd_alignment(r)) != HEARTH_OK)
        return st;
    cap = 0;
    for (uint64_t i = 0; i < n_t; i++) {
        if (!grow((void **)&f->tensors, &cap, i, sizeof *f->tensors))
            return err_set(HEARTH_ERR_NO_MEMORY, "%s: out of memory for tensor infos", f->path);
        if ((st = rd_tensor(r, i, &f->tensors[i])) != HEARTH_OK)
            return st;
        f->n_tensors = i + 1;
    }
    if ((st = build_hash(r, false, n_t, &f->tensor_hash_, &f->tensor_hash_cap_)) != HEARTH_OK)
        return st;
    return rd_data(r);
}

static hearth_status file_new(const char *path, struct gguf_file **out)
{
    struct gguf_file *f = calloc(1, sizeof *f);
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!f || !p) {
        free(f);
        free(p);
        return err_set(HEARTH_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    memcpy(p, path, n + 1);
    f->path = p;
    f->fd_ = -1;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    *out = f;
    return HEARTH_OK;
}

static hearth_status parse(struct gguf_file *f)
{
    struct rd r = {.f = f, .p = f->base, .size = f->size, .pos = 0};
    return rd_all(&r);
}

hearth_status gguf_open_memory(const void *buf, size_t size, const char *name,
                               struct gguf_file **out)
{
    *out = NULL;
    struct gguf_file *f = NULL;
    hearth_status st = file_new(name ? name : "(memory)", &f);
    if (st != HEARTH_OK || !f)
        return st;
    static const uint8_t empty[1];
    f->base = size ? buf : empty; /* views must never be NULL + offset */
    f->size = size;
    if ((st = parse(f)) != HEARTH_OK) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return HEARTH_OK;
}

hearth_status gguf_open(const char *path, struct gguf_file **out)
{
    *out = NULL;
    struct gguf_file *f = NULL;
    hearth_status st = file_new(path, &f);
    if (st != HEARTH_OK || !f)
        return st;
    struct stat sb;
    f->fd_ = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd_ < 0) {
        st = err_set(HEARTH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(f->fd_, &sb) != 0) {
        st = err_set(HEARTH_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = err_set(HEARTH_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    f->size = (uint64_t)sb.st_size;
    if (f->size == 0) {
        st = err_set(HEARTH_ERR_BAD_FILE,
                     "%s: offset 0: header: the file is empty, expected a "
                     "GGUF header of at least 24 bytes",
                     path);
        goto fail;
    }
    if (f->size > SIZE_MAX) {
        st = err_set(HEARTH_ERR_IO, "%s: too large to map", path);
        goto fail;
    }
    void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, f->fd_, 0);
    if (m == MAP_FAILED) {
        st = err_set(HEARTH_ERR_IO, "%s: cannot map %llu bytes: %s", path,
                     (unsigned long long)f->size, strerror(errno));
        goto fail;
    }
    f->base = m;
    f->owns_map_ = true;
    if ((st = parse(f)) != HEARTH_OK)
        goto fail;
    *out = f;
    return HEARTH_OK;
fail:
    gguf_close(f);
    return st;
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    for (uint64_t i = 0; i < f->n_kv; i++)
        free(f->kv[i].arr_strs);
    free(f->kv);
    free(f->tensors);
    free(f->kv_hash_);
    free(f->tensor_hash_);
    if (f->owns_map_)
        munmap((void *)f->base, (size_t)f->size);
    if (f->fd_ >= 0)
        close(f->fd_);
    free(f->path);
    free(f);
}
