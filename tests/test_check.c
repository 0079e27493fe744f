/*
 * Check expressions: precedence, every comparison, NaN, division by zero,
 * the columns of parse errors, references and resolver errors.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "results.h"

/* A resolver over a small fixed table; "bad.*" references fail. */
struct table {
    const char *names[8];
    double values[8];
    int calls;
};

static int resolve(void *user, const char *ref, double *out, char *err, size_t err_len)
{
    struct table *t = user;
    t->calls++;
    for (int i = 0; i < 8 && t->names[i] != NULL; i++)
        if (strcmp(t->names[i], ref) == 0) {
            *out = t->values[i];
            return OOMB_OK;
        }
    snprintf(err, err_len, "unknown field '%s'", ref);
    return OOMB_ERR_INVALID;
}

static int no_refs(void *user, const char *ref, double *out, char *err, size_t err_len)
{
    (void)user, (void)ref, (void)out;
    snprintf(err, err_len, "no references expected");
    return OOMB_ERR_INTERNAL;
}

/* Parses and evaluates a constant expression; returns pass. */
static int eval_const(const char *expr, struct oomb_check_result *res)
{
    struct oomb_check *c = NULL;
    char err[256] = "";
    cr_assert_eq(oomb_check_parse(expr, &c, err, sizeof err), OOMB_OK, "'%s': %s", expr, err);
    cr_assert_eq(oomb_check_eval(c, no_refs, NULL, res, err, sizeof err), OOMB_OK, "'%s': %s", expr,
                 err);
    oomb_check_destroy(c);
    return res->pass;
}

static void expect_parse_error(const char *expr, int col, const char *also)
{
    struct oomb_check *c = (void *)1;
    char err[256] = "", want[32];
    cr_expect_eq(oomb_check_parse(expr, &c, err, sizeof err), OOMB_ERR_PARSE, "'%s' parsed", expr);
    cr_expect_null(c);
    snprintf(want, sizeof want, "column %d: ", col);
    cr_expect(strncmp(err, want, strlen(want)) == 0, "'%s': want '%s', got '%s'", expr, want, err);
    if (also != NULL)
        cr_expect(strstr(err, also) != NULL, "'%s': want '%s' in '%s'", expr, also, err);
}

Test(check, precedence_and_associativity)
{
    struct oomb_check_result r;
    eval_const("1 + 2 * 3 == 7", &r);
    cr_expect_eq(r.lhs, 7.0);
    cr_expect(r.pass);
    eval_const("(1 + 2) * 3 == 9", &r);
    cr_expect(r.pass);
    eval_const("10 - 4 - 3 == 3", &r); /* left-associative */
    cr_expect(r.pass);
    eval_const("64 / 4 / 2 == 8", &r);
    cr_expect(r.pass);
    eval_const("-2 * -3 == 6", &r);
    cr_expect(r.pass);
    eval_const("-(1 + 2) == -3", &r);
    cr_expect(r.pass);
    eval_const("2 - -1 == 3", &r);
    cr_expect(r.pass);
    eval_const("1e-5 * 1e5 == 1", &r);
    cr_expect(r.pass);
    eval_const(".5 + 0.25 + 1.E1 == 10.75", &r);
    cr_expect(r.pass);
    eval_const("1 + 2 * 3 - 4 / 2 < 5 * (1 + 1)", &r);
    cr_expect_eq(r.lhs, 5.0);
    cr_expect_eq(r.rhs, 10.0);
    cr_expect(r.pass);
}

Test(check, every_comparison)
{
    static const struct {
        const char *expr, *op;
        int pass;
    } cases[] = {
        {"1 < 2", "<", 1},   {"2 < 2", "<", 0},   {"2 <= 2", "<=", 1}, {"3 <= 2", "<=", 0},
        {"3 > 2", ">", 1},   {"2 > 2", ">", 0},   {"2 >= 2", ">=", 1}, {"1 >= 2", ">=", 0},
        {"2 == 2", "==", 1}, {"2 == 3", "==", 0}, {"2 != 3", "!=", 1}, {"2 != 2", "!=", 0},
        {"1<2", "<", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct oomb_check_result r;
        cr_expect_eq(eval_const(cases[i].expr, &r), cases[i].pass, "'%s'", cases[i].expr);
        cr_expect_str_eq(r.op, cases[i].op);
    }
}

Test(check, references_resolve_once_each)
{
    struct table t = {{"ckpt.memory.activations", "none.memory.activations"}, {50, 100}, 0};
    struct oomb_check *c = NULL;
    char err[256];
    const char *expr =
        "ckpt.memory.activations <= 0.6 * none.memory.activations + 0 * ckpt.memory.activations";
    cr_assert_eq(oomb_check_parse(expr, &c, err, sizeof err), OOMB_OK, "%s", err);
    cr_expect_str_eq(oomb_check_expr(c), expr);
    cr_assert_eq(oomb_check_ref_count(c), 2);
    cr_expect_str_eq(oomb_check_ref(c, 0), "ckpt.memory.activations");
    cr_expect_str_eq(oomb_check_ref(c, 1), "none.memory.activations");
    cr_expect_null(oomb_check_ref(c, 2));
    cr_expect_null(oomb_check_ref(c, -1));

    struct oomb_check_result r;
    cr_assert_eq(oomb_check_eval(c, resolve, &t, &r, err, sizeof err), OOMB_OK, "%s", err);
    cr_expect_eq(t.calls, 2);
    cr_expect_eq(r.lhs, 50.0);
    cr_expect_eq(r.rhs, 60.0);
    cr_expect(r.pass);

    t.values[0] = 61;
    cr_assert_eq(oomb_check_eval(c, resolve, &t, &r, err, sizeof err), OOMB_OK, "%s", err);
    cr_expect_not(r.pass);
    oomb_check_destroy(c);
}

Test(check, nan_fails_every_comparison)
{
    static const char *const exprs[] = {"a.b.c < 1",  "a.b.c <= 1", "a.b.c > 1",  "a.b.c >= 1",
                                        "a.b.c == 1", "a.b.c != 1", "1 != a.b.c", "a.b.c == a.b.c"};
    struct table t = {{"a.b.c"}, {NAN}, 0};
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        struct oomb_check *c = NULL;
        struct oomb_check_result r;
        char err[256];
        cr_assert_eq(oomb_check_parse(exprs[i], &c, err, sizeof err), OOMB_OK, "%s", err);
        cr_assert_eq(oomb_check_eval(c, resolve, &t, &r, err, sizeof err), OOMB_OK, "%s", err);
        cr_expect_not(r.pass, "'%s' passed with NaN", exprs[i]);
        cr_expect(isnan(r.lhs) || isnan(r.rhs));
        oomb_check_destroy(c);
    }
}

Test(check, infinity_compares)
{
    struct table t = {{"a.b.c"}, {INFINITY}, 0};
    struct oomb_check *c = NULL;
    struct oomb_check_result r;
    char err[256];
    cr_assert_eq(oomb_check_parse("a.b.c > 1e300", &c, err, sizeof err), OOMB_OK);
    cr_assert_eq(oomb_check_eval(c, resolve, &t, &r, err, sizeof err), OOMB_OK);
    cr_expect(r.pass);
    oomb_check_destroy(c);
}

Test(check, division_by_zero_is_an_error)
{
    struct table t = {{"none.memory.peak"}, {0}, 0};
    struct oomb_check *c = NULL;
    struct oomb_check_result r;
    char err[256];
    cr_assert_eq(oomb_check_parse("1 / none.memory.peak < 2", &c, err, sizeof err), OOMB_OK);
    cr_expect_eq(oomb_check_eval(c, resolve, &t, &r, err, sizeof err), OOMB_ERR_NUMERIC);
    cr_expect_str_eq(err, "column 3: division by zero");
    cr_expect_not(r.pass);
    oomb_check_destroy(c);

    cr_assert_eq(oomb_check_parse("1 < 0 / (2 - 2)", &c, err, sizeof err), OOMB_OK);
    cr_expect_eq(oomb_check_eval(c, no_refs, NULL, &r, err, sizeof err), OOMB_ERR_NUMERIC);
    cr_expect(strstr(err, "column 7") != NULL, "%s", err);
    oomb_check_destroy(c);
}

Test(check, resolver_error_is_passed_through)
{
    struct table t = {{"none.memory.peak"}, {1}, 0};
    struct oomb_check *c = NULL;
    struct oomb_check_result r;
    char err[256];
    cr_assert_eq(oomb_check_parse("none.memory.peak < bad.memory.peak", &c, err, sizeof err),
                 OOMB_OK);
    cr_expect_eq(oomb_check_eval(c, resolve, &t, &r, err, sizeof err), OOMB_ERR_INVALID);
    cr_expect_str_eq(err, "unknown field 'bad.memory.peak'");
    cr_expect_not(r.pass);
    oomb_check_destroy(c);
}

Test(check, parse_error_columns)
{
    expect_parse_error("", 1, "empty expression");
    expect_parse_error("   ", 4, "empty expression");
    expect_parse_error("a.b.c", 6, "comparison operator");
    expect_parse_error("a.b.c = 1", 7, "'=='");
    expect_parse_error("a.b.c <= * 2", 10, "got '*'");
    expect_parse_error("a.b.c <= 2 *", 13, "the end of the expression");
    expect_parse_error("(1 + 2 < 3", 8, "expected ')'");
    expect_parse_error("1 < 2 < 3", 7, "only one comparison");
    expect_parse_error("1 < 2 )", 7, "unexpected ')'");
    expect_parse_error("foo < 1", 1, "not a reference");
    expect_parse_error("a. b < 1", 3, "expected a name");
    expect_parse_error("a.b. < 1", 5, "expected a name");
    expect_parse_error("a.1b < 1", 3, "expected a name");
    expect_parse_error("1e < 2", 2, "exponent");
    expect_parse_error("2x < 3", 2, "after a number");
    expect_parse_error("1 < 2 $", 7, "unexpected '$'");
    expect_parse_error("1 ! 2", 3, "comparison operator");
    expect_parse_error("1 < 1e999", 5, "out of range");
}

Test(check, deep_nesting_is_rejected_not_crashed)
{
    char expr[300];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        expr[n++] = '(';
    expr[n++] = '1';
    for (int i = 0; i < 100; i++)
        expr[n++] = ')';
    memcpy(expr + n, " < 2", 5);
    struct oomb_check *c = NULL;
    char err[256];
    cr_expect_eq(oomb_check_parse(expr, &c, err, sizeof err), OOMB_ERR_PARSE);
    cr_expect(strstr(err, "nested too deeply") != NULL, "%s", err);

    /* Moderate nesting is fine. */
    cr_assert_eq(oomb_check_parse("((((((1)))))) < 2", &c, err, sizeof err), OOMB_OK, "%s", err);
    oomb_check_destroy(c);
}

Test(check, deep_unary_signs_are_rejected)
{
    char expr[OOMB_CHECK_MAX_LEN];
    memset(expr, '-', 200);
    memcpy(expr + 200, "1 < 2", 6);
    struct oomb_check *c = NULL;
    char err[256];
    cr_expect_eq(oomb_check_parse(expr, &c, err, sizeof err), OOMB_ERR_PARSE);
    cr_expect_null(c);
    cr_expect(strstr(err, "nested too deeply") != NULL, "%s", err);
}

Test(check, long_expression_is_rejected)
{
    /* 1+1+1+...: a left-deep tree as deep as it is long, so the length
     * bound is what keeps free and eval from recursing without end. */
    size_t len = 100000;
    char *expr = malloc(len + 8);
    cr_assert_not_null(expr);
    for (size_t i = 0; i < len; i += 2)
        memcpy(expr + i, "1+", 2);
    memcpy(expr + len, "1 < 2", 6);
    struct oomb_check *c = NULL;
    char err[256];
    cr_expect_eq(oomb_check_parse(expr, &c, err, sizeof err), OOMB_ERR_PARSE);
    cr_expect_null(c);
    cr_expect(strstr(err, "column 1025: expression longer than 1024 bytes") != NULL, "%s", err);
    free(expr);
}

Test(check, longest_flat_expression_parses_and_evaluates)
{
    /* As long as allowed and as deep as that makes it: no stack trouble. */
    char expr[OOMB_CHECK_MAX_LEN + 1];
    size_t n = 0;
    while (n + 2 <= OOMB_CHECK_MAX_LEN - 5)
        n += (size_t)snprintf(expr + n, sizeof expr - n, "1+");
    n += (size_t)snprintf(expr + n, sizeof expr - n, "1>0");
    struct oomb_check *c = NULL;
    char err[256];
    cr_assert_eq(oomb_check_parse(expr, &c, err, sizeof err), OOMB_OK, "%s", err);
    struct oomb_check_result r;
    cr_assert_eq(oomb_check_eval(c, NULL, NULL, &r, err, sizeof err), OOMB_OK, "%s", err);
    cr_expect(r.pass);
    oomb_check_destroy(c);
}

Test(check, null_arguments)
{
    struct oomb_check *c = NULL;
    struct oomb_check_result r;
    char err[64];
    cr_expect_eq(oomb_check_parse(NULL, &c, err, sizeof err), OOMB_ERR_INVALID);
    cr_expect_eq(oomb_check_parse("1 < 2", NULL, err, sizeof err), OOMB_ERR_INVALID);
    cr_expect_eq(oomb_check_eval(NULL, no_refs, NULL, &r, err, sizeof err), OOMB_ERR_INVALID);
    cr_assert_eq(oomb_check_parse("1 < 2", &c, NULL, 0), OOMB_OK);
    cr_expect_eq(oomb_check_eval(c, no_refs, NULL, NULL, err, sizeof err), OOMB_ERR_INVALID);
    cr_expect_eq(oomb_check_eval(c, NULL, NULL, &r, NULL, 0), OOMB_OK, "no references");
    cr_expect(r.pass);
    cr_expect_eq(oomb_check_ref_count(c), 0);
    cr_expect_eq(oomb_check_ref_count(NULL), 0);
    oomb_check_destroy(c);
    oomb_check_destroy(NULL);
}

/* ---------------------------------------------- the fields of a run ---- */

/* Resolves label.section.field over the runs of a results set, the way the
 * runner does, through oomb_check_run_field. */
static int resolve_runs(void *user, const char *ref, double *out, char *err, size_t err_len)
{
    const struct oomb_results *res = user;
    char label[64], section[64], field[64];
    const char *d1 = strchr(ref, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    cr_assert(d1 && d2 && d1 - ref < 64 && d2 - d1 - 1 < 64 && strlen(d2 + 1) < 64);
    snprintf(label, sizeof label, "%.*s", (int)(d1 - ref), ref);
    snprintf(section, sizeof section, "%.*s", (int)(d2 - d1 - 1), d1 + 1);
    snprintf(field, sizeof field, "%s", d2 + 1);
    for (int i = 0; i < res->n_runs; i++)
        if (strcmp(res->runs[i].strategy, label) == 0)
            return oomb_check_run_field(&res->runs[i], ref, section, field, out, err, err_len);
    snprintf(err, err_len, "no strategy '%s'", label);
    return OOMB_ERR_INVALID;
}

static struct oomb_run_result *eval_run(struct oomb_results *r, const char *label)
{
    struct oomb_run_result *run = oomb_results_add_run(r);
    cr_assert_not_null(run);
    run->strategy = strdup(label);
    cr_assert_not_null(run->strategy);
    run->outcome = OOMB_OUTCOME_OK;
    return run;
}

/* Evaluates expr over res; returns the status, fills *out. */
static int eval_over(const struct oomb_results *res, const char *expr,
                     struct oomb_check_result *out, char *err, size_t err_len)
{
    struct oomb_check *c = NULL;
    cr_assert_eq(oomb_check_parse(expr, &c, err, err_len), OOMB_OK, "'%s': %s", expr, err);
    int rc = oomb_check_eval(c, resolve_runs, (void *)res, out, err, err_len);
    oomb_check_destroy(c);
    return rc;
}

Test(check, test_accuracy_fields_resolve)
{
    struct oomb_results res = {0};
    struct oomb_run_result *none = eval_run(&res, "none");
    none->has_eval = 1;
    none->eval_samples = 10000;
    none->test_accuracy = 0.875;
    none->test_loss = 0.375;
    none->test_accuracy_delta = 0;
    struct oomb_run_result *ckpt = eval_run(&res, "ckpt");
    ckpt->has_eval = 1;
    ckpt->eval_samples = 10000;
    ckpt->test_accuracy = 0.8725;
    ckpt->test_loss = 0.5;
    ckpt->test_accuracy_delta = -0.0025;
    struct oomb_run_result *plain = eval_run(&res, "plain"); /* no evaluation */
    plain->test_accuracy = 0.9; /* stale, not used without has_eval */
    plain->test_loss = 0.1;
    plain->test_accuracy_delta = 0.01;
    plain->eval_note = strdup("plugin 'plain' has no evaluate()");

    struct oomb_check_result r;
    char err[512] = "";
    cr_assert_eq(eval_over(&res, "ckpt.quality.test_accuracy >= none.quality.test_accuracy - 0.005",
                           &r, err, sizeof err),
                 OOMB_OK, "%s", err);
    cr_expect(r.pass);
    cr_expect_eq(r.lhs, 0.8725);
    cr_expect_float_eq(r.rhs, 0.87, 1e-15);
    cr_assert_eq(eval_over(&res, "ckpt.quality.test_accuracy_delta >= -0.002", &r, err,
                           sizeof err),
                 OOMB_OK, "%s", err);
    cr_expect_not(r.pass);
    cr_expect_eq(r.lhs, -0.0025);
    cr_assert_eq(eval_over(&res, "ckpt.quality.test_loss <= 1.5 * none.quality.test_loss", &r,
                           err, sizeof err),
                 OOMB_OK, "%s", err);
    cr_expect(r.pass);
    cr_expect_eq(r.lhs, 0.5);
    cr_expect_eq(r.rhs, 0.5625);
    cr_assert_eq(eval_over(&res, "none.quality.test_accuracy_delta == 0", &r, err, sizeof err),
                 OOMB_OK, "%s", err);
    cr_expect(r.pass);

    /* Without an evaluation every test_* field is NaN: the check fails. */
    static const char *const nan_exprs[] = {"plain.quality.test_accuracy >= 0",
                                            "plain.quality.test_accuracy_delta >= -1",
                                            "plain.quality.test_loss >= 0"};
    for (size_t i = 0; i < sizeof nan_exprs / sizeof nan_exprs[0]; i++) {
        cr_assert_eq(eval_over(&res, nan_exprs[i], &r, err, sizeof err), OOMB_OK, "%s", err);
        cr_expect_not(r.pass, "'%s'", nan_exprs[i]);
        cr_expect(isnan(r.lhs), "'%s'", nan_exprs[i]);
    }
    oomb_results_free(&res);
}

Test(check, unknown_fields_list_what_exists)
{
    struct oomb_results res = {0};
    struct oomb_run_result *none = eval_run(&res, "none");
    none->has_eval = 1;
    none->test_accuracy = 0.5;
    struct oomb_check_result r;
    char err[512] = "";
    cr_expect_eq(eval_over(&res, "none.quality.test_acc > 0", &r, err, sizeof err),
                 OOMB_ERR_INVALID);
    cr_expect_str_eq(err, "'none.quality.test_acc': no metric 'quality.test_acc' (quality fields: "
                          "final_loss, accuracy, accuracy_delta, test_accuracy, "
                          "test_accuracy_delta, test_loss)");
    cr_expect_not(r.pass);
    cr_expect_eq(eval_over(&res, "none.evaluation.test_accuracy > 0", &r, err, sizeof err),
                 OOMB_ERR_INVALID);
    cr_expect(strstr(err, "(sections: memory, time, throughput, numerics, quality, metrics)"),
              "%s", err);
    cr_expect_eq(eval_over(&res, "none.memory.activ > 0", &r, err, sizeof err),
                 OOMB_ERR_INVALID);
    cr_expect(strstr(err, "memory fields: peak, peak_bytes, total, weights, grads, optimizer, "
                          "activations, workspace, other, host_peak_rss, host_peak, host_<tag>, "
                          "to_host, to_device, dataset, staging; with allocator caching: "
                          "reserved, reserved_end, fragmentation, largest_free)"),
              "%s", err);
    cr_expect_eq(eval_over(&res, "none.metrics.loss_scale > 0", &r, err, sizeof err),
                 OOMB_ERR_INVALID);
    cr_expect(strstr(err, "(metrics of this run: none)"), "%s", err);
    /* a message that does not fit is cut, still terminated */
    char small[24];
    double v;
    cr_expect_eq(oomb_check_run_field(none, NULL, "quality", "nope", &v, small, sizeof small),
                 OOMB_ERR_INVALID);
    cr_expect_eq(strlen(small), sizeof small - 1);
    cr_expect(isnan(v));
    cr_expect_eq(oomb_check_run_field(NULL, NULL, "quality", "accuracy", &v, small, sizeof small),
                 OOMB_ERR_INVALID);
    oomb_results_free(&res);
}

Test(check, run_fields_of_every_section)
{
    struct oomb_results res = {0};
    struct oomb_run_result *x = eval_run(&res, "x");
    x->peak_bytes = 1000;
    x->peak_by_tag[OOMB_TAG_ACTIVATIONS] = 600;
    x->host_peak_rss_bytes = 5000;
    x->step_stats.median = 2e6;
    x->phase_stats[OOMB_PHASE_BACKWARD].median = 1e6;
    x->samples_per_s = 32000;
    x->weight_rel_err = 1e-7;
    x->final_loss = 0.25;
    x->has_accuracy = 1;
    x->accuracy = 0.75;
    x->accuracy_delta = -0.125;
    x->n_metrics = 1;
    x->metrics = calloc(1, sizeof *x->metrics);
    cr_assert_not_null(x->metrics);
    x->metrics[0].name = strdup("loss_scale");
    x->metrics[0].value = 1024;
    static const struct {
        const char *section, *field;
        double want;
    } cases[] = {
        {"memory", "peak", 1000},           {"memory", "peak_bytes", 1000},
        {"memory", "total", 1000},          {"memory", "activations", 600},
        {"memory", "host_peak_rss", 5000},  {"time", "median", 2e6},
        {"time", "step", 2e6},              {"time", "backward", 1e6},
        {"throughput", "samples_per_s", 32000}, {"numerics", "weight_rel_err", 1e-7},
        {"quality", "final_loss", 0.25},    {"quality", "accuracy", 0.75},
        {"quality", "accuracy_delta", -0.125}, {"metrics", "loss_scale", 1024},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -1;
        char err[256] = "";
        cr_expect_eq(oomb_check_run_field(x, NULL, cases[i].section, cases[i].field, &v, err,
                                          sizeof err),
                     OOMB_OK, "%s.%s: %s", cases[i].section, cases[i].field, err);
        cr_expect_eq(v, cases[i].want, "%s.%s", cases[i].section, cases[i].field);
    }
    double v = 0;
    x->has_accuracy = 0;
    cr_expect_eq(oomb_check_run_field(x, NULL, "quality", "accuracy", &v, NULL, 0), OOMB_OK);
    cr_expect(isnan(v), "accuracy without has_accuracy is NaN");
    oomb_results_free(&res);
}
