/*
 * vulkan/bandwidth: the device's copy bandwidth, the denominator of every
 * "share of copy bandwidth" hearth reports for a Vulkan GPU and the figure
 * the planner's decode roofline uses. Copies rather than a shader: it is what
 * `hearth devices` measures on CUDA and the host too, so ratios across
 * devices compare like with like.
 */
#include <time.h>

#include "vk-internal.h"

#define BW_MAX_BYTES ((uint64_t)256 << 20)
#define BW_REPS 6 /* the first warms up */
#define BW_TS_A 62 /* timestamp slots no op uses */
#define BW_TS_B 63

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

hearth_status vk_measure_copy_bandwidth(struct vk_ctx *ctx, double *gbps)
{
    const struct vk_caps *c = vk_ctx_caps(ctx);
    uint64_t n = BW_MAX_BYTES;
    if (c->max_chunk && n > c->max_chunk)
        n = c->max_chunk;
    if (c->device_local_bytes && n > c->device_local_bytes / 8)
        n = c->device_local_bytes / 8;
    n &= ~(uint64_t)255;
    *gbps = 0.0;
    if (n < ((uint64_t)1 << 20))
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: %s: too little memory to time copies",
                       c->name);
    struct vk_buffer a = {0}, b = {0};
    hearth_status st;
    double best = 0.0;
    if ((st = vk_buffer_create(ctx, n, VK_BUF_DEVICE, &a)) != HEARTH_OK ||
        (st = vk_buffer_create(ctx, n, VK_BUF_DEVICE, &b)) != HEARTH_OK ||
        (st = vk_buffer_fill(ctx, &a, 0, n, 0x3c003c00u)) != HEARTH_OK ||
        (st = vk_submit(ctx)) != HEARTH_OK)
        goto done;
    for (int r = 0; r < BW_REPS; r++) {
        double t0 = now_s(), sec = 0.0;
        if (c->timestamps && (st = vk_timestamp(ctx, BW_TS_A)) != HEARTH_OK)
            goto done;
        if ((st = vk_buffer_copy(ctx, &b, 0, &a, 0, n)) != HEARTH_OK ||
            (c->timestamps && (st = vk_timestamp(ctx, BW_TS_B)) != HEARTH_OK) ||
            (st = vk_submit(ctx)) != HEARTH_OK)
            goto done;
        sec = now_s() - t0;
        if (c->timestamps) {
            double ns = 0.0;
            if ((st = vk_timestamp_elapsed_ns(ctx, BW_TS_A, BW_TS_B, &ns)) != HEARTH_OK)
                goto done;
            if (ns > 0.0)
                sec = ns * 1e-9;
        }
        if (r > 0 && sec > 0.0 && (best == 0.0 || sec < best))
            best = sec;
    }
    *gbps = best > 0.0 ? 2.0 * (double)n / best * 1e-9 : 0.0;
done:
    vk_buffer_destroy(ctx, &b);
    vk_buffer_destroy(ctx, &a);
    return st == HEARTH_OK ? HEARTH_OK : err_prefix(st, "vulkan: timing device copies");
}
