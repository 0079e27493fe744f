/*
 * Stored baselines (baseline.h): one results file per device class and
 * scenario, and the report of what a new baseline changes against the one
 * it replaces, so that a reviewer sees every byte a baseline update moves.
 */
#include "baseline.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proc.h"
#include "table.h"
#include "util.h"

const char *oomb_baseline_device_class(const struct oomb_results *r, const char *override)
{
    if (override && *override)
        return override;
    const char *env = getenv("OOMB_DEVICE_CLASS");
    if (env && *env)
        return env;
    if (r && r->device_class && r->device_class[0])
        return r->device_class;
    return "unknown";
}

/* A name for an error message: control characters as '?', at most 64 bytes. */
static const char *shown(const char *s, char *buf, size_t len)
{
    return oomb_term_text(s, 64, buf, len);
}

int oomb_baseline_resolve_class(const struct oomb_results *r, const char *results_path,
                                const char *override, const char **cls, char *err, size_t err_len)
{
    const char *env = getenv("OOMB_DEVICE_CLASS");
    const char *c = oomb_baseline_device_class(r, override);
    char why[128], name[80];
    *cls = c;
    if (oomb_check_path_component(c, why, sizeof why) == OOMB_OK)
        return OOMB_OK;
    if (override && *override)
        oomb_errf(err, err_len, "--device-class '%s': %s; a device class names a folder",
                  shown(c, name, sizeof name), why);
    else if (env && *env)
        oomb_errf(err, err_len, "$OOMB_DEVICE_CLASS '%s': %s; a device class names a folder",
                  shown(c, name, sizeof name), why);
    else
        oomb_errf(err, err_len,
                  "%s: field 'device.class': '%s' %s; a device class names a folder (or give "
                  "--device-class)",
                  results_path ? results_path : "results", shown(c, name, sizeof name), why);
    return OOMB_ERR_INVALID;
}

int oomb_baseline_check_scenarios(const struct oomb_results *r, const char *results_path, char *err,
                                  size_t err_len)
{
    for (int i = 0; i < r->n_runs; i++) {
        char why[128], name[80], strat[80];
        if (oomb_check_path_component(r->runs[i].scenario, why, sizeof why) == OOMB_OK)
            continue;
        oomb_errf(err, err_len,
                  "%s: run %d (scenario '%s', strategy '%s'): field 'runs[%d].scenario': %s; a "
                  "scenario name names its baseline file",
                  results_path ? results_path : "results", i,
                  shown(r->runs[i].scenario, name, sizeof name),
                  shown(r->runs[i].strategy, strat, sizeof strat), i, why);
        return OOMB_ERR_INVALID;
    }
    return OOMB_OK;
}

int oomb_baseline_path(const char *dir, const char *device_class, const char *scenario, char *buf,
                       size_t len, char *err, size_t err_len)
{
    char why[128], name[80];
    if (len)
        buf[0] = '\0';
    if (oomb_check_path_component(device_class, why, sizeof why) != OOMB_OK) {
        oomb_errf(err, err_len, "device class '%s': %s", shown(device_class, name, sizeof name),
                  why);
        return OOMB_ERR_INVALID;
    }
    if (oomb_check_path_component(scenario, why, sizeof why) != OOMB_OK) {
        oomb_errf(err, err_len, "scenario name '%s': %s", shown(scenario, name, sizeof name), why);
        return OOMB_ERR_INVALID;
    }
    int n = snprintf(buf, len, "%s/%s/%s.json", dir && *dir ? dir : OOMB_BASELINE_DIR, device_class,
                     scenario);
    if (n < 0 || (size_t)n >= len) {
        if (len)
            buf[0] = '\0';
        oomb_errf(err, err_len, "baseline path under '%s' is too long", dir);
        return OOMB_ERR_INVALID;
    }
    return OOMB_OK;
}

int oomb_results_scenarios(const struct oomb_results *r, const char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    if (r->n_runs == 0)
        return OOMB_OK;
    const char **v = malloc((size_t)r->n_runs * sizeof *v);
    if (!v)
        return OOMB_ERR_OOM;
    int k = 0;
    for (int i = 0; i < r->n_runs; i++) {
        const char *s = r->runs[i].scenario ? r->runs[i].scenario : "";
        int seen = 0;
        for (int j = 0; j < k && !seen; j++)
            seen = strcmp(v[j], s) == 0;
        if (!seen)
            v[k++] = s;
    }
    *names = v;
    *n = k;
    return OOMB_OK;
}

void oomb_results_keep_scenario(struct oomb_results *r, const char *scenario)
{
    int k = 0;
    for (int i = 0; i < r->n_runs; i++) {
        if (strcmp(r->runs[i].scenario ? r->runs[i].scenario : "", scenario) == 0)
            r->runs[k++] = r->runs[i];
        else
            oomb_run_result_free(&r->runs[i]);
    }
    r->n_runs = k;
    k = 0;
    for (int i = 0; i < r->n_checks; i++) {
        struct oomb_check_record *c = &r->checks[i];
        if (strcmp(c->scenario ? c->scenario : "", scenario) == 0) {
            r->checks[k++] = *c;
        } else {
            free(c->scenario);
            free(c->expr);
            free(c->op);
            free(c->message);
        }
    }
    r->n_checks = k;
}

int oomb_results_move_runs(struct oomb_results *dst, struct oomb_results *src)
{
    for (int i = 0; i < src->n_runs; i++) {
        struct oomb_run_result *d = oomb_results_add_run(dst);
        if (!d)
            return OOMB_ERR_OOM;
        *d = src->runs[i];
        memset(&src->runs[i], 0, sizeof src->runs[i]);
    }
    for (int i = 0; i < src->n_runs; i++)
        oomb_run_result_free(&src->runs[i]);
    src->n_runs = 0;
    return OOMB_OK;
}

int oomb_baseline_load(const char *dir, const char *device_class, const char *scenario,
                       struct oomb_results *out, int *found, char *err, size_t err_len)
{
    char path[4096];
    struct stat st;
    memset(out, 0, sizeof *out);
    *found = 0;
    int prc = oomb_baseline_path(dir, device_class, scenario, path, sizeof path, err, err_len);
    if (prc != OOMB_OK)
        return prc;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return OOMB_OK;
    int rc = oomb_results_read(path, out, err, err_len);
    if (rc != OOMB_OK)
        return rc;
    *found = 1;
    oomb_results_keep_scenario(out, scenario);
    return OOMB_OK;
}

static const char *mode_text(enum oomb_mode m)
{
    return m == OOMB_MODE_TRAIN ? "train" : "infer";
}

static const struct oomb_run_result *find_same(const struct oomb_results *r,
                                               const struct oomb_run_result *x)
{
    for (int i = 0; i < r->n_runs; i++) {
        const struct oomb_run_result *y = &r->runs[i];
        if (y->mode == x->mode && y->batch == x->batch && strcmp(y->strategy, x->strategy) == 0)
            return y;
    }
    return NULL;
}

static void print_mem_change(FILE *f, const char *what, uint64_t a, uint64_t b)
{
    if (a == b)
        return;
    char hb[32];
    oomb_format_bytes(a > b ? a - b : b - a, hb, sizeof hb);
    fprintf(f, "    %-12s %llu -> %llu (%s%lld B, %s%s)\n", what, (unsigned long long)a,
            (unsigned long long)b, b > a ? "+" : "", (long long)(b - a), b > a ? "+" : "-", hb);
}

/* What `next` changes against `prev` (the same scenario). */
static void report_changes(FILE *f, const struct oomb_results *prev,
                           const struct oomb_results *next)
{
    int changes = 0;
    for (int i = 0; i < next->n_runs; i++) {
        const struct oomb_run_result *n = &next->runs[i];
        if (find_same(next, n) != n)
            continue; /* a further run of the same configuration */
        const struct oomb_run_result *p = find_same(prev, n);
        if (!p) {
            fprintf(f, "  added   %s %s batch %lld: %s (%s)\n", n->scenario, mode_text(n->mode),
                    (long long)n->batch, n->strategy, oomb_outcome_name(n->outcome));
            changes++;
            continue;
        }
        int differs = p->outcome != n->outcome || p->peak_bytes != n->peak_bytes;
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            differs |= p->peak_by_tag[t] != n->peak_by_tag[t];
        /* The held-out test accuracy, when both were evaluated. */
        int acc_moved = p->has_eval && n->has_eval && isfinite(p->test_accuracy) &&
                        isfinite(n->test_accuracy) && p->test_accuracy != n->test_accuracy;
        differs |= acc_moved;
        if (!differs)
            continue;
        changes++;
        fprintf(f, "  changed %s %s batch %lld: %s\n", n->scenario, mode_text(n->mode),
                (long long)n->batch, n->strategy);
        if (p->outcome != n->outcome)
            fprintf(f, "    %-12s %s -> %s\n", "outcome", oomb_outcome_name(p->outcome),
                    oomb_outcome_name(n->outcome));
        print_mem_change(f, "total", p->peak_bytes, n->peak_bytes);
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            print_mem_change(f, oomb_tag_name((enum oomb_tag)t), p->peak_by_tag[t],
                             n->peak_by_tag[t]);
        if (acc_moved)
            fprintf(f, "    %-12s %.4f -> %.4f (%+.2f pp)\n", "test acc", p->test_accuracy,
                    n->test_accuracy, 100 * (n->test_accuracy - p->test_accuracy));
    }
    for (int i = 0; i < prev->n_runs; i++) {
        const struct oomb_run_result *p = &prev->runs[i];
        if (find_same(prev, p) == p && !find_same(next, p)) {
            fprintf(f, "  removed %s %s batch %lld: %s\n", p->scenario, mode_text(p->mode),
                    (long long)p->batch, p->strategy);
            changes++;
        }
    }
    if (changes == 0)
        fprintf(f, "  no run added or removed, no memory or outcome change\n");
}

static int same_run(const struct oomb_run_result *a, const struct oomb_run_result *b)
{
    return a->mode == b->mode && a->batch == b->batch && strcmp(a->strategy, b->strategy) == 0;
}

/* Refuse a run whose memory differs from the first run of its configuration
 * in `into`: memory is deterministic, so the two are not runs of one build. */
static int check_memory(const struct oomb_results *into, const char *into_name,
                        const struct oomb_run_result *x, const char *x_name, char *err,
                        size_t err_len)
{
    const struct oomb_run_result *y = find_same(into, x);
    if (!y || y->outcome != OOMB_OUTCOME_OK || x->outcome != OOMB_OUTCOME_OK)
        return OOMB_OK;
    const char *tag = NULL;
    uint64_t a = 0, b = 0;
    if (y->peak_bytes != x->peak_bytes) {
        tag = "total";
        a = y->peak_bytes;
        b = x->peak_bytes;
    }
    for (int t = 0; t < OOMB_TAG_COUNT && !tag; t++)
        if (y->peak_by_tag[t] != x->peak_by_tag[t]) {
            tag = oomb_tag_name((enum oomb_tag)t);
            a = y->peak_by_tag[t];
            b = x->peak_by_tag[t];
        }
    if (!tag)
        return OOMB_OK;
    oomb_errf(err, err_len,
              "%s: run %s %s batch %lld %s: memory.%s is %llu B, but %llu B in %s; memory is "
              "deterministic, so these are not runs of the same build: not saved",
              x_name, x->scenario, mode_text(x->mode), (long long)x->batch, x->strategy, tag,
              (unsigned long long)b, (unsigned long long)a, into_name);
    return OOMB_ERR_INVALID;
}

/* Keep the `keep` most recent (last) runs of each configuration of r. */
static void keep_recent(struct oomb_results *r, int keep)
{
    int k = 0;
    for (int i = 0; i < r->n_runs; i++) {
        int later = 0;
        for (int j = i + 1; j < r->n_runs; j++)
            later += same_run(&r->runs[i], &r->runs[j]);
        if (later >= keep)
            oomb_run_result_free(&r->runs[i]);
        else
            r->runs[k++] = r->runs[i];
    }
    r->n_runs = k;
}

static int most_per_configuration(const struct oomb_results *r)
{
    int most = 0;
    for (int i = 0; i < r->n_runs; i++) {
        int c = 0;
        for (int j = 0; j < r->n_runs; j++)
            c += same_run(&r->runs[i], &r->runs[j]);
        if (c > most)
            most = c;
    }
    return most;
}

int oomb_baseline_save_runs(const char *const *paths, int n_paths, const char *dir,
                            const char *class_override, int append, int keep, FILE *report,
                            char *err, size_t err_len)
{
    if (n_paths < 1 || keep < 1) {
        oomb_errf(err, err_len, "no results file to save as a baseline");
        return OOMB_ERR_INVALID;
    }
    struct oomb_results *all = calloc((size_t)n_paths, sizeof *all);
    const char **names = NULL;
    struct oomb_results *outs = NULL, *prevs = NULL;
    int *founds = NULL;
    int n = 0, rc = OOMB_OK, loaded = 0, built = 0;
    if (!all)
        return OOMB_ERR_OOM;
    for (; loaded < n_paths && rc == OOMB_OK; loaded++)
        rc = oomb_results_read(paths[loaded], &all[loaded], err, err_len);
    if (rc != OOMB_OK) {
        loaded--; /* the failed read left nothing to free */
        goto done;
    }
    /* Names become paths: every one is checked before anything is read or
     * written under dir. */
    for (int f = 0; f < n_paths && rc == OOMB_OK; f++)
        rc = oomb_baseline_check_scenarios(&all[f], paths[f], err, err_len);
    if (rc != OOMB_OK)
        goto done;
    /* The scenarios of every file, in order of first appearance. */
    for (int f = 0; f < n_paths && rc == OOMB_OK; f++) {
        const char **fn = NULL;
        int fk = 0;
        if ((rc = oomb_results_scenarios(&all[f], &fn, &fk)) != OOMB_OK)
            break;
        const char **grown = realloc(names, (size_t)(n + fk + 1) * sizeof *names);
        if (!grown) {
            free(fn);
            rc = OOMB_ERR_OOM;
            break;
        }
        names = grown;
        for (int j = 0; j < fk; j++) {
            int seen = 0;
            for (int i = 0; i < n && !seen; i++)
                seen = strcmp(names[i], fn[j]) == 0;
            if (!seen)
                names[n++] = fn[j];
        }
        free(fn);
    }
    if (rc != OOMB_OK)
        goto done;
    if (n == 0) {
        oomb_errf(err, err_len, "%s: field 'runs': no runs to save as a baseline", paths[0]);
        rc = OOMB_ERR_PARSE;
        goto done;
    }
    const char *cls = NULL;
    if ((rc = oomb_baseline_resolve_class(&all[0], paths[0], class_override, &cls, err, err_len)) !=
        OOMB_OK)
        goto done;
    /* Every scenario's new baseline is built and checked first, and written
     * only when all of them are good: a refused save changes no file. */
    outs = calloc((size_t)n, sizeof *outs);
    prevs = calloc((size_t)n, sizeof *prevs);
    founds = calloc((size_t)n, sizeof *founds);
    if (!outs || !prevs || !founds) {
        rc = OOMB_ERR_OOM;
        goto done;
    }
    for (int i = 0; i < n && rc == OOMB_OK; i++) {
        struct oomb_results one = {0}, prev = {0};
        char path[4096];
        int found = 0, from = 0;
        if ((rc = oomb_baseline_path(dir, cls, names[i], path, sizeof path, err, err_len)) !=
            OOMB_OK)
            break;
        rc = oomb_baseline_load(dir, cls, names[i], &prev, &found, err, err_len);
        if (rc != OOMB_OK) {
            if (append) {
                /* Appending to an unreadable baseline would lose it. */
                oomb_results_free(&prev);
                break;
            }
            /* An unreadable old baseline is replaced; say so. */
            fprintf(report, "baseline %s: previous file unreadable (%s), replacing it\n", path,
                    err);
            oomb_results_free(&prev);
            memset(&prev, 0, sizeof prev);
            rc = OOMB_OK;
            found = 0;
        }
        /* The file's header: the previous baseline's when appending to it,
         * else that of the first results file holding the scenario. */
        const char *into_name = path;
        if (append && found) {
            rc = oomb_baseline_load(dir, cls, names[i], &one, &found, err, err_len);
        } else {
            while (from < n_paths) {
                int has = 0;
                for (int r = 0; r < all[from].n_runs && !has; r++)
                    has = strcmp(all[from].runs[r].scenario ? all[from].runs[r].scenario : "",
                                 names[i]) == 0;
                if (has)
                    break;
                from++;
            }
            rc = oomb_results_read(paths[from], &one, err, err_len);
            if (rc == OOMB_OK) {
                oomb_results_keep_scenario(&one, names[i]);
                into_name = paths[from];
                from++;
            }
        }
        for (int f = from; f < n_paths && rc == OOMB_OK; f++) {
            struct oomb_results more;
            if ((rc = oomb_results_read(paths[f], &more, err, err_len)) != OOMB_OK)
                break;
            oomb_results_keep_scenario(&more, names[i]);
            for (int r = 0; r < more.n_runs && rc == OOMB_OK; r++)
                rc = check_memory(&one, into_name, &more.runs[r], paths[f], err, err_len);
            if (rc == OOMB_OK)
                rc = oomb_results_move_runs(&one, &more);
            oomb_results_free(&more);
        }
        if (rc == OOMB_OK) {
            keep_recent(&one, keep);
            if (strcmp(one.device_class ? one.device_class : "", cls) != 0) {
                free(one.device_class);
                one.device_class = oomb_strdup(cls);
            }
        }
        outs[i] = one;
        prevs[i] = prev;
        founds[i] = found;
        built = i + 1;
    }
    for (int i = 0; i < n && rc == OOMB_OK; i++) {
        char path[4096];
        if ((rc = oomb_baseline_path(dir, cls, names[i], path, sizeof path, err, err_len)) !=
            OOMB_OK)
            break;
        if (i == 0) {
            /* Left in the class folder by a save that was killed while
             * writing (every baseline of one save shares that folder). */
            char *slash = strrchr(path, '/');
            *slash = '\0';
            oomb_proc_clean_stale_results(path);
            *slash = '/';
        }
        if ((rc = oomb_results_write(&outs[i], path, err, err_len)) != OOMB_OK)
            break;
        int most = most_per_configuration(&outs[i]);
        fprintf(report, "baseline %s: %s, %d run(s)", path, founds[i] ? "updated" : "new",
                outs[i].n_runs);
        if (most > 1)
            fprintf(report, ", up to %d per configuration", most);
        fprintf(report, "\n");
        if (founds[i])
            report_changes(report, &prevs[i], &outs[i]);
    }
done:
    for (int i = 0; i < built; i++) {
        oomb_results_free(&outs[i]);
        oomb_results_free(&prevs[i]);
    }
    free(outs);
    free(prevs);
    free(founds);
    free(names);
    for (int f = 0; f < loaded; f++)
        oomb_results_free(&all[f]);
    free(all);
    return rc;
}

int oomb_baseline_save(const char *results_path, const char *dir, const char *class_override,
                       FILE *report, char *err, size_t err_len)
{
    return oomb_baseline_save_runs(&results_path, 1, dir, class_override, 0,
                                   OOMB_BASELINE_KEEP, report, err, err_len);
}
