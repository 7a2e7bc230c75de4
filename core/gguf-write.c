/*
 * gguf-write: the GGUF v3 writer (API and contract in gguf-write.h).
 *
 * Each metadata value is serialized when it is set into its own buffer holding
 * exactly the bytes that follow the key in the file (u32 type, then the value),
 * so producing the header is a sequence of memcpy and replacing a key frees one
 * buffer. Keys and tensor names are found through small open-addressing hash
 * tables (FNV-1a) that are rebuilt when they fill or after a removal: a
 * 150k-token vocabulary or 1000 tensors never cost a quadratic scan.
 *
 * The layout is recomputed whenever it is asked for (layout, header_to_memory,
 * open) rather than maintained per add_tensor, because general.alignment may be
 * set after the tensors are declared. Tensor data is written with pwrite at its
 * final offset, which is why tensors may arrive in any order; gaps (padding,
 * and unwritten tensors in sparse mode) are left to ftruncate, which reads back
 * as zeros.
 *
 * Byte order: the file is little-endian and so is every host hearth builds for
 * (checked below), so scalars and scalar arrays are copied as they are.
 */
#include "gguf-write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "quant.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf-write assumes a little-endian host"
#endif

#define W_NAME_MAX 64 /* tensor names are < 64 bytes (the reader's rule) */

struct w_kv {
    char *key; /* NUL-terminated copy */
    size_t key_len;
    uint8_t *val; /* u32 type id, then the encoded value */
    size_t val_len;
};

struct w_tensor {
    char name[W_NAME_MAX];
    size_t name_len;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    hearth_dtype type;
    uint64_t nbytes;
    uint64_t offset;  /* relative to the data section; set by layout */
    uint64_t written; /* bytes handed to write_tensor_* so far */
};

/* index+1 of each entry, 0 = empty slot; cap is a power of two, at most half full */
struct w_hash {
    size_t *slots;
    size_t cap;
};

struct gguf_writer {
    struct w_kv *kv;
    size_t n_kv, cap_kv;
    struct w_hash kv_hash;
    struct w_tensor *t;
    size_t n_t, cap_t;
    struct w_hash t_hash;
    uint64_t alignment;
    uint64_t header_len;  /* bytes before padding; set by layout */
    uint64_t data_offset; /* set by layout */
    uint64_t file_size;   /* set by layout */
    int fd;               /* -1 until open */
    bool opened;          /* open was called (even if the fd is closed now) */
    char *path;
};

static uint64_t w_fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static const char *kv_key(const struct gguf_writer *w, size_t i, size_t *len)
{
    *len = w->kv[i].key_len;
    return w->kv[i].key;
}

static const char *t_key(const struct gguf_writer *w, size_t i, size_t *len)
{
    *len = w->t[i].name_len;
    return w->t[i].name;
}

typedef const char *(*w_key_fn)(const struct gguf_writer *w, size_t i, size_t *len);

/* Index of the entry named s, or -1. */
static int64_t w_hash_find(const struct gguf_writer *w, const struct w_hash *h, w_key_fn key,
                           const char *s, size_t n)
{
    if (!h->cap)
        return -1;
    size_t mask = h->cap - 1;
    for (size_t p = (size_t)w_fnv(s, n) & mask;; p = (p + 1) & mask) {
        size_t e = h->slots[p];
        if (!e)
            return -1;
        size_t len;
        const char *k = key(w, e - 1, &len);
        if (len == n && memcmp(k, s, n) == 0)
            return (int64_t)(e - 1);
    }
}

/* Rebuilds h for entries 0..n-1 with room for at least want entries. */
static hearth_status w_hash_rebuild(const struct gguf_writer *w, struct w_hash *h, w_key_fn key,
                                    size_t n, size_t want)
{
    size_t cap = 16;
    while (cap < 2 * want)
        cap *= 2;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory for a hash table");
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *k = key(w, i, &len);
        size_t p = (size_t)w_fnv(k, len) & (cap - 1);
        while (slots[p])
            p = (p + 1) & (cap - 1);
        slots[p] = i + 1;
    }
    free(h->slots);
    h->slots = slots;
    h->cap = cap;
    return HEARTH_OK;
}

hearth_status gguf_writer_create(struct gguf_writer **out)
{
    *out = NULL;
    struct gguf_writer *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory");
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    w->fd = -1;
    *out = w;
    return HEARTH_OK;
}

void gguf_writer_destroy(struct gguf_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    free(w->kv);
    free(w->kv_hash.slots);
    free(w->t);
    free(w->t_hash.slots);
    free(w->path);
    free(w);
}

static hearth_status w_check_open(const struct gguf_writer *w, const char *what)
{
    if (w->opened)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: %s after gguf_writer_open", what);
    return HEARTH_OK;
}

/*
 * Stores key -> val (val_len bytes, ownership taken, freed on failure too).
 * Replaces an existing key in place.
 */
static hearth_status w_put(struct gguf_writer *w, const char *key, uint8_t *val, size_t val_len)
{
    hearth_status st;
    if (!key || !key[0]) {
        free(val);
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: empty metadata key");
    }
    if ((st = w_check_open(w, "setting a key")) != HEARTH_OK) {
        free(val);
        return st;
    }
    size_t klen = strlen(key);
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t type, a;
        memcpy(&type, val, 4);
        if (type != GGUF_VT_UINT32 || val_len != 8) {
            free(val);
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "gguf writer: general.alignment must be a UINT32");
        }
        memcpy(&a, val + 4, 4);
        if (a == 0 || (a & (a - 1)) != 0) {
            free(val);
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "gguf writer: general.alignment %u is not a nonzero power of two", a);
        }
        w->alignment = a;
    }
    int64_t at = w_hash_find(w, &w->kv_hash, kv_key, key, klen);
    if (at >= 0) {
        free(w->kv[at].val);
        w->kv[at].val = val;
        w->kv[at].val_len = val_len;
        return HEARTH_OK;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        struct w_kv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv)
            goto oom;
        w->kv = kv;
        w->cap_kv = cap;
    }
    if (2 * (w->n_kv + 1) > w->kv_hash.cap &&
        w_hash_rebuild(w, &w->kv_hash, kv_key, w->n_kv, 2 * (w->n_kv + 1)) != HEARTH_OK)
        goto oom;
    char *kcopy = malloc(klen + 1);
    if (!kcopy)
        goto oom;
    memcpy(kcopy, key, klen + 1);
    w->kv[w->n_kv] = (struct w_kv){kcopy, klen, val, val_len};
    size_t p = (size_t)w_fnv(key, klen) & (w->kv_hash.cap - 1);
    while (w->kv_hash.slots[p])
        p = (p + 1) & (w->kv_hash.cap - 1);
    w->kv_hash.slots[p] = ++w->n_kv;
    return HEARTH_OK;
oom:
    free(val);
    return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory setting '%s'", key);
}

/* A buffer holding the u32 type followed by n payload bytes copied from p. */
static uint8_t *w_val(uint32_t type, const void *p, size_t n)
{
    uint8_t *v = malloc(4 + n);
    if (!v)
        return NULL;
    memcpy(v, &type, 4);
    if (n)
        memcpy(v + 4, p, n);
    return v;
}

static hearth_status w_scalar(struct gguf_writer *w, const char *key, uint32_t type, const void *p,
                              size_t n)
{
    uint8_t *v = w_val(type, p, n);
    if (!v)
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory setting '%s'",
                       key ? key : "");
    return w_put(w, key, v, 4 + n);
}

hearth_status gguf_writer_set_u8(struct gguf_writer *w, const char *key, uint8_t v)
{
    return w_scalar(w, key, GGUF_VT_UINT8, &v, 1);
}
hearth_status gguf_writer_set_i8(struct gguf_writer *w, const char *key, int8_t v)
{
    return w_scalar(w, key, GGUF_VT_INT8, &v, 1);
}
hearth_status gguf_writer_set_u16(struct gguf_writer *w, const char *key, uint16_t v)
{
    return w_scalar(w, key, GGUF_VT_UINT16, &v, 2);
}
hearth_status gguf_writer_set_i16(struct gguf_writer *w, const char *key, int16_t v)
{
    return w_scalar(w, key, GGUF_VT_INT16, &v, 2);
}
hearth_status gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    return w_scalar(w, key, GGUF_VT_UINT32, &v, 4);
}
hearth_status gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    return w_scalar(w, key, GGUF_VT_INT32, &v, 4);
}
hearth_status gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
    return w_scalar(w, key, GGUF_VT_UINT64, &v, 8);
}
hearth_status gguf_writer_set_i64(struct gguf_writer *w, const char *key, int64_t v)
{
    return w_scalar(w, key, GGUF_VT_INT64, &v, 8);
}
hearth_status gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    return w_scalar(w, key, GGUF_VT_FLOAT32, &v, 4);
}
hearth_status gguf_writer_set_f64(struct gguf_writer *w, const char *key, double v)
{
    return w_scalar(w, key, GGUF_VT_FLOAT64, &v, 8);
}
hearth_status gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return w_scalar(w, key, GGUF_VT_BOOL, &b, 1);
}

hearth_status gguf_writer_set_str_n(struct gguf_writer *w, const char *key, const char *s,
                                    uint64_t len)
{
    if (!s && len)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: NULL string for '%s'", key ? key : "");
    if (len > SIZE_MAX - 12)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: string too long for '%s'",
                       key ? key : "");
    uint8_t *v = malloc(12 + (size_t)len);
    if (!v)
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory setting '%s'",
                       key ? key : "");
    uint32_t type = GGUF_VT_STRING;
    memcpy(v, &type, 4);
    memcpy(v + 4, &len, 8);
    if (len)
        memcpy(v + 12, s, (size_t)len);
    return w_put(w, key, v, 12 + (size_t)len);
}

hearth_status gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *s)
{
    if (!s)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: NULL string for '%s'", key ? key : "");
    return gguf_writer_set_str_n(w, key, s, strlen(s));
}

hearth_status gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem,
                                  uint64_t n, const void *data)
{
    size_t es = gguf_vtype_size(elem);
    if (!es)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "gguf writer: '%s': array element type %d is not a scalar type",
                       key ? key : "", (int)elem);
    uint64_t bytes, total;
    if (__builtin_mul_overflow(n, (uint64_t)es, &bytes) ||
        __builtin_add_overflow(bytes, (uint64_t)16, &total) || total > SIZE_MAX)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: '%s': array of %llu too large",
                       key ? key : "", (unsigned long long)n);
    if (n && !data)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: '%s': NULL array data",
                       key ? key : "");
    uint8_t *v = malloc((size_t)total);
    if (!v)
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory setting '%s'",
                       key ? key : "");
    uint32_t type = GGUF_VT_ARRAY, et = (uint32_t)elem;
    memcpy(v, &type, 4);
    memcpy(v + 4, &et, 4);
    memcpy(v + 8, &n, 8);
    if (bytes)
        memcpy(v + 16, data, (size_t)bytes);
    return w_put(w, key, v, (size_t)total);
}

hearth_status gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, uint64_t n,
                                      const char *const *strs)
{
    if (n && !strs)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: '%s': NULL string array",
                       key ? key : "");
    size_t total = 16;
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i])
            return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: '%s': string %llu is NULL",
                           key ? key : "", (unsigned long long)i);
        if (__builtin_add_overflow(total, 8 + strlen(strs[i]), &total))
            return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: '%s': array too large",
                           key ? key : "");
    }
    uint8_t *v = malloc(total);
    if (!v)
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory setting '%s'",
                       key ? key : "");
    uint32_t type = GGUF_VT_ARRAY, et = GGUF_VT_STRING;
    memcpy(v, &type, 4);
    memcpy(v + 4, &et, 4);
    memcpy(v + 8, &n, 8);
    size_t pos = 16;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = strlen(strs[i]);
        memcpy(v + pos, &len, 8);
        memcpy(v + pos + 8, strs[i], (size_t)len);
        pos += 8 + (size_t)len;
    }
    return w_put(w, key, v, total);
}

hearth_status gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
    /* The key must be NUL-terminated for w_put; reader keys never contain NUL. */
    char stack_key[256];
    char *key = stack_key;
    if (kv->key.len >= sizeof stack_key) {
        key = malloc((size_t)kv->key.len + 1);
        if (!key)
            return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory copying a key");
    }
    memcpy(key, kv->key.ptr, (size_t)kv->key.len);
    key[kv->key.len] = '\0';
    hearth_status st;
    size_t es = gguf_vtype_size(kv->type);
    if (kv->type == GGUF_VT_STRING) {
        uint64_t len;
        memcpy(&len, kv->data, 8); /* a STRING kv's data is its encoding: u64 length, bytes */
        st = gguf_writer_set_str_n(w, key, (const char *)kv->data + 8, len);
    } else if (kv->type == GGUF_VT_ARRAY && kv->arr_type == GGUF_VT_STRING) {
        /* The strings sit back to back in the source; copy the encoded run at once. */
        size_t bytes = 0;
        for (uint64_t i = 0; i < kv->arr_n; i++)
            bytes += 8 + (size_t)kv->arr_strs[i].len;
        uint8_t *v = malloc(16 + bytes);
        if (!v) {
            st = err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory copying '%s'", key);
        } else {
            uint32_t type = GGUF_VT_ARRAY, et = GGUF_VT_STRING;
            memcpy(v, &type, 4);
            memcpy(v + 4, &et, 4);
            memcpy(v + 8, &kv->arr_n, 8);
            if (bytes)
                memcpy(v + 16, kv->data, bytes);
            st = w_put(w, key, v, 16 + bytes);
        }
    } else if (kv->type == GGUF_VT_ARRAY) {
        st = gguf_writer_set_arr(w, key, kv->arr_type, kv->arr_n, kv->data);
    } else if (es) {
        st = w_scalar(w, key, (uint32_t)kv->type, kv->data, es);
    } else {
        st = err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: '%s': bad value type %d", key,
                     (int)kv->type);
    }
    if (key != stack_key)
        free(key);
    return st;
}

hearth_status gguf_writer_remove(struct gguf_writer *w, const char *key)
{
    hearth_status st = w_check_open(w, "removing a key");
    if (st != HEARTH_OK)
        return st;
    if (!key)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: NULL key to remove");
    int64_t at = w_hash_find(w, &w->kv_hash, kv_key, key, strlen(key));
    if (at < 0)
        return err_set(HEARTH_ERR_NOT_FOUND, "gguf writer: no key '%s' to remove", key);
    if (strcmp(key, "general.alignment") == 0)
        w->alignment = GGUF_DEFAULT_ALIGNMENT;
    free(w->kv[at].key);
    free(w->kv[at].val);
    memmove(&w->kv[at], &w->kv[at + 1], (w->n_kv - (size_t)at - 1) * sizeof *w->kv);
    w->n_kv--;
    return w_hash_rebuild(w, &w->kv_hash, kv_key, w->n_kv, w->n_kv + 1);
}

uint64_t gguf_writer_n_kv(const struct gguf_writer *w)
{
    return w->n_kv;
}

hearth_status gguf_writer_add_tensor(struct gguf_writer *w, const char *name, hearth_dtype type,
                                     uint32_t n_dims, const uint64_t ne[GGUF_MAX_DIMS],
                                     size_t *index_out)
{
    hearth_status st = w_check_open(w, "adding a tensor");
    if (st != HEARTH_OK)
        return st;
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen >= W_NAME_MAX)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "gguf writer: tensor name '%s' is %zu bytes, expected 1 to %d",
                       name ? name : "", nlen, W_NAME_MAX - 1);
    if (w_hash_find(w, &w->t_hash, t_key, name, nlen) >= 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: duplicate tensor name '%s'", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: tensor '%s': n_dims %u, expected 1..4",
                       name, n_dims);
    struct w_tensor t = {0};
    memcpy(t.name, name, nlen + 1);
    t.name_len = nlen;
    t.n_dims = n_dims;
    t.type = type;
    uint64_t rows = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] == 0 || t.ne[d] > (uint64_t)INT64_MAX)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "gguf writer: tensor '%s': ne[%u] = %llu, expected 1..2^63-1", name, d,
                           (unsigned long long)t.ne[d]);
        if (d > 0 && __builtin_mul_overflow(rows, t.ne[d], &rows))
            return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: tensor '%s': too many elements",
                           name);
    }
    const struct quant_traits *q = quant_get(type);
    uint64_t row_bytes;
    if (!q)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: tensor '%s': type id %d is unknown",
                       name, (int)type);
    if (!quant_row_bytes(type, t.ne[0], &row_bytes))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': ne[0] = %llu is not a multiple of the %s "
                       "block size %lld",
                       name, (unsigned long long)t.ne[0], q->name, (long long)q->blck);
    if (__builtin_mul_overflow(row_bytes, rows, &t.nbytes) || t.nbytes > (uint64_t)INT64_MAX)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: tensor '%s': too many bytes", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct w_tensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt)
            return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory adding '%s'", name);
        w->t = nt;
        w->cap_t = cap;
    }
    if (2 * (w->n_t + 1) > w->t_hash.cap &&
        (st = w_hash_rebuild(w, &w->t_hash, t_key, w->n_t, 2 * (w->n_t + 1))) != HEARTH_OK)
        return st;
    w->t[w->n_t] = t;
    size_t p = (size_t)w_fnv(name, nlen) & (w->t_hash.cap - 1);
    while (w->t_hash.slots[p])
        p = (p + 1) & (w->t_hash.cap - 1);
    w->t_hash.slots[p] = w->n_t + 1;
    if (index_out)
        *index_out = w->n_t;
    w->n_t++;
    return HEARTH_OK;
}

uint64_t gguf_writer_n_tensors(const struct gguf_writer *w)
{
    return w->n_t;
}

int64_t gguf_writer_find_tensor(const struct gguf_writer *w, const char *name)
{
    return w_hash_find(w, &w->t_hash, t_key, name, strlen(name));
}

uint64_t gguf_writer_tensor_nbytes(const struct gguf_writer *w, size_t index)
{
    return index < w->n_t ? w->t[index].nbytes : 0;
}

uint64_t gguf_writer_tensor_offset(const struct gguf_writer *w, size_t index)
{
    return index < w->n_t ? w->t[index].offset : 0;
}

static bool w_align(uint64_t x, uint64_t a, uint64_t *out)
{
    uint64_t r = x % a;
    if (!r) {
        *out = x;
        return true;
    }
    return !__builtin_add_overflow(x, a - r, out);
}

hearth_status gguf_writer_layout(struct gguf_writer *w, uint64_t *data_offset, uint64_t *file_size)
{
    uint64_t pos = 24;
    for (size_t i = 0; i < w->n_kv; i++)
        pos += 8 + w->kv[i].key_len + w->kv[i].val_len;
    for (size_t i = 0; i < w->n_t; i++)
        pos += 8 + w->t[i].name_len + 4 + 8ull * w->t[i].n_dims + 4 + 8;
    w->header_len = pos;
    /* Like ggml, a file without tensors ends right after its header: no padding. */
    uint64_t off = 0, data = pos;
    if (w->n_t && !w_align(pos, w->alignment, &data))
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: header too large");
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        uint64_t padded;
        if (!w_align(w->t[i].nbytes, w->alignment, &padded) ||
            __builtin_add_overflow(off, padded, &off))
            return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: data section too large");
    }
    uint64_t size;
    if (__builtin_add_overflow(data, off, &size) || size > (uint64_t)INT64_MAX)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: file too large");
    w->data_offset = data;
    w->file_size = size;
    if (data_offset)
        *data_offset = data;
    if (file_size)
        *file_size = size;
    return HEARTH_OK;
}

hearth_status gguf_writer_header_to_memory(struct gguf_writer *w, uint8_t **buf, size_t *size)
{
    *buf = NULL;
    *size = 0;
    hearth_status st = gguf_writer_layout(w, NULL, NULL);
    if (st != HEARTH_OK)
        return st;
    if (w->data_offset > SIZE_MAX)
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: header too large for memory");
    uint8_t *b = calloc(1, (size_t)w->data_offset ? (size_t)w->data_offset : 1);
    if (!b)
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory for a %llu-byte header",
                       (unsigned long long)w->data_offset);
    uint32_t magic = GGUF_MAGIC, version = 3;
    uint64_t nt = w->n_t, nkv = w->n_kv;
    memcpy(b, &magic, 4);
    memcpy(b + 4, &version, 4);
    memcpy(b + 8, &nt, 8);
    memcpy(b + 16, &nkv, 8);
    size_t p = 24;
    for (size_t i = 0; i < w->n_kv; i++) {
        uint64_t kl = w->kv[i].key_len;
        memcpy(b + p, &kl, 8);
        memcpy(b + p + 8, w->kv[i].key, (size_t)kl);
        memcpy(b + p + 8 + kl, w->kv[i].val, w->kv[i].val_len);
        p += 8 + (size_t)kl + w->kv[i].val_len;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const struct w_tensor *t = &w->t[i];
        uint64_t nl = t->name_len;
        uint32_t type = (uint32_t)t->type;
        memcpy(b + p, &nl, 8);
        memcpy(b + p + 8, t->name, (size_t)nl);
        p += 8 + (size_t)nl;
        memcpy(b + p, &t->n_dims, 4);
        memcpy(b + p + 4, t->ne, 8 * (size_t)t->n_dims);
        p += 4 + 8 * (size_t)t->n_dims;
        memcpy(b + p, &type, 4);
        memcpy(b + p + 4, &t->offset, 8);
        p += 12;
    }
    HEARTH_ASSERT(p == w->header_len);
    *buf = b;
    *size = (size_t)w->data_offset;
    return HEARTH_OK;
}

/* pwrite of all n bytes at off, retrying short writes and EINTR. */
static hearth_status w_pwrite_all(struct gguf_writer *w, const void *data, uint64_t n, uint64_t off)
{
    const uint8_t *p = data;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = pwrite(w->fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return err_set(HEARTH_ERR_IO, "%s: write of %zu bytes at offset %llu failed: %s",
                           w->path, chunk, (unsigned long long)off,
                           r < 0 ? strerror(errno) : "no progress");
        p += r;
        n -= (uint64_t)r;
        off += (uint64_t)r;
    }
    return HEARTH_OK;
}

hearth_status gguf_writer_open(struct gguf_writer *w, const char *path)
{
    hearth_status st = w_check_open(w, "gguf_writer_open");
    if (st != HEARTH_OK)
        return st;
    uint8_t *hdr;
    size_t hdr_size;
    if ((st = gguf_writer_header_to_memory(w, &hdr, &hdr_size)) != HEARTH_OK)
        return st;
    size_t plen = strlen(path);
    w->path = malloc(plen + 1);
    if (!w->path) {
        free(hdr);
        return err_set(HEARTH_ERR_NO_MEMORY, "gguf writer: out of memory");
    }
    memcpy(w->path, path, plen + 1);
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        st = err_set(HEARTH_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(hdr);
        free(w->path);
        w->path = NULL;
        return st;
    }
    w->opened = true;
    st = w_pwrite_all(w, hdr, hdr_size, 0);
    free(hdr);
    return st;
}

static hearth_status w_check_index(const struct gguf_writer *w, size_t index)
{
    if (w->fd < 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "gguf writer: tensor data with no open file (call gguf_writer_open first)");
    if (index >= w->n_t)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: tensor index %zu out of range (%zu)",
                       index, w->n_t);
    return HEARTH_OK;
}

hearth_status gguf_writer_write_tensor_chunk(struct gguf_writer *w, size_t index, const void *data,
                                             uint64_t n)
{
    hearth_status st = w_check_index(w, index);
    if (st != HEARTH_OK)
        return st;
    struct w_tensor *t = &w->t[index];
    if (n > t->nbytes - t->written)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': %llu bytes written past its size %llu", t->name,
                       (unsigned long long)(t->written + n), (unsigned long long)t->nbytes);
    st = w_pwrite_all(w, data, n, w->data_offset + t->offset + t->written);
    if (st == HEARTH_OK)
        t->written += n;
    return st;
}

hearth_status gguf_writer_write_tensor_data(struct gguf_writer *w, size_t index, const void *data,
                                            uint64_t nbytes)
{
    hearth_status st = w_check_index(w, index);
    if (st != HEARTH_OK)
        return st;
    const struct w_tensor *t = &w->t[index];
    if (t->written || nbytes != t->nbytes)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': %llu bytes given (%llu already written), "
                       "expected exactly %llu",
                       t->name, (unsigned long long)nbytes, (unsigned long long)t->written,
                       (unsigned long long)t->nbytes);
    return gguf_writer_write_tensor_chunk(w, index, data, nbytes);
}

static hearth_status w_finish(struct gguf_writer *w, bool sparse)
{
    if (w->fd < 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "gguf writer: close without an open file");
    hearth_status st = HEARTH_OK;
    if (ftruncate(w->fd, (off_t)w->file_size) != 0)
        st = err_set(HEARTH_ERR_IO, "%s: cannot size the file to %llu bytes: %s", w->path,
                     (unsigned long long)w->file_size, strerror(errno));
    if (close(w->fd) != 0 && st == HEARTH_OK)
        st = err_set(HEARTH_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
    w->fd = -1;
    if (st != HEARTH_OK || sparse)
        return st;
    for (size_t i = 0; i < w->n_t; i++)
        if (w->t[i].written != w->t[i].nbytes)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "%s: tensor %zu ('%s'): %llu of %llu bytes written", w->path, i,
                           w->t[i].name, (unsigned long long)w->t[i].written,
                           (unsigned long long)w->t[i].nbytes);
    return HEARTH_OK;
}

hearth_status gguf_writer_close(struct gguf_writer *w)
{
    return w_finish(w, false);
}

hearth_status gguf_writer_finish_sparse(struct gguf_writer *w)
{
    return w_finish(w, true);
}
