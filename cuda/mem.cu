/*
 * cuda/mem: device memory, copies, streams, events, the device-side position
 * counter, and weight upload into the padded row layout (cuda/layout.h).
 *
 * These are thin wrappers whose job is the error contract: every runtime
 * failure becomes a status with the expression and error name in the message
 * (CUDA_TRY), allocation failure is DEVICE_OOM naming the size. Weight upload
 * stages through a bounded host buffer (at most 64 MiB) so a 1 GB tensor never
 * needs a second full host copy; when rows need no padding it copies straight
 * from the source.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

extern "C" int cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" hearth_status cuda_set_device(int i)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaSetDevice(i), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_device_info(int *n_sm, size_t *l2_bytes, char *name,
                                          size_t name_cap)
{
    hearth_status st = HEARTH_OK;
    int dev = 0;
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDevice(&dev), fail);
    CUDA_TRY(cudaGetDeviceProperties(&p, dev), fail);
    if (n_sm)
        *n_sm = p.multiProcessorCount;
    if (l2_bytes)
        *l2_bytes = (size_t)p.l2CacheSize;
    if (name && name_cap)
        snprintf(name, name_cap, "%s (sm_%d%d)", p.name, p.major, p.minor);
fail:
    return st;
}

extern "C" hearth_status cuda_alloc(void **d_ptr, size_t n)
{
    *d_ptr = NULL;
    cudaError_t e = cudaMalloc(d_ptr, n ? n : 1);
    if (e != cudaSuccess) {
        *d_ptr = NULL;
        hearth_status st = cuda__fail(e, "cudaMalloc", __FILE__, __LINE__);
        return err_prefix(st, "allocating %zu bytes of device memory", n);
    }
    return HEARTH_OK;
}

extern "C" void cuda_free(void *d_ptr)
{
    if (d_ptr)
        cudaFree(d_ptr);
}

extern "C" hearth_status cuda_upload(void *d_dst, const void *src, size_t n)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaMemcpy(d_dst, src, n, cudaMemcpyHostToDevice), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_download(void *dst, const void *d_src, size_t n)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaMemcpy(dst, d_src, n, cudaMemcpyDeviceToHost), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_memset(void *d_dst, int byte, size_t n)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaMemset(d_dst, byte, n), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_copy(void *d_dst, const void *d_src, size_t n, void *stream)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaMemcpyAsync(d_dst, d_src, n, cudaMemcpyDeviceToDevice, CUDA_STREAM(stream)),
             fail);
fail:
    return st;
}

static __global__ void fill_f32_kernel(float *y, float v, int64_t n)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = v;
}

extern "C" hearth_status cuda_fill_f32(float *d_dst, float value, int64_t n, void *stream)
{
    if (n <= 0)
        return HEARTH_OK;
    fill_f32_kernel<<<cuda__blocks(n, 256), 256, 0, CUDA_STREAM(stream)>>>(d_dst, value, n);
    CUDA_RETURN_LAUNCH();
}

extern "C" hearth_status cuda_synchronize(void)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaDeviceSynchronize(), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_stream_create(void **stream)
{
    hearth_status st = HEARTH_OK;
    cudaStream_t s = NULL;
    *stream = NULL;
    CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), fail);
    *stream = (void *)s;
fail:
    return st;
}

extern "C" void cuda_stream_destroy(void *stream)
{
    if (stream)
        cudaStreamDestroy(CUDA_STREAM(stream));
}

extern "C" hearth_status cuda_event_create(void **ev)
{
    hearth_status st = HEARTH_OK;
    cudaEvent_t e = NULL;
    *ev = NULL;
    CUDA_TRY(cudaEventCreate(&e), fail);
    *ev = (void *)e;
fail:
    return st;
}

extern "C" void cuda_event_destroy(void *ev)
{
    if (ev)
        cudaEventDestroy((cudaEvent_t)ev);
}

extern "C" hearth_status cuda_event_record(void *ev, void *stream)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaEventRecord((cudaEvent_t)ev, CUDA_STREAM(stream)), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_event_elapsed_ms(void *start, void *stop, float *ms)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaEventSynchronize((cudaEvent_t)stop), fail);
    CUDA_TRY(cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)stop), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_host_alloc(void **ptr, size_t n)
{
    *ptr = NULL;
    cudaError_t e = cudaMallocHost(ptr, n ? n : 1);
    if (e != cudaSuccess) {
        *ptr = NULL;
        cuda__fail(e, "cudaMallocHost", __FILE__, __LINE__);
        return err_prefix(HEARTH_ERR_NO_MEMORY, "allocating %zu bytes of pinned host memory", n);
    }
    return HEARTH_OK;
}

extern "C" void cuda_host_free(void *ptr)
{
    if (ptr)
        cudaFreeHost(ptr);
}

extern "C" hearth_status cuda_upload_async(void *d_dst, const void *src, size_t n, void *stream)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaMemcpyAsync(d_dst, src, n, cudaMemcpyHostToDevice, CUDA_STREAM(stream)), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_download_async(void *dst, const void *d_src, size_t n,
                                             void *stream)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaMemcpyAsync(dst, d_src, n, cudaMemcpyDeviceToHost, CUDA_STREAM(stream)), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_stream_synchronize(void *stream)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaStreamSynchronize(CUDA_STREAM(stream)), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_event_synchronize(void *ev)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaEventSynchronize((cudaEvent_t)ev), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_mem_info(size_t *free_b, size_t *total_b)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaMemGetInfo(free_b, total_b), fail);
fail:
    return st;
}

static __global__ void i32_kernel(int32_t *v, int32_t x, int add)
{
    *v = add ? *v + x : x;
}

extern "C" hearth_status cuda_i32_set(int32_t *d_v, int32_t value, void *stream)
{
    i32_kernel<<<1, 1, 0, CUDA_STREAM(stream)>>>(d_v, value, 0);
    CUDA_RETURN_LAUNCH();
}

extern "C" hearth_status cuda_i32_add(int32_t *d_v, int32_t delta, void *stream)
{
    i32_kernel<<<1, 1, 0, CUDA_STREAM(stream)>>>(d_v, delta, 1);
    CUDA_RETURN_LAUNCH();
}

extern "C" hearth_status cuda_weight_upload(const struct cuda_wlayout *l, void *d_dst,
                                            const void *src)
{
    hearth_status st = HEARTH_OK;
    uint8_t *stage = NULL;
    if (l->row_stride == l->row_bytes) {
        CUDA_TRY(cudaMemcpy(d_dst, src, l->bytes, cudaMemcpyHostToDevice), done);
        return HEARTH_OK;
    }
    {
        const size_t cap = (size_t)64 << 20;
        int64_t rows = (int64_t)(cap / l->row_stride);
        if (rows < 1)
            rows = 1;
        if (rows > l->n_rows)
            rows = l->n_rows;
        stage = (uint8_t *)malloc((size_t)rows * l->row_stride);
        if (!stage)
            return err_set(HEARTH_ERR_NO_MEMORY, "cuda weight upload: staging %zu bytes",
                           (size_t)rows * l->row_stride);
        for (int64_t r0 = 0; r0 < l->n_rows; r0 += rows) {
            int64_t n = l->n_rows - r0 < rows ? l->n_rows - r0 : rows;
            cuda_wlayout_pack(l, src, r0, n, stage);
            CUDA_TRY(cudaMemcpy((uint8_t *)d_dst + (size_t)r0 * l->row_stride, stage,
                                (size_t)n * l->row_stride, cudaMemcpyHostToDevice),
                     done);
        }
    }
done:
    free(stage);
    return st;
}
