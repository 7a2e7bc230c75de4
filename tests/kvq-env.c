/* kvq-env: see kvq-env.h. */
#include "kvq-env.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

struct hearth_tensor kenv_mk(struct kenv *e, int d, hearth_dtype t, int64_t ne0, size_t row_bytes,
                             int64_t n_rows, const void *host)
{
    struct hearth_tensor w;
    memset(&w, 0, sizeof w);
    size_t n = row_bytes * (size_t)n_rows;
    struct hearth_buffer *b = NULL;
    if (e->n_bufs >= KENV_MAX_BUFS) {
        TEST_FAIL_AT("too many test buffers");
        return w;
    }
    CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(e->dev[d]), n, &b));
    if (!b)
        return w;
    e->bufs[e->n_bufs++] = b;
    if (host)
        CHECK_OK(backend_buffer_set(b, 0, host, n));
    else
        CHECK_OK(backend_buffer_clear(b, 0));
    return (struct hearth_tensor){
        .buf = b, .type = t, .ne0 = ne0, .n_rows = n_rows, .row_stride = row_bytes};
}

void kenv_free_bufs(struct kenv *e)
{
    for (int i = 0; i < e->n_bufs; i++)
        backend_buffer_free(e->bufs[i]);
    e->n_bufs = 0;
}

float *kenv_gauss(size_t n, double s)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++)
        x[i] = (float)(test_rng_gauss() * s);
    return x;
}

int kenv_bits_differ(const float *a, const float *b, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    return bad;
}
