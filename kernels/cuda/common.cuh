/*
 * Shared state and error plumbing of the CUDA backend (backend_cuda.cu,
 * ops_cuda.cu and ops_cuda_layers.cu). Internal to kernels/cuda.
 *
 * Every CUDA, cuBLAS and cuDNN call goes through one of the OOMB_CUDA_CHECK /
 * OOMB_CUBLAS_CHECK / OOMB_CUDNN_CHECK macros: a failure becomes
 * OOMB_ERR_BACKEND with "file:line: cudaXxx failed: <library message>" stored in
 * the context for ops.last_error. Nothing here exits or aborts.
 */
#ifndef OOMB_KERNELS_CUDA_COMMON_CUH
#define OOMB_KERNELS_CUDA_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend.h"
#include "conv_cache.h"

#define OOMB_CUDA_ERR_LEN 512

/* Reductions that return a value to the host (sum, count_*) write per-block
 * partials into `scratch`, a fixed device buffer the context owns (allocated
 * once at create, so ops still never allocate). */
#define OOMB_CUDA_REDUCE_BLOCKS 1024
#define OOMB_CUDA_SCRATCH_BYTES (OOMB_CUDA_REDUCE_BLOCKS * 8 + 64)

/* The event of one copy_async: start and end recorded on the copy stream
 * around the copy (default flags, so that they time it). Released events go
 * to the context's free list and are reused. */
struct oomb_cuda_copy_ev {
    cudaEvent_t start, end;
    struct oomb_cuda_copy_ev *next; /* free list link */
};

/* The cuDNN descriptors of one convolution cache slot (conv_cache.h):
 * created the first time the slot is used, set again when it is given to
 * another geometry, destroyed with the context. */
struct oomb_cuda_conv_descs {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
};

struct oomb_cuda_ctx {
    int device;
    cudaStream_t stream;
    /* Copies between spaces (copy_async): a second, non-blocking stream that
     * waits for `copy_ready`, recorded on `stream` at each copy (timing
     * disabled), and the free list of released copy events. */
    cudaStream_t copy_stream;
    cudaEvent_t copy_ready;
    struct oomb_cuda_copy_ev *free_evs;
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    cublasComputeType_t f32_compute; /* CUBLAS_COMPUTE_32F, or _FAST_TF32 with OOMB_CUDA_TF32=1 */
    int tf32;

    void *scratch;        /* (OOMB_CUDA_SCRATCH_BYTES) device */
    void *host_scratch;   /* (64) pinned host, target of the reduction results */

    /* cuBLAS workspace, allocated through the host's hook (tag workspace). */
    const struct oomb_backend_alloc_hook *hook;
    void *workspace;
    size_t workspace_bytes;

    /* Device memory: by default stream-ordered allocation from the device's
     * pool (cudaMallocAsync, memory kept cached by the pool, no synchronising
     * cudaFree per tensor); OOMB_CUDA_ALLOC=malloc selects plain cudaMalloc.
     * The cross-check is the pool's used high-water mark, or the
     * cudaMemGetInfo delta with plain cudaMalloc. */
    int use_pool;
    cudaMemPool_t pool;
    uint64_t baseline_used;
    uint64_t peak_delta;

    /* timer: events recorded on the stream; resolved lazily, in order */
    cudaEvent_t *events;
    int64_t *event_ns;    /* resolved times, valid for ids < n_resolved */
    int n_events, cap_events, n_resolved;
    int64_t anchor_ns;    /* CLOCK_MONOTONIC at the first mark */

    /* Convolutions (ops_cuda_layers.cu): per geometry, the descriptors and
     * cuDNN's algorithm rankings with their workspace sizes. */
    struct oomb_conv_cache conv_cache;
    struct oomb_cuda_conv_descs conv_descs[OOMB_CONV_CACHE_CAP];

    char name[256];
    char driver[64];
    char runtime[160];
    char err[OOMB_CUDA_ERR_LEN];

    /* The extension tables (OOMB_EXT_* of <oombench/plugin.h>), each with
     * ctx = this context; filled by oomb_cuda_ops_init, handed out by
     * oomb_cuda_get_extension. */
    struct oomb_ext_quant ext_quant;
    struct oomb_ext_sparse ext_sparse;
    struct oomb_ext_distill ext_distill;
};

#ifdef __cplusplus
extern "C" {
#endif
/* Stores "file:line: <call> failed: <what>" (call cut at its '(') and returns
 * OOMB_ERR_BACKEND. */
int oomb_cuda_fail(struct oomb_cuda_ctx *k, const char *file, int line, const char *call,
                   const char *what);
/* Like oomb_cuda_fail with a printf message, returning `status`. */
int oomb_cuda_errf(struct oomb_cuda_ctx *k, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fills b->ops with the kernels of ops_cuda.cu (and ops_cuda_layers.cu), and
 * the extension tables of k with those of ops_cuda.cu. */
void oomb_cuda_ops_init(struct oomb_ops *ops, struct oomb_cuda_ctx *k);
/* The extension table `name` (OOMB_EXT_QUANT, _SPARSE, _DISTILL) of the
 * context `k` (a struct oomb_cuda_ctx), or NULL for another name or a NULL
 * argument: the get_extension of the backend (kernels/backend.h). */
const void *oomb_cuda_get_extension(void *k, const char *name);
/* Fills the ABI 1.1 layer ops (ops_cuda_layers.cu); called by oomb_cuda_ops_init. */
void oomb_cuda_layer_ops_init(struct oomb_ops *ops);
/* Destroys the descriptors of the convolution cache of k and empties it
 * (ops_cuda_layers.cu); called when the context is released. */
void oomb_cuda_conv_cache_free(struct oomb_cuda_ctx *k);
#ifdef __cplusplus
}
#endif

#define OOMB_CUDA_CHECK(k, call)                                                           \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            (void)cudaGetLastError();                                                      \
            return oomb_cuda_fail((k), __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
        }                                                                                  \
    } while (0)

#define OOMB_CUBLAS_CHECK(k, call)                                                           \
    do {                                                                                     \
        cublasStatus_t s_ = (call);                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                     \
            return oomb_cuda_fail((k), __FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
    } while (0)

#define OOMB_CUDNN_CHECK(k, call)                                                          \
    do {                                                                                   \
        cudnnStatus_t s_ = (call);                                                         \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                    \
            return oomb_cuda_fail((k), __FILE__, __LINE__, #call, cudnnGetErrorString(s_)); \
    } while (0)

/* After a kernel launch: a bad configuration shows up in cudaGetLastError. */
#define OOMB_CUDA_LAUNCHED(k, kernel_name)                                                 \
    do {                                                                                   \
        cudaError_t e_ = cudaGetLastError();                                               \
        if (e_ != cudaSuccess)                                                             \
            return oomb_cuda_fail((k), __FILE__, __LINE__, kernel_name " launch",          \
                                  cudaGetErrorString(e_));                                 \
    } while (0)

#endif
