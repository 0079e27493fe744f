/*
 * The `quantize` strategy through the runner: scenarios/quantize.yaml (an MLP
 * 256-512-512-10 at batch 128, train and infer) against `none`, with the
 * exact weight and optimizer bytes of the int8 formats, the numerics, and the
 * not-applicable and invalid-parameter paths.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_helpers.h"

/* The linear layers of scenarios/quantize.yaml: (in, out). */
static const int64_t layers[][2] = {{256, 512}, {512, 512}, {512, 10}};
#define N_LAYERS 3
#define BATCH 128

static void run_scenario(const char *path, char *dir, size_t dlen, struct oomb_results *res,
                         struct oomb_run_summary *sum)
{
    char err[2048] = "";
    th_mkdtemp(dir, dlen);
    cr_assert_eq(th_run(dir, path, res, sum, err, sizeof err), OOMB_OK, "%s", err);
}

Test(quantize, infer_stores_int8_weights_with_exact_bytes, .timeout = 120)
{
    char dir[PATH_MAX];
    struct oomb_results res;
    struct oomb_run_summary sum;
    run_scenario(OOMB_SOURCE_DIR "/scenarios/quantize.yaml", dir, sizeof dir, &res, &sum);
    cr_assert_eq(sum.n_failed, 0);
    cr_assert_eq(sum.n_checks_failed, 0, "a check of scenarios/quantize.yaml failed");

    const struct oomb_run_result *q = th_find(&res, "quantize", OOMB_MODE_INFER, BATCH);
    const struct oomb_run_result *n = th_find(&res, "none", OOMB_MODE_INFER, BATCH);
    cr_assert_eq(q->outcome, OOMB_OUTCOME_OK, "%s", q->reason);
    uint64_t want = 0, dense = 0, max_params = 0, max_acc = 0;
    for (int l = 0; l < N_LAYERS; l++) {
        uint64_t C = (uint64_t)layers[l][0], OC = (uint64_t)layers[l][1];
        want += OC * C + 4 * OC + 4 * OC; /* int8 W, scales, FP32 bias */
        dense += 4 * (OC * C + OC);
        if (OC * C + OC > max_params)
            max_params = OC * C + OC;
        if (4 * BATCH * OC > max_acc)
            max_acc = 4 * BATCH * OC;
    }
    cr_assert_eq(n->peak_by_tag[OOMB_TAG_WEIGHTS], dense);
    cr_assert_eq(q->peak_by_tag[OOMB_TAG_WEIGHTS], want, "weights %llu, want %llu",
                 (unsigned long long)q->peak_by_tag[OOMB_TAG_WEIGHTS], (unsigned long long)want);
    cr_assert_leq((double)want, 0.27 * (double)dense);
    /* the FP32 staging of one layer at create, or the int32 accumulator */
    uint64_t ws = 4 * max_params > max_acc ? 4 * max_params : max_acc;
    cr_assert_eq(q->peak_by_tag[OOMB_TAG_WORKSPACE], ws);
    cr_assert_eq(q->peak_by_tag[OOMB_TAG_GRADS], 0);
    cr_assert_eq(q->peak_by_tag[OOMB_TAG_OPTIMIZER], 0);

    /* int8 rounding moves the logits by about 1%, not by 10%: each operand within half a
     * code (1/254 of its row's maximum, about 1/254 x sqrt(3) of its RMS for uniform data),
     * independent errors of the two operands of a dot product add in quadrature, and 3
     * layers again: about 1e-2. Limits 5% (output), 1% (mean loss: first order in the
     * logit error times the small logits) and 2 points of accuracy; measured 0.0136,
     * 3.1e-5 and 0.05 points over OpenBLAS core types and thread counts. */
    cr_expect(isfinite(q->output_rel_err),
              "output_rel_err not reported (is the child's numerics section written?)");
    cr_expect(q->output_rel_err > 0 && q->output_rel_err < 0.05, "output_rel_err %g",
              q->output_rel_err);
    cr_expect(fabs(q->loss_rel_err) < 0.01, "loss_rel_err %g", q->loss_rel_err);
    cr_expect(fabs(q->accuracy_delta) < 0.02, "accuracy_delta %g", q->accuracy_delta);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(quantize, train_keeps_adam_state_in_8_bits, .timeout = 120)
{
    char dir[PATH_MAX];
    struct oomb_results res;
    struct oomb_run_summary sum;
    run_scenario(OOMB_SOURCE_DIR "/scenarios/quantize.yaml", dir, sizeof dir, &res, &sum);
    const struct oomb_run_result *q = th_find(&res, "quantize", OOMB_MODE_TRAIN, BATCH);
    const struct oomb_run_result *n = th_find(&res, "none", OOMB_MODE_TRAIN, BATCH);
    cr_assert_eq(q->outcome, OOMB_OUTCOME_OK, "%s", q->reason);
    const int64_t block = 256;
    uint64_t P = 0, blocks = 0;
    for (int l = 0; l < N_LAYERS; l++) {
        int64_t C = layers[l][0], OC = layers[l][1];
        P += (uint64_t)(OC * C + OC);
        blocks += (uint64_t)((OC * C + block - 1) / block + (OC + block - 1) / block);
    }
    cr_assert_eq(n->peak_by_tag[OOMB_TAG_OPTIMIZER], 8 * P);
    cr_assert_eq(q->peak_by_tag[OOMB_TAG_OPTIMIZER], 2 * P + 8 * blocks);
    cr_assert_leq((double)q->peak_by_tag[OOMB_TAG_OPTIMIZER],
                  0.27 * (double)n->peak_by_tag[OOMB_TAG_OPTIMIZER]);
    /* everything else is none's */
    cr_assert_eq(q->peak_by_tag[OOMB_TAG_WEIGHTS], n->peak_by_tag[OOMB_TAG_WEIGHTS]);
    cr_assert_eq(q->peak_by_tag[OOMB_TAG_GRADS], n->peak_by_tag[OOMB_TAG_GRADS]);
    cr_assert_eq(q->peak_by_tag[OOMB_TAG_ACTIVATIONS], n->peak_by_tag[OOMB_TAG_ACTIVATIONS]);

    /* 8-bit Adam: a quality bound, not rounding (scenarios/quantize.yaml); measured
     * <= 1.8e-4 */
    cr_expect(q->loss_rel_err <= 0.02, "loss_rel_err %g", q->loss_rel_err);
    /* same weights and data at step 0, and the same kernel calls (only the optimizer
     * state differs, after the gradients): bit-identical */
    cr_expect(q->grad_rel_err == 0.0, "grad_rel_err %g", q->grad_rel_err);
    /* the moments' 8-bit codes (steps of 1/127, 1/255 of a block's maximum) change each
     * update's direction by about 1%, over 32 updates the weights by a few percent of
     * their movement; measured 0.0154 */
    cr_expect(isfinite(q->weight_rel_err) && q->weight_rel_err < 0.1, "weight_rel_err %g",
              q->weight_rel_err);
    oomb_results_free(&res);
    th_rmtree(dir);
}

#define SMALL                                                                                      \
    "model: {input: 32, classes: 4, layers: [{linear: 64}, relu, {linear: 4}]}\n"                  \
    "input: {kind: synthetic, seed: 3}\nbatch: 16\nsteps: {warmup: 1, measured: 2}\n"

Test(quantize, sgd_is_not_applicable_in_train, .timeout = 60)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "sgd.yaml",
             SMALL "mode: [train, infer]\noptimizer: sgd\nstrategies: [none, quantize]\n", path,
             sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_run_result *r = th_find(&res, "quantize", OOMB_MODE_TRAIN, 16);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_NOT_APPLICABLE, "%s", r->reason);
    cr_assert(strstr(r->reason, "Adam"), "%s", r->reason);
    /* inference has no optimizer: it runs */
    r = th_find(&res, "quantize", OOMB_MODE_INFER, 16);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_OK, "%s", r->reason);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(quantize, rejects_a_block_of_zero, .timeout = 60)
{
    /* below the declared minimum: refused when the scenario loads, nothing runs */
    th_expect_load_rejected(SMALL "strategies:\n  - none\n  - {plugin: quantize, params: {block: "
                                  "0}}\n",
                            "block", "must be [1, 16777216]");
}
