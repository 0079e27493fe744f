/*
 * The CUDA backend's lifecycle: device discovery, the context (one stream, a
 * cuBLAS handle and a cuDNN handle bound to it), raw device allocation, the
 * cuBLAS workspace allocated through the host's tracked allocator, event
 * timing, and the device's own figure for the tracked peak (the memory pool's
 * high-water mark, or the cudaMemGetInfo delta with OOMB_CUDA_ALLOC=malloc).
 * Host memory (pageable: malloc; pinned: cudaHostAlloc) and copies between
 * spaces, on a second stream that overlaps the compute stream and is timed
 * with events, are here too. The kernels
 * themselves are in ops_cuda.cu.
 *
 * CUDA and fork: the harness runs each run in a forked child. Everything here
 * that touches the driver (oomb_cuda_device_count included) initialises it in
 * the calling process; a process that has done so cannot use CUDA in children
 * it forks afterwards. Call these in the child.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.cuh"

#define OOMB_CUDA_WORKSPACE_BYTES ((size_t)32 << 20)

/* ------------------------------------------------------------- errors ---- */

extern "C" int oomb_cuda_fail(struct oomb_cuda_ctx *k, const char *file, int line,
                              const char *call, const char *what)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    const char *paren = strchr(call, '(');
    int call_len = paren ? (int)(paren - call) : (int)strlen(call);
    if (k)
        snprintf(k->err, sizeof k->err, "%s:%d: %.*s failed: %s", base, line, call_len, call,
                 what ? what : "(no message)");
    return OOMB_ERR_BACKEND;
}

extern "C" int oomb_cuda_errf(struct oomb_cuda_ctx *k, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->err, sizeof k->err, fmt, ap);
    va_end(ap);
    return status;
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------- device count ---- */

extern "C" int oomb_cuda_backend_compiled(void) { return 1; }

extern "C" int oomb_cuda_device_count(char *msg, size_t msg_len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (msg && msg_len)
            snprintf(msg, msg_len, "no usable CUDA device: cudaGetDeviceCount failed: %s (%s)",
                     cudaGetErrorString(e), cudaGetErrorName(e));
        return 0;
    }
    if (n <= 0) {
        if (msg && msg_len)
            snprintf(msg, msg_len, "no CUDA device found (cudaGetDeviceCount returned 0)");
        return 0;
    }
    if (msg && msg_len)
        snprintf(msg, msg_len, "%d CUDA device%s", n, n == 1 ? "" : "s");
    return n;
}

/* ----------------------------------------------------- raw allocation ---- */

static void note_device_use(struct oomb_cuda_ctx *k)
{
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    uint64_t used = (uint64_t)(total_b - free_b);
    if (used > k->baseline_used && used - k->baseline_used > k->peak_delta)
        k->peak_delta = used - k->baseline_used;
}

static int cuda_raw_alloc(void *kv, size_t bytes, void **out)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    *out = NULL;
    if (bytes == 0)
        return OOMB_OK;
    const char *call = k->use_pool ? "cudaMallocFromPoolAsync" : "cudaMalloc";
    cudaError_t e = k->use_pool ? cudaMallocFromPoolAsync(out, bytes, k->pool, k->stream)
                                : cudaMalloc(out, bytes);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        *out = NULL;
        return oomb_cuda_errf(k, OOMB_ERR_OOM, "%s of %zu bytes: out of device memory", call,
                              bytes);
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *out = NULL;
        return oomb_cuda_fail(k, __FILE__, __LINE__, call, cudaGetErrorString(e));
    }
    if (!k->use_pool)
        note_device_use(k);
    return OOMB_OK;
}

static void cuda_raw_free(void *kv, void *ptr)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!ptr)
        return;
    cudaError_t e = k->use_pool ? cudaFreeAsync(ptr, k->stream) : cudaFree(ptr);
    if (e != cudaSuccess)
        (void)cudaGetLastError(); /* nothing sensible to do: free must not fail */
}

static int cuda_sync(void *kv)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    OOMB_CUDA_CHECK(k, cudaStreamSynchronize(k->stream));
    return OOMB_OK;
}

/* ------------------------------------------------------------- timing ---- */

static int cuda_timer_mark(void *kv, int *mark_id)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (k->n_events == k->cap_events) {
        int cap = k->cap_events ? k->cap_events * 2 : 256;
        cudaEvent_t *ev = (cudaEvent_t *)realloc(k->events, (size_t)cap * sizeof *ev);
        if (!ev)
            return oomb_cuda_errf(k, OOMB_ERR_INTERNAL, "timer_mark: out of host memory");
        k->events = ev;
        int64_t *ns = (int64_t *)realloc(k->event_ns, (size_t)cap * sizeof *ns);
        if (!ns)
            return oomb_cuda_errf(k, OOMB_ERR_INTERNAL, "timer_mark: out of host memory");
        k->event_ns = ns;
        for (int i = k->cap_events; i < cap; i++)
            k->events[i] = NULL;
        k->cap_events = cap;
    }
    int id = k->n_events;
    if (!k->events[id])
        OOMB_CUDA_CHECK(k, cudaEventCreate(&k->events[id]));
    if (id == 0)
        k->anchor_ns = monotonic_ns();
    OOMB_CUDA_CHECK(k, cudaEventRecord(k->events[id], k->stream));
    k->n_events++;
    *mark_id = id;
    return OOMB_OK;
}

/* Times are resolved in order, each from the previous mark: cudaEventElapsedTime
 * returns float milliseconds, which over a long run from the first mark alone
 * would lose microseconds; between neighbours it keeps ~0.5 us resolution. */
static int cuda_timer_resolve(void *kv, int mark_id, int64_t *ns)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (mark_id < 0 || mark_id >= k->n_events)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "timer_resolve: no mark %d (%d recorded)",
                              mark_id, k->n_events);
    if (k->n_resolved == 0) {
        OOMB_CUDA_CHECK(k, cudaEventSynchronize(k->events[0]));
        k->event_ns[0] = k->anchor_ns;
        k->n_resolved = 1;
    }
    while (k->n_resolved <= mark_id) {
        int i = k->n_resolved;
        float ms = 0.0f;
        OOMB_CUDA_CHECK(k, cudaEventSynchronize(k->events[i]));
        OOMB_CUDA_CHECK(k, cudaEventElapsedTime(&ms, k->events[i - 1], k->events[i]));
        k->event_ns[i] = k->event_ns[i - 1] + (int64_t)((double)ms * 1e6 + 0.5);
        k->n_resolved++;
    }
    *ns = k->event_ns[mark_id];
    return OOMB_OK;
}

static void cuda_timer_reset(void *kv)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    k->n_events = 0; /* the events are kept and reused */
    k->n_resolved = 0;
}

/* ------------------------------------------------ host spaces, copies ---- */

/* Pageable memory with malloc, pinned with cudaHostAlloc; 0 bytes still gets
 * a unique, freeable pointer. The device space is raw_alloc's. */
static int cuda_host_alloc(void *kv, enum oomb_space space, size_t bytes, void **out)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!out)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "host_alloc: out is NULL");
    *out = NULL;
    size_t n = bytes ? bytes : 1;
    switch (space) {
    case OOMB_SPACE_HOST:
        *out = malloc(n);
        if (!*out)
            return oomb_cuda_errf(k, OOMB_ERR_BACKEND,
                                  "host_alloc: malloc of %zu bytes (pageable) failed", bytes);
        return OOMB_OK;
    case OOMB_SPACE_HOST_PINNED: {
        cudaError_t e = cudaHostAlloc(out, n, cudaHostAllocDefault);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            *out = NULL;
            return oomb_cuda_errf(k, OOMB_ERR_BACKEND,
                                  "host_alloc: cudaHostAlloc of %zu bytes (pinned) failed: %s",
                                  bytes, cudaGetErrorString(e));
        }
        return OOMB_OK;
    }
    default:
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "host_alloc: space %d is not a host space",
                              (int)space);
    }
}

static void cuda_host_free(void *kv, enum oomb_space space, void *ptr)
{
    (void)kv;
    if (!ptr)
        return;
    if (space == OOMB_SPACE_HOST_PINNED) {
        if (cudaFreeHost(ptr) != cudaSuccess)
            (void)cudaGetLastError(); /* free must not fail */
        return;
    }
    free(ptr);
}

/* A copy event from the free list, or a new one with both events created
 * (default flags: timing enabled). */
static int copy_ev_get(struct oomb_cuda_ctx *k, struct oomb_cuda_copy_ev **out)
{
    struct oomb_cuda_copy_ev *e = k->free_evs;
    if (e) {
        k->free_evs = e->next;
        e->next = NULL;
        *out = e;
        return OOMB_OK;
    }
    e = (struct oomb_cuda_copy_ev *)calloc(1, sizeof *e);
    if (!e)
        return oomb_cuda_errf(k, OOMB_ERR_BACKEND, "copy_async: out of host memory for an event");
    cudaError_t err = cudaEventCreate(&e->start);
    if (err == cudaSuccess) {
        err = cudaEventCreate(&e->end);
        if (err != cudaSuccess)
            (void)cudaEventDestroy(e->start);
    }
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        free(e);
        return oomb_cuda_fail(k, __FILE__, __LINE__, "cudaEventCreate", cudaGetErrorString(err));
    }
    *out = e;
    return OOMB_OK;
}

/* Destroys a copy event's CUDA events and frees it. */
static void copy_ev_destroy(struct oomb_cuda_copy_ev *e)
{
    if (e->start)
        (void)cudaEventDestroy(e->start);
    if (e->end)
        (void)cudaEventDestroy(e->end);
    (void)cudaGetLastError();
    free(e);
}

/* Queues one copy on the copy stream, after the work queued on the compute
 * stream so far, between e's start and end. */
static int copy_enqueue(struct oomb_cuda_ctx *k, struct oomb_cuda_copy_ev *e, void *dst,
                        const void *src, size_t bytes)
{
    OOMB_CUDA_CHECK(k, cudaEventRecord(k->copy_ready, k->stream));
    OOMB_CUDA_CHECK(k, cudaStreamWaitEvent(k->copy_stream, k->copy_ready, 0));
    OOMB_CUDA_CHECK(k, cudaEventRecord(e->start, k->copy_stream));
    if (bytes > 0)
        OOMB_CUDA_CHECK(k, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, k->copy_stream));
    OOMB_CUDA_CHECK(k, cudaEventRecord(e->end, k->copy_stream));
    return OOMB_OK;
}

static int cuda_copy_async(void *kv, void *dst, enum oomb_space dst_space, const void *src,
                           enum oomb_space src_space, size_t bytes, void **ev)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!ev)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "copy_async: ev is NULL");
    *ev = NULL;
    if ((unsigned)dst_space >= OOMB_SPACE_COUNT || (unsigned)src_space >= OOMB_SPACE_COUNT)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "copy_async: bad space (dst %d, src %d)",
                              (int)dst_space, (int)src_space);
    if (bytes > 0 && (!dst || !src))
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "copy_async: %zu bytes with a NULL %s", bytes,
                              !dst ? "dst" : "src");
    struct oomb_cuda_copy_ev *e = NULL;
    int rc = copy_ev_get(k, &e);
    if (rc != OOMB_OK)
        return rc;
    rc = copy_enqueue(k, e, dst, src, bytes);
    if (rc != OOMB_OK) {
        copy_ev_destroy(e); /* its events may stand recorded in a failed state */
        return rc;
    }
    *ev = e;
    return OOMB_OK;
}

static int cuda_ev_wait(void *kv, void *ev)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    struct oomb_cuda_copy_ev *e = (struct oomb_cuda_copy_ev *)ev;
    if (!e)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "ev_wait: event is NULL");
    OOMB_CUDA_CHECK(k, cudaStreamWaitEvent(k->stream, e->end, 0));
    return OOMB_OK;
}

static int cuda_ev_sync(void *kv, void *ev)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    struct oomb_cuda_copy_ev *e = (struct oomb_cuda_copy_ev *)ev;
    if (!e)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "ev_sync: event is NULL");
    OOMB_CUDA_CHECK(k, cudaEventSynchronize(e->end));
    return OOMB_OK;
}

/* Waits for the copy, adds its time between start and end to *copy_ns and
 * keeps the events for the next copy; an event in an error state is
 * destroyed instead (and its time not counted). Must not fail. */
static void cuda_ev_free(void *kv, void *ev, int64_t *copy_ns)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    struct oomb_cuda_copy_ev *e = (struct oomb_cuda_copy_ev *)ev;
    if (!e)
        return;
    float ms = 0.0f;
    if (cudaEventSynchronize(e->end) != cudaSuccess ||
        cudaEventElapsedTime(&ms, e->start, e->end) != cudaSuccess) {
        copy_ev_destroy(e);
        return;
    }
    if (copy_ns)
        *copy_ns += (int64_t)((double)ms * 1e6 + 0.5);
    e->next = k->free_evs;
    k->free_evs = e;
}

/* ------------------------------------------------ workspace and memory ---- */

static int cuda_set_alloc_hook(void *kv, const struct oomb_backend_alloc_hook *hook)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (k->hook && k->workspace) {
        OOMB_CUDA_CHECK(k, cudaStreamSynchronize(k->stream));
        OOMB_CUBLAS_CHECK(k, cublasSetWorkspace(k->cublas, NULL, 0));
        k->hook->free(k->hook->user, k->workspace);
        k->workspace = NULL;
        k->workspace_bytes = 0;
    }
    k->hook = hook;
    if (!hook)
        return OOMB_OK;
    void *ws = NULL;
    int rc = hook->alloc(hook->user, OOMB_CUDA_WORKSPACE_BYTES, OOMB_TAG_WORKSPACE,
                         "cublas workspace", &ws);
    if (rc != OOMB_OK)
        return oomb_cuda_errf(k, rc, "cuBLAS workspace of %zu bytes refused by the allocator",
                              OOMB_CUDA_WORKSPACE_BYTES);
    k->workspace = ws;
    k->workspace_bytes = OOMB_CUDA_WORKSPACE_BYTES;
    OOMB_CUBLAS_CHECK(k, cublasSetWorkspace(k->cublas, ws, OOMB_CUDA_WORKSPACE_BYTES));
    return OOMB_OK;
}

static int cuda_device_mem(void *kv, struct oomb_device_mem *out)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    out->valid = 1;
    out->baseline_bytes = k->baseline_used;
    if (k->use_pool) {
        uint64_t high = 0; /* the attribute is a cuuint64_t */
        OOMB_CUDA_CHECK(k, cudaMemPoolGetAttribute(k->pool, cudaMemPoolAttrUsedMemHigh, &high));
        out->peak_bytes = (uint64_t)high;
        uint64_t rhigh = 0;
        OOMB_CUDA_CHECK(k, cudaMemPoolGetAttribute(k->pool, cudaMemPoolAttrReservedMemHigh,
                                                   &rhigh));
        out->reserved_peak_bytes = (uint64_t)rhigh;
        out->method = "CUDA memory pool used high-water mark";
        return OOMB_OK;
    }
    note_device_use(k);
    out->peak_bytes = k->peak_delta;
    out->method = "cudaMemGetInfo delta";
    return OOMB_OK;
}

/* ---------------------------------------------------------- lifecycle ---- */

static void ctx_release(struct oomb_cuda_ctx *k)
{
    if (!k)
        return;
    if (k->stream)
        (void)cudaStreamSynchronize(k->stream);
    if (k->copy_stream)
        (void)cudaStreamSynchronize(k->copy_stream);
    while (k->free_evs) {
        struct oomb_cuda_copy_ev *e = k->free_evs;
        k->free_evs = e->next;
        copy_ev_destroy(e);
    }
    if (k->copy_ready)
        (void)cudaEventDestroy(k->copy_ready);
    if (k->workspace && k->hook) {
        if (k->cublas)
            (void)cublasSetWorkspace(k->cublas, NULL, 0);
        k->hook->free(k->hook->user, k->workspace);
    }
    for (int i = 0; i < k->cap_events; i++)
        if (k->events[i])
            (void)cudaEventDestroy(k->events[i]);
    free(k->events);
    free(k->event_ns);
    /* After the stream synchronisation above: no queued convolution still
     * refers to them (cuDNN reads descriptors during the call anyway). */
    oomb_cuda_conv_cache_free(k);
    if (k->cudnn)
        (void)cudnnDestroy(k->cudnn);
    if (k->cublas)
        (void)cublasDestroy(k->cublas);
    if (k->scratch)
        (void)cudaFree(k->scratch);
    if (k->host_scratch)
        (void)cudaFreeHost(k->host_scratch);
    if (k->copy_stream)
        (void)cudaStreamDestroy(k->copy_stream);
    if (k->stream)
        (void)cudaStreamDestroy(k->stream);
    (void)cudaGetLastError();
    free(k);
}

static void cuda_destroy(struct oomb_kernel_backend *b)
{
    if (!b)
        return;
    ctx_release((struct oomb_cuda_ctx *)b->ops.ctx);
    free(b);
}

static int ctx_setup(struct oomb_cuda_ctx *k, struct oomb_device_info *info)
{
    OOMB_CUDA_CHECK(k, cudaSetDevice(k->device));
    struct cudaDeviceProp prop;
    OOMB_CUDA_CHECK(k, cudaGetDeviceProperties(&prop, k->device));
    OOMB_CUDA_CHECK(k, cudaStreamCreateWithFlags(&k->stream, cudaStreamNonBlocking));
    OOMB_CUDA_CHECK(k, cudaStreamCreateWithFlags(&k->copy_stream, cudaStreamNonBlocking));
    OOMB_CUDA_CHECK(k, cudaEventCreateWithFlags(&k->copy_ready, cudaEventDisableTiming));

    OOMB_CUBLAS_CHECK(k, cublasCreate(&k->cublas));
    OOMB_CUBLAS_CHECK(k, cublasSetStream(k->cublas, k->stream));
    const char *tf32 = getenv("OOMB_CUDA_TF32");
    k->tf32 = tf32 && strcmp(tf32, "1") == 0;
    k->f32_compute = k->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    OOMB_CUBLAS_CHECK(k, cublasSetMathMode(k->cublas, k->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                              : CUBLAS_DEFAULT_MATH));
    OOMB_CUBLAS_CHECK(k, cublasSetPointerMode(k->cublas, CUBLAS_POINTER_MODE_HOST));

    /* cuDNN: the convolutions of ops_cuda_layers.cu, on the same stream. */
    OOMB_CUDNN_CHECK(k, cudnnCreate(&k->cudnn));
    OOMB_CUDNN_CHECK(k, cudnnSetStream(k->cudnn, k->stream));

    OOMB_CUDA_CHECK(k, cudaMalloc(&k->scratch, OOMB_CUDA_SCRATCH_BYTES));
    OOMB_CUDA_CHECK(k, cudaMallocHost(&k->host_scratch, 64));

    int drv = 0, rt = 0, cublas_v = 0;
    OOMB_CUDA_CHECK(k, cudaDriverGetVersion(&drv));
    OOMB_CUDA_CHECK(k, cudaRuntimeGetVersion(&rt));
    OOMB_CUBLAS_CHECK(k, cublasGetVersion(k->cublas, &cublas_v));
    size_t cudnn_v = cudnnGetVersion();
    snprintf(k->name, sizeof k->name, "%s", prop.name);
    snprintf(k->driver, sizeof k->driver, "CUDA driver %d.%d", drv / 1000, (drv % 1000) / 10);
    /* cuBLAS: major*10000 + minor*100 + patch (12.x on); cuDNN 9: the same. */
    snprintf(k->runtime, sizeof k->runtime,
             "CUDA runtime %d.%d, cuBLAS %d.%d.%d, cuDNN %zu.%zu.%zu%s", rt / 1000,
             (rt % 1000) / 10, cublas_v / 10000, (cublas_v % 10000) / 100, cublas_v % 100,
             cudnn_v / 10000, (cudnn_v % 10000) / 100, cudnn_v % 100,
             k->tf32 ? " (TF32 on)" : "");

    info->backend = "cuda";
    info->name = k->name;
    info->driver = k->driver;
    info->runtime = k->runtime;
    info->index = k->device;
    info->total_bytes = (uint64_t)prop.totalGlobalMem;
    info->cc_major = prop.major;
    info->cc_minor = prop.minor;

    /* Baseline after the context, handles and scratch exist: what the run
     * allocates from here on is what the tracker should account for. */
    OOMB_CUDA_CHECK(k, cudaStreamSynchronize(k->stream));
    size_t free_b = 0, total_b = 0;
    OOMB_CUDA_CHECK(k, cudaMemGetInfo(&free_b, &total_b));
    k->baseline_used = (uint64_t)(total_b - free_b);
    k->peak_delta = 0;

    const char *alloc = getenv("OOMB_CUDA_ALLOC");
    k->use_pool = !(alloc && strcmp(alloc, "malloc") == 0);
    if (k->use_pool) {
        /* Keep freed memory in the pool for the run (a run is one process),
         * and count the high-water mark from here. */
        OOMB_CUDA_CHECK(k, cudaDeviceGetDefaultMemPool(&k->pool, k->device));
        uint64_t keep = ~(uint64_t)0, zero = 0;
        OOMB_CUDA_CHECK(k, cudaMemPoolSetAttribute(k->pool, cudaMemPoolAttrReleaseThreshold,
                                                   &keep));
        OOMB_CUDA_CHECK(k, cudaMemPoolSetAttribute(k->pool, cudaMemPoolAttrUsedMemHigh, &zero));
        OOMB_CUDA_CHECK(k, cudaMemPoolSetAttribute(k->pool, cudaMemPoolAttrReservedMemHigh,
                                                   &zero));
    }
    return OOMB_OK;
}

extern "C" int oomb_cuda_backend_create(int device, struct oomb_kernel_backend **out, char *msg,
                                        size_t msg_len)
{
    *out = NULL;
    char why[OOMB_CUDA_ERR_LEN];
    int n = oomb_cuda_device_count(why, sizeof why);
    if (n == 0) {
        snprintf(msg, msg_len, "%s", why);
        return OOMB_ERR_NOT_USABLE;
    }
    if (device < 0 || device >= n) {
        snprintf(msg, msg_len, "CUDA device %d not present (%d device%s)", device, n,
                 n == 1 ? "" : "s");
        return OOMB_ERR_NOT_USABLE;
    }

    struct oomb_kernel_backend *b = (struct oomb_kernel_backend *)calloc(1, sizeof *b);
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)calloc(1, sizeof *k);
    if (!b || !k) {
        free(b);
        free(k);
        snprintf(msg, msg_len, "out of host memory creating the CUDA backend");
        return OOMB_ERR_INTERNAL;
    }
    k->device = device;
    oomb_conv_cache_init(&k->conv_cache);
    int rc = ctx_setup(k, &b->info);
    if (rc != OOMB_OK) {
        snprintf(msg, msg_len, "%s", k->err);
        ctx_release(k);
        free(b);
        return rc;
    }

    oomb_cuda_ops_init(&b->ops, k);
    b->raw_alloc = cuda_raw_alloc;
    b->raw_free = cuda_raw_free;
    b->sync = cuda_sync;
    b->timer_mark = cuda_timer_mark;
    b->timer_resolve = cuda_timer_resolve;
    b->timer_reset = cuda_timer_reset;
    b->set_alloc_hook = cuda_set_alloc_hook;
    b->get_extension = oomb_cuda_get_extension;
    b->host_alloc = cuda_host_alloc;
    b->host_free = cuda_host_free;
    b->copy_async = cuda_copy_async;
    b->ev_wait = cuda_ev_wait;
    b->ev_sync = cuda_ev_sync;
    b->ev_free = cuda_ev_free;
    b->device_mem = cuda_device_mem;
    b->destroy = cuda_destroy;
    *out = b;
    return OOMB_OK;
}
