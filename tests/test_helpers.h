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
