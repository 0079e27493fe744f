/*
 * The reference strategy keeps and frees what PyTorch eager keeps: its
 * parameter state equals the analytic count (4P weights and grads, 8P Adam
 * or 4P SGD momentum, 4B labels), and its activation peak, in training and
 * in inference, equals the tensor-by-tensor simulation of PyTorch's rules in
 * tests/eager_model.h, for models that use every layer kind, and equals the
 * closed forms worked out in docs/memory-model.md for the shipped models.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "eager_model.h"
#include "scenario.h"
#include "test_helpers.h"

struct expect {
    uint64_t weights, grads, optimizer, activations, other, total;
};

static struct expect analytic(const struct oomb_scenario *sc, enum oomb_mode mode, int64_t B)
{
    const struct oomb_model *m = &sc->model;
    uint64_t P = 0, NB = 0;
    for (int l = 0; l < m->n_layers; l++) {
        P += (uint64_t)m->layers[l]->n_params;
        NB += (uint64_t)m->layers[l]->n_buffers;
    }
    struct expect e = {0};
    e.weights = 4 * P + 4 * NB; /* parameters, then batch norm's running statistics */
    e.other = 4 * (uint64_t)B;  /* int32 labels */
    if (mode == OOMB_MODE_TRAIN) {
        e.grads = 4 * P;
        e.optimizer = (sc->optimizer == OOMB_OPT_ADAM ? 8 : 4) * P;
    }
    e.activations = (uint64_t)em_peak(m, B, 4, mode == OOMB_MODE_TRAIN, 0, NULL);
    return e;
}

static void check_scenario(const char *path, const char *dir)
{
    char err[2048] = "";
    struct oomb_scenario *sc;
    cr_assert_eq(oomb_scenario_load(path, &sc, err, sizeof err), OOMB_OK, "%s", err);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    int checked = 0;
    for (int i = 0; i < res.n_runs; i++) {
        const struct oomb_run_result *r = &res.runs[i];
        if (strcmp(r->plugin, "none") != 0)
            continue;
        cr_assert_eq(r->outcome, OOMB_OUTCOME_OK, "%s", r->reason);
        struct expect e = analytic(sc, r->mode, r->batch);
        cr_assert_eq(r->peak_by_tag[OOMB_TAG_WEIGHTS], e.weights);
        cr_assert_eq(r->peak_by_tag[OOMB_TAG_GRADS], e.grads);
        cr_assert_eq(r->peak_by_tag[OOMB_TAG_OPTIMIZER], e.optimizer);
        cr_assert_eq(r->peak_by_tag[OOMB_TAG_ACTIVATIONS], e.activations,
                     "batch %lld mode %d: activations %llu, analytic %llu", (long long)r->batch,
                     (int)r->mode, (unsigned long long)r->peak_by_tag[OOMB_TAG_ACTIVATIONS],
                     (unsigned long long)e.activations);
        cr_assert_eq(r->peak_by_tag[OOMB_TAG_OTHER], e.other);
        if (r->peak_by_tag[OOMB_TAG_WORKSPACE] == 0) /* convolutions and attention use some */
            cr_assert_eq(r->peak_bytes,
                         e.weights + e.grads + e.optimizer + e.activations + e.other);
        checked++;
    }
    cr_assert_gt(checked, 0);
    oomb_results_free(&res);
    oomb_scenario_destroy(sc);
}

/* A shipped scenario with `none` alone: its lines up to `strategies:`
 * without those whose key starts one of `drop` (NULL-terminated), then
 * `extra`, written to dir/none.yaml; its path in path. */
static void none_only(const char *scenario, const char *const *drop, const char *extra,
                      const char *dir, char *path, size_t path_len)
{
    FILE *f = fopen(scenario, "r");
    cr_assert_not_null(f, "%s", scenario);
    static char text[1 << 16], out[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *cut = strstr(text, "\nstrategies:");
    cr_assert_not_null(cut);
    cut[1] = '\0';
    size_t o = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int skip = 0;
        for (int i = 0; drop && drop[i]; i++)
            skip |= strncmp(line, drop[i], strlen(drop[i])) == 0;
        if (!skip)
            o += (size_t)snprintf(out + o, sizeof out - o, "%s\n", line);
    }
    snprintf(out + o, sizeof out - o, "%sstrategies: [none]\n", extra);
    th_write(dir, "none.yaml", out, path, path_len);
}

/* The default scenario with its strategies cut down to `none` (the others
 * have their own suites): same model, modes, batches and optimizer. */
Test(none, default_scenario_memory_is_analytic, .timeout = 300)
{
    char dir[PATH_MAX], path[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    none_only(OOMB_SOURCE_DIR "/scenarios/mlp.yaml", NULL, "", dir, path, sizeof path);
    check_scenario(path, dir);
    th_rmtree(dir);
}

Test(none, mixed_model_train_and_infer_sgd_and_adam)
{
    static const char *opt[] = {"sgd", "adam"};
    for (int o = 0; o < 2; o++) {
        char dir[PATH_MAX], path[PATH_MAX], text[1024];
        th_mkdtemp(dir, sizeof dir);
        snprintf(text, sizeof text,
                 "model:\n  input: 20\n  classes: 5\n  layers: [{linear: 32}, relu, "
                 "{linear: 48}, gelu, {linear: {out: 24, bias: false}}, relu, {linear: 5}]\n"
                 "mode: [train, infer]\nbatch: [8, 13]\noptimizer: %s\n"
                 "steps: {warmup: 1, measured: 2}\nstrategies: [none]\n",
                 opt[o]);
        th_write(dir, "m.yaml", text, path, sizeof path);
        check_scenario(path, dir);
        th_rmtree(dir);
    }
}

Test(none, loss_decreases_when_training)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "t.yaml",
             "model: {input: 32, classes: 4, layers: [{linear: 64}, relu, {linear: 4}]}\n"
             "mode: train\nbatch: 64\noptimizer: {name: adam, lr: 0.01}\n"
             "steps: {warmup: 0, measured: 40}\nstrategies: [none]\n",
             path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_run_result *r = th_find(&res, "none", OOMB_MODE_TRAIN, 64);
    cr_assert_eq(r->n_losses, 40);
    cr_assert_lt(r->losses[39], 0.7 * r->losses[0], "loss %g -> %g", r->losses[0], r->losses[39]);
    cr_assert(r->has_accuracy);
    cr_assert_gt(r->accuracy, 0.4, "accuracy %g on a learnable task", r->accuracy);
    oomb_results_free(&res);
    th_rmtree(dir);
}

/* One small model per layer kind, in training and inference, at two
 * batches: the engine's activation peak is the eager simulation's. */
static void check_model_text(const char *layers, const char *input, int classes)
{
    char dir[PATH_MAX], path[PATH_MAX], text[2048];
    th_mkdtemp(dir, sizeof dir);
    snprintf(text, sizeof text,
             "model:\n  input: %s\n  classes: %d\n  layers: %s\n"
             "mode: [train, infer]\nbatch: [3, 8]\noptimizer: adam\n"
             "steps: {warmup: 1, measured: 1}\nstrategies: [none]\n",
             input, classes, layers);
    th_write(dir, "kind.yaml", text, path, sizeof path);
    check_scenario(path, dir);
    th_rmtree(dir);
}

Test(none, linear_relu_gelu_per_token_linear)
{
    check_model_text("[{linear: 12}, gelu, {linear: 9}, relu, {linear: 4}]", "7", 4);
    check_model_text("[{linear: 6}, gelu, layernorm, flatten, {linear: 3}]", "[5, 4]", 3);
}

Test(none, conv2d_batchnorm_relu_maxpool_flatten)
{
    check_model_text("[{conv2d: {out: 4, kernel: 3, pad: 1}}, batchnorm, relu, {maxpool: 2}, "
                     "{conv2d: {out: 6, kernel: 3, stride: 2}}, relu, flatten, {linear: 5}]",
                     "[2, 10, 10]", 5);
}

Test(none, batchnorm_and_layernorm_on_flat_features)
{
    check_model_text("[{linear: 16}, batchnorm, relu, {linear: 8}, layernorm, gelu, {linear: 3}]",
                     "10", 3);
}

Test(none, residual_blocks_share_their_input_gradient)
{
    check_model_text("[{conv2d: {out: 4, kernel: 3, pad: 1}}, relu, "
                     "{residual: [{conv2d: {out: 4, kernel: 3, pad: 1}}, batchnorm, relu]}, "
                     "relu, flatten, {residual: [{linear: 64}, gelu]}, {linear: 3}]",
                     "[1, 4, 4]", 3);
}

Test(none, attention_and_transformer_blocks)
{
    check_model_text("[{linear: 8}, {attention: {heads: 2}}, layernorm, flatten, {linear: 3}]",
                     "[5, 6]", 3);
    check_model_text("[{linear: 8}, {transformer: {heads: 2, mlp: 2, causal: true}}, "
                     "layernorm, flatten, {linear: 3}]",
                     "[5, 6]", 3);
}

/* A model whose first layers have no parameters: nothing before the first
 * parameter needs a gradient, so those layers keep nothing (PyTorch records
 * no node for them). */
Test(none, layers_before_the_first_parameter_keep_nothing)
{
    check_model_text("[relu, gelu, {linear: 6}, relu, {linear: 2}]", "9", 2);
}

/*
 * The shipped models against the closed forms of docs/memory-model.md
 * (activation peaks in training, 4-byte floats; each term names the
 * PyTorch tensors it stands for).
 */
/* none's activation peak for the model of a shipped scenario, on synthetic
 * data, one step at batch B in `mode`. */
static uint64_t engine_peak(const char *scenario, int64_t B, enum oomb_mode mode)
{
    static const char *const drop[] = {"mode:", "batch:", "steps:", "eval:", "input:", NULL};
    char dir[PATH_MAX], path[PATH_MAX], extra[256], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    snprintf(extra, sizeof extra,
             "input: {kind: synthetic, seed: 1}\nmode: %s\nbatch: %lld\n"
             "steps: {warmup: 0, measured: 1}\n",
             mode == OOMB_MODE_TRAIN ? "train" : "infer", (long long)B);
    none_only(scenario, drop, extra, dir, path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_run_result *r = th_find(&res, "none", mode, B);
    cr_assert_not_null(r);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_OK, "%s", r->reason);
    uint64_t act = r->peak_by_tag[OOMB_TAG_ACTIVATIONS];
    oomb_results_free(&res);
    th_rmtree(dir);
    return act;
}

Test(none, shipped_models_match_the_documented_closed_forms, .timeout = 300)
{
    /* mlp.yaml, 784-1024x4-10: the peak is relu 4's backward: x (B*784), the
     * four ReLU outputs (4*B*1024; each saved by its ReLU and the next
     * Linear), grad of ReLU 4's output and grad of its input (2*B*1024). */
    for (int64_t B = 64; B <= 256; B *= 4)
        cr_expect_eq(engine_peak(OOMB_SOURCE_DIR "/scenarios/mlp.yaml", B, OOMB_MODE_TRAIN),
                     (uint64_t)(4 * B * (784 + 4 * 1024 + 2 * 1024)), "mlp batch %lld",
                     (long long)B);
    /* inference: x (held by the caller), a Linear's output and the ReLU's */
    cr_expect_eq(engine_peak(OOMB_SOURCE_DIR "/scenarios/mlp.yaml", 256, OOMB_MODE_INFER),
                 (uint64_t)(4 * 256 * (784 + 2 * 1024)));
    /* fmnist-cnn.yaml at B = 128 (per sample: x 784, conv 1's output 16x28x28 = 12544,
     * conv 2's 32x14x14 = 6272): the peak is relu 2's backward. Alive: x (saved by conv 1),
     * conv 1's output (batch norm 1), relu 1's output (relu 1 and max pool 1), max pool 1's
     * positions of the maxima (16x14x14 int32; PyTorch: int64), pool 1's output (conv 2),
     * conv 2's output (batch norm 2), relu 2's output (relu 2 and max pool 2), the
     * gradients of relu 2's output and input; and the two batch norms' save_mean and
     * save_invstd (2 x 16 and 2 x 32 floats, not per sample). */
    {
        const int64_t B = 128;
        uint64_t want = (uint64_t)(4 * B * (784 + 2 * 12544 + 3136 + 3136 + 2 * 6272 + 2 * 6272)) +
                        4 * 2 * (16 + 32);
        cr_expect_eq(engine_peak(OOMB_SOURCE_DIR "/scenarios/fmnist-cnn.yaml", B, OOMB_MODE_TRAIN),
                     want);
    }
    /* resnet.yaml at B = 32 (F = 32x32x32 and f = 32x16x16 floats per sample): the peak
     * is the backward of the relu after residual block 2. Alive: x (3x32x32, conv 0);
     * conv 0's output (bn 0); relu 0's output (relu 0, block 1's conv a); block 1's conv
     * a output (bn a), its relu's output (relu, conv b), conv b's output (bn b); the
     * output of the relu after block 1 (that relu and max pool 1) and max pool 1's int32
     * positions (F/4); pool 1's output (block 2's conv a); block 2's conv a output, relu
     * output and conv b output (f each); the output of the relu after block 2 (that relu
     * and max pool 2); that relu's output and input gradients (2f); the five batch norms'
     * save_mean/save_invstd (5 x 2 x 32 floats). */
    {
        const int64_t B = 32, F = 32 * 32 * 32, f = 32 * 16 * 16;
        uint64_t want =
            (uint64_t)(4 * B * (3 * 32 * 32 + 6 * F + F / 4 + 5 * f + 2 * f)) + 4 * 5 * 2 * 32;
        cr_expect_eq(engine_peak(OOMB_SOURCE_DIR "/scenarios/resnet.yaml", B, OOMB_MODE_TRAIN),
                     want);
    }
    /* transformer.yaml at B = 64 (T = 32 tokens, C = 128, H = 4; t = T*C): the peak is the
     * GELU's backward in block 2. Alive, per sample: x (T*64, saved by linear 0); linear
     * 0's output (block 1's first layer norm); block 1 whole: each layer norm's mean and
     * rstd (2T each), the norms' outputs (t each, saved by the qkv projection and by fc1),
     * qkv (3t, attention core), probabilities (H*T*T, core), the heads' output (t, output
     * projection), the attention residual's output (t, second layer norm), fc1's output
     * (4t, GELU), the GELU's output (4t, fc2); block 1's output (t, block 2's first norm);
     * block 2 as block 1 up to fc1's output (no GELU output: fc2 has run its backward);
     * the gradients: the MLP residual's (t, shared with its skip), the GELU's output and
     * input (4t each). */
    {
        const int64_t B = 64, T = 32, t = 32 * 128, P = 4 * T * T;
        const int64_t block1 = 2 * 2 * T + 2 * t + 3 * t + P + t + t + 4 * t + 4 * t;
        const int64_t block2 = 2 * 2 * T + 2 * t + 3 * t + P + t + t + 4 * t;
        uint64_t want = (uint64_t)(4 * B * (T * 64 + t + block1 + t + block2 + t + 8 * t));
        cr_expect_eq(engine_peak(OOMB_SOURCE_DIR "/scenarios/transformer.yaml", B, OOMB_MODE_TRAIN),
                     want);
    }
}
