/*
 * `oombench compare`, `oombench baseline` and `oombench ab`: results against
 * stored baselines, baseline updates, and interleaved A/B runs of two plugin
 * builds. The rules live in verdict.c, the reports in export.c; this file is
 * argument parsing and orchestration.
 */
#include "cmd_verdict.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "baseline.h"
#include "calibrate.h"
#include "export.h"
#include "results.h"
#include "runner.h"
#include "scenario.h"
#include "util.h"
#include "verdict.h"

enum { EXIT_FINE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

#define MAX_NOISE 32

enum {
    OPT_BASELINE = 256,
    OPT_DEVICE_CLASS,
    OPT_MEM_TOL,
    OPT_NOISE,
    OPT_NOISE_METRIC,
    OPT_ALPHA,
    OPT_LOSS_TOL,
    OPT_ACC_TOL,
    OPT_TEST_ACC_TOL,
    OPT_NUM_TOL,
    OPT_JUNIT,
    OPT_SUMMARY,
    OPT_GBENCH,
    OPT_NO_COLOR,
    OPT_VERBOSE,
    OPT_BASE,
    OPT_HEAD,
    OPT_ROUNDS,
    OPT_OUT,
    OPT_DEVICE,
    OPT_TIMEOUT,
    OPT_QUIET,
    OPT_NORMALIZE,
    OPT_PHASE_FLOOR,
    OPT_ALLOW_BLAS,
    OPT_INSTR_TOL,
    OPT_ALLOW_UNSAFE
};

/* Options shared by compare and ab. */
struct verdict_cli {
    const char *cmd;
    const char *baseline_dir;
    const char *device_class;
    const char *junit, *summary, *gbench;
    int no_color, verbose, normalize;
    struct oomb_verdict_options vo;
    const char *noise_names[MAX_NOISE];
    double noise_values[MAX_NOISE];
    char noise_buf[MAX_NOISE][64];
};

/* clang-format off */
#define VERDICT_LONGOPTS                                                        \
    {"baseline", required_argument, NULL, OPT_BASELINE},                        \
    {"device-class", required_argument, NULL, OPT_DEVICE_CLASS},                \
    {"mem-tolerance", required_argument, NULL, OPT_MEM_TOL},                    \
    {"noise", required_argument, NULL, OPT_NOISE},                              \
    {"noise-metric", required_argument, NULL, OPT_NOISE_METRIC},                \
    {"alpha", required_argument, NULL, OPT_ALPHA},                              \
    {"loss-tolerance", required_argument, NULL, OPT_LOSS_TOL},                  \
    {"accuracy-tolerance", required_argument, NULL, OPT_ACC_TOL},               \
    {"test-accuracy-tolerance", required_argument, NULL, OPT_TEST_ACC_TOL},     \
    {"numerics-tolerance", required_argument, NULL, OPT_NUM_TOL},               \
    {"junit", required_argument, NULL, OPT_JUNIT},                              \
    {"summary", required_argument, NULL, OPT_SUMMARY},                          \
    {"gbench", required_argument, NULL, OPT_GBENCH},                            \
    {"no-color", no_argument, NULL, OPT_NO_COLOR},                              \
    {"verbose", no_argument, NULL, OPT_VERBOSE},                                \
    {"normalize", no_argument, NULL, OPT_NORMALIZE},                            \
    {"phase-floor", required_argument, NULL, OPT_PHASE_FLOOR},                  \
    {"allow-blas-mismatch", no_argument, NULL, OPT_ALLOW_BLAS},                 \
    {"instr-tolerance", required_argument, NULL, OPT_INSTR_TOL},                \
    {"help", no_argument, NULL, 'h'}
/* clang-format on */

static const char verdict_options_help[] =
    "  --baseline DIR            baseline folder (default: baselines)\n"
    "  --device-class CLASS      baseline device class (default: $OOMB_DEVICE_CLASS, else\n"
    "                            the results' device.class, e.g. cpu-x86_64)\n"
    "  --mem-tolerance BYTES     memory change allowed per value (default: 0, exact)\n"
    "  --noise PCT               time noise threshold (default: 5 on the CPU, 2 on the GPU)\n"
    "  --noise-metric M=PCT      threshold for one metric: step, forward, backward,\n"
    "                            update, other, throughput (repeatable)\n"
    "  --alpha A                 significance level of the time tests (default: 0.05)\n"
    "  --phase-floor PCT         a phase regresses only when its change is at least PCT%\n"
    "                            of the step time (default: 1)\n"
    "  --instr-tolerance PCT     instruction count change allowed, step and each phase\n"
    "                            (runs made with --instructions; default: 0.5)\n"
    "  --loss-tolerance REL      final loss relative increase allowed (default: 0.02)\n"
    "  --accuracy-tolerance ABS  accuracy drop allowed (default: 0.01)\n"
    "  --test-accuracy-tolerance ABS\n"
    "                            held-out test accuracy drop allowed (default: 0.01)\n"
    "  --numerics-tolerance X    numerics rel err limit (default: 1e-5)\n"
    "  --junit FILE              write JUnit XML (one testcase per run x metric)\n"
    "  --summary FILE            write a Markdown summary\n"
    "  --gbench FILE             write the time samples as Google Benchmark JSON\n"
    "  --no-color                no colours (also NO_COLOR=1)\n"
    "  --verbose                 also list unchanged memory and quality values\n"
    "  --normalize               divide every time sample by the calibration GEMM\n"
    "                            timed after its step (runs made with --calibrate;\n"
    "                            ab: makes its runs so), removing machine speed drift\n"
    "  --allow-blas-mismatch     judge times even when base and head ran a different\n"
    "                            BLAS library, version, kernel or thread count (by\n"
    "                            default such times are n/a, and the difference shown)\n"
    "  -h, --help                this help\n"
    "\n"
    "A time is INCONCLUSIVE, not a regression and not unchanged, when the machine was\n"
    "too noisy to judge it: the runs waited for a CPU long enough to move it by half\n"
    "the noise threshold (another process held the CPU), or its interval is wider\n"
    "than the threshold. It shows the measured noise, counts as skipped in JUnit and\n"
    "does not fail the command (exit 0); repeat the runs (--repeat) on a quieter\n"
    "machine, or gate on instruction counts.\n";

static int want_color(int no_color_flag)
{
    const char *nc = getenv("NO_COLOR");
    if (no_color_flag || (nc && *nc))
        return 0;
    return isatty(STDOUT_FILENO);
}

static int parse_double(const char *cmd, const char *opt, const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !(x >= lo)) {
        fprintf(stderr, "oombench %s: --%s '%s': expected a number >= %g\n", cmd, opt, s, lo);
        return -1;
    }
    *out = x;
    return 0;
}

/* Returns 1 when handled, 0 when not a shared option, -1 on a bad value. */
static int verdict_option(struct verdict_cli *c, int opt, const char *arg)
{
    double x;
    switch (opt) {
    case OPT_BASELINE:
        c->baseline_dir = arg;
        return 1;
    case OPT_DEVICE_CLASS:
        c->device_class = arg;
        return 1;
    case OPT_MEM_TOL: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(arg, &end, 10);
        if (errno || end == arg || *end || arg[0] == '-') {
            fprintf(stderr,
                    "oombench %s: --mem-tolerance '%s': expected bytes (an integer "
                    ">= 0)\n",
                    c->cmd, arg);
            return -1;
        }
        c->vo.mem_tolerance = v;
        return 1;
    }
    case OPT_NOISE:
        if (parse_double(c->cmd, "noise", arg, 0, &x))
            return -1;
        c->vo.noise_pct = x;
        return 1;
    case OPT_NOISE_METRIC: {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof c->noise_buf[0] ||
            c->vo.n_noise == MAX_NOISE) {
            fprintf(stderr,
                    "oombench %s: --noise-metric '%s': expected METRIC=PCT, e.g. "
                    "forward=10\n",
                    c->cmd, arg);
            return -1;
        }
        if (parse_double(c->cmd, "noise-metric", eq + 1, 0, &x))
            return -1;
        int k = c->vo.n_noise++;
        snprintf(c->noise_buf[k], sizeof c->noise_buf[k], "%.*s", (int)(eq - arg), arg);
        c->noise_names[k] = c->noise_buf[k];
        c->noise_values[k] = x;
        return 1;
    }
    case OPT_ALPHA:
        if (parse_double(c->cmd, "alpha", arg, 0, &x) || x <= 0 || x >= 1) {
            fprintf(stderr, "oombench %s: --alpha must be in (0, 1)\n", c->cmd);
            return -1;
        }
        c->vo.alpha = x;
        return 1;
    case OPT_LOSS_TOL:
        if (parse_double(c->cmd, "loss-tolerance", arg, 0, &c->vo.loss_rel_tol))
            return -1;
        return 1;
    case OPT_ACC_TOL:
        if (parse_double(c->cmd, "accuracy-tolerance", arg, 0, &c->vo.acc_drop_tol))
            return -1;
        return 1;
    case OPT_TEST_ACC_TOL:
        if (parse_double(c->cmd, "test-accuracy-tolerance", arg, 0, &c->vo.test_acc_drop_tol))
            return -1;
        return 1;
    case OPT_NUM_TOL:
        if (parse_double(c->cmd, "numerics-tolerance", arg, 0, &c->vo.numerics_tol))
            return -1;
        return 1;
    case OPT_JUNIT:
        c->junit = arg;
        return 1;
    case OPT_SUMMARY:
        c->summary = arg;
        return 1;
    case OPT_GBENCH:
        c->gbench = arg;
        return 1;
    case OPT_NO_COLOR:
        c->no_color = 1;
        return 1;
    case OPT_VERBOSE:
        c->verbose = 1;
        return 1;
    case OPT_NORMALIZE:
        c->normalize = 1;
        return 1;
    case OPT_PHASE_FLOOR:
        if (parse_double(c->cmd, "phase-floor", arg, 0, &c->vo.phase_floor_pct))
            return -1;
        return 1;
    case OPT_ALLOW_BLAS:
        c->vo.allow_blas_mismatch = 1;
        return 1;
    case OPT_INSTR_TOL:
        if (parse_double(c->cmd, "instr-tolerance", arg, 0, &c->vo.instr_tol_pct))
            return -1;
        return 1;
    default:
        return 0;
    }
}

static void verdict_cli_init(struct verdict_cli *c, const char *cmd)
{
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    oomb_verdict_options_init(&c->vo);
    c->vo.noise_names = c->noise_names;
    c->vo.noise_values = c->noise_values;
}

/* Print, write the reports, and turn the verdict into an exit status. */
static int finish(const struct verdict_cli *c, struct oomb_verdict *v, const char *title,
                  const struct oomb_results *head, int n_head)
{
    char err[2048];
    int rc = EXIT_FINE;
    oomb_verdict_sort(v);
    oomb_verdict_print(stdout, v, want_color(c->no_color), c->verbose);
    if (c->junit && oomb_export_junit(v, c->junit, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
        rc = EXIT_INTERNAL;
    }
    if (c->summary && oomb_export_markdown(v, title, c->summary, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
        rc = EXIT_INTERNAL;
    }
    if (c->gbench && oomb_export_gbench(head, n_head, c->gbench, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
        rc = EXIT_INTERNAL;
    }
    if (rc != EXIT_FINE)
        return rc;
    return v->n_regressed ? EXIT_FAILED : EXIT_FINE;
}

/* --normalize: divide out machine speed, and say whether it was done. */
static void print_normalize(struct oomb_results *base, int n_base, struct oomb_results *head,
                            int n_head)
{
    char why[512];
    if (oomb_calib_normalize(base, n_base, head, n_head, why, sizeof why))
        printf("times normalised by the calibration GEMM timed after each step\n");
    else
        printf("times not normalised: %s\n", why);
}

/* Compare the runs of one or several results files of one build (the head;
 * several: e.g. the repetitions of `run --repeat`, whose runs of a
 * configuration are then judged together) against the baselines. */
static int compare_files(const struct verdict_cli *c, const char *const *paths, int n_paths)
{
    char err[2048];
    struct oomb_results head, base = {0};
    if (oomb_results_read(paths[0], &head, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
        return EXIT_USAGE;
    }
    /* Scenario names become paths under the baseline folder: refuse what
     * could leave it. */
    if (oomb_baseline_check_scenarios(&head, paths[0], err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
        oomb_results_free(&head);
        return EXIT_USAGE;
    }
    for (int i = 1; i < n_paths; i++) {
        struct oomb_results more;
        if (oomb_results_read(paths[i], &more, err, sizeof err) != OOMB_OK) {
            fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
            oomb_results_free(&head);
            return EXIT_USAGE;
        }
        if (oomb_baseline_check_scenarios(&more, paths[i], err, sizeof err) != OOMB_OK) {
            fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
            oomb_results_free(&more);
            oomb_results_free(&head);
            return EXIT_USAGE;
        }
        int mrc = oomb_results_move_runs(&head, &more);
        oomb_results_free(&more);
        if (mrc != OOMB_OK) {
            oomb_results_free(&head);
            return EXIT_INTERNAL;
        }
    }
    const char *dir = c->baseline_dir ? c->baseline_dir : OOMB_BASELINE_DIR;
    const char *cls = NULL;
    const char **names = NULL;
    int n = 0, rc = EXIT_FINE, found_any = 0;
    if (oomb_baseline_resolve_class(&head, paths[0], c->device_class, &cls, err, sizeof err) !=
        OOMB_OK) {
        fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
        oomb_results_free(&head);
        return EXIT_USAGE;
    }
    if (oomb_results_scenarios(&head, &names, &n) != OOMB_OK) {
        oomb_results_free(&head);
        return EXIT_INTERNAL;
    }
    for (int i = 0; i < n && rc == EXIT_FINE; i++) {
        struct oomb_results one;
        int found = 0;
        char bpath[4096];
        if (oomb_baseline_path(dir, cls, names[i], bpath, sizeof bpath, err, sizeof err) !=
            OOMB_OK) {
            fprintf(stderr, "oombench %s: %s\n", c->cmd, err);
            rc = EXIT_USAGE;
            break;
        }
        if (oomb_baseline_load(dir, cls, names[i], &one, &found, err, sizeof err) != OOMB_OK) {
            fprintf(stderr, "oombench %s: baseline %s\n", c->cmd, err);
            rc = EXIT_USAGE;
            break;
        }
        if (!found) {
            printf("no baseline for scenario '%s' (%s): its runs are not compared\n", names[i],
                   bpath);
            continue;
        }
        found_any++;
        printf("baseline %s (%d run(s))\n", bpath, one.n_runs);
        if (oomb_results_move_runs(&base, &one) != OOMB_OK)
            rc = EXIT_INTERNAL;
        oomb_results_free(&one);
    }
    if (rc == EXIT_FINE && c->normalize && found_any)
        print_normalize(&base, 1, &head, 1);
    if (rc == EXIT_FINE) {
        struct oomb_verdict v;
        if (oomb_verdict_compare(&base, 1, &head, 1, &c->vo, &v) != OOMB_OK) {
            fprintf(stderr, "oombench %s: out of memory\n", c->cmd);
            rc = EXIT_INTERNAL;
        } else {
            char title[4096];
            if (n_paths > 1)
                snprintf(title, sizeof title, "%s and %d more results file(s) against %s/%s",
                         paths[0], n_paths - 1, dir, cls);
            else
                snprintf(title, sizeof title, "%s against %s/%s", paths[0], dir, cls);
            if (n_paths > 1)
                printf("head: %d results files (%d run(s))\n", n_paths, head.n_runs);
            printf("\n");
            rc = finish(c, &v, title, &head, 1);
            if (!found_any)
                printf("no baseline found under %s/%s: nothing compared (not a failure)\n", dir,
                       cls);
        }
        oomb_verdict_free(&v);
    }
    free(names);
    oomb_results_free(&base);
    oomb_results_free(&head);
    return rc;
}

int oomb_compare_after_run(const char *const *results_paths, int n_paths, const char *baseline_dir,
                           int color, int normalize)
{
    struct verdict_cli c;
    verdict_cli_init(&c, "run --compare");
    c.baseline_dir = baseline_dir;
    c.no_color = !color;
    c.normalize = normalize;
    printf("\n");
    return compare_files(&c, results_paths, n_paths);
}

static void usage_compare(FILE *f)
{
    fprintf(f,
            "usage: oombench compare [options] RESULTS.json...\n"
            "\n"
            "Compares a results file with the stored baselines\n"
            "(DIR/<device-class>/<scenario>.json). Several results files of one build\n"
            "(e.g. from `run --repeat N`) are judged together. Memory is compared exactly\n"
            "per tag, outcomes exactly, times with a rank test and a bootstrap interval\n"
            "against a noise threshold (with 4 or more runs on the two sides together: a\n"
            "t test on the spread between runs, and the noise threshold), quality against\n"
            "tolerances (docs/verdicts.md). A run without a baseline is reported and not\n"
            "a failure.\n"
            "\n"
            "options:\n%s"
            "\n"
            "exit status: 0 no regression, 1 a regression, 2 usage or input error\n"
            "(unreadable or malformed file), 3 internal error\n",
            verdict_options_help);
}

int oomb_cmd_compare(int argc, char **argv)
{
    static const struct option longopts[] = {VERDICT_LONGOPTS, {NULL, 0, NULL, 0}};
    struct verdict_cli c;
    verdict_cli_init(&c, "compare");
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage_compare(stdout);
            return EXIT_FINE;
        }
        int r = verdict_option(&c, opt, optarg);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0) {
            usage_compare(stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind < 1) {
        fprintf(stderr, "oombench compare: expected a results file\n");
        usage_compare(stderr);
        return EXIT_USAGE;
    }
    return compare_files(&c, (const char *const *)argv + optind, argc - optind);
}

static void usage_baseline(FILE *f)
{
    fprintf(f,
            "usage: oombench baseline save [options] RESULTS.json...\n"
            "\n"
            "Stores the runs of one or several results files as baselines, one file per\n"
            "scenario: DIR/<device-class>/<scenario>.json (written atomically), and prints\n"
            "what changed against the previous baseline: runs added or removed, outcome\n"
            "and memory differences per tag. Several results files of the same build\n"
            "(e.g. five invocations of `oombench run`) give a baseline with several runs\n"
            "per configuration, whose time verdicts then see the spread between runs\n"
            "(4 or more runs with the head's; docs/verdicts.md). Memory must be\n"
            "identical across them.\n"
            "\n"
            "options:\n"
            "  --baseline DIR         baseline folder (default: baselines)\n"
            "  --device-class CLASS   device class (default: $OOMB_DEVICE_CLASS, else the\n"
            "                         results' device.class)\n"
            "  --append               add the runs to the existing baseline instead of\n"
            "                         replacing it\n"
            "  --keep N               runs kept per configuration, the most recent\n"
            "                         (default: %d)\n"
            "  -h, --help             this help\n"
            "\n"
            "exit status: 0 saved, 2 usage or input error (also: memory differing\n"
            "between the runs of one configuration), 3 cannot write\n",
            OOMB_BASELINE_KEEP);
}

int oomb_cmd_baseline(int argc, char **argv)
{
    enum { OPT_APPEND = 512, OPT_KEEP };
    static const struct option longopts[] = {
        {"baseline", required_argument, NULL, OPT_BASELINE},
        {"device-class", required_argument, NULL, OPT_DEVICE_CLASS},
        {"append", no_argument, NULL, OPT_APPEND},
        {"keep", required_argument, NULL, OPT_KEEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *dir = OOMB_BASELINE_DIR, *cls = NULL;
    int opt, append = 0, keep = OOMB_BASELINE_KEEP;
    double x;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_BASELINE:
            dir = optarg;
            break;
        case OPT_DEVICE_CLASS:
            cls = optarg;
            break;
        case OPT_APPEND:
            append = 1;
            break;
        case OPT_KEEP:
            if (parse_double("baseline", "keep", optarg, 1, &x) || x != (int)x || x > 1000)
                return EXIT_USAGE;
            keep = (int)x;
            break;
        case 'h':
            usage_baseline(stdout);
            return EXIT_FINE;
        default:
            usage_baseline(stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind < 2 || strcmp(argv[optind], "save") != 0) {
        fprintf(stderr, "oombench baseline: expected 'save RESULTS.json...'\n");
        usage_baseline(stderr);
        return EXIT_USAGE;
    }
    char err[2048];
    const char *const *paths = (const char *const *)argv + optind + 1;
    int n_paths = argc - optind - 1;
    /* An input that is no readable file is the caller's mistake (exit 2),
     * told before anything is read or written. */
    for (int i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0 || access(paths[i], R_OK) != 0) {
            fprintf(stderr, "oombench baseline: %s: %s\n", paths[i], strerror(errno));
            return EXIT_USAGE;
        }
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "oombench baseline: %s: is a directory, not a results file\n",
                    paths[i]);
            return EXIT_USAGE;
        }
    }
    int rc =
        oomb_baseline_save_runs(paths, n_paths, dir, cls, append, keep, stdout, err, sizeof err);
    if (rc != OOMB_OK) {
        fprintf(stderr, "oombench baseline: %s\n", err);
        /* Input errors: a bad results file, a name that cannot be a path, a
         * file that became unreadable meanwhile. Else writing failed. */
        int unreadable = 0;
        for (int i = 0; i < n_paths; i++)
            unreadable |= access(paths[i], R_OK) != 0;
        return rc == OOMB_ERR_PARSE || rc == OOMB_ERR_INVALID ? EXIT_USAGE
               : rc == OOMB_ERR_IO && unreadable              ? EXIT_USAGE
                                                              : EXIT_INTERNAL;
    }
    return EXIT_FINE;
}

static void usage_ab(FILE *f)
{
    fprintf(f,
            "usage: oombench ab --base DIR --head DIR [options] SCENARIO.yaml...\n"
            "\n"
            "Runs two builds' plugins against each other: DIR is a plugin folder (e.g.\n"
            "build-old/plugins and build/plugins; a plugin found there wins over the\n"
            "default folder's of the same name). Rounds are interleaved (base then head,\n"
            "then head then base, ...), each round one run of each side per scenario x\n"
            "batch x strategy. Times are compared paired by round (stratified rank test,\n"
            "bootstrap over rounds), memory exactly. docs/verdicts.md.\n"
            "\n"
            "options:\n"
            "  --base DIR             the base build's plugin folder (required)\n"
            "  --head DIR             the head build's plugin folder (required)\n"
            "  --rounds N             rounds per side (default: 15)\n"
            "  --out DIR              results files of every round (default: results/ab)\n"
            "  --device DEV           cpu, cuda, cuda:N (default: the scenarios')\n"
            "  --timeout SECONDS      per-run time limit\n"
            "  --quiet                no progress lines\n"
            "  --allow-unsafe-plugins load plugins from files or folders others may write\n"
            "%s"
            "\n"
            "exit status: 0 no regression, 1 a regression, 2 usage or input error,\n"
            "3 internal error\n",
            verdict_options_help);
}

int oomb_cmd_ab(int argc, char **argv)
{
    static const struct option longopts[] = {VERDICT_LONGOPTS,
                                             {"base", required_argument, NULL, OPT_BASE},
                                             {"head", required_argument, NULL, OPT_HEAD},
                                             {"rounds", required_argument, NULL, OPT_ROUNDS},
                                             {"out", required_argument, NULL, OPT_OUT},
                                             {"device", required_argument, NULL, OPT_DEVICE},
                                             {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                             {"quiet", no_argument, NULL, OPT_QUIET},
                                             {"allow-unsafe-plugins", no_argument, NULL,
                                              OPT_ALLOW_UNSAFE},
                                             {NULL, 0, NULL, 0}};
    struct verdict_cli c;
    verdict_cli_init(&c, "ab");
    const char *side_dir[2] = {NULL, NULL};
    const char *out = "results/ab", *device = NULL;
    double timeout = 0, x;
    int rounds = 15, quiet = 0, allow_unsafe = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage_ab(stdout);
            return EXIT_FINE;
        case OPT_BASE:
            side_dir[0] = optarg;
            break;
        case OPT_HEAD:
            side_dir[1] = optarg;
            break;
        case OPT_ROUNDS:
            if (parse_double("ab", "rounds", optarg, 1, &x) || x != (int)x || x > 1000)
                return EXIT_USAGE;
            rounds = (int)x;
            break;
        case OPT_OUT:
            out = optarg;
            break;
        case OPT_DEVICE:
            device = optarg;
            break;
        case OPT_TIMEOUT:
            if (oomb_parse_duration(optarg, &timeout) != OOMB_OK || timeout <= 0) {
                fprintf(stderr, "oombench ab: --timeout '%s': expected a positive duration\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_QUIET:
            quiet = 1;
            break;
        case OPT_ALLOW_UNSAFE:
            allow_unsafe = 1;
            break;
        default: {
            int r = verdict_option(&c, opt, optarg);
            if (r < 0)
                return EXIT_USAGE;
            if (r == 0) {
                usage_ab(stderr);
                return EXIT_USAGE;
            }
        }
        }
    }
    if (!side_dir[0] || !side_dir[1] || optind >= argc) {
        fprintf(stderr, "oombench ab: --base DIR, --head DIR and a scenario are required\n");
        usage_ab(stderr);
        return EXIT_USAGE;
    }
    struct oomb_results *res[2];
    res[0] = calloc((size_t)rounds, sizeof *res[0]);
    res[1] = calloc((size_t)rounds, sizeof *res[1]);
    int rc = EXIT_FINE;
    if (!res[0] || !res[1]) {
        free(res[0]);
        free(res[1]);
        return EXIT_INTERNAL;
    }
    static const char *const side_name[2] = {"base", "head"};
    for (int r = 0; r < rounds && rc == EXIT_FINE; r++) {
        for (int k = 0; k < 2 && rc == EXIT_FINE; k++) {
            /* Alternate the order (AB, BA, ...) so that a slow drift of the
             * machine does not always favour the side that runs first. */
            int side = r % 2 ? 1 - k : k;
            struct oomb_run_options o = {0};
            const char *dirs[1] = {side_dir[side]};
            char sub[PATH_MAX], err[2048];
            snprintf(sub, sizeof sub, "%s/%s", out, side_name[side]);
            o.out_dir = sub;
            o.plugin_dirs = dirs;
            o.n_plugin_dirs = 1;
            o.device = device;
            o.timeout_s = timeout;
            o.quiet = 1;
            o.allow_unsafe_plugins = allow_unsafe;
            o.calibrate = c.normalize;
            if (!quiet)
                fprintf(stderr, "ab: round %d/%d %s (%s)\n", r + 1, rounds, side_name[side],
                        side_dir[side]);
            struct oomb_run_summary sum;
            int st = oomb_runner_run((const char *const *)argv + optind, argc - optind, &o,
                                     &res[side][r], &sum, err, sizeof err);
            if (st != OOMB_OK) {
                fprintf(stderr, "oombench ab: %s: %s\n", side_name[side], err);
                rc = st == OOMB_ERR_IO || st == OOMB_ERR_INTERNAL ? EXIT_INTERNAL : EXIT_USAGE;
            }
        }
    }
    if (rc == EXIT_FINE) {
        struct oomb_verdict v;
        if (c.normalize)
            print_normalize(res[0], rounds, res[1], rounds);
        if (oomb_verdict_compare(res[0], rounds, res[1], rounds, &c.vo, &v) != OOMB_OK) {
            rc = EXIT_INTERNAL;
        } else {
            char title[2 * PATH_MAX + 16];
            snprintf(title, sizeof title, "A/B %s -> %s", side_dir[0], side_dir[1]);
            printf("A/B: base %s, head %s, %d round(s)\n\n", side_dir[0], side_dir[1], rounds);
            rc = finish(&c, &v, title, res[1], rounds);
        }
        oomb_verdict_free(&v);
    }
    for (int k = 0; k < 2; k++) {
        for (int r = 0; r < rounds; r++)
            oomb_results_free(&res[k][r]);
        free(res[k]);
    }
    return rc;
}
