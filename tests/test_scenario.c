/*
 * Scenario loader: good files load with the documented values and defaults;
 * each bad file fails with OOMB_ERR_PARSE and a message naming the exact
 * line:column and key; byte-size and duration parsers.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data.h"
#include "scenario.h"

#define DATA OOMB_SOURCE_DIR "/tests/data/scenarios"

static struct oomb_scenario *load_ok(const char *path)
{
    struct oomb_scenario *sc = NULL;
    char err[512] = "";
    int rc = oomb_scenario_load(path, &sc, err, sizeof err);
    cr_assert_eq(rc, OOMB_OK, "%s: %s", path, err);
    cr_assert_not_null(sc);
    return sc;
}

/* ------------------------------------------------------------ good files */

Test(scenario, loads_default_mlp)
{
    struct oomb_scenario *sc = load_ok(OOMB_SOURCE_DIR "/scenarios/mlp.yaml");
    cr_expect_str_eq(sc->name, "mlp");
    cr_expect_eq(sc->model.struct_size, sizeof(struct oomb_model));
    cr_expect_eq(sc->model.input_features, 784);
    cr_expect_eq(sc->model.classes, 10);
    cr_expect_geq(sc->model.n_layers, 9);
    cr_expect_eq((const void *)sc->model.layers, (const void *)sc->layer_ptrs);
    int hidden = 0;
    for (int i = 0; i < sc->model.n_layers - 1; i++)
        hidden += sc->model.layers[i]->kind == OOMB_LAYER_LINEAR;
    cr_expect_geq(hidden, 4);
    cr_expect_eq(sc->model.layers[sc->model.n_layers - 1]->out_features, 10);
    cr_expect_eq(sc->optimizer, OOMB_OPT_ADAM);
    cr_assert_eq(sc->n_batches, 2);
    cr_expect_eq(sc->batches[0], 64);
    cr_expect_eq(sc->batches[1], 256);
    cr_expect_eq(sc->budget_bytes, 2ull << 30);
    cr_expect_eq(sc->backend, OOMB_BACKEND_CPU);
    cr_expect_eq(sc->timeout_s, 120.0);
    cr_expect_eq(sc->modes, OOMB_MODE_TRAIN | OOMB_MODE_INFER);
    cr_assert_geq(sc->n_strategies, 8, "the default scenario runs every strategy");
    cr_expect_str_eq(sc->strategies[0].plugin, "none");
    cr_expect_gt(sc->n_checks, 0);
    oomb_scenario_destroy(sc);
}

Test(scenario, minimal_file_gets_defaults)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/minimal.yaml");
    cr_expect_str_eq(sc->name, "minimal"); /* the file stem */
    cr_expect_str_eq(sc->description, "");
    cr_expect_eq(sc->input_kind, OOMB_INPUT_SYNTHETIC);
    cr_expect_eq(sc->seed, 42);
    cr_expect_eq(sc->separation, OOMB_DATA_SEPARATION);
    cr_expect_eq(sc->init_kaiming, 0);
    cr_expect_eq(sc->modes, OOMB_MODE_TRAIN);
    cr_expect_eq(sc->optimizer, OOMB_OPT_ADAM);
    cr_expect_eq(sc->lr, 1e-3);
    cr_expect_eq(sc->beta1, 0.9);
    cr_expect_eq(sc->beta2, 0.999);
    cr_expect_eq(sc->eps, 1e-8);
    cr_expect_eq(sc->momentum, 0.9);
    cr_expect_eq(sc->weight_decay, 0.0);
    cr_expect_eq(sc->warmup_steps, 1);
    cr_expect_eq(sc->measured_steps, 5);
    cr_expect_eq(sc->budget_bytes, 0);
    cr_expect_eq(sc->backend, OOMB_BACKEND_CPU);
    cr_expect_eq(sc->device, 0);
    cr_expect_eq(sc->timeout_s, 300.0);
    cr_expect_eq(sc->n_checks, 0);
    cr_expect_eq(sc->eval_samples, 0, "no held-out samples by default on synthetic input");
    cr_expect_eq(sc->epochs, 0.0);
    cr_expect_eq(oomb_scenario_measured_steps(sc, 4), 5);
    cr_expect_eq(sc->input_rank, 1);
    cr_expect_eq(sc->input_shape[0], 8);
    cr_expect_eq(sc->n_nested, 0);
    cr_assert_eq(sc->model.n_layers, 1);
    const struct oomb_layer *l = sc->model.layers[0];
    cr_expect_eq(l->struct_size, sizeof(struct oomb_layer));
    cr_expect_eq(l->kind, OOMB_LAYER_LINEAR);
    cr_expect_eq(l->in_features, 8);
    cr_expect_eq(l->out_features, 2);
    cr_expect_eq(l->has_bias, 1);
    cr_expect_eq(l->n_params, 2 * 8 + 2);
    cr_assert_eq(sc->n_strategies, 1);
    cr_expect_str_eq(sc->strategies[0].label, "none");
    cr_expect_eq(sc->strategies[0].n_params, 0);
    oomb_scenario_destroy(sc);
}

Test(scenario, full_file_sets_every_key)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/full.yaml");
    cr_expect_str_eq(sc->name, "full-example");
    cr_expect_str_eq(sc->description, "every key");
    cr_expect_eq(sc->input_kind, OOMB_INPUT_FASHION_MNIST);
    cr_expect_eq(sc->seed, 7, "input.seed overrides the top-level seed");
    cr_expect_eq(sc->modes, OOMB_MODE_TRAIN | OOMB_MODE_INFER);
    cr_assert_eq(sc->n_batches, 3);
    cr_expect_eq(sc->batches[2], 32);
    cr_expect_eq(sc->optimizer, OOMB_OPT_SGD);
    cr_expect_eq(sc->lr, 0.05);
    cr_expect_eq(sc->momentum, 0.5);
    cr_expect_eq(sc->weight_decay, 1e-4);
    cr_expect_eq(sc->warmup_steps, 0);
    cr_expect_eq(sc->measured_steps, 3);
    cr_expect_eq(sc->budget_bytes, 512ull << 20);
    cr_expect_eq(sc->backend, OOMB_BACKEND_CUDA);
    cr_expect_eq(sc->device, 1);
    cr_expect_eq(sc->timeout_s, 120.0);

    cr_expect_eq(sc->eval_samples, 500);
    cr_expect_eq(sc->epochs, 0.0);

    cr_assert_eq(sc->model.n_layers, 5);
    const struct oomb_layer *const *L = sc->model.layers;
    cr_expect_eq(L[0]->in_features, 784);
    cr_expect_eq(L[0]->n_params, 64 * 784 + 64);
    cr_expect_eq(L[1]->kind, OOMB_LAYER_GELU);
    cr_expect_eq(L[1]->in_features, 64);
    cr_expect_eq(L[1]->out_features, 64);
    cr_expect_eq(L[1]->n_params, 0);
    cr_expect_eq(L[2]->has_bias, 0);
    cr_expect_eq(L[2]->n_params, 16 * 64);
    cr_expect_eq(L[3]->kind, OOMB_LAYER_RELU);
    cr_expect_eq(L[4]->out_features, 10);

    cr_assert_eq(sc->n_strategies, 3);
    const struct oomb_strategy_spec *ck = &sc->strategies[1];
    cr_expect_str_eq(ck->plugin, "checkpoint");
    cr_expect_str_eq(ck->label, "ckpt4");
    cr_assert_eq(ck->n_params, 2);
    cr_expect_str_eq(ck->params[0].key, "segments");
    cr_expect_str_eq(ck->params[0].value, "4");
    cr_expect_str_eq(ck->params[1].value, "uniform");
    cr_expect_eq(ck->params[0].loc.line, 24);
    cr_expect_str_eq(ck->params[0].loc.file, sc->path);
    cr_expect_str_eq(sc->strategies[2].label, "grad_accum");
    cr_expect_str_eq(sc->strategies[2].params[0].key, "micro_batch");
    cr_expect_eq(sc->strategies[2].params[0].loc.line, 27);
    cr_expect_eq(sc->strategies[2].params[0].loc.col, 20);

    cr_assert_eq(sc->n_checks, 2);
    cr_expect_str_eq(sc->checks[1].expr, "grad_accum.numerics.weight_rel_err <= 1e-5");
    cr_expect_eq(sc->checks[1].loc.line, 30);
    cr_expect_eq(sc->checks[1].loc.col, 5);
    oomb_scenario_destroy(sc);
}

Test(scenario, synthetic_separation)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/separation.yaml");
    cr_expect_eq(sc->input_kind, OOMB_INPUT_SYNTHETIC);
    cr_expect_eq(sc->seed, 9);
    cr_expect_eq(sc->separation, 25.0);
    oomb_scenario_destroy(sc);
}

Test(scenario, flow_style_and_shorthands)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/budget_none.yaml");
    cr_expect_eq(sc->budget_bytes, 0);
    cr_expect_eq(sc->optimizer, OOMB_OPT_SGD);
    cr_expect_eq(sc->lr, 0.01, "sgd's default learning rate");
    cr_expect_eq(sc->backend, OOMB_BACKEND_CUDA);
    cr_expect_eq(sc->device, 0);
    cr_expect_eq(sc->timeout_s, 90.0);
    cr_expect_eq(sc->modes, OOMB_MODE_INFER);
    cr_assert_eq(sc->n_strategies, 2);
    cr_expect_str_eq(sc->strategies[1].label, "fp16");
    cr_expect_eq(sc->n_checks, 0);
    oomb_scenario_destroy(sc);
}

Test(scenario, missing_file_is_io_error)
{
    struct oomb_scenario *sc = (void *)1;
    char err[256];
    cr_expect_eq(oomb_scenario_load(DATA "/no/such.yaml", &sc, err, sizeof err), OOMB_ERR_IO);
    cr_expect_null(sc);
    cr_expect(strstr(err, "no/such.yaml") != NULL, "%s", err);
}

Test(scenario, destroy_null_is_noop)
{
    oomb_scenario_destroy(NULL);
}

Test(scenario, tiny_error_buffer_is_safe)
{
    struct oomb_scenario *sc = NULL;
    char err[8];
    memset(err, 'x', sizeof err);
    cr_expect_eq(oomb_scenario_load(DATA "/bad/unknown_top_key.yaml", &sc, err, sizeof err),
                 OOMB_ERR_PARSE);
    cr_expect_eq(err[sizeof err - 1], '\0');
    cr_expect_eq(oomb_scenario_load(DATA "/bad/unknown_top_key.yaml", &sc, NULL, 0),
                 OOMB_ERR_PARSE);
}

/* ------------------------------------------------------------ layers */

/* Checks every field a layer kind defines; attrs are compared in full. */
static void expect_layer(const struct oomb_layer *l, const char *what, enum oomb_layer_kind kind,
                         int64_t in, int64_t out, int64_t n_params, int64_t n_buffers,
                         const int64_t *attrs, int n_attrs)
{
    cr_assert_not_null(l, "%s", what);
    cr_expect_eq(l->struct_size, sizeof(struct oomb_layer), "%s", what);
    cr_expect_eq(l->kind, kind, "%s: kind %d", what, (int)l->kind);
    cr_expect_eq(l->in_features, in, "%s: in %lld", what, (long long)l->in_features);
    cr_expect_eq(l->out_features, out, "%s: out %lld", what, (long long)l->out_features);
    cr_expect_eq(l->n_params, n_params, "%s: n_params %lld", what, (long long)l->n_params);
    cr_expect_eq(l->n_buffers, n_buffers, "%s: n_buffers %lld", what, (long long)l->n_buffers);
    for (int i = 0; i < 8; i++) {
        int64_t want = i < n_attrs ? attrs[i] : 0;
        cr_expect_eq(l->attrs[i], want, "%s: attrs[%d] = %lld, want %lld", what, i,
                     (long long)l->attrs[i], (long long)want);
    }
    if (kind != OOMB_LAYER_RESIDUAL) {
        cr_expect_eq(l->n_body, 0, "%s", what);
        cr_expect_null(l->body, "%s", what);
    }
}

#define ATTRS(...) ((const int64_t[]){__VA_ARGS__}), (int)(sizeof((int64_t[]){__VA_ARGS__}) / 8)
#define NO_ATTRS NULL, 0

/* The body pointers of a residual are the scenario's own. */
static void expect_owned_body(const struct oomb_scenario *sc, const struct oomb_layer *r)
{
    cr_assert_gt(r->n_body, 0);
    cr_assert_not_null(r->body);
    cr_expect(r->body >= sc->body_ptrs && r->body + r->n_body <= sc->body_ptrs + sc->n_nested,
              "body pointers outside sc->body_ptrs");
    for (int i = 0; i < r->n_body; i++)
        cr_expect(r->body[i] >= sc->nested_storage &&
                      r->body[i] < sc->nested_storage + sc->n_nested,
                  "body layer %d outside sc->nested_storage", i);
    cr_expect_eq(r->has_bias, 0);
}

Test(scenario, cnn_layers)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/cnn.yaml");
    cr_expect_eq(sc->input_kind, OOMB_INPUT_FASHION_MNIST);
    cr_expect_eq(sc->eval_samples, 10000, "fashion-mnist evaluates on its whole test set");
    cr_expect_eq(sc->input_rank, 3);
    cr_expect_eq(sc->input_shape[0], 1);
    cr_expect_eq(sc->input_shape[1], 28);
    cr_expect_eq(sc->input_shape[2], 28);
    cr_expect_eq(sc->model.input_features, 784);
    cr_expect_eq(sc->n_nested, 0);
    cr_assert_eq(sc->model.n_layers, 10);
    const struct oomb_layer *const *L = sc->model.layers;
    expect_layer(L[0], "conv 1", OOMB_LAYER_CONV2D, 784, 8 * 28 * 28, 8 * 9 + 8, 0,
                 ATTRS(1, 28, 28, 8, 3, 1, 1));
    cr_expect_eq(L[0]->has_bias, 1);
    expect_layer(L[1], "bn 1", OOMB_LAYER_BATCHNORM, 6272, 6272, 16, 16, ATTRS(8, 784));
    expect_layer(L[2], "relu 1", OOMB_LAYER_RELU, 6272, 6272, 0, 0, NO_ATTRS);
    expect_layer(L[3], "pool 1", OOMB_LAYER_MAXPOOL, 6272, 8 * 14 * 14, 0, 0,
                 ATTRS(8, 28, 28, 2, 2));
    expect_layer(L[4], "conv 2", OOMB_LAYER_CONV2D, 1568, 16 * 14 * 14, 16 * 8 * 9, 0,
                 ATTRS(8, 14, 14, 16, 3, 1, 1));
    cr_expect_eq(L[4]->has_bias, 0);
    expect_layer(L[5], "bn 2", OOMB_LAYER_BATCHNORM, 3136, 3136, 32, 32, ATTRS(16, 196));
    expect_layer(L[6], "relu 2", OOMB_LAYER_RELU, 3136, 3136, 0, 0, NO_ATTRS);
    expect_layer(L[7], "pool 2", OOMB_LAYER_MAXPOOL, 3136, 16 * 6 * 6, 0, 0,
                 ATTRS(16, 14, 14, 3, 2));
    expect_layer(L[8], "flatten", OOMB_LAYER_FLATTEN, 576, 576, 0, 0, NO_ATTRS);
    expect_layer(L[9], "linear", OOMB_LAYER_LINEAR, 576, 10, 5770, 0, ATTRS(0));
    cr_expect_eq(L[9]->has_bias, 1);
    oomb_scenario_destroy(sc);
}

Test(scenario, residual_cnn_block)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/resnet.yaml");
    cr_expect_eq(sc->input_rank, 3);
    cr_expect_eq(sc->model.input_features, 3 * 16 * 16);
    cr_assert_eq(sc->model.n_layers, 6);
    cr_expect_eq(sc->n_nested, 5);
    const struct oomb_layer *const *L = sc->model.layers;
    expect_layer(L[0], "stem", OOMB_LAYER_CONV2D, 768, 2048, 8 * 3 * 9 + 8, 0,
                 ATTRS(3, 16, 16, 8, 3, 1, 1));
    const struct oomb_layer *r = L[1];
    expect_layer(r, "residual", OOMB_LAYER_RESIDUAL, 2048, 2048, 584 + 16 + 576 + 16, 32, NO_ATTRS);
    cr_assert_eq(r->n_body, 5);
    expect_owned_body(sc, r);
    expect_layer(r->body[0], "body conv 1", OOMB_LAYER_CONV2D, 2048, 2048, 8 * 8 * 9 + 8, 0,
                 ATTRS(8, 16, 16, 8, 3, 1, 1));
    expect_layer(r->body[1], "body bn 1", OOMB_LAYER_BATCHNORM, 2048, 2048, 16, 16, ATTRS(8, 256));
    expect_layer(r->body[2], "body relu", OOMB_LAYER_RELU, 2048, 2048, 0, 0, NO_ATTRS);
    expect_layer(r->body[3], "body conv 2", OOMB_LAYER_CONV2D, 2048, 2048, 8 * 8 * 9, 0,
                 ATTRS(8, 16, 16, 8, 3, 1, 1));
    cr_expect_eq(r->body[3]->has_bias, 0);
    expect_layer(r->body[4], "body bn 2", OOMB_LAYER_BATCHNORM, 2048, 2048, 16, 16, ATTRS(8, 256));
    expect_layer(L[2], "relu", OOMB_LAYER_RELU, 2048, 2048, 0, 0, NO_ATTRS);
    expect_layer(L[3], "pool", OOMB_LAYER_MAXPOOL, 2048, 512, 0, 0, ATTRS(8, 16, 16, 2, 2));
    expect_layer(L[4], "flatten", OOMB_LAYER_FLATTEN, 512, 512, 0, 0, NO_ATTRS);
    expect_layer(L[5], "linear", OOMB_LAYER_LINEAR, 512, 10, 5130, 0, ATTRS(0));
    oomb_scenario_destroy(sc);
}

/* A transformer item becomes exactly two residuals:
 * [layernorm, attention] and [layernorm, linear mlp*C, gelu, linear C]. */
static void expect_transformer(const struct oomb_scenario *sc, const struct oomb_layer *const *L,
                               int64_t heads, int64_t mlp, int causal)
{
    const int64_t T = 28, C = 28, H = mlp * C;
    const int64_t attn = 4 * C * C + 4 * C, up = H * C + H, down = C * H + C;
    expect_layer(L[0], "attention residual", OOMB_LAYER_RESIDUAL, T * C, T * C, 2 * C + attn, 0,
                 NO_ATTRS);
    cr_assert_eq(L[0]->n_body, 2);
    expect_owned_body(sc, L[0]);
    expect_layer(L[0]->body[0], "ln 1", OOMB_LAYER_LAYERNORM, T * C, T * C, 2 * C, 0, ATTRS(T, C));
    expect_layer(L[0]->body[1], "attention", OOMB_LAYER_ATTENTION, T * C, T * C, attn, 0,
                 ATTRS(T, C, heads, causal));
    expect_layer(L[1], "mlp residual", OOMB_LAYER_RESIDUAL, T * C, T * C, 2 * C + up + down, 0,
                 NO_ATTRS);
    cr_assert_eq(L[1]->n_body, 4);
    expect_owned_body(sc, L[1]);
    expect_layer(L[1]->body[0], "ln 2", OOMB_LAYER_LAYERNORM, T * C, T * C, 2 * C, 0, ATTRS(T, C));
    expect_layer(L[1]->body[1], "up", OOMB_LAYER_LINEAR, T * C, T * H, up, 0, ATTRS(T));
    cr_expect_eq(L[1]->body[1]->has_bias, 1);
    expect_layer(L[1]->body[2], "gelu", OOMB_LAYER_GELU, T * H, T * H, 0, 0, NO_ATTRS);
    expect_layer(L[1]->body[3], "down", OOMB_LAYER_LINEAR, T * H, T * C, down, 0, ATTRS(T));
    cr_expect_eq(L[1]->body[3]->has_bias, 1);
}

Test(scenario, transformer_expands_into_two_residuals)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/transformer.yaml");
    cr_expect_eq(sc->input_rank, 2);
    cr_expect_eq(sc->input_shape[0], 28);
    cr_expect_eq(sc->input_shape[1], 28);
    cr_expect_eq(sc->seed, 3);
    cr_expect_eq(sc->eval_samples, 2000);
    cr_expect_eq(sc->epochs, 2.0);
    cr_assert_eq(sc->model.n_layers, 7, "two transformers, layernorm, flatten, linear");
    cr_expect_eq(sc->n_nested, 12);
    const struct oomb_layer *const *L = sc->model.layers;
    expect_transformer(sc, &L[0], 4, 2, 1);
    expect_transformer(sc, &L[2], 7, 4, 0); /* `transformer: 7`: mlp 4, not causal */
    cr_expect_neq(L[0]->body, L[1]->body);
    cr_expect_neq(L[2]->body[0], L[0]->body[0]);
    expect_layer(L[4], "final ln", OOMB_LAYER_LAYERNORM, 784, 784, 56, 0, ATTRS(28, 28));
    expect_layer(L[5], "flatten", OOMB_LAYER_FLATTEN, 784, 784, 0, 0, NO_ATTRS);
    expect_layer(L[6], "head", OOMB_LAYER_LINEAR, 784, 10, 7850, 0, ATTRS(0));
    oomb_scenario_destroy(sc);
}

Test(scenario, token_layers_and_nested_residual)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/tokens.yaml");
    cr_expect_eq(sc->eval_samples, 256, "eval on synthetic input");
    cr_expect_eq(sc->model.input_features, 96);
    cr_assert_eq(sc->model.n_layers, 11);
    cr_expect_eq(sc->n_nested, 5);
    const struct oomb_layer *const *L = sc->model.layers;
    expect_layer(L[0], "linear per token", OOMB_LAYER_LINEAR, 96, 192, 24 * 12 + 24, 0, ATTRS(8));
    cr_expect_eq(L[0]->has_bias, 1);
    expect_layer(L[1], "gelu", OOMB_LAYER_GELU, 192, 192, 0, 0, NO_ATTRS);
    expect_layer(L[2], "linear no bias", OOMB_LAYER_LINEAR, 192, 96, 12 * 24, 0, ATTRS(8));
    cr_expect_eq(L[2]->has_bias, 0);
    expect_layer(L[3], "attention", OOMB_LAYER_ATTENTION, 96, 96, 4 * 144 + 48, 0,
                 ATTRS(8, 12, 3, 1));

    const struct oomb_layer *r = L[4];
    expect_layer(r, "outer residual", OOMB_LAYER_RESIDUAL, 96, 96, 24 + 624 + 156, 0, NO_ATTRS);
    cr_assert_eq(r->n_body, 3);
    expect_owned_body(sc, r);
    expect_layer(r->body[0], "ln", OOMB_LAYER_LAYERNORM, 96, 96, 24, 0, ATTRS(8, 12));
    expect_layer(r->body[1], "attention 2", OOMB_LAYER_ATTENTION, 96, 96, 624, 0,
                 ATTRS(8, 12, 2, 0));
    const struct oomb_layer *in = r->body[2];
    expect_layer(in, "inner residual", OOMB_LAYER_RESIDUAL, 96, 96, 156, 0, NO_ATTRS);
    cr_assert_eq(in->n_body, 2);
    expect_owned_body(sc, in);
    expect_layer(in->body[0], "inner linear", OOMB_LAYER_LINEAR, 96, 96, 156, 0, ATTRS(8));
    expect_layer(in->body[1], "inner relu", OOMB_LAYER_RELU, 96, 96, 0, 0, NO_ATTRS);

    expect_layer(L[5], "ln tokens", OOMB_LAYER_LAYERNORM, 96, 96, 24, 0, ATTRS(8, 12));
    expect_layer(L[6], "flatten", OOMB_LAYER_FLATTEN, 96, 96, 0, 0, NO_ATTRS);
    expect_layer(L[7], "flatten on flat", OOMB_LAYER_FLATTEN, 96, 96, 0, 0, NO_ATTRS);
    expect_layer(L[8], "ln flat", OOMB_LAYER_LAYERNORM, 96, 96, 192, 0, ATTRS(1, 96));
    expect_layer(L[9], "bn flat", OOMB_LAYER_BATCHNORM, 96, 96, 192, 192, ATTRS(96, 1));
    expect_layer(L[10], "head", OOMB_LAYER_LINEAR, 96, 10, 970, 0, ATTRS(0));
    oomb_scenario_destroy(sc);
}

/* The MLP scenarios (flat input; linear, relu and gelu layers only) load as
 * under ABI 1.0: no attrs, buffers or bodies, and relu/gelu keep has_bias = 1. */
Test(scenario, mlp_scenarios_keep_their_layers)
{
    DIR *d = opendir(OOMB_SOURCE_DIR "/scenarios");
    cr_assert_not_null(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/scenarios/%s", OOMB_SOURCE_DIR, e->d_name);
        struct oomb_scenario *sc = load_ok(path);
        int mlp = sc->input_rank == 1;
        for (int i = 0; i < sc->model.n_layers; i++)
            mlp &= sc->model.layers[i]->kind <= OOMB_LAYER_GELU;
        if (!mlp) { /* a model of ABI 1.1 layers */
            oomb_scenario_destroy(sc);
            continue;
        }
        files++;
        cr_expect_eq(sc->n_nested, 0, "%s", path);
        int64_t in = sc->model.input_features;
        for (int i = 0; i < sc->model.n_layers; i++) {
            const struct oomb_layer *l = sc->model.layers[i];
            char what[600];
            snprintf(what, sizeof what, "%s layer %d", e->d_name, i + 1);
            int64_t out = l->kind == OOMB_LAYER_LINEAR ? l->out_features : in;
            int64_t np = l->kind == OOMB_LAYER_LINEAR ? out * in + (l->has_bias ? out : 0) : 0;
            expect_layer(l, what, l->kind, in, out, np, 0, NO_ATTRS);
            if (l->kind != OOMB_LAYER_LINEAR)
                cr_expect_eq(l->has_bias, 1, "%s", what);
            in = out;
        }
        oomb_scenario_destroy(sc);
    }
    closedir(d);
    cr_expect_geq(files, 5);
}

/* ------------------------------------------------------------ epochs, eval */

Test(scenario, epochs_give_measured_steps_per_batch)
{
    struct oomb_scenario *sc = load_ok(DATA "/good/epochs.yaml");
    cr_expect_eq(sc->epochs, 0.5);
    cr_expect_eq(sc->eval_samples, 0, "eval: 0 turns evaluation off");
    cr_expect_eq(sc->warmup_steps, 1);
    cr_expect_eq(oomb_scenario_measured_steps(sc, 64), 469, "ceil(30000 / 64)");
    cr_expect_eq(oomb_scenario_measured_steps(sc, 100), 300);
    cr_expect_eq(oomb_scenario_measured_steps(sc, 30000), 1);
    cr_expect_eq(oomb_scenario_measured_steps(sc, 60000), 1);
    cr_expect_eq(oomb_scenario_measured_steps(sc, 0), 0);
    oomb_scenario_destroy(sc);

    sc = load_ok(DATA "/good/transformer.yaml");
    cr_expect_eq(oomb_scenario_measured_steps(sc, 128), 938, "ceil(2 * 60000 / 128)");
    cr_expect_eq(oomb_scenario_measured_steps(sc, 7), 17143);
    cr_expect_eq(oomb_scenario_measured_steps(sc, 1), 2 * OOMB_SCENARIO_FMNIST_TRAIN_SAMPLES);
    oomb_scenario_destroy(sc);
}

Test(scenario, measured_steps_of_fractional_epochs)
{
    static const struct {
        double epochs;
        int64_t batch, want;
    } cases[] = {
        {0.1, 60, 100},  {0.3, 600, 30},  {0.7, 100, 420}, {1.0 / 3.0, 7, 2858},
        {1, 60000, 1},   {1, 60001, 1},   {1, 59999, 2},   {2.5, 1000, 150},
        {1e-6, 1000, 1}, {0.001, 256, 1}, {3, 128, 1407},  {1.1, 64, 1032},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct oomb_scenario sc;
        memset(&sc, 0, sizeof sc);
        sc.measured_steps = 5;
        sc.epochs = cases[i].epochs;
        int64_t got = oomb_scenario_measured_steps(&sc, cases[i].batch);
        cr_expect_eq(got, cases[i].want, "epochs %g batch %lld: got %lld, want %lld",
                     cases[i].epochs, (long long)cases[i].batch, (long long)got,
                     (long long)cases[i].want);
    }
    cr_expect_eq(oomb_scenario_measured_steps(NULL, 64), 0);
}

/* allocator and pipeline: the scenario's keys, and a strategy's own keys
 * over them; PYTORCH_CUDA_ALLOC_CONF's syntax for --alloc-conf. */
Test(scenario, allocator_and_pipeline_merge_per_strategy)
{
    static const char text[] =
        "model: {input: 8, classes: 2, layers: [{linear: 2}]}\n"
        "batch: 4\n"
        "allocator: {max_split_size_mb: 64, empty_cache: step}\n"
        "pipeline: {kind: streaming, prefetch: 2}\n"
        "strategies:\n"
        "  - none\n"
        "  - {plugin: none, label: exp, allocator: {expandable_segments: true},\n"
        "     pipeline: resident}\n"
        "  - {plugin: none, label: ex, allocator: exact, pipeline: {prefetch: 4}}\n";
    struct oomb_scenario *sc = NULL;
    char err[512] = "";
    cr_assert_eq(oomb_scenario_load_mem("m.yaml", text, sizeof text - 1, &sc, err, sizeof err),
                 OOMB_OK, "%s", err);
    const struct oomb_strategy_spec *a = &sc->strategies[0], *b = &sc->strategies[1],
                                    *c = &sc->strategies[2];
    cr_assert_eq(sc->allocator.kind, OOMB_ALLOCATOR_CACHING, "options alone mean caching");
    cr_assert_eq(a->allocator.kind, OOMB_ALLOCATOR_CACHING);
    cr_assert_eq(a->allocator.conf.max_split_size, 64ull << 20);
    cr_assert_eq(a->allocator.conf.empty_cache, OOMB_EMPTY_CACHE_STEP);
    cr_assert_eq(a->allocator.conf.expandable_segments, 0);
    cr_assert_eq(b->allocator.conf.expandable_segments, 1);
    cr_assert_eq(b->allocator.conf.max_split_size, 64ull << 20, "the scenario's keys stay");
    cr_assert_eq(c->allocator.kind, OOMB_ALLOCATOR_EXACT);
    cr_assert_eq(a->pipeline.kind, OOMB_PIPELINE_STREAMING);
    cr_assert_eq(a->pipeline.prefetch, 2);
    cr_assert_eq(b->pipeline.kind, OOMB_PIPELINE_RESIDENT);
    cr_assert_eq(c->pipeline.kind, OOMB_PIPELINE_STREAMING);
    cr_assert_eq(c->pipeline.prefetch, 4);
    oomb_scenario_destroy(sc);

    struct oomb_cachealloc_conf conf;
    cr_assert_eq(oomb_parse_alloc_conf("expandable_segments:True,max_split_size_mb:128,"
                                       "roundup_power2_divisions:4,"
                                       "garbage_collection_threshold:0.6",
                                       &conf, err, sizeof err),
                 OOMB_OK, "%s", err);
    cr_assert_eq(conf.expandable_segments, 1);
    cr_assert_eq(conf.max_split_size, 128ull << 20);
    cr_assert_eq(conf.roundup_power2_divisions, 4);
    cr_assert_float_eq(conf.gc_threshold, 0.6, 1e-12);
    cr_assert_eq(oomb_parse_alloc_conf("max_split_size_mb:20", &conf, err, sizeof err),
                 OOMB_ERR_PARSE);
    cr_assert(strstr(err, "above 20"), "%s", err);
    cr_assert_eq(oomb_parse_alloc_conf("expandable_segments", &conf, err, sizeof err),
                 OOMB_ERR_PARSE);
    cr_assert_eq(oomb_parse_alloc_conf("pinned_use_cuda_host_register:True", &conf, err,
                                       sizeof err),
                 OOMB_ERR_PARSE);
    cr_assert(strstr(err, "unknown option"), "%s", err);
    cr_assert_eq(oomb_parse_alloc_conf("", &conf, err, sizeof err), OOMB_OK);
    cr_assert_eq(conf.max_split_size, 0);
}

/* ------------------------------------------------------------ bad files */

struct bad_case {
    const char *file;
    const char *where; /* "LINE:COL" */
    const char *key;   /* NULL: no key (YAML syntax, whole-file errors) */
    const char *also;  /* another substring the message must hold, or NULL */
};

static const struct bad_case bad_cases[] = {
    {"yaml_syntax.yaml", "9:11", NULL, "did not find expected ',' or ']'"},
    {"unknown_top_key.yaml", "9:1", "bach", "expected one of: name, description"},
    {"unknown_nested_key.yaml", "9:25", "optimizer.learning_rate",
     "unknown key 'learning_rate' in 'optimizer'"},
    {"wrong_type.yaml", "11:13", "steps.measured", "expected a positive integer, got a sequence"},
    {"negative_batch.yaml", "8:13", "batch", "negative"},
    {"zero_measured.yaml", "9:30", "steps.measured", "got 0"},
    {"batch_overflow.yaml", "8:8", "batch", "64-bit"},
    {"size_overflow.yaml", "10:5", "batch", "overflows a 64-bit byte count"},
    {"bad_budget.yaml", "9:9", "budget", "2 GiBs"},
    {"budget_overflow.yaml", "9:9", "budget", "20000000TiB"},
    {"duplicate_key.yaml", "12:3", "optimizer.lr", "first at line 11, column 3"},
    {"layer_mismatch.yaml", "7:20", "model.layers.linear.in", "layer 3 (linear)"},
    {"last_layer_classes.yaml", "8:7", "model.layers", "layer 4 (gelu)"},
    {"duplicate_label.yaml", "11:33", "strategies.label", "duplicate label 'none'"},
    {"empty_strategies.yaml", "9:13", "strategies", "at least one strategy"},
    {"bad_check.yaml", "11:5", "checks", "column 27"},
    {"check_unknown_label.yaml", "11:5", "checks", "'ckpt'"},
    {"unknown_mode.yaml", "9:15", "mode", "'training'"},
    {"unknown_backend.yaml", "9:10", "backend", "'tpu'"},
    {"bad_timeout.yaml", "9:10", "timeout", "'soon'"},
    {"alloc_split_small.yaml", "9:32", "allocator.max_split_size_mb", "more than 20"},
    {"alloc_divisions.yaml", "9:39", "allocator.roundup_power2_divisions", "power of two"},
    {"alloc_kind.yaml", "9:12", "allocator", "expected one of: exact, caching"},
    {"alloc_gc_strategy.yaml", "10:62", "strategies.allocator.garbage_collection_threshold",
     "between 0 and 1"},
    {"pipeline_prefetch.yaml", "9:39", "pipeline.prefetch", "at most 16"},
    {"pipeline_kind.yaml", "9:18", "pipeline.kind", "expected one of: resident, streaming"},
    {"missing_model.yaml", "1:1", "model", "missing required key"},
    {"unknown_layer.yaml", "6:7", "model.layers", "layer 2: unknown layer kind 'tanh'"},
    {"few_classes.yaml", "3:12", "model.classes", "at least 2"},
    {"duplicate_param.yaml", "11:27", "strategies.params.segments", "duplicate key"},
    {"fractional_batch.yaml", "8:8", "batch", "'1.5'"},
    {"optimizer_mismatch.yaml", "9:24", "optimizer.beta1", "adam only"},
    {"two_documents.yaml", "11:1", NULL, "one YAML document"},
    {"not_mapping.yaml", "1:1", "(top level)", "got a sequence"},
    {"empty.yaml", "1:1", NULL, "empty scenario"},
    /* shapes */
    {"linear_on_image.yaml", "7:7", "model.layers",
     "layer 3 (linear): its input is an image 16x14x14; add '- flatten' before it"},
    {"conv_on_flat.yaml", "5:7", "model.layers",
     "layer 1 (conv2d): its input is 784 features; conv2d needs an image"},
    {"conv_kernel_too_big.yaml", "5:7", "model.layers",
     "layer 1 (conv2d): kernel 7 does not fit its input 4x4 (H x W) with padding 1"},
    {"conv_missing_kernel.yaml", "5:15", "model.layers.conv2d.kernel",
     "layer 1 (conv2d): missing required key 'kernel'"},
    {"conv_bad_stride.yaml", "6:55", "model.layers.conv2d.stride",
     "layer 2.1 (conv2d): expected a positive integer, got 0"},
    {"maxpool_on_tokens.yaml", "5:7", "model.layers",
     "layer 1 (maxpool): its input is tokens 28x28; maxpool needs an image"},
    {"maxpool_too_big.yaml", "6:7", "model.layers",
     "layer 2 (maxpool): kernel 4 does not fit its input 3x8"},
    {"batchnorm_on_tokens.yaml", "6:7", "model.layers",
     "layer 2 (batchnorm): its input is tokens 28x32; batchnorm normalises the channels of an "
     "image or flat features: use layernorm on tokens"},
    {"layernorm_on_image.yaml", "5:7", "model.layers",
     "layer 1 (layernorm): its input is an image 1x28x28; layernorm normalises tokens or flat "
     "features"},
    {"attention_on_flat.yaml", "6:7", "model.layers",
     "layer 2 (attention): its input is 64 features; attention needs tokens (T, C)"},
    {"attention_heads.yaml", "5:7", "model.layers",
     "layer 1 (attention): 28 features per token do not split into 3 heads"},
    {"residual_shape.yaml", "5:7", "model.layers",
     "layer 1 (residual): its body maps tokens 28x28 to tokens 28x64 (output of layer 1.2 "
     "(linear)); a residual's body must keep the shape"},
    {"residual_empty.yaml", "5:17", "model.layers",
     "layer 1 (residual): expected its body, a non-empty list of layers, got an empty list"},
    {"nested_linear_on_image.yaml", "8:24", "model.layers",
     "layer 4.2 (linear): its input is an image 4x8x8; add '- flatten' before it"},
    {"nested_deep.yaml", "8:33", "model.layers",
     "layer 2.2.2 (batchnorm): its input is tokens 8x12"},
    {"nested_unknown_layer.yaml", "5:18", "model.layers",
     "layer 1.1: unknown layer kind 'tanh'; expected one of: linear, relu, gelu, conv2d, "
     "maxpool, batchnorm, layernorm, flatten, attention, residual, transformer"},
    {"transformer_on_flat.yaml", "5:7", "model.layers",
     "layer 1 (transformer): its input is 784 features; a transformer block needs tokens"},
    {"transformer_heads.yaml", "5:7", "model.layers",
     "layer 1 (transformer): 28 features per token do not split into 5 heads"},
    {"last_layer_not_flat.yaml", "5:7", "model.layers",
     "layer 1 (transformer), the last layer, outputs tokens 28x28 but the model must end with "
     "model.classes (10) flat features"},
    {"linear_tokens_in.yaml", "5:20", "model.layers.linear.in",
     "layer 1 (linear): in_features 96 does not match the 12 features per token coming in"},
    {"flatten_args.yaml", "5:7", "model.layers", "layer 1 (flatten): takes no arguments"},
    {"model_input_rank.yaml", "2:10", "model.input",
     "an image [C, H, W] or tokens [T, C], got a list of 4"},
    /* fashion-mnist, eval, epochs */
    {"fmnist_input.yaml", "2:10", "model.input", "Fashion-MNIST images are 1x28x28 in 10 classes"},
    {"fmnist_classes.yaml", "3:12", "model.classes", "model.classes must be 10, got 5"},
    {"eval_too_many.yaml", "7:7", "eval", "expected at most 10000, got 20000"},
    {"eval_negative.yaml", "6:7", "eval", "negative"},
    {"epochs_and_measured.yaml", "7:22", "steps.epochs", "not both"},
    {"epochs_synthetic.yaml", "7:11", "steps.epochs",
     "epochs needs a finite data set (input: fashion-mnist)"},
    {"epochs_zero.yaml", "7:17", "steps.epochs", "got 0"},
    {"separation_negative.yaml", "2:38", "input.separation", "expected a number in [0, 1e+06], got -1"},
    {"model_init.yaml", "1:61", "model.init", "expected pytorch or kaiming, got 'he'"},
    {"separation_type.yaml", "2:21", "input.separation", "a number"},
    {"separation_fmnist.yaml", "2:21", "input.separation", "synthetic input only"},
    /* hostile input: aliases, sizes, names, durations */
    {"alias_cycle.yaml", "6:17", "model.layers.residual",
     "alias '*l' is inside the node it names (anchor '&l' at line 5): aliases must not form a "
     "cycle"},
    {"alias_bomb.yaml", "6:55", "a4", "more than 100000 nodes once its aliases are expanded"},
    {"alias_undefined.yaml", "5:8", "batch", "alias '*sizes' names no anchor defined before it"},
    {"name_too_long.yaml", "1:7", "name", "1 to 64 letters"},
    {"name_unsafe.yaml", "1:7", "name", "is not a scenario name"},
    {"label_too_long.yaml", "4:27", "strategies.label", "at most 64 characters"},
    {"plugin_name_long.yaml", "6:14", "strategies", "at most 64 characters"},
    {"timeout_huge.yaml", "6:10", "timeout", "at most 604800 s (one week), got '1e10'"},
    {"input_overflow.yaml", "7:12", "batch",
     "batch 4194304 x 1048576 steps (warm-up and measured) x 1048576 features x 4 bytes of "
     "input data overflow a 64-bit byte count"},
    {"epochs_steps.yaml", "7:17", "steps.epochs",
     "at batch 1 a run takes 1 warm-up and 60000000 measured steps; a run is limited to "
     "10000000 steps"},
    {"steps_too_many.yaml", "6:30", "steps.measured", "at most 10000000 steps"},
    {"eval_overflow.yaml", "6:7", "eval", "overflow a 64-bit byte count"},
};

/* The parameter is an index into bad_cases: Criterion copies parameters into
 * the test's process byte by byte, and pointers would not survive that. */
ParameterizedTestParameters(scenario, rejects_bad_file)
{
    static int idx[sizeof bad_cases / sizeof bad_cases[0]];
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
        idx[i] = (int)i;
    return cr_make_param_array(int, idx, sizeof idx / sizeof idx[0]);
}

ParameterizedTest(int *i, scenario, rejects_bad_file)
{
    const struct bad_case *bc = &bad_cases[*i];
    char path[512], err[1024] = "", expect[600];
    snprintf(path, sizeof path, "%s/bad/%s", DATA, bc->file);
    struct oomb_scenario *sc = (void *)1;
    int rc = oomb_scenario_load(path, &sc, err, sizeof err);
    cr_assert_eq(rc, OOMB_ERR_PARSE, "%s: status %d: %s", bc->file, rc, err);
    cr_expect_null(sc);
    snprintf(expect, sizeof expect, "%s:%s: ", path, bc->where);
    cr_expect(strncmp(err, expect, strlen(expect)) == 0, "%s: want prefix '%s', got '%s'", bc->file,
              expect, err);
    if (bc->key != NULL) {
        snprintf(expect, sizeof expect, "%s:%s: key '%s': ", path, bc->where, bc->key);
        cr_expect(strncmp(err, expect, strlen(expect)) == 0, "%s: want prefix '%s', got '%s'",
                  bc->file, expect, err);
    }
    if (bc->also != NULL)
        cr_expect(strstr(err, bc->also) != NULL, "%s: want '%s' in '%s'", bc->file, bc->also, err);
}

/* Every file in the bad folder is in the table, so none goes untested. */
Test(scenario, every_bad_file_is_in_the_table)
{
    DIR *d = opendir(DATA "/bad");
    cr_assert_not_null(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        files++;
        int found = 0;
        for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++)
            found |= strcmp(bad_cases[i].file, e->d_name) == 0;
        cr_expect(found, "%s has no entry in bad_cases", e->d_name);
    }
    closedir(d);
    cr_expect_eq(files, (int)(sizeof bad_cases / sizeof bad_cases[0]));
}

/* ------------------------------------------------------------ bytes */

Test(scenario, parse_bytes_accepts_units)
{
    static const struct {
        const char *text;
        uint64_t want;
    } cases[] = {
        {"0", 0},
        {"100000", 100000},
        {"2GiB", 2ull << 30},
        {"512 MiB", 512ull << 20},
        {"1.5GB", 1500000000ull},
        {"1e9", 1000000000ull},
        {"4KiB", 4096},
        {"3KB", 3000},
        {"7B", 7},
        {"1TiB", 1ull << 40},
        {"2TB", 2000000000000ull},
        {"0.5KiB", 512},
        {"18446744073709551615", UINT64_MAX},
        {"2gib", 2ull << 30},
        {" 8 MiB ", 8ull << 20},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 12345;
        cr_expect_eq(oomb_parse_bytes(cases[i].text, &v), OOMB_OK, "'%s'", cases[i].text);
        cr_expect_eq(v, cases[i].want, "'%s': got %llu", cases[i].text, (unsigned long long)v);
    }
}

Test(scenario, parse_bytes_rejects_bad_input)
{
    static const char *const bad[] = {
        "",
        "   ",
        "-1",
        "-1GiB",
        "+5",
        "abc",
        "GiB",
        "12XB",
        "2 GiBs",
        "1e",
        "1.2.3",
        "0x10",
        "inf",
        "nan",
        "18446744073709551616",
        "99999999999999999999",
        "16777216TiB",
        "1e20",
        "20000000TiB",
        "5 MiB x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 0;
        cr_expect_eq(oomb_parse_bytes(bad[i], &v), OOMB_ERR_PARSE, "'%s' accepted as %llu", bad[i],
                     (unsigned long long)v);
    }
    uint64_t v;
    cr_expect_eq(oomb_parse_bytes(NULL, &v), OOMB_ERR_PARSE);
}

/* ------------------------------------------------------------ durations */

Test(scenario, parse_duration_accepts_units)
{
    static const struct {
        const char *text;
        double want;
    } cases[] = {
        {"30s", 30},   {"2m", 120}, {"500ms", 0.5},    {"1h", 3600},  {"10", 10},
        {"1.5s", 1.5}, {"0", 0},    {"250us", 250e-6}, {"3min", 180}, {" 5 s ", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -1;
        cr_expect_eq(oomb_parse_duration(cases[i].text, &v), OOMB_OK, "'%s'", cases[i].text);
        cr_expect(fabs(v - cases[i].want) <= 1e-12 * fabs(cases[i].want), "'%s': got %g",
                  cases[i].text, v);
    }
}

Test(scenario, parse_duration_rejects_bad_input)
{
    static const char *const bad[] = {"",      "s",   "-5s", "soon", "5x",    "5 s s",
                                      "1e999", "inf", "nan", "5sec", "1.2.3s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 0;
        cr_expect_eq(oomb_parse_duration(bad[i], &v), OOMB_ERR_PARSE, "'%s' accepted as %g", bad[i],
                     v);
    }
}

/* ------------------------------------------------------------ hostile input
 * Large or special files are made here, at test time, in a fresh directory. */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/oomb-scenario-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (d == NULL)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        if (remove(p) != 0)
            rmdir(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Loads `path`, which must fail with `want` and a message that starts with
 * "path:" + `where` (NULL: no line) and holds `also`; in under 2 s. */
static void expect_fail(const char *path, int want, const char *where, const char *also)
{
    struct oomb_scenario *sc = (void *)1;
    char err[1024] = "", prefix[600];
    double t0 = now_s();
    int rc = oomb_scenario_load(path, &sc, err, sizeof err);
    double dt = now_s() - t0;
    cr_assert_eq(rc, want, "%s: status %d: %s", path, rc, err);
    cr_expect_null(sc);
    snprintf(prefix, sizeof prefix, "%s:%s", path, where != NULL ? where : " ");
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix '%s', got '%s'", prefix, err);
    cr_expect(strstr(err, also) != NULL, "want '%s' in '%s'", also, err);
    cr_expect_lt(dt, 2.0, "%s took %.2f s", path, dt);
}

#define MINIMAL "model: {input: 8, classes: 2, layers: [linear: 2]}\nbatch: 4\nstrategies: [none]\n"

Test(scenario, deep_flow_nesting_is_refused_fast, .init = make_tmpdir, .fini = remove_tmpdir,
     .timeout = 10)
{
    /* 40000 levels of '[': libyaml alone takes a minute on this. */
    size_t depth = 40000, n = 0;
    char *text = malloc(2 * depth + 16);
    cr_assert_not_null(text);
    n += (size_t)sprintf(text, "model: ");
    memset(text + n, '[', depth);
    n += depth;
    memset(text + n, ']', depth);
    n += depth;
    text[n++] = '\n';
    char path[512];
    snprintf(path, sizeof path, "%s/deep.yaml", tmpdir);
    write_file(path, text, n);
    free(text);
    expect_fail(path, OOMB_ERR_PARSE, "1:71: key 'model': ", "nested more than 64 deep");
}

Test(scenario, deep_block_nesting_is_refused, .init = make_tmpdir, .fini = remove_tmpdir,
     .timeout = 10)
{
    /* model: {a: {a: {a: ...}}} as an indented block. */
    char *text = malloc(1 << 20);
    cr_assert_not_null(text);
    size_t n = 0;
    for (int d = 0; d < 100; d++)
        n += (size_t)sprintf(text + n, "%*sa:\n", d, "");
    n += (size_t)sprintf(text + n, "%*s1\n", 100, "");
    char path[512];
    snprintf(path, sizeof path, "%s/block.yaml", tmpdir);
    write_file(path, text, n);
    free(text);
    expect_fail(path, OOMB_ERR_PARSE, "65:65: key 'a.a.a.", "nested more than 64 deep");
}

Test(scenario, large_alias_bomb_is_refused_fast, .init = make_tmpdir, .fini = remove_tmpdir,
     .timeout = 10)
{
    /* 30 levels of 2 aliases each: 2^30 nodes expanded, a few hundred bytes. */
    char text[8192];
    size_t n = (size_t)sprintf(text, "a0: &a0 [x, x]\n");
    for (int i = 1; i < 30; i++)
        n += (size_t)sprintf(text + n, "a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
    n += (size_t)sprintf(text + n, MINIMAL);
    char path[512];
    snprintf(path, sizeof path, "%s/bomb.yaml", tmpdir);
    write_file(path, text, n);
    expect_fail(path, OOMB_ERR_PARSE, "15:22: key 'a14': ", "more than 100000 nodes");
}

Test(scenario, fifo_is_refused_without_blocking, .init = make_tmpdir, .fini = remove_tmpdir,
     .timeout = 5)
{
    char path[512];
    snprintf(path, sizeof path, "%s/pipe.yaml", tmpdir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    expect_fail(path, OOMB_ERR_IO, NULL, "a FIFO (named pipe), not a scenario file");
}

Test(scenario, directory_is_refused_as_io_error, .init = make_tmpdir, .fini = remove_tmpdir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/dir.yaml", tmpdir);
    cr_assert_eq(mkdir(path, 0700), 0);
    expect_fail(path, OOMB_ERR_IO, NULL, "cannot read: a directory");
}

Test(scenario, device_is_refused, .timeout = 5)
{
    expect_fail("/dev/zero", OOMB_ERR_IO, NULL, "a character device");
}

Test(scenario, oversized_file_is_refused, .init = make_tmpdir, .fini = remove_tmpdir)
{
    size_t len = (size_t)OOMB_SCENARIO_MAX_FILE + 1;
    char *text = malloc(len);
    cr_assert_not_null(text);
    memset(text, '#', len); /* one long comment */
    char path[512];
    snprintf(path, sizeof path, "%s/big.yaml", tmpdir);
    write_file(path, text, len);
    free(text);
    expect_fail(path, OOMB_ERR_IO, NULL, "a scenario file holds at most 1048576 bytes");
}

Test(scenario, unsafe_file_name_needs_a_name_key, .init = make_tmpdir, .fini = remove_tmpdir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/set title 'x'; system('id').yaml", tmpdir);
    write_file(path, MINIMAL, strlen(MINIMAL));
    expect_fail(path, OOMB_ERR_PARSE, "1:1: key 'name': ",
                "the file name 'set title 'x'; system('id')' does not make a scenario name");

    /* The same file with a name: key loads. */
    char named[512];
    snprintf(named, sizeof named, "name: safe\n%s", MINIMAL);
    write_file(path, named, strlen(named));
    struct oomb_scenario *sc = load_ok(path);
    cr_expect_str_eq(sc->name, "safe");
    oomb_scenario_destroy(sc);
}

Test(scenario, long_file_name_needs_a_name_key, .init = make_tmpdir, .fini = remove_tmpdir)
{
    char path[512], stem[201];
    memset(stem, 'a', 200);
    stem[200] = '\0';
    snprintf(path, sizeof path, "%s/%s.yaml", tmpdir, stem);
    write_file(path, MINIMAL, strlen(MINIMAL));
    expect_fail(path, OOMB_ERR_PARSE, "1:1: key 'name': ", "add a 'name:' key");
}

Test(scenario, longest_name_is_accepted)
{
    char text[512], name[OOMB_SCENARIO_MAX_NAME + 1];
    memset(name, 'n', OOMB_SCENARIO_MAX_NAME);
    name[OOMB_SCENARIO_MAX_NAME] = '\0';
    int n = snprintf(text, sizeof text, "name: %s\n%s", name, MINIMAL);
    struct oomb_scenario *sc = NULL;
    char err[512] = "";
    cr_assert_eq(oomb_scenario_load_mem("x.yaml", text, (size_t)n, &sc, err, sizeof err), OOMB_OK,
                 "%s", err);
    cr_expect_str_eq(sc->name, name);
    oomb_scenario_destroy(sc);
    cr_expect(oomb_scenario_name_ok("a.b-c_9"));
    cr_expect(!oomb_scenario_name_ok(".hidden"));
    cr_expect(!oomb_scenario_name_ok("-rf"));
    cr_expect(!oomb_scenario_name_ok("a/b"));
    cr_expect(!oomb_scenario_name_ok(""));
}

/* Loads text (no file) and expects OOMB_ERR_PARSE naming x.yaml:where. */
static void expect_mem_fail(const char *text, const char *where, const char *also)
{
    struct oomb_scenario *sc = (void *)1;
    char err[1024] = "", prefix[256];
    int rc = oomb_scenario_load_mem("x.yaml", text, strlen(text), &sc, err, sizeof err);
    cr_assert_eq(rc, OOMB_ERR_PARSE, "status %d: %s", rc, err);
    cr_expect_null(sc);
    snprintf(prefix, sizeof prefix, "x.yaml:%s", where);
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix '%s', got '%s'", prefix, err);
    cr_expect(strstr(err, also) != NULL, "want '%s' in '%s'", also, err);
}

Test(scenario, too_many_batch_sizes_are_refused)
{
    char text[8192];
    size_t n =
        (size_t)sprintf(text, "model: {input: 8, classes: 2, layers: [linear: 2]}\nbatch: [");
    for (int i = 1; i <= OOMB_SCENARIO_MAX_LIST + 1; i++)
        n += (size_t)sprintf(text + n, "%s%d", i > 1 ? ", " : "", i);
    sprintf(text + n, "]\nstrategies: [none]\n");
    expect_mem_fail(text, "2:8: key 'batch': ", "257 batch sizes; a scenario is limited to 256");
}

Test(scenario, too_many_params_are_refused)
{
    char text[16384];
    size_t n = (size_t)sprintf(text, "model: {input: 8, classes: 2, layers: [linear: 2]}\n"
                                     "batch: 4\nstrategies:\n  - plugin: none\n    params: {");
    for (int i = 0; i <= OOMB_SCENARIO_MAX_LIST; i++)
        n += (size_t)sprintf(text + n, "%sp%d: 1", i ? ", " : "", i);
    sprintf(text + n, "}\n");
    expect_mem_fail(text, "5:13: key 'strategies.params': ", "257 parameters");
}

Test(scenario, long_check_expression_is_refused)
{
    char text[4096];
    size_t n = (size_t)sprintf(text, "%schecks:\n  - \"", MINIMAL);
    for (int i = 0; i < 600; i++)
        n += (size_t)sprintf(text + n, "1+");
    sprintf(text + n, "1 < 2\"\n");
    expect_mem_fail(text, "5:5: key 'checks': ", "column 1025: expression longer than 1024 bytes");
}

Test(scenario, long_parameter_value_is_refused)
{
    size_t len = OOMB_SCENARIO_MAX_STRING + 1;
    char *text = malloc(len + 512);
    cr_assert_not_null(text);
    size_t n = (size_t)sprintf(text, "model: {input: 8, classes: 2, layers: [linear: 2]}\n"
                                     "batch: 4\nstrategies:\n  - {plugin: none, params: {p: ");
    memset(text + n, 'v', len);
    sprintf(text + n + len, "}}\n");
    expect_mem_fail(text, "4:32: key 'strategies.params.p': ", "4097 bytes; expected at most 4096");
    free(text);
}

Test(scenario, model_parameters_overflow_is_refused)
{
    /* Each layer's parameters fit; the model's with their gradients and two
     * moments do not. */
    char text[4096];
    size_t n = (size_t)sprintf(text, "model:\n  input: 1073741824\n  classes: 2\n  layers:\n");
    for (int i = 0; i < 5; i++)
        n += (size_t)sprintf(text + n, "    - linear: 1073741824\n");
    sprintf(text + n, "    - linear: 2\nbatch: 1\nsteps: {warmup: 0, measured: 1}\n"
                      "strategies: [none]\n");
    expect_mem_fail(text, "5:5: key 'model.layers': ",
                    "parameters, with their gradients and optimizer state, overflow");
}

Test(scenario, load_mem_matches_load)
{
    const char *path = OOMB_SOURCE_DIR "/scenarios/mlp.yaml";
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    char text[65536];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    struct oomb_scenario *a = load_ok(path), *b = NULL;
    char err[512] = "";
    cr_assert_eq(oomb_scenario_load_mem(path, text, len, &b, err, sizeof err), OOMB_OK, "%s", err);
    cr_expect_str_eq(a->name, b->name);
    cr_expect_eq(a->model.n_layers, b->model.n_layers);
    cr_expect_eq(a->n_strategies, b->n_strategies);
    cr_expect_eq(a->n_checks, b->n_checks);
    oomb_scenario_destroy(a);
    oomb_scenario_destroy(b);
}
