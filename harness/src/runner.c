/*
 * The parent side of `oombench run` (see runner.h): validation of scenarios
 * against plugins, one forked child per run under a time limit, collection of
 * each child's result, numerics against `none`, scenario checks, and the
 * results file, rewritten atomically after every run.
 */
#include "runner.h"
#include "mnist.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "instr.h"
#include "proc.h"
#include "tracker.h"
#include "util.h"

/* ------------------------------------------------------------ helpers --- */

static int parse_device(const char *text, enum oomb_backend *backend, int *device)
{
    if (strcmp(text, "cpu") == 0) {
        *backend = OOMB_BACKEND_CPU;
        *device = 0;
        return OOMB_OK;
    }
    if (strncmp(text, "cuda", 4) == 0) {
        *backend = OOMB_BACKEND_CUDA;
        *device = 0;
        if (text[4] == '\0')
            return OOMB_OK;
        if (text[4] != ':' || !text[5])
            return OOMB_ERR_INVALID;
        char *end;
        long v = strtol(text + 5, &end, 10);
        if (*end || v < 0 || v > 255)
            return OOMB_ERR_INVALID;
        *device = (int)v;
        return OOMB_OK;
    }
    return OOMB_ERR_INVALID;
}

/* Asks a throw-away child whether CUDA devices exist, so that the parent
 * never initialises CUDA (a CUDA context does not survive fork). Returns the
 * device count; msg says why when 0. */
static int probe_cuda(char *msg, size_t msg_len)
{
    int fds[2];
    if (pipe(fds) != 0) {
        oomb_errf(msg, msg_len, "pipe: %s", strerror(errno));
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        oomb_errf(msg, msg_len, "fork: %s", strerror(errno));
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        char buf[600];
        int n = oomb_cuda_device_count(buf + sizeof(int), sizeof buf - sizeof(int));
        memcpy(buf, &n, sizeof n);
        ssize_t w = write(fds[1], buf, sizeof buf);
        _exit(w == (ssize_t)sizeof buf ? 0 : 1);
    }
    close(fds[1]);
    char buf[600] = {0};
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = read(fds[0], buf + got, sizeof buf - got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != sizeof buf) {
        oomb_errf(msg, msg_len, "the CUDA probe process failed (%s)",
                  WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "no answer");
        return 0;
    }
    int n;
    memcpy(&n, buf, sizeof n);
    buf[sizeof buf - 1] = '\0';
    oomb_errf(msg, msg_len, "%s", buf + sizeof(int));
    return n;
}

static void iso_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char *cpu_model(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    char *res = NULL;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ')
                    c++;
                c[strcspn(c, "\n")] = '\0';
                res = oomb_strdup(c);
            }
            break;
        }
    }
    if (f)
        fclose(f);
    return res ? res : oomb_strdup("unknown");
}

/* The environment variables that change what the BLAS (or an OpenMP
 * runtime) does: recorded when set, so that two results files of one build
 * that differ for these reasons show it. */
static const char *const blas_env_vars[] = {
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OPENBLAS_VERBOSE",
    "GOTO_NUM_THREADS",  "OMP_NUM_THREADS",  "OMP_PROC_BIND",        "OMP_PLACES",
    "OOMB_CPU_GEMM",     "OOMB_CPU_ISA",     "ONEDNN_MAX_CPU_ISA",
};

/* The kernel is the one OpenBLAS chose in this process, which the children
 * inherit through fork with the same environment. */
static int fill_blas_info(struct oomb_results *res)
{
    struct oomb_blas_info bi;
    oomb_blas_describe(&bi);
    res->blas_library = oomb_strdup(bi.library);
    res->blas_version = oomb_strdup(bi.version);
    res->blas_config = oomb_strdup(bi.config);
    res->blas_kernel = oomb_strdup(bi.kernel);
    res->blas_parallel = oomb_strdup(bi.parallel);
    res->cpu_isa = oomb_strdup(bi.cpu_isa); /* the children inherit the choice's inputs */
    if (!res->blas_library || !res->blas_version || !res->blas_config || !res->blas_kernel ||
        !res->blas_parallel || !res->cpu_isa)
        return OOMB_ERR_OOM;
    const int n_vars = (int)(sizeof blas_env_vars / sizeof blas_env_vars[0]);
    res->env_names = calloc((size_t)n_vars, sizeof *res->env_names);
    res->env_values = calloc((size_t)n_vars, sizeof *res->env_values);
    if (!res->env_names || !res->env_values)
        return OOMB_ERR_OOM;
    for (int i = 0; i < n_vars; i++) {
        const char *v = getenv(blas_env_vars[i]);
        if (!v)
            continue;
        res->env_names[res->n_env] = oomb_strdup(blas_env_vars[i]);
        res->env_values[res->n_env] = oomb_strdup(v);
        res->n_env++;
        if (!res->env_names[res->n_env - 1] || !res->env_values[res->n_env - 1])
            return OOMB_ERR_OOM;
    }
    return OOMB_OK;
}

static int fill_host_info(struct oomb_results *res, enum oomb_backend backend)
{
    char buf[256];
    struct utsname u;
    uname(&u);
    iso_now(buf, sizeof buf);
    res->tool_version = oomb_strdup(OOMB_VERSION);
    char exe[17];
    (void)oomb_file_digest("/proc/self/exe", exe); /* "" where there is no /proc */
    res->build_id = oomb_strdup(exe);
    res->created = oomb_strdup(buf);
    res->host_name = oomb_strdup(u.nodename);
    snprintf(buf, sizeof buf, "%s %s %s", u.sysname, u.release, u.machine);
    res->host_os = oomb_strdup(buf);
    res->host_cpu = cpu_model();
    res->host_cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    res->host_mem_bytes = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    const char *cls = getenv("OOMB_DEVICE_CLASS");
    if (cls && *cls)
        snprintf(buf, sizeof buf, "%s", cls);
    else if (backend == OOMB_BACKEND_CUDA)
        snprintf(buf, sizeof buf, "cuda");
    else
        snprintf(buf, sizeof buf, "cpu-%s", u.machine);
    res->device_class = oomb_strdup(buf);
    res->device_backend = oomb_strdup(backend == OOMB_BACKEND_CUDA ? "cuda" : "cpu");
    res->device_name = oomb_strdup(""); /* filled from the first run's child */
    res->device_driver = oomb_strdup("");
    res->device_runtime = oomb_strdup("");
    if (!res->tool_version || !res->created || !res->host_name || !res->host_os || !res->host_cpu ||
        !res->device_class || !res->device_backend || !res->device_name || !res->device_driver ||
        !res->device_runtime)
        return OOMB_ERR_OOM;
    return fill_blas_info(res);
}

/* ------------------------------------------------------------ plan ------ */

struct plan {
    struct oomb_scenario **sc;
    int n_sc;
    struct oomb_registry reg;
    int have_reg;
    /* Fashion-MNIST: loaded and checked once, then written decoded to the
     * temporary folder (the paths) and freed before any run starts. */
    struct oomb_dataset fmnist_train, fmnist_test;
    int have_fmnist;
    char fmnist_train_path[PATH_MAX + 32], fmnist_test_path[PATH_MAX + 32];
};

static void plan_free(struct plan *p)
{
    for (int i = 0; i < p->n_sc; i++)
        oomb_scenario_destroy(p->sc[i]);
    free(p->sc);
    if (p->have_reg)
        oomb_registry_free(&p->reg);
    oomb_dataset_free(&p->fmnist_train);
    oomb_dataset_free(&p->fmnist_test);
}

/* Every strategy names a known plugin and only its declared parameters, with
 * values of the declared type within the declared bounds or choices. */
static int validate(struct plan *p, char *err, size_t err_len)
{
    for (int i = 0; i < p->n_sc; i++) {
        const struct oomb_scenario *sc = p->sc[i];
        for (int s = 0; s < sc->n_strategies; s++) {
            const struct oomb_strategy_spec *st = &sc->strategies[s];
            const struct oomb_loaded_plugin *pl = oomb_registry_find(&p->reg, st->plugin);
            if (!pl) {
                oomb_errf(err, err_len,
                          "%s:%d:%d: key 'strategies': no plugin named '%s' (see `oombench "
                          "list`; add folders with --plugin-dir or files with --plugin)",
                          st->loc.file, st->loc.line, st->loc.col, st->plugin);
                return OOMB_ERR_INVALID;
            }
            for (int k = 0; k < st->n_params; k++) {
                const struct oomb_kv *kv = &st->params[k];
                int idx = oomb_plugin_param_index(&pl->desc, kv->key);
                if (idx < 0) {
                    char names[512] = "";
                    for (int q = 0; q < pl->desc.n_params; q++) {
                        size_t len = strlen(names);
                        snprintf(names + len, sizeof names - len, "%s%s", q ? ", " : "",
                                 pl->desc.params[q].name);
                    }
                    oomb_errf(err, err_len,
                              "%s:%d:%d: key '%s': plugin '%s' has no parameter '%s' (it has: "
                              "%s)",
                              kv->loc.file, kv->loc.line, kv->loc.col, kv->key, st->plugin, kv->key,
                              names[0] ? names : "none");
                    return OOMB_ERR_INVALID;
                }
                char why[384];
                if (oomb_param_check(&pl->desc.params[idx], kv->value, why, sizeof why) !=
                    OOMB_OK) {
                    oomb_errf(err, err_len, "%s:%d:%d: key '%s': parameter '%s' of plugin '%s': %s",
                              kv->loc.file, kv->loc.line, kv->loc.col, kv->key, kv->key,
                              st->plugin, why);
                    return OOMB_ERR_INVALID;
                }
            }
        }
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------- shards --- */

static const char *mode_name(enum oomb_mode m);

static uint64_t shard_hash(const char *key, int shard)
{
    uint64_t h = oomb_fnv1a64(OOMB_FNV1A64_INIT, key, strlen(key));
    h ^= (uint64_t)shard * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* The shard (1..n) of a configuration: `key` names it ("scenario/mode/
 * batch"), cost is its estimated work, total the estimated work of all of
 * them. Configurations are placed largest first (the caller's order); each
 * takes the first shard in its own hash order of the shards whose load
 * (*loads, n entries, updated) stays within 1.15 x total / n, else the least
 * loaded: balanced, and a configuration keeps its shard when others are
 * added unless the capacity it needs moved. */
static int place_config(const char *key, double cost, double total, int n, double *loads)
{
    const double cap = 1.15 * total / n;
    int least = 0;
    for (int s = 1; s < n; s++)
        if (loads[s] < loads[least])
            least = s;
    /* the shards in this key's own order (rendezvous hashing): the first with room */
    uint64_t prev = UINT64_MAX;
    int prev_s = -1;
    for (int tried = 0; tried < n; tried++) {
        int pick = -1;
        uint64_t pick_h = 0;
        for (int s = 0; s < n; s++) {
            uint64_t h = shard_hash(key, s);
            int after_prev = h < prev || (h == prev && s > prev_s); /* not yet tried */
            if (after_prev && (pick < 0 || h > pick_h))
                pick = s, pick_h = h;
        }
        prev = pick_h;
        prev_s = pick;
        if (loads[pick] + cost <= cap) {
            loads[pick] += cost;
            return pick + 1;
        }
    }
    loads[least] += cost;
    return least + 1;
}

/* One configuration of the invocation: a scenario x mode x batch and all its
 * strategies, never split (its `none` is the others' reference). */
struct config {
    int sc, mode_i, b;
    double cost;
    char key[300];
};

static int config_cmp(const void *a, const void *b)
{
    const struct config *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* The estimated work of one run of sc in mode at batch: multiply-adds of
 * its steps (parameters x batch x steps), three times the forward's in
 * training. */
static double run_cost(const struct oomb_scenario *sc, enum oomb_mode mode, int64_t batch)
{
    int64_t params = 0;
    for (int l = 0; l < sc->model.n_layers; l++)
        params += sc->model.layers[l]->n_params;
    double steps = (double)(sc->warmup_steps + oomb_scenario_measured_steps(sc, batch));
    return (double)(params + 1) * (double)batch * steps * (mode == OOMB_MODE_TRAIN ? 3.0 : 1.0);
}

/* Places every configuration of the plan into a shard: shard[i][mi][b]. */
static int assign_shards(const struct plan *p, int n, int ***out)
{
    int count = 0;
    for (int i = 0; i < p->n_sc; i++)
        count += 2 * p->sc[i]->n_batches;
    struct config *c = calloc((size_t)count + 1, sizeof *c);
    double *loads = calloc((size_t)n, sizeof *loads);
    int **shard = calloc((size_t)p->n_sc + 1, sizeof *shard);
    if (!c || !loads || !shard) {
        free(c);
        free(loads);
        free(shard);
        return OOMB_ERR_INTERNAL;
    }
    int k = 0;
    double total = 0;
    for (int i = 0; i < p->n_sc; i++) {
        const struct oomb_scenario *sc = p->sc[i];
        shard[i] = calloc((size_t)(2 * sc->n_batches) + 1, sizeof **shard);
        if (!shard[i]) {
            for (int j = 0; j < i; j++)
                free(shard[j]);
            free(shard);
            free(c);
            free(loads);
            return OOMB_ERR_INTERNAL;
        }
        for (int mi = 0; mi < 2; mi++) {
            enum oomb_mode mode = mi == 0 ? OOMB_MODE_TRAIN : OOMB_MODE_INFER;
            if (!(sc->modes & mode))
                continue;
            for (int b = 0; b < sc->n_batches; b++) {
                c[k].sc = i;
                c[k].mode_i = mi;
                c[k].b = b;
                c[k].cost = run_cost(sc, mode, sc->batches[b]) * sc->n_strategies;
                snprintf(c[k].key, sizeof c[k].key, "%s/%s/%lld", sc->name, mode_name(mode),
                         (long long)sc->batches[b]);
                total += c[k].cost;
                k++;
            }
        }
    }
    qsort(c, (size_t)k, sizeof *c, config_cmp);
    for (int j = 0; j < k; j++)
        shard[c[j].sc][c[j].mode_i * p->sc[c[j].sc]->n_batches + c[j].b] =
            place_config(c[j].key, c[j].cost, total, n, loads);
    free(c);
    free(loads);
    *out = shard;
    return OOMB_OK;
}

/* ------------------------------------------------------------ one run --- */

static void copy_params(struct oomb_run_result *run, const struct oomb_strategy_spec *st,
                        const struct oomb_plugin *d)
{
    run->n_params = 0;
    if (d->n_params <= 0)
        return;
    run->param_keys = calloc((size_t)d->n_params, sizeof(char *));
    run->param_values = calloc((size_t)d->n_params, sizeof(char *));
    if (!run->param_keys || !run->param_values)
        return;
    for (int i = 0; i < d->n_params; i++) {
        const char *v = d->params[i].default_value;
        for (int k = 0; k < st->n_params; k++)
            if (strcmp(st->params[k].key, d->params[i].name) == 0)
                v = st->params[k].value;
        run->param_keys[i] = oomb_strdup(d->params[i].name);
        run->param_values[i] = oomb_strdup(v);
        run->n_params = i + 1;
    }
}

static const char *mode_name(enum oomb_mode m)
{
    return m == OOMB_MODE_TRAIN ? "train" : "infer";
}

/* Moves the single run of a child's results file into dst (keeping dst's
 * identity fields). Returns OOMB_OK or the read error. */
/* "NVIDIA H100 80GB HBM3" -> "nvidia-h100": the first two words, lower case. */
static char *device_class_of(const char *name)
{
    char buf[64];
    size_t n = 0;
    int words = 0, in_word = 0;
    for (const char *c = name; *c && n + 1 < sizeof buf; c++) {
        if (*c == ' ') {
            in_word = 0;
            continue;
        }
        if (!in_word) {
            if (++words > 2)
                break;
            if (words > 1)
                buf[n++] = '-';
            in_word = 1;
        }
        char ch = *c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c;
        buf[n++] = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ? ch : '_';
    }
    buf[n] = '\0';
    return oomb_strdup(n ? buf : "cuda");
}

/* The first child on a device tells what the device is. */
static void adopt_device(struct oomb_results *res, struct oomb_results *child)
{
    if (!child->device_name || !child->device_name[0] || (res->device_name && res->device_name[0]))
        return;
    free(res->device_name);
    free(res->device_driver);
    free(res->device_runtime);
    res->device_name = child->device_name;
    res->device_driver = child->device_driver;
    res->device_runtime = child->device_runtime;
    child->device_name = child->device_driver = child->device_runtime = NULL;
    if (res->device_backend && strcmp(res->device_backend, "cuda") == 0 &&
        !getenv("OOMB_DEVICE_CLASS")) {
        free(res->device_class);
        res->device_class = device_class_of(res->device_name);
    }
}

static int adopt_child_result(const char *path, struct oomb_results *parent,
                              struct oomb_run_result *dst, char *err, size_t err_len)
{
    struct oomb_results tmp = {0};
    int rc = oomb_results_read_child(path, &tmp, err, err_len);
    if (rc != OOMB_OK) {
        oomb_results_free(&tmp);
        return rc;
    }
    adopt_device(parent, &tmp);
    if (tmp.n_runs != 1) {
        oomb_results_free(&tmp);
        oomb_errf(err, err_len, "%s: expected one run", path);
        return OOMB_ERR_PARSE;
    }
    struct oomb_run_result *src = &tmp.runs[0];
    /* identity comes from the parent; everything measured from the child */
    char *scen = dst->scenario, *strat = dst->strategy, *plug = dst->plugin;
    char *ppath = dst->plugin_path, *digest = dst->scenario_digest;
    int64_t seq = dst->seq;
    char **pk = dst->param_keys, **pv = dst->param_values;
    int np = dst->n_params;
    enum oomb_mode mode = dst->mode;
    enum oomb_backend be = dst->backend;
    int64_t batch = dst->batch;
    uint64_t budget = dst->budget_bytes;
    int dry = dst->dry_run;
    free(src->scenario);
    free(src->scenario_digest);
    free(src->strategy);
    free(src->plugin);
    free(src->plugin_path);
    for (int i = 0; i < src->n_params; i++) {
        free(src->param_keys[i]);
        free(src->param_values[i]);
    }
    free(src->param_keys);
    free(src->param_values);
    *dst = *src;
    memset(src, 0, sizeof *src);
    tmp.n_runs = 0;
    dst->scenario = scen;
    dst->scenario_digest = digest;
    dst->seq = seq;
    dst->strategy = strat;
    dst->budget_bytes = budget;
    dst->plugin = plug;
    dst->plugin_path = ppath;
    dst->param_keys = pk;
    dst->param_values = pv;
    dst->n_params = np;
    dst->mode = mode;
    dst->backend = be;
    dst->batch = batch;
    dst->dry_run = dry;
    oomb_results_free(&tmp);
    return OOMB_OK;
}

struct child_arg {
    const struct oomb_job *job;
    struct oomb_tracker_stats *shared;
    const char *result_path;
};

/* The worker of one run (proc.h): the only place plugin code runs. */
static int child_entry(void *arg)
{
    const struct child_arg *a = arg;
    return oomb_child_main(a->job, a->shared, a->result_path);
}

/* Runs one job in a contained worker with a deadline (proc.h: every process
 * it starts is gone when this returns); fills run. Returns OOMB_OK unless the
 * harness itself failed (fork, shared memory). */
static int run_one(const struct oomb_job *job, double timeout_s, int index,
                   struct oomb_tracker_stats *shared, struct oomb_results *res,
                   struct oomb_run_result *run, char *err, size_t err_len)
{
    char result_path[PATH_MAX];
    snprintf(result_path, sizeof result_path, "%s/run-%d.json", job->tmpdir, index);
    unlink(result_path);
    memset(shared, 0, sizeof *shared);
    struct child_arg arg = {job, shared, result_path};
    struct oomb_proc_opts po = {0};
    po.timeout_s = timeout_s;
    po.drain_fd = -1;
    po.close_fd = -1;
    struct oomb_proc_result pr;
    int rc = oomb_proc_run(&po, child_entry, &arg, &pr, err, err_len);
    if (rc != OOMB_OK)
        return rc;
    free(pr.out);
    int status = pr.status, timed_out = pr.timed_out;
    struct rusage ru = pr.ru;

    char rerr[512] = "";
    int have_result = !timed_out && !pr.terminated && !pr.no_status && WIFEXITED(status) &&
                      adopt_child_result(result_path, res, run, rerr, sizeof rerr) == OOMB_OK;
    if (!have_result) {
        free(run->reason);
        char buf[640];
        if (timed_out) {
            run->outcome = OOMB_OUTCOME_TIMEOUT;
            snprintf(buf, sizeof buf, "killed after the time limit of %.1f s", timeout_s);
        } else if (pr.terminated) {
            run->outcome = OOMB_OUTCOME_ERROR;
            snprintf(buf, sizeof buf, "stopped: the harness was told to stop");
        } else if (pr.no_status) {
            run->outcome = OOMB_OUTCOME_ERROR;
            snprintf(buf, sizeof buf, "the run's supervisor process failed (status 0x%x)",
                     (unsigned)status);
        } else if (WIFSIGNALED(status)) {
            run->outcome = OOMB_OUTCOME_CRASH;
            snprintf(buf, sizeof buf, "killed by signal %d (%s)", WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
        } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            run->outcome = OOMB_OUTCOME_CRASH;
            snprintf(buf, sizeof buf, "exited with status %d before reporting a result",
                     WEXITSTATUS(status));
        } else {
            run->outcome = OOMB_OUTCOME_ERROR;
            snprintf(buf, sizeof buf, "no result from the run: %s", rerr);
        }
        run->reason = oomb_strdup(buf);
        /* The tracker's counters survive in shared memory. */
        run->peak_bytes = shared->peak_total;
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            run->peak_by_tag[t] = shared->peak[t];
        oomb_tracker_report_spaces(shared, run);
        if (shared->oom_hit) {
            run->oom_request_bytes = shared->oom_request;
            run->oom_in_use_bytes = shared->oom_in_use;
        }
        oomb_tracker_report_cache(shared, job->allocator.kind, &job->allocator.conf, run);
    }
    if (ru.ru_maxrss > 0)
        run->host_peak_rss_bytes = (uint64_t)ru.ru_maxrss * 1024;
    unlink(result_path);
    return OOMB_OK;
}

/* ------------------------------------------------------------ numerics -- */

static struct oomb_run_result *find_ref(struct oomb_results *res, int first, int last)
{
    for (int i = first; i < last; i++)
        if (strcmp(res->runs[i].plugin, "none") == 0 && res->runs[i].outcome == OOMB_OUTCOME_OK)
            return &res->runs[i];
    return NULL;
}

static double rel(double a, double b)
{
    if (isnan(a) || isnan(b))
        return NAN;
    double d = fabs(a - b);
    return b != 0 ? d / fabs(b) : d;
}

/* Loss and accuracy against `none`; the tensor deviations came from the child. */
static void group_numerics(struct oomb_results *res, int first, int last)
{
    struct oomb_run_result *ref = find_ref(res, first, last);
    for (int i = first; i < last; i++) {
        struct oomb_run_result *r = &res->runs[i];
        r->has_numerics = ref != NULL && r->outcome == OOMB_OUTCOME_OK;
        if (!r->has_numerics) {
            r->loss_rel_err = NAN;
            r->accuracy_delta = NAN;
            r->test_accuracy_delta = NAN;
            continue;
        }
        r->test_accuracy_delta =
            r->has_eval && ref->has_eval ? r->test_accuracy - ref->test_accuracy : NAN;
        r->loss_rel_err = rel(r->final_loss, ref->final_loss);
        /* copies on a copy stream: how much of their time the step hid */
        double per_step = r->n_losses > 0 ? (double)r->copy_ns / r->n_losses : 0;
        if (r->backend == OOMB_BACKEND_CUDA && r->n_copies > 0 && per_step > 0 &&
            isfinite(r->step_stats.median) && isfinite(ref->step_stats.median)) {
            double share = 1.0 - (r->step_stats.median - ref->step_stats.median) / per_step;
            r->copy_hidden_share = share < 0 ? 0 : share > 1 ? 1 : share;
            r->has_copy_hidden = 1;
        }
        r->accuracy_delta =
            r->has_accuracy && ref->has_accuracy ? r->accuracy - ref->accuracy : NAN;
        if (r == ref) {
            r->grad_rel_err = r->mode == OOMB_MODE_TRAIN ? 0 : NAN;
            r->weight_rel_err = r->mode == OOMB_MODE_TRAIN ? 0 : NAN;
            r->output_rel_err = r->mode == OOMB_MODE_INFER ? 0 : NAN;
        }
    }
}

/* ------------------------------------------------------------ checks ---- */

struct resolve_ctx {
    struct oomb_results *res;
    int first, last;
    int skipped;  /* a referenced run was skipped / not applicable */
    int filtered; /* run --filter left runs of this configuration out */
};

static int resolve(void *user, const char *ref, double *out, char *err, size_t err_len)
{
    struct resolve_ctx *c = user;
    char label[128], section[64], field[128];
    const char *d1 = strchr(ref, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || (size_t)(d1 - ref) >= sizeof label ||
        (size_t)(d2 - d1 - 1) >= sizeof section || strlen(d2 + 1) >= sizeof field) {
        oomb_errf(err, err_len, "'%s': expected strategy.section.field", ref);
        return OOMB_ERR_INVALID;
    }
    memcpy(label, ref, (size_t)(d1 - ref));
    label[d1 - ref] = '\0';
    memcpy(section, d1 + 1, (size_t)(d2 - d1 - 1));
    section[d2 - d1 - 1] = '\0';
    snprintf(field, sizeof field, "%s", d2 + 1);
    for (int i = c->first; i < c->last; i++) {
        const struct oomb_run_result *r = &c->res->runs[i];
        if (strcmp(r->strategy, label) != 0)
            continue;
        if (r->outcome == OOMB_OUTCOME_SKIPPED || r->outcome == OOMB_OUTCOME_NOT_APPLICABLE) {
            c->skipped = 1;
            oomb_errf(err, err_len, "'%s' was %s", label, oomb_outcome_name(r->outcome));
            return OOMB_ERR_NOT_APPLICABLE;
        }
        if (r->outcome != OOMB_OUTCOME_OK) {
            oomb_errf(err, err_len, "'%s' did not run to the end (%s)", label,
                      oomb_outcome_name(r->outcome));
            return OOMB_ERR_INVALID;
        }
        return oomb_check_run_field(r, ref, section, field, out, err, err_len);
    }
    if (c->filtered) {
        c->skipped = 1;
        oomb_errf(err, err_len, "'%s' was not selected by --filter", label);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    oomb_errf(err, err_len, "'%s': no strategy labelled '%s' in this scenario", ref, label);
    return OOMB_ERR_INVALID;
}

static int eval_check(struct oomb_results *res, int first, int last, int filtered,
                      struct oomb_check_record *cr)
{
    free(cr->op);
    free(cr->message);
    cr->op = cr->message = NULL;
    cr->lhs = cr->rhs = NAN;
    char err[512] = "";
    struct oomb_check *c = NULL;
    struct resolve_ctx ctx = {res, first, last, 0, filtered};
    struct oomb_check_result r = {0};
    if (oomb_check_parse(cr->expr, &c, err, sizeof err) != OOMB_OK) {
        cr->status = OOMB_CHECK_FAIL;
    } else if (oomb_check_eval(c, resolve, &ctx, &r, err, sizeof err) != OOMB_OK) {
        cr->status = ctx.skipped ? OOMB_CHECK_SKIPPED : OOMB_CHECK_FAIL;
    } else {
        cr->status = r.pass ? OOMB_CHECK_PASS : OOMB_CHECK_FAIL;
        cr->lhs = r.lhs;
        cr->rhs = r.rhs;
        cr->op = oomb_strdup(r.op);
        if (!r.pass)
            snprintf(err, sizeof err, "%.6g %s %.6g is false", r.lhs, r.op, r.rhs);
    }
    oomb_check_destroy(c);
    cr->message = oomb_strdup(err);
    return cr->status == OOMB_CHECK_FAIL;
}

int oomb_runner_eval_check(struct oomb_results *res, int first, int last,
                           struct oomb_check_record *cr)
{
    return eval_check(res, first, last, 0, cr);
}

static int group_checks(struct oomb_results *res, const struct oomb_scenario *sc, int first,
                        int last, enum oomb_mode mode, int64_t batch, int filtered)
{
    int failed = 0;
    for (int i = 0; i < sc->n_checks; i++) {
        if (sc->checks[i].modes && !(sc->checks[i].modes & mode))
            continue; /* a check for the other mode */
        struct oomb_check_record *v = realloc(res->checks, (size_t)(res->n_checks + 1) * sizeof *v);
        if (!v)
            return -1;
        res->checks = v;
        struct oomb_check_record *cr = &v[res->n_checks++];
        memset(cr, 0, sizeof *cr);
        cr->scenario = oomb_strdup(sc->name);
        cr->expr = oomb_strdup(sc->checks[i].expr);
        cr->mode = mode;
        cr->batch = batch;
        failed += eval_check(res, first, last, filtered, cr);
    }
    return failed;
}

/* ------------------------------------------------------------ main ------ */

static void finish_stats(struct oomb_run_result *r)
{
    oomb_stats_compute(r->step_ns, r->n_steps, &r->step_stats);
    for (int p = 0; p < OOMB_PHASE_COUNT; p++)
        oomb_stats_compute(r->phase_ns[p], r->phase_ns[p] ? r->n_steps : 0, &r->phase_stats[p]);
    oomb_stats_compute(r->data_ns, r->data_ns ? r->n_steps : 0, &r->data_stats);
    r->samples_per_s = r->n_steps > 0 && r->step_stats.median > 0
                           ? (double)r->batch / (r->step_stats.median * 1e-9)
                           : NAN;
}

/* run --filter: which strategies of one configuration run (sel[s]), with
 * the configuration's `none` whenever another of its runs is selected.
 * Returns how many. */
static int config_selection(const regex_t *re, const char *only, const struct oomb_scenario *sc,
                            enum oomb_mode mode, int64_t batch, unsigned char *sel)
{
    int n = 0, any = 0;
    if (only) { /* fit: one strategy alone */
        for (int s = 0; s < sc->n_strategies; s++)
            n += sel[s] = strcmp(sc->strategies[s].label, only) == 0;
        return n;
    }
    for (int s = 0; s < sc->n_strategies; s++) {
        char name[512];
        snprintf(name, sizeof name, "%s/%s/%lld/%s", sc->name, mode_name(mode), (long long)batch,
                 sc->strategies[s].label);
        sel[s] = !re || regexec(re, name, 0, NULL, 0) == 0;
        any |= sel[s] && strcmp(sc->strategies[s].plugin, "none") != 0;
    }
    for (int s = 0; s < sc->n_strategies; s++) {
        if (any && strcmp(sc->strategies[s].plugin, "none") == 0)
            sel[s] = 1; /* the reference of the selected runs */
        n += sel[s];
    }
    return n;
}

int oomb_runner_run(const char *const *scenario_paths, int n_paths,
                    const struct oomb_run_options *opts, struct oomb_results *res,
                    struct oomb_run_summary *sum, char *err, size_t err_len)
{
    struct plan p = {0};
    int **shard_of = NULL;      /* run --shard: the shard of each configuration */
    regex_t filter_re, *re = NULL;
    unsigned char *sel = NULL; /* run --filter: the strategies of a configuration that run */
    int64_t t0 = oomb_now_ns();
    char (*digests)[17] = NULL; /* each scenario file's version */
    struct oomb_tracker_stats *shared = MAP_FAILED;
    char tmpdir[PATH_MAX] = "";
    int rc = OOMB_OK;
    memset(sum, 0, sizeof *sum);
    memset(res, 0, sizeof *res);

    enum oomb_backend dev_backend = OOMB_BACKEND_CPU;
    int dev_index = 0;
    if (opts->device && parse_device(opts->device, &dev_backend, &dev_index) != OOMB_OK) {
        oomb_errf(err, err_len, "--device '%s': expected cpu, cuda or cuda:N", opts->device);
        return OOMB_ERR_INVALID;
    }

    p.sc = calloc((size_t)n_paths, sizeof *p.sc);
    if (!p.sc) {
        oomb_errf(err, err_len, "out of memory");
        return OOMB_ERR_INTERNAL;
    }
    for (int i = 0; i < n_paths; i++) {
        if ((rc = oomb_scenario_load(scenario_paths[i], &p.sc[i], err, err_len)) != OOMB_OK) {
            rc = rc == OOMB_ERR_IO ? OOMB_ERR_PARSE : rc;
            goto done;
        }
        p.n_sc++;
        if (opts->device) {
            p.sc[i]->backend = dev_backend;
            p.sc[i]->device = dev_index;
        }
        if (opts->dry_run)
            p.sc[i]->backend = OOMB_BACKEND_CPU;
        if (opts->steps > 0) {
            p.sc[i]->measured_steps = opts->steps;
            p.sc[i]->epochs = 0;
        }
        if (opts->epochs > 0 && opts->steps <= 0 && p.sc[i]->epochs > 0)
            p.sc[i]->epochs = opts->epochs;
        if (opts->has_warmup)
            p.sc[i]->warmup_steps = opts->warmup;
        if (opts->batch > 0) {
            p.sc[i]->batches[0] = opts->batch;
            p.sc[i]->n_batches = 1;
        }
        if (opts->has_budget)
            p.sc[i]->budget_bytes = opts->budget;
        if (opts->modes)
            p.sc[i]->modes &= opts->modes;
    }
    if (opts->registry) {
        p.reg = *opts->registry; /* borrowed: have_reg stays 0, nothing freed */
    } else if ((rc = oomb_registry_load_flags(&p.reg, opts->plugin_dirs, opts->n_plugin_dirs,
                                       opts->plugin_files, opts->n_plugin_files,
                                       opts->allow_unsafe_plugins ? OOMB_LOAD_ALLOW_UNSAFE : 0,
                                       err, err_len)) != OOMB_OK) {
        rc = OOMB_ERR_INVALID;
        goto done;
    } else {
        p.have_reg = 1;
    }
    if ((rc = validate(&p, err, err_len)) != OOMB_OK)
        goto done;

    for (int i = 0; i < p.n_sc; i++) {
        if (p.sc[i]->input_kind != OOMB_INPUT_FASHION_MNIST || p.have_fmnist)
            continue;
        char why[1024];
        if (oomb_fashion_mnist_load(NULL, &p.fmnist_train, &p.fmnist_test, why, sizeof why) !=
            OOMB_OK) {
            oomb_errf(err, err_len, "%s: input fashion-mnist: %s", p.sc[i]->path, why);
            rc = OOMB_ERR_INVALID;
            goto done;
        }
        p.have_fmnist = 1;
    }

    for (int i = 0; opts->instructions && i < p.n_sc; i++) {
        if (p.sc[i]->backend == OOMB_BACKEND_CUDA) {
            oomb_errf(err, err_len,
                      "%s: --instructions counts CPU instructions under valgrind: not "
                      "available with backend cuda",
                      p.sc[i]->path);
            rc = OOMB_ERR_INVALID;
            goto done;
        }
    }
    enum oomb_backend first_backend = p.n_sc ? p.sc[0]->backend : OOMB_BACKEND_CPU;
    for (int i = 0; i < p.n_sc; i++) {
        if (p.sc[i]->backend != OOMB_BACKEND_CUDA)
            continue;
        char why[600];
        int n = probe_cuda(why, sizeof why);
        if (n <= 0) {
            oomb_errf(err, err_len,
                      "%s: backend cuda requested but no CUDA device can be used: "
                      "%s",
                      p.sc[i]->path, why);
            rc = OOMB_ERR_NOT_USABLE;
            goto done;
        }
        if (p.sc[i]->device >= n) {
            oomb_errf(err, err_len, "%s: cuda:%d requested but only %d CUDA device(s) found",
                      p.sc[i]->path, p.sc[i]->device, n);
            rc = OOMB_ERR_NOT_USABLE;
            goto done;
        }
        break;
    }

    /* What this invocation runs (shard, --filter): settled, and refused with
     * exit 2, before anything is created. */
    if (opts->shard_count > 0) {
        if (opts->shard_index < 1 || opts->shard_index > opts->shard_count) {
            oomb_errf(err, err_len, "--shard %d/%d: expected 1 <= I <= N", opts->shard_index,
                      opts->shard_count);
            rc = OOMB_ERR_INVALID;
            goto done;
        }
        if (assign_shards(&p, opts->shard_count, &shard_of) != OOMB_OK) {
            oomb_errf(err, err_len, "out of memory");
            rc = OOMB_ERR_INTERNAL;
            goto done;
        }
        res->shard_index = opts->shard_index;
        res->shard_count = opts->shard_count;
    }
    digests = calloc((size_t)p.n_sc + 1, sizeof *digests);
    if (!digests) {
        oomb_errf(err, err_len, "out of memory");
        rc = OOMB_ERR_INTERNAL;
        goto done;
    }
    for (int i = 0; i < p.n_sc; i++)
        (void)oomb_file_digest(p.sc[i]->path, digests[i]); /* it was just read: "" if not now */

    if (opts->filter) {
        int e = regcomp(&filter_re, opts->filter, REG_EXTENDED | REG_NOSUB);
        if (e != 0) {
            char why[256];
            regerror(e, &filter_re, why, sizeof why);
            oomb_errf(err, err_len, "--filter '%s': %s", opts->filter, why);
            rc = OOMB_ERR_INVALID;
            goto done;
        }
        re = &filter_re;
    }
    int max_strategies = 1;
    for (int i = 0; i < p.n_sc; i++)
        if (p.sc[i]->n_strategies > max_strategies)
            max_strategies = p.sc[i]->n_strategies;
    if (!(sel = calloc((size_t)max_strategies, 1))) {
        oomb_errf(err, err_len, "out of memory");
        rc = OOMB_ERR_INTERNAL;
        goto done;
    }
    int total = 0;
    double cost_total = 0, cost_done = 0; /* for the ETA of the progress lines */
    for (int i = 0; i < p.n_sc; i++)
        for (int mi = 0; mi < 2; mi++)
            for (int b = 0; b < p.sc[i]->n_batches; b++) {
                enum oomb_mode mode = mi == 0 ? OOMB_MODE_TRAIN : OOMB_MODE_INFER;
                if ((p.sc[i]->modes & mode) &&
                    (!shard_of || shard_of[i][mi * p.sc[i]->n_batches + b] == opts->shard_index)) {
                    int k = config_selection(re, opts->only_label, p.sc[i], mode,
                                             p.sc[i]->batches[b], sel);
                    total += k;
                    cost_total += k * run_cost(p.sc[i], mode, p.sc[i]->batches[b]);
                }
            }
    if (re && total == 0) {
        oomb_errf(err, err_len,
                  "--filter '%s' selects no run (runs are named scenario/mode/batch/label, "
                  "e.g. %s/%s/%lld/%s)",
                  opts->filter, p.sc[0]->name,
                  p.sc[0]->modes & OOMB_MODE_TRAIN ? "train" : "infer",
                  (long long)p.sc[0]->batches[0], p.sc[0]->strategies[0].label);
        rc = OOMB_ERR_INVALID;
        goto done;
    }
    {
        char rev[65], from[32], dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", p.n_sc ? p.sc[0]->path : ".");
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        if (oomb_source_revision(opts->commit, dir, rev, from, &res->revision_time) != OOMB_OK) {
            oomb_errf(err, err_len, "--commit '%s': expected 1 to 64 characters of [0-9A-Za-z._/-]",
                      opts->commit);
            rc = OOMB_ERR_INVALID;
            goto done;
        }
        res->revision = oomb_strdup(rev);
        res->revision_from = oomb_strdup(from);
    }
    if (fill_host_info(res, first_backend) != OOMB_OK) {
        oomb_errf(err, err_len, "out of memory");
        rc = OOMB_ERR_INTERNAL;
        goto done;
    }
    const char *out_dir = opts->out_dir ? opts->out_dir : "results";
    if ((rc = oomb_mkdir_p(out_dir, err, err_len)) != OOMB_OK)
        goto done;
    {
        char stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        const char *stem = p.n_sc == 1 ? p.sc[0]->name : "run";
        snprintf(sum->results_path, sizeof sum->results_path, "%s/%s-%s-%d.json", out_dir, stem,
                 stamp, (int)getpid());
        /* A second invocation in the same second from this process (run
         * --repeat, ab rounds) must not replace the first one's file. */
        for (int n = 2; access(sum->results_path, F_OK) == 0 && n < 10000; n++)
            snprintf(sum->results_path, sizeof sum->results_path, "%s/%s-%s-%d-%d.json", out_dir,
                     stem, stamp, (int)getpid(), n);
    }
    if ((rc = oomb_proc_tmpdir_create(tmpdir, sizeof tmpdir, err, err_len)) != OOMB_OK)
        goto done;
    if (p.have_fmnist) {
        /* The runs read the decoded sets from files (whole, or a batch at a
         * time when streaming): the runner does not hold them while it
         * forks, so that a run's peak RSS is its own. */
        snprintf(p.fmnist_train_path, sizeof p.fmnist_train_path, "%s/fmnist-train.ds", tmpdir);
        snprintf(p.fmnist_test_path, sizeof p.fmnist_test_path, "%s/fmnist-test.ds", tmpdir);
        if ((rc = oomb_dataset_save(&p.fmnist_train, p.fmnist_train_path, err, err_len)) !=
                OOMB_OK ||
            (rc = oomb_dataset_save(&p.fmnist_test, p.fmnist_test_path, err, err_len)) != OOMB_OK)
            goto done;
        oomb_dataset_free(&p.fmnist_train);
        oomb_dataset_free(&p.fmnist_test);
    }
    /* Left by an oombench that was killed while writing (proc.h). */
    oomb_proc_clean_stale_results(out_dir);
    oomb_proc_guard_results(sum->results_path);
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        oomb_errf(err, err_len, "mmap: %s", strerror(errno));
        rc = OOMB_ERR_INTERNAL;
        goto done;
    }

    int index = 0;
    int64_t seq = 0; /* the run's place without sharding */
    for (int i = 0; i < p.n_sc; i++) {
        const struct oomb_scenario *sc = p.sc[i];
        const int sc_first = res->n_runs;
        for (int mi = 0; mi < 2; mi++) {
            enum oomb_mode mode = mi == 0 ? OOMB_MODE_TRAIN : OOMB_MODE_INFER;
            if (!(sc->modes & mode))
                continue;
            for (int b = 0; b < sc->n_batches; b++) {
                if (shard_of && shard_of[i][mi * sc->n_batches + b] != opts->shard_index) {
                    seq += sc->n_strategies; /* another shard's configuration */
                    continue;
                }
                int n_sel = config_selection(re, opts->only_label, sc, mode, sc->batches[b], sel);
                int n_left_out = sc->n_strategies - n_sel;
                if (n_sel == 0) {
                    seq += sc->n_strategies; /* nothing of it selected by --filter */
                    continue;
                }
                int first = res->n_runs;
                int have_reference = 0; /* the first `none` of the group is the reference */
                /* `none` first: the others compare with it and may use its weights. */
                for (int pass = 0; pass < 2; pass++) {
                    for (int s = 0; s < sc->n_strategies; s++) {
                        const struct oomb_strategy_spec *st = &sc->strategies[s];
                        if ((strcmp(st->plugin, "none") == 0) != (pass == 0))
                            continue;
                        if (!sel[s]) {
                            seq++; /* left out by --filter */
                            continue;
                        }
                        const struct oomb_loaded_plugin *pl =
                            oomb_registry_find(&p.reg, st->plugin);
                        struct oomb_run_result *run = oomb_results_add_run(res);
                        if (!run) {
                            oomb_errf(err, err_len, "out of memory");
                            rc = OOMB_ERR_INTERNAL;
                            goto done;
                        }
                        run->scenario = oomb_strdup(sc->name);
                        run->scenario_digest = oomb_strdup(digests[i]);
                        run->seq = ++seq;
                        run->strategy = oomb_strdup(st->label);
                        run->plugin = oomb_strdup(st->plugin);
                        run->plugin_path = oomb_strdup(pl->path);
                        copy_params(run, st, &pl->desc);
                        run->mode = mode;
                        run->backend = sc->backend;
                        run->batch = sc->batches[b];
                        run->budget_bytes = sc->budget_bytes;
                        run->dry_run = opts->dry_run;
                        index++;
                        if (!(pl->desc.modes & mode)) {
                            run->outcome = OOMB_OUTCOME_NOT_APPLICABLE;
                            char buf[256];
                            snprintf(buf, sizeof buf, "plugin '%s' does not support mode %s",
                                     st->plugin, mode_name(mode));
                            run->reason = oomb_strdup(buf);
                        } else if (!(pl->desc.backends & sc->backend)) {
                            run->outcome = OOMB_OUTCOME_NOT_APPLICABLE;
                            char buf[256];
                            snprintf(buf, sizeof buf, "plugin '%s' does not support backend %s",
                                     st->plugin, sc->backend == OOMB_BACKEND_CUDA ? "cuda" : "cpu");
                            run->reason = oomb_strdup(buf);
                        } else {
                            struct oomb_job job = {0};
                            job.sc = sc;
                            job.spec = st;
                            job.plugin = pl;
                            job.mode = mode;
                            job.backend = sc->backend;
                            job.device = sc->device;
                            job.batch = sc->batches[b];
                            job.measured_steps = oomb_scenario_measured_steps(sc, job.batch);
                            job.calibrate = opts->calibrate && job.backend == OOMB_BACKEND_CPU &&
                                            !opts->dry_run;
                            job.dry_run = opts->dry_run;
                            job.threads = opts->threads > 0 ? opts->threads : sc->threads;
                            job.allocator = st->allocator;
                            job.pipeline = st->pipeline;
                            if (opts->has_alloc_conf) {
                                job.allocator.conf = opts->alloc_conf;
                                job.allocator.kind = OOMB_ALLOCATOR_CACHING;
                            }
                            if (opts->allocator > 0)
                                job.allocator.kind = (enum oomb_allocator_kind)(opts->allocator - 1);
                            if (sc->input_kind == OOMB_INPUT_FASHION_MNIST) {
                                job.train_path = p.fmnist_train_path;
                                job.test_path = p.fmnist_test_path;
                            }
                            job.tmpdir = tmpdir;
                            job.is_reference = !have_reference && strcmp(st->plugin, "none") == 0;
                            have_reference |= job.is_reference;
                            snprintf(job.ref_prefix, sizeof job.ref_prefix, "%s/ref-%d-%s-%lld",
                                     tmpdir, i, mode_name(mode), (long long)sc->batches[b]);
                            double limit = opts->timeout_s > 0 ? opts->timeout_s : sc->timeout_s;
                            if (opts->instructions)
                                limit *= OOMB_INSTR_TIMEOUT_FACTOR;
                            if (!opts->quiet && !opts->on_run)
                                fprintf(stderr, "[%d/%d] %s %s batch %lld %s ...\n", index, total,
                                        sc->name, mode_name(mode), (long long)sc->batches[b],
                                        st->label);
                            if ((rc = run_one(&job, limit, index, shared, res, run, err,
                                              err_len)) != OOMB_OK)
                                goto done;
                        }
                        if (!run->reason)
                            run->reason = oomb_strdup("");
                        finish_stats(run);
                        cost_done += run_cost(sc, mode, sc->batches[b]);
                        if (opts->on_run) {
                            double el = (double)(oomb_now_ns() - t0) * 1e-9;
                            opts->on_run(opts->user, index, total, run, el,
                                         cost_done > 0 ? el * (cost_total - cost_done) / cost_done
                                                       : NAN);
                        }
                        if (!opts->quiet && !opts->on_run && run->outcome != OOMB_OUTCOME_OK)
                            fprintf(stderr, "    %s: %s\n", oomb_outcome_name(run->outcome),
                                    run->reason);
                        char werr[512];
                        if (oomb_results_write(res, sum->results_path, werr, sizeof werr) !=
                            OOMB_OK) {
                            oomb_errf(err, err_len, "%s", werr);
                            rc = OOMB_ERR_IO;
                            goto done;
                        }
                    }
                }
                group_numerics(res, first, res->n_runs);
                int f = group_checks(res, sc, first, res->n_runs, mode, sc->batches[b],
                                     n_left_out > 0);
                if (f < 0) {
                    oomb_errf(err, err_len, "out of memory");
                    rc = OOMB_ERR_INTERNAL;
                    goto done;
                }
                sum->n_checks_failed += f;
            }
        }
        if (opts->on_scenario && res->n_runs > sc_first)
            opts->on_scenario(opts->user, res, sc_first, res->n_runs);
    }
    sum->n_checks = res->n_checks;
    for (int i = 0; i < res->n_runs; i++) {
        enum oomb_outcome o = res->runs[i].outcome;
        sum->n_runs++;
        if (o == OOMB_OUTCOME_CRASH || o == OOMB_OUTCOME_TIMEOUT || o == OOMB_OUTCOME_ERROR)
            sum->n_failed++;
        if (o == OOMB_OUTCOME_OOM)
            sum->n_oom++;
    }
    {
        char werr[512];
        if (oomb_results_write(res, sum->results_path, werr, sizeof werr) != OOMB_OK) {
            oomb_errf(err, err_len, "%s", werr);
            rc = OOMB_ERR_IO;
            goto done;
        }
    }
    rc = OOMB_OK;
done:
    if (re)
        regfree(re);
    free(sel);
    free(digests);
    for (int i = 0; shard_of && i < p.n_sc; i++)
        free(shard_of[i]);
    free(shard_of);
    if (shared != MAP_FAILED)
        munmap(shared, sizeof *shared);
    if (tmpdir[0])
        oomb_proc_tmpdir_remove(tmpdir);
    plan_free(&p);
    return rc;
}
