/*
 * Every strategy's CUDA run against its CPU run: each scenario under
 * scenarios/ runs on both backends; outcomes and every memory tag but
 * workspace (cuBLAS's own workspace is tracked on the GPU) must be equal, the
 * final losses must agree, and the scenario's own checks must pass on the
 * GPU too. Without a usable GPU the suite reports itself skipped (exit 77).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_helpers.h"

static int run_on(const char *device, const char *scenario, const char *dir,
                  struct oomb_results *res, struct oomb_run_summary *sum, char *err, size_t len)
{
    static const char *dirs[] = {OOMB_PLUGIN_DIR};
    char out[PATH_MAX];
    snprintf(out, sizeof out, "%s/%s", dir, device);
    struct oomb_run_options o = {0};
    o.out_dir = out;
    o.plugin_dirs = dirs;
    o.n_plugin_dirs = 1;
    o.device = device;
    o.quiet = 1;
    const char *paths[] = {scenario};
    return oomb_runner_run(paths, 1, &o, res, sum, err, len);
}

/* The final loss after the scenario's steps. FP32 GEMMs of OpenBLAS and
 * cuBLAS differ in the last bits, and Adam divides by sqrt(v) + eps, which
 * turns such differences on near-zero gradients into whole steps (measured:
 * 2.4e-4 relative after 10 steps on scenarios/mlp.yaml, see
 * docs/strategies/grad_accum.md); FP16 and int8 paths round differently too. */
static double loss_tolerance(const char *plugin)
{
    if (strcmp(plugin, "fp16") == 0 || strcmp(plugin, "quantize") == 0 ||
        strcmp(plugin, "distill") == 0 || strcmp(plugin, "prune") == 0)
        return 2e-2;
    return 1e-3;
}

static void compare_scenario(const char *path)
{
    char dir[PATH_MAX], err[2048] = "";
    th_mkdtemp(dir, sizeof dir);
    struct oomb_results cpu, gpu;
    struct oomb_run_summary scpu, sgpu;
    cr_assert_eq(run_on("cpu", path, dir, &cpu, &scpu, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(run_on("cuda", path, dir, &gpu, &sgpu, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(cpu.n_runs, gpu.n_runs);
    for (int i = 0; i < cpu.n_runs; i++) {
        const struct oomb_run_result *c = &cpu.runs[i], *g = &gpu.runs[i];
        cr_assert_str_eq(c->strategy, g->strategy);
        /* The budget counts cuBLAS's workspace on the GPU: a run that fits on
         * the CPU may not fit there, and then only by that workspace. */
        int workspace_oom = c->outcome == OOMB_OUTCOME_OK && g->outcome == OOMB_OUTCOME_OOM &&
                            g->budget_bytes > 0 && c->peak_bytes <= g->budget_bytes &&
                            c->peak_bytes + g->peak_by_tag[OOMB_TAG_WORKSPACE] > g->budget_bytes;
        cr_expect(c->outcome == g->outcome || workspace_oom, "%s %s: cpu %s, cuda %s (%s)", path,
                  c->strategy, oomb_outcome_name(c->outcome), oomb_outcome_name(g->outcome),
                  g->reason);
        if (c->outcome != OOMB_OUTCOME_OK || g->outcome != OOMB_OUTCOME_OK)
            continue;
        for (int t = 0; t < OOMB_TAG_COUNT; t++) {
            if (t == OOMB_TAG_WORKSPACE)
                cr_expect_geq(g->peak_by_tag[t], c->peak_by_tag[t]);
            else
                cr_expect_eq(c->peak_by_tag[t], g->peak_by_tag[t], "%s %s tag %s: cpu %llu cuda %llu",
                             path, c->strategy, oomb_tag_name((enum oomb_tag)t),
                             (unsigned long long)c->peak_by_tag[t],
                             (unsigned long long)g->peak_by_tag[t]);
        }
        /* host memory (offload) is the same bytes on both backends */
        for (int sp = 0; sp < OOMB_SPACE_COUNT; sp++)
            for (int t = 0; t < OOMB_TAG_COUNT; t++)
                cr_expect_eq(c->space_peak_by_tag[sp][t], g->space_peak_by_tag[sp][t],
                             "%s %s host space %d tag %s", path, c->strategy, sp,
                             oomb_tag_name((enum oomb_tag)t));
        cr_expect_eq(c->to_host_bytes, g->to_host_bytes, "%s %s", path, c->strategy);
        cr_expect_eq(c->to_device_bytes, g->to_device_bytes, "%s %s", path, c->strategy);
        double d = fabs(c->final_loss - g->final_loss) / fabs(c->final_loss);
        cr_expect(isfinite(g->final_loss) && d <= loss_tolerance(c->plugin),
                  "%s %s: final loss cpu %.9g cuda %.9g (rel %.3g)", path, c->strategy,
                  c->final_loss, g->final_loss, d);
    }
    cr_expect_eq(sgpu.n_checks_failed, 0, "%s: %d check(s) failed on the GPU", path,
                 sgpu.n_checks_failed);
    for (int i = 0; i < gpu.n_checks; i++)
        cr_expect_neq(gpu.checks[i].status, OOMB_CHECK_FAIL, "%s: %s: %s", path,
                      gpu.checks[i].expr, gpu.checks[i].message);
    oomb_results_free(&cpu);
    oomb_results_free(&gpu);
    th_rmtree(dir);
}

Test(plugins_cuda, every_scenario_matches_cpu, .timeout = 900)
{
    DIR *d = opendir(OOMB_SOURCE_DIR "/scenarios");
    cr_assert_not_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml") != 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/scenarios/%s", OOMB_SOURCE_DIR, de->d_name);
        /* Fashion-MNIST scenarios train for epochs: scripts/gpu-check.sh runs
         * them on the GPU with the data set carried along. */
        struct oomb_scenario *sc = NULL;
        char lerr[1024];
        cr_assert_eq(oomb_scenario_load(path, &sc, lerr, sizeof lerr), OOMB_OK, "%s", lerr);
        int real_data = sc->input_kind == OOMB_INPUT_FASHION_MNIST;
        oomb_scenario_destroy(sc);
        if (real_data) {
            cr_log_info("not comparing %s (Fashion-MNIST, run by scripts/gpu-check.sh)", path);
            continue;
        }
        cr_log_info("comparing %s", path);
        compare_scenario(path);
        n++;
    }
    closedir(d);
    cr_assert_gt(n, 0);
}

int main(int argc, char **argv)
{
    char dir[] = "/tmp/oombench-cudaprobe.XXXXXX", path[PATH_MAX], err[2048] = "";
    if (!mkdtemp(dir))
        return 3;
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return 3;
    fputs("model: {input: 8, classes: 2, layers: [{linear: 2}]}\nbatch: 2\n"
          "steps: {warmup: 0, measured: 1}\nstrategies: [none]\n", f);
    fclose(f);
    struct oomb_results res;
    struct oomb_run_summary sum;
    int rc = run_on("cuda", path, dir, &res, &sum, err, sizeof err);
    oomb_results_free(&res);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 3;
    if (rc == OOMB_ERR_NOT_USABLE) {
        printf("SKIPPED: %s\n", err);
        return 77;
    }
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
