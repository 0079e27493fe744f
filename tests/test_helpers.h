/*
 * Helpers shared by the test suites that drive the runner: a scratch folder,
 * scenario files written on the fly, and a run through oomb_runner_run.
 */
#ifndef OOMB_TEST_HELPERS_H
#define OOMB_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "results.h"
#include "runner.h"

/* A fresh folder under /tmp; the caller removes it with th_rmtree. */
static inline void th_mkdtemp(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/oombench-test.XXXXXX");
    cr_assert_not_null(mkdtemp(buf));
}

static inline void th_rmtree(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Writes text to dir/name and returns the path in buf. */
static inline void th_write(const char *dir, const char *name, const char *text, char *buf,
                            size_t len)
{
    snprintf(buf, len, "%s/%s", dir, name);
    FILE *f = fopen(buf, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs one scenario file with the build's plugins and the fixture plugins;
 * results go to dir/out. Returns the runner's status. */
static inline int th_run(const char *dir, const char *scenario, struct oomb_results *res,
                         struct oomb_run_summary *sum, char *err, size_t err_len)
{
    static const char *dirs[] = {OOMB_PLUGIN_DIR, OOMB_FIXTURE_DIR};
    char out[PATH_MAX];
    snprintf(out, sizeof out, "%s/out", dir);
    struct oomb_run_options o = {0};
    o.out_dir = out;
    o.plugin_dirs = dirs;
    o.n_plugin_dirs = 2;
    o.quiet = 1;
    const char *paths[] = {scenario};
    return oomb_runner_run(paths, 1, &o, res, sum, err, err_len);
}

/* Runs scenario `text` (written to bad.yaml in a new temporary folder),
 * whose strategy parameter `key` is outside what the plugin declares: the
 * runner must refuse it when it loads the scenario (OOMB_ERR_INVALID, so
 * exit 2 from the CLI), with a message naming the file and the key and
 * holding `want` (NULL: not checked). */
static inline void th_expect_load_rejected(const char *text, const char *key, const char *want)
{
    char dir[PATH_MAX], path[PATH_MAX], err[1024] = "", needle[128];
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "bad.yaml", text, path, sizeof path);
    struct oomb_results r;
    struct oomb_run_summary sum;
    memset(&r, 0, sizeof r);
    int rc = th_run(dir, path, &r, &sum, err, sizeof err);
    cr_expect_eq(rc, OOMB_ERR_INVALID, "%s: %s", key, err);
    snprintf(needle, sizeof needle, "key '%s'", key);
    cr_expect(strstr(err, "bad.yaml:") && strstr(err, needle) && (!want || strstr(err, want)),
              "%s", err);
    if (rc == OOMB_OK)
        oomb_results_free(&r);
    th_rmtree(dir);
}

static inline const struct oomb_run_result *th_find(const struct oomb_results *r,
                                                    const char *label, enum oomb_mode mode,
                                                    int64_t batch)
{
    for (int i = 0; i < r->n_runs; i++)
        if (strcmp(r->runs[i].strategy, label) == 0 && r->runs[i].mode == mode &&
            r->runs[i].batch == batch)
            return &r->runs[i];
    cr_assert_fail("no run '%s' mode %d batch %lld", label, (int)mode, (long long)batch);
    return NULL;
}

#endif
