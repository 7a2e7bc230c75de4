/*
 * test-cuda-graph-key: the host half of the CUDA-graph decode cache
 * (cuda/graph-cache.c), runnable without CUDA or a GPU. A decode step's op
 * list must give the same key at every position (else every step would be
 * captured anew), a different key when anything that shapes a launch changes
 * (else a stale graph would run: wrong tensor, wrong type, wrong shape), the
 * same key whatever the structs' padding holds, and its attention positions
 * in op order. Lists that are not decode-shaped are refused, and the table
 * finds, adds and starts over at its bound. The graph calls are counted by a
 * stand-in for cuda_graph_destroy, so no CUDA runtime is needed.
 */
#define cuda_graph_destroy test_graph_destroy /* before graph-cache.c declares it (ops.h) */
#include "../cuda/graph-cache.c"

#include "test.h"

static int n_destroyed;

void test_graph_destroy(void *exec)
{
    n_destroyed += exec != NULL;
}

static struct hearth_buffer bufs[8]; /* only their addresses enter a key */

static struct hearth_tensor ten(int b, size_t off, hearth_dtype t, int64_t ne0, int64_t rows)
{
    struct hearth_tensor r;
    memset(&r, 0, sizeof r);
    r.buf = &bufs[b];
    r.offset = off;
    r.type = t;
    r.ne0 = ne0;
    r.n_rows = rows;
    r.row_stride = (size_t)ne0 * 4u;
    return r;
}

/* The scheduler's attention block as one decode step at pos, every byte first set to fill. */
static void block(struct hearth_op *ops, int64_t pos, uint8_t fill)
{
    memset(ops, fill, 5 * sizeof *ops);
    ops[0].kind = HEARTH_OP_RMSNORM;
    ops[0].u.rmsnorm.x = ten(0, 0, HEARTH_DTYPE_F32, 64, 1);
    ops[0].u.rmsnorm.w = ten(1, 0, HEARTH_DTYPE_F32, 64, 1);
    ops[0].u.rmsnorm.y = ten(0, 256, HEARTH_DTYPE_F32, 64, 1);
    ops[0].u.rmsnorm.eps = 1e-5f;
    ops[1].kind = HEARTH_OP_MATMUL;
    ops[1].u.matmul.n_w = 1;
    ops[1].u.matmul.x = ten(0, 256, HEARTH_DTYPE_F32, 64, 1);
    ops[1].u.matmul.w[0] = ten(2, 0, HEARTH_DTYPE_Q4_K, 256, 64);
    ops[1].u.matmul.b[0] = ten(3, 0, HEARTH_DTYPE_F32, 64, 1);
    ops[1].u.matmul.y[0] = ten(0, 512, HEARTH_DTYPE_F32, 64, 1);
    ops[2].kind = HEARTH_OP_ATTENTION;
    struct hearth_op_attention *a = &ops[2].u.attn;
    a->q = ten(0, 512, HEARTH_DTYPE_F32, 64, 1);
    a->k = a->v = a->q_norm = a->k_norm = a->rope_divs = a->out = a->q;
    a->k_aux = a->k_ring = a->v_ring = a->ring_pos = a->q;
    a->k_cache = ten(4, 0, HEARTH_DTYPE_F16, 32, 512);
    a->v_cache = ten(5, 0, HEARTH_DTYPE_F16, 32, 512);
    a->n_head = 2, a->n_head_kv = 1, a->head_dim = 32, a->n_rot = 32;
    a->rope_mode = HEARTH_ROPE_NEOX, a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f;
    a->norm_eps = 1e-6f, a->scale = 0.125f, a->pos0 = pos, a->window = 0;
    a->k_type = a->v_type = 0, a->layer = 3, a->kv_seed = 77, a->kv_window = 0;
    ops[3].kind = HEARTH_OP_GLU;
    ops[3].u.glu.g = ten(0, 768, HEARTH_DTYPE_F32, 64, 1);
    ops[3].u.glu.u = ten(0, 1024, HEARTH_DTYPE_F32, 64, 1);
    ops[3].u.glu.act = HEARTH_GLU_SILU;
    ops[4].kind = HEARTH_OP_LOGITS;
    ops[4].u.logits.x = ten(0, 0, HEARTH_DTYPE_F32, 64, 1);
    ops[4].u.logits.norm_w = ten(1, 0, HEARTH_DTYPE_F32, 64, 1);
    ops[4].u.logits.out_w = ten(6, 0, HEARTH_DTYPE_Q8_0, 64, 100);
    ops[4].u.logits.y = ten(7, 0, HEARTH_DTYPE_F32, 100, 1);
    ops[4].u.logits.eps = 1e-6f;
    for (int i = 0; i < 5; i++)
        ops[i].n_tok = 1;
}

/* The key of ops as owned bytes (the cache's buffer is reused by the next call). */
static uint8_t *key_of(struct cuda_graph_cache *c, const struct hearth_op *ops, int n,
                       size_t *len)
{
    if (!cuda_graph_key(c, ops, n))
        return NULL;
    uint8_t *k = malloc(c->len);
    if (k)
        memcpy(k, c->buf, c->len);
    *len = c->len;
    return k;
}

TEST(same_key_at_every_position_and_padding)
{
    struct cuda_graph_cache c;
    memset(&c, 0, sizeof c);
    struct hearth_op a[5], b[5];
    block(a, 10, 0x00);
    block(b, 4000, 0xA5); /* another position, garbage in every padding byte */
    size_t la = 0, lb = 0;
    uint8_t *ka = key_of(&c, a, 5, &la);
    CHECK_INT_EQ(c.n_pos, 1);
    CHECK_INT_EQ(c.pos[0], 10);
    uint64_t ha = c.hash;
    uint8_t *kb = key_of(&c, b, 5, &lb);
    REQUIRE(ka && kb);
    CHECK_INT_EQ(c.pos[0], 4000);
    CHECK(ha == c.hash);
    CHECK(la == lb && memcmp(ka, kb, la) == 0);
    free(ka);
    free(kb);
    cuda_graph_cache_clear(&c);
}

/* One change to the block per index; false past the last. */
static bool mutate(struct hearth_op *o, int i)
{
    struct hearth_op_attention *a = &o[2].u.attn;
    switch (i) {
    case 0: o[0].u.rmsnorm.eps = 2e-5f; return true;
    case 1: o[0].u.rmsnorm.y.offset += 4; return true;
    case 2: o[1].u.matmul.w[0].buf = &bufs[6]; return true;
    case 3: o[1].u.matmul.w[0].type = HEARTH_DTYPE_Q6_K; return true;
    case 4: o[1].u.matmul.w[0].n_rows = 32; return true;
    case 5: o[1].u.matmul.b[0].buf = NULL; return true;
    case 6: o[1].u.matmul.n_w = 2, o[1].u.matmul.w[1] = o[1].u.matmul.w[0]; return true;
    case 7: o[1].n_tok = 2; return true;
    case 8: a->k_cache.row_stride += 64; return true;
    case 9: a->rope_base = 500000.0f; return true;
    case 10: a->rope_mode = HEARTH_ROPE_NORMAL; return true;
    case 11: a->window = 512; return true;
    case 12: a->k_type = 3; return true;
    case 13: a->layer = 4; return true;
    case 14: a->kv_seed = 78; return true;
    case 15: a->kv_window = 128; return true;
    case 16: a->scale = 0.25f; return true;
    case 17: a->n_head_kv = 2; return true;
    case 18: a->ring_pos.offset = 4096; return true;
    case 19: o[3].u.glu.act = HEARTH_GLU_GELU_TANH; return true;
    case 20: o[4].u.logits.out_w.ne0 = 128; return true;
    case 21: o[4].kind = HEARTH_OP_RMSNORM; return true;
    default: return false;
    }
}

TEST(any_launch_field_changes_the_key)
{
    struct cuda_graph_cache c;
    memset(&c, 0, sizeof c);
    struct hearth_op base[5], m[5];
    block(base, 10, 0);
    size_t lb = 0;
    uint8_t *kb = key_of(&c, base, 5, &lb);
    REQUIRE(kb);
    int n = 0;
    for (int i = 0; block(m, 10, 0), mutate(m, i); i++, n++) {
        size_t lm = 0;
        uint8_t *km = key_of(&c, m, 5, &lm);
        CHECK_MSG(km != NULL, "change %d: list refused", i);
        CHECK_MSG(km && (lm != lb || memcmp(km, kb, lb) != 0), "change %d: same key", i);
        free(km);
    }
    CHECK_INT_EQ(n, 22);
    free(kb);
    cuda_graph_cache_clear(&c);
}

TEST(refuses_lists_that_are_not_decode_steps)
{
    struct cuda_graph_cache c;
    memset(&c, 0, sizeof c);
    struct hearth_op ops[CUDA_GRAPH_MAX_POS + 1];
    block(ops, 7, 0);
    CHECK(cuda_graph_key(&c, ops, 5));
    ops[1].n_tok = CUDA_MATVEC_MAX_TOK + 1; /* a prefill matmul: cuBLAS or WMMA, scratch */
    CHECK(!cuda_graph_key(&c, ops, 5));
    ops[1].n_tok = 0;
    CHECK(!cuda_graph_key(&c, ops, 5));
    CHECK(!cuda_graph_key(&c, ops, 0));
    /* one attention op per sequence: up to CUDA_GRAPH_MAX_POS, positions in op order */
    block(ops, 7, 0);
    for (int i = 0; i <= CUDA_GRAPH_MAX_POS; i++) {
        ops[i] = ops[2];
        ops[i].u.attn.pos0 = 100 + 3 * i;
    }
    CHECK(cuda_graph_key(&c, ops, CUDA_GRAPH_MAX_POS));
    CHECK_INT_EQ(c.n_pos, CUDA_GRAPH_MAX_POS);
    for (int i = 0; i < c.n_pos; i++)
        CHECK_INT_EQ(c.pos[i], 100 + 3 * i);
    CHECK(!cuda_graph_key(&c, ops, CUDA_GRAPH_MAX_POS + 1));
    ops[0].u.attn.pos0 = (int64_t)INT32_MAX; /* does not fit the device's int32 slots */
    CHECK(!cuda_graph_key(&c, ops, 1));
    cuda_graph_cache_clear(&c);
}

TEST(table_finds_adds_and_starts_over)
{
    struct cuda_graph_cache c;
    memset(&c, 0, sizeof c);
    struct hearth_op ops[5];
    n_destroyed = 0;
    for (int i = 0; i < CUDA_GRAPH_MAX_ENTRIES; i++) {
        block(ops, 1, 0);
        ops[0].u.rmsnorm.y.offset = (size_t)i * 256;
        REQUIRE(cuda_graph_key(&c, ops, 5));
        CHECK(cuda_graph_find(&c) == NULL);
        struct cuda_graph_entry *e = cuda_graph_add(&c);
        REQUIRE(e);
        e->exec = &bufs[i % 8]; /* a stand-in graph */
        CHECK(cuda_graph_find(&c) == e);
    }
    CHECK_INT_EQ(c.n, CUDA_GRAPH_MAX_ENTRIES);
    block(ops, 99, 0); /* entry 0's list at another position */
    ops[0].u.rmsnorm.y.offset = 0;
    REQUIRE(cuda_graph_key(&c, ops, 5));
    CHECK(cuda_graph_find(&c) == &c.e[0]);
    ops[0].u.rmsnorm.y.offset = 1; /* one more distinct list: the table starts over */
    REQUIRE(cuda_graph_key(&c, ops, 5));
    REQUIRE(cuda_graph_add(&c));
    CHECK_INT_EQ(n_destroyed, CUDA_GRAPH_MAX_ENTRIES);
    CHECK_INT_EQ(c.n, 1);
    CHECK(cuda_graph_find(&c) == &c.e[0]);
    c.e[0].exec = &bufs[0];
    cuda_graph_cache_clear(&c);
    CHECK_INT_EQ(n_destroyed, CUDA_GRAPH_MAX_ENTRIES + 1);
    CHECK_INT_EQ(c.n, 0);
}

TEST_MAIN(TEST_CASE(same_key_at_every_position_and_padding),
          TEST_CASE(any_launch_field_changes_the_key),
          TEST_CASE(refuses_lists_that_are_not_decode_steps),
          TEST_CASE(table_finds_adds_and_starts_over))
