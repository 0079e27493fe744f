/*
 * Tracked device allocation (see tracker.h). Live allocations are kept in an
 * open-addressing hash table keyed by pointer, so that free() knows the size
 * and tag of what it releases without trusting the caller.
 */
#include "tracker.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct oomb_tracker_entry {
    void *ptr; /* NULL: empty; TOMB: deleted */
    uint64_t bytes;
    int tag;
    int space;
    uint64_t id; /* the caching model's id (device allocations with a model) */
};

static char tomb_marker;
#define TOMB ((void *)&tomb_marker)

static size_t hash_ptr(const void *p, size_t n_slots)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)(x & (n_slots - 1));
}

int oomb_tracker_init(struct oomb_tracker *t, struct oomb_tracker_stats *stats,
                      const struct oomb_kernel_backend *backend, uint64_t budget)
{
    memset(t, 0, sizeof *t);
    memset(stats, 0, sizeof *stats);
    stats->budget = budget;
    t->stats = stats;
    t->backend = backend;
    t->n_slots = 256;
    t->slots = calloc(t->n_slots, sizeof *t->slots);
    if (!t->slots)
        return OOMB_ERR_OOM;
    t->phase = OOMB_PHASE_OTHER;
    t->step = -1;
    t->record_step = -2;
    t->t0_ns = oomb_now_ns();
    return OOMB_OK;
}

static int rehash(struct oomb_tracker *t, size_t n_slots)
{
    struct oomb_tracker_entry *old = t->slots;
    size_t old_n = t->n_slots;
    struct oomb_tracker_entry *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return OOMB_ERR_OOM;
    for (size_t i = 0; i < old_n; i++) {
        if (!old[i].ptr || old[i].ptr == TOMB)
            continue;
        size_t h = hash_ptr(old[i].ptr, n_slots);
        while (slots[h].ptr)
            h = (h + 1) & (n_slots - 1);
        slots[h] = old[i];
    }
    free(old);
    t->slots = slots;
    t->n_slots = n_slots;
    t->n_tomb = 0;
    return OOMB_OK;
}

static void record(struct oomb_tracker *t, int64_t delta, int tag)
{
    if (t->record_step != -2 && t->step != -1 && t->step != t->record_step)
        return;
    if (t->n_events == t->cap_events) {
        int cap = t->cap_events ? t->cap_events * 2 : 256;
        struct oomb_event *ev = realloc(t->events, (size_t)cap * sizeof *ev);
        if (!ev)
            return; /* the timeline is best effort; counters stay exact */
        t->events = ev;
        t->cap_events = cap;
    }
    struct oomb_event *e = &t->events[t->n_events++];
    e->t_ns = oomb_now_ns() - t->t0_ns;
    e->delta = delta;
    e->in_use = t->stats->cur_total;
    e->reserved = t->stats->cache_on ? t->stats->cache.reserved : 0;
    e->tag = (uint8_t)tag;
    e->phase = (uint8_t)t->phase;
    e->step = t->step;
}

static void insert(struct oomb_tracker *t, void *p, size_t bytes, int tag, int space, uint64_t id)
{
    size_t h = hash_ptr(p, t->n_slots);
    while (t->slots[h].ptr && t->slots[h].ptr != TOMB)
        h = (h + 1) & (t->n_slots - 1);
    if (t->slots[h].ptr == TOMB)
        t->n_tomb--;
    t->slots[h].ptr = p;
    t->slots[h].bytes = bytes;
    t->slots[h].tag = tag;
    t->slots[h].space = space;
    t->slots[h].id = id;
    t->n_live++;
}

static int make_room(struct oomb_tracker *t)
{
    if ((t->n_live + t->n_tomb + 1) * 4 > t->n_slots * 3) {
        size_t n = t->n_live * 4 > t->n_slots ? t->n_slots * 2 : t->n_slots;
        if (rehash(t, n) != OOMB_OK)
            return OOMB_ERR_OOM;
    }
    return OOMB_OK;
}

int oomb_tracker_alloc_in(struct oomb_tracker *t, enum oomb_space space, size_t bytes,
                          enum oomb_tag tag, void **out)
{
    *out = NULL;
    if (space == OOMB_SPACE_DEVICE)
        return oomb_tracker_alloc(t, bytes, tag, out);
    if ((int)space < 0 || space >= OOMB_SPACE_COUNT || (int)tag < 0 || tag >= OOMB_TAG_COUNT ||
        !t->backend->host_alloc)
        return OOMB_ERR_INVALID;
    if (make_room(t) != OOMB_OK)
        return OOMB_ERR_BACKEND;
    void *p = NULL;
    int rc = t->backend->host_alloc(t->backend->ops.ctx, space, bytes ? bytes : 1, &p);
    if (rc != OOMB_OK || !p)
        return OOMB_ERR_BACKEND;
    insert(t, p, bytes, (int)tag, (int)space, 0);
    struct oomb_tracker_stats *s = t->stats;
    const int counted[2] = {(int)space, 0}; /* the space, and 0: all host memory */
    for (int i = 0; i < 2; i++) {
        int sp = counted[i];
        s->host_cur[sp][tag] += bytes;
        s->host_cur_total[sp] += bytes;
        if (s->host_cur[sp][tag] > s->host_peak[sp][tag])
            s->host_peak[sp][tag] = s->host_cur[sp][tag];
        if (s->host_cur_total[sp] > s->host_peak_total[sp])
            s->host_peak_total[sp] = s->host_cur_total[sp];
    }
    s->n_allocs++;
    *out = p;
    return OOMB_OK;
}

static int refuse(struct oomb_tracker *t, size_t bytes, enum oomb_tag tag)
{
    struct oomb_tracker_stats *s = t->stats;
    s->oom_hit = 1;
    s->oom_tag = (int)tag;
    s->oom_request = bytes;
    s->oom_in_use = s->cur_total;
    return OOMB_ERR_OOM;
}

int oomb_tracker_alloc(struct oomb_tracker *t, size_t bytes, enum oomb_tag tag, void **out)
{
    struct oomb_tracker_stats *s = t->stats;
    *out = NULL;
    if ((int)tag < 0 || tag >= OOMB_TAG_COUNT)
        return OOMB_ERR_INVALID;
    /* With the caching model the budget applies to its reserved bytes. */
    if (!t->cache && s->budget && (bytes > s->budget || s->cur_total > s->budget - bytes))
        return refuse(t, bytes, tag);
    if (make_room(t) != OOMB_OK)
        return OOMB_ERR_OOM;
    uint64_t id = 0;
    if (t->cache) {
        id = ++t->next_id;
        int mrc = oomb_cachealloc_malloc(t->cache, id, bytes);
        oomb_cachealloc_get_stats(t->cache, &s->cache);
        if (mrc != OOMB_OK) {
            s->oom_by_reserved = mrc == OOMB_ERR_OOM;
            return refuse(t, bytes, tag);
        }
    }
    void *p = NULL;
    int rc = t->backend->raw_alloc(t->backend->ops.ctx, bytes ? bytes : 1, &p);
    if (rc != OOMB_OK || !p) {
        if (t->cache) {
            (void)oomb_cachealloc_free(t->cache, id);
            oomb_cachealloc_get_stats(t->cache, &s->cache);
        }
        return refuse(t, bytes, tag);
    }
    insert(t, p, bytes, (int)tag, OOMB_SPACE_DEVICE, id);
    s->cur[tag] += bytes;
    s->cur_total += bytes;
    if (s->cur[tag] > s->peak[tag])
        s->peak[tag] = s->cur[tag];
    if (s->cur_total > s->peak_total)
        s->peak_total = s->cur_total;
    s->n_allocs++;
    record(t, (int64_t)bytes, (int)tag);
    *out = p;
    return OOMB_OK;
}

static struct oomb_tracker_entry *find(struct oomb_tracker *t, const void *p)
{
    size_t h = hash_ptr(p, t->n_slots);
    for (size_t i = 0; i < t->n_slots; i++) {
        struct oomb_tracker_entry *e = &t->slots[h];
        if (!e->ptr)
            return NULL;
        if (e->ptr == p)
            return e;
        h = (h + 1) & (t->n_slots - 1);
    }
    return NULL;
}

static void release(struct oomb_tracker *t, struct oomb_tracker_entry *e)
{
    struct oomb_tracker_stats *s = t->stats;
    if (e->space != OOMB_SPACE_DEVICE) { /* the host spaces: no timeline */
        s->host_cur[e->space][e->tag] -= e->bytes;
        s->host_cur_total[e->space] -= e->bytes;
        s->host_cur[0][e->tag] -= e->bytes;
        s->host_cur_total[0] -= e->bytes;
        t->backend->host_free(t->backend->ops.ctx, (enum oomb_space)e->space, e->ptr);
    } else {
        s->cur[e->tag] -= e->bytes;
        s->cur_total -= e->bytes;
        t->backend->raw_free(t->backend->ops.ctx, e->ptr);
        if (t->cache) {
            (void)oomb_cachealloc_free(t->cache, e->id);
            oomb_cachealloc_get_stats(t->cache, &s->cache);
        }
        record(t, -(int64_t)e->bytes, e->tag);
    }
    s->n_frees++;
    e->ptr = TOMB;
    t->n_live--;
    t->n_tomb++;
}

int oomb_tracker_dealloc(struct oomb_tracker *t, void *ptr)
{
    if (!ptr)
        return OOMB_OK;
    struct oomb_tracker_entry *e = find(t, ptr);
    if (!e)
        return OOMB_ERR_INVALID;
    release(t, e);
    return OOMB_OK;
}

uint64_t oomb_tracker_release_all(struct oomb_tracker *t, void *const *keep, int n_keep)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < t->n_slots; i++) {
        struct oomb_tracker_entry *e = &t->slots[i];
        if (!e->ptr || e->ptr == TOMB)
            continue;
        int kept = 0;
        for (int k = 0; k < n_keep; k++)
            kept |= keep[k] == e->ptr;
        if (kept)
            continue;
        bytes += e->bytes;
        release(t, e);
    }
    return bytes;
}

void oomb_tracker_free(struct oomb_tracker *t)
{
    free(t->slots);
    free(t->events);
    t->slots = NULL;
    t->events = NULL;
    t->n_events = t->cap_events = 0;
}

void oomb_tracker_report_spaces(const struct oomb_tracker_stats *s, struct oomb_run_result *res)
{
    for (int sp = 0; sp < OOMB_SPACE_COUNT; sp++) {
        res->space_peak[sp] = s->host_peak_total[sp];
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            res->space_peak_by_tag[sp][t] = s->host_peak[sp][t];
    }
    res->to_host_bytes = res->to_device_bytes = 0;
    for (int a = 0; a < OOMB_SPACE_COUNT; a++)
        for (int b = 0; b < OOMB_SPACE_COUNT; b++) {
            if (a == OOMB_SPACE_DEVICE && b != OOMB_SPACE_DEVICE)
                res->to_host_bytes += s->copy_bytes[a][b];
            else if (a != OOMB_SPACE_DEVICE && b == OOMB_SPACE_DEVICE)
                res->to_device_bytes += s->copy_bytes[a][b];
        }
    res->n_copies = s->n_copies;
    res->copy_ns = s->copy_ns;
}

void oomb_tracker_set_phase(struct oomb_tracker *t, enum oomb_phase phase)
{
    t->phase = phase;
}

void oomb_tracker_report_cache(const struct oomb_tracker_stats *s, int kind,
                               const struct oomb_cachealloc_conf *conf,
                               struct oomb_run_result *res)
{
    res->alloc_kind = kind;
    if (!s->cache_on)
        return;
    res->alloc_conf = *conf;
    res->alloc = s->cache;
    res->reserved_end = s->reserved_end;
    res->oom_by_reserved = s->oom_hit && s->oom_by_reserved;
}

void oomb_tracker_set_cache(struct oomb_tracker *t, struct oomb_cachealloc *m)
{
    t->cache = m;
    t->stats->cache_on = m != NULL;
    if (m)
        oomb_cachealloc_get_stats(m, &t->stats->cache);
}

void oomb_tracker_empty_cache(struct oomb_tracker *t)
{
    if (!t->cache)
        return;
    oomb_cachealloc_empty_cache(t->cache);
    oomb_cachealloc_get_stats(t->cache, &t->stats->cache);
    record(t, 0, OOMB_TAG_OTHER); /* the timeline shows reserved falling */
}

void oomb_tracker_set_step(struct oomb_tracker *t, int32_t step)
{
    t->step = step;
}
