/*
 * Tracked allocator: exact per-tag and total accounting, peaks, the budget
 * and its out-of-memory record, the event timeline, and misuse.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "backend.h"
#include "tracker.h"

static struct oomb_kernel_backend *be;
static struct oomb_tracker t;
static struct oomb_tracker_stats st;

static void setup_budget(uint64_t budget)
{
    char msg[256];
    cr_assert_eq(oomb_cpu_backend_create(&be, msg, sizeof msg), OOMB_OK, "%s", msg);
    cr_assert_eq(oomb_tracker_init(&t, &st, be, budget), OOMB_OK);
}

static void teardown(void)
{
    oomb_tracker_release_all(&t, NULL, 0);
    oomb_tracker_free(&t);
    be->destroy(be);
}

static void setup_unlimited(void)
{
    setup_budget(0);
}

Test(tracker, counts_current_and_peak_per_tag, .init = setup_unlimited, .fini = teardown)
{
    void *a, *b, *c;
    cr_assert_eq(oomb_tracker_alloc(&t, 1000, OOMB_TAG_WEIGHTS, &a), OOMB_OK);
    cr_assert_eq(oomb_tracker_alloc(&t, 300, OOMB_TAG_ACTIVATIONS, &b), OOMB_OK);
    cr_assert_eq(oomb_tracker_alloc(&t, 700, OOMB_TAG_ACTIVATIONS, &c), OOMB_OK);
    cr_assert_eq(st.cur[OOMB_TAG_ACTIVATIONS], 1000);
    cr_assert_eq(st.cur_total, 2000);
    cr_assert_eq(oomb_tracker_dealloc(&t, b), OOMB_OK);
    cr_assert_eq(st.cur[OOMB_TAG_ACTIVATIONS], 700);
    cr_assert_eq(st.peak[OOMB_TAG_ACTIVATIONS], 1000);
    cr_assert_eq(st.peak_total, 2000);
    cr_assert_eq(st.peak[OOMB_TAG_WEIGHTS], 1000);
    cr_assert_eq(st.peak[OOMB_TAG_GRADS], 0);
    cr_assert_eq(oomb_tracker_dealloc(&t, c), OOMB_OK);
    cr_assert_eq(oomb_tracker_dealloc(&t, a), OOMB_OK);
    cr_assert_eq(st.cur_total, 0);
    cr_assert_eq(st.n_allocs, 3);
    cr_assert_eq(st.n_frees, 3);
}

Test(tracker, many_allocations_survive_rehashing, .init = setup_unlimited, .fini = teardown)
{
    enum { N = 5000 };
    static void *p[N];
    uint64_t want = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(oomb_tracker_alloc(&t, (size_t)(i % 97) + 1, OOMB_TAG_OTHER, &p[i]), OOMB_OK);
        want += (uint64_t)(i % 97) + 1;
    }
    cr_assert_eq(st.cur_total, want);
    for (int i = 0; i < N; i += 2)
        cr_assert_eq(oomb_tracker_dealloc(&t, p[i]), OOMB_OK);
    for (int i = 0; i < N; i += 2)
        want -= (uint64_t)(i % 97) + 1;
    cr_assert_eq(st.cur_total, want);
    cr_assert_eq(oomb_tracker_release_all(&t, NULL, 0), want);
    cr_assert_eq(st.cur_total, 0);
}

static void setup_budget_1000(void)
{
    setup_budget(1000);
}

Test(tracker, budget_refuses_with_request_and_in_use, .init = setup_budget_1000, .fini = teardown)
{
    void *a, *b;
    cr_assert_eq(oomb_tracker_alloc(&t, 600, OOMB_TAG_WEIGHTS, &a), OOMB_OK);
    cr_assert_eq(oomb_tracker_alloc(&t, 401, OOMB_TAG_ACTIVATIONS, &b), OOMB_ERR_OOM);
    cr_assert_null(b);
    cr_assert(st.oom_hit);
    cr_assert_eq(st.oom_request, 401);
    cr_assert_eq(st.oom_in_use, 600);
    cr_assert_eq(st.oom_tag, OOMB_TAG_ACTIVATIONS);
    cr_assert_eq(st.cur_total, 600, "a refused request must not be counted");
    cr_assert_eq(oomb_tracker_alloc(&t, 400, OOMB_TAG_ACTIVATIONS, &b), OOMB_OK,
                 "exactly the budget fits");
    cr_assert_eq(st.peak_total, 1000);
}

Test(tracker, huge_request_does_not_overflow_the_budget_check, .init = setup_budget_1000,
     .fini = teardown)
{
    void *a, *b;
    cr_assert_eq(oomb_tracker_alloc(&t, 10, OOMB_TAG_OTHER, &a), OOMB_OK);
    cr_assert_eq(oomb_tracker_alloc(&t, SIZE_MAX - 5, OOMB_TAG_OTHER, &b), OOMB_ERR_OOM);
    cr_assert_eq(st.cur_total, 10);
}

Test(tracker, zero_bytes_give_distinct_pointers_counted_as_zero, .init = setup_unlimited,
     .fini = teardown)
{
    void *a, *b;
    cr_assert_eq(oomb_tracker_alloc(&t, 0, OOMB_TAG_OTHER, &a), OOMB_OK);
    cr_assert_eq(oomb_tracker_alloc(&t, 0, OOMB_TAG_OTHER, &b), OOMB_OK);
    cr_assert_neq(a, b);
    cr_assert_eq(st.cur_total, 0);
}

Test(tracker, rejects_bad_tag_and_unknown_pointer, .init = setup_unlimited, .fini = teardown)
{
    void *a;
    int x;
    cr_assert_eq(oomb_tracker_alloc(&t, 8, OOMB_TAG_COUNT, &a), OOMB_ERR_INVALID);
    cr_assert_eq(oomb_tracker_alloc(&t, 8, (enum oomb_tag) - 1, &a), OOMB_ERR_INVALID);
    cr_assert_eq(oomb_tracker_dealloc(&t, &x), OOMB_ERR_INVALID);
    cr_assert_eq(oomb_tracker_dealloc(&t, NULL), OOMB_OK);
    cr_assert_eq(oomb_tracker_alloc(&t, 8, OOMB_TAG_OTHER, &a), OOMB_OK);
    cr_assert_eq(oomb_tracker_dealloc(&t, a), OOMB_OK);
    cr_assert_eq(oomb_tracker_dealloc(&t, a), OOMB_ERR_INVALID, "double free is caught");
}

Test(tracker, timeline_records_phase_step_and_running_total, .init = setup_unlimited,
     .fini = teardown)
{
    void *a, *b;
    t.record_step = 1;
    oomb_tracker_set_step(&t, 0);
    cr_assert_eq(oomb_tracker_alloc(&t, 64, OOMB_TAG_ACTIVATIONS, &a), OOMB_OK); /* not kept */
    cr_assert_eq(oomb_tracker_dealloc(&t, a), OOMB_OK);
    oomb_tracker_set_step(&t, 1);
    oomb_tracker_set_phase(&t, OOMB_PHASE_FORWARD);
    cr_assert_eq(oomb_tracker_alloc(&t, 100, OOMB_TAG_ACTIVATIONS, &a), OOMB_OK);
    oomb_tracker_set_phase(&t, OOMB_PHASE_BACKWARD);
    cr_assert_eq(oomb_tracker_alloc(&t, 50, OOMB_TAG_WORKSPACE, &b), OOMB_OK);
    cr_assert_eq(oomb_tracker_dealloc(&t, a), OOMB_OK);
    cr_assert_eq(t.n_events, 3);
    cr_assert_eq(t.events[0].delta, 100);
    cr_assert_eq(t.events[0].phase, OOMB_PHASE_FORWARD);
    cr_assert_eq(t.events[1].in_use, 150);
    cr_assert_eq(t.events[1].tag, OOMB_TAG_WORKSPACE);
    cr_assert_eq(t.events[2].delta, -100);
    cr_assert_eq(t.events[2].in_use, 50);
    cr_assert_eq(t.events[2].step, 1);
    cr_assert_geq(t.events[2].t_ns, t.events[0].t_ns);
}

Test(tracker, release_all_keeps_what_it_is_told, .init = setup_unlimited, .fini = teardown)
{
    void *a, *b;
    cr_assert_eq(oomb_tracker_alloc(&t, 10, OOMB_TAG_OTHER, &a), OOMB_OK);
    cr_assert_eq(oomb_tracker_alloc(&t, 20, OOMB_TAG_WORKSPACE, &b), OOMB_OK);
    void *keep[] = {b};
    cr_assert_eq(oomb_tracker_release_all(&t, keep, 1), 10);
    cr_assert_eq(st.cur_total, 20);
}
