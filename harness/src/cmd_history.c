/*
 * `oombench history`: a metric per commit over a folder of results files
 * (a nightly job's), and the first commit where it regressed, judged by the
 * verdict engine `compare` uses. See cmd_history.h and docs/scale-out.md.
 */
#include "cmd_history.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "results.h"
#include "util.h"
#include "verdict.h"

enum { EXIT_FINE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

#define HISTORY_MAX_FILES 4096
#define HISTORY_MAX_METRICS 32

static void usage(FILE *f)
{
    fprintf(f, "usage: oombench history [options] DIR|RESULTS.json...\n"
               "\n"
               "Orders the results files by the commit they measured (results `source`,\n"
               "recorded by `run --commit` or from the CI or git; files of one commit are\n"
               "taken together, files without a revision each count as one, by creation\n"
               "time), compares every commit with the one before it by the verdict engine\n"
               "of `oombench compare`, and names the first commit where each metric of each\n"
               "run regressed.\n"
               "\n"
               "options:\n"
               "  -m, --metric M       only this metric (repeatable): memory.total,\n"
               "                       memory.<tag>, time.step, time.<phase>, throughput,\n"
               "                       outcome, quality.final_loss, ... (default: all)\n"
               "  -s, --scenario NAME  only this scenario's runs\n"
               "  -S, --strategy LABEL only this strategy's runs\n"
               "      --noise PCT      time noise threshold in percent (default: 5 on the\n"
               "                       CPU, 2 on the GPU, as compare)\n"
               "  -h, --help           this help\n"
               "\n"
               "exit status: 0 no regression; 1 a metric regressed at some commit; 2 usage or\n"
               "input error; 3 internal error\n");
}

struct file {
    char *path;
    struct oomb_results res;
    int64_t when; /* the commit's time, else the file's creation, Unix seconds */
};

/* One commit: its files' runs taken together (shallow copies: the files own
 * every pointer). */
struct commit {
    const char *revision; /* "" when the files do not say */
    int64_t when;
    int first, count; /* its files, in files[] after sorting */
    struct oomb_results set;
};

static int cmp_file(const void *a, const void *b)
{
    const struct file *x = a, *y = b;
    if (x->when != y->when)
        return x->when < y->when ? -1 : 1;
    int c = strcmp(x->res.revision ? x->res.revision : "", y->res.revision ? y->res.revision : "");
    return c ? c : strcmp(x->path, y->path);
}

static int add_file(struct file *files, int *n, const char *path)
{
    if (*n >= HISTORY_MAX_FILES) {
        fprintf(stderr, "oombench history: more than %d results files\n", HISTORY_MAX_FILES);
        return EXIT_USAGE;
    }
    char err[1024];
    struct file *f = &files[*n];
    if (oomb_results_read(path, &f->res, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench history: %s\n", err);
        oomb_results_free(&f->res);
        return EXIT_USAGE;
    }
    f->path = oomb_strdup(path);
    f->when = oomb_results_when(&f->res);
    (*n)++;
    return f->path ? EXIT_FINE : EXIT_INTERNAL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int add_path(struct file *files, int *n, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "oombench history: %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    if (!S_ISDIR(st.st_mode))
        return add_file(files, n, path);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "oombench history: %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    char **names = NULL;
    int nn = 0, cap = 0, rc = EXIT_FINE;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0 || de->d_name[0] == '.')
            continue;
        if (nn == cap) {
            cap = cap ? 2 * cap : 64;
            char **m = realloc(names, (size_t)cap * sizeof *m);
            if (!m) {
                rc = EXIT_INTERNAL;
                break;
            }
            names = m;
        }
        if (!(names[nn] = oomb_strdup(de->d_name))) {
            rc = EXIT_INTERNAL;
            break;
        }
        nn++;
    }
    closedir(d);
    if (nn > 1)
        qsort(names, (size_t)nn, sizeof *names, cmp_name);
    for (int i = 0; i < nn; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        if (rc == EXIT_FINE)
            rc = add_file(files, n, p);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int wanted(const char *metric, const char *const *metrics, int n_metrics)
{
    for (int i = 0; i < n_metrics; i++)
        if (strcmp(metric, metrics[i]) == 0)
            return 1;
    return n_metrics == 0;
}

/* The commit's name for the terminal: its revision's first 12 characters,
 * else the first file's creation time (untrusted text: control characters
 * shown as '?'). */
static void short_rev(const struct commit *c, const struct file *files, char *buf, size_t len)
{
    char head[13], created[40];
    if (c->revision[0]) {
        snprintf(head, sizeof head, "%s", c->revision);
        oomb_term_text(head, sizeof head, buf, len);
    } else {
        oomb_term_text(files[c->first].res.created ? files[c->first].res.created : "?", 32,
                       created, sizeof created);
        snprintf(buf, len, "(%s)", created);
    }
}

static void day(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm))
        snprintf(buf, len, "?");
    else
        strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

/* The first regression of one run x metric. */
struct first {
    struct oomb_verdict_item item;
    int commit;
};

int oomb_cmd_history(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"metric", required_argument, NULL, 'm'},   {"scenario", required_argument, NULL, 's'},
        {"strategy", required_argument, NULL, 'S'}, {"noise", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *metrics[HISTORY_MAX_METRICS];
    int n_metrics = 0, c;
    const char *scenario = NULL, *strategy = NULL;
    struct oomb_verdict_options vo;
    oomb_verdict_options_init(&vo);
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:s:S:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (n_metrics == HISTORY_MAX_METRICS) {
                fprintf(stderr, "oombench history: at most %d --metric\n", HISTORY_MAX_METRICS);
                return EXIT_USAGE;
            }
            metrics[n_metrics++] = optarg;
            break;
        case 's':
            scenario = optarg;
            break;
        case 'S':
            strategy = optarg;
            break;
        case 'n': {
            char *end;
            errno = 0;
            double x = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(x >= 0 && x <= 1000)) {
                fprintf(stderr, "oombench history: --noise '%s': expected a percentage\n", optarg);
                return EXIT_USAGE;
            }
            vo.noise_pct = x;
            break;
        }
        case 'h':
            usage(stdout);
            return EXIT_FINE;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "oombench history: no results folder or file given\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    struct file *files = calloc(HISTORY_MAX_FILES, sizeof *files);
    struct commit *commits = NULL;
    struct first *firsts = NULL;
    int n_files = 0, n_commits = 0, n_firsts = 0, cap_firsts = 0, status = EXIT_USAGE;
    if (!files) {
        fprintf(stderr, "oombench history: out of memory\n");
        return EXIT_INTERNAL;
    }
    for (int i = optind; i < argc; i++)
        if ((status = add_path(files, &n_files, argv[i])) != EXIT_FINE)
            goto done;
    status = EXIT_USAGE;
    if (n_files < 2) {
        fprintf(stderr, "oombench history: %d results file(s): a history needs two or more\n",
                n_files);
        goto done;
    }
    qsort(files, (size_t)n_files, sizeof *files, cmp_file);
    /* commits: the files of one revision together (at the time of its first) */
    commits = calloc((size_t)n_files, sizeof *commits);
    if (!commits)
        goto oom;
    for (int i = 0; i < n_files; i++) {
        const char *rev = files[i].res.revision ? files[i].res.revision : "";
        int k = -1;
        for (int j = 0; rev[0] && j < n_commits; j++)
            if (strcmp(commits[j].revision, rev) == 0)
                k = j;
        if (k >= 0 && commits[k].first + commits[k].count != i) {
            fprintf(stderr,
                    "oombench history: %s measured revision %s, which %s measured before "
                    "another commit in between (by commit time): give each commit's files "
                    "one commit time\n",
                    files[i].path, rev, files[commits[k].first].path);
            goto done;
        }
        if (k < 0) {
            k = n_commits++;
            commits[k].revision = rev;
            commits[k].when = files[i].when;
            commits[k].first = i;
        }
        commits[k].count++;
    }
    for (int k = 0; k < n_commits; k++) {
        struct commit *cm = &commits[k];
        cm->set = files[cm->first].res; /* the machine, as the first file says */
        int total = 0;
        for (int i = 0; i < cm->count; i++)
            total += files[cm->first + i].res.n_runs;
        cm->set.runs = calloc((size_t)total + 1, sizeof *cm->set.runs);
        if (!cm->set.runs)
            goto oom;
        cm->set.n_runs = 0;
        cm->set.checks = NULL;
        cm->set.n_checks = 0;
        for (int i = 0; i < cm->count; i++) {
            const struct oomb_results *r = &files[cm->first + i].res;
            for (int j = 0; j < r->n_runs; j++) {
                const struct oomb_run_result *x = &r->runs[j];
                if ((scenario && strcmp(x->scenario, scenario) != 0) ||
                    (strategy && strcmp(x->strategy, strategy) != 0))
                    continue;
                cm->set.runs[cm->set.n_runs++] = *x;
            }
        }
    }
    if (n_commits < 2) {
        fprintf(stderr, "oombench history: all %d file(s) measured one commit (%s)\n", n_files,
                commits[0].revision[0] ? commits[0].revision : "no revision recorded");
        goto done;
    }
    printf("history: %d commit(s) from %d results file(s), oldest first\n", n_commits, n_files);
    printf("  %-3s %-14s %-16s %5s  %s\n", "#", "revision", "time (UTC)", "files", "regressions");
    int seen_metric = 0;
    for (int k = 0; k < n_commits; k++) {
        int reg = 0;
        if (k > 0) {
            struct oomb_verdict v;
            if (oomb_verdict_compare(&commits[k - 1].set, 1, &commits[k].set, 1, &vo, &v) !=
                OOMB_OK) {
                oomb_verdict_free(&v);
                goto oom;
            }
            for (int i = 0; i < v.n; i++) {
                const struct oomb_verdict_item *it = &v.items[i];
                if (!wanted(it->metric, metrics, n_metrics))
                    continue;
                seen_metric = 1;
                if (it->kind != OOMB_VERDICT_REGRESSED)
                    continue;
                reg++;
                int known = 0;
                for (int f = 0; f < n_firsts; f++)
                    known |= strcmp(firsts[f].item.scenario, it->scenario) == 0 &&
                             strcmp(firsts[f].item.strategy, it->strategy) == 0 &&
                             strcmp(firsts[f].item.metric, it->metric) == 0 &&
                             firsts[f].item.mode == it->mode && firsts[f].item.batch == it->batch;
                if (known)
                    continue;
                if (n_firsts == cap_firsts) {
                    cap_firsts = cap_firsts ? 2 * cap_firsts : 16;
                    struct first *m = realloc(firsts, (size_t)cap_firsts * sizeof *m);
                    if (!m) {
                        oomb_verdict_free(&v);
                        goto oom;
                    }
                    firsts = m;
                }
                firsts[n_firsts].item = *it;
                firsts[n_firsts].commit = k;
                n_firsts++;
            }
            oomb_verdict_free(&v);
        }
        char rev[64], when[32];
        short_rev(&commits[k], files, rev, sizeof rev);
        day(commits[k].when, when, sizeof when);
        printf("  %-3d %-14s %-16s %5d  %s", k + 1, rev, when, commits[k].count, k == 0 ? "-" : "");
        if (k > 0)
            printf("%d", reg);
        printf("\n");
    }
    if (n_metrics > 0 && !seen_metric) {
        fprintf(stderr,
                "oombench history: no run was compared on %s%s (metrics: memory.total, "
                "memory.<tag>, time.step, time.<phase>, throughput, outcome, quality.*)\n",
                metrics[0], n_metrics > 1 ? " or the others given" : "");
        goto done;
    }
    if (n_firsts == 0) {
        printf("no regression in this history\n");
        status = EXIT_FINE;
        goto done;
    }
    printf("first regressions (each against the commit before):\n");
    for (int f = 0; f < n_firsts; f++) {
        const struct oomb_verdict_item *it = &firsts[f].item;
        char rev[64], before[64];
        short_rev(&commits[firsts[f].commit], files, rev, sizeof rev);
        short_rev(&commits[firsts[f].commit - 1], files, before, sizeof before);
        char label[160], text[420], strat[160];
        oomb_term_text(it->scenario, sizeof it->scenario, label, sizeof label);
        oomb_term_text(it->detail, sizeof it->detail, text, sizeof text);
        oomb_term_text(it->strategy, sizeof it->strategy, strat, sizeof strat);
        printf("  %s: %s %s batch %lld %s %s: %s (after %s)\n", rev, label,
               it->mode == OOMB_MODE_TRAIN ? "train" : "infer", (long long)it->batch, strat,
               it->metric, text, before);
    }
    status = EXIT_FAILED;
    goto done;
oom:
    fprintf(stderr, "oombench history: out of memory\n");
    status = EXIT_INTERNAL;
done:
    for (int k = 0; commits && k < n_commits; k++)
        free(commits[k].set.runs);
    free(commits);
    free(firsts);
    for (int i = 0; i < n_files; i++) {
        oomb_results_free(&files[i].res);
        free(files[i].path);
    }
    free(files);
    return status;
}
