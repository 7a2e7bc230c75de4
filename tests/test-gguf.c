/*
 * test-gguf: the GGUF reader and writer.
 *
 * Round trips every value type and several tensor types through the writer and
 * the reader; opens both real models and checks what the facts sheet (§6, §8)
 * says they contain; runs the hand-made broken corpus (tests/corpus/gguf, each
 * file with its expected message and offset in EXPECTED); truncates a valid
 * image at every length and flips random bytes 10,000 times, requiring a clean
 * error or a file whose views all lie inside the buffer. Buffers handed to
 * gguf_open_memory are malloc'ed at their exact size so ASan catches any read
 * one byte past the end.
 */
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "gguf-write.h"
#include "gguf.h"
#include "quant.h"
#include "test.h"

static char *tmp_file(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", test_tmp_dir(), name);
    return p;
}

static bool str_is(struct gguf_str s, const char *c)
{
    return gguf_str_eq(s, c);
}

/* ---- a small writer-made image used by several cases ---------------------- */

#define IMG_NT 4
static const char *const img_names[IMG_NT] = {"a.f32", "b.f16", "c.q4_0", "d.q4_k"};
static const hearth_dtype img_types[IMG_NT] = {HEARTH_DTYPE_F32, HEARTH_DTYPE_F16,
                                               HEARTH_DTYPE_Q4_0, HEARTH_DTYPE_Q4_K};
static const uint64_t img_ne[IMG_NT][4] = {
    {8, 3, 1, 1}, {16, 2, 2, 1}, {64, 2, 1, 1}, {256, 1, 1, 1}};
static const uint32_t img_ndims[IMG_NT] = {2, 3, 2, 1};

/* Deterministic bytes for tensor i at byte j. */
static uint8_t img_byte(size_t i, uint64_t j)
{
    return (uint8_t)(j * 131u + i * 17u + 5u);
}

static void fill_writer(struct gguf_writer *w)
{
    static const char *const toks[] = {"<s>", "", "hello", "\xc4\xa0world", "a\nb"};
    static const int32_t i32s[] = {-1, 0, 2147483647, -2147483647 - 1};
    static const float f32s[] = {0.5f, -2.25f, 1e-6f};
    static const uint8_t bools[] = {1, 0, 1};
    CHECK_OK(gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK_OK(gguf_writer_set_u8(w, "t.u8", 200));
    CHECK_OK(gguf_writer_set_i8(w, "t.i8", -100));
    CHECK_OK(gguf_writer_set_u16(w, "t.u16", 60000));
    CHECK_OK(gguf_writer_set_i16(w, "t.i16", -30000));
    CHECK_OK(gguf_writer_set_u32(w, "t.u32", 4000000000u));
    CHECK_OK(gguf_writer_set_i32(w, "t.i32", -2000000000));
    CHECK_OK(gguf_writer_set_f32(w, "t.f32", 3.5f));
    CHECK_OK(gguf_writer_set_bool(w, "t.bool", true));
    CHECK_OK(gguf_writer_set_u64(w, "t.u64", 18000000000000000000ull));
    CHECK_OK(gguf_writer_set_i64(w, "t.i64", -9000000000000000000ll));
    CHECK_OK(gguf_writer_set_f64(w, "t.f64", -0.125));
    CHECK_OK(gguf_writer_set_str_n(w, "t.str_nul", "a\0b", 3));
    CHECK_OK(gguf_writer_set_str(w, "t.empty", ""));
    CHECK_OK(gguf_writer_set_arr_str(w, "t.tokens", 5, toks));
    CHECK_OK(gguf_writer_set_arr(w, "t.i32s", GGUF_VT_INT32, 4, i32s));
    CHECK_OK(gguf_writer_set_arr(w, "t.f32s", GGUF_VT_FLOAT32, 3, f32s));
    CHECK_OK(gguf_writer_set_arr(w, "t.bools", GGUF_VT_BOOL, 3, bools));
    CHECK_OK(gguf_writer_set_arr(w, "t.none", GGUF_VT_UINT64, 0, NULL));
    for (size_t i = 0; i < IMG_NT; i++) {
        size_t idx = 99;
        CHECK_OK(
            gguf_writer_add_tensor(w, img_names[i], img_types[i], img_ndims[i], img_ne[i], &idx));
        CHECK_INT_EQ(idx, i);
    }
}

/* The image in one exact-size malloc'ed buffer; *size its length. */
static uint8_t *make_image(size_t *size)
{
    struct gguf_writer *w = NULL;
    uint8_t *hdr = NULL, *img = NULL;
    size_t hsize = 0;
    uint64_t data_off = 0, fsize = 0;
    if (gguf_writer_create(&w) != HEARTH_OK)
        return NULL;
    fill_writer(w);
    if (gguf_writer_layout(w, &data_off, &fsize) == HEARTH_OK &&
        gguf_writer_header_to_memory(w, &hdr, &hsize) == HEARTH_OK &&
        (img = calloc(1, (size_t)fsize)) != NULL) {
        memcpy(img, hdr, hsize);
        for (size_t i = 0; i < IMG_NT; i++) {
            uint64_t off = data_off + gguf_writer_tensor_offset(w, i);
            for (uint64_t j = 0; j < gguf_writer_tensor_nbytes(w, i); j++)
                img[off + j] = img_byte(i, j);
        }
        *size = (size_t)fsize;
    }
    free(hdr);
    gguf_writer_destroy(w);
    return img;
}

/* Everything the image holds, checked through the reader's API. */
static void check_image(const struct gguf_file *f)
{
    uint64_t u = 0;
    int64_t i = 0;
    uint32_t u32 = 0;
    float fl = 0;
    bool b = false;
    struct gguf_str s = {0};
    uint64_t n = 0;
    const void *data = NULL;
    CHECK_INT_EQ(f->version, 3);
    CHECK_INT_EQ(f->n_kv, 19);
    CHECK_INT_EQ(f->n_tensors, IMG_NT);
    CHECK_INT_EQ(f->alignment, 32);
    CHECK_OK(gguf_get_str(f, "general.architecture", &s));
    CHECK(str_is(s, "llama"));
    CHECK_OK(gguf_get_u64(f, "t.u8", &u));
    CHECK_INT_EQ(u, 200);
    CHECK_OK(gguf_get_i64(f, "t.i8", &i));
    CHECK_INT_EQ(i, -100);
    CHECK_OK(gguf_get_u32(f, "t.u16", &u32));
    CHECK_INT_EQ(u32, 60000);
    CHECK_OK(gguf_get_i64(f, "t.i16", &i));
    CHECK_INT_EQ(i, -30000);
    CHECK_OK(gguf_get_u32(f, "t.u32", &u32));
    CHECK(u32 == 4000000000u);
    CHECK_OK(gguf_get_i64(f, "t.i32", &i));
    CHECK_INT_EQ(i, -2000000000);
    CHECK_OK(gguf_get_f32(f, "t.f32", &fl));
    CHECK(fl == 3.5f);
    CHECK_OK(gguf_get_bool(f, "t.bool", &b));
    CHECK(b);
    CHECK_OK(gguf_get_u64(f, "t.u64", &u));
    CHECK(u == 18000000000000000000ull);
    CHECK_OK(gguf_get_i64(f, "t.i64", &i));
    CHECK(i == -9000000000000000000ll);
    CHECK_OK(gguf_get_f32(f, "t.f64", &fl));
    CHECK(fl == -0.125f);
    CHECK_OK(gguf_get_str(f, "t.str_nul", &s));
    CHECK(s.len == 3 && memcmp(s.ptr, "a\0b", 3) == 0);
    CHECK_OK(gguf_get_str(f, "t.empty", &s));
    CHECK_INT_EQ(s.len, 0);
    CHECK_OK(gguf_get_arr(f, "t.tokens", GGUF_VT_STRING, &n, &data));
    CHECK_INT_EQ(n, 5);
    if (n == 5) {
        const struct gguf_str *t = data;
        CHECK(str_is(t[0], "<s>") && str_is(t[1], "") && str_is(t[2], "hello") &&
              str_is(t[3], "\xc4\xa0world") && str_is(t[4], "a\nb"));
    }
    CHECK_OK(gguf_get_arr(f, "t.i32s", GGUF_VT_INT32, &n, &data));
    if (n == 4) {
        int32_t v[4];
        memcpy(v, data, sizeof v);
        CHECK(v[0] == -1 && v[1] == 0 && v[2] == 2147483647 && v[3] == -2147483647 - 1);
    } else {
        CHECK_INT_EQ(n, 4);
    }
    CHECK_OK(gguf_get_arr(f, "t.f32s", GGUF_VT_FLOAT32, &n, &data));
    if (n == 3) {
        float v[3];
        memcpy(v, data, sizeof v);
        CHECK(v[0] == 0.5f && v[1] == -2.25f && v[2] == 1e-6f);
    } else {
        CHECK_INT_EQ(n, 3);
    }
    CHECK_OK(gguf_get_arr(f, "t.bools", GGUF_VT_BOOL, &n, &data));
    CHECK(n == 3 && memcmp(data, "\1\0\1", 3) == 0);
    CHECK_OK(gguf_get_arr(f, "t.none", GGUF_VT_UINT64, &n, &data));
    CHECK_INT_EQ(n, 0);

    uint64_t expect_off = 0, end = 0;
    for (size_t k = 0; k < IMG_NT && k < f->n_tensors; k++) {
        const struct gguf_tensor *t = &f->tensors[k];
        CHECK(str_is(t->name, img_names[k]));
        CHECK(gguf_find_tensor(f, img_names[k]) == t);
        CHECK_INT_EQ(t->type, img_types[k]);
        CHECK_INT_EQ(t->n_dims, img_ndims[k]);
        for (int d = 0; d < 4; d++)
            CHECK_INT_EQ(t->ne[d], img_ne[k][d]);
        uint64_t rb = 0;
        REQUIRE(quant_row_bytes(img_types[k], img_ne[k][0], &rb));
        CHECK_INT_EQ(t->nbytes, rb * img_ne[k][1] * img_ne[k][2] * img_ne[k][3]);
        CHECK_INT_EQ(t->offset, expect_off);
        end = t->offset + t->nbytes;
        expect_off += (t->nbytes + 31) / 32 * 32;
        CHECK(t->data == f->base + f->data_offset + t->offset);
        bool same = true;
        for (uint64_t j = 0; j < t->nbytes; j++)
            same = same && ((const uint8_t *)t->data)[j] == img_byte(k, j);
        CHECK_MSG(same, "tensor %zu data differs", k);
    }
    CHECK_INT_EQ(f->data_offset % 32, 0);
    CHECK_INT_EQ(f->data_size, end); /* the last tensor's end, without its padding */
    CHECK_INT_EQ(f->data_offset + expect_off, f->size);
}

TEST(round_trip_file)
{
    struct gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_create(&w));
    REQUIRE(w);
    fill_writer(w);
    const char *path = tmp_file("rt.gguf");
    CHECK_OK(gguf_writer_open(w, path));
    /* tensors out of order, one in chunks */
    for (size_t i = IMG_NT; i-- > 0;) {
        uint64_t nb = gguf_writer_tensor_nbytes(w, i);
        uint8_t *buf = malloc((size_t)nb);
        REQUIRE(buf);
        for (uint64_t j = 0; j < nb; j++)
            buf[j] = img_byte(i, j);
        if (i == 2) {
            CHECK_OK(gguf_writer_write_tensor_chunk(w, i, buf, 10));
            CHECK_OK(gguf_writer_write_tensor_chunk(w, i, buf + 10, nb - 10));
            CHECK(gguf_writer_write_tensor_chunk(w, i, buf, 1) == HEARTH_ERR_INVALID_ARG);
        } else {
            CHECK_OK(gguf_writer_write_tensor_data(w, i, buf, nb));
        }
        free(buf);
    }
    CHECK_OK(gguf_writer_close(w));
    gguf_writer_destroy(w);

    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f);
    check_image(f);
    /* the file is exactly what header_to_memory + data produce */
    size_t isize = 0;
    uint8_t *img = make_image(&isize);
    REQUIRE(img);
    CHECK_INT_EQ(isize, f->size);
    CHECK(isize == f->size && memcmp(img, f->base, isize) == 0);
    free(img);
    gguf_close(f);
    remove(path);
}

TEST(round_trip_memory_and_copy)
{
    size_t size = 0;
    uint8_t *img = make_image(&size);
    REQUIRE(img);
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(img, size, "img", &f));
    REQUIRE(f);
    check_image(f);
    /* copy every kv into a new writer: its header must serialize identically */
    struct gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_create(&w));
    REQUIRE(w);
    for (uint64_t i = 0; i < f->n_kv; i++)
        CHECK_OK(gguf_writer_copy_kv(w, &f->kv[i]));
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        char name[64];
        memcpy(name, t->name.ptr, (size_t)t->name.len);
        name[t->name.len] = '\0';
        CHECK_OK(gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, NULL));
    }
    uint8_t *hdr = NULL;
    size_t hsize = 0;
    CHECK_OK(gguf_writer_header_to_memory(w, &hdr, &hsize));
    CHECK_INT_EQ(hsize, f->data_offset);
    CHECK(hdr && hsize == f->data_offset && memcmp(hdr, img, hsize) == 0);
    free(hdr);
    gguf_writer_destroy(w);
    gguf_close(f);
    free(img);
}

TEST(writer_replace_remove_alignment)
{
    struct gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_create(&w));
    REQUIRE(w);
    const uint64_t ne[4] = {32, 1, 1, 1};
    CHECK_OK(gguf_writer_set_u32(w, "k.a", 1));
    CHECK_OK(gguf_writer_set_str(w, "k.b", "x"));
    CHECK_OK(gguf_writer_set_str(w, "k.a", "replaced")); /* keeps position 0, new type */
    CHECK_INT_EQ(gguf_writer_n_kv(w), 2);
    CHECK_OK(gguf_writer_add_tensor(w, "t0", HEARTH_DTYPE_F32, 1, ne, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "t1", HEARTH_DTYPE_Q8_0, 1, ne, NULL));
    CHECK_OK(gguf_writer_set_u32(w, "general.alignment", 256)); /* after the tensors */
    CHECK_OK(gguf_writer_set_u32(w, "k.c", 3));
    CHECK_OK(gguf_writer_remove(w, "k.c"));
    CHECK(gguf_writer_remove(w, "k.c") == HEARTH_ERR_NOT_FOUND);
    CHECK_INT_EQ(gguf_writer_find_tensor(w, "t1"), 1);
    CHECK_INT_EQ(gguf_writer_find_tensor(w, "t2"), -1);
    /* rejected like the reader rejects them */
    CHECK(gguf_writer_set_u32(w, "general.alignment", 48) == HEARTH_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_u64(w, "general.alignment", 64) == HEARTH_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_u32(w, "", 1) == HEARTH_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "t0", HEARTH_DTYPE_F32, 1, ne, NULL) == HEARTH_ERR_INVALID_ARG);
    const uint64_t ne33[4] = {33, 1, 1, 1}, ne0[4] = {0, 1, 1, 1};
    CHECK(gguf_writer_add_tensor(w, "q", HEARTH_DTYPE_Q4_0, 1, ne33, NULL) ==
          HEARTH_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "z", HEARTH_DTYPE_F32, 1, ne0, NULL) == HEARTH_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "r", (hearth_dtype)4, 1, ne, NULL) == HEARTH_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "d", HEARTH_DTYPE_F32, 5, ne, NULL) == HEARTH_ERR_INVALID_ARG);
    char longname[70];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    CHECK(gguf_writer_add_tensor(w, longname, HEARTH_DTYPE_F32, 1, ne, NULL) ==
          HEARTH_ERR_INVALID_ARG);

    const char *path = tmp_file("align.gguf");
    CHECK_OK(gguf_writer_open(w, path));
    CHECK(gguf_writer_set_u32(w, "k.d", 1) == HEARTH_ERR_INVALID_ARG);
    float z[32] = {0};
    CHECK_OK(gguf_writer_write_tensor_data(w, 0, z, sizeof z));
    CHECK(gguf_writer_write_tensor_data(w, 1, z, 3) == HEARTH_ERR_INVALID_ARG);
    /* t1 never written: close must say so */
    CHECK(gguf_writer_close(w) == HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "'t1'") != NULL);
    gguf_writer_destroy(w);

    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f);
    CHECK_INT_EQ(f->alignment, 256);
    CHECK_INT_EQ(f->data_offset % 256, 0);
    CHECK_INT_EQ(f->tensors[1].offset, 256);
    CHECK_INT_EQ(f->size, f->data_offset + 512);
    CHECK_INT_EQ(f->kv[0].type, GGUF_VT_STRING);
    CHECK(str_is(f->kv[0].key, "k.a") && str_is(f->kv[1].key, "k.b"));
    CHECK_INT_EQ(f->n_kv, 3);
    gguf_close(f);
    remove(path);
}

/* A 70B-sized plan written header-only: the data section is a hole. */
TEST(writer_sparse_large)
{
    struct gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_create(&w));
    REQUIRE(w);
    const uint64_t ne[4] = {8192, 28672, 1, 1};
    char name[64];
    for (int l = 0; l < 80; l++) {
        snprintf(name, sizeof name, "blk.%d.ffn_up.weight", l);
        CHECK_OK(gguf_writer_add_tensor(w, name, HEARTH_DTYPE_Q4_K, 2, ne, NULL));
    }
    const char *path = tmp_file("sparse.gguf");
    CHECK_OK(gguf_writer_open(w, path));
    CHECK_OK(gguf_writer_finish_sparse(w));
    gguf_writer_destroy(w);
    struct stat sb;
    REQUIRE(stat(path, &sb) == 0);
    uint64_t per = 8192 / 256 * 144 * 28672ull;
    CHECK((uint64_t)sb.st_size > 80 * per);
    CHECK((uint64_t)sb.st_blocks * 512 < (1u << 20)); /* sparse: under 1 MiB on disk */
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f);
    CHECK_INT_EQ(f->n_tensors, 80);
    CHECK_INT_EQ(f->tensors[79].nbytes, per);
    CHECK_INT_EQ(f->tensors[79].offset, 79 * per);
    gguf_close(f);
    remove(path);
}

TEST(getter_conversions)
{
    struct gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_create(&w));
    REQUIRE(w);
    CHECK_OK(gguf_writer_set_i32(w, "neg", -5));
    CHECK_OK(gguf_writer_set_u64(w, "big", 1ull << 40));
    CHECK_OK(gguf_writer_set_u64(w, "huge", UINT64_MAX));
    CHECK_OK(gguf_writer_set_str(w, "s", "x"));
    CHECK_OK(gguf_writer_set_u8(w, "two", 2));
    CHECK_OK(gguf_writer_set_i64(w, "min", INT64_MIN));
    uint8_t *buf = NULL;
    size_t n = 0;
    CHECK_OK(gguf_writer_header_to_memory(w, &buf, &n));
    gguf_writer_destroy(w);
    REQUIRE(buf);
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(buf, n, "conv.gguf", &f));
    REQUIRE(f);
    uint64_t u;
    uint32_t u32;
    int64_t i = 0;
    float fl = 0;
    bool b;
    struct gguf_str s;
    const void *d;
    CHECK(gguf_get_u64(f, "neg", &u) == HEARTH_ERR_BAD_FILE);
    CHECK(strstr(hearth_last_error(), "conv.gguf: offset 24: metadata key 'neg': value -5, "
                                      "expected a non-negative integer") != NULL);
    CHECK_OK(gguf_get_i64(f, "neg", &i));
    CHECK_INT_EQ(i, -5);
    CHECK_OK(gguf_get_f32(f, "neg", &fl));
    CHECK(fl == -5.0f);
    CHECK(gguf_get_u32(f, "big", &u32) == HEARTH_ERR_BAD_FILE);
    CHECK(strstr(hearth_last_error(), "value 1099511627776, expected a value below 2^32"));
    CHECK(gguf_get_i64(f, "huge", &i) == HEARTH_ERR_BAD_FILE);
    CHECK_OK(gguf_get_i64(f, "min", &i));
    CHECK(i == INT64_MIN);
    CHECK(gguf_get_u64(f, "s", &u) == HEARTH_ERR_BAD_FILE);
    CHECK(strstr(hearth_last_error(), "'s': type STRING, expected an integer"));
    CHECK(gguf_get_bool(f, "two", &b) == HEARTH_ERR_BAD_FILE);
    CHECK(gguf_get_str(f, "big", &s) == HEARTH_ERR_BAD_FILE);
    CHECK(gguf_get_arr(f, "s", GGUF_VT_STRING, &u, &d) == HEARTH_ERR_BAD_FILE);
    CHECK(gguf_get_u64(f, "absent", &u) == HEARTH_ERR_NOT_FOUND);
    CHECK(strstr(hearth_last_error(), "'absent' is missing"));
    CHECK(gguf_find_kv(f, "absent") == NULL);
    CHECK(gguf_find_tensor(f, "absent") == NULL);
    CHECK_INT_EQ(f->n_tensors, 0);
    gguf_close(f);
    free(buf);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Copies every kv and tensor declaration of f into a writer: the header it
 * serializes must equal the file's own header byte for byte (both real models
 * were written with the same layout rules), and the planned size the file's.
 */
static void check_header_rewrite(const struct gguf_file *f)
{
    struct gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_create(&w));
    if (!w)
        return;
    for (uint64_t i = 0; i < f->n_kv; i++)
        CHECK_OK(gguf_writer_copy_kv(w, &f->kv[i]));
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        char name[64];
        memcpy(name, t->name.ptr, (size_t)t->name.len);
        name[t->name.len] = '\0';
        CHECK_OK(gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, NULL));
    }
    uint8_t *hdr = NULL;
    size_t hsize = 0;
    uint64_t fsize = 0;
    CHECK_OK(gguf_writer_header_to_memory(w, &hdr, &hsize));
    CHECK_OK(gguf_writer_layout(w, NULL, &fsize));
    CHECK_INT_EQ(hsize, f->data_offset);
    CHECK_INT_EQ(fsize, f->size);
    CHECK(hdr && hsize == f->data_offset && memcmp(hdr, f->base, hsize) == 0);
    free(hdr);
    gguf_writer_destroy(w);
}

TEST(real_smollm2)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    if (!path)
        return;
    struct gguf_file *f = NULL;
    double t0 = now_ms();
    CHECK_OK(gguf_open(path, &f));
    double t1 = now_ms();
    REQUIRE(f);
    printf("  opened %s (%llu bytes, %llu kvs, %llu tensors) in %.2f ms\n", TEST_SMOLLM2,
           (unsigned long long)f->size, (unsigned long long)f->n_kv,
           (unsigned long long)f->n_tensors, t1 - t0);
    CHECK_INT_EQ(f->n_tensors, 272);
    struct gguf_str s = {0};
    uint32_t u = 0;
    uint64_t n = 0;
    float fl = 0;
    const void *d = NULL;
    CHECK_OK(gguf_get_str(f, "general.architecture", &s));
    CHECK(str_is(s, "llama"));
    CHECK_OK(gguf_get_u32(f, "llama.block_count", &u));
    CHECK_INT_EQ(u, 30);
    CHECK_OK(gguf_get_u32(f, "llama.embedding_length", &u));
    CHECK_INT_EQ(u, 576);
    CHECK_OK(gguf_get_u32(f, "llama.attention.head_count_kv", &u));
    CHECK_INT_EQ(u, 3);
    CHECK_OK(gguf_get_f32(f, "llama.rope.freq_base", &fl));
    CHECK(fl == 100000.0f);
    CHECK_OK(gguf_get_str(f, "tokenizer.ggml.model", &s));
    CHECK(str_is(s, "gpt2"));
    CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &n, &d));
    CHECK_INT_EQ(n, 49152);
    if (n == 49152) {
        const struct gguf_str *t = d;
        CHECK(str_is(t[0], "<|endoftext|>"));
        CHECK(str_is(t[216], "\xc4\xa0")); /* 'Ġ' */
        CHECK(str_is(t[198], "\xc4\x8a")); /* 'Ċ' */
        CHECK(str_is(t[19556], "Hello"));
    }
    CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_VT_STRING, &n, &d));
    CHECK_INT_EQ(n, 48900);
    const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    REQUIRE(t);
    CHECK_INT_EQ(t->type, HEARTH_DTYPE_Q8_0);
    CHECK_INT_EQ(t->ne[0], 576);
    CHECK_INT_EQ(t->ne[1], 49152);
    CHECK_INT_EQ(t->nbytes, 30081024);
    CHECK(gguf_find_tensor(f, "output.weight") == NULL);
    t = gguf_find_tensor(f, "blk.29.ffn_down.weight");
    REQUIRE(t);
    CHECK_INT_EQ(t->type, HEARTH_DTYPE_Q4_1);
    CHECK_INT_EQ(t->ne[0], 1536);
    CHECK_INT_EQ(t->ne[1], 576);
    int n_f32 = 0, n_q41 = 0, n_q80 = 0;
    uint64_t total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        n_f32 += f->tensors[i].type == HEARTH_DTYPE_F32;
        n_q41 += f->tensors[i].type == HEARTH_DTYPE_Q4_1;
        n_q80 += f->tensors[i].type == HEARTH_DTYPE_Q8_0;
        total += f->tensors[i].nbytes;
    }
    CHECK_INT_EQ(n_f32, 61);
    CHECK_INT_EQ(n_q41, 210);
    CHECK_INT_EQ(n_q80, 1);
    CHECK_INT_EQ(total, 96576768);
    CHECK(f->data_offset + f->data_size <= f->size);
    check_header_rewrite(f);
    gguf_close(f);
}

TEST(real_gemma3)
{
    const char *path = test_model_path(TEST_GEMMA3);
    if (!path)
        return;
    struct gguf_file *f = NULL;
    double t0 = now_ms();
    CHECK_OK(gguf_open(path, &f));
    double t1 = now_ms();
    REQUIRE(f);
    printf("  opened %s (%llu bytes, %llu kvs, %llu tensors) in %.2f ms\n", TEST_GEMMA3,
           (unsigned long long)f->size, (unsigned long long)f->n_kv,
           (unsigned long long)f->n_tensors, t1 - t0);
    CHECK_INT_EQ(f->n_tensors, 236);
    struct gguf_str s = {0};
    uint32_t u = 0;
    uint64_t n = 0;
    const void *d = NULL;
    CHECK_OK(gguf_get_str(f, "general.architecture", &s));
    CHECK(str_is(s, "gemma3"));
    CHECK_OK(gguf_get_u32(f, "gemma3.block_count", &u));
    CHECK_INT_EQ(u, 18);
    CHECK_OK(gguf_get_u32(f, "gemma3.embedding_length", &u));
    CHECK_INT_EQ(u, 640);
    CHECK_OK(gguf_get_u32(f, "gemma3.attention.key_length", &u));
    CHECK_INT_EQ(u, 256);
    CHECK_OK(gguf_get_u32(f, "gemma3.attention.sliding_window", &u));
    CHECK_INT_EQ(u, 512);
    CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &n, &d));
    CHECK_INT_EQ(n, 262144);
    const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    REQUIRE(t);
    CHECK_INT_EQ(t->ne[0], 640);
    CHECK_INT_EQ(t->ne[1], 262144);
    t = gguf_find_tensor(f, "blk.17.attn_q.weight");
    REQUIRE(t);
    CHECK_INT_EQ(t->ne[0], 640);
    CHECK_INT_EQ(t->ne[1], 1024);
    uint64_t params = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        params +=
            f->tensors[i].ne[0] * f->tensors[i].ne[1] * f->tensors[i].ne[2] * f->tensors[i].ne[3];
    CHECK_INT_EQ(params, 268098176);
    check_header_rewrite(f);
    gguf_close(f);
}

/* ---- the broken corpus ------------------------------------------------------ */

TEST(broken_corpus)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/corpus/gguf/EXPECTED", HEARTH_SOURCE_DIR);
    FILE *fp = fopen(path, "r");
    REQUIRE(fp);
    char line[2048];
    int n_files = 0, n_bad = 0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *name = line, *status = strchr(line, '\t'), *expect;
        REQUIRE(status);
        *status++ = '\0';
        expect = strchr(status, '\t');
        REQUIRE(expect);
        *expect++ = '\0';
        char fpath[1024];
        snprintf(fpath, sizeof fpath, "%s/tests/corpus/gguf/%s", HEARTH_SOURCE_DIR, name);
        struct gguf_file *f = NULL;
        hearth_status st = gguf_open(fpath, &f);
        n_files++;
        CHECK_MSG(strcmp(hearth_status_name(st), status) == 0, "%s: got %s (%s), expected %s", name,
                  hearth_status_name(st), hearth_last_error(), status);
        if (st != HEARTH_OK) {
            n_bad++;
            CHECK(f == NULL);
            const char *msg = hearth_last_error();
            /* the message starts with the path, then carries the expected text */
            CHECK_MSG(strncmp(msg, fpath, strlen(fpath)) == 0, "%s: message '%s'", name, msg);
            CHECK_MSG(strstr(msg, expect) != NULL, "%s:\n      got      '%s'\n      expected '%s'",
                      name, msg, expect);
        }
        gguf_close(f);
    }
    fclose(fp);
    CHECK(n_bad >= 25);
    CHECK(n_files == n_bad + 1);
}

/* Views of an opened file lie inside [base, base + size). */
static void check_invariants(const struct gguf_file *f)
{
    const uint8_t *lo = f->base, *hi = f->base + f->size;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        CHECK((const uint8_t *)kv->key.ptr >= lo &&
              kv->key.len <= (uint64_t)(hi - (const uint8_t *)kv->key.ptr));
        CHECK(kv->data >= lo && kv->data <= hi);
        if (kv->arr_strs)
            for (uint64_t j = 0; j < kv->arr_n; j++)
                CHECK((const uint8_t *)kv->arr_strs[j].ptr >= lo &&
                      kv->arr_strs[j].len <= (uint64_t)(hi - (const uint8_t *)kv->arr_strs[j].ptr));
    }
    CHECK(f->alignment && (f->alignment & (f->alignment - 1)) == 0);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        CHECK(t->offset % f->alignment == 0);
        CHECK(f->data_offset + t->offset + t->nbytes <= f->size);
        CHECK(t->n_dims >= 1 && t->n_dims <= 4);
        CHECK(quant_get(t->type) != NULL);
        /* touch the first and last byte: ASan flags a view past the buffer */
        volatile uint8_t x = ((const uint8_t *)t->data)[0];
        x = ((const uint8_t *)t->data)[t->nbytes - 1];
        (void)x;
        if (i)
            CHECK(t->offset >= f->tensors[i - 1].offset + f->tensors[i - 1].nbytes ||
                  t->offset + t->nbytes <= f->tensors[i - 1].offset);
    }
}

TEST(truncate_every_length)
{
    size_t size = 0;
    uint8_t *img = make_image(&size);
    REQUIRE(img);
    /* the last tensor (Q4_K, 144 bytes) is not a multiple of 32: trailing padding may go */
    uint64_t need = 0;
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(img, size, "full", &f));
    REQUIRE(f);
    need = f->data_offset + f->data_size;
    gguf_close(f);
    int ok = 0, bad = 0;
    for (size_t len = 0; len < size; len++) {
        uint8_t *cut = malloc(len ? len : 1);
        REQUIRE(cut);
        memcpy(cut, img, len);
        f = NULL;
        hearth_status st = gguf_open_memory(cut, len, "cut", &f);
        if (len < need) {
            CHECK_MSG(st == HEARTH_ERR_BAD_FILE, "length %zu: %s", len, hearth_status_name(st));
            CHECK(f == NULL);
            CHECK(strncmp(hearth_last_error(), "cut: offset ", 12) == 0);
            bad++;
        } else {
            CHECK_MSG(st == HEARTH_OK, "length %zu: %s", len, hearth_last_error());
            if (f)
                check_invariants(f);
            ok++;
        }
        gguf_close(f);
        free(cut);
    }
    CHECK_INT_EQ(bad, need);
    CHECK_INT_EQ(ok, size - need);
    free(img);
}

TEST(flip_random_bytes)
{
    size_t size = 0;
    uint8_t *img = make_image(&size);
    REQUIRE(img);
    uint8_t *buf = malloc(size);
    REQUIRE(buf);
    test_rng_seed(0x66757a7aull);
    int n_ok = 0, n_bad = 0;
    for (int it = 0; it < 10000; it++) {
        memcpy(buf, img, size);
        int flips = 1 + (int)(test_rng_u64() % 4);
        for (int k = 0; k < flips; k++) {
            /* mostly the header, where the structure is */
            uint64_t pick = test_rng_u64(); /* separate statements: a fixed call order */
            size_t at = (size_t)(test_rng_u64() % (pick % 4 ? 600 : size));
            if (at >= size)
                at = size - 1;
            uint64_t r = test_rng_u64();
            buf[at] = (r & 1) ? (uint8_t)(buf[at] ^ (1u << ((r >> 1) % 8))) : (uint8_t)(r >> 8);
        }
        struct gguf_file *f = NULL;
        hearth_status st = gguf_open_memory(buf, size, "flip", &f);
        if (st == HEARTH_OK) {
            n_ok++;
            check_invariants(f);
        } else {
            n_bad++;
            CHECK_MSG(st == HEARTH_ERR_BAD_FILE, "%s", hearth_last_error());
            CHECK(f == NULL);
        }
        gguf_close(f);
    }
    printf("  10000 mutants: %d opened, %d rejected\n", n_ok, n_bad);
    CHECK(n_ok > 0 && n_bad > 0);
    free(buf);
    free(img);
}

/* Version 2 has the v3 layout; types hearth cannot compute with are still readable. */
TEST(version2_and_uncomputable_types)
{
    struct gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_create(&w));
    REQUIRE(w);
    const uint64_t ne[4] = {512, 3, 1, 1}, ne1[4] = {7, 1, 1, 1};
    CHECK_OK(gguf_writer_add_tensor(w, "iq2", HEARTH_DTYPE_IQ2_XXS, 2, ne, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "i8", HEARTH_DTYPE_I8, 1, ne1, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "tq1", HEARTH_DTYPE_TQ1_0, 1, ne, NULL));
    uint64_t data_off = 0, fsize = 0;
    CHECK_OK(gguf_writer_layout(w, &data_off, &fsize));
    uint8_t *hdr = NULL;
    size_t hsize = 0;
    CHECK_OK(gguf_writer_header_to_memory(w, &hdr, &hsize));
    gguf_writer_destroy(w);
    REQUIRE(hdr);
    uint8_t *img = calloc(1, (size_t)fsize);
    REQUIRE(img);
    memcpy(img, hdr, hsize);
    free(hdr);
    img[4] = 2; /* version 2 */
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(img, (size_t)fsize, "v2", &f));
    REQUIRE(f);
    CHECK_INT_EQ(f->version, 2);
    CHECK_INT_EQ(f->tensors[0].nbytes, 2 * 66 * 3);
    CHECK_INT_EQ(f->tensors[1].nbytes, 7);
    CHECK_INT_EQ(f->tensors[1].offset, 416);
    CHECK_INT_EQ(f->tensors[2].nbytes, 2 * 54);
    CHECK(quant_get(f->tensors[2].type)->to_float == NULL);
    gguf_close(f);
    /* the last tensor may lack its trailing padding; one byte less than its data may not */
    uint64_t end = data_off + 448 + 2 * 54;
    CHECK_OK(gguf_open_memory(img, (size_t)end, "v2", &f));
    gguf_close(f);
    f = NULL;
    CHECK(gguf_open_memory(img, (size_t)end - 1, "v2", &f) == HEARTH_ERR_BAD_FILE);
    free(img);
}

TEST(open_errors)
{
    struct gguf_file *f = (struct gguf_file *)1;
    CHECK(gguf_open(tmp_file("does-not-exist.gguf"), &f) == HEARTH_ERR_IO);
    CHECK(f == NULL);
    CHECK(strstr(hearth_last_error(), "does-not-exist.gguf: cannot open") != NULL);
    CHECK(gguf_open(test_tmp_dir(), &f) == HEARTH_ERR_IO);
    const char *empty = tmp_file("empty.gguf");
    FILE *fp = fopen(empty, "wb");
    REQUIRE(fp);
    fclose(fp);
    CHECK(gguf_open(empty, &f) == HEARTH_ERR_BAD_FILE);
    CHECK(strstr(hearth_last_error(), "offset 0: header: the file is empty") != NULL);
    remove(empty);
    CHECK(gguf_open_memory("", 0, "mem", &f) == HEARTH_ERR_BAD_FILE);
    CHECK(strstr(hearth_last_error(), "mem: offset 0: header: magic: needs 4 bytes but only 0"));
}

TEST_MAIN(TEST_CASE(round_trip_file), TEST_CASE(round_trip_memory_and_copy),
          TEST_CASE(writer_replace_remove_alignment), TEST_CASE(writer_sparse_large),
          TEST_CASE(getter_conversions), TEST_CASE(real_smollm2), TEST_CASE(real_gemma3),
          TEST_CASE(broken_corpus), TEST_CASE(truncate_every_length), TEST_CASE(flip_random_bytes),
          TEST_CASE(version2_and_uncomputable_types), TEST_CASE(open_errors))
