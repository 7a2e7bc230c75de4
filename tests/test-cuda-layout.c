/*
 * test-cuda-layout: the host-side half of the CUDA weight layout
 * (cuda/layout.h), runnable on machines without CUDA: padded row geometry for
 * every type, pack/unpack round trips with zeroed padding, rejection of
 * shapes the kernels cannot take, and the matvec tile geometry the kernels
 * compile in (matvec.cu's mv_geom mirrors cuda_matvec_tile_elems).
 */
#include <stdlib.h>
#include <string.h>

#include "../cuda/layout.h"
#include "quant.h"
#include "test.h"

static const hearth_dtype types[] = {
    HEARTH_DTYPE_F32,  HEARTH_DTYPE_F16,  HEARTH_DTYPE_BF16, HEARTH_DTYPE_Q4_0,
    HEARTH_DTYPE_Q4_1, HEARTH_DTYPE_Q5_0, HEARTH_DTYPE_Q5_1, HEARTH_DTYPE_Q8_0,
    HEARTH_DTYPE_Q2_K, HEARTH_DTYPE_Q3_K, HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q5_K,
    HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ4_NL, HEARTH_DTYPE_IQ4_XS, HEARTH_DTYPE_IQ2_XXS,
    HEARTH_DTYPE_IQ2_XS, HEARTH_DTYPE_IQ2_S, HEARTH_DTYPE_IQ3_XXS, HEARTH_DTYPE_IQ3_S,
    HEARTH_DTYPE_IQ1_S, HEARTH_DTYPE_IQ1_M};
#define N_TYPES ((int)(sizeof types / sizeof types[0]))

TEST(geometry_matches_quant_traits)
{
    for (int i = 0; i < N_TYPES; i++) {
        const struct quant_traits *q = quant_get(types[i]);
        REQUIRE(q != NULL);
        int64_t ks[] = {256, 768, 2304, 4096, 14336};
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
            struct cuda_wlayout l;
            REQUIRE(cuda_wlayout_init(&l, types[i], 37, ks[j]));
            uint64_t rb = 0;
            REQUIRE(quant_row_bytes(types[i], (uint64_t)ks[j], &rb));
            CHECK_INT_EQ(l.row_bytes, rb); /* blocks are unchanged: same bytes per row */
            CHECK_INT_EQ(l.row_stride % 16, 0);
            CHECK(l.row_stride >= l.row_bytes && l.row_stride < l.row_bytes + 16);
            CHECK_INT_EQ(l.bytes, 37 * l.row_stride);
            CHECK_INT_EQ(l.n_blocks * l.blk_elems, ks[j]);
            CHECK_INT_EQ(l.blk_elems % 32, 0);
        }
    }
}

TEST(rejects_bad_shapes)
{
    struct cuda_wlayout l;
    CHECK(!cuda_wlayout_init(&l, HEARTH_DTYPE_Q4_K, 4, 128));  /* K not a multiple of 256 */
    CHECK(!cuda_wlayout_init(&l, HEARTH_DTYPE_Q4_0, 4, 48));   /* nor of 32 */
    CHECK(!cuda_wlayout_init(&l, HEARTH_DTYPE_F16, 4, 40));    /* float types need K % 32 */
    CHECK(!cuda_wlayout_init(&l, HEARTH_DTYPE_Q4_0, 0, 64));   /* no rows */
    CHECK(!cuda_wlayout_init(&l, HEARTH_DTYPE_TQ2_0, 4, 256));   /* no kernel */
    CHECK(!cuda_wlayout_init(&l, HEARTH_DTYPE_IQ2_XXS, 4, 128)); /* K not a multiple of 256 */
    CHECK(!cuda_wlayout_init(&l, HEARTH_DTYPE_Q8_K, 4, 256));  /* activation-only type */
    CHECK(cuda_wlayout_init(&l, HEARTH_DTYPE_Q4_0, 4, 64));
    CHECK_INT_EQ(l.row_bytes, 36);
    CHECK_INT_EQ(l.row_stride, 48);
}

TEST(pack_unpack_round_trip)
{
    test_rng_seed(7);
    for (int i = 0; i < N_TYPES; i++) {
        int64_t ks[] = {256, 2304};
        for (int j = 0; j < 2; j++) {
            struct cuda_wlayout l;
            REQUIRE(cuda_wlayout_init(&l, types[i], 5, ks[j]));
            size_t src_n = l.row_bytes * 5;
            uint8_t *src = malloc(src_n), *dev = malloc(l.bytes), *back = malloc(src_n);
            REQUIRE(src && dev && back);
            for (size_t b = 0; b < src_n; b++)
                src[b] = (uint8_t)test_rng_u64();
            memset(dev, 0xa5, l.bytes);
            /* two calls, as the staged upload does: rows [0,2) then [2,5) */
            cuda_wlayout_pack(&l, src, 0, 2, dev);
            cuda_wlayout_pack(&l, src, 2, 3, dev + 2 * l.row_stride);
            for (int r = 0; r < 5; r++) {
                CHECK(memcmp(dev + r * l.row_stride, src + r * l.row_bytes, l.row_bytes) == 0);
                for (size_t b = l.row_bytes; b < l.row_stride; b++)
                    CHECK_INT_EQ(dev[r * l.row_stride + b], 0);
            }
            cuda_wlayout_unpack(&l, dev, back);
            CHECK(memcmp(src, back, src_n) == 0);
            free(src);
            free(dev);
            free(back);
        }
    }
}

TEST(matvec_tiles_are_aligned_and_even)
{
    for (int i = 0; i < N_TYPES; i++) {
        int64_t be, bb;
        REQUIRE(cuda_type_geom(types[i], &be, &bb));
        int64_t te = cuda_matvec_tile_elems(be, bb);
        CHECK_INT_EQ(te % 1024, 0);            /* whole units for each of 32 lanes */
        CHECK_INT_EQ(te % be, 0);              /* whole blocks */
        CHECK_INT_EQ((te / be * bb) % 16, 0);  /* ends on a 16-byte boundary */
        CHECK(te <= 2048);                     /* shared-memory budget in matvec.cu */
    }
    CHECK_INT_EQ(cuda_matvec_tile_elems(256, 210), 2048); /* Q6_K: 8 blocks = 1680 bytes */
    CHECK_INT_EQ(cuda_matvec_tile_elems(256, 110), 2048); /* Q3_K */
    CHECK_INT_EQ(cuda_matvec_tile_elems(32, 18), 1024);   /* Q4_0: 32 blocks = 576 bytes */
    CHECK_INT_EQ(cuda_matvec_tile_elems(256, 144), 1024); /* Q4_K */
    CHECK_INT_EQ(cuda_matvec_tile_elems(256, 66), 2048);  /* IQ2_XXS: 8 blocks = 528 bytes */
    CHECK_INT_EQ(cuda_matvec_tile_elems(256, 50), 2048);  /* IQ1_S: 400 bytes */
    CHECK_INT_EQ(cuda_matvec_tile_elems(256, 56), 1024);  /* IQ1_M: 4 blocks = 224 bytes */
}

TEST_MAIN(TEST_CASE(geometry_matches_quant_traits), TEST_CASE(rejects_bad_shapes),
          TEST_CASE(pack_unpack_round_trip), TEST_CASE(matvec_tiles_are_aligned_and_even))
