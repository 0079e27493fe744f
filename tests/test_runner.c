/*
 * Runner isolation: every failure of a plugin (crash, abort, hang, over
 * budget, error, leak) in every callback is that run's outcome, the other
 * runs go on, and the results file holds them all. Also: input errors write
 * nothing, strategies start from the same data and weights, no process a
 * plugin starts outlives its run, and the temporary folder is private and
 * cleaned (stale ones of dead harnesses too).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "test_helpers.h"
#include "util.h"

#define MODEL                                                                                      \
    "model: {input: 16, classes: 4, layers: [{linear: 32}, relu, {linear: 4}]}\n"                  \
    "input: {kind: synthetic, seed: 7}\n"                                                          \
    "mode: train\nbatch: 8\nsteps: {warmup: 1, measured: 3}\n"

static void fixture_scenario(char *text, size_t len, const char *where, const char *budget)
{
    snprintf(text, len,
             MODEL "budget: %s\ntimeout: 1.5s\nstrategies:\n"
                   "  - none\n"
                   "  - {plugin: fixture_fail, label: segv, params: {where: %s, how: segv}}\n"
                   "  - {plugin: fixture_fail, label: abrt, params: {where: %s, how: abort}}\n"
                   "  - {plugin: fixture_fail, label: hang, params: {where: %s, how: hang}}\n"
                   "  - {plugin: fixture_fail, label: oom, params: {where: %s, how: oom}}\n"
                   "  - {plugin: fixture_fail, label: err, params: {where: %s, how: error}}\n"
                   "  - {plugin: fixture_unusable, label: unusable}\n"
                   "  - {plugin: fixture_inferonly, label: inferonly}\n",
             budget, where, where, where, where, where);
}

static void check_outcomes(const char *where)
{
    char dir[PATH_MAX], path[PATH_MAX], text[4096], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    fixture_scenario(text, sizeof text, where, "1MiB");
    th_write(dir, "fail.yaml", text, path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(res.n_runs, 8);
    cr_assert_eq(th_find(&res, "none", OOMB_MODE_TRAIN, 8)->outcome, OOMB_OUTCOME_OK);
    const struct oomb_run_result *r = th_find(&res, "segv", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_CRASH, "%s: %s", where, r->reason);
    r = th_find(&res, "abrt", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_CRASH, "%s: %s", where, r->reason);
    cr_assert(strstr(r->reason, "signal 6") || strstr(r->reason, "status"), "%s", r->reason);
    r = th_find(&res, "hang", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_TIMEOUT, "%s: %s", where, r->reason);
    r = th_find(&res, "oom", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_OOM, "%s: %s", where, r->reason);
    cr_assert_eq(r->oom_request_bytes, (uint64_t)1 << 62);
    cr_assert(strstr(r->reason, "refused"), "%s", r->reason);
    r = th_find(&res, "err", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_ERROR, "%s: %s", where, r->reason);
    cr_assert(strstr(r->reason, "fixture failure requested"), "%s", r->reason);
    r = th_find(&res, "unusable", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_SKIPPED);
    cr_assert(strstr(r->reason, "does not have"), "%s", r->reason);
    r = th_find(&res, "inferonly", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_NOT_APPLICABLE);
    cr_assert_eq(sum.n_failed, 4, "segv, abort, hang, error");
    cr_assert_eq(sum.n_oom, 1);

    /* The file on disk has every run. */
    struct oomb_results back;
    cr_assert_eq(oomb_results_read(sum.results_path, &back, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(back.n_runs, 8);
    cr_assert_eq(th_find(&back, "hang", OOMB_MODE_TRAIN, 8)->outcome, OOMB_OUTCOME_TIMEOUT);
    oomb_results_free(&back);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, failures_in_create_are_outcomes, .timeout = 60)
{
    check_outcomes("create");
}

Test(runner, failures_in_step_are_outcomes, .timeout = 60)
{
    check_outcomes("step");
}

Test(runner, failures_in_finish_are_outcomes, .timeout = 60)
{
    check_outcomes("finish");
}

Test(runner, crash_keeps_the_peak_reached_before_it)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(
        dir, "s.yaml",
        MODEL
        "strategies:\n  - {plugin: fixture_fail, label: leak, params: {where: step, how: leak}}\n",
        path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_run_result *r = th_find(&res, "leak", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_OK, "%s", r->reason);
    cr_assert_eq(r->peak_by_tag[OOMB_TAG_OTHER], 4096);
    int found = 0;
    for (int i = 0; i < r->n_metrics; i++)
        if (strcmp(r->metrics[i].name, "leaked_bytes") == 0) {
            found = 1;
            cr_assert_eq(r->metrics[i].value, 4096.0);
        }
    cr_assert(found, "a leak past destroy is reported");
    oomb_results_free(&res);
    th_rmtree(dir);
}

/* Out of memory that the tracker did not refuse (a failed malloc of the
 * plugin's own) is an error with the reason, not an `oom` result. */
Test(runner, out_of_host_memory_is_an_error_not_oom)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "s.yaml",
             MODEL "strategies:\n  - {plugin: fixture_fail, label: hostoom, params: {where: step, "
                   "how: hostoom}}\n",
             path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_run_result *r = th_find(&res, "hostoom", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_ERROR, "%s", oomb_outcome_name(r->outcome));
    cr_assert(strstr(r->reason, "no tracked allocation was refused"), "%s", r->reason);
    cr_assert(strstr(r->reason, "out of host memory"), "%s", r->reason);
    cr_assert_eq(sum.n_oom, 0);
    oomb_results_free(&res);
    th_rmtree(dir);
}

/* Host memory (a host space of host->alloc) that cannot be had is an error
 * too: the budget covers the device, and nothing refused under it. (Not
 * under AddressSanitizer, whose malloc aborts on a 4 EiB request instead of
 * failing.) */
#if !defined(__SANITIZE_ADDRESS__)
Test(runner, a_failed_host_space_allocation_is_an_error_not_oom)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "s.yaml",
             MODEL "strategies:\n  - {plugin: fixture_fail, label: hs, params: {where: step, "
                   "how: hostspace}}\n",
             path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_run_result *r = th_find(&res, "hs", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_ERROR, "%s", oomb_outcome_name(r->outcome));
    cr_assert(strstr(r->reason, "host allocation of 4 EiB: backend error"), "%s", r->reason);
    cr_assert_eq(sum.n_oom, 0);
    cr_assert_eq(r->space_peak[0], 0);
    oomb_results_free(&res);
    th_rmtree(dir);
}
#endif

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(runner, malformed_scenario_writes_nothing)
{
    char dir[PATH_MAX], path[PATH_MAX], out[PATH_MAX + 8], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "bad.yaml", MODEL "strategies: [none]\nbogus_key: 1\n", path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_ERR_PARSE);
    cr_assert(strstr(err, "bad.yaml:") && strstr(err, "bogus_key"), "%s", err);
    snprintf(out, sizeof out, "%s/out", dir);
    cr_assert_eq(count_files(out), 0);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, unknown_plugin_and_parameter_are_input_errors)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "a.yaml", MODEL "strategies: [none, nosuchplugin]\n", path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_ERR_INVALID);
    cr_assert(strstr(err, "a.yaml:") && strstr(err, "nosuchplugin"), "%s", err);
    oomb_results_free(&res);
    th_write(dir, "b.yaml", MODEL "strategies:\n  - {plugin: fixture_fail, params: {wher: step}}\n",
             path, sizeof path);
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_ERR_INVALID);
    cr_assert(strstr(err, "b.yaml:7:") && strstr(err, "'wher'") && strstr(err, "where"), "%s", err);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, cuda_without_gpu_is_a_usage_error)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "c.yaml", MODEL "backend: cuda\nstrategies: [none]\n", path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    int rc = th_run(dir, path, &res, &sum, err, sizeof err);
    if (rc == OOMB_OK)
        cr_skip_test("a CUDA device is present");
    cr_assert_eq(rc, OOMB_ERR_NOT_USABLE, "%s", err);
    cr_assert(strstr(err, "no CUDA device"), "%s", err);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, same_start_for_every_run_and_repeatable_memory)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "s.yaml", MODEL "strategies: [none, {plugin: none, label: again}]\n", path,
             sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_run_result *a = th_find(&res, "none", OOMB_MODE_TRAIN, 8);
    const struct oomb_run_result *b = th_find(&res, "again", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(b->outcome, OOMB_OUTCOME_OK, "%s", b->reason);
    cr_assert_eq(a->peak_bytes, b->peak_bytes);
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        cr_assert_eq(a->peak_by_tag[t], b->peak_by_tag[t]);
    cr_assert_eq(b->grad_rel_err, 0.0, "same kernels, same data, same weights");
    cr_assert_eq(b->weight_rel_err, 0.0);
    cr_assert_eq(b->loss_rel_err, 0.0);
    cr_assert_eq(a->n_steps, 3);
    cr_assert(isfinite(a->final_loss) && a->final_loss > 0);
    cr_assert_gt(a->n_events, 0, "the first measured step's timeline is kept");
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, checks_run_per_mode_and_fail_the_invocation)
{
    char dir[PATH_MAX], path[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    th_write(dir, "c.yaml",
             "model: {input: 16, classes: 4, layers: [{linear: 32}, relu, {linear: 4}]}\n"
             "mode: [train, infer]\nbatch: 8\nsteps: {warmup: 0, measured: 2}\n"
             "strategies: [none, {plugin: none, label: twin}]\n"
             "checks:\n"
             "  - \"twin.memory.peak == none.memory.peak\"\n"
             "  - {expr: \"twin.memory.grads > 0\", mode: train}\n"
             "  - {expr: \"twin.numerics.output_rel_err <= 0\", mode: infer}\n"
             "  - {expr: \"twin.memory.grads > 0\", mode: infer}\n",
             path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(res.n_checks, 5, "2 checks in train, 3 in infer");
    cr_assert_eq(sum.n_checks, 5);
    cr_assert_eq(sum.n_checks_failed, 1, "no gradients in inference");
    int failed_infer_grads = 0;
    for (int i = 0; i < res.n_checks; i++) {
        const struct oomb_check_record *c = &res.checks[i];
        if (c->status == OOMB_CHECK_FAIL)
            failed_infer_grads = c->mode == OOMB_MODE_INFER && strstr(c->expr, "grads") &&
                                 c->lhs == 0.0 && c->rhs == 0.0;
    }
    cr_assert(failed_infer_grads);
    oomb_results_free(&res);
    th_rmtree(dir);
}

/* ---- containment: what a plugin starts ends with its run ---- */

/* The pids a fixture recorded (fixture_hostile.c); returns the count. */
static int read_pids(const char *file, int *pids, int max)
{
    FILE *f = fopen(file, "r");
    int n = 0;
    while (f && n < max && fscanf(f, "%d", &pids[n]) == 1)
        n++;
    if (f)
        fclose(f);
    return n;
}

/* A fixture process still exists: its pid names a process called oomb-fx-*
 * (a reused pid has another name). */
static int fixture_alive(int pid)
{
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(comm, sizeof comm, f) != NULL;
    fclose(f);
    return ok && strncmp(comm, "oomb-fx", 7) == 0;
}

/* Runs `strategy` alone next to none with a pid file; returns the pids the
 * fixture recorded. */
static int run_hostile(const char *dir, const char *strategy, const char *timeout,
                       struct oomb_results *res, int *pids, int max)
{
    char path[PATH_MAX], text[2048], pidfile[PATH_MAX], err[2048] = "";
    snprintf(pidfile, sizeof pidfile, "%s/pids", dir);
    setenv("OOMB_FIXTURE_PIDFILE", pidfile, 1);
    snprintf(text, sizeof text, MODEL "timeout: %s\nstrategies:\n  - none\n  - %s\n", timeout,
             strategy);
    th_write(dir, "hostile.yaml", text, path, sizeof path);
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    unsetenv("OOMB_FIXTURE_PIDFILE");
    cr_assert_eq(th_find(res, "none", OOMB_MODE_TRAIN, 8)->outcome, OOMB_OUTCOME_OK);
    return read_pids(pidfile, pids, max);
}

Test(runner, forked_grandchild_does_not_outlive_its_run, .timeout = 30)
{
    char dir[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    struct oomb_results res;
    int pids[16];
    int n = run_hostile(dir, "fixture_fork", "10s", &res, pids, 16);
    const struct oomb_run_result *r = th_find(&res, "fixture_fork", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_OK, "%s", r->reason);
    cr_assert_geq(n, 1, "the fixture forked");
    for (int i = 0; i < n; i++)
        cr_assert_not(fixture_alive(pids[i]), "pid %d outlived its run", pids[i]);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, setsid_escape_does_not_outlive_its_run, .timeout = 30)
{
    char dir[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    struct oomb_results res;
    int pids[16];
    int n = run_hostile(dir, "fixture_setsid", "10s", &res, pids, 16);
    const struct oomb_run_result *r = th_find(&res, "fixture_setsid", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_OK, "%s", r->reason);
    cr_assert_geq(n, 1, "the fixture escaped with setsid");
    for (int i = 0; i < n; i++)
        cr_assert_not(fixture_alive(pids[i]), "pid %d (own session) outlived its run", pids[i]);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, spinning_run_and_its_grandchild_end_at_the_deadline, .timeout = 30)
{
    char dir[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    struct oomb_results res;
    int pids[16];
    int64_t t0 = oomb_now_ns();
    int n = run_hostile(dir, "fixture_spin", "1s", &res, pids, 16);
    double took = (double)(oomb_now_ns() - t0) * 1e-9;
    const struct oomb_run_result *r = th_find(&res, "fixture_spin", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_TIMEOUT, "%s", r->reason);
    cr_assert_lt(took, 10.0, "the whole invocation took %.1f s", took);
    cr_assert_geq(n, 2, "a grandchild and the spinning worker");
    for (int i = 0; i < n; i++)
        cr_assert_not(fixture_alive(pids[i]), "pid %d outlived its run", pids[i]);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, message_buffer_without_nul_is_cut_at_its_end)
{
    char dir[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    struct oomb_results res;
    int pids[4];
    run_hostile(dir, "fixture_nonul", "10s", &res, pids, 4);
    const struct oomb_run_result *r = th_find(&res, "fixture_nonul", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_ERROR, "%s", r->reason);
    const char *a = strchr(r->reason, 'A');
    cr_assert_not_null(a, "%s", r->reason);
    size_t n = strspn(a, "A");
    cr_assert_eq(a[n], '\0', "nothing past the plugin's buffer: '%s'", a + n);
    cr_assert_gt(n, 100);
    cr_assert_lt(n, 1024, "%zu bytes of a 1024-byte buffer, the last one the host's NUL", n);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, constructor_crashing_outside_the_probe_is_only_its_runs_crash)
{
    /* The fixture crashes in any process but the loader's probe: the harness
     * (this test process) loading it would die here. */
    char dir[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    struct oomb_results res;
    int pids[4];
    run_hostile(dir, "fixture_ctorparent", "10s", &res, pids, 4);
    const struct oomb_run_result *r = th_find(&res, "fixture_ctorparent", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(r->outcome, OOMB_OUTCOME_CRASH, "%s", r->reason);
    /* A sanitizer catches the signal and exits with a status instead. */
    cr_assert(strstr(r->reason, "signal 11") || strstr(r->reason, "status"), "%s", r->reason);
    oomb_results_free(&res);
    th_rmtree(dir);
}

Test(runner, temporary_folder_is_private_removed_and_stale_ones_cleaned)
{
    char dir[PATH_MAX], base[PATH_MAX + 32], stale[PATH_MAX + 64], path[PATH_MAX + 128];
    th_mkdtemp(dir, sizeof dir);
    setenv("TMPDIR", dir, 1);
    /* A pid that is surely gone: a child we reaped. */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    snprintf(base, sizeof base, "%s/oombench-%u", dir, (unsigned)getuid());
    cr_assert_eq(mkdir(base, 0700), 0);
    snprintf(stale, sizeof stale, "%s/run-%d.AbCdEf", base, (int)dead);
    cr_assert_eq(mkdir(stale, 0700), 0);
    th_write(stale, "ref-0-train-8.grads0", "left over", path, sizeof path);
    th_write(stale, ".lock", "", path, sizeof path);
    /* A results temp file of the same dead process, an hour old. */
    char out[PATH_MAX + 8], tmpres[PATH_MAX + 128];
    snprintf(out, sizeof out, "%s/out", dir);
    cr_assert_eq(mkdir(out, 0755), 0);
    snprintf(tmpres, sizeof tmpres, "%s/mlp-20200101T000000Z-%d.json.tmp.XyZ123", out, (int)dead);
    th_write(out, strrchr(tmpres, '/') + 1, "{", path, sizeof path);
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, tmpres, old, 0), 0);

    char text[1024], err[2048] = "";
    snprintf(text, sizeof text, MODEL "strategies: [none]\n");
    th_write(dir, "s.yaml", text, path, sizeof path);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, path, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    unsetenv("TMPDIR");
    cr_assert_eq(access(stale, F_OK), -1, "the stale run folder is gone");
    cr_assert_eq(access(tmpres, F_OK), -1, "the stale results temp file is gone");
    DIR *d = opendir(base);
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        cr_assert(de->d_name[0] == '.', "%s left in %s", de->d_name, base);
    closedir(d);
    struct stat st;
    cr_assert_eq(stat(base, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    oomb_results_free(&res);
    th_rmtree(dir);
}
