/*
 * gguf-write: a streaming writer of GGUF version 3 files.
 *
 * Use: create a writer, set metadata (set_* replaces a key set before, keeping
 * its position), declare tensors with add_tensor, then open the output file:
 * that lays the data section out (each tensor at an offset aligned to
 * general.alignment, default 32, in declaration order, zero padding between),
 * writes the whole header in one write and leaves the file open. Then hand each
 * tensor's bytes to write_tensor_data (or in sequential pieces with
 * write_tensor_chunk), in any tensor order, and close; close fails if a tensor
 * was not fully written. finish_sparse instead sizes the file and leaves the
 * data section as a hole, so a 70B-parameter plan can be tested on a few KB of
 * disk.
 *
 * Metadata values are serialized when they are set (one allocation per key), so
 * a 150k-entry string array costs one copy; the header is produced in one
 * buffer at open. Tensor data goes to the file with pwrite straight from the
 * caller's buffer: no copy, disk speed. Everything the reader rejects (empty
 * keys, names of 64+ bytes, duplicate names, unknown types, rows that are not
 * whole blocks, an alignment that is not a power of two) is rejected here with
 * HEARTH_ERR_INVALID_ARG, so what this writes, gguf_open reads.
 */
#ifndef HEARTH_GGUF_WRITE_H
#define HEARTH_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

struct gguf_writer;

hearth_status gguf_writer_create(struct gguf_writer **out);
/* Closes the file if still open (without the completeness check) and frees everything. */
void gguf_writer_destroy(struct gguf_writer *w);

/*
 * Metadata setters. key is a NUL-terminated, non-empty string; setting a key
 * that exists replaces its type and value. Setting "general.alignment" (u32,
 * nonzero power of two) also sets the alignment of the data section.
 * Fail with HEARTH_ERR_INVALID_ARG after open, or for an empty key.
 */
hearth_status gguf_writer_set_u8(struct gguf_writer *w, const char *key, uint8_t v);
hearth_status gguf_writer_set_i8(struct gguf_writer *w, const char *key, int8_t v);
hearth_status gguf_writer_set_u16(struct gguf_writer *w, const char *key, uint16_t v);
hearth_status gguf_writer_set_i16(struct gguf_writer *w, const char *key, int16_t v);
hearth_status gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
hearth_status gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
hearth_status gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
hearth_status gguf_writer_set_i64(struct gguf_writer *w, const char *key, int64_t v);
hearth_status gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
hearth_status gguf_writer_set_f64(struct gguf_writer *w, const char *key, double v);
hearth_status gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
/* A NUL-terminated string value. */
hearth_status gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* A string value of len bytes (may contain NULs). */
hearth_status gguf_writer_set_str_n(struct gguf_writer *w, const char *key, const char *v,
                                    uint64_t len);
/*
 * An array of n scalars of type elem (any type but STRING and ARRAY). data
 * holds n packed elements in host order (little-endian here), e.g. int32_t[n]
 * for GGUF_VT_INT32, float[n] for GGUF_VT_FLOAT32, uint8_t 0/1 for BOOL.
 */
hearth_status gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem,
                                  uint64_t n, const void *data);
/* An array of n NUL-terminated strings. */
hearth_status gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, uint64_t n,
                                      const char *const *strs);
/* Copies a key/value (any type, arrays included) from a file opened by gguf_open. */
hearth_status gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv);
/* Removes a key; HEARTH_ERR_NOT_FOUND if absent. */
hearth_status gguf_writer_remove(struct gguf_writer *w, const char *key);
uint64_t gguf_writer_n_kv(const struct gguf_writer *w);

/*
 * Declares the next tensor: name (non-empty, < 64 bytes, unique), type (a known
 * hearth_dtype), n_dims 1..4 and ne[0..n_dims-1] > 0 (ne[0] contiguous, a
 * multiple of the type's block size). *index_out (may be NULL) receives its
 * index, which is also its position in the file.
 */
hearth_status gguf_writer_add_tensor(struct gguf_writer *w, const char *name, hearth_dtype type,
                                     uint32_t n_dims, const uint64_t ne[GGUF_MAX_DIMS],
                                     size_t *index_out);
uint64_t gguf_writer_n_tensors(const struct gguf_writer *w);
/* Index of a declared tensor by name; -1 if none. */
int64_t gguf_writer_find_tensor(const struct gguf_writer *w, const char *name);
/* Byte size of tensor index's data (without padding); 0 for a bad index. */
uint64_t gguf_writer_tensor_nbytes(const struct gguf_writer *w, size_t index);

/*
 * Lays out the file as it is now: data_offset (file offset of the data
 * section), the offset of each tensor relative to it, and the total file size.
 * Any of the out pointers may be NULL. Valid until the next set/add call.
 */
hearth_status gguf_writer_layout(struct gguf_writer *w, uint64_t *data_offset, uint64_t *file_size);
/* Offset of tensor index relative to the data section (after layout or open). */
uint64_t gguf_writer_tensor_offset(const struct gguf_writer *w, size_t index);

/*
 * Serializes the header, padding included, into a malloc'ed buffer of
 * *size == data_offset bytes; the caller frees it. For tests and for building
 * images in memory (tensor i's data goes at data_offset + tensor_offset(i)).
 */
hearth_status gguf_writer_header_to_memory(struct gguf_writer *w, uint8_t **buf, size_t *size);

/* Creates (truncates) path and writes the header and padding. No set/add after this. */
hearth_status gguf_writer_open(struct gguf_writer *w, const char *path);
/* Writes all nbytes (must equal the tensor's size) of tensor index. */
hearth_status gguf_writer_write_tensor_data(struct gguf_writer *w, size_t index, const void *data,
                                            uint64_t nbytes);
/*
 * Writes the next n bytes of tensor index: pieces of one tensor go in order
 * (each continues where the last ended); tensors may go in any order.
 */
hearth_status gguf_writer_write_tensor_chunk(struct gguf_writer *w, size_t index, const void *data,
                                             uint64_t n);
/*
 * Sizes the file (trailing padding included), flushes and closes it. Fails with
 * HEARTH_ERR_INVALID_ARG naming the first tensor not fully written (the file is
 * still closed). The writer can then only be destroyed.
 */
hearth_status gguf_writer_close(struct gguf_writer *w);
/* Like close, but tensors not written stay holes of zeros (sparse file): for header tests. */
hearth_status gguf_writer_finish_sparse(struct gguf_writer *w);

#endif
