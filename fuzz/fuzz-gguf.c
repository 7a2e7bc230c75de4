/*
 * fuzz-gguf: libFuzzer target for the GGUF reader (run by scripts/fuzz.sh).
 *
 * The input is copied into an exact-size heap buffer (libFuzzer's own buffer
 * is exact-size too, but a copy keeps that true if the harness changes) and
 * handed to gguf_open_memory. On success every view is touched: every byte of
 * every key and string (array elements included), every scalar through the
 * typed getters, the first and last byte of each tensor's data, and every
 * lookup by name, so ASan sees any view the reader let point outside the
 * input. Invariants the reader promises are checked with __builtin_trap so a
 * violation is reported as a crash with the input saved.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gguf.h"
#include "quant.h"

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (uint64_t i = 0; i < n; i++)
        acc ^= b[i];
    sink ^= acc;
}

static void check_kv(const struct gguf_file *f, const struct gguf_kv *kv)
{
    char key[128];
    touch(kv->key.ptr, kv->key.len);
    /* look it up by name when it fits a C string (keys never contain NUL) */
    if (kv->key.len < sizeof key) {
        memcpy(key, kv->key.ptr, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        if (gguf_find_kv(f, key) != kv)
            __builtin_trap();
        uint64_t u;
        uint32_t u32;
        int64_t i;
        float fl;
        bool b;
        struct gguf_str s;
        uint64_t n;
        const void *d;
        (void)gguf_get_u64(f, key, &u);
        (void)gguf_get_u32(f, key, &u32);
        (void)gguf_get_i64(f, key, &i);
        (void)gguf_get_f32(f, key, &fl);
        (void)gguf_get_bool(f, key, &b);
        if (gguf_get_str(f, key, &s) == HEARTH_OK)
            touch(s.ptr, s.len);
        if (kv->type == GGUF_VT_ARRAY && gguf_get_arr(f, key, kv->arr_type, &n, &d) == HEARTH_OK &&
            n != kv->arr_n)
            __builtin_trap();
    }
    double x;
    (void)gguf_kv_f64(f, kv, &x);
    if (kv->type == GGUF_VT_ARRAY) {
        if (kv->arr_type == GGUF_VT_STRING) {
            for (uint64_t j = 0; j < kv->arr_n; j++)
                touch(kv->arr_strs[j].ptr, kv->arr_strs[j].len);
        } else {
            touch(kv->data, kv->arr_n * gguf_vtype_size(kv->arr_type));
        }
    } else if (kv->type != GGUF_VT_STRING) {
        touch(kv->data, gguf_vtype_size(kv->type));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct gguf_file *f = NULL;
    if (gguf_open_memory(buf, size, "fuzz", &f) == HEARTH_OK) {
        for (uint64_t i = 0; i < f->n_kv; i++)
            check_kv(f, &f->kv[i]);
        if (!f->alignment || (f->alignment & (f->alignment - 1)))
            __builtin_trap();
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const struct gguf_tensor *t = &f->tensors[i];
            char name[64];
            touch(t->name.ptr, t->name.len);
            if (t->name.len == 0 || t->name.len >= sizeof name || !quant_get(t->type) ||
                t->nbytes == 0 || t->offset % f->alignment ||
                f->data_offset + t->offset + t->nbytes > f->size)
                __builtin_trap();
            memcpy(name, t->name.ptr, (size_t)t->name.len);
            name[t->name.len] = '\0';
            if (gguf_find_tensor(f, name) != t)
                __builtin_trap();
            touch(t->data, 1);
            touch((const uint8_t *)t->data + t->nbytes - 1, 1);
        }
        gguf_close(f);
    } else if (f != NULL) {
        __builtin_trap();
    }
    free(buf);
    return 0;
}
