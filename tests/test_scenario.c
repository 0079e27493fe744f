/*
 * Scenario loader: good files load with the documented values and defaults;
 * each bad file fails with OOMB_ERR_PARSE and a message naming the exact
 * line:column and key; byte-size and duration parsers.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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

    cr_assert_eq(sc->model.n_layers, 5);
    const struct oomb_layer *const *L = sc->model.layers;
    cr_expect_eq(L[0]->in_features, 32);
    cr_expect_eq(L[0]->n_params, 64 * 32 + 64);
    cr_expect_eq(L[1]->kind, OOMB_LAYER_GELU);
    cr_expect_eq(L[1]->in_features, 64);
    cr_expect_eq(L[1]->out_features, 64);
    cr_expect_eq(L[1]->n_params, 0);
    cr_expect_eq(L[2]->has_bias, 0);
    cr_expect_eq(L[2]->n_params, 16 * 64);
    cr_expect_eq(L[3]->kind, OOMB_LAYER_RELU);
    cr_expect_eq(L[4]->out_features, 4);

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
    {"missing_model.yaml", "1:1", "model", "missing required key"},
    {"unknown_layer.yaml", "6:7", "model.layers", "layer 2: unknown layer kind 'tanh'"},
    {"few_classes.yaml", "3:12", "model.classes", "at least 2"},
    {"duplicate_param.yaml", "11:27", "strategies.params.segments", "duplicate key"},
    {"fractional_batch.yaml", "8:8", "batch", "'1.5'"},
    {"optimizer_mismatch.yaml", "9:24", "optimizer.beta1", "adam only"},
    {"two_documents.yaml", "11:1", NULL, "one YAML document"},
    {"not_mapping.yaml", "1:1", "(top level)", "got a sequence"},
    {"empty.yaml", "1:1", NULL, "empty scenario"},
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
