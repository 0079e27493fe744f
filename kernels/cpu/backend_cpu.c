/*
 * The CPU backend object: the op table of ops_cpu.c plus what the harness
 * needs around it. "Device" memory is 64-byte aligned host memory, every op
 * is synchronous (sync is a no-op and a timer mark is simply the current
 * CLOCK_MONOTONIC time), and there is no device-side memory report. The host
 * spaces are malloc'd memory, and a copy between spaces is a timed memcpy
 * whose event is complete when copy_async returns.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "backend.h"

#include "gemm_cpu.h"
#include "isa.h"
#include "lowp_cpu.h"
#include "ops_cpu.h"

#define CPU_ALIGN 64

static int cpu_raw_alloc(void *k, size_t bytes, void **out)
{
    if (!out)
        return OOMB_ERR_INVALID;
    *out = NULL;
    /* size 0 still gets a unique, freeable pointer */
    void *p = NULL;
    int rc = posix_memalign(&p, CPU_ALIGN, bytes ? bytes : 1);
    if (rc != 0 || !p) {
        struct oomb_cpu_ctx *ctx = k;
        if (ctx)
            snprintf(ctx->err, sizeof ctx->err, "raw_alloc: %zu bytes: %s", bytes, strerror(rc));
        return OOMB_ERR_OOM;
    }
    *out = p;
    return OOMB_OK;
}

static void cpu_raw_free(void *k, void *ptr)
{
    (void)k;
    free(ptr);
}

static int cpu_sync(void *k)
{
    (void)k;
    return OOMB_OK;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------- host spaces, copies ---- */

/* Any space is RAM of this process here; 0 bytes still gets a unique,
 * freeable pointer. */
static int cpu_host_alloc(void *k, enum oomb_space space, size_t bytes, void **out)
{
    if (!out)
        return OOMB_ERR_INVALID;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        int e = errno;
        struct oomb_cpu_ctx *ctx = k;
        if (ctx)
            snprintf(ctx->err, sizeof ctx->err, "host_alloc: %zu bytes (space %d): %s", bytes,
                     (int)space, strerror(e ? e : ENOMEM));
        *out = NULL;
        return OOMB_ERR_BACKEND;
    }
    *out = p;
    return OOMB_OK;
}

static void cpu_host_free(void *k, enum oomb_space space, void *ptr)
{
    (void)k;
    (void)space;
    free(ptr);
}

/* A copy's event: the copy is done when copy_async returns; the event only
 * carries its duration to ev_free. */
struct cpu_copy_event {
    int64_t ns; /* the memcpy's wall time */
};

static int cpu_copy_async(void *k, void *dst, enum oomb_space dst_space, const void *src,
                          enum oomb_space src_space, size_t bytes, void **ev)
{
    struct oomb_cpu_ctx *ctx = k;
    if (!ctx || !ev)
        return OOMB_ERR_INVALID;
    *ev = NULL;
    if ((unsigned)dst_space >= OOMB_SPACE_COUNT || (unsigned)src_space >= OOMB_SPACE_COUNT) {
        snprintf(ctx->err, sizeof ctx->err, "copy_async: bad space (dst %d, src %d)",
                 (int)dst_space, (int)src_space);
        return OOMB_ERR_INVALID;
    }
    if (bytes > 0 && (!dst || !src)) {
        snprintf(ctx->err, sizeof ctx->err, "copy_async: %zu bytes with a NULL %s", bytes,
                 !dst ? "dst" : "src");
        return OOMB_ERR_INVALID;
    }
    struct cpu_copy_event *e = malloc(sizeof *e);
    if (!e) {
        snprintf(ctx->err, sizeof ctx->err, "copy_async: out of host memory for the event");
        return OOMB_ERR_BACKEND;
    }
    int64_t t0 = now_ns();
    if (bytes > 0)
        memcpy(dst, src, bytes);
    e->ns = now_ns() - t0;
    *ev = e;
    return OOMB_OK;
}

static int cpu_ev_wait(void *k, void *ev)
{
    (void)k;
    (void)ev;
    return OOMB_OK;
}

static int cpu_ev_sync(void *k, void *ev)
{
    (void)k;
    (void)ev;
    return OOMB_OK;
}

static void cpu_ev_free(void *k, void *ev, int64_t *copy_ns)
{
    (void)k;
    struct cpu_copy_event *e = ev;
    if (!e)
        return;
    if (copy_ns)
        *copy_ns += e->ns;
    free(e);
}

static int cpu_timer_mark(void *k, int *mark_id)
{
    struct oomb_cpu_ctx *ctx = k;
    if (!ctx || !mark_id)
        return OOMB_ERR_INVALID;
    if (ctx->n_marks == ctx->cap_marks) {
        if (ctx->cap_marks > (1 << 28)) {
            snprintf(ctx->err, sizeof ctx->err, "timer_mark: too many marks (%d)", ctx->n_marks);
            return OOMB_ERR_OOM;
        }
        int cap = ctx->cap_marks * 2;
        int64_t *m;
        if (ctx->marks == ctx->marks_fixed) {
            m = malloc((size_t)cap * sizeof *m);
            if (m)
                memcpy(m, ctx->marks_fixed, sizeof ctx->marks_fixed);
        } else {
            m = realloc(ctx->marks, (size_t)cap * sizeof *m);
        }
        if (!m) {
            snprintf(ctx->err, sizeof ctx->err, "timer_mark: out of host memory");
            return OOMB_ERR_OOM;
        }
        ctx->marks = m;
        ctx->cap_marks = cap;
    }
    ctx->marks[ctx->n_marks] = now_ns();
    *mark_id = ctx->n_marks++;
    return OOMB_OK;
}

static int cpu_timer_resolve(void *k, int mark_id, int64_t *ns)
{
    struct oomb_cpu_ctx *ctx = k;
    if (!ctx || !ns)
        return OOMB_ERR_INVALID;
    if (mark_id < 0 || mark_id >= ctx->n_marks) {
        snprintf(ctx->err, sizeof ctx->err, "timer_resolve: no mark %d (%d taken)", mark_id,
                 ctx->n_marks);
        return OOMB_ERR_INVALID;
    }
    *ns = ctx->marks[mark_id];
    return OOMB_OK;
}

static void cpu_timer_reset(void *k)
{
    struct oomb_cpu_ctx *ctx = k;
    if (ctx)
        ctx->n_marks = 0;
}

static int cpu_device_mem(void *k, struct oomb_device_mem *out)
{
    (void)k;
    if (!out)
        return OOMB_ERR_INVALID;
    out->valid = 0;
    out->peak_bytes = 0;
    out->baseline_bytes = 0;
    out->method = "none (cpu backend: the tracker is the only account)";
    return OOMB_OK;
}

static void cpu_destroy(struct oomb_kernel_backend *b)
{
    if (!b)
        return;
    struct oomb_cpu_ctx *ctx = b->ops.ctx;
    if (ctx && ctx->marks != ctx->marks_fixed)
        free(ctx->marks);
    free(ctx);
    free(b);
}

/* "model name" of the first processor in /proc/cpuinfo, or "unknown cpu". */
static void read_cpu_name(char *dst, size_t len)
{
    snprintf(dst, len, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *s = colon + 1;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strcspn(s, "\r\n");
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n > 0)
            snprintf(dst, len, "%.*s", (int)n, s);
        break;
    }
    fclose(f);
}

void oomb_blas_describe(struct oomb_blas_info *out)
{
    static char library[32], version[32];
    const char *config = openblas_get_config();
    const char *core = openblas_get_corename();
    if (!config)
        config = "";
    /* "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64" */
    library[0] = version[0] = '\0';
    if (sscanf(config, "%31s %31s", library, version) < 2 || !isdigit((unsigned char)version[0]))
        version[0] = '\0';
    if (!library[0])
        snprintf(library, sizeof library, "OpenBLAS");
    out->library = library;
    out->version = version;
    out->config = config;
    out->kernel = core ? core : "";
    switch (openblas_get_parallel()) {
    case 0:
        out->parallel = "sequential";
        break;
    case 2:
        out->parallel = "openmp";
        break;
    default:
        out->parallel = "pthreads";
        break;
    }
    out->threads = openblas_get_num_threads();
    /* the vector kernels' level, then the int8 and sparse kernels' own */
    static char isa[160];
    snprintf(isa, sizeof isa, "%s, int8 %s, sgemm %s", oomb_cpu_isa_name(oomb_cpu_isa_get()),
             oomb_cpu_lowp_isa(), oomb_cpu_sgemm_name());
    out->cpu_isa = isa;
}

int oomb_blas_set_threads(int n)
{
    if (n < 1)
        n = 1;
    char buf[16];
    snprintf(buf, sizeof buf, "%d", n);
    setenv("OMP_NUM_THREADS", buf, 1);
    openblas_set_num_threads(n);
    oomb_cpu_sgemm_set_threads(n);
    return openblas_get_num_threads();
}

/*
 * A step frees and allocates the same sizes again and again. glibc by default
 * serves blocks from a few hundred KiB up with fresh mmap()s (its threshold
 * adapts only to sizes freed so far) and gives the top of the heap back to the
 * system past 128 KiB free, so each step would fault its pages in and zero
 * them again: up to 12% of a transformer step. Serving everything up to glibc's
 * maximum of 32 MiB from the heap and never trimming it keeps freed pages for
 * the next step. The resident set peaks where the live bytes peak, plus the
 * heap's fragmentation (host_peak_rss_bytes); the memory model counts tensor
 * bytes and does not change.
 */
static void keep_freed_memory(void)
{
#ifdef __GLIBC__
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

int oomb_cpu_backend_create(struct oomb_kernel_backend **out, char *msg, size_t msg_len)
{
    struct oomb_kernel_backend *b = NULL;
    struct oomb_cpu_ctx *ctx = NULL;

    if (!out) {
        if (msg && msg_len)
            snprintf(msg, msg_len, "oomb_cpu_backend_create: out is NULL");
        return OOMB_ERR_INVALID;
    }
    *out = NULL;
    b = calloc(1, sizeof *b);
    ctx = calloc(1, sizeof *ctx);
    if (!b || !ctx)
        goto fail;

    ctx->marks = ctx->marks_fixed;
    ctx->cap_marks = OOMB_CPU_FIXED_MARKS;
    read_cpu_name(ctx->name, sizeof ctx->name);
    const char *config = openblas_get_config();
    snprintf(ctx->runtime, sizeof ctx->runtime, "%s", config ? config : "OpenBLAS (unknown)");

    oomb_cpu_ops_init(&b->ops, ctx);
    (void)oomb_cpu_isa_get(); /* the vector kernels' choice, made before any op runs */
    keep_freed_memory();

    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    b->info.backend = "cpu";
    b->info.name = ctx->name;
    b->info.driver = "";
    b->info.runtime = ctx->runtime;
    b->info.index = 0;
    b->info.total_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    b->info.cc_major = 0;
    b->info.cc_minor = 0;

    b->raw_alloc = cpu_raw_alloc;
    b->raw_free = cpu_raw_free;
    b->sync = cpu_sync;
    b->timer_mark = cpu_timer_mark;
    b->timer_resolve = cpu_timer_resolve;
    b->timer_reset = cpu_timer_reset;
    b->set_alloc_hook = NULL;
    b->get_extension = oomb_cpu_get_extension;
    b->host_alloc = cpu_host_alloc;
    b->host_free = cpu_host_free;
    b->copy_async = cpu_copy_async;
    b->ev_wait = cpu_ev_wait;
    b->ev_sync = cpu_ev_sync;
    b->ev_free = cpu_ev_free;
    b->device_mem = cpu_device_mem;
    b->destroy = cpu_destroy;

    *out = b;
    if (msg && msg_len)
        msg[0] = '\0';
    return OOMB_OK;

fail:
    free(ctx);
    free(b);
    if (msg && msg_len)
        snprintf(msg, msg_len, "cpu backend: out of host memory (%s)", strerror(ENOMEM));
    return OOMB_ERR_OOM;
}
