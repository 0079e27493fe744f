/*
 * The tracked allocator: every device byte a plugin (or a backend library
 * workspace) uses goes through here. It keeps current and peak bytes per tag
 * and in total, enforces the memory budget, and records a timeline of
 * allocation events with the phase and step they happened in.
 *
 * The counters live in `struct oomb_tracker_stats`, which the runner places
 * in memory shared with the parent process, so that a run that crashes or
 * times out still reports the peak it reached.
 */
#ifndef OOMB_TRACKER_H
#define OOMB_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "cachealloc.h"
#include "results.h"

struct oomb_tracker_stats {
    uint64_t cur[OOMB_TAG_COUNT], peak[OOMB_TAG_COUNT];
    uint64_t cur_total, peak_total;
    uint64_t budget;       /* 0: unlimited */
    int oom_hit;           /* an allocation was refused */
    int oom_tag;
    uint64_t oom_request;  /* the refused request */
    uint64_t oom_in_use;   /* bytes in use when it was refused */
    uint64_t n_allocs, n_frees;
    /* The host spaces (index OOMB_SPACE_HOST, OOMB_SPACE_HOST_PINNED; index
     * 0: both host spaces together, as the process's memory sees them; the
     * device space is cur/peak above). No budget applies. */
    uint64_t host_cur[OOMB_SPACE_COUNT][OOMB_TAG_COUNT], host_peak[OOMB_SPACE_COUNT][OOMB_TAG_COUNT];
    uint64_t host_cur_total[OOMB_SPACE_COUNT], host_peak_total[OOMB_SPACE_COUNT];
    /* Copies between spaces (host->copy_async): bytes by [from][to], count,
     * and their summed duration. */
    uint64_t copy_bytes[OOMB_SPACE_COUNT][OOMB_SPACE_COUNT];
    uint64_t n_copies;
    int64_t copy_ns;
    /* The caching-allocator model (allocator: caching, oomb_tracker_set_cache):
     * cache_on 1 and its stats after every device allocation and free, and
     * the reserved bytes when the last step ended. When oom_hit comes from
     * it, oom_by_reserved is 1 and cache.oom_* tell the refusal. */
    int cache_on;
    int oom_by_reserved;
    struct oomb_cachealloc_stats cache;
    uint64_t reserved_end;
    /* The input pipeline's host memory (the child fills them): the data set
     * held in memory (resident), and the staging buffers batches are made
     * in (streaming slots, or the gather buffer). */
    uint64_t input_dataset_bytes, input_staging_bytes;
};

struct oomb_tracker_entry; /* live allocation (hash table slot) */

struct oomb_tracker {
    struct oomb_tracker_stats *stats; /* not owned */
    const struct oomb_kernel_backend *backend;
    struct oomb_tracker_entry *slots;
    size_t n_slots, n_live, n_tomb;
    enum oomb_phase phase;
    int32_t step;
    int32_t record_step;  /* events are kept for this step and setup (-1); -2: all */
    int64_t t0_ns;
    struct oomb_event *events;
    int n_events, cap_events;
    struct oomb_cachealloc *cache; /* not owned; NULL: exact accounting */
    uint64_t next_id;             /* the model's id of the next device allocation */
};

/* Initialise a caller-owned tracker over a caller-owned stats block (zeroed
 * here, budget set). Returns OOMB_OK or OOMB_ERR_OOM (host memory). */
int oomb_tracker_init(struct oomb_tracker *t, struct oomb_tracker_stats *stats,
                      const struct oomb_kernel_backend *backend, uint64_t budget) OOMB_WARN_UNUSED;
/* Release the tracker's own bookkeeping. Allocations still live are NOT
 * freed (the backend may be gone): call oomb_tracker_release_all first. */
void oomb_tracker_free(struct oomb_tracker *t);

/* Allocate `bytes` device bytes tagged `tag`. Returns OOMB_OK and *out, or
 * OOMB_ERR_OOM (budget exceeded or device full; the stats record the request)
 * or OOMB_ERR_INVALID (bad tag). Zero bytes give a valid unique pointer. */
int oomb_tracker_alloc(struct oomb_tracker *t, size_t bytes, enum oomb_tag tag, void **out)
    OOMB_WARN_UNUSED;
/* oomb_tracker_alloc in any space: OOMB_SPACE_DEVICE is oomb_tracker_alloc;
 * the host spaces take memory from backend->host_alloc, are counted per
 * space and tag, and have no budget: a refusal there returns
 * OOMB_ERR_BACKEND (not OOMB_ERR_OOM, and oom_hit stays 0). */
int oomb_tracker_alloc_in(struct oomb_tracker *t, enum oomb_space space, size_t bytes,
                          enum oomb_tag tag, void **out) OOMB_WARN_UNUSED;
/* Free a pointer from oomb_tracker_alloc(_in), any space; NULL is a no-op. Returns OOMB_OK, or
 * OOMB_ERR_INVALID for a pointer the tracker does not know (not freed). */
int oomb_tracker_dealloc(struct oomb_tracker *t, void *ptr);
/* Free everything still live except the n_keep pointers in keep (may be
 * NULL); returns the number of bytes freed. */
uint64_t oomb_tracker_release_all(struct oomb_tracker *t, void *const *keep, int n_keep);

/* Copies the host spaces' peaks and the transfer counters of s into res
 * (space_peak, space_peak_by_tag, to_host_bytes, to_device_bytes,
 * n_copies, copy_ns). */
void oomb_tracker_report_spaces(const struct oomb_tracker_stats *s, struct oomb_run_result *res);

/* Replays every device allocation and free from now on through the caching
 * allocator model `m` (not owned; it must outlive the tracker's use of it
 * and see no other traffic). The budget then applies to the model's
 * reserved bytes: the model is created with the budget as its limit, and
 * the tracker's own check on tensor bytes is left to it (reserved >=
 * allocated). Call before the first allocation. */
void oomb_tracker_set_cache(struct oomb_tracker *t, struct oomb_cachealloc *m);
/* torch.cuda.empty_cache() on the model; a no-op without one. */
void oomb_tracker_empty_cache(struct oomb_tracker *t);

/* Copies the caching model's options and stats into res (alloc_kind,
 * alloc_conf, alloc, reserved_end, oom_by_reserved); with kind exact only
 * the kind. */
void oomb_tracker_report_cache(const struct oomb_tracker_stats *s, int kind,
                               const struct oomb_cachealloc_conf *conf,
                               struct oomb_run_result *res);

void oomb_tracker_set_phase(struct oomb_tracker *t, enum oomb_phase phase);
void oomb_tracker_set_step(struct oomb_tracker *t, int32_t step);

#endif
