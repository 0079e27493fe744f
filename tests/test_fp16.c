/*
 * The fp16 (mixed precision) strategy plugin through the real runner: the
 * exact F16 activation and weight bytes in training and inference, the loss
 * within 2% of none's, dynamic loss scaling (growth, and skipping steps whose
 * gradients overflow), and parameter validation.
 */
#include "strategy_run.h"

/* fp16 training activations: none's tensors and lifetimes (PyTorch eager's
 * rules, tests/eager_model.h) with 2-byte activations and activation
 * gradients; statistics, probabilities and the loss's FP32 cast of the
 * logits at 4 bytes. */
static uint64_t train_activations(const struct oomb_model *m, int64_t B)
{
    return (uint64_t)em_peak(m, B, 2, 1, 0, NULL);
}

Test(fp16, train_halves_activations_and_keeps_the_loss)
{
    const char *path = STRAT_SCENARIO("fp16.yaml");
    struct oomb_scenario *sc = strat_load(path);
    const struct oomb_model *m = &sc->model;
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *fp = strat_find(&r, "fp16", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(none);
    strat_expect_ok(fp);
    const int64_t B = fp->batch, K = m->classes;

    uint64_t act = fp->peak_by_tag[OOMB_TAG_ACTIVATIONS];
    cr_expect_eq(act, train_activations(m, B), "activations %llu, formula %llu",
                 (unsigned long long)act, (unsigned long long)train_activations(m, B));
    cr_expect_leq((double)act, 0.5 * (double)none->peak_by_tag[OOMB_TAG_ACTIVATIONS] +
                                   (double)(4 * B * (2 * K + 1)));
    /* FP32 master + F16 copy */
    cr_expect_eq(2 * fp->peak_by_tag[OOMB_TAG_WEIGHTS], 3 * none->peak_by_tag[OOMB_TAG_WEIGHTS]);
    cr_expect_eq(fp->peak_by_tag[OOMB_TAG_GRADS], none->peak_by_tag[OOMB_TAG_GRADS]);
    cr_expect_eq(fp->peak_by_tag[OOMB_TAG_OPTIMIZER], none->peak_by_tag[OOMB_TAG_OPTIMIZER]);

    /* Bounds derived next to the checks of scenarios/fp16.yaml (F16 rounding, u_h =
     * 2^-11, not summation order): final loss within 2% (measured at most 8.6e-4
     * relative), step-0 gradients within 5% (about 8 u_h times the batch sum's
     * cancellation, ~2e-2; measured at most 0.0163). Measured over OPENBLAS_CORETYPE
     * Haswell, Zen, SkylakeX, Cooperlake, Sandybridge and Prescott with 1 and 2 BLAS
     * threads, with the F16 GEMMs' 256x256x64 tiles (docs/performance.md). */
    cr_expect_leq(fabs(fp->final_loss - none->final_loss), 0.02 * none->final_loss,
                  "final loss %g vs none %g", fp->final_loss, none->final_loss);
    cr_expect_gt(fp->grad_rel_err, 0.0, "F16 should not be bit-exact");
    cr_expect_leq(fp->grad_rel_err, 0.05, "grad_rel_err %g", fp->grad_rel_err);
    cr_expect_eq(strat_metric(fp, "loss_scale"), 65536.0);
    cr_expect_eq(strat_metric(fp, "skipped_steps"), 0.0);
    cr_expect_eq(r.sum.n_checks_failed, 0, "%d scenario check(s) failed", r.sum.n_checks_failed);
    strat_run_free(&r);
    oomb_scenario_destroy(sc);
}

Test(fp16, infer_stores_half_the_weights_and_activations)
{
    const char *path = STRAT_SCENARIO("fp16-infer.yaml");
    struct oomb_scenario *sc = strat_load(path);
    const struct oomb_model *m = &sc->model;
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_INFER, 0);
    const struct oomb_run_result *fp = strat_find(&r, "fp16", OOMB_MODE_INFER, 0);
    strat_expect_ok(none);
    strat_expect_ok(fp);
    const int64_t B = fp->batch, K = m->classes;

    int64_t P = 0;
    for (int l = 0; l < m->n_layers; l++)
        P += m->layers[l]->n_params;
    (void)K;
    cr_expect_eq(fp->peak_by_tag[OOMB_TAG_WEIGHTS], (uint64_t)(2 * P)); /* all F16 */
    uint64_t want = (uint64_t)em_peak(m, B, 2, 0, 0, NULL);
    cr_expect_eq(fp->peak_by_tag[OOMB_TAG_ACTIVATIONS], want, "activations %llu, formula %llu",
                 (unsigned long long)fp->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                 (unsigned long long)want);
    /* one F16 rounding per operand and output of each of 4 layers: ~u_h sqrt(12) = 1.7e-3,
     * worst case 5.9e-3 (scenarios/fp16-infer.yaml); measured at most 5.5e-4 (5.48e-4),
     * the loss at most 6.4e-7, over the core types and thread counts above */
    cr_expect_gt(fp->output_rel_err, 0.0);
    cr_expect_leq(fp->output_rel_err, 1e-2, "output_rel_err %g", fp->output_rel_err);
    cr_expect_leq(fabs(fp->final_loss - none->final_loss), 0.02 * none->final_loss);
    cr_expect_eq(r.sum.n_checks_failed, 0, "%d scenario check(s) failed", r.sum.n_checks_failed);
    strat_run_free(&r);
    oomb_scenario_destroy(sc);
}

static const char *variant(char *buf, size_t len, const char *params)
{
    char text[2048];
    snprintf(text, sizeof text,
             "name: fp16-variant\n"
             "model:\n"
             "  input: 32\n"
             "  classes: 7\n"
             "  layers: [{linear: 48}, gelu, {linear: 32}, relu, {linear: 7}]\n"
             "input: {kind: synthetic, seed: 5}\n"
             "mode: train\n"
             "batch: 16\n"
             "optimizer: {name: adam, lr: 1e-3}\n"
             "steps: {warmup: 1, measured: 5}\n"
             "strategies:\n"
             "  - none\n"
             "  - {plugin: fp16, label: fp, params: %s}\n",
             params);
    return strat_write_scenario(buf, len, "fp16-variant.yaml", text);
}

/* 6 clean steps with growth_interval 2: the scale doubles three times. */
Test(fp16, loss_scale_grows_after_clean_steps)
{
    char path[256];
    variant(path, sizeof path, "{init_scale: 1024, growth_interval: 2}");
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *fp = strat_find(&r, "fp", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(fp);
    cr_expect_eq(strat_metric(fp, "skipped_steps"), 0.0);
    cr_expect_eq(strat_metric(fp, "loss_scale"), 8192.0);
    strat_run_free(&r);
    strat_remove_scenario(path);
}

/* A scale of 2^30 overflows F16 in the loss gradient (2^30/16 >> 65504):
 * those steps are skipped and the scale halves each time; the run goes on. */
Test(fp16, overflowing_steps_are_skipped_and_the_scale_backs_off)
{
    char path[256];
    variant(path, sizeof path, "{init_scale: 1073741824, growth_interval: 1000}");
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *fp = strat_find(&r, "fp", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(fp);
    double skipped = strat_metric(fp, "skipped_steps");
    cr_expect_eq(skipped, 6.0, "every step overflows at these scales: %g skipped", skipped);
    cr_expect_eq(strat_metric(fp, "loss_scale"), 1073741824.0 / 64.0);
    /* nothing was updated: the loss of every step is that of the initial weights on that
     * step's data, the first one being none's up to the F16 forward (one F16 rounding per
     * operand and output of 3 layers: ~u_h sqrt(9) = 1.5e-3 of the logits, less of the
     * loss); 1e-2 */
    cr_expect_leq(fabs(fp->losses[0] - none->losses[0]), 1e-2 * none->losses[0]);
    cr_expect(isfinite(fp->final_loss));
    cr_expect_gt(fp->weight_rel_err, 0.0);
    strat_run_free(&r);
    strat_remove_scenario(path);
}

static void expect_load_rejected(const char *params, const char *name)
{
    char path[256];
    variant(path, sizeof path, params);
    strat_expect_load_rejected(path, name);
    strat_remove_scenario(path);
}

Test(fp16, rejects_a_zero_initial_scale)
{
    expect_load_rejected("{init_scale: 0}", "init_scale");
}

Test(fp16, rejects_a_backoff_above_one)
{
    expect_load_rejected("{backoff: 1.5}", "backoff");
}

Test(fp16, rejects_a_zero_growth_interval)
{
    expect_load_rejected("{growth_interval: 0}", "growth_interval");
}

Test(fp16, rejects_a_growth_factor_of_one)
{
    expect_load_rejected("{growth: 1}", "growth");
}

/* fp16 on every layer kind: a CNN with batch norm, max pooling and a
 * residual block, and a transformer block (layer norm, attention, GELU):
 * exactly none's tensors at 2 bytes (statistics and probabilities at 4),
 * at most 0.55 of none's activations (the FP32 probabilities and loss tail
 * are the rest; 48 features per token keep them small), the final loss within 2% of none's
 * (F16 rounding of activations, u_h = 2^-11, over 6 steps; measured at most
 * 1.7e-4 relative over the core types and thread counts of the tests above). */
static void check_kinds(const char *layers, const char *input)
{
    char text[2048], path[256];
    snprintf(text, sizeof text,
             "name: fp16-kinds\nmodel:\n  input: %s\n  classes: 4\n  layers: %s\n"
             "input: {kind: synthetic, seed: 5}\nmode: [train, infer]\nbatch: 16\n"
             "optimizer: {name: adam, lr: 1e-3}\nsteps: {warmup: 1, measured: 5}\n"
             "strategies: [none, fp16]\n",
             input, layers);
    strat_write_scenario(path, sizeof path, "fp16-kinds.yaml", text);
    struct oomb_scenario *sc = strat_load(path);
    struct strat_run r;
    strat_run(&r, path);
    for (int mode = OOMB_MODE_TRAIN; mode <= OOMB_MODE_INFER; mode <<= 1) {
        const struct oomb_run_result *none = strat_find(&r, "none", mode, 0);
        const struct oomb_run_result *fp = strat_find(&r, "fp16", mode, 0);
        strat_expect_ok(none);
        strat_expect_ok(fp);
        uint64_t act = fp->peak_by_tag[OOMB_TAG_ACTIVATIONS];
        cr_expect_eq(act, (uint64_t)em_peak(&sc->model, 16, 2, mode == OOMB_MODE_TRAIN, 0, NULL),
                     "%s: activations %llu", mode == OOMB_MODE_TRAIN ? "train" : "infer",
                     (unsigned long long)act);
        cr_expect_leq((double)act, 0.55 * (double)none->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                      "ratio %.4f", (double)act / (double)none->peak_by_tag[OOMB_TAG_ACTIVATIONS]);
        cr_expect_leq(fabs(fp->final_loss - none->final_loss), 0.02 * none->final_loss,
                      "final loss %g vs none %g", fp->final_loss, none->final_loss);
    }
    strat_run_free(&r);
    oomb_scenario_destroy(sc);
    strat_remove_scenario(path);
}

Test(fp16, conv_batchnorm_maxpool_residual)
{
    check_kinds("[{conv2d: {out: 8, kernel: 3, pad: 1}}, batchnorm, relu, "
                "{residual: [{conv2d: {out: 8, kernel: 3, pad: 1}}, batchnorm]}, relu, "
                "{maxpool: 2}, flatten, {linear: 4}]",
                "[3, 8, 8]");
}

Test(fp16, transformer_block)
{
    check_kinds("[{linear: 48}, {transformer: {heads: 2, mlp: 2}}, layernorm, flatten, "
                "{linear: 4}]",
                "[8, 12]");
}
