/*
 * `oombench merge`: the results files of `run --shard I/N` (or of separate
 * runs of one build on one device) into the one file an unsharded run would
 * have written. See cmd_merge.h and docs/scale-out.md.
 */
#include "cmd_merge.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"
#include "runner.h"
#include "util.h"

enum { EXIT_FINE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

#define MERGE_MAX_FILES 4096

static void usage(FILE *f)
{
    fprintf(f, "usage: oombench merge [options] RESULTS.json... --out FILE\n"
               "\n"
               "Merges the results files of `oombench run --shard I/N` (all N of them, in any\n"
               "order) into the one file an unsharded run would have written: the same runs in\n"
               "the same order, memory and time samples as measured, the scenario checks\n"
               "evaluated again on the merged runs. Files from different builds (executable),\n"
               "device classes or versions of a scenario file are refused, naming them; so are\n"
               "shards missing or given twice and a run found in two files.\n"
               "\n"
               "options:\n"
               "  -o, --out FILE   the merged results file (written atomically)\n"
               "  -h, --help       this help\n"
               "\n"
               "exit status: 0 merged and every check passed; 1 merged, and a check failed or\n"
               "a run crashed, timed out or failed; 2 usage or input error (nothing written);\n"
               "3 internal error\n");
}

/* "" and NULL are "not recorded" and match anything. */
static int differ(const char *a, const char *b)
{
    return a && b && a[0] && b[0] && strcmp(a, b) != 0;
}

static int same_config(const struct oomb_run_result *a, const struct oomb_run_result *b)
{
    return strcmp(a->scenario, b->scenario) == 0 && a->mode == b->mode && a->batch == b->batch;
}

static int run_cmp(const void *pa, const void *pb)
{
    const struct oomb_run_result *a = pa, *b = pb;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Moves every run and check of `from` into `to` (from keeps empty arrays). */
static int take(struct oomb_results *to, struct oomb_results *from)
{
    struct oomb_run_result *runs =
        realloc(to->runs, (size_t)(to->n_runs + from->n_runs + 1) * sizeof *runs);
    if (!runs)
        return OOMB_ERR_INTERNAL;
    to->runs = runs;
    memcpy(to->runs + to->n_runs, from->runs, (size_t)from->n_runs * sizeof *runs);
    to->n_runs += from->n_runs;
    free(from->runs);
    from->runs = NULL;
    from->n_runs = 0;
    struct oomb_check_record *ch =
        realloc(to->checks, (size_t)(to->n_checks + from->n_checks + 1) * sizeof *ch);
    if (!ch)
        return OOMB_ERR_INTERNAL;
    to->checks = ch;
    memcpy(to->checks + to->n_checks, from->checks, (size_t)from->n_checks * sizeof *ch);
    to->n_checks += from->n_checks;
    free(from->checks);
    from->checks = NULL;
    from->n_checks = 0;
    return OOMB_OK;
}

/* The files agree on what they were measured with; else err names two. */
static int check_compatible(struct oomb_results *f, char **paths, int n, char *err, size_t len)
{
    for (int i = 1; i < n; i++) {
        const char *what = differ(f[0].build_id, f[i].build_id)           ? "builds (executables)"
                           : differ(f[0].tool_version, f[i].tool_version) ? "oombench versions"
                           : differ(f[0].device_class, f[i].device_class) ? "device classes"
                           : differ(f[0].device_name, f[i].device_name)   ? "devices"
                                                                          : NULL;
        if (what) {
            snprintf(err, len, "%s and %s come from different %s", paths[0], paths[i], what);
            return OOMB_ERR_INVALID;
        }
        if ((f[0].shard_count > 0) != (f[i].shard_count > 0) ||
            f[0].shard_count != f[i].shard_count) {
            snprintf(err, len, "%s and %s are not shards of one split (--shard %d/%d and %d/%d)",
                     paths[0], paths[i], f[0].shard_index, f[0].shard_count, f[i].shard_index,
                     f[i].shard_count);
            return OOMB_ERR_INVALID;
        }
    }
    int count = f[0].shard_count;
    if (count > 0) {
        if (n != count) {
            snprintf(err, len, "%d file(s) given for a split into %d shards", n, count);
            return OOMB_ERR_INVALID;
        }
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (f[i].shard_index == f[j].shard_index) {
                    snprintf(err, len, "%s and %s are both shard %d/%d", paths[i], paths[j],
                             f[i].shard_index, count);
                    return OOMB_ERR_INVALID;
                }
    }
    /* one version of each scenario file */
    for (int a = 0; a < n; a++)
        for (int x = 0; x < f[a].n_runs; x++)
            for (int b = a; b < n; b++)
                for (int y = b == a ? x + 1 : 0; y < f[b].n_runs; y++) {
                    const struct oomb_run_result *r = &f[a].runs[x], *s = &f[b].runs[y];
                    if (strcmp(r->scenario, s->scenario) != 0)
                        continue;
                    /* names from the files, shown inert */
                    char scen[80], strat[80], da[24], db[24];
                    oomb_term_text(r->scenario, 64, scen, sizeof scen);
                    oomb_term_text(r->strategy, 64, strat, sizeof strat);
                    if (differ(r->scenario_digest, s->scenario_digest)) {
                        snprintf(err, len,
                                 "%s and %s ran different versions of scenario '%s' (file "
                                 "digests %s and %s)",
                                 paths[a], paths[b], scen,
                                 oomb_term_text(r->scenario_digest, 16, da, sizeof da),
                                 oomb_term_text(s->scenario_digest, 16, db, sizeof db));
                        return OOMB_ERR_INVALID;
                    }
                    if (same_config(r, s) && strcmp(r->strategy, s->strategy) == 0) {
                        snprintf(err, len, "run '%s' of %s (%s, batch %lld) is in %s and in %s",
                                 strat, scen, r->mode == OOMB_MODE_TRAIN ? "train" : "infer",
                                 (long long)r->batch, paths[a], paths[b]);
                        return OOMB_ERR_INVALID;
                    }
                    /* the configuration of a run is in one file: its `none` and checks with it */
                    if (a != b && same_config(r, s)) {
                        snprintf(err, len,
                                 "%s (%s, batch %lld) is split between %s and %s: a "
                                 "configuration's runs must be in one file",
                                 scen, r->mode == OOMB_MODE_TRAIN ? "train" : "infer",
                                 (long long)r->batch, paths[a], paths[b]);
                        return OOMB_ERR_INVALID;
                    }
                }
    return OOMB_OK;
}

/* Orders the runs by their place in the unsharded run and evaluates every
 * check again over its configuration's runs (contiguous after sorting). */
static int order_and_check(struct oomb_results *m, int *failed)
{
    struct oomb_check_record *checks = calloc((size_t)m->n_checks + 1, sizeof *checks);
    if (!checks)
        return OOMB_ERR_INTERNAL;
    if (m->n_runs > 1)
        qsort(m->runs, (size_t)m->n_runs, sizeof *m->runs, run_cmp);
    /* checks in the order of their configurations, each evaluated again */
    int k = 0;
    *failed = 0;
    for (int first = 0; first < m->n_runs;) {
        int last = first + 1;
        while (last < m->n_runs && same_config(&m->runs[first], &m->runs[last]))
            last++;
        for (int c = 0; c < m->n_checks; c++) {
            struct oomb_check_record *cr = &m->checks[c];
            if (!cr->expr || !cr->scenario || strcmp(cr->scenario, m->runs[first].scenario) != 0 ||
                cr->mode != m->runs[first].mode || cr->batch != m->runs[first].batch)
                continue;
            checks[k] = *cr;
            memset(cr, 0, sizeof *cr); /* moved */
            *failed += oomb_runner_eval_check(m, first, last, &checks[k]);
            k++;
        }
        first = last;
    }
    for (int c = 0; c < m->n_checks; c++) { /* a check of no run in the files: dropped */
        free(m->checks[c].scenario);
        free(m->checks[c].expr);
        free(m->checks[c].op);
        free(m->checks[c].message);
    }
    free(m->checks);
    m->checks = checks;
    m->n_checks = k;
    return OOMB_OK;
}

int oomb_cmd_merge(int argc, char **argv)
{
    static const struct option longopts[] = {{"out", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_FINE;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    int n = argc - optind;
    if (!out || n < 1) {
        fprintf(stderr, "oombench merge: %s\n",
                !out ? "--out FILE is required" : "no results files given");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (n > MERGE_MAX_FILES) {
        fprintf(stderr, "oombench merge: %d files, at most %d\n", n, MERGE_MAX_FILES);
        return EXIT_USAGE;
    }
    char **paths = argv + optind;
    struct oomb_results *f = calloc((size_t)n, sizeof *f);
    struct oomb_results m = {0};
    char err[1024] = "";
    int status = EXIT_USAGE;
    if (!f) {
        fprintf(stderr, "oombench merge: out of memory\n");
        return EXIT_INTERNAL;
    }
    int loaded = 0;
    for (; loaded < n; loaded++) {
        if (oomb_results_read(paths[loaded], &f[loaded], err, sizeof err) != OOMB_OK) {
            fprintf(stderr, "oombench merge: %s\n", err);
            loaded++; /* what a failed read filled is freed below */
            goto done;
        }
    }
    if (check_compatible(f, paths, n, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench merge: %s\n", err);
        goto done;
    }
    /* the first file's description of the machine (and its runs), every file's runs */
    m = f[0];
    memset(&f[0], 0, sizeof f[0]);
    m.shard_index = m.shard_count = 0;
    for (int i = 1; i < n; i++) {
        if (take(&m, &f[i]) != OOMB_OK)
            goto oom;
        if (f[i].created && m.created && strcmp(f[i].created, m.created) < 0) {
            char *t = m.created; /* the earliest start */
            m.created = f[i].created;
            f[i].created = t;
        }
    }
    int failed = 0;
    if (order_and_check(&m, &failed) != OOMB_OK)
        goto oom;
    if (oomb_results_write(&m, out, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench merge: %s\n", err);
        status = EXIT_INTERNAL;
        goto done;
    }
    int run_failed = 0;
    for (int i = 0; i < m.n_runs; i++) {
        enum oomb_outcome o = m.runs[i].outcome;
        run_failed +=
            o == OOMB_OUTCOME_CRASH || o == OOMB_OUTCOME_TIMEOUT || o == OOMB_OUTCOME_ERROR;
    }
    printf("merged %d file(s): %d run(s), %d failed; %d check(s), %d failed -> %s\n", n, m.n_runs,
           run_failed, m.n_checks, failed, out);
    status = failed || run_failed ? EXIT_FAILED : EXIT_FINE;
    goto done;
oom:
    fprintf(stderr, "oombench merge: out of memory\n");
    status = EXIT_INTERNAL;
done:
    for (int i = 0; i < loaded; i++)
        oomb_results_free(&f[i]);
    free(f);
    oomb_results_free(&m);
    return status;
}
