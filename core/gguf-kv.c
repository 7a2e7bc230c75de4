/*
 * gguf-kv: typed reads of GGUF metadata values (declared in gguf.h).
 *
 * Writers disagree on integer widths for the same key (u32 here, u64 there,
 * i32 for a count elsewhere), so the integer getters accept any integer or
 * bool type whose value fits the destination and refuse, with a message naming
 * the key, one that does not (a negative into an unsigned, 2^40 into a u32).
 * Floats accept f32/f64 and integers. Values are read with memcpy: they sit at
 * arbitrary offsets in the mapping. The reader has already validated that
 * every value lies inside the file, so nothing here re-checks bounds.
 */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "gguf.h"

/* Any integer or bool as a signed 128-bit-free pair: neg says the value is < 0. */
static bool kv_int(const struct gguf_kv *kv, bool *neg, uint64_t *mag)
{
    const uint8_t *d = kv->data;
    *neg = false;
    switch (kv->type) {
    case GGUF_VT_UINT8:
    case GGUF_VT_BOOL:
        *mag = d[0];
        return true;
    case GGUF_VT_UINT16: {
        uint16_t v;
        memcpy(&v, d, 2);
        *mag = v;
        return true;
    }
    case GGUF_VT_UINT32: {
        uint32_t v;
        memcpy(&v, d, 4);
        *mag = v;
        return true;
    }
    case GGUF_VT_UINT64: {
        uint64_t v;
        memcpy(&v, d, 8);
        *mag = v;
        return true;
    }
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64: {
        int64_t v;
        if (kv->type == GGUF_VT_INT8) {
            int8_t x;
            memcpy(&x, d, 1);
            v = x;
        } else if (kv->type == GGUF_VT_INT16) {
            int16_t x;
            memcpy(&x, d, 2);
            v = x;
        } else if (kv->type == GGUF_VT_INT32) {
            int32_t x;
            memcpy(&x, d, 4);
            v = x;
        } else {
            memcpy(&v, d, 8);
        }
        *neg = v < 0;
        /* |v| without overflowing on INT64_MIN */
        *mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        return true;
    }
    default:
        return false;
    }
}

static hearth_status kv_fail(const struct gguf_file *f, const struct gguf_kv *kv, const char *found,
                             const char *expected)
{
    int kl = kv->key.len > 200 ? 200 : (int)kv->key.len;
    return err_set(HEARTH_ERR_BAD_FILE, "%s: offset %llu: metadata key '%.*s': %s, expected %s",
                   f->path, (unsigned long long)kv->offset, kl, kv->key.ptr, found, expected);
}

static hearth_status kv_type_fail(const struct gguf_file *f, const struct gguf_kv *kv,
                                  const char *expected)
{
    char found[64];
    if (kv->type == GGUF_VT_ARRAY)
        snprintf(found, sizeof found, "type ARRAY of %s", gguf_vtype_name(kv->arr_type));
    else
        snprintf(found, sizeof found, "type %s", gguf_vtype_name(kv->type));
    return kv_fail(f, kv, found, expected);
}

hearth_status gguf_kv_u64(const struct gguf_file *f, const struct gguf_kv *kv, uint64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!kv_int(kv, &neg, &mag))
        return kv_type_fail(f, kv, "an integer");
    if (neg) {
        char found[64];
        snprintf(found, sizeof found, "value -%llu", (unsigned long long)mag);
        return kv_fail(f, kv, found, "a non-negative integer");
    }
    *out = mag;
    return HEARTH_OK;
}

hearth_status gguf_kv_i64(const struct gguf_file *f, const struct gguf_kv *kv, int64_t *out)
{
    bool neg;
    uint64_t mag;
    if (!kv_int(kv, &neg, &mag))
        return kv_type_fail(f, kv, "an integer");
    if (!neg && mag > (uint64_t)INT64_MAX) {
        char found[64];
        snprintf(found, sizeof found, "value %llu", (unsigned long long)mag);
        return kv_fail(f, kv, found, "an integer below 2^63");
    }
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return HEARTH_OK;
}

hearth_status gguf_kv_f64(const struct gguf_file *f, const struct gguf_kv *kv, double *out)
{
    if (kv->type == GGUF_VT_FLOAT32) {
        float v;
        memcpy(&v, kv->data, 4);
        *out = (double)v;
        return HEARTH_OK;
    }
    if (kv->type == GGUF_VT_FLOAT64) {
        memcpy(out, kv->data, 8);
        return HEARTH_OK;
    }
    bool neg;
    uint64_t mag;
    if (!kv_int(kv, &neg, &mag) || kv->type == GGUF_VT_BOOL)
        return kv_type_fail(f, kv, "a number");
    *out = neg ? -(double)mag : (double)mag;
    return HEARTH_OK;
}

static hearth_status find(const struct gguf_file *f, const char *key, const struct gguf_kv **kv)
{
    *kv = gguf_find_kv(f, key);
    if (!*kv)
        return err_set(HEARTH_ERR_NOT_FOUND, "%s: metadata key '%s' is missing", f->path, key);
    return HEARTH_OK;
}

hearth_status gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out)
{
    const struct gguf_kv *kv;
    hearth_status st = find(f, key, &kv);
    return st != HEARTH_OK ? st : gguf_kv_u64(f, kv, out);
}

hearth_status gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out)
{
    const struct gguf_kv *kv;
    uint64_t v = 0;
    hearth_status st = find(f, key, &kv);
    if (st == HEARTH_OK)
        st = gguf_kv_u64(f, kv, &v);
    if (st != HEARTH_OK)
        return st;
    if (v > UINT32_MAX) {
        char found[64];
        snprintf(found, sizeof found, "value %llu", (unsigned long long)v);
        return kv_fail(f, kv, found, "a value below 2^32");
    }
    *out = (uint32_t)v;
    return HEARTH_OK;
}

hearth_status gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out)
{
    const struct gguf_kv *kv;
    hearth_status st = find(f, key, &kv);
    return st != HEARTH_OK ? st : gguf_kv_i64(f, kv, out);
}

hearth_status gguf_get_f32(const struct gguf_file *f, const char *key, float *out)
{
    const struct gguf_kv *kv;
    double v = 0;
    hearth_status st = find(f, key, &kv);
    if (st == HEARTH_OK)
        st = gguf_kv_f64(f, kv, &v);
    if (st == HEARTH_OK)
        *out = (float)v;
    return st;
}

hearth_status gguf_get_bool(const struct gguf_file *f, const char *key, bool *out)
{
    const struct gguf_kv *kv;
    hearth_status st = find(f, key, &kv);
    if (st != HEARTH_OK)
        return st;
    bool neg;
    uint64_t mag;
    if (!kv_int(kv, &neg, &mag))
        return kv_type_fail(f, kv, "BOOL");
    if (neg || mag > 1) {
        char found[64];
        snprintf(found, sizeof found, "value %s%llu", neg ? "-" : "", (unsigned long long)mag);
        return kv_fail(f, kv, found, "0 or 1");
    }
    *out = mag == 1;
    return HEARTH_OK;
}

hearth_status gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out)
{
    const struct gguf_kv *kv;
    hearth_status st = find(f, key, &kv);
    if (st != HEARTH_OK)
        return st;
    if (kv->type != GGUF_VT_STRING)
        return kv_type_fail(f, kv, "STRING");
    memcpy(&out->len, kv->data, 8);
    out->ptr = (const char *)kv->data + 8;
    return HEARTH_OK;
}

hearth_status gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_vtype elem,
                           uint64_t *n, const void **data)
{
    const struct gguf_kv *kv;
    hearth_status st = find(f, key, &kv);
    if (st != HEARTH_OK)
        return st;
    if (kv->type != GGUF_VT_ARRAY || kv->arr_type != elem) {
        char expected[64];
        snprintf(expected, sizeof expected, "ARRAY of %s", gguf_vtype_name(elem));
        return kv_type_fail(f, kv, expected);
    }
    *n = kv->arr_n;
    *data = elem == GGUF_VT_STRING ? (const void *)kv->arr_strs : (const void *)kv->data;
    return HEARTH_OK;
}
