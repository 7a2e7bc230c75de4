/*
 * gguf: an exact, defensive reader of GGUF files (versions 2 and 3).
 *
 * The file is memory-mapped read-only and every view (strings, arrays, tensor
 * data) points into the mapping: nothing is copied, so a 40 GB model opens in
 * milliseconds and costs no RAM until its pages are touched. Before any view is
 * handed out, the whole header is validated: every count, length and offset
 * against the bytes that remain, every size computation for overflow, type ids,
 * dims, alignment, overlap, duplicates. A file that fails gets
 * HEARTH_ERR_BAD_FILE and a message naming the file, the byte offset, the field
 * and what was expected. No input can crash the reader.
 *
 * Strings in a GGUF file are not NUL-terminated; gguf_str carries a length.
 *
 * Where the spec leaves room (details in gguf.c): keys must be non-empty, valid
 * UTF-8 without NUL, unique; tensor names 1..63 bytes, valid UTF-8, unique;
 * nested arrays, BOOL bytes other than 0/1, n_dims outside 1..4 and v1 or
 * big-endian files are refused; tensor offsets need only be aligned, inside
 * the file and disjoint (not ggml's strict running sum).
 */
#ifndef HEARTH_GGUF_H
#define HEARTH_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

enum gguf_vtype {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT = 13
};

/* A string view into the mapping; not NUL-terminated. */
struct gguf_str {
    uint64_t len;
    const char *ptr;
};

struct gguf_kv {
    struct gguf_str key;
    enum gguf_vtype type;     /* GGUF_VT_ARRAY for arrays */
    enum gguf_vtype arr_type; /* element type when type == GGUF_VT_ARRAY */
    uint64_t arr_n;           /* element count when type == GGUF_VT_ARRAY */
    /*
     * The value's encoding in the file: a scalar's bytes (little-endian, maybe
     * unaligned: read with memcpy); for STRING the u64 length then the bytes
     * (gguf_get_str decodes it); for arrays the first element's encoding.
     */
    const uint8_t *data;
    struct gguf_str *arr_strs; /* arrays of strings: arr_n views, else NULL */
    uint64_t offset;           /* file offset of the record (its key length) */
};

struct gguf_tensor {
    struct gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    hearth_dtype type;
    uint64_t offset;      /* relative to the data section */
    uint64_t nbytes;      /* size of the data in bytes */
    const void *data;     /* points into the mapping */
    uint64_t info_offset; /* file offset of this tensor's info record */
};

struct gguf_file {
    char *path;          /* as given to gguf_open; used in messages */
    const uint8_t *base; /* start of the mapping */
    uint64_t size;       /* file size in bytes */
    uint32_t version;
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    uint64_t alignment;   /* general.alignment or 32 */
    uint64_t data_offset; /* file offset of the data section (past the end if no tensors) */
    uint64_t data_size;   /* bytes from data_offset to the end of the last tensor */
    /* private */
    int fd_;
    bool owns_map_;
    size_t *kv_hash_;                      /* open addressing over kv: index+1, 0 empty */
    size_t *tensor_hash_;                  /* same over tensors */
    size_t kv_hash_cap_, tensor_hash_cap_; /* powers of two */
};

/* Maps and validates path. On failure *out is NULL and the error names the problem. */
hearth_status gguf_open(const char *path, struct gguf_file **out);
/*
 * Validates a GGUF image already in memory (fuzzing, tests). buf must outlive the
 * returned file; name is used in messages.
 */
hearth_status gguf_open_memory(const void *buf, size_t size, const char *name,
                               struct gguf_file **out);
void gguf_close(struct gguf_file *f);

/* Lookups by exact key / name; NULL when absent. Keys and names are unique (validated). */
const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

/*
 * Typed getters. Integer getters accept any integer or bool type whose value
 * fits; float getters accept f32/f64 and integers. They fail with
 * HEARTH_ERR_BAD_FILE naming the key if the type does not convert and
 * HEARTH_ERR_NOT_FOUND (message set) if the key is absent.
 */
hearth_status gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out);
hearth_status gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out);
hearth_status gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out);
hearth_status gguf_get_f32(const struct gguf_file *f, const char *key, float *out);
hearth_status gguf_get_bool(const struct gguf_file *f, const char *key, bool *out);
hearth_status gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out);
/*
 * An array kv of the given element type; *n and *data on success. *data is the
 * first element's bytes for scalar arrays, and the kv's arr_strs (struct
 * gguf_str[n]) for arrays of strings.
 */
hearth_status gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_vtype elem,
                           uint64_t *n, const void **data);

/* Scalar reads of a kv (no lookup). Same conversion rules as above. */
hearth_status gguf_kv_u64(const struct gguf_file *f, const struct gguf_kv *kv, uint64_t *out);
hearth_status gguf_kv_i64(const struct gguf_file *f, const struct gguf_kv *kv, int64_t *out);
hearth_status gguf_kv_f64(const struct gguf_file *f, const struct gguf_kv *kv, double *out);

/* Size in bytes of one element of a scalar value type; 0 for string/array/unknown. */
size_t gguf_vtype_size(enum gguf_vtype t);
const char *gguf_vtype_name(enum gguf_vtype t);
/* Compare a view with a C string. */
bool gguf_str_eq(struct gguf_str s, const char *cstr);

#endif
