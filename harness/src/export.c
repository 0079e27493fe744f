/*
 * Verdict reports (export.h): console table, JUnit XML, Markdown, Google
 * Benchmark JSON. Every file is built in memory and written atomically, so
 * that a CI step never reads half a report.
 */
#include "export.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "table.h"
#include "util.h"

static const char *mode_text(enum oomb_mode m)
{
    return m == OOMB_MODE_TRAIN ? "train" : "infer";
}

static const char *kind_upper(enum oomb_verdict_kind k)
{
    switch (k) {
    case OOMB_VERDICT_REGRESSED: return "REGRESSED";
    case OOMB_VERDICT_IMPROVED: return "IMPROVED";
    case OOMB_VERDICT_NEW: return "NO BASELINE";
    case OOMB_VERDICT_MISSING: return "MISSING";
    case OOMB_VERDICT_NA: return "N/A";
    case OOMB_VERDICT_INCONCLUSIVE: return "INCONCLUSIVE";
    default: return "same";
    }
}

static void value_text(const struct oomb_verdict_item *it, double x, char *buf, size_t len)
{
    if (isnan(x)) {
        snprintf(buf, len, "-");
    } else if (it->area == OOMB_AREA_MEMORY) {
        snprintf(buf, len, "%.0f", x);
    } else if (it->area == OOMB_AREA_TIME && strcmp(it->metric, "throughput") == 0) {
        snprintf(buf, len, "%.4g/s", x);
    } else if (it->area == OOMB_AREA_TIME) {
        oomb_format_ns(x, buf, len);
    } else if (it->area == OOMB_AREA_INSTRUCTIONS) {
        snprintf(buf, len, "%.0f", x);
    } else if (it->area == OOMB_AREA_OUTCOME) {
        const char *n = oomb_outcome_name((enum oomb_outcome)(int)x);
        snprintf(buf, len, "%s", n ? n : "-");
    } else {
        snprintf(buf, len, "%.6g", x);
    }
}

void oomb_verdict_print(FILE *f, const struct oomb_verdict *v, int color, int verbose)
{
    int hidden = 0;
    if (v->blas_note[0])
        fprintf(f, "base and head ran different BLAS setups: %s\n\n", v->blas_note);
    fprintf(f, "%-12s %-28s %-22s %14s %14s  %s\n", "verdict", "run", "metric", "base", "head",
            "change");
    for (int i = 0; i < v->n; i++) {
        const struct oomb_verdict_item *it = &v->items[i];
        if (!verbose && it->kind == OOMB_VERDICT_SAME && it->area != OOMB_AREA_TIME &&
            it->area != OOMB_AREA_INSTRUCTIONS) {
            hidden++;
            continue;
        }
        char run[300], b[32], h[32];
        snprintf(run, sizeof run, "%s %s b%lld %s", it->scenario, mode_text(it->mode),
                 (long long)it->batch, it->strategy);
        value_text(it, it->base, b, sizeof b);
        value_text(it, it->head, h, sizeof h);
        const char *c0 = "", *c1 = "";
        if (color) {
            c1 = "\033[0m";
            c0 = it->kind == OOMB_VERDICT_REGRESSED  ? "\033[1;31m"
                 : it->kind == OOMB_VERDICT_IMPROVED ? "\033[32m"
                 : it->kind == OOMB_VERDICT_SAME     ? ""
                                                     : "\033[33m";
            if (!*c0)
                c1 = "";
        }
        fprintf(f, "%s%-12s%s %-28s %-22s %14s %14s  %s\n", c0, kind_upper(it->kind), c1, run,
                it->metric, b, h, it->detail);
    }
    if (hidden)
        fprintf(f, "(%d memory, outcome and quality value(s) unchanged; --verbose lists them)\n",
                hidden);
    fprintf(f, "\n%d regression(s), %d improvement(s)", v->n_regressed, v->n_improved);
    if (v->n_inconclusive)
        fprintf(f, ", %d inconclusive time(s) (too noisy to judge; not a failure)",
                v->n_inconclusive);
    if (v->n_new)
        fprintf(f, ", %d run(s) without a baseline (not compared)", v->n_new);
    if (v->n_missing)
        fprintf(f, ", %d baseline run(s) missing from the results", v->n_missing);
    if (v->rounds > 1)
        fprintf(f, "; %d rounds per side, paired by round", v->rounds);
    fprintf(f, "\n");
}

/* ------------------------------------------------------------ JUnit ------ */

/* XML 1.0 text and attribute values: the HTML encoder's output (markup
 * characters as entities, control characters and invalid UTF-8 as '?') is
 * also valid XML. */
static void xml_text(FILE *f, const char *s)
{
    (void)oomb_fput_encoded(f, oomb_encode_html, s); /* a failure shows in fclose */
}

static int write_stream(char *buf, size_t len, const char *path, char *err, size_t err_len)
{
    int rc = oomb_write_file_atomic(path, buf, len, err, err_len);
    free(buf);
    return rc;
}

/* Items a CI shows as skipped: not compared, or too noisy to judge. */
static int junit_skipped(enum oomb_verdict_kind k)
{
    return k == OOMB_VERDICT_NEW || k == OOMB_VERDICT_MISSING || k == OOMB_VERDICT_INCONCLUSIVE;
}

int oomb_export_junit(const struct oomb_verdict *v, const char *path, char *err, size_t err_len)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return OOMB_ERR_OOM;
    int failures = 0, skipped = 0;
    for (int i = 0; i < v->n; i++) {
        failures += v->items[i].kind == OOMB_VERDICT_REGRESSED;
        skipped += junit_skipped(v->items[i].kind);
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"oombench\" tests=\"%d\" failures=\"%d\" errors=\"0\" "
               "skipped=\"%d\">\n", v->n, failures, skipped);
    /* One testsuite per scenario, in order of first appearance. */
    for (int i = 0; i < v->n; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++)
            first = strcmp(v->items[j].scenario, v->items[i].scenario) != 0;
        if (!first)
            continue;
        int nt = 0, nf = 0, ns = 0;
        for (int j = i; j < v->n; j++) {
            if (strcmp(v->items[j].scenario, v->items[i].scenario) != 0)
                continue;
            nt++;
            nf += v->items[j].kind == OOMB_VERDICT_REGRESSED;
            ns += junit_skipped(v->items[j].kind);
        }
        fprintf(f, "  <testsuite name=\"");
        xml_text(f, v->items[i].scenario);
        fprintf(f, "\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"%d\">\n", nt, nf, ns);
        for (int j = i; j < v->n; j++) {
            const struct oomb_verdict_item *it = &v->items[j];
            if (strcmp(it->scenario, v->items[i].scenario) != 0)
                continue;
            char cls[320];
            snprintf(cls, sizeof cls, "%s.%s.b%lld.%s", it->scenario, mode_text(it->mode),
                     (long long)it->batch, it->strategy);
            fprintf(f, "    <testcase classname=\"");
            xml_text(f, cls);
            fprintf(f, "\" name=\"");
            xml_text(f, it->metric);
            fprintf(f, "\" time=\"0\">");
            char b[32], h[32];
            value_text(it, it->base, b, sizeof b);
            value_text(it, it->head, h, sizeof h);
            if (it->kind == OOMB_VERDICT_REGRESSED) {
                fprintf(f, "\n      <failure type=\"regression\" message=\"");
                xml_text(f, it->metric);
                fprintf(f, " regressed: ");
                xml_text(f, it->detail);
                fprintf(f, "\">base ");
                xml_text(f, b);
                fprintf(f, "\nhead ");
                xml_text(f, h);
                fprintf(f, "\n");
                xml_text(f, it->detail);
                fprintf(f, "</failure>\n    ");
            } else if (junit_skipped(it->kind)) {
                fprintf(f, "\n      <skipped message=\"");
                xml_text(f, it->detail);
                fprintf(f, "\"/>\n    ");
            } else {
                fprintf(f, "<system-out>");
                xml_text(f, kind_upper(it->kind));
                fprintf(f, ": base ");
                xml_text(f, b);
                fprintf(f, ", head ");
                xml_text(f, h);
                fprintf(f, "; ");
                xml_text(f, it->detail);
                fprintf(f, "</system-out>");
            }
            fprintf(f, "</testcase>\n");
        }
        fprintf(f, "  </testsuite>\n");
    }
    fprintf(f, "</testsuites>\n");
    if (fclose(f) != 0) {
        free(buf);
        return OOMB_ERR_OOM;
    }
    return write_stream(buf, len, path, err, err_len);
}

/* ------------------------------------------------------------ Markdown --- */

/* Markdown text and table cells (oomb_encode_markdown). */
static void md_text(FILE *f, const char *s)
{
    (void)oomb_fput_encoded(f, oomb_encode_markdown, s); /* a failure shows in fclose */
}

static void md_row(FILE *f, const struct oomb_verdict_item *it)
{
    char b[32], h[32];
    value_text(it, it->base, b, sizeof b);
    value_text(it, it->head, h, sizeof h);
    fprintf(f, "| %s | ", kind_upper(it->kind));
    md_text(f, it->scenario);
    fprintf(f, " %s b%lld | ", mode_text(it->mode), (long long)it->batch);
    md_text(f, it->strategy);
    fprintf(f, " | ");
    md_text(f, it->metric);
    fprintf(f, " | %s | %s | ", b, h);
    md_text(f, it->detail);
    fprintf(f, " |\n");
}

int oomb_export_markdown(const struct oomb_verdict *v, const char *title, const char *path,
                         char *err, size_t err_len)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return OOMB_ERR_OOM;
    fprintf(f, "## oombench verdicts: ");
    md_text(f, title);
    fprintf(f, "\n\n");
    if (v->n_regressed)
        fprintf(f, "**%d regression(s)**, %d improvement(s)", v->n_regressed, v->n_improved);
    else
        fprintf(f, "No regression; %d improvement(s)", v->n_improved);
    if (v->n_inconclusive)
        fprintf(f, "; %d inconclusive time(s) (too noisy to judge)", v->n_inconclusive);
    if (v->n_new)
        fprintf(f, "; %d run(s) without a baseline (not compared)", v->n_new);
    if (v->rounds > 1)
        fprintf(f, "; A/B, %d rounds per side", v->rounds);
    fprintf(f, ".\n\n");
    if (v->blas_note[0]) {
        fprintf(f, "Base and head ran different BLAS setups: ");
        md_text(f, v->blas_note);
        fprintf(f, ".\n\n");
    }
    const char *head = "| verdict | run | strategy | metric | base | head | detail |\n"
                       "|---|---|---|---|---|---|---|\n";
    int any = 0;
    for (int i = 0; i < v->n; i++) {
        if (v->items[i].kind == OOMB_VERDICT_SAME)
            continue;
        if (!any++)
            fprintf(f, "### Changes\n\n%s", head);
        md_row(f, &v->items[i]);
    }
    if (any)
        fprintf(f, "\n");
    any = 0;
    for (int i = 0; i < v->n; i++) {
        if (v->items[i].kind != OOMB_VERDICT_SAME || v->items[i].area != OOMB_AREA_TIME)
            continue;
        if (!any++)
            fprintf(f, "### Time (change of the median, %s interval, p)\n\n%s",
                     "bootstrap", head);
        md_row(f, &v->items[i]);
    }
    if (any)
        fprintf(f, "\n");
    int same = 0;
    for (int i = 0; i < v->n; i++)
        same += v->items[i].kind == OOMB_VERDICT_SAME && v->items[i].area != OOMB_AREA_TIME;
    fprintf(f, "%d memory, outcome and quality value(s) unchanged (memory compared exactly).\n",
            same);
    if (fclose(f) != 0) {
        free(buf);
        return OOMB_ERR_OOM;
    }
    return write_stream(buf, len, path, err, err_len);
}

/* ------------------------------------------------------------ gbench ----- */

static int add_series(json_t *arr, const char *name, const int64_t *const *s, const int *ns,
                      int rounds, int family)
{
    int total = 0, idx = 0;
    for (int r = 0; r < rounds; r++)
        total += ns[r];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < ns[r]; i++) {
            json_t *b = json_pack("{s:s, s:i, s:i, s:s, s:s, s:i, s:i, s:i, s:I, s:f, s:f, s:s}",
                                  "name", name, "family_index", family,
                                  "per_family_instance_index", 0, "run_name", name, "run_type",
                                  "iteration", "repetitions", total, "repetition_index", idx++,
                                  "threads", 1, "iterations", (json_int_t)1, "real_time",
                                  (double)s[r][i], "cpu_time", (double)s[r][i], "time_unit",
                                  "ns");
            if (!b || json_array_append_new(arr, b) != 0)
                return OOMB_ERR_OOM;
        }
    }
    return OOMB_OK;
}

int oomb_export_gbench(const struct oomb_results *r, int n, const char *path, char *err,
                       size_t err_len)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S+00:00", gmtime_r(&now, &tm));
    json_t *root = json_pack("{s:{s:s, s:s, s:s, s:i, s:f, s:b, s:[], s:[], s:s, s:s, s:s}, "
                             "s:[]}",
                             "context", "date", date, "host_name",
                             r[0].host_name ? r[0].host_name : "", "executable", "oombench",
                             "num_cpus", r[0].host_cores, "mhz_per_cpu", 0.0,
                             "cpu_scaling_enabled", 0, "caches", "load_avg",
                             "library_build_type", "release", "oombench_device_class",
                             r[0].device_class ? r[0].device_class : "",
                             "oombench_tool_version", r[0].tool_version ? r[0].tool_version : "",
                             "benchmarks");
    if (!root)
        return OOMB_ERR_OOM;
    json_t *arr = json_object_get(root, "benchmarks");
    int rc = OOMB_OK, family = 0;
    const int64_t **s = calloc((size_t)n, sizeof *s);
    int *ns = calloc((size_t)n, sizeof *ns);
    if (!s || !ns)
        rc = OOMB_ERR_OOM;
    for (int i = 0; rc == OOMB_OK && i < r[0].n_runs; i++) {
        const struct oomb_run_result *x = &r[0].runs[i];
        if (x->outcome != OOMB_OUTCOME_OK)
            continue;
        for (int m = -1; rc == OOMB_OK && m < OOMB_PHASE_COUNT; m++) {
            int any = 0;
            for (int k = 0; k < n; k++) {
                s[k] = NULL;
                ns[k] = 0;
                for (int j = 0; j < r[k].n_runs; j++) {
                    const struct oomb_run_result *y = &r[k].runs[j];
                    if (y->outcome == OOMB_OUTCOME_OK && y->mode == x->mode &&
                        y->batch == x->batch && strcmp(y->scenario, x->scenario) == 0 &&
                        strcmp(y->strategy, x->strategy) == 0) {
                        s[k] = m < 0 ? y->step_ns : y->phase_ns[m];
                        ns[k] = s[k] ? y->n_steps : 0;
                        break;
                    }
                }
                any += ns[k];
            }
            if (!any)
                continue;
            char name[512];
            snprintf(name, sizeof name, "%s/%s/batch:%lld/%s/%s", x->scenario, mode_text(x->mode),
                     (long long)x->batch, x->strategy,
                     m < 0 ? "step" : oomb_phase_name((enum oomb_phase)m));
            rc = add_series(arr, name, s, ns, n, family++);
        }
    }
    free(s);
    free(ns);
    char *text = rc == OOMB_OK ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text)
        return rc == OOMB_OK ? OOMB_ERR_OOM : rc;
    size_t tl = strlen(text);
    rc = oomb_write_file_atomic(path, text, tl, err, err_len);
    free(text);
    return rc;
}
