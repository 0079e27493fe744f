/*
 * The offload strategy plugin through the real runner: gradients, weights
 * and losses bit for bit none's on every layer kind; the exact device and
 * host peaks of the MLP at batch 256; the bytes moved each way; the
 * optimizer on the host (no optimizer bytes on the device); and the
 * strategy's parameters checked when the scenario loads.
 */
#include "strategy_run.h"

static const char *mlp_scenario(char *buf, size_t len)
{
    return strat_write_scenario(
        buf, len, "offload-mlp.yaml",
        "name: offload-mlp\n"
        "model:\n"
        "  input: 784\n"
        "  classes: 10\n"
        "  layers: [{linear: 1024}, relu, {linear: 1024}, relu, {linear: 1024}, relu,\n"
        "           {linear: 1024}, relu, {linear: 10}]\n"
        "input: {kind: synthetic, seed: 42}\n"
        "mode: train\n"
        "batch: 256\n"
        "optimizer: {name: adam, lr: 1e-3}\n"
        "steps: {warmup: 1, measured: 2}\n"
        "strategies:\n"
        "  - none\n"
        "  - offload\n"
        "  - {plugin: offload, label: opt, params: {optimizer: 1}}\n"
        "  - {plugin: offload, label: optonly, params: {activations: 0, optimizer: 1}}\n"
        "  - {plugin: offload, label: pageable, params: {space: pageable, min_bytes: 0}}\n");
}

/*
 * mlp.yaml's model at batch 256. Device activations: the input x (784 per
 * sample, the caller's batch, never moved) and, at the peak (the backward of
 * the last ReLU), that ReLU's saved output, the gradients of its output and
 * input, and the prefetched input of the Linear before it: 4 x 1024.
 * Host: the four ReLU outputs (each kept by its ReLU and the next Linear),
 * 4 x 1024 per sample, all there at the end of forward. Each step copies
 * them down and back once.
 */
Test(offload, mlp_device_and_host_peaks_and_identical_gradients)
{
    char path[256];
    mlp_scenario(path, sizeof path);
    struct strat_run r;
    strat_run(&r, path);
    const int64_t B = 256;
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *off = strat_find(&r, "offload", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *opt = strat_find(&r, "opt", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *optonly = strat_find(&r, "optonly", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *pg = strat_find(&r, "pageable", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(none);
    strat_expect_ok(off);
    strat_expect_ok(opt);
    strat_expect_ok(optonly);
    strat_expect_ok(pg);

    const uint64_t dev_act = (uint64_t)(4 * B * (784 + 4 * 1024));
    const uint64_t host_act = (uint64_t)(4 * B * 4 * 1024);
    cr_expect_eq(none->peak_by_tag[OOMB_TAG_ACTIVATIONS], (uint64_t)(4 * B * (784 + 6 * 1024)));
    cr_expect_eq(off->peak_by_tag[OOMB_TAG_ACTIVATIONS], dev_act, "device activations %llu",
                 (unsigned long long)off->peak_by_tag[OOMB_TAG_ACTIVATIONS]);
    cr_expect_eq(off->space_peak_by_tag[OOMB_SPACE_HOST_PINNED][OOMB_TAG_ACTIVATIONS], host_act);
    cr_expect_eq(off->space_peak_by_tag[0][OOMB_TAG_ACTIVATIONS], host_act);
    cr_expect_eq(off->space_peak[OOMB_SPACE_HOST], 0);
    /* 3 steps, each moving the four ReLU outputs down and back */
    cr_expect_eq(off->to_host_bytes, 3 * host_act);
    cr_expect_eq(off->to_device_bytes, 3 * host_act);
    cr_expect_eq(off->n_copies, 3 * 8);
    /* pageable memory, no size floor: the same tensors (all are 1 MiB) */
    cr_expect_eq(pg->space_peak_by_tag[OOMB_SPACE_HOST][OOMB_TAG_ACTIVATIONS], host_act);
    cr_expect_eq(pg->space_peak[OOMB_SPACE_HOST_PINNED], 0);
    cr_expect_eq(pg->peak_by_tag[OOMB_TAG_ACTIVATIONS], dev_act);

    /* the same kernels on the same values: bit for bit */
    const struct oomb_run_result *all[] = {off, opt, optonly, pg};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(all[i]->grad_rel_err, 0.0, "%s grad_rel_err %g", all[i]->strategy,
                     all[i]->grad_rel_err);
        cr_expect_eq(all[i]->weight_rel_err, 0.0, "%s weight_rel_err %g", all[i]->strategy,
                     all[i]->weight_rel_err);
        cr_expect_eq(all[i]->loss_rel_err, 0.0, "%s loss_rel_err %g", all[i]->strategy,
                     all[i]->loss_rel_err);
    }

    /* ZeRO-Offload: no optimizer state on the device; on the host Adam's two
     * moments, the FP32 master weights and a gradient buffer */
    const uint64_t P4 = none->peak_by_tag[OOMB_TAG_WEIGHTS];
    cr_expect_eq(P4, (uint64_t)4 * (785 * 1024 + 3 * 1025 * 1024 + 1025 * 10));
    for (int i = 1; i < 3; i++) {
        const struct oomb_run_result *x = all[i];
        cr_expect_eq(x->peak_by_tag[OOMB_TAG_OPTIMIZER], 0, "%s", x->strategy);
        cr_expect_eq(x->peak_by_tag[OOMB_TAG_WEIGHTS], P4);
        cr_expect_eq(x->peak_by_tag[OOMB_TAG_GRADS], P4);
        cr_expect_eq(x->space_peak_by_tag[OOMB_SPACE_HOST_PINNED][OOMB_TAG_OPTIMIZER], 2 * P4);
        cr_expect_eq(x->space_peak_by_tag[OOMB_SPACE_HOST_PINNED][OOMB_TAG_WEIGHTS], P4);
        cr_expect_eq(x->space_peak_by_tag[OOMB_SPACE_HOST_PINNED][OOMB_TAG_GRADS], P4);
        cr_expect_eq(
            x->peak_bytes,
            none->peak_bytes - 2 * P4 -
                (none->peak_by_tag[OOMB_TAG_ACTIVATIONS] - x->peak_by_tag[OOMB_TAG_ACTIVATIONS]),
            "%s peak %llu", x->strategy, (unsigned long long)x->peak_bytes);
    }
    cr_expect_eq(optonly->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                 none->peak_by_tag[OOMB_TAG_ACTIVATIONS]);
    cr_expect_eq(none->space_peak[0], 0);
    cr_expect_eq(none->n_copies, 0);
    strat_run_free(&r);
    strat_remove_scenario(path);
}

/* Every layer kind (convolution, batch norm, pooling with its positions,
 * residual, layer norm, attention, GELU) with nothing kept back by size:
 * the saved tensors go to the host and come back unchanged. */
Test(offload, every_layer_kind_matches_none_exactly)
{
    char path[256];
    strat_write_scenario(
        path, sizeof path, "offload-kinds.yaml",
        "name: offload-kinds\n"
        "model:\n"
        "  input: [3, 8, 8]\n"
        "  classes: 5\n"
        "  layers:\n"
        "    - {conv2d: {out: 4, kernel: 3, pad: 1}}\n"
        "    - batchnorm\n"
        "    - relu\n"
        "    - {residual: [{conv2d: {out: 4, kernel: 3, pad: 1}}, batchnorm, relu]}\n"
        "    - relu\n"
        "    - {maxpool: 2}\n"
        "    - flatten\n"
        "    - {linear: 32}\n"
        "    - gelu\n"
        "    - {linear: 5}\n"
        "input: {kind: synthetic, seed: 7}\n"
        "mode: train\n"
        "batch: 12\n"
        "optimizer: {name: sgd, lr: 0.05, momentum: 0.9}\n"
        "steps: {warmup: 1, measured: 2}\n"
        "strategies:\n"
        "  - none\n"
        "  - {plugin: offload, params: {min_bytes: 0}}\n");
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *none = strat_find(&r, "none", OOMB_MODE_TRAIN, 0);
    const struct oomb_run_result *off = strat_find(&r, "offload", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(none);
    strat_expect_ok(off);
    cr_expect_eq(off->grad_rel_err, 0.0, "grad_rel_err %g", off->grad_rel_err);
    cr_expect_eq(off->weight_rel_err, 0.0, "weight_rel_err %g", off->weight_rel_err);
    cr_expect_eq(off->loss_rel_err, 0.0);
    cr_expect_lt(off->peak_by_tag[OOMB_TAG_ACTIVATIONS], none->peak_by_tag[OOMB_TAG_ACTIVATIONS]);
    cr_expect_gt(off->space_peak_by_tag[0][OOMB_TAG_ACTIVATIONS], 0);
    cr_expect_eq(off->to_host_bytes, off->to_device_bytes);
    strat_run_free(&r);
    strat_remove_scenario(path);
}

/* The transformer block: layer norm, attention (its probabilities saved),
 * residuals. */
Test(offload, attention_matches_none_exactly)
{
    char path[256];
    strat_write_scenario(path, sizeof path, "offload-attn.yaml",
                         "name: offload-attn\n"
                         "model:\n"
                         "  input: [8, 16]\n"
                         "  classes: 4\n"
                         "  layers:\n"
                         "    - {transformer: {heads: 2, mlp: 2}}\n"
                         "    - layernorm\n"
                         "    - flatten\n"
                         "    - {linear: 4}\n"
                         "input: {kind: synthetic, seed: 5}\n"
                         "mode: train\n"
                         "batch: 6\n"
                         "optimizer: {name: adam, lr: 1e-3}\n"
                         "steps: {warmup: 0, measured: 2}\n"
                         "strategies:\n"
                         "  - none\n"
                         "  - {plugin: offload, params: {min_bytes: 0, optimizer: 1}}\n");
    struct strat_run r;
    strat_run(&r, path);
    const struct oomb_run_result *off = strat_find(&r, "offload", OOMB_MODE_TRAIN, 0);
    strat_expect_ok(off);
    cr_expect_eq(off->grad_rel_err, 0.0, "grad_rel_err %g", off->grad_rel_err);
    cr_expect_eq(off->weight_rel_err, 0.0, "weight_rel_err %g", off->weight_rel_err);
    cr_expect_eq(off->peak_by_tag[OOMB_TAG_OPTIMIZER], 0);
    strat_run_free(&r);
    strat_remove_scenario(path);
}
