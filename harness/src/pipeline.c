/*
 * Staging ring and loader thread (see pipeline.h). Slot k holds step s
 * with s % n_slots == k. The loader makes step `made` once the consumer has
 * moved past step made - n_slots, i.e. made < current + n_slots; the
 * consumer waits until the loader has made its step.
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct slot {
    float *x;
    int32_t *y;
    void *mem;
    int status; /* fill's return for the step it holds */
};

struct oomb_pipeline {
    struct oomb_pipeline_cfg cfg;
    int n_slots;
    struct slot *slots;
    size_t slot_bytes;
    pthread_t thread;
    int has_thread;
    int has_sync; /* mu and cv initialised */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t current; /* the step the consumer holds (-1: none yet) */
    int64_t made;    /* steps [0, made) are in their slots */
    int stop;
};

static void *loader(void *arg)
{
    struct oomb_pipeline *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* room: the slot of step `made` is free once the consumer has left
         * step made - n_slots behind */
        while (!p->stop && p->made < p->cfg.n_steps &&
               p->made >= (p->current < 0 ? 0 : p->current) + p->n_slots)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop || p->made >= p->cfg.n_steps)
            break;
        int64_t s = p->made;
        struct slot *sl = &p->slots[s % p->n_slots];
        pthread_mutex_unlock(&p->mu);
        int rc = p->cfg.fill(p->cfg.fill_user, s, sl->x, sl->y);
        pthread_mutex_lock(&p->mu);
        sl->status = rc;
        p->made = s + 1;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int oomb_pipeline_start(const struct oomb_pipeline_cfg *cfg, struct oomb_pipeline **out)
{
    *out = NULL;
    if (!cfg->fill || !cfg->alloc_slot || !cfg->free_slot || cfg->batch < 1 || cfg->features < 1 ||
        cfg->n_steps < 0 || cfg->prefetch < 0 || cfg->prefetch > 1024 ||
        cfg->batch > (int64_t)(SIZE_MAX / 8) / cfg->features)
        return OOMB_ERR_INVALID;
    struct oomb_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return OOMB_ERR_OOM;
    p->cfg = *cfg;
    p->n_slots = cfg->prefetch + 1;
    p->current = -1;
    size_t xb = (size_t)(cfg->batch * cfg->features) * sizeof(float);
    p->slot_bytes = xb + (size_t)cfg->batch * sizeof(int32_t);
    p->slots = calloc((size_t)p->n_slots, sizeof *p->slots);
    if (!p->slots) {
        free(p);
        return OOMB_ERR_OOM;
    }
    for (int k = 0; k < p->n_slots; k++) {
        void *m = cfg->alloc_slot(cfg->alloc_user, p->slot_bytes);
        if (!m) {
            oomb_pipeline_stop(p);
            return OOMB_ERR_OOM;
        }
        p->slots[k].mem = m;
        p->slots[k].x = m;
        p->slots[k].y = (int32_t *)((char *)m + xb);
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->has_sync = 1;
    if (cfg->prefetch > 0) {
        if (pthread_create(&p->thread, NULL, loader, p) != 0) {
            oomb_pipeline_stop(p);
            return OOMB_ERR_BACKEND;
        }
        p->has_thread = 1;
    }
    *out = p;
    return OOMB_OK;
}

int oomb_pipeline_get(struct oomb_pipeline *p, int64_t step, const float **x, const int32_t **y,
                      int64_t *wait_ns)
{
    *wait_ns = 0;
    if (step < 0 || step >= p->cfg.n_steps || step < p->current)
        return OOMB_ERR_INVALID;
    int64_t t0 = oomb_now_ns();
    struct slot *sl = &p->slots[step % p->n_slots];
    int rc;
    if (!p->has_thread) {
        if (step != p->current) {
            p->current = step;
            sl->status = p->cfg.fill(p->cfg.fill_user, step, sl->x, sl->y);
            p->made = step + 1;
        }
        rc = sl->status;
    } else {
        pthread_mutex_lock(&p->mu);
        if (step != p->current) {
            p->current = step;
            pthread_cond_broadcast(&p->cv); /* earlier slots are free */
        }
        while (p->made <= step)
            pthread_cond_wait(&p->cv, &p->mu);
        rc = sl->status;
        pthread_mutex_unlock(&p->mu);
    }
    *wait_ns = oomb_now_ns() - t0;
    *x = sl->x;
    *y = sl->y;
    return rc;
}

size_t oomb_pipeline_staging_bytes(const struct oomb_pipeline *p)
{
    return p ? p->slot_bytes * (size_t)p->n_slots : 0;
}

void oomb_pipeline_stop(struct oomb_pipeline *p)
{
    if (!p)
        return;
    if (p->has_thread) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    if (p->slots)
        for (int k = 0; k < p->n_slots; k++)
            if (p->slots[k].mem)
                p->cfg.free_slot(p->cfg.alloc_user, p->slots[k].mem);
    if (p->has_sync) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
    }
    free(p->slots);
    free(p);
}
