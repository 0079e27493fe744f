/*
 * The input pipeline of a streaming run: a ring of staging buffers, each
 * holding one step's whole batch, filled in step order by a loader thread
 * up to `prefetch` steps ahead of the step being run (PyTorch's DataLoader
 * with a worker and prefetching, in one thread). With prefetch 0 there is
 * no thread: the batch is made when the step asks for it.
 *
 * The pipeline does not know where samples come from: `fill` makes the
 * batch of one step into a slot (read from a data set file, or generated).
 */
#ifndef OOMB_PIPELINE_H
#define OOMB_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

struct oomb_pipeline_cfg {
    int64_t batch, features; /* a slot holds batch x features floats and batch labels */
    int64_t n_steps;         /* steps 0 .. n_steps-1 are made, in order */
    int prefetch;            /* steps made ahead (0: none, no thread) */
    /* Makes step `step`'s batch into x (batch, features) and y (batch).
     * Called from the loader thread when prefetch > 0: it must only read
     * shared state. Returns OOMB_OK or an error, which the step asking
     * for that batch receives. */
    int (*fill)(void *user, int64_t step, float *x, int32_t *y);
    void *fill_user;
    /* Staging memory for the slots (e.g. pinned host memory); returns NULL
     * when refused. free_slot releases what alloc_slot gave. */
    void *(*alloc_slot)(void *user, size_t bytes);
    void (*free_slot)(void *user, void *p);
    void *alloc_user;
};

struct oomb_pipeline; /* opaque */

/* Allocates prefetch + 1 slots and, with prefetch > 0, starts the loader
 * thread. Returns OOMB_OK and *out (stop with oomb_pipeline_stop),
 * OOMB_ERR_INVALID for a bad configuration, OOMB_ERR_OOM when the slots
 * cannot be had, or OOMB_ERR_BACKEND when the thread cannot start. */
int oomb_pipeline_start(const struct oomb_pipeline_cfg *cfg,
                        struct oomb_pipeline **out) OOMB_WARN_UNUSED;

/* The batch of `step`: *x and *y point into its slot, valid until a later
 * step is asked for. Steps are asked for in non-decreasing order; asking for
 * a later step gives the slots of the earlier ones back to the loader.
 * *wait_ns gets the time this call waited for the batch (with prefetch 0:
 * the time it took to make it). Returns OOMB_OK, OOMB_ERR_INVALID for a step
 * out of range or before the current one, or the error fill returned. */
int oomb_pipeline_get(struct oomb_pipeline *p, int64_t step, const float **x, const int32_t **y,
                      int64_t *wait_ns) OOMB_WARN_UNUSED;

/* Bytes of staging memory the slots take (all of them, allocated at start). */
size_t oomb_pipeline_staging_bytes(const struct oomb_pipeline *p);

/* Stops the loader thread, frees the slots and p; NULL is a no-op. */
void oomb_pipeline_stop(struct oomb_pipeline *p);

#endif
