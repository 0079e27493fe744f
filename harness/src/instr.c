/*
 * Instruction counts of the measured steps under callgrind (see instr.h):
 * the launcher, the recorder the child drives from its phase marks, the
 * JSON section and the verdict rule.
 *
 * Why the whole `oombench run` is re-executed under valgrind rather than only
 * the child: the child is a fork that shares the parent's parsed scenario,
 * loaded plugin registry and data sets; exec'ing it alone would mean
 * serialising all of that. Under callgrind with --instr-atstart=no the parent
 * and the children's set-up and warm-up run uninstrumented (valgrind's
 * translation only, a few times slower than native); instrumentation is
 * switched on at the first mark of the first measured step, and the counts
 * come only from dumps taken at marks, so nothing outside the measured steps
 * is counted.
 */
#include "instr.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define OOMB_HAVE_CALLGRIND 1
#endif
#endif
#ifndef OOMB_HAVE_CALLGRIND
#define OOMB_HAVE_CALLGRIND 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define OOMB_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OOMB_SANITIZED 1
#endif
#endif
#ifndef OOMB_SANITIZED
#define OOMB_SANITIZED 0
#endif

/* OpenBLAS (linked through pkg-config openblas). */
extern void openblas_set_num_threads(int n);
extern char *openblas_get_corename(void);

/* -------------------------------------------------------------- data ---- */

void oomb_instr_destroy(struct oomb_instr *in)
{
    if (!in)
        return;
    free(in->samples);
    for (int p = 0; p < OOMB_PHASE_COUNT; p++)
        free(in->phase[p]);
    free(in->blas_core);
    free(in->blas_coretype);
    free(in);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

double oomb_instr_median(const int64_t *v, int n)
{
    if (n <= 0 || !v)
        return NAN;
    int64_t *s = malloc((size_t)n * sizeof *s);
    if (!s)
        return NAN;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_i64);
    double m = n % 2 ? (double)s[n / 2] : ((double)s[n / 2 - 1] + (double)s[n / 2]) / 2;
    free(s);
    return m;
}

static struct oomb_instr *instr_create(int n_steps)
{
    struct oomb_instr *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->n_steps = n_steps;
    size_t n = (size_t)(n_steps > 0 ? n_steps : 1);
    in->samples = calloc(n, sizeof(int64_t));
    int bad = !in->samples;
    for (int p = 0; p < OOMB_PHASE_COUNT; p++)
        bad |= !(in->phase[p] = calloc(n, sizeof(int64_t)));
    if (bad) {
        oomb_instr_destroy(in);
        return NULL;
    }
    return in;
}

/* ---------------------------------------------------------- launcher ---- */

int oomb_instr_inside(void)
{
    const char *d = getenv(OOMB_INSTR_ENV);
#if OOMB_HAVE_CALLGRIND
    return d && *d && RUNNING_ON_VALGRIND;
#else
    (void)d;
    return 0;
#endif
}

/* The first executable `name` on PATH, into buf; 0 when none. */
static int find_on_path(const char *name, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n + strlen(name) + 2 <= len) {
            snprintf(buf, len, "%.*s/%s", (int)n, path, name);
            if (access(buf, X_OK) == 0)
                return 1;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return 0;
}

/* OpenBLAS kernels with AVX-512, which valgrind 3.19 cannot execute. */
static int avx512_core(const char *name)
{
    static const char *const names[] = {"skylakex", "cooperlake", "sapphirerapids"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

static volatile sig_atomic_t forward_pid;

static void forward_signal(int sig)
{
    if (forward_pid > 0)
        kill((pid_t)forward_pid, sig);
}

static void remove_dir(const char *dir, int show_logs)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (show_logs && strncmp(de->d_name, "vg.", 3) == 0) {
                FILE *f = fopen(path, "r");
                char line[1024];
                int first = 1;
                while (f && fgets(line, sizeof line, f)) {
                    if (first)
                        fprintf(stderr, "oombench run: valgrind's log (%s):\n", de->d_name);
                    first = 0;
                    fputs(line, stderr);
                }
                if (f)
                    fclose(f);
            }
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

int oomb_instr_reexec(int argc, char **argv, char *err, size_t err_len)
{
    if (OOMB_SANITIZED) {
        oomb_errf(err, err_len,
                  "--instructions: this build uses AddressSanitizer, which valgrind cannot "
                  "run; use a build without sanitizers");
        return 2;
    }
    if (!OOMB_HAVE_CALLGRIND) {
        oomb_errf(err, err_len,
                  "--instructions: built without valgrind's headers (valgrind/callgrind.h); "
                  "install valgrind (scripts/setup.sh) and rebuild");
        return 2;
    }
    char vg[4096];
    if (!find_on_path("valgrind", vg, sizeof vg)) {
        oomb_errf(err, err_len,
                  "--instructions: valgrind not found on PATH (install it: scripts/setup.sh)");
        return 2;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        oomb_errf(err, err_len, "--instructions: /proc/self/exe: %s", strerror(errno));
        return 3;
    }
    exe[n] = '\0';

    const char *base = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/oombench-cg.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        oomb_errf(err, err_len, "--instructions: %s: %s", dir, strerror(errno));
        return 3;
    }
    char out_opt[4200], log_opt[4200];
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s/cg.%%p", dir);
    snprintf(log_opt, sizeof log_opt, "--log-file=%s/vg.%%p.log", dir);
    const char *fixed[] = {
        vg, "--tool=callgrind", "-q", log_opt, out_opt, "--instr-atstart=no", "--dump-instr=no",
        exe};
    const int n_fixed = (int)(sizeof fixed / sizeof fixed[0]);
    char **args = calloc((size_t)(n_fixed + argc + 1), sizeof *args);
    if (!args) {
        remove_dir(dir, 0);
        oomb_errf(err, err_len, "out of memory");
        return 3;
    }
    for (int i = 0; i < n_fixed; i++)
        args[i] = (char *)fixed[i];
    for (int i = 0; i < argc; i++)
        args[n_fixed + i] = argv[i];

    /* Set before the process starts: OpenBLAS reads them when it loads.
     * One thread, whatever the caller asked for: the counts of several
     * threads would depend on how the work was split. One fixed kernel,
     * whatever the CPU: counts from CI hosts with different CPUs stay
     * comparable, and the choice matters under valgrind 3.19: an AVX-512
     * kernel (SkylakeX, Cooperlake: what OpenBLAS picks natively on this
     * kind of host when asked by name) dies with SIGILL, and the FMA kernels
     * (Haswell, Zen: what it picks under valgrind's emulated CPU) run about
     * 200 times slower than Sandybridge's AVX kernel, valgrind emulating
     * each FMA in a helper call. OOMB_INSTR_BLAS_CORETYPE overrides it; the
     * child records the kernel in the results. */
    const char *want = getenv("OOMB_INSTR_BLAS_CORETYPE");
    if (!want || !*want || avx512_core(want))
        want = OOMB_INSTR_BLAS_CORE;
    setenv(OOMB_INSTR_ENV, dir, 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    setenv("OPENBLAS_CORETYPE", want, 1);

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(args);
        remove_dir(dir, 0);
        oomb_errf(err, err_len, "fork: %s", strerror(errno));
        return 3;
    }
    if (pid == 0) {
        execv(vg, args);
        fprintf(stderr, "oombench run: %s: %s\n", vg, strerror(errno));
        _exit(3);
    }
    free(args);
    /* Ctrl-C reaches both processes (same process group): this one waits
     * for the inner run to finish its results file; a kill is passed on. */
    forward_pid = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGINT, SIG_IGN);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            remove_dir(dir, 0);
            oomb_errf(err, err_len, "wait: %s", strerror(errno));
            return 3;
        }
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 3;
    remove_dir(dir, !WIFEXITED(status) || code > 1);
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        raise(WTERMSIG(status));
    }
    return code;
}

/* ---------------------------------------------------------- recorder ---- */

void oomb_instr_rec_init(struct oomb_instr_rec *rec)
{
    memset(rec, 0, sizeof *rec);
    if (!oomb_instr_inside())
        return;
    snprintf(rec->dir, sizeof rec->dir, "%s", getenv(OOMB_INSTR_ENV));
    rec->active = 1;
    openblas_set_num_threads(1);
}

void oomb_instr_rec_mark(struct oomb_instr_rec *rec, int step, int kind)
{
    if (!rec->active || rec->failed)
        return;
    if (rec->n_marks == rec->cap_marks) {
        int cap = rec->cap_marks ? rec->cap_marks * 2 : 256;
        struct oomb_instr_mark_rec *m = realloc(rec->marks, (size_t)cap * sizeof *m);
        if (!m) {
            rec->failed = 1;
            return;
        }
        rec->marks = m;
        rec->cap_marks = cap;
    }
    rec->marks[rec->n_marks].step = step;
    rec->marks[rec->n_marks].kind = kind;
    rec->n_marks++;
#if OOMB_HAVE_CALLGRIND
    if (!rec->started) {
        CALLGRIND_START_INSTRUMENTATION;
        rec->started = 1;
    }
    /* The trigger names the mark: dump files are matched by it, not by
     * callgrind's file numbering. */
    char name[32];
    snprintf(name, sizeof name, "oomb-%d", rec->n_marks);
    CALLGRIND_DUMP_STATS_AT(name);
#endif
}

/* Reads one dump: its mark number (from the trigger) and its Ir total.
 * Returns 1 when it is one of ours. */
static int read_dump(const char *path, int *mark, int64_t *ir)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[512];
    int have_mark = 0, have_ir = 0;
    while (fgets(line, sizeof line, f)) {
        long long v;
        int m;
        if (sscanf(line, "desc: Trigger: Client Request: oomb-%d", &m) == 1) {
            *mark = m;
            have_mark = 1;
        } else if (!have_ir && (sscanf(line, "summary: %lld", &v) == 1 ||
                                sscanf(line, "totals: %lld", &v) == 1)) {
            *ir = v;
            have_ir = 1;
        }
        if (have_mark && have_ir)
            break;
    }
    fclose(f);
    return have_mark && have_ir;
}

int oomb_instr_rec_collect(struct oomb_instr_rec *rec, int n_steps, struct oomb_instr **out,
                           char *msg, size_t msg_len)
{
    *out = NULL;
    if (!rec->active)
        return OOMB_OK;
#if OOMB_HAVE_CALLGRIND
    if (rec->started)
        CALLGRIND_STOP_INSTRUMENTATION;
#endif
    rec->started = 0;
    if (rec->failed) {
        oomb_errf(msg, msg_len, "out of memory recording the instruction marks");
        return OOMB_ERR_OOM;
    }
    int rc = OOMB_OK;
    int64_t *ir = calloc((size_t)rec->n_marks + 1, sizeof *ir);
    char *seen = calloc((size_t)rec->n_marks + 1, 1);
    struct oomb_instr *in = instr_create(n_steps);
    if (!ir || !seen || !in) {
        oomb_errf(msg, msg_len, "out of memory reading the instruction counts");
        rc = OOMB_ERR_OOM;
        goto fail;
    }

    /* This process's dumps: <dir>/cg.<pid>.<n>. */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "cg.%d.", (int)getpid());
    DIR *d = opendir(rec->dir);
    if (!d) {
        oomb_errf(msg, msg_len, "%s: %s", rec->dir, strerror(errno));
        rc = OOMB_ERR_IO;
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", rec->dir, de->d_name);
        int m = 0;
        int64_t v = 0;
        if (read_dump(path, &m, &v) && m >= 1 && m <= rec->n_marks) {
            ir[m] = v;
            seen[m] = 1;
        }
        unlink(path);
    }
    closedir(d);

    /* Mark i's dump holds the cost since mark i-1: it goes to the phase
     * mark i-1 opened, unless it lies in an excluded window (resolve_step in
     * child.c, for the times). Each step's first dump holds what ran between
     * steps and is dropped. */
    int phase = OOMB_PHASE_OTHER, excluded = 0;
    for (int i = 0; i < rec->n_marks; i++) {
        const struct oomb_instr_mark_rec *mk = &rec->marks[i];
        int first = i == 0 || rec->marks[i - 1].step != mk->step;
        if (!seen[i + 1]) {
            oomb_errf(msg, msg_len, "callgrind dump of mark %d (step %d) missing in %s", i + 1,
                      mk->step, rec->dir);
            rc = OOMB_ERR_IO;
            goto fail;
        }
        if (first) {
            phase = OOMB_PHASE_OTHER;
            excluded = 0;
        } else if (!excluded && mk->step >= 0 && mk->step < n_steps) {
            in->samples[mk->step] += ir[i + 1];
            in->phase[phase][mk->step] += ir[i + 1];
        }
        if (mk->kind == OOMB_INSTR_EXCL_BEGIN)
            excluded = 1;
        else if (mk->kind == OOMB_INSTR_EXCL_END)
            excluded = 0;
        else if (mk->kind >= 0 && mk->kind < OOMB_PHASE_COUNT)
            phase = mk->kind;
    }
    const char *core = openblas_get_corename();
    const char *ct = getenv("OPENBLAS_CORETYPE");
    in->blas_core = oomb_strdup(core ? core : "");
    in->blas_coretype = oomb_strdup(ct ? ct : "");
    if (!in->blas_core || !in->blas_coretype) {
        oomb_errf(msg, msg_len, "out of memory");
        rc = OOMB_ERR_OOM;
        goto fail;
    }
    *out = in;
    in = NULL;
fail:
    oomb_instr_destroy(in);
    free(ir);
    free(seen);
    return rc;
}

void oomb_instr_rec_free(struct oomb_instr_rec *rec)
{
    free(rec->marks);
    rec->marks = NULL;
    rec->n_marks = rec->cap_marks = 0;
}

/* -------------------------------------------------------------- JSON ---- */

static const char *const phase_key[OOMB_PHASE_COUNT] = {"other", "forward", "backward", "update"};

static json_t *counts_json(const int64_t *v, int n)
{
    json_t *o = json_object(), *a = json_array();
    int bad = !o || !a;
    for (int i = 0; !bad && i < n; i++)
        bad |= json_array_append_new(a, json_integer(v[i])) != 0;
    if (!bad) {
        bad |= json_object_set_new(o, "samples", a) != 0;
        a = NULL;
        double m = oomb_instr_median(v, n);
        bad |= json_object_set_new(o, "median", isfinite(m) ? json_real(m) : json_null()) != 0;
    }
    json_decref(a);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

struct json_t *oomb_instr_to_json(const struct oomb_instr *in)
{
    json_t *o = counts_json(in->samples, in->n_steps);
    json_t *phases = json_object(), *blas = json_object();
    int bad = !o || !phases || !blas;
    if (!bad) {
        bad |= json_object_set_new(o, "unit", json_string("Ir")) != 0;
        bad |= json_object_set_new(o, "tool", json_string("callgrind")) != 0;
    }
    /* Forward, backward, update, then other, as in "time". */
    static const int order[OOMB_PHASE_COUNT] = {OOMB_PHASE_FORWARD, OOMB_PHASE_BACKWARD,
                                                OOMB_PHASE_UPDATE, OOMB_PHASE_OTHER};
    for (int i = 0; !bad && i < OOMB_PHASE_COUNT; i++) {
        int p = order[i];
        if (!in->phase[p])
            continue;
        json_t *ph = counts_json(in->phase[p], in->n_steps);
        bad |= !ph || json_object_set_new(phases, phase_key[p], ph) != 0;
    }
    if (!bad) {
        bad |= json_object_set_new(blas, "core", json_string(in->blas_core ? in->blas_core : ""));
        bad |= json_object_set_new(blas, "coretype_env",
                                   json_string(in->blas_coretype ? in->blas_coretype : ""));
        bad |= json_object_set_new(blas, "threads", json_integer(1));
        bad |= json_object_set_new(o, "phases", phases) != 0;
        phases = NULL;
        bad |= json_object_set_new(o, "blas", blas) != 0;
        blas = NULL;
    }
    json_decref(phases);
    json_decref(blas);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Integer samples of obj.samples; *n their count. */
static int read_counts(json_t *obj, int64_t **out, int *n, const char *where, char *err,
                       size_t err_len)
{
    json_t *a = json_is_object(obj) ? json_object_get(obj, "samples") : NULL;
    if (!json_is_array(a) || json_array_size(a) > 1000000) {
        oomb_errf(err, err_len, "field '%s.samples': expected an array of counts", where);
        return OOMB_ERR_PARSE;
    }
    size_t k = json_array_size(a);
    *out = calloc(k ? k : 1, sizeof **out);
    if (!*out) {
        oomb_errf(err, err_len, "out of memory");
        return OOMB_ERR_OOM;
    }
    for (size_t i = 0; i < k; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            oomb_errf(err, err_len, "field '%s.samples': expected non-negative integers", where);
            return OOMB_ERR_PARSE;
        }
        (*out)[i] = json_integer_value(v);
    }
    *n = (int)k;
    return OOMB_OK;
}

int oomb_instr_from_json(struct json_t *v, int n_time_steps, struct oomb_instr **out, char *err,
                         size_t err_len)
{
    *out = NULL;
    if (!v)
        return OOMB_OK;
    (void)n_time_steps; /* the counts need not match the time samples' number */
    if (!json_is_object(v)) {
        oomb_errf(err, err_len, "field 'instructions': expected an object");
        return OOMB_ERR_PARSE;
    }
    json_t *unit = json_object_get(v, "unit");
    if (unit && (!json_is_string(unit) || strcmp(json_string_value(unit), "Ir") != 0)) {
        oomb_errf(err, err_len, "field 'instructions.unit': expected \"Ir\"");
        return OOMB_ERR_PARSE;
    }
    struct oomb_instr *in = calloc(1, sizeof *in);
    if (!in) {
        oomb_errf(err, err_len, "out of memory");
        return OOMB_ERR_OOM;
    }
    int rc = read_counts(v, &in->samples, &in->n_steps, "instructions", err, err_len);
    json_t *phases = json_object_get(v, "phases");
    if (rc == OOMB_OK && phases && !json_is_object(phases)) {
        oomb_errf(err, err_len, "field 'instructions.phases': expected an object");
        rc = OOMB_ERR_PARSE;
    }
    for (int p = 0; rc == OOMB_OK && phases && p < OOMB_PHASE_COUNT; p++) {
        json_t *ph = json_object_get(phases, phase_key[p]);
        if (!ph)
            continue;
        char where[64];
        snprintf(where, sizeof where, "instructions.phases.%s", phase_key[p]);
        int n = 0;
        rc = read_counts(ph, &in->phase[p], &n, where, err, err_len);
        if (rc == OOMB_OK && n != in->n_steps) {
            oomb_errf(err, err_len,
                      "field '%s.samples': length differs from "
                      "instructions.samples",
                      where);
            rc = OOMB_ERR_PARSE;
        }
    }
    json_t *blas = json_object_get(v, "blas");
    json_t *core = json_is_object(blas) ? json_object_get(blas, "core") : NULL;
    json_t *ct = json_is_object(blas) ? json_object_get(blas, "coretype_env") : NULL;
    in->blas_core = oomb_strdup(json_is_string(core) ? json_string_value(core) : "");
    in->blas_coretype = oomb_strdup(json_is_string(ct) ? json_string_value(ct) : "");
    if (rc == OOMB_OK && (!in->blas_core || !in->blas_coretype)) {
        oomb_errf(err, err_len, "out of memory");
        rc = OOMB_ERR_OOM;
    }
    if (rc != OOMB_OK) {
        oomb_instr_destroy(in);
        return rc;
    }
    *out = in;
    return OOMB_OK;
}

/* ----------------------------------------------------------- verdict ---- */

int oomb_instr_judge(double base, double head, double ref, double tol_pct, double *change_pct)
{
    *change_pct = base > 0 && isfinite(head) ? (head - base) / base * 100.0 : NAN;
    if (!(ref > 0) || !isfinite(head) || !isfinite(base))
        return 0;
    double share = (head - base) / ref * 100.0;
    return share > tol_pct ? 1 : share < -tol_pct ? -1 : 0;
}
