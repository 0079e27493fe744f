/*
 * The backend interface between the harness and a kernel backend (kernels/cpu,
 * kernels/cuda). Internal: plugins only ever see `struct oomb_ops` from
 * <oombench/plugin.h>; the harness additionally needs raw device allocation
 * (which it wraps in the tracked allocator), synchronisation, timing and a
 * description of the device.
 */
#ifndef OOMB_KERNELS_BACKEND_H
#define OOMB_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Facts about the device for the results file; strings owned by the backend. */
struct oomb_device_info {
    const char *backend;   /* "cpu" | "cuda" */
    const char *name;      /* CPU model name or GPU name */
    const char *driver;    /* CUDA driver version, "" on CPU */
    const char *runtime;   /* CUDA runtime/cuBLAS/cuDNN versions, BLAS on CPU */
    int index;             /* device ordinal */
    uint64_t total_bytes;  /* device memory (RAM on CPU) */
    int cc_major, cc_minor;
};

/* Device-side memory as the device itself sees it (cross-check of the tracker). */
struct oomb_device_mem {
    int valid;             /* 0 when the backend has nothing to report */
    uint64_t peak_bytes;   /* pool high-water mark or cudaMemGetInfo delta */
    uint64_t baseline_bytes; /* in use before the run's first allocation */
    /* the pool's reserved high-water mark (cudaMemPoolAttrReservedMemHigh):
     * what the CUDA stream-ordered pool held from the device; 0 when the
     * backend has no pool (the CPU, OOMB_CUDA_ALLOC=malloc) */
    uint64_t reserved_peak_bytes;
    const char *method;    /* how peak_bytes was obtained */
};

/* Alloc hook a backend uses for its own library workspaces (cuBLAS), so that
 * they are tracked with tag OOMB_TAG_WORKSPACE. */
struct oomb_backend_alloc_hook {
    void *user;
    int (*alloc)(void *user, size_t bytes, enum oomb_tag tag, const char *label, void **out);
    void (*free)(void *user, void *ptr);
};

struct oomb_kernel_backend {
    struct oomb_ops ops;   /* ops.ctx is the backend's context */
    struct oomb_device_info info;

    /* Raw device allocation, untracked: the tracked allocator wraps these.
     * raw_alloc returns OOMB_OK or OOMB_ERR_OOM. */
    int (*raw_alloc)(void *k, size_t bytes, void **out);
    void (*raw_free)(void *k, void *ptr);
    /* Wait for all queued work. */
    int (*sync)(void *k);
    /* Timing: monotonic nanoseconds at which queued work up to now completes.
     * CPU: clock_gettime(CLOCK_MONOTONIC). CUDA: records an event; the times of
     * recorded marks are resolved by timer_resolve after a sync. */
    int (*timer_mark)(void *k, int *mark_id);
    int (*timer_resolve)(void *k, int mark_id, int64_t *ns);
    void (*timer_reset)(void *k);
    /* Called once by the host after the tracked allocator exists: the backend
     * allocates its library workspaces (cuBLAS) through the hook, tagged
     * OOMB_TAG_WORKSPACE, and frees them through it in destroy. May be NULL
     * (CPU). The hook must outlive the backend. */
    int (*set_alloc_hook)(void *k, const struct oomb_backend_alloc_hook *hook);
    /* The extension table `name` (OOMB_EXT_QUANT, _SPARSE, _DISTILL of
     * <oombench/plugin.h>) of this backend: a struct owned by the backend,
     * starting with struct_size and version, valid until destroy; NULL for a
     * name it does not have. */
    const void *(*get_extension)(void *k, const char *name);
    /* Memory of the host spaces (OOMB_SPACE_HOST, OOMB_SPACE_HOST_PINNED),
     * untracked: the tracked allocator wraps these. CPU: malloc/free for
     * both. CUDA: malloc for pageable, cudaHostAlloc for pinned. Returns
     * OOMB_OK or OOMB_ERR_BACKEND (the host has no budget: a refusal here is
     * an error, never `oom`). */
    int (*host_alloc)(void *k, enum oomb_space space, size_t bytes, void **out);
    void (*host_free)(void *k, enum oomb_space space, void *ptr);
    /* Copy bytes between any two spaces, ordered after the work queued so
     * far, overlapping later work where it can (CUDA: on a copy stream);
     * *ev (never NULL on OOMB_OK) completes with the copy. CPU: synchronous,
     * *ev is already complete. ev_wait makes later queued work wait for the
     * event, ev_sync blocks the caller, ev_free releases it and adds the
     * copy's duration (ns) to *copy_ns when known (CUDA: measured between
     * events on the copy stream; CPU: the memcpy's time). */
    int (*copy_async)(void *k, void *dst, enum oomb_space dst_space, const void *src,
                      enum oomb_space src_space, size_t bytes, void **ev);
    int (*ev_wait)(void *k, void *ev);
    int (*ev_sync)(void *k, void *ev);
    void (*ev_free)(void *k, void *ev, int64_t *copy_ns);
    /* Device-reported memory since the backend was created. */
    int (*device_mem)(void *k, struct oomb_device_mem *out);
    void (*destroy)(struct oomb_kernel_backend *b);
};

/* CPU backend. Returns OOMB_OK and a heap backend the caller destroys with
 * b->destroy(b). */
int oomb_cpu_backend_create(struct oomb_kernel_backend **out, char *msg, size_t msg_len);

/* The BLAS library behind the CPU kernels, as this process sees it now:
 * what results files record so that two of them can be told apart. The
 * strings point to static storage of the library or of this module, valid
 * until the next call; never NULL ("" when unknown). */
struct oomb_blas_info {
    const char *library;  /* "OpenBLAS" */
    const char *version;  /* "0.3.21" */
    const char *config;   /* the library's build description */
    const char *kernel;   /* the kernel chosen for this CPU ("Haswell", "Zen") */
    const char *parallel; /* "pthreads", "openmp" or "sequential" */
    int threads;          /* threads a BLAS call may use now */
    const char *cpu_isa;  /* vector instructions of oombench's own CPU kernels, chosen at
                             run time (kernels/cpu/isa.h): "avx2+fma+f16c" or "scalar" */
};
void oomb_blas_describe(struct oomb_blas_info *out);

/* Sets the thread count of the BLAS (n >= 1) and OMP_NUM_THREADS for an
 * OpenMP runtime loaded later (a plugin's), in this process only. Returns the
 * count the BLAS reports afterwards. */
int oomb_blas_set_threads(int n);

/* Counting backend (`plan`, `run --dry-run`): the CPU backend's allocations
 * and workspace sizes with no computation and no memory behind them (every
 * op a no-op, values read back are zeros; kernels/count/backend_count.c).
 * Returns OOMB_OK and a heap backend the caller destroys with b->destroy(b),
 * or OOMB_ERR_OOM (msg says why). */
int oomb_count_backend_create(struct oomb_kernel_backend **out, char *msg, size_t msg_len);

/* CUDA backend (only when built with CUDA). device: ordinal. Returns OOMB_OK,
 * OOMB_ERR_NOT_USABLE when no GPU/driver is present (msg says why), or
 * OOMB_ERR_BACKEND. The caller destroys *out with b->destroy(b). */
int oomb_cuda_backend_create(int device, struct oomb_kernel_backend **out, char *msg, size_t msg_len);

/* Number of usable CUDA devices, 0 with the reason in msg when none (or when
 * built without CUDA). Never fails otherwise. */
int oomb_cuda_device_count(char *msg, size_t msg_len);

/* Whether this build has the CUDA backend compiled in. */
int oomb_cuda_backend_compiled(void);

#ifdef __cplusplus
}
#endif

#endif
