/*
 * The `oombench` command line: subcommands run and list (compare, baseline,
 * report and ab are added by their modules). Exit codes, documented in the
 * README: 0 fine, 1 a run failed or a check failed, 2 usage or input error,
 * 3 internal error.
 */
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>

#include "backend.h"
#include "cmd_fit.h"
#include "cmd_history.h"
#include "cmd_merge.h"
#include "cmd_report.h"
#include "cmd_verdict.h"
#include "instr.h"
#include "loader.h"
#include "results.h"
#include "runner.h"
#include "scenario.h"
#include "table.h"
#include "util.h"

enum { EXIT_FINE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

#define MAX_LIST 64

static void usage_main(FILE *f)
{
    fprintf(f, "usage: oombench <command> [options]\n"
               "\n"
               "Measures how memory-saving strategies for neural networks trade memory for\n"
               "speed and accuracy.\n"
               "\n"
               "commands:\n"
               "  run SCENARIO...   run scenarios, print a table, write a results file\n"
               "  list              show the plugins and scenarios found\n"
               "  compare RESULTS   verdicts of a results file against the baselines\n"
               "  baseline save R.. store results files (one run or several) as the baselines\n"
               "  ab                interleaved A/B runs of two plugin builds\n"
               "  report RESULTS... charts (gnuplot), index.html and summary.md\n"
               "  merge FILES...    the results of `run --shard I/N` into one file\n"
               "  fit SCENARIO      the largest batch that fits the budget, per strategy,\n"
               "                    found and verified with real runs\n"
               "  plan SCENARIO     peaks per tag and the largest batch, per strategy, from\n"
               "                    dry runs that compute nothing (any model size)\n"
               "  history DIR       a metric per commit, and where it first regressed\n"
               "\n"
               "options:\n"
               "  -h, --help        this help; `oombench <command> --help` for a command\n"
               "  -V, --version     print the version\n"
               "\n"
               "exit status: 0 fine, 1 a run or check failed, 2 usage or input error,\n"
               "3 internal error\n");
}

static void usage_run(FILE *f)
{
    fprintf(f, "usage: oombench run [options] SCENARIO.yaml...\n"
               "\n"
               "Runs every scenario x mode x batch x strategy in its own child process and\n"
               "writes one results file (JSON, docs/results-format.md) per invocation.\n"
               "\n"
               "options:\n"
               "  -o, --out DIR          results folder (default: results)\n"
               "  -d, --device DEV       override the scenarios' backend: cpu, cuda, cuda:N\n"
               "  -t, --timeout SECONDS  per-run time limit (default: the scenario's)\n"
               "  -P, --plugin-dir DIR   also load plugins from DIR (repeatable)\n"
               "  -p, --plugin FILE.so   also load this plugin (repeatable)\n"
               "      --allow-unsafe-plugins\n"
               "                         load plugins from files or folders others may\n"
               "                         write (world-writable; refused by default)\n"
               "  -q, --quiet            no progress lines (by default one per finished run\n"
               "                         with elapsed time, ETA and outcome, rewritten in\n"
               "                         place on a terminal; each scenario's table and\n"
               "                         checks print as soon as its runs are done)\n"
               "      --threads N        BLAS (and OpenMP) threads of every run (default:\n"
               "                         the scenario's `threads`, else 1); recorded per run\n"
               "      --steps N          measure N steps in every run instead of the\n"
               "                         scenario's `steps.measured` or `steps.epochs` (a quick\n"
               "                         look: the peaks of most strategies do not depend on it)\n"
               "      --epochs E         train E passes (a fraction is fine) in every scenario\n"
               "                         counted in `steps.epochs` (Fashion-MNIST); the\n"
               "                         others keep their steps\n"
               "      --allocator KIND   exact (tensor bytes) or caching (those bytes replayed\n"
               "                         through PyTorch's caching allocator rules: reserved\n"
               "                         bytes, fragmentation; the budget applies to reserved)\n"
               "                         for every run (default: the scenario's `allocator`)\n"
               "      --alloc-conf OPTS  the caching model's options in PYTORCH_CUDA_ALLOC_CONF\n"
               "                         syntax, e.g. expandable_segments:True,\n"
               "                         max_split_size_mb:128 (implies --allocator caching)\n"
               "      --no-color         no colours in the table (also NO_COLOR=1)\n"
               "      --shard I/N        only shard I of N (1 <= I <= N): the scenario x mode x\n"
               "                         batch configurations, each with all its strategies,\n"
               "                         spread over N shards by estimated cost; merge the\n"
               "                         N results files with `oombench merge`\n"
               "                         (docs/scale-out.md). SLURM_ARRAY_TASK_ID style\n"
               "                         indices are 1-based here\n"
               "      --filter REGEX     only the runs whose name scenario/mode/batch/label\n"
               "                         (mlp/train/256/fp16) matches this extended regular\n"
               "                         expression, with each selected configuration's\n"
               "                         `none` as the reference; checks naming a run left\n"
               "                         out are skipped\n"
               "      --json -           also write the results JSON to standard output (the\n"
               "                         tables and progress then go to standard error)\n"
               "      --dry-run          every run on the counting backend: the allocations of\n"
               "                         a CPU run, tracked byte for byte, with no arithmetic\n"
               "                         and no memory behind them (times, losses and accuracy\n"
               "                         mean nothing; runs marked dry_run); see `oombench plan`\n"
               "      --commit REV       the source revision the results record (default: the\n"
               "                         CI's GITHUB_SHA, CI_COMMIT_SHA, ... variable, else\n"
               "                         `git log -1` where the first scenario lives); read\n"
               "                         by `oombench history`\n"
               "      --repeat N         run it all N times, one results file each\n"
               "                         (default: 1); with --compare the N files are\n"
               "                         judged together: the spread between the runs\n"
               "                         enters the time verdicts (docs/verdicts.md)\n"
               "      --calibrate        CPU: time a fixed reference GEMM after every step\n"
               "                         (results: time.calibration); with --compare, times\n"
               "                         are divided by it (`compare --normalize`)\n"
               "      --instructions     count the instructions of every measured step and\n"
               "                         phase under valgrind's callgrind (results:\n"
               "                         instructions; deterministic, compared with\n"
               "                         `compare --instr-tolerance`); BLAS on one thread;\n"
               "                         runs are 10-100x slower (time limits x50) and\n"
               "                         their times are not judged\n"
               "      --compare          then compare the results with the baselines\n"
               "                         (exit 1 on a regression; see `oombench compare`)\n"
               "      --baseline DIR     baseline folder for --compare (default: baselines)\n"
               "      --report DIR       then write the report of the results into DIR\n"
               "  -h, --help             this help\n"
               "\n"
               "exit status: 0 every run ok (or oom/skipped/not_applicable) and every check\n"
               "passed; 1 a run crashed, timed out or failed, or a check failed; 2 usage or\n"
               "input error (nothing is run, no file written); 3 internal error\n");
}

static void usage_list(FILE *f)
{
    fprintf(f, "usage: oombench list [options]\n"
               "\n"
               "Shows the plugins found (name, description, modes, backends, parameters with\n"
               "defaults and units) and the scenarios of a folder.\n"
               "\n"
               "options:\n"
               "  -P, --plugin-dir DIR     also load plugins from DIR (repeatable)\n"
               "  -p, --plugin FILE.so     also load this plugin (repeatable)\n"
               "      --allow-unsafe-plugins\n"
               "                           load plugins from files or folders others may\n"
               "                           write (world-writable; refused by default)\n"
               "  -s, --scenarios DIR      scenario folder (default: scenarios)\n"
               "  -h, --help               this help\n");
}

static int want_color(int no_color_flag)
{
    const char *nc = getenv("NO_COLOR");
    if (no_color_flag || (nc && *nc))
        return 0;
    return isatty(STDOUT_FILENO);
}

/* The unit of a check's operands from the metrics it names: 'b' when every
 * one is a memory field (bytes), 't' when every one is a time field (ns),
 * else 0 (printed as numbers). */
static int check_unit(const char *expr)
{
    int mem = 0, time = 0, other = 0;
    if (strchr(expr, '/'))
        return 0; /* a ratio has no unit */
    for (const char *p = expr; (p = strchr(p, '.')) != NULL; p++) {
        /* a metric is label.section.field: look at the section after a '.' */
        if (p > expr && (isalnum((unsigned char)p[-1]) || p[-1] == '_') &&
            isalpha((unsigned char)p[1])) {
            const char *q = p + 1;
            size_t n = strcspn(q, ".");
            if (q[n] != '.')
                continue; /* the field itself */
            if (n == 6 && strncmp(q, "memory", 6) == 0)
                mem++;
            else if (n == 4 && strncmp(q, "time", 4) == 0)
                time++;
            else
                other++;
            p = q + n;
        }
    }
    if (other == 0 && mem > 0 && time == 0)
        return 'b';
    if (other == 0 && time > 0 && mem == 0)
        return 't';
    return 0;
}

static void check_value(double v, int unit, int exact, char *buf, size_t len)
{
    if (unit == 'b' && v >= 0 && v < 1.8e19 && !exact)
        oomb_format_bytes((uint64_t)(v + 0.5), buf, len);
    else if (unit == 'b' && v >= 0 && v < 1.8e19)
        snprintf(buf, len, "%.0f B", v);
    else if (unit == 't' && !exact)
        oomb_format_ns(v, buf, len);
    else
        snprintf(buf, len, "%.6g", v);
}

static void print_check(FILE *f, const struct oomb_check_record *cr)
{
    const char *st = cr->status == OOMB_CHECK_PASS      ? "PASS"
                     : cr->status == OOMB_CHECK_SKIPPED ? "SKIP"
                                                        : "FAIL";
    fprintf(f, "check %s  %s %s batch %lld: %s", st, cr->scenario,
            cr->mode == OOMB_MODE_TRAIN ? "train" : "infer", (long long)cr->batch, cr->expr);
    if (cr->status == OOMB_CHECK_PASS) {
        /* in the metrics' unit; exact when the rounded values would read alike */
        int unit = check_unit(cr->expr ? cr->expr : "");
        char a[48], b[48];
        check_value(cr->lhs, unit, 0, a, sizeof a);
        check_value(cr->rhs, unit, 0, b, sizeof b);
        if (strcmp(a, b) == 0 && cr->lhs != cr->rhs) {
            check_value(cr->lhs, unit, 1, a, sizeof a);
            check_value(cr->rhs, unit, 1, b, sizeof b);
        }
        fprintf(f, "  (%s %s %s)", a, cr->op ? cr->op : "?", b);
    }
    else if (cr->message && cr->message[0])
        fprintf(f, "  (%s)", cr->message);
    fprintf(f, "\n");
}

/* Streaming output of `run`: a progress line per finished run (rewritten in
 * place on a terminal), each scenario's table and checks as soon as its
 * runs are done. Human output goes to `out` (stderr with --json -). */
struct stream {
    FILE *out;
    int color, tty, quiet, shown; /* shown: a progress line is on the terminal */
};

static void clock_text(double s, char *buf, size_t len)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

static void stream_run(void *user, int index, int total, const struct oomb_run_result *run,
                       double elapsed, double eta_s)
{
    struct stream *st = user;
    if (st->quiet)
        return;
    char el[32], eta[32], took[32] = "";
    clock_text(elapsed, el, sizeof el);
    clock_text(isfinite(eta_s) ? eta_s : 0, eta, sizeof eta);
    if (isfinite(run->run_seconds))
        oomb_format_ns(run->run_seconds * 1e9, took, sizeof took);
    const char *oc = oomb_outcome_name(run->outcome);
    char reason[128] = "";
    if (run->outcome != OOMB_OUTCOME_OK && run->reason && run->reason[0]) {
        size_t j = 0;
        for (const char *c = run->reason; *c && j + 4 < sizeof reason; c++)
            reason[j++] = (unsigned char)*c < 0x20 ? ' ' : *c;
        reason[j] = '\0';
    }
    if (st->tty) {
        fprintf(stderr, "\r\033[K[%d/%d %s, eta %s] %s %s batch %lld %s: %s%s%s", index, total, el,
                eta, run->scenario, run->mode == OOMB_MODE_TRAIN ? "train" : "infer",
                (long long)run->batch, run->strategy, oc ? oc : "?", reason[0] ? " - " : "",
                reason);
        st->shown = 1;
        if (run->outcome != OOMB_OUTCOME_OK && run->outcome != OOMB_OUTCOME_NOT_APPLICABLE) {
            fprintf(stderr, "\n"); /* keep the line of a run that did not end ok */
            st->shown = 0;
        }
    } else {
        fprintf(stderr, "[%d/%d %s, eta %s] %s %s batch %lld %s: %s%s%s%s%s\n", index, total, el,
                eta, run->scenario, run->mode == OOMB_MODE_TRAIN ? "train" : "infer",
                (long long)run->batch, run->strategy, oc ? oc : "?", took[0] ? " in " : "", took,
                reason[0] ? " - " : "", reason);
    }
    fflush(stderr);
}

static void stream_scenario(void *user, const struct oomb_results *res, int first, int last)
{
    struct stream *st = user;
    if (st->shown) {
        fprintf(stderr, "\r\033[K");
        st->shown = 0;
    }
    struct oomb_results view = *res;
    view.runs = res->runs + first;
    view.n_runs = last - first;
    view.checks = NULL;
    view.n_checks = 0;
    oomb_table_print(st->out, &view, st->color);
    for (int i = 0; i < res->n_checks; i++)
        if (strcmp(res->checks[i].scenario, res->runs[first].scenario) == 0)
            print_check(st->out, &res->checks[i]);
    fflush(st->out);
}

/* The table (unless streamed), the checks and the summary lines of one
 * invocation, to f. */
static void print_run(FILE *f, const struct oomb_results *res, const struct oomb_run_summary *sum,
                      int color, int streamed)
{
    if (!streamed) {
        oomb_table_print(f, res, color);
        for (int i = 0; i < res->n_checks; i++)
            print_check(f, &res->checks[i]);
    }
    fprintf(f, "\n%d run(s): %d failed, %d oom; %d check(s): %d failed\n", sum->n_runs,
            sum->n_failed, sum->n_oom, sum->n_checks, sum->n_checks_failed);
    double run_s;
    int timed = oomb_scenario_run_time(res, NULL, &run_s);
    if (timed > 0) {
        char t[32];
        oomb_format_ns(run_s * 1e9, t, sizeof t);
        fprintf(f, "run time: %s (%d run(s))\n", t, timed);
    }
    if (res->blas_library && res->blas_library[0]) {
        int lo = 0, hi = 0;
        for (int i = 0; i < res->n_runs; i++) {
            int t = res->runs[i].threads;
            if (t > 0 && (lo == 0 || t < lo))
                lo = t;
            if (t > hi)
                hi = t;
        }
        fprintf(f, "blas: %s %s, kernel %s, %s", res->blas_library, res->blas_version,
               res->blas_kernel, res->blas_parallel);
        if (hi > 0 && lo == hi)
            fprintf(f, "; %d thread(s) per run", hi);
        else if (hi > 0)
            fprintf(f, "; %d to %d threads per run", lo, hi);
        fprintf(f, "\n");
    }
    fprintf(f, "results: %s\n", sum->results_path);
}

/* The bytes of a file to stdout (run --json -). 0, or -1. */
static int copy_to_stdout(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (fwrite(buf, 1, n, stdout) != n) {
            rc = -1;
            break;
        }
    if (ferror(f) || fflush(stdout) != 0)
        rc = -1;
    fclose(f);
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},     {"device", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'}, {"plugin-dir", required_argument, NULL, 'P'},
        {"plugin", required_argument, NULL, 'p'},  {"quiet", no_argument, NULL, 'q'},
        {"no-color", no_argument, NULL, 'C'},      {"help", no_argument, NULL, 'h'},
        {"compare", no_argument, NULL, 'c'},       {"baseline", required_argument, NULL, 'B'},
        {"report", required_argument, NULL, 'R'},  {"repeat", required_argument, NULL, 'N'},
        {"calibrate", no_argument, NULL, 'K'},     {"threads", required_argument, NULL, 'T'},
        {"instructions", no_argument, NULL, 'I'},
        {"allow-unsafe-plugins", no_argument, NULL, 'U'},
        {"shard", required_argument, NULL, 'S'},
        {"commit", required_argument, NULL, 'G'},
        {"filter", required_argument, NULL, 'F'},
        {"json", required_argument, NULL, 'J'},
        {"allocator", required_argument, NULL, 'A'},
        {"steps", required_argument, NULL, 'M'},
        {"alloc-conf", required_argument, NULL, 'a'},
        {"dry-run", no_argument, NULL, 'D'},
        {"epochs", required_argument, NULL, 'E'},
        {NULL, 0, NULL, 0}};
    struct oomb_run_options o = {0};
    const char *dirs[MAX_LIST], *files[MAX_LIST];
    int no_color = 0, compare = 0, repeat = 1, json_stdout = 0, c;
    const char *baseline_dir = NULL, *report_dir = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:d:t:P:p:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o.out_dir = optarg;
            break;
        case 'd':
            o.device = optarg;
            break;
        case 't': {
            double s;
            if (oomb_parse_duration(optarg, &s) != OOMB_OK || s <= 0 ||
                s > OOMB_SCENARIO_MAX_TIMEOUT_S) {
                fprintf(stderr,
                        "oombench run: --timeout '%s': expected a positive duration "
                        "such as 30, 30s, 2m, at most one week\n",
                        optarg);
                return EXIT_USAGE;
            }
            o.timeout_s = s;
            break;
        }
        case 'P':
            if (o.n_plugin_dirs == MAX_LIST) {
                fprintf(stderr, "oombench run: too many --plugin-dir\n");
                return EXIT_USAGE;
            }
            dirs[o.n_plugin_dirs++] = optarg;
            break;
        case 'p':
            if (o.n_plugin_files == MAX_LIST) {
                fprintf(stderr, "oombench run: too many --plugin\n");
                return EXIT_USAGE;
            }
            files[o.n_plugin_files++] = optarg;
            break;
        case 'q':
            o.quiet = 1;
            break;
        case 'C':
            no_color = 1;
            break;
        case 'c':
            compare = 1;
            break;
        case 'B':
            baseline_dir = optarg;
            break;
        case 'R':
            report_dir = optarg;
            break;
        case 'K':
            o.calibrate = 1;
            break;
        case 'T': {
            char *end;
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 1 || n > OOMB_SCENARIO_MAX_THREADS) {
                fprintf(stderr, "oombench run: --threads '%s': expected a count from 1 to %d\n",
                        optarg, OOMB_SCENARIO_MAX_THREADS);
                return EXIT_USAGE;
            }
            o.threads = (int)n;
            break;
        }
        case 'I':
            o.instructions = 1;
            break;
        case 'U':
            o.allow_unsafe_plugins = 1;
            break;
        case 'G':
            o.commit = optarg;
            break;
        case 'F':
            o.filter = optarg;
            break;
        case 'D':
            o.dry_run = 1;
            break;
        case 'E': {
            char *end;
            errno = 0;
            double e = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(e > 0) || e > 1000) {
                fprintf(stderr, "oombench run: --epochs '%s': expected a number of passes over "
                                "the training set, above 0 and at most 1000\n",
                        optarg);
                return EXIT_USAGE;
            }
            o.epochs = e;
            break;
        }
        case 'M': {
            char *end;
            errno = 0;
            long long n = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 1 || n > OOMB_SCENARIO_MAX_STEPS) {
                fprintf(stderr, "oombench run: --steps '%s': expected a count from 1 to %d\n",
                        optarg, OOMB_SCENARIO_MAX_STEPS);
                return EXIT_USAGE;
            }
            o.steps = n;
            break;
        }
        case 'A':
            if (strcmp(optarg, "exact") == 0)
                o.allocator = 1 + OOMB_ALLOCATOR_EXACT;
            else if (strcmp(optarg, "caching") == 0)
                o.allocator = 1 + OOMB_ALLOCATOR_CACHING;
            else {
                fprintf(stderr, "oombench run: --allocator '%s': expected exact or caching\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'a': {
            char err[256];
            if (oomb_parse_alloc_conf(optarg, &o.alloc_conf, err, sizeof err) != OOMB_OK) {
                fprintf(stderr, "oombench run: --alloc-conf: %s\n", err);
                return EXIT_USAGE;
            }
            o.has_alloc_conf = 1;
            break;
        }
        case 'J':
            if (strcmp(optarg, "-") != 0) {
                fprintf(stderr, "oombench run: --json '%s': only '-' (standard output) is "
                                "supported; the results file is written to --out in any case\n",
                        optarg);
                return EXIT_USAGE;
            }
            json_stdout = 1;
            break;
        case 'S': {
            char *end, *end2 = "";
            errno = 0;
            long i = strtol(optarg, &end, 10), n = 0;
            if (!errno && end != optarg && *end == '/')
                n = strtol(end + 1, &end2, 10);
            if (errno || end == optarg || *end != '/' || *end2 || n < 1 || n > 100000 || i < 1 ||
                i > n) {
                fprintf(stderr, "oombench run: --shard '%s': expected I/N with 1 <= I <= N <= "
                                "100000\n",
                        optarg);
                return EXIT_USAGE;
            }
            o.shard_index = (int)i;
            o.shard_count = (int)n;
            break;
        }
        case 'N': {
            char *end;
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 1 || n > 1000) {
                fprintf(stderr,
                        "oombench run: --repeat '%s': expected a count from 1 to "
                        "1000\n",
                        optarg);
                return EXIT_USAGE;
            }
            repeat = (int)n;
            break;
        }
        case 'h':
            usage_run(stdout);
            return EXIT_FINE;
        default:
            usage_run(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "oombench run: no scenario given\n");
        usage_run(stderr);
        return EXIT_USAGE;
    }
    o.plugin_dirs = dirs;
    o.plugin_files = files;
    if (o.instructions && !oomb_instr_inside()) {
        /* The same command again, under callgrind (instr.h). */
        char err[512] = "";
        int code = oomb_instr_reexec(argc, argv, err, sizeof err);
        if (err[0])
            fprintf(stderr, "oombench run: %s\n", err);
        return code;
    }

    char(*paths)[PATH_MAX] = calloc((size_t)repeat, sizeof *paths);
    const char **path_list = calloc((size_t)repeat, sizeof *path_list);
    if (!paths || !path_list) {
        free(paths);
        free(path_list);
        fprintf(stderr, "oombench run: out of memory\n");
        return EXIT_INTERNAL;
    }
    int exit_rc = EXIT_FINE;
    /* human output on stdout, or on stderr when the results JSON goes there */
    FILE *hout = json_stdout ? stderr : stdout;
    const char *nc = getenv("NO_COLOR");
    struct stream st = {hout, !no_color && !(nc && *nc) && isatty(fileno(hout)),
                        isatty(STDERR_FILENO), o.quiet, 0};
    o.on_run = stream_run;
    o.on_scenario = stream_scenario;
    o.user = &st;
    for (int rep = 0; rep < repeat; rep++) {
        struct oomb_results res;
        struct oomb_run_summary sum;
        char err[2048] = "";
        if (repeat > 1 && !o.quiet)
            fprintf(stderr, "repetition %d/%d\n", rep + 1, repeat);
        int rc = oomb_runner_run((const char *const *)argv + optind, argc - optind, &o, &res, &sum,
                                 err, sizeof err);
        if (rc != OOMB_OK) {
            fprintf(stderr, "oombench run: %s\n", err);
            oomb_results_free(&res);
            free(paths);
            free(path_list);
            return rc == OOMB_ERR_IO || rc == OOMB_ERR_INTERNAL ? EXIT_INTERNAL : EXIT_USAGE;
        }
        if (st.shown) {
            fprintf(stderr, "\r\033[K");
            st.shown = 0;
        }
        if (rep == repeat - 1)
            print_run(hout, &res, &sum, st.color, 1);
        else
            fprintf(hout,
                    "repetition %d/%d: %d run(s): %d failed, %d oom; %d check(s): %d failed; "
                    "results: %s\n",
                    rep + 1, repeat, sum.n_runs, sum.n_failed, sum.n_oom, sum.n_checks,
                    sum.n_checks_failed, sum.results_path);
        if (json_stdout && rep == repeat - 1 && copy_to_stdout(sum.results_path) != 0) {
            fprintf(stderr, "oombench run: --json -: cannot copy %s to standard output\n",
                    sum.results_path);
            exit_rc = EXIT_INTERNAL;
        }
        oomb_results_free(&res);
        if (sum.n_failed || sum.n_checks_failed)
            exit_rc = EXIT_FAILED;
        snprintf(paths[rep], sizeof paths[rep], "%s", sum.results_path);
        path_list[rep] = paths[rep];
    }
    if (compare) {
        int vrc = oomb_compare_after_run(path_list, repeat, baseline_dir, want_color(no_color),
                                         o.calibrate);
        if (vrc > exit_rc)
            exit_rc = vrc;
    }
    if (report_dir) {
        int rrc = oomb_report_after_run(paths[repeat - 1], report_dir, o.quiet);
        if (rrc > exit_rc)
            exit_rc = rrc;
    }
    free(paths);
    free(path_list);
    return exit_rc;
}

static const char *modes_text(uint32_t m)
{
    return (m & OOMB_MODE_TRAIN) && (m & OOMB_MODE_INFER) ? "train, infer"
           : (m & OOMB_MODE_TRAIN)                        ? "train"
                                                          : "infer";
}

static const char *backends_text(uint32_t b)
{
    return (b & OOMB_BACKEND_CPU) && (b & OOMB_BACKEND_CUDA) ? "cpu, cuda"
           : (b & OOMB_BACKEND_CPU)                          ? "cpu"
                                                             : "cuda";
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void list_scenarios(const char *dir)
{
    DIR *d = opendir(dir);
    printf("\nscenarios (%s):\n", dir);
    if (!d) {
        printf("  (folder not found)\n");
        return;
    }
    char *names[256];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0)
            names[n++] = oomb_strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        char err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct oomb_scenario *sc;
        if (oomb_scenario_load(path, &sc, err, sizeof err) != OOMB_OK) {
            printf("  %-28s INVALID: %s\n", names[i], err);
        } else {
            printf("  %-28s %s%s%s\n", path, sc->name, sc->description[0] ? " - " : "",
                   sc->description);
            printf("      mode %s; batch", modes_text(sc->modes));
            for (int b = 0; b < sc->n_batches; b++)
                printf("%s%lld", b ? ", " : " ", (long long)sc->batches[b]);
            printf("; strategies");
            for (int s = 0; s < sc->n_strategies; s++)
                printf("%s%s", s ? ", " : " ", sc->strategies[s].label);
            printf("\n");
            oomb_scenario_destroy(sc);
        }
        free(names[i]);
    }
    if (n == 0)
        printf("  (none)\n");
}

static int cmd_list(int argc, char **argv)
{
    static const struct option longopts[] = {{"plugin-dir", required_argument, NULL, 'P'},
                                             {"plugin", required_argument, NULL, 'p'},
                                             {"scenarios", required_argument, NULL, 's'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"allow-unsafe-plugins", no_argument, NULL, 'U'},
                                             {NULL, 0, NULL, 0}};
    const char *dirs[MAX_LIST], *files[MAX_LIST];
    int nd = 0, nf = 0, c;
    unsigned load_flags = 0;
    const char *scen_dir = "scenarios";
    optind = 1;
    while ((c = getopt_long(argc, argv, "P:p:s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'P':
            if (nd < MAX_LIST)
                dirs[nd++] = optarg;
            break;
        case 'p':
            if (nf < MAX_LIST)
                files[nf++] = optarg;
            break;
        case 's':
            scen_dir = optarg;
            break;
        case 'U':
            load_flags |= OOMB_LOAD_ALLOW_UNSAFE;
            break;
        case 'h':
            usage_list(stdout);
            return EXIT_FINE;
        default:
            usage_list(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "oombench list: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    struct oomb_registry reg;
    char err[1024];
    if (oomb_registry_load_flags(&reg, dirs, nd, files, nf, load_flags, err, sizeof err) !=
        OOMB_OK) {
        fprintf(stderr, "oombench list: %s\n", err);
        return EXIT_USAGE;
    }
    printf("plugins (ABI %d.%d; default folder %s):\n", OOMB_ABI_MAJOR, OOMB_ABI_MINOR,
           oomb_default_plugin_dir());
    for (int i = 0; i < reg.n; i++) {
        const struct oomb_plugin *d = &reg.plugins[i]->desc;
        printf("\n  %s - %s\n", d->name, d->description);
        printf("      modes: %s; backends: %s; ABI %u.%u; %s\n", modes_text(d->modes),
               backends_text(d->backends), d->abi_major, d->abi_minor, reg.plugins[i]->path);
        if (d->n_params > 0)
            printf("      %-16s %-6s %-14s %-22s %-14s %s\n", "parameter", "type", "default",
                   "accepts", "unit", "meaning");
        for (int k = 0; k < d->n_params; k++) {
            const struct oomb_param_desc *pd = &d->params[k];
            static const char *types[] = {"int", "float", "string"};
            char unit[48] = "", range[160];
            if (pd->unit && pd->unit[0])
                snprintf(unit, sizeof unit, "[%s]", pd->unit);
            oomb_param_describe_range(pd, range, sizeof range);
            printf("      %-16s %-6s %-14s %-22s %-14s %s\n", pd->name, types[pd->type],
                   pd->default_value, range, unit, pd->help ? pd->help : "");
        }
    }
    if (reg.n == 0)
        printf("  (none found)\n");
    for (int i = 0; i < reg.n_rejected; i++)
        printf("  rejected: %s\n", reg.rejected[i]);
    printf("\nbackends: cpu%s\n", oomb_cuda_backend_compiled() ? ", cuda (compiled in; "
                                                                 "`run --device cuda` checks "
                                                                 "for a GPU)"
                                                               : "");
    list_scenarios(scen_dir);
    oomb_registry_free(&reg);
    return EXIT_FINE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage_main(stdout);
        return EXIT_FINE;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("oombench %s (plugin ABI %d.%d, CUDA backend %s)\n", OOMB_VERSION, OOMB_ABI_MAJOR,
               OOMB_ABI_MINOR, oomb_cuda_backend_compiled() ? "compiled in" : "not built");
        return EXIT_FINE;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    if (strcmp(cmd, "compare") == 0)
        return oomb_cmd_compare(argc - 1, argv + 1);
    if (strcmp(cmd, "baseline") == 0)
        return oomb_cmd_baseline(argc - 1, argv + 1);
    if (strcmp(cmd, "ab") == 0)
        return oomb_cmd_ab(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return oomb_cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "merge") == 0)
        return oomb_cmd_merge(argc - 1, argv + 1);
    if (strcmp(cmd, "fit") == 0)
        return oomb_cmd_fit(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return oomb_cmd_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "history") == 0)
        return oomb_cmd_history(argc - 1, argv + 1);
    fprintf(stderr, "oombench: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return EXIT_USAGE;
}
