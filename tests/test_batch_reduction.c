/*
 * The batch_reduction strategy plugin through the real runner: inference
 * logits equal none's with the exact activation formula, training at the
 * smaller batch, micro_batch = batch being none itself, remainders, and
 * parameter validation.
 */
#include "strategy_run.h"

/* batch_reduction's inference activation peak (plugins/batch_reduction):
 * none's inference peak at one micro-batch of b samples, plus the (B, K)
 * logits of the whole batch when there is more than one micro-batch. */
static uint64_t infer_activations(const struct oomb_model *m, int64_t B, int64_t b)
{
    return (uint64_t)((b < B ? 4 * B * m->classes : 0) + em_peak(m, b, 4, 0, 0, NULL));
}

Test(batch_reduction, infer_logits_match_none_in_micro_batches)
{
    const char *path = STRAT_SCENARIO("batch_reduction.yaml");
    struct oomb_scenario *sc = strat_load(path);
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_INFER, 0);
    const struct oomb_run_result *br = strat_find(&r, "batch_reduction", OOMB_MODE_INFER, 0);
    strat_expect_ok(none);
    strat_expect_ok(br);
    const int64_t B = br->batch, b = 32;
    /* Bounds derived next to the scenario's checks (scenarios/batch_reduction.yaml,
     * docs/numerics.md): GEMMs of 32 rows instead of 256 may order the inner sums
     * differently; if all of them are reordered, two orders differ by u sqrt(N/3) =
     * 1.5e-6 in relative L2 with N = 256 + 3 x 512 (u = 2^-24), limit 3e-6. Measured
     * 3.8e-7 (output), 1.2e-9 (loss), accuracy_delta 0 over OpenBLAS core types Haswell,
     * Zen, SkylakeX, Sandybridge and the default with 1 or 2 threads. */
    cr_expect_leq(br->output_rel_err, 3e-6, "output_rel_err %g", br->output_rel_err);
    cr_expect_leq(br->loss_rel_err, 1e-6, "loss_rel_err %g", br->loss_rel_err);
    cr_expect_eq(br->accuracy_delta, 0.0);
    uint64_t want = infer_activations(&sc->model, B, b);
    cr_expect_eq(br->peak_by_tag[OOMB_TAG_ACTIVATIONS], want, "activations %llu, formula %llu",
                 (unsigned long long)br->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                 (unsigned long long)want);
    cr_expect_leq((double)br->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                  (double)b / (double)B * (double)none->peak_by_tag[OOMB_TAG_ACTIVATIONS] +
                      4.0 * (double)(B * sc->model.classes));
    cr_expect_eq(br->peak_by_tag[OOMB_TAG_OTHER], (uint64_t)(4 * b));
    cr_expect_eq(br->peak_by_tag[OOMB_TAG_WEIGHTS], none->peak_by_tag[OOMB_TAG_WEIGHTS]);
    cr_expect_eq(strat_metric(br, "micro_batches"), (double)(B / b));
    cr_expect_eq(r.sum.n_checks_failed, 0, "%d scenario check(s) failed", r.sum.n_checks_failed);
    strat_run_free(&r);
    oomb_scenario_destroy(sc);
}

Test(batch_reduction, train_at_the_smaller_batch)
{
    const char *path = STRAT_SCENARIO("batch_reduction-train.yaml");
    struct oomb_scenario *sc = strat_load(path);
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *br = strat_find(&r, "batch_reduction", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(none);
    strat_expect_ok(br);
    const int64_t B = br->batch, b = 32;
    cr_expect_eq(br->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                 strat_none_train_activations(&sc->model, b));
    cr_expect_eq(8 * br->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                 none->peak_by_tag[OOMB_TAG_ACTIVATIONS]);
    for (int t = OOMB_TAG_WEIGHTS; t <= OOMB_TAG_OPTIMIZER; t++)
        cr_expect_eq(br->peak_by_tag[t], none->peak_by_tag[t]);
    cr_expect_eq(strat_metric(br, "updates_per_step"), (double)(B / b));
    /* a loss for every step, over the same samples as none's */
    cr_expect_eq(br->n_losses, none->n_losses);
    for (int i = 0; i < br->n_losses; i++)
        cr_expect(isfinite(br->losses[i]), "loss of step %d is %g", i, br->losses[i]);
    cr_expect_leq(br->final_loss, none->final_loss);
    cr_expect_gt(br->samples_per_s, 0.0);
    cr_expect_eq(r.sum.n_checks_failed, 0, "%d scenario check(s) failed", r.sum.n_checks_failed);
    strat_run_free(&r);
    oomb_scenario_destroy(sc);
}

static const char *variant(char *buf, size_t len, int64_t batch, const char *mb)
{
    char text[2048];
    snprintf(text, sizeof text,
             "name: br-variant\n"
             "model:\n"
             "  input: 36\n"
             "  classes: 7\n"
             "  layers: [{linear: 64}, relu, {linear: 40}, gelu, {linear: 7}]\n"
             "input: {kind: synthetic, seed: 11}\n"
             "mode: [train, infer]\n"
             "batch: %lld\n"
             "optimizer: {name: sgd, lr: 0.05, momentum: 0.9}\n"
             "steps: {warmup: 1, measured: 3}\n"
             "strategies:\n"
             "  - none\n"
             "  - {plugin: batch_reduction, label: br, params: {micro_batch: %s}}\n",
             (long long)batch, mb);
    return strat_write_scenario(buf, len, "br-variant.yaml", text);
}

Test(batch_reduction, whole_batch_is_none_exactly)
{
    char path[256];
    variant(path, sizeof path, 20, "20");
    struct oomb_scenario *sc = strat_load(path);
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *br = strat_find(&r, "br", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(br);
    /* micro_batch = batch: the same kernel calls on the same data as none, bit-identical */
    cr_expect_eq(br->grad_rel_err, 0.0, "grad_rel_err %g", br->grad_rel_err);
    cr_expect_eq(br->weight_rel_err, 0.0, "weight_rel_err %g", br->weight_rel_err);
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        cr_expect_eq(br->peak_by_tag[t], none->peak_by_tag[t], "tag %s",
                     oomb_tag_name((enum oomb_tag)t));
    const struct oomb_run_result *inf = strat_find(&r, "br", OOMB_MODE_INFER, 0);
    strat_expect_ok(inf);
    cr_expect_eq(inf->output_rel_err, 0.0, "output_rel_err %g", inf->output_rel_err);
    cr_expect_eq(inf->peak_by_tag[OOMB_TAG_ACTIVATIONS], infer_activations(&sc->model, 20, 20));
    strat_run_free(&r);
    oomb_scenario_destroy(sc);
    strat_remove_scenario(path);
}

/* 30 samples in micro-batches of 8: 8, 8, 8, 6. */
Test(batch_reduction, a_short_last_micro_batch)
{
    char path[256];
    variant(path, sizeof path, 30, "8");
    struct oomb_scenario *sc = strat_load(path);
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *inf = strat_find(&r, "br", OOMB_MODE_INFER, 0);
    strat_expect_ok(inf);
    /* N = 36 + 64 + 40 summed terms along the forward: u sqrt(N/3) = 4.1e-7 for a complete
     * reordering (docs/numerics.md); limit 1e-6 (2.4x) */
    cr_expect_leq(inf->output_rel_err, 1e-6, "output_rel_err %g", inf->output_rel_err);
    cr_expect_eq(inf->peak_by_tag[OOMB_TAG_ACTIVATIONS], infer_activations(&sc->model, 30, 8));
    cr_expect_eq(strat_metric(inf, "micro_batches"), 4.0);
    const struct oomb_run_result *tr = strat_find(&r, "br", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(tr);
    cr_expect_eq(tr->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                 strat_none_train_activations(&sc->model, 8));
    cr_expect(isfinite(tr->final_loss));
    strat_run_free(&r);
    oomb_scenario_destroy(sc);
    strat_remove_scenario(path);
}

static void expect_rejected(int64_t batch, const char *mb)
{
    char path[256];
    variant(path, sizeof path, batch, mb);
    struct strat_run r;
    strat_run(&r, path);
    for (int mode = OOMB_MODE_TRAIN; mode <= OOMB_MODE_INFER; mode <<= 1) {
        const struct oomb_run_result *br = strat_find(&r, "br", (enum oomb_mode)mode, 0);
        cr_expect_eq(br->outcome, OOMB_OUTCOME_ERROR, "micro_batch %s at batch %lld: %s", mb,
                     (long long)batch, oomb_outcome_name(br->outcome));
        cr_expect(strstr(br->reason, "micro_batch") != NULL, "reason: %s", br->reason);
    }
    strat_run_free(&r);
    strat_remove_scenario(path);
}

Test(batch_reduction, rejects_a_micro_batch_larger_than_the_batch)
{
    expect_rejected(16, "17");
}

Test(batch_reduction, rejects_a_zero_micro_batch_when_the_scenario_loads)
{
    char path[256];
    variant(path, sizeof path, 16, "0");
    strat_expect_load_rejected(path, "micro_batch");
    strat_remove_scenario(path);
}
