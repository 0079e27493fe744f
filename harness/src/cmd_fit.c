/*
 * `oombench fit` (see cmd_fit.h). Memory is deterministic, so the largest
 * batch that fits is a fact to find, not a number to estimate: every probe
 * is a real run (one warm-up and one measured step, the peak of a step is
 * reached by then) of one strategy alone at one batch size, made by the
 * runner as `run` makes it. The batch doubles from 1 until a run ends
 * `oom`, then bisection between the last `ok` and the first `oom` ends with
 * two runs one sample apart: `ok` at B, `oom` at B + 1. Every probe's run
 * goes into one results file.
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
    if (!f->have_all) {
        f->all = res; /* the first probe's header stands for all */
        f->have_all = 1;
    } else {
        struct oomb_run_result *runs =
            realloc(f->all.runs, (size_t)(f->all.n_runs + 1) * sizeof *runs);
        if (!runs) {
            oomb_results_free(&res);
            oomb_errf(f->err, sizeof f->err, "out of memory");
            return -1;
        }
        f->all.runs = runs;
        f->all.runs[f->all.n_runs++] = res.runs[0];
        res.n_runs = 0; /* moved */
        free(res.runs);
        res.runs = NULL;
        oomb_results_free(&res);
    }
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

int oomb_cmd_fit(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"budget", required_argument, NULL, 'b'}, {"max-batch", required_argument, NULL, 'm'},
        {"out", required_argument, NULL, 'o'},    {"plugin-dir", required_argument, NULL, 'P'},
        {"filter", required_argument, NULL, 'F'}, {"mode", required_argument, NULL, 'M'},
        {"json", required_argument, NULL, 'J'},   {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
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
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:m:o:P:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (oomb_parse_bytes(optarg, &f.opts.budget) != OOMB_OK) {
                fprintf(stderr,
                        "oombench fit: --budget '%s': expected a byte size such as "
                        "84MiB or 2GiB\n",
                        optarg);
                return EXIT_USAGE;
            }
            f.opts.has_budget = 1;
            break;
        case 'm': {
            char *end;
            long long n = strtoll(optarg, &end, 10);
            if (end == optarg || *end || n < 1 || n > FIT_MAX_BATCH_LIMIT) {
                fprintf(stderr, "oombench fit: --max-batch '%s': expected 1 to %lld\n", optarg,
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
                fprintf(stderr, "oombench fit: too many --plugin-dir\n");
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
                fprintf(stderr, "oombench fit: --mode '%s': expected train or infer\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'J':
            if (strcmp(optarg, "-") != 0) {
                fprintf(stderr, "oombench fit: --json '%s': only '-' (standard output)\n", optarg);
                return EXIT_USAGE;
            }
            json_stdout = 1;
            break;
        case 'q':
            f.quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return EXIT_FINE;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    f.path = argv[optind];
    f.out = json_stdout ? stderr : stdout;
    f.opts.plugin_dirs = dirs;
    f.opts.n_plugin_dirs = n_dirs;

    char err[1024];
    struct oomb_scenario *sc = NULL;
    if (oomb_scenario_load(f.path, &sc, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench fit: %s\n", err);
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
            fprintf(stderr, "oombench fit: --filter '%s': %s\n", filter, why);
            oomb_scenario_destroy(sc);
            return EXIT_USAGE;
        }
        have_re = 1;
    }
    if (!sc->budget_bytes) {
        fprintf(stderr, "oombench fit: %s has no budget: give one with --budget SIZE\n", f.path);
        oomb_scenario_destroy(sc);
        if (have_re)
            regfree(&re);
        return EXIT_USAGE;
    }
    /* Probes write their results here (each removed once read); the
     * collected file goes to out_dir. */
    const char *td = getenv("TMPDIR");
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/oombench-fit-XXXXXX", td && td[0] == '/' ? td : "/tmp");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "oombench fit: cannot make a folder at %s: %s\n", tmp, strerror(errno));
        oomb_scenario_destroy(sc);
        if (have_re)
            regfree(&re);
        return EXIT_INTERNAL;
    }
    f.opts.out_dir = tmp;

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
            sc->optimizer == OOMB_OPT_ADAM ? "Adam state" : "momentum", bo, bs, bb);
    if (w + g + o > sc->budget_bytes)
        fprintf(f.out,
                "  static memory alone exceeds the budget by %.2f MiB: no batch fits "
                "`none` in training; the search shows which strategies cut it\n",
                (double)(w + g + o - sc->budget_bytes) / 1048576.0);

    struct answer *ans = calloc((size_t)(2 * sc->n_strategies + 1), sizeof *ans);
    int n = 0, failed = 0, rc = EXIT_FINE;
    if (!ans) {
        rc = EXIT_INTERNAL;
        goto done;
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
            search(&f, a, max_batch);
            failed |= a->failed;
            if (a->failed && !f.have_all) { /* the runner refused the scenario */
                fprintf(stderr, "oombench fit: %s\n", a->note);
                rc = EXIT_USAGE;
                goto done;
            }
        }
    }
    if (n == 0) {
        fprintf(stderr, "oombench fit: --filter '%s' selects no strategy\n", filter ? filter : "");
        rc = EXIT_USAGE;
        goto done;
    }
    char path[PATH_MAX + 128] = "";
    if (f.have_all) {
        char dir_err[512];
        if (oomb_mkdir_p(out_dir, dir_err, sizeof dir_err) != OOMB_OK) {
            fprintf(stderr, "oombench fit: %s\n", dir_err);
            rc = EXIT_USAGE;
            goto done;
        }
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(path, sizeof path, "%s/fit-%s-%s-%d.json", out_dir, sc->name, stamp,
                 (int)getpid());
        if (oomb_results_write(&f.all, path, err, sizeof err) != OOMB_OK) {
            fprintf(stderr, "oombench fit: %s\n", err);
            rc = EXIT_INTERNAL;
            goto done;
        }
    }
    fprintf(f.out, "\n");
    print_table(f.out, &f, ans, n);
    fprintf(f.out, "\n%d run(s); results: %s\n", f.have_all ? f.all.n_runs : 0, path);
    if (json_stdout) {
        json_t *j = answers_json(&f, sc, ans, n, path);
        if (!j || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
            rc = EXIT_INTERNAL;
        }
        fputc('\n', stdout);
        json_decref(j);
    }
    if (rc == EXIT_FINE && failed)
        rc = EXIT_FAILED;
done:
    free(ans);
    if (f.have_all)
        oomb_results_free(&f.all);
    rmdir(tmp);
    if (have_re)
        regfree(&re);
    oomb_scenario_destroy(sc);
    return rc;
}
