/*
 * The input pipeline (pipeline.h): every step's batch arrives intact and in
 * order with and without a loader thread, the loader never runs further
 * ahead than its slots allow, fill errors reach the step that asked, and
 * misuse is refused.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

#define B 8
#define F 5

struct src {
    atomic_int made;      /* fills done */
    atomic_int max_ahead; /* largest step filled minus the step last consumed */
    atomic_int consumed;  /* the step last asked for */
    int64_t fail_step;    /* fill returns OOMB_ERR_IO here (-1: never) */
    atomic_int slots_live;
};

static int fill(void *user, int64_t step, float *x, int32_t *y)
{
    struct src *s = user;
    for (int i = 0; i < B; i++) {
        for (int f = 0; f < F; f++)
            x[i * F + f] = (float)(step * 1000 + i * 10 + f);
        y[i] = (int32_t)(step * 100 + i);
    }
    int ahead = (int)step - atomic_load(&s->consumed);
    if (ahead > atomic_load(&s->max_ahead))
        atomic_store(&s->max_ahead, ahead);
    atomic_fetch_add(&s->made, 1);
    return step == s->fail_step ? OOMB_ERR_IO : OOMB_OK;
}

static void *slot_alloc(void *user, size_t bytes)
{
    struct src *s = user;
    atomic_fetch_add(&s->slots_live, 1);
    return malloc(bytes);
}

static void slot_free(void *user, void *p)
{
    struct src *s = user;
    atomic_fetch_sub(&s->slots_live, 1);
    free(p);
}

static struct oomb_pipeline_cfg cfg_for(struct src *s, int prefetch, int64_t steps)
{
    struct oomb_pipeline_cfg c = {.batch = B,
                                  .features = F,
                                  .n_steps = steps,
                                  .prefetch = prefetch,
                                  .fill = fill,
                                  .fill_user = s,
                                  .alloc_slot = slot_alloc,
                                  .free_slot = slot_free,
                                  .alloc_user = s};
    return c;
}

static void check_batch(int64_t step, const float *x, const int32_t *y)
{
    for (int i = 0; i < B; i++) {
        cr_assert_eq(y[i], step * 100 + i, "step %lld sample %d", (long long)step, i);
        for (int f = 0; f < F; f++)
            cr_assert_eq(x[i * F + f], (float)(step * 1000 + i * 10 + f));
    }
}

static void run_steps(int prefetch)
{
    struct src s = {.fail_step = -1};
    atomic_store(&s.consumed, 0); /* before the first get, slots fill with steps 0.. */
    struct oomb_pipeline_cfg c = cfg_for(&s, prefetch, 40);
    struct oomb_pipeline *p;
    cr_assert_eq(oomb_pipeline_start(&c, &p), OOMB_OK);
    cr_assert_eq(atomic_load(&s.slots_live), prefetch + 1);
    cr_assert_eq(oomb_pipeline_staging_bytes(p), (size_t)(prefetch + 1) * (B * F * 4 + B * 4));
    for (int64_t step = 0; step < 40; step++) {
        atomic_store(&s.consumed, (int)step);
        const float *x;
        const int32_t *y;
        int64_t waited;
        /* twice, as a strategy slicing the batch asks: the same slot */
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(oomb_pipeline_get(p, step, &x, &y, &waited), OOMB_OK);
            cr_assert_geq(waited, 0);
            check_batch(step, x, y);
        }
    }
    oomb_pipeline_stop(p);
    cr_assert_eq(atomic_load(&s.slots_live), 0);
    cr_assert_eq(atomic_load(&s.made), 40, "each step made once");
    /* with n slots the loader fills at most n - 1 steps past the one in use */
    cr_assert_leq(atomic_load(&s.max_ahead), prefetch, "ran %d ahead with prefetch %d",
                  atomic_load(&s.max_ahead), prefetch);
}

Test(pipeline, synchronous_without_prefetch)
{
    run_steps(0);
}

Test(pipeline, loader_thread_keeps_order_and_bounds)
{
    run_steps(1);
    run_steps(3);
}

Test(pipeline, skipping_steps_and_fill_errors)
{
    struct src s = {.fail_step = 5};
    atomic_store(&s.consumed, -1);
    struct oomb_pipeline_cfg c = cfg_for(&s, 2, 10);
    struct oomb_pipeline *p;
    cr_assert_eq(oomb_pipeline_start(&c, &p), OOMB_OK);
    const float *x;
    const int32_t *y;
    int64_t waited;
    cr_assert_eq(oomb_pipeline_get(p, 3, &x, &y, &waited), OOMB_OK);
    check_batch(3, x, y);
    cr_assert_eq(oomb_pipeline_get(p, 5, &x, &y, &waited), OOMB_ERR_IO);
    cr_assert_eq(oomb_pipeline_get(p, 4, &x, &y, &waited), OOMB_ERR_INVALID, "no going back");
    cr_assert_eq(oomb_pipeline_get(p, 6, &x, &y, &waited), OOMB_OK);
    check_batch(6, x, y);
    cr_assert_eq(oomb_pipeline_get(p, 10, &x, &y, &waited), OOMB_ERR_INVALID, "past the end");
    oomb_pipeline_stop(p); /* the loader may be waiting for room: it must stop */
    cr_assert_eq(atomic_load(&s.slots_live), 0);
}

Test(pipeline, refuses_bad_configurations)
{
    struct src s = {.fail_step = -1};
    struct oomb_pipeline *p = (void *)1;
    struct oomb_pipeline_cfg c = cfg_for(&s, 1, 4);
    c.batch = 0;
    cr_assert_eq(oomb_pipeline_start(&c, &p), OOMB_ERR_INVALID);
    cr_assert_null(p);
    c = cfg_for(&s, -1, 4);
    cr_assert_eq(oomb_pipeline_start(&c, &p), OOMB_ERR_INVALID);
    c = cfg_for(&s, 1, 4);
    c.fill = NULL;
    cr_assert_eq(oomb_pipeline_start(&c, &p), OOMB_ERR_INVALID);
    oomb_pipeline_stop(NULL);
}
