/*
 * A model of PyTorch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp).
 *
 * The tracker counts the bytes tensors use. What a PyTorch user runs out of
 * is what the caching allocator has reserved from the device: requests are
 * rounded, served from cached segments that are split and merged, and the
 * segments are only given back by empty_cache() or when a device allocation
 * fails. This module replays a run's allocations and frees through those
 * rules, so that reserved bytes, the largest free block and fragmentation
 * can be shown next to the tracked bytes, and a run can run out of memory
 * by reserved bytes while its tensors alone would fit.
 *
 * One stream, one device. Pure bookkeeping: no memory is touched. The rules
 * and the source lines they come from are in docs/memory-model.md
 * ("The caching allocator").
 */
#ifndef OOMB_CACHEALLOC_H
#define OOMB_CACHEALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

/* When the model empties its cache by itself. */
enum oomb_empty_cache {
    OOMB_EMPTY_CACHE_NEVER = 0, /* only when a device allocation fails (PyTorch's retry) */
    OOMB_EMPTY_CACHE_STEP = 1   /* also after every step (torch.cuda.empty_cache() in the loop) */
};

/* The PYTORCH_CUDA_ALLOC_CONF options the model follows. All zero: PyTorch's
 * defaults. */
struct oomb_cachealloc_conf {
    uint64_t max_split_size;      /* bytes; 0: unlimited (the default); else a
                                   * multiple of 1 MiB above 20 MiB, as
                                   * max_split_size_mb. A request of this size
                                   * or more gets its block whole (never
                                   * split); a request below it never takes a
                                   * cached block of this size or more, one
                                   * above it only a block less than 20 MiB
                                   * bigger */
    int roundup_power2_divisions; /* 0 or 1: off; else a power of two <= 64
                                   * (the cap is the model's; PyTorch takes any
                                   * power of two): sizes above divisions x
                                   * 512 B are rounded up to the next of
                                   * `divisions` steps between two powers of
                                   * two, for every size (PyTorch's single-value
                                   * form) */
    int expandable_segments;      /* 1: one segment per pool that grows and
                                   * shrinks by pages (2 MiB small, 20 MiB large) */
    double gc_threshold;          /* garbage_collection_threshold, in (0, 1); 0: off.
                                   * Needs a limit (PyTorch: a memory fraction);
                                   * without one it has no effect */
    enum oomb_empty_cache empty_cache;
};

/* What the model has seen. Byte counts are device bytes. */
struct oomb_cachealloc_stats {
    uint64_t requested; /* bytes of live requests, as asked */
    uint64_t allocated; /* bytes of live blocks (rounded; torch.cuda.memory_allocated) */
    uint64_t reserved;  /* bytes of segments held (torch.cuda.memory_reserved) */
    uint64_t allocated_peak, reserved_peak;
    uint64_t requested_at_reserved_peak; /* requested bytes when reserved peaked
                                          * (counting the request the segment
                                          * was made for) */
    uint64_t largest_free;               /* largest cached free block now, either pool
                                          * (torch.cuda's cacheInfo); with expandable
                                          * segments, mapped free bytes only */
    uint64_t n_segment_allocs;           /* cudaMalloc calls; with expandable segments,
                                          * page mappings (one per contiguous range of
                                          * pages mapped at once) (num_device_alloc) */
    uint64_t n_segment_frees;            /* cudaFree calls, or unmappings of the whole
                                          * pages inside one free block (num_device_free) */
    uint64_t n_flushes;                  /* whole-cache releases forced by a failed device
                                          * allocation (num_alloc_retries); the oversize
                                          * segments freed first with max_split_size are
                                          * counted in n_segment_frees only */
    uint64_t n_empty_cache;              /* oomb_cachealloc_empty_cache calls */
    /* The refusal, when a request could not be served within the limit. */
    int oom;
    uint64_t oom_request; /* as asked */
    uint64_t oom_rounded; /* after rounding (the block it needed) */
    uint64_t oom_segment; /* the device allocation that failed */
    uint64_t oom_allocated, oom_reserved, oom_largest_free; /* at the refusal, after the retry */
};

struct oomb_cachealloc; /* opaque */

/* A model with options `conf` (copied; NULL: the defaults) and device limit
 * `limit` bytes (0: unlimited): a segment allocation that would take
 * reserved bytes above limit fails, as cudaMalloc does on a full device or
 * under torch.cuda.set_per_process_memory_fraction. With expandable
 * segments both checks apply: the segment size the request would get
 * without them (PyTorch's fraction check) and then the pages mapped.
 * Returns OOMB_OK and *out (free with oomb_cachealloc_destroy),
 * OOMB_ERR_INVALID for options out of range or a NULL out (*out NULL), or
 * OOMB_ERR_OOM (host memory). */
int oomb_cachealloc_create(const struct oomb_cachealloc_conf *conf, uint64_t limit,
                           struct oomb_cachealloc **out) OOMB_WARN_UNUSED;
/* Frees the model; NULL is a no-op. */
void oomb_cachealloc_destroy(struct oomb_cachealloc *m);

/* A request of `bytes` known by `id` (any value unique among live requests,
 * e.g. the tracker's pointer); 0 bytes takes no block, as in PyTorch.
 * Returns OOMB_OK; OOMB_ERR_OOM when it cannot be served within the limit
 * after PyTorch's retries, or is 2^60 bytes or more (the stats record the
 * refusal; the model is unchanged but for the cache it released on the way
 * and, with expandable segments, pages it mapped before a mapping failed);
 * OOMB_ERR_OOM also when host memory runs out (no refusal recorded; the
 * model is unchanged); OOMB_ERR_INVALID for an id already live. */
int oomb_cachealloc_malloc(struct oomb_cachealloc *m, uint64_t id, uint64_t bytes) OOMB_WARN_UNUSED;
/* Frees the request `id`: its block goes back to the cache, merged with free
 * neighbours. Returns OOMB_OK, or OOMB_ERR_INVALID for an unknown id. */
int oomb_cachealloc_free(struct oomb_cachealloc *m, uint64_t id);
/* torch.cuda.empty_cache(): releases every cached segment with no live
 * block (with expandable segments: unmaps every whole free page, wherever
 * it is in the segment). If host memory runs out first (expandable
 * segments only), nothing is released. */
void oomb_cachealloc_empty_cache(struct oomb_cachealloc *m);
/* The stats now; never fails. */
void oomb_cachealloc_get_stats(const struct oomb_cachealloc *m, struct oomb_cachealloc_stats *out);

/* Checks the model's own invariants: each segment's blocks tile it, no two
 * free (or two unmapped) blocks are neighbours, the free lists hold exactly
 * the free blocks in best-fit order, the counters agree with the blocks,
 * reserved <= limit. Returns OOMB_OK, or OOMB_ERR_INTERNAL (a bug). Walks
 * everything: for tests. */
int oomb_cachealloc_check(const struct oomb_cachealloc *m);

#endif
