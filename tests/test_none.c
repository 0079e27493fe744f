/*
 * The reference strategy's memory equals the analytic count exactly
 * (docs/memory-model.md): weights + grads + optimizer moments + saved
 * activations + the largest transient, per tag, for train and infer, Adam and
 * SGD, on the default scenario and on a mixed ReLU/GELU model.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "scenario.h"
#include "test_helpers.h"

struct expect {
    uint64_t weights, grads, optimizer, activations, other, total;
};

static struct expect analytic(const struct oomb_scenario *sc, enum oomb_mode mode, int64_t B)
{
    const struct oomb_model *m = &sc->model;
    uint64_t P = 0;
    for (int l = 0; l < m->n_layers; l++)
        P += (uint64_t)m->layers[l]->n_params;
    struct expect e = {0};
    e.weights = 4 * P;
    e.other = 4 * (uint64_t)B; /* int32 labels */
    if (mode == OOMB_MODE_TRAIN) {
        e.grads = 4 * P;
        e.optimizer = (sc->optimizer == OOMB_OPT_ADAM ? 8 : 4) * P;
        uint64_t saved = (uint64_t)m->input_features + (uint64_t)m->classes + 1;
        uint64_t transient = 0;
        int first_linear = 1;
        for (int l = 0; l < m->n_layers; l++) {
            const struct oomb_layer *L = m->layers[l];
            saved += (uint64_t)L->out_features;
            if (L->kind == OOMB_LAYER_LINEAR) {
                uint64_t t = (uint64_t)L->out_features + (first_linear ? 0 : (uint64_t)L->in_features);
                if (t > transient)
                    transient = t;
                first_linear = 0;
            }
        }
        e.activations = 4 * (uint64_t)B * (saved + transient);
    } else {
        uint64_t mx = (uint64_t)m->classes * 2 + 1;
        for (int l = 0; l < m->n_layers; l++) {
            uint64_t t = (uint64_t)(m->layers[l]->in_features + m->layers[l]->out_features);
            if (t > mx)
                mx = t;
        }
        e.activations = 4 * (uint64_t)B * mx;
    }
    e.total = e.weights + e.grads + e.optimizer + e.activations + e.other;
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
        cr_assert_eq(r->peak_by_tag[OOMB_TAG_WORKSPACE], 0);
        cr_assert_eq(r->peak_by_tag[OOMB_TAG_OTHER], e.other);
        cr_assert_eq(r->peak_bytes, e.total);
        checked++;
    }
    cr_assert_gt(checked, 0);
    oomb_results_free(&res);
    oomb_scenario_destroy(sc);
}

/* The default scenario with its strategies cut down to `none` (the others
 * have their own suites): same model, modes, batches and optimizer. */
Test(none, default_scenario_memory_is_analytic, .timeout = 300)
{
    char dir[PATH_MAX], path[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    FILE *f = fopen(OOMB_SOURCE_DIR "/scenarios/mlp.yaml", "r");
    cr_assert_not_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *cut = strstr(text, "\nstrategies:");
    cr_assert_not_null(cut);
    snprintf(cut, sizeof text - (size_t)(cut - text), "\nstrategies: [none]\n");
    th_write(dir, "mlp-none.yaml", text, path, sizeof path);
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
