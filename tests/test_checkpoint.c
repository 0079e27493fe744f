/*
 * The checkpoint strategy plugin through the real runner: gradients and
 * weights bit-for-bit none's, the exact activation peak on the 16- and
 * 64-layer scenarios, the default segment count, and parameter validation.
 */
#include "strategy_run.h"

/*
 * The scenarios are uniform MLPs cut into S segments of L / S layers. The
 * activation peak equals the tensor-by-tensor simulation of non-reentrant
 * torch.utils.checkpoint over the same segments (tests/eager_model.h), and
 * stays under max_ratio of none's.
 */
static void check_deep(const char *file, int L, int S, double max_ratio)
{
    const char *path = file;
    struct oomb_scenario *sc = strat_load(path);
    const struct oomb_model *m = &sc->model;
    cr_assert_eq(m->n_layers, L);
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *ck = strat_find(&r, "checkpoint", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(none);
    strat_expect_ok(ck);

    /* same kernels, same arguments, same order */
    cr_expect_eq(ck->grad_rel_err, 0.0, "grad_rel_err %g", ck->grad_rel_err);
    cr_expect_eq(ck->weight_rel_err, 0.0, "weight_rel_err %g", ck->weight_rel_err);
    cr_expect_eq(ck->loss_rel_err, 0.0, "loss_rel_err %g", ck->loss_rel_err);
    cr_expect_eq(ck->accuracy_delta, 0.0);

    const int64_t B = ck->batch;
    int first[65];
    for (int i = 0; i <= S; i++)
        first[i] = (int)(i * (L / S) + (i < L % S ? i : L % S));
    /* non-reentrant checkpoint over the same segments, simulated from PyTorch's rules */
    uint64_t want = (uint64_t)em_peak(m, B, 4, 1, S, first);
    uint64_t got = ck->peak_by_tag[OOMB_TAG_ACTIVATIONS];
    uint64_t ref = none->peak_by_tag[OOMB_TAG_ACTIVATIONS];
    cr_expect_eq(ref, strat_none_train_activations(m, B));
    cr_expect_eq(got, want, "activations %llu, eager checkpoint %llu", (unsigned long long)got,
                 (unsigned long long)want);
    cr_expect_leq((double)got, max_ratio * (double)ref, "ratio %.3f", (double)got / (double)ref);
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        if (t != OOMB_TAG_ACTIVATIONS)
            cr_expect_eq(ck->peak_by_tag[t], none->peak_by_tag[t], "tag %s",
                         oomb_tag_name((enum oomb_tag)t));
    cr_expect_eq(strat_metric(ck, "segments"), (double)S);
    /* every segment but the last runs forward again */
    cr_expect_eq(strat_metric(ck, "recompute_ratio"), (double)first[S - 1] / L);
    cr_expect_eq(r.sum.n_checks_failed, 0, "%d scenario check(s) failed", r.sum.n_checks_failed);
    strat_run_free(&r);
    oomb_scenario_destroy(sc);
}

Test(checkpoint, sixteen_layers_under_six_tenths_of_none)
{
    check_deep(STRAT_SCENARIO("checkpoint.yaml"), 16, 4, 0.6);
}

Test(checkpoint, sixty_four_layers_under_three_tenths_of_none)
{
    check_deep(STRAT_SCENARIO("checkpoint-deep.yaml"), 64, 8, 0.3);
}

static const char *variant(char *buf, size_t len, const char *segments)
{
    char text[2048];
    snprintf(
        text, sizeof text,
        "name: ckpt-variant\n"
        "model:\n"
        "  input: 40\n"
        "  classes: 6\n"
        "  layers: [{linear: 64}, relu, {linear: 48}, gelu, {linear: {out: 32, bias: false}},\n"
        "           relu, {linear: 6}]\n"
        "input: {kind: synthetic, seed: 3}\n"
        "mode: [train, infer]\n"
        "batch: 24\n"
        "optimizer: {name: sgd, lr: 0.05, momentum: 0.9}\n"
        "steps: {warmup: 1, measured: 3}\n"
        "strategies:\n"
        "  - none\n"
        "  - {plugin: checkpoint, label: ck, params: {segments: %s}}\n",
        segments);
    return strat_write_scenario(buf, len, "ckpt-variant.yaml", text);
}

/* Uneven segments (7 layers in 3: 3, 2, 2), widths that differ, a linear
 * layer without bias: still bit-for-bit none's. */
Test(checkpoint, uneven_segments_match_none_exactly)
{
    char path[256];
    variant(path, sizeof path, "3");
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *ck = strat_find(&r, "ck", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(ck);
    cr_expect_eq(ck->grad_rel_err, 0.0, "grad_rel_err %g", ck->grad_rel_err);
    cr_expect_eq(ck->weight_rel_err, 0.0, "weight_rel_err %g", ck->weight_rel_err);
    cr_expect_lt(ck->peak_by_tag[OOMB_TAG_ACTIVATIONS], none->peak_by_tag[OOMB_TAG_ACTIVATIONS]);
    cr_expect_eq(strat_metric(ck, "segments"), 3.0);
    cr_expect_eq(strat_metric(ck, "recompute_ratio"), 5.0 / 7.0); /* segments of 3 and 2 */
    const struct oomb_run_result *inf = strat_find(&r, "ck", OOMB_MODE_INFER, 0);
    cr_expect_eq(inf->outcome, OOMB_OUTCOME_NOT_APPLICABLE, "infer: %s",
                 oomb_outcome_name(inf->outcome));
    strat_run_free(&r);
    strat_remove_scenario(path);
}

/* Default: ceil(sqrt(7)) = 3 segments. */
Test(checkpoint, default_segments_is_ceil_sqrt_of_layers)
{
    char path[256];
    variant(path, sizeof path, "0");
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *ck = strat_find(&r, "ck", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(ck);
    cr_expect_eq(strat_metric(ck, "segments"), 3.0);
    cr_expect_eq(ck->grad_rel_err, 0.0);
    strat_run_free(&r);
    strat_remove_scenario(path);
}

static void expect_rejected(const char *segments)
{
    char path[256];
    variant(path, sizeof path, segments);
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *ck = strat_find(&r, "ck", OOMB_MODE_TRAIN, 0);
    cr_expect_eq(ck->outcome, OOMB_OUTCOME_ERROR, "segments %s: outcome %s", segments,
                 oomb_outcome_name(ck->outcome));
    cr_expect(strstr(ck->reason, "segments") != NULL, "reason: %s", ck->reason);
    strat_run_free(&r);
    strat_remove_scenario(path);
}

Test(checkpoint, rejects_more_segments_than_layers)
{
    expect_rejected("8");
}

Test(checkpoint, rejects_negative_segments_when_the_scenario_loads)
{
    char path[256];
    variant(path, sizeof path, "-2");
    strat_expect_load_rejected(path, "segments");
    strat_remove_scenario(path);
}
