/*
 * `oombench fit` (see cmd_fit.h). Memory is deterministic, so the largest
 * batch that fits is a fact to find, not a number to estimate: every probe
 * is a real run (one warm-up and one measured step, the peak of a step is
 * reached by then) of one strategy alone at one batch size, made by the
 * runner as `run` makes it. The batch doubles from 1 until a run ends
 * `oom`, then bisection between the last `ok` and the first `oom` ends with
 * two runs one sample apart: `ok` at B, `oom` at B + 1. Every probe's run
 * goes into one results file.
 *
 * `oombench plan` is the same search made of dry runs (runner.h, dry_run:
 * the counting backend, no arithmetic, no memory behind the allocations),
 * plus each strategy's peak per tag at the scenario's batch sizes, so that
 * models far larger than this machine are planned in seconds.
 */
#include "cmd_fit.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "results.h"
#include "runner.h"
#include "scenario.h"
#include "table.h"
#include "util.h"

enum { EXIT_FINE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

#define FIT_DEFAULT_MAX_BATCH 65536
#define FIT_MAX_BATCH_LIMIT ((int64_t)1 << 30)

static void usage_plan(FILE *f)
{
    fprintf(f,
            "usage: oombench plan [options] SCENARIO.yaml\n"
            "\n"
            "A dry run of the scenario: each strategy's step made on a counting backend that\n"
            "computes nothing and backs no allocation with memory, while the tracker counts\n"
            "every allocation as in a real CPU run. Prints, per strategy and mode, the peak\n"
            "memory per tag at the scenario's batch sizes (or --batch) and, under a budget,\n"
            "the largest batch that fits (doubling, then bisection, as `fit` does, with dry\n"
            "runs of one warm-up and one measured step). The peaks equal a real run's, byte\n"
            "for byte, except where a strategy's memory depends on values (docs/memory-model.md,\n"
            "\"Planning without computing\").\n"
            "\n"
            "options:\n"
            "  -b, --budget SIZE     the budget (default: the scenario's; 80GiB, 84MiB, ...)\n"
            "      --batch N[,N..]   the batch sizes to plan (default: the scenario's)\n"
            "  -m, --max-batch N     search up to N (default %d)\n"
            "      --no-search       peaks only, no largest-batch search\n"
            "  -o, --out DIR         results folder (default: results)\n"
            "  -P, --plugin-dir DIR  also load plugins from DIR\n"
            "      --filter REGEX    only the strategies whose label matches\n"
            "      --mode MODE       train or infer (default: the scenario's modes)\n"
            "      --json -          the plan as JSON on standard output (the table then goes\n"
            "                        to standard error)\n"
            "  -q, --quiet           no progress lines\n"
            "  -h, --help            this help\n"
            "\n"
            "exit status: 0 planned; 1 a dry run failed where the plan needed it; 2 usage or\n"
            "input error; 3 internal error\n",
            FIT_DEFAULT_MAX_BATCH);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: oombench fit [options] SCENARIO.yaml\n"
            "\n"
            "For each strategy and mode of the scenario, the largest batch whose run fits\n"
            "the memory budget: real runs of one warm-up and one measured step, the batch\n"
            "doubled from 1 until a run ends oom, then bisection. The answer B is exact and\n"
            "verified: an ok run at B and an oom run at B + 1, both in the results file.\n"
            "When the weights, gradients and optimizer state alone exceed the budget, it\n"
            "says so with the numbers.\n"
            "\n"
            "options:\n"
            "  -b, --budget SIZE     the budget (default: the scenario's; 2GiB, 84MiB, ...)\n"
            "  -m, --max-batch N     search up to N (default %d)\n"
            "  -o, --out DIR         results folder (default: results)\n"
            "  -P, --plugin-dir DIR  also load plugins from DIR\n"
            "      --filter REGEX    only the strategies whose label matches\n"
            "      --mode MODE       train or infer (default: the scenario's modes)\n"
            "      --json -          the answers as JSON on standard output (the table and\n"
            "                        progress then go to standard error)\n"
            "  -q, --quiet           no progress lines\n"
            "  -h, --help            this help\n"
            "\n"
            "exit status: 0 every search ended with an answer; 1 a run crashed, timed out or\n"
            "failed where the search needed an answer; 2 usage or input error; 3 internal\n"
            "error\n",
            FIT_DEFAULT_MAX_BATCH);
}

/* What one strategy x mode search found. */
struct answer {
    const char *label;
    enum oomb_mode mode;
    int64_t best;        /* the largest batch that ran ok (0: none) */
    int64_t first_oom;   /* the smallest batch that ran oom (0: none up to max) */
    int ok_run, oom_run; /* their runs in the collected results (-1: none) */
    int failed;          /* a run crashed, timed out or erred where it mattered */
    char note[1280];
};

struct fit {
    const char *path;
    struct oomb_run_options opts;
    struct oomb_results all; /* every probe's run */
    int have_all;
    int quiet;
    FILE *out;
    char err[1024];
};

/* Moves the runs of res to the end of f->all (res is freed either way).
 * Returns 0, or -1 with f->err set. */
static int collect(struct fit *f, struct oomb_results *res)
{
    if (!f->have_all) {
        f->all = *res; /* the first runner call's header stands for all */
        memset(res, 0, sizeof *res);
        f->have_all = 1;
        return 0;
    }
    struct oomb_run_result *runs =
        realloc(f->all.runs, (size_t)(f->all.n_runs + res->n_runs) * sizeof *runs);
    if (!runs) {
        oomb_results_free(res);
        oomb_errf(f->err, sizeof f->err, "out of memory");
        return -1;
    }
    f->all.runs = runs;
    for (int i = 0; i < res->n_runs; i++)
        f->all.runs[f->all.n_runs++] = res->runs[i];
    res->n_runs = 0; /* moved */
    free(res->runs);
    res->runs = NULL;
    oomb_results_free(res);
    return 0;
}

/* One run of `label` in `mode` at `batch`; its index in f->all, or -1 with
 * f->err set when the runner itself failed. */
static int probe(struct fit *f, const char *label, enum oomb_mode mode, int64_t batch)
{
    struct oomb_run_options o = f->opts;
    o.batch = batch;
    o.modes = (uint32_t)mode;
    o.only_label = label;
    struct oomb_results res = {0};
    struct oomb_run_summary sum = {0};
    const char *paths[1] = {f->path};
    int rc = oomb_runner_run(paths, 1, &o, &res, &sum, f->err, sizeof f->err);
    if (sum.results_path[0])
        unlink(sum.results_path); /* the collected file is the record */
    if (rc != OOMB_OK || res.n_runs != 1) {
        if (rc == OOMB_OK)
            oomb_errf(f->err, sizeof f->err, "no run of '%s' at batch %lld", label,
                      (long long)batch);
        oomb_results_free(&res);
        return -1;
    }
    if (collect(f, &res) != 0)
        return -1;
    int idx = f->all.n_runs - 1;
    const struct oomb_run_result *r = &f->all.runs[idx];
    if (!f->quiet) {
        char peak[32];
        oomb_format_bytes(r->alloc_kind == 1 ? r->alloc.reserved_peak : r->peak_bytes, peak,
                          sizeof peak);
        char lab[80];
        fprintf(f->out, "  %s %s batch %lld: %s (%s)\n", oomb_term_text(label, 48, lab, sizeof lab),
                mode == OOMB_MODE_TRAIN ? "train" : "infer", (long long)batch,
                oomb_outcome_name(r->outcome), peak);
    }
    return idx;
}

/* One probe at batch b, recorded in a: 1 ok, 0 oom, -1 another outcome
 * (*out is the run), -2 the runner itself failed (a->note says why). */
static int try_batch(struct fit *f, struct answer *a, int64_t b, const struct oomb_run_result **out)
{
    int i = probe(f, a->label, a->mode, b);
    if (i < 0) {
        a->failed = 1;
        snprintf(a->note, sizeof a->note, "%s", f->err);
        return -2;
    }
    const struct oomb_run_result *r = &f->all.runs[i];
    *out = r;
    if (r->outcome == OOMB_OUTCOME_OK) {
        a->best = b;
        a->ok_run = i;
        return 1;
    }
    if (r->outcome == OOMB_OUTCOME_OOM) {
        a->first_oom = b;
        a->oom_run = i;
        return 0;
    }
    return -1;
}

static void fail_at(struct answer *a, int64_t b, const struct oomb_run_result *r)
{
    a->failed = 1;
    snprintf(a->note, sizeof a->note, "batch %lld: %s: %s", (long long)b,
             oomb_outcome_name(r->outcome), r->reason ? r->reason : "");
}

static void search(struct fit *f, struct answer *a, int64_t max_batch)
{
    a->best = a->first_oom = 0;
    a->ok_run = a->oom_run = -1;
    /* floor: the largest batch the strategy refused with an error before any
     * ran (a micro-batch or accumulation steps above the batch); the answer
     * lies above it */
    int64_t b = 1, floor = 0;
    const struct oomb_run_result *r = NULL, *other = NULL;
    for (;;) { /* doubling */
        int rc = try_batch(f, a, b, &r);
        if (rc == -2)
            return;
        if (rc == 0)
            break;
        if (rc == -1) {
            if (a->best > 0) {
                fail_at(a, b, r);
                return;
            }
            other = r;
            if (r->outcome != OOMB_OUTCOME_ERROR)
                break; /* not applicable or skipped: no batch will do */
            floor = b;
        }
        if (b >= max_batch)
            break;
        b = b * 2 > max_batch ? max_batch : b * 2;
    }
    if (a->best == 0 && a->first_oom == 0) {
        snprintf(a->note, sizeof a->note, "no batch up to %lld ran: %s: %s", (long long)max_batch,
                 other ? oomb_outcome_name(other->outcome) : "?",
                 other && other->reason ? other->reason : "");
        a->failed = other && other->outcome == OOMB_OUTCOME_ERROR;
        return;
    }
    if (a->first_oom == 0) {
        snprintf(a->note, sizeof a->note, "fits at --max-batch %lld; raise it to search further",
                 (long long)max_batch);
        if (floor > 0) {
            size_t l = strlen(a->note);
            snprintf(a->note + l, sizeof a->note - l, "; refused batch %lld and below",
                     (long long)floor);
        }
        return;
    }
    /* bisection between the largest ok (or the floor) and the smallest oom */
    for (;;) {
        int64_t lo = a->best > floor ? a->best : floor;
        if (a->first_oom - lo <= 1)
            break;
        int64_t mid = lo + (a->first_oom - lo) / 2;
        int rc = try_batch(f, a, mid, &r);
        if (rc == -2)
            return;
        if (rc == -1) {
            if (a->best > 0 || r->outcome != OOMB_OUTCOME_ERROR) {
                fail_at(a, mid, r);
                return;
            }
            floor = mid;
        }
    }
    if (floor > 0 && a->best > 0)
        snprintf(a->note, sizeof a->note, "refused batch %lld and below", (long long)floor);
    if (a->best == 0) {
        /* the smallest batch it runs ran out of memory: say what was held */
        const struct oomb_run_result *o1 = &f->all.runs[a->oom_run];
        char w[32], g[32], o[32], q[32], u[32], bud[32];
        oomb_format_bytes(o1->peak_by_tag[OOMB_TAG_WEIGHTS], w, sizeof w);
        oomb_format_bytes(o1->peak_by_tag[OOMB_TAG_GRADS], g, sizeof g);
        oomb_format_bytes(o1->peak_by_tag[OOMB_TAG_OPTIMIZER], o, sizeof o);
        oomb_format_bytes(o1->oom_request_bytes, q, sizeof q);
        oomb_format_bytes(o1->oom_in_use_bytes, u, sizeof u);
        oomb_format_bytes(o1->budget_bytes, bud, sizeof bud);
        snprintf(a->note, sizeof a->note,
                 "even batch %lld%s runs out of memory: weights %s, gradients %s, optimizer %s "
                 "held when %s more was refused with %s in use (budget %s)",
                 (long long)a->first_oom, a->first_oom > 1 ? " (the smallest it runs)" : "", w, g,
                 o, q, u, bud);
    }
}

/* Parameters of the model and its static bytes as `none` holds them in
 * training: weights and gradients 4P each, Adam's m and v 8P, SGD's
 * momentum 4P (none without momentum). */
static void static_bytes(const struct oomb_scenario *sc, uint64_t *params, uint64_t *w, uint64_t *g,
                         uint64_t *o)
{
    uint64_t p = 0;
    for (int l = 0; l < sc->model.n_layers; l++)
        p += (uint64_t)sc->model.layers[l]->n_params;
    *params = p;
    *w = *g = 4 * p;
    *o = sc->optimizer == OOMB_OPT_ADAM ? 8 * p : sc->momentum != 0 ? 4 * p : 0;
}

static void print_table(FILE *out, const struct fit *f, const struct answer *ans, int n)
{
    fprintf(out, "%-20s %-6s %10s %12s %12s %12s %10s  %s\n", "strategy", "mode", "max batch",
            "peak", "headroom", "step", "samples/s", "verified by / note");
    for (int i = 0; i < n; i++) {
        const struct answer *a = &ans[i];
        const struct oomb_run_result *r = a->ok_run >= 0 ? &f->all.runs[a->ok_run] : NULL;
        char lab[80], mb[32] = "-", pk[32] = "-", hr[32] = "-", st[32] = "-", tp[32] = "-";
        char ver[128] = "";
        if (a->best > 0)
            snprintf(mb, sizeof mb, "%s%lld", a->first_oom ? "" : ">=", (long long)a->best);
        if (r) {
            uint64_t held = r->alloc_kind == 1 ? r->alloc.reserved_peak : r->peak_bytes;
            oomb_format_bytes(held, pk, sizeof pk);
            if (r->budget_bytes && held <= r->budget_bytes)
                oomb_format_bytes(r->budget_bytes - held, hr, sizeof hr);
            oomb_format_ns(r->step_stats.median, st, sizeof st);
            if (isfinite(r->samples_per_s))
                snprintf(tp, sizeof tp, "%.0f", r->samples_per_s);
        }
        if (a->best > 0 && a->first_oom)
            snprintf(ver, sizeof ver, "ok at %lld, oom at %lld", (long long)a->best,
                     (long long)a->first_oom);
        char note[1300];
        oomb_term_text(a->note, 400, note, sizeof note);
        fprintf(out, "%-20s %-6s %10s %12s %12s %12s %10s  %s%s%s\n",
                oomb_term_text(a->label, 20, lab, sizeof lab),
                a->mode == OOMB_MODE_TRAIN ? "train" : "infer", mb, pk, hr, st, tp, ver,
                ver[0] && note[0] ? "; " : "", note);
    }
}

static json_t *answers_json(const struct fit *f, const struct oomb_scenario *sc,
                            const struct answer *ans, int n, const char *results_path)
{
    json_t *root = json_object(), *arr = json_array();
    json_object_set_new(root, "scenario", json_string(sc->name));
    json_object_set_new(root, "budget_bytes", json_integer((json_int_t)sc->budget_bytes));
    json_object_set_new(root, "results", json_string(results_path));
    for (int i = 0; i < n; i++) {
        const struct answer *a = &ans[i];
        json_t *o = json_object();
        const struct oomb_run_result *r = a->ok_run >= 0 ? &f->all.runs[a->ok_run] : NULL;
        json_object_set_new(o, "strategy", json_string(a->label));
        json_object_set_new(o, "mode", json_string(a->mode == OOMB_MODE_TRAIN ? "train" : "infer"));
        json_object_set_new(o, "max_batch", a->best > 0 ? json_integer(a->best) : json_null());
        json_object_set_new(o, "first_oom_batch",
                            a->first_oom > 0 ? json_integer(a->first_oom) : json_null());
        json_object_set_new(o, "exact", json_boolean(a->best > 0 && a->first_oom == a->best + 1));
        if (r) {
            json_object_set_new(o, "peak_bytes", json_integer((json_int_t)r->peak_bytes));
            if (r->alloc_kind == 1)
                json_object_set_new(o, "reserved_peak_bytes",
                                    json_integer((json_int_t)r->alloc.reserved_peak));
            json_object_set_new(o, "step_ns", json_real(r->step_stats.median));
            json_object_set_new(o, "samples_per_s",
                                isfinite(r->samples_per_s) ? json_real(r->samples_per_s)
                                                           : json_null());
        }
        json_object_set_new(o, "ok_run", a->ok_run >= 0 ? json_integer(a->ok_run) : json_null());
        json_object_set_new(o, "oom_run", a->oom_run >= 0 ? json_integer(a->oom_run) : json_null());
        json_object_set_new(o, "note", json_string(a->note));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "fits", arr);
    return root;
}

/* The answer of a search for the run's strategy and mode, or NULL. */
static const struct answer *answer_of(const struct answer *ans, int n,
                                      const struct oomb_run_result *r)
{
    for (int i = 0; i < n; i++)
        if (ans[i].mode == r->mode && strcmp(ans[i].label, r->strategy) == 0)
            return &ans[i];
    return NULL;
}

/* "123" (exact), ">=123" (fits up to --max-batch), "-" (none, or no search) */
static void max_batch_text(const struct answer *a, int no_search, char *buf, size_t len)
{
    if (no_search || !a || a->best <= 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%s%lld", a->first_oom ? "" : ">=", (long long)a->best);
}

static void print_plan(FILE *out, const struct fit *f, int n_peak, const regex_t *re,
                       const struct answer *ans, int n, int no_search)
{
    fprintf(out, "%-20s %-6s %7s %-8s %11s %11s %11s %11s %11s %11s %11s %10s\n", "strategy",
            "mode", "batch", "outcome", "peak", "weights", "grads", "optimizer", "activations",
            "workspace", "other", "max batch");
    for (int i = 0; i < n_peak; i++) {
        const struct oomb_run_result *r = &f->all.runs[i];
        if (re && regexec(re, r->strategy, 0, NULL, 0) != 0)
            continue;
        char lab[80], cells[OOMB_TAG_COUNT + 1][32], mb[32];
        uint64_t held = r->alloc_kind == 1 ? r->alloc.reserved_peak : r->peak_bytes;
        int has = r->outcome == OOMB_OUTCOME_OK || r->outcome == OOMB_OUTCOME_OOM;
        oomb_format_bytes(held, cells[0], sizeof cells[0]);
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            oomb_format_bytes(r->peak_by_tag[t], cells[t + 1], sizeof cells[t + 1]);
        max_batch_text(answer_of(ans, n, r), no_search, mb, sizeof mb);
        fprintf(out, "%-20s %-6s %7lld %-8s", oomb_term_text(r->strategy, 20, lab, sizeof lab),
                r->mode == OOMB_MODE_TRAIN ? "train" : "infer", (long long)r->batch,
                oomb_outcome_name(r->outcome));
        for (int c = 0; c <= OOMB_TAG_COUNT; c++)
            fprintf(out, " %11s", has ? cells[c] : "-");
        fprintf(out, " %10s\n", mb);
        if (!has && r->reason && r->reason[0]) {
            char why[420];
            fprintf(out, "    %s\n", oomb_term_text(r->reason, 400, why, sizeof why));
        }
    }
    fprintf(out, "peak: the largest tracked total (reserved under `allocator: caching`); the tags "
                 "are each tag's own peak; max batch: under the budget, found with dry runs "
                 "(\">=N\": fits at --max-batch)\n");
}

/* Adds "plans": one object per planned run (strategy, mode, batch, outcome,
 * peak bytes and per tag) to root. */
static void plan_json(json_t *root, const struct fit *f, int n_peak, const regex_t *re,
                      int no_search)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < n_peak; i++) {
        const struct oomb_run_result *r = &f->all.runs[i];
        if (re && regexec(re, r->strategy, 0, NULL, 0) != 0)
            continue;
        json_t *o = json_object(), *tags = json_object();
        json_object_set_new(o, "strategy", json_string(r->strategy));
        json_object_set_new(o, "mode", json_string(r->mode == OOMB_MODE_TRAIN ? "train" : "infer"));
        json_object_set_new(o, "batch", json_integer(r->batch));
        json_object_set_new(o, "outcome", json_string(oomb_outcome_name(r->outcome)));
        json_object_set_new(o, "reason", json_string(r->reason ? r->reason : ""));
        json_object_set_new(o, "peak_bytes", json_integer((json_int_t)r->peak_bytes));
        if (r->alloc_kind == 1)
            json_object_set_new(o, "reserved_peak_bytes",
                                json_integer((json_int_t)r->alloc.reserved_peak));
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            json_object_set_new(tags, oomb_tag_name((enum oomb_tag)t),
                                json_integer((json_int_t)r->peak_by_tag[t]));
        json_object_set_new(o, "peak_by_tag", tags);
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "plans", arr);
    json_object_set_new(root, "searched", json_boolean(!no_search));
}

static int fit_main(int argc, char **argv, int plan)
{
    static const struct option longopts[] = {
        {"budget", required_argument, NULL, 'b'}, {"max-batch", required_argument, NULL, 'm'},
        {"out", required_argument, NULL, 'o'},    {"plugin-dir", required_argument, NULL, 'P'},
        {"filter", required_argument, NULL, 'F'}, {"mode", required_argument, NULL, 'M'},
        {"json", required_argument, NULL, 'J'},   {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {"batch", required_argument, NULL, 'X'},
        {"no-search", no_argument, NULL, 'N'},    {NULL, 0, NULL, 0}};
    const char *cmd = plan ? "plan" : "fit";
    void (*help)(FILE *) = plan ? usage_plan : usage;
    int64_t batches[64];
    int n_batches = 0, no_search = 0;
    struct fit f = {0};
    const char *dirs[16];
    int n_dirs = 0, json_stdout = 0, c;
    int64_t max_batch = FIT_DEFAULT_MAX_BATCH;
    const char *out_dir = "results", *filter = NULL;
    uint32_t modes = 0;
    f.opts.has_warmup = 1;
    f.opts.warmup = 1;
    f.opts.steps = 1;
    f.opts.quiet = 1;
    f.opts.dry_run = plan;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:m:o:P:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (oomb_parse_bytes(optarg, &f.opts.budget) != OOMB_OK) {
                fprintf(stderr,
                        "oombench %s: --budget '%s': expected a byte size such as "
                        "84MiB or 2GiB\n", cmd,
                        optarg);
                return EXIT_USAGE;
            }
            f.opts.has_budget = 1;
            break;
        case 'm': {
            char *end;
            long long n = strtoll(optarg, &end, 10);
            if (end == optarg || *end || n < 1 || n > FIT_MAX_BATCH_LIMIT) {
                fprintf(stderr, "oombench %s: --max-batch '%s': expected 1 to %lld\n", cmd, optarg,
                        (long long)FIT_MAX_BATCH_LIMIT);
                return EXIT_USAGE;
            }
            max_batch = n;
            break;
        }
        case 'o':
            out_dir = optarg;
            break;
        case 'P':
            if (n_dirs == 16) {
                fprintf(stderr, "oombench %s: too many --plugin-dir\n", cmd);
                return EXIT_USAGE;
            }
            dirs[n_dirs++] = optarg;
            break;
        case 'F':
            filter = optarg;
            break;
        case 'M':
            if (strcmp(optarg, "train") == 0)
                modes = OOMB_MODE_TRAIN;
            else if (strcmp(optarg, "infer") == 0)
                modes = OOMB_MODE_INFER;
            else {
                fprintf(stderr, "oombench %s: --mode '%s': expected train or infer\n", cmd, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'J':
            if (strcmp(optarg, "-") != 0) {
                fprintf(stderr, "oombench %s: --json '%s': only '-' (standard output)\n", cmd, optarg);
                return EXIT_USAGE;
            }
            json_stdout = 1;
            break;
        case 'q':
            f.quiet = 1;
            break;
        case 'X': {
            const char *q = optarg;
            for (;;) {
                char *end;
                errno = 0;
                long long n = strtoll(q, &end, 10);
                if (errno || end == q || n < 1 || n > FIT_MAX_BATCH_LIMIT ||
                    (*end && *end != ',') || n_batches == 64) {
                    fprintf(stderr,
                            "oombench %s: --batch '%s': expected up to 64 sizes from 1 to %lld, "
                            "separated by commas\n",
                            cmd, optarg, (long long)FIT_MAX_BATCH_LIMIT);
                    return EXIT_USAGE;
                }
                batches[n_batches++] = n;
                if (!*end)
                    break;
                q = end + 1;
            }
            break;
        }
        case 'N':
            no_search = 1;
            break;
        case 'h':
            help(stdout);
            return EXIT_FINE;
        default:
            help(stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || (!plan && (n_batches || no_search))) {
        if (!plan && (n_batches || no_search))
            fprintf(stderr, "oombench fit: --batch and --no-search are options of `plan`\n");
        help(stderr);
        return EXIT_USAGE;
    }
    f.path = argv[optind];
    f.out = json_stdout ? stderr : stdout;
    f.opts.plugin_dirs = dirs;
    f.opts.n_plugin_dirs = n_dirs;

    char err[1024];
    struct oomb_scenario *sc = NULL;
    if (oomb_scenario_load(f.path, &sc, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    if (f.opts.has_budget)
        sc->budget_bytes = f.opts.budget;
    regex_t re;
    int have_re = 0;
    if (filter) {
        int e = regcomp(&re, filter, REG_EXTENDED | REG_NOSUB);
        if (e != 0) {
            char why[256];
            regerror(e, &re, why, sizeof why);
            fprintf(stderr, "oombench %s: --filter '%s': %s\n", cmd, filter, why);
            oomb_scenario_destroy(sc);
            return EXIT_USAGE;
        }
        have_re = 1;
    }
    if (!sc->budget_bytes && !plan) {
        fprintf(stderr, "oombench %s: %s has no budget: give one with --budget SIZE\n", cmd, f.path);
        oomb_scenario_destroy(sc);
        if (have_re)
            regfree(&re);
        return EXIT_USAGE;
    }
    /* Probes write their results here (each removed once read); the
     * collected file goes to out_dir. */
    const char *td = getenv("TMPDIR");
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/oombench-%s-XXXXXX", td && td[0] == '/' ? td : "/tmp", cmd);
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "oombench %s: cannot make a folder at %s: %s\n", cmd, tmp, strerror(errno));
        oomb_scenario_destroy(sc);
        if (have_re)
            regfree(&re);
        return EXIT_INTERNAL;
    }
    f.opts.out_dir = tmp;
    /* one load of the plugins for every probe */
    struct oomb_registry reg = {0};
    int have_reg = 0;
    if (oomb_registry_load_flags(&reg, dirs, n_dirs, NULL, 0, 0, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench %s: %s\n", cmd, err);
        oomb_scenario_destroy(sc);
        if (have_re)
            regfree(&re);
        rmdir(tmp);
        return EXIT_USAGE;
    }
    have_reg = 1;
    f.opts.registry = &reg;

    uint64_t P, w, g, o;
    static_bytes(sc, &P, &w, &g, &o);
    char bw[32], bg[32], bo[32], bs[32], bb[32];
    oomb_format_bytes(w, bw, sizeof bw);
    oomb_format_bytes(g, bg, sizeof bg);
    oomb_format_bytes(o, bo, sizeof bo);
    oomb_format_bytes(w + g + o, bs, sizeof bs);
    oomb_format_bytes(sc->budget_bytes, bb, sizeof bb);
    fprintf(f.out,
            "%s: %llu parameters; in training `none` holds weights %s + gradients %s + %s %s "
            "= %s before any activation; budget %s\n",
            sc->name, (unsigned long long)P, bw, bg,
            sc->optimizer == OOMB_OPT_ADAM ? "Adam state" : "momentum", bo, bs,
            sc->budget_bytes ? bb : "none");
    if (sc->budget_bytes && w + g + o > sc->budget_bytes)
        fprintf(f.out,
                "  static memory alone exceeds the budget by %.2f MiB: no batch fits "
                "`none` in training; the search shows which strategies cut it\n",
                (double)(w + g + o - sc->budget_bytes) / 1048576.0);

    struct answer *ans = calloc((size_t)(2 * sc->n_strategies + 1), sizeof *ans);
    int n = 0, failed = 0, rc = EXIT_FINE, n_peak_runs = 0;
    if (!ans) {
        rc = EXIT_INTERNAL;
        goto done;
    }
    if (plan) { /* the peaks at the scenario's batches, its own step counts */
        if (!n_batches)
            for (int b = 0; b < sc->n_batches && n_batches < 64; b++)
                batches[n_batches++] = sc->batches[b];
        for (int b = 0; b < n_batches; b++)
            for (int s = 0; s < sc->n_strategies; s++) {
                const char *label = sc->strategies[s].label;
                if (have_re && regexec(&re, label, 0, NULL, 0) != 0)
                    continue;
                struct oomb_run_options po = f.opts;
                po.has_warmup = 0;
                po.steps = 0;
                po.batch = batches[b];
                po.modes = modes;
                po.only_label = label;
                struct oomb_results res = {0};
                struct oomb_run_summary sum = {0};
                const char *paths[1] = {f.path};
                int r = oomb_runner_run(paths, 1, &po, &res, &sum, f.err, sizeof f.err);
                if (sum.results_path[0])
                    unlink(sum.results_path);
                if (r != OOMB_OK) {
                    oomb_results_free(&res);
                    fprintf(stderr, "oombench plan: %s\n", f.err);
                    rc = r == OOMB_ERR_IO || r == OOMB_ERR_INTERNAL ? EXIT_INTERNAL : EXIT_USAGE;
                    goto done;
                }
                if (collect(&f, &res) != 0) {
                    rc = EXIT_INTERNAL;
                    goto done;
                }
            }
        n_peak_runs = f.all.n_runs;
        if (!sc->budget_bytes)
            no_search = 1;
    }
    for (int mi = 0; mi < 2; mi++) {
        enum oomb_mode mode = mi == 0 ? OOMB_MODE_TRAIN : OOMB_MODE_INFER;
        if (!(sc->modes & mode) || (modes && !(modes & mode)))
            continue;
        for (int s = 0; s < sc->n_strategies; s++) {
            const char *label = sc->strategies[s].label;
            if (have_re && regexec(&re, label, 0, NULL, 0) != 0)
                continue;
            struct answer *a = &ans[n++];
            a->label = label;
            a->mode = mode;
            if (no_search) {
                a->ok_run = a->oom_run = -1;
                continue;
            }
            search(&f, a, max_batch);
            failed |= a->failed;
            if (a->failed && !f.have_all) { /* the runner refused the scenario */
                fprintf(stderr, "oombench %s: %s\n", cmd, a->note);
                rc = EXIT_USAGE;
                goto done;
            }
        }
    }
    if (n == 0) {
        fprintf(stderr, "oombench %s: --filter '%s' selects no strategy\n", cmd, filter ? filter : "");
        rc = EXIT_USAGE;
        goto done;
    }
    char path[PATH_MAX + 128] = "";
    if (f.have_all) {
        char dir_err[512];
        if (oomb_mkdir_p(out_dir, dir_err, sizeof dir_err) != OOMB_OK) {
            fprintf(stderr, "oombench %s: %s\n", cmd, dir_err);
            rc = EXIT_USAGE;
            goto done;
        }
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(path, sizeof path, "%s/%s-%s-%s-%d.json", out_dir, cmd, sc->name, stamp,
                 (int)getpid());
        if (oomb_results_write(&f.all, path, err, sizeof err) != OOMB_OK) {
            fprintf(stderr, "oombench %s: %s\n", cmd, err);
            rc = EXIT_INTERNAL;
            goto done;
        }
    }
    fprintf(f.out, "\n");
    if (plan)
        print_plan(f.out, &f, n_peak_runs, have_re ? &re : NULL, ans, n, no_search);
    else
        print_table(f.out, &f, ans, n);
    fprintf(f.out, "\n%d %srun(s); results: %s\n", f.have_all ? f.all.n_runs : 0,
            plan ? "dry " : "", path);
    if (json_stdout) {
        json_t *j = answers_json(&f, sc, ans, n, path);
        if (j && plan)
            plan_json(j, &f, n_peak_runs, have_re ? &re : NULL, no_search);
        if (!j || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
            rc = EXIT_INTERNAL;
        }
        fputc('\n', stdout);
        json_decref(j);
    }
    if (rc == EXIT_FINE && failed)
        rc = EXIT_FAILED;
done:
    if (have_reg)
        oomb_registry_free(&reg);
    free(ans);
    if (f.have_all)
        oomb_results_free(&f.all);
    rmdir(tmp);
    if (have_re)
        regfree(&re);
    oomb_scenario_destroy(sc);
    return rc;
}

int oomb_cmd_fit(int argc, char **argv)
{
    return fit_main(argc, argv, 0);
}

int oomb_cmd_plan(int argc, char **argv)
{
    return fit_main(argc, argv, 1);
}
