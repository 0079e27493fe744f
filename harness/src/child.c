/*
 * One run, inside its child process: create the backend and the tracked
 * allocator, load the plugin afresh, hand it the host table, drive warm-up and
 * measured steps with per-phase timing, compare reported tensors with the
 * `none` run's, and write a single-run results file for the parent.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend.h"
#include "calibrate.h"
#include "data.h"
#include "instr.h"
#include "loader.h"
#include "mnist.h"
#include "pipeline.h"
#include "runner.h"
#include "tracker.h"
#include "util.h"

/* Marks besides the phases: a window left out of the step's time
 * (reporting), and a window of waiting for the input (the data phase). */
enum { MARK_EXCL_BEGIN = 100, MARK_EXCL_END = 101, MARK_DATA_BEGIN = 102, MARK_DATA_END = 103 };

struct mark {
    int id;
    int kind; /* enum oomb_phase or MARK_EXCL_* / MARK_DATA_* */
};

struct tensor_ref {
    char name[32];
    int64_t records; /* records reported so far */
};

struct oomb_run {
    const struct oomb_job *job;
    struct oomb_kernel_backend *backend;
    /* CUDA runs: the CPU backend, whose ops are host->host_ops (kernels on
     * host-space memory); NULL on the CPU backend (host_ops is ops). */
    struct oomb_kernel_backend *host_backend;
    struct oomb_tracker tracker;
    struct oomb_cachealloc *cache; /* allocator: caching; NULL: exact */
    struct oomb_backend_alloc_hook hook;
    struct oomb_host host;
    struct oomb_run_info info;
    struct oomb_data data;
    struct oomb_run_result *res;

    /* The input (pipeline: in the scenario). Synthetic resident: every
     * step's samples made before the first step, batch_x (steps, B, F) and
     * batch_y (steps, B). Fashion-MNIST resident: the sets read whole from
     * the runner's files (train_set, test_set), a batch gathered into
     * `gather`. Streaming: `pipe` makes each step's batch (from the files,
     * train_file and test_file, or the generator); evaluation reads into
     * `gather`. */
    float *batch_x;
    int32_t *batch_y;
    int64_t n_steps_total;
    struct oomb_dataset train_set, test_set;
    struct oomb_dataset_file train_file, test_file;
    struct oomb_pipeline *pipe;
    float *gather_x; /* staging for one gathered batch (B rows) */
    int32_t *gather_y;
    int64_t gather_rows;

    int in_step;
    int64_t step;
    struct mark *marks;
    int n_marks, cap_marks;

    int64_t acc_correct, acc_total;
    struct tensor_ref tensors[8];
    int n_tensors;
    double max_weight_err;
    int have_weight_err;
    void *hook_ptrs[8]; /* backend library workspaces, freed by the backend */
    int n_hook_ptrs;
    struct oomb_instr_rec instr; /* run --instructions: a callgrind dump per mark */
};

/* ----------------------------------------------------------- marks ------ */

static void add_mark(struct oomb_run *r, int kind)
{
    if (!r->in_step)
        return;
    int id;
    if (r->backend->timer_mark(r->backend->ops.ctx, &id) != OOMB_OK)
        return;
    if (r->n_marks == r->cap_marks) {
        int cap = r->cap_marks ? r->cap_marks * 2 : 64;
        struct mark *m = realloc(r->marks, (size_t)cap * sizeof *m);
        if (!m)
            return;
        r->marks = m;
        r->cap_marks = cap;
    }
    r->marks[r->n_marks].id = id;
    r->marks[r->n_marks].kind = kind;
    r->n_marks++;
    if (r->step >= r->info.warmup_steps)
        oomb_instr_rec_mark(&r->instr, (int)(r->step - r->info.warmup_steps),
                            kind == MARK_EXCL_BEGIN ? OOMB_INSTR_EXCL_BEGIN
                            : kind == MARK_EXCL_END ? OOMB_INSTR_EXCL_END
                                                    : kind);
}

/* ----------------------------------------------------------- host API --- */

static const struct oomb_kv *find_param(const struct oomb_run *r, const char *name)
{
    const struct oomb_strategy_spec *s = r->job->spec;
    for (int i = 0; i < s->n_params; i++)
        if (strcmp(s->params[i].key, name) == 0)
            return &s->params[i];
    return NULL;
}

static int param_text(struct oomb_run *r, const char *name, enum oomb_param_type want,
                      const char **out)
{
    const struct oomb_plugin *d = &r->job->plugin->desc;
    int i = oomb_plugin_param_index(d, name);
    if (i < 0 || d->params[i].type != want)
        return OOMB_ERR_INVALID;
    const struct oomb_kv *kv = find_param(r, name);
    *out = kv ? kv->value : d->params[i].default_value;
    return OOMB_OK;
}

static int h_param_int(struct oomb_run *r, const char *name, int64_t *out)
{
    const char *t;
    if (param_text(r, name, OOMB_PARAM_INT, &t) != OOMB_OK)
        return OOMB_ERR_INVALID;
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (errno || end == t || *end)
        return OOMB_ERR_INVALID;
    *out = v;
    return OOMB_OK;
}

static int h_param_float(struct oomb_run *r, const char *name, double *out)
{
    const char *t;
    if (param_text(r, name, OOMB_PARAM_FLOAT, &t) != OOMB_OK)
        return OOMB_ERR_INVALID;
    char *end;
    errno = 0;
    double v = strtod(t, &end);
    if (errno || end == t || *end)
        return OOMB_ERR_INVALID;
    *out = v;
    return OOMB_OK;
}

static int h_param_str(struct oomb_run *r, const char *name, const char **out)
{
    return param_text(r, name, OOMB_PARAM_STRING, out);
}

static int h_alloc(struct oomb_run *r, enum oomb_space space, size_t bytes, enum oomb_tag tag,
                   const char *label, void **out)
{
    (void)label;
    return oomb_tracker_alloc_in(&r->tracker, space, bytes, tag, out);
}

static const void *h_get_extension(struct oomb_run *r, const char *name, uint32_t min_version)
{
    if (!name || !r->backend->get_extension)
        return NULL;
    const void *t = r->backend->get_extension(r->backend->ops.ctx, name);
    if (!t)
        return NULL;
    /* every extension table starts with struct_size, version */
    const uint32_t *head = t;
    return head[1] >= min_version ? t : NULL;
}

/* A copy's event as the plugin holds it: the backend's, plus what the
 * results count. */
struct oomb_copy_event {
    void *ev;
};

static int h_copy_async(struct oomb_run *r, void *dst, enum oomb_space dst_space, const void *src,
                        enum oomb_space src_space, size_t bytes, struct oomb_copy_event **done)
{
    if (done)
        *done = NULL;
    if ((int)dst_space < 0 || dst_space >= OOMB_SPACE_COUNT || (int)src_space < 0 ||
        src_space >= OOMB_SPACE_COUNT || (!dst && bytes) || (!src && bytes))
        return OOMB_ERR_INVALID;
    struct oomb_copy_event *e = malloc(sizeof *e);
    if (!e)
        return OOMB_ERR_BACKEND;
    void *k = r->backend->ops.ctx;
    int rc = r->backend->copy_async(k, dst, dst_space, src, src_space, bytes, &e->ev);
    if (rc != OOMB_OK) {
        free(e);
        return rc;
    }
    struct oomb_tracker_stats *s = r->tracker.stats;
    s->copy_bytes[src_space][dst_space] += bytes;
    s->n_copies++;
    if (done) {
        *done = e;
        return OOMB_OK;
    }
    rc = r->backend->ev_sync(k, e->ev);
    r->backend->ev_free(k, e->ev, &s->copy_ns);
    free(e);
    return rc;
}

static int h_event_wait(struct oomb_run *r, struct oomb_copy_event *e)
{
    return e ? r->backend->ev_wait(r->backend->ops.ctx, e->ev) : OOMB_ERR_INVALID;
}

static int h_event_sync(struct oomb_run *r, struct oomb_copy_event *e)
{
    return e ? r->backend->ev_sync(r->backend->ops.ctx, e->ev) : OOMB_ERR_INVALID;
}

static void h_event_free(struct oomb_run *r, struct oomb_copy_event *e)
{
    if (!e)
        return;
    r->backend->ev_free(r->backend->ops.ctx, e->ev, &r->tracker.stats->copy_ns);
    free(e);
}

static void h_free(struct oomb_run *r, void *ptr)
{
    if (oomb_tracker_dealloc(&r->tracker, ptr) != OOMB_OK)
        fprintf(stderr, "oombench: %s: free of a pointer the host did not allocate (%p)\n",
                r->job->spec->label, ptr);
}

/* Copies `count` host samples to the device arrays (either may be NULL). */
static int put_samples(struct oomb_run *r, const float *xs, const int32_t *ys, int64_t count,
                       float *x, int32_t *y)
{
    const int64_t F = r->info.model->input_features;
    const struct oomb_ops *o = &r->backend->ops;
    int rc = OOMB_OK;
    if (x)
        rc = o->to_device(o->ctx, x, xs, (size_t)(count * F) * sizeof(float));
    if (rc == OOMB_OK && y)
        rc = o->to_device(o->ctx, y, ys, (size_t)count * sizeof(int32_t));
    return rc;
}

/* The staging buffer for `count` gathered rows: r->gather_x/y, grown to
 * the largest count asked for (a batch, or an evaluation chunk). Its bytes
 * count as staging. */
static int gather_room(struct oomb_run *r, int64_t count)
{
    if (count <= r->gather_rows)
        return OOMB_OK;
    const int64_t F = r->info.model->input_features;
    size_t xb, yb;
    if (oomb_data_bytes(count, F, &xb) != OOMB_OK || oomb_data_bytes(count, 1, &yb) != OOMB_OK)
        return OOMB_ERR_INVALID;
    float *x = realloc(r->gather_x, xb + 1);
    if (x)
        r->gather_x = x;
    int32_t *y = realloc(r->gather_y, yb + 1);
    if (y)
        r->gather_y = y;
    if (!x || !y)
        return OOMB_ERR_OOM;
    r->gather_rows = count;
    struct oomb_tracker_stats *s = r->tracker.stats;
    uint64_t bytes = (uint64_t)(xb + yb);
    if (bytes > s->input_staging_bytes)
        s->input_staging_bytes = bytes;
    return OOMB_OK;
}

/* The samples of positions step * B + first .. + count of the training
 * stream: Fashion-MNIST in its seeded epoch order, from the resident set or
 * the file, into x and y (host). */
static int gather_train(struct oomb_run *r, int64_t step, int64_t first, int64_t count, float *x,
                        int32_t *y)
{
    const int64_t B = r->info.batch;
    const int64_t n = r->train_set.n ? r->train_set.n : r->train_file.n;
    int64_t *idx = malloc((size_t)count * sizeof *idx + 1);
    if (!idx)
        return OOMB_ERR_OOM;
    for (int64_t i = 0; i < count; i++)
        idx[i] = oomb_dataset_sample_index(r->info.seed, n, step * B + first + i);
    int rc = OOMB_OK;
    if (r->train_set.n)
        oomb_dataset_copy(&r->train_set, idx, count, x, y);
    else
        rc = oomb_dataset_file_read(&r->train_file, idx, count, x, y);
    free(idx);
    return rc;
}

/* The pipeline's fill: one step's whole batch (runs on the loader thread
 * with prefetch; reads only what does not change during the run). */
static int fill_step(void *user, int64_t step, float *x, int32_t *y)
{
    struct oomb_run *r = user;
    if (r->job->dry_run)
        return OOMB_OK; /* nothing reads the slot */
    if (r->train_file.fd >= 0)
        return gather_train(r, step, 0, r->info.batch, x, y);
    oomb_data_samples(&r->data, step * r->info.batch, r->info.batch, x, y);
    return OOMB_OK;
}

/* The space of the pipeline's staging slots: pinned on CUDA when asked. */
static enum oomb_space staging_space(const struct oomb_run *r)
{
    return r->job->pipeline.pinned && r->job->backend == OOMB_BACKEND_CUDA
               ? OOMB_SPACE_HOST_PINNED
               : OOMB_SPACE_HOST;
}

static void *slot_alloc(void *user, size_t bytes)
{
    struct oomb_run *r = user;
    void *p = NULL;
    if (!r->backend->host_alloc ||
        r->backend->host_alloc(r->backend->ops.ctx, staging_space(r), bytes, &p) != OOMB_OK)
        return NULL;
    return p;
}

static void slot_free(void *user, void *p)
{
    struct oomb_run *r = user;
    r->backend->host_free(r->backend->ops.ctx, staging_space(r), p);
}

static int h_load_batch(struct oomb_run *r, int64_t step, int64_t first, int64_t count, float *x,
                        int32_t *y)
{
    const int64_t B = r->info.batch, F = r->info.model->input_features;
    if (step < 0 || step >= r->n_steps_total || first < 0 || count < 0 || first + count > B)
        return OOMB_ERR_INVALID;
    if (r->pipe) {
        const float *xs;
        const int32_t *ys;
        int64_t waited;
        add_mark(r, MARK_DATA_BEGIN);
        int rc = oomb_pipeline_get(r->pipe, step, &xs, &ys, &waited);
        add_mark(r, MARK_DATA_END);
        if (rc != OOMB_OK)
            return rc;
        return put_samples(r, xs + first * F, ys + first, count, x, y);
    }
    if (r->job->dry_run) /* resident Fashion-MNIST: the gather buffer a run holds */
        return r->job->train_path ? gather_room(r, count) : OOMB_OK;
    if (r->train_set.n) {
        int rc = gather_room(r, count);
        if (rc != OOMB_OK)
            return rc;
        add_mark(r, MARK_DATA_BEGIN);
        rc = gather_train(r, step, first, count, r->gather_x, r->gather_y);
        add_mark(r, MARK_DATA_END);
        return rc != OOMB_OK ? rc : put_samples(r, r->gather_x, r->gather_y, count, x, y);
    }
    return put_samples(r, r->batch_x + (step * B + first) * F, r->batch_y + step * B + first,
                       count, x, y);
}

/* Initial parameters (or, with `buffers`, buffer values) of layer `layer`
 * computed on the host and copied to dst. */
static int put_layer_init(struct oomb_run *r, int layer, float *dst, int buffers)
{
    const struct oomb_model *m = r->info.model;
    if (layer < 0 || layer >= m->n_layers)
        return OOMB_ERR_INVALID;
    const struct oomb_layer *L = m->layers[layer];
    int64_t n = buffers ? L->n_buffers : L->n_params;
    if (n == 0 || r->job->dry_run)
        return OOMB_OK;
    float *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp)
        return OOMB_ERR_OOM;
    if (buffers)
        oomb_data_init_buffers(L, tmp);
    else
        oomb_data_init_params_gain(r->info.seed, layer, L, r->job->sc->init_kaiming ? sqrt(6.0) : 1.0,
                                   tmp);
    const struct oomb_ops *o = &r->backend->ops;
    int rc = o->to_device(o->ctx, dst, tmp, (size_t)n * sizeof(float));
    free(tmp);
    return rc;
}

static int h_init_params(struct oomb_run *r, int layer, float *dst)
{
    return put_layer_init(r, layer, dst, 0);
}

static int h_init_buffers(struct oomb_run *r, int layer, float *dst)
{
    return put_layer_init(r, layer, dst, 1);
}

static int h_load_eval_batch(struct oomb_run *r, int64_t first, int64_t count, float *x, int32_t *y)
{
    if (first < 0 || count < 0 || first + count > r->info.eval_samples)
        return OOMB_ERR_INVALID;
    int rc = gather_room(r, count);
    if (rc != OOMB_OK || r->job->dry_run)
        return rc;
    if (r->test_set.n || r->test_file.fd >= 0) {
        /* the test set in its order */
        int64_t *idx = malloc((size_t)count * sizeof *idx + 1);
        if (!idx)
            return OOMB_ERR_OOM;
        for (int64_t i = 0; i < count; i++)
            idx[i] = first + i;
        if (r->test_set.n)
            oomb_dataset_copy(&r->test_set, idx, count, r->gather_x, r->gather_y);
        else
            rc = oomb_dataset_file_read(&r->test_file, idx, count, r->gather_x, r->gather_y);
        free(idx);
    } else {
        oomb_data_eval_samples(&r->data, first, count, r->gather_x, r->gather_y);
    }
    return rc != OOMB_OK ? rc : put_samples(r, r->gather_x, r->gather_y, count, x, y);
}

static int h_report_eval(struct oomb_run *r, int64_t correct, int64_t total, double loss_sum)
{
    if (correct < 0 || total <= 0 || correct > total || !isfinite(loss_sum))
        return OOMB_ERR_INVALID;
    struct oomb_run_result *res = r->res;
    res->has_eval = 1;
    res->eval_samples = total;
    res->test_accuracy = (double)correct / (double)total;
    res->test_loss = loss_sum / (double)total;
    return OOMB_OK;
}

static void h_phase(struct oomb_run *r, enum oomb_phase phase)
{
    if ((int)phase < 0 || phase >= OOMB_PHASE_COUNT)
        return;
    oomb_tracker_set_phase(&r->tracker, phase);
    add_mark(r, (int)phase);
}

static void h_log(struct oomb_run *r, enum oomb_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    if ((int)level < 0 || level > OOMB_LOG_DEBUG || level > OOMB_LOG_INFO)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s %s] %s: ", r->job->sc->name, r->job->spec->label, names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int h_report_loss(struct oomb_run *r, int64_t step, double loss)
{
    if (step < 0 || step >= r->res->n_losses)
        return OOMB_ERR_INVALID;
    r->res->losses[step] = loss;
    return OOMB_OK;
}

static int h_report_metric(struct oomb_run *r, const char *name, double value)
{
    struct oomb_run_result *res = r->res;
    for (int i = 0; i < res->n_metrics; i++)
        if (strcmp(res->metrics[i].name, name) == 0) {
            res->metrics[i].value = value;
            return OOMB_OK;
        }
    struct oomb_metric *m = realloc(res->metrics, (size_t)(res->n_metrics + 1) * sizeof *m);
    if (!m)
        return OOMB_ERR_OOM;
    res->metrics = m;
    if (!(m[res->n_metrics].name = oomb_strdup(name)))
        return OOMB_ERR_OOM;
    m[res->n_metrics++].value = value;
    return OOMB_OK;
}

static int h_report_accuracy(struct oomb_run *r, int64_t correct, int64_t total)
{
    if (correct < 0 || total <= 0 || correct > total)
        return OOMB_ERR_INVALID;
    if (r->step < r->info.warmup_steps)
        return OOMB_OK; /* accuracy is over the measured steps */
    r->acc_correct += correct;
    r->acc_total += total;
    return OOMB_OK;
}

static double rel_err(const float *a, const float *b, int64_t n)
{
    double d = 0, nb = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)b[i];
        d += e * e;
        nb += (double)b[i] * b[i];
    }
    if (!isfinite(d))
        return INFINITY;
    return nb > 0 ? sqrt(d / nb) : sqrt(d);
}

static struct tensor_ref *tensor_slot(struct oomb_run *r, const char *name)
{
    for (int i = 0; i < r->n_tensors; i++)
        if (strcmp(r->tensors[i].name, name) == 0)
            return &r->tensors[i];
    if (r->n_tensors == (int)(sizeof r->tensors / sizeof r->tensors[0]))
        return NULL;
    struct tensor_ref *t = &r->tensors[r->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->records = 0;
    return t;
}

/* Reference file of tensor `name` of this scenario/mode/batch. */
static void ref_path(const struct oomb_run *r, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s.%s", r->job->ref_prefix, name);
}

static int h_report_tensor(struct oomb_run *r, const char *name, const float *dev, int64_t n)
{
    if (!name || strlen(name) >= 32 || strchr(name, '/') || n < 0)
        return OOMB_ERR_INVALID;
    struct tensor_ref *t = tensor_slot(r, name);
    if (!t)
        return OOMB_ERR_INVALID;
    if (r->job->dry_run)
        return OOMB_OK; /* no values to compare */
    int rc = OOMB_OK;
    add_mark(r, MARK_EXCL_BEGIN);
    float *host = malloc((size_t)(n ? n : 1) * sizeof *host);
    float *ref = NULL;
    char path[PATH_MAX + 160];
    ref_path(r, name, path, sizeof path);
    if (!host) {
        rc = OOMB_ERR_OOM;
        goto done;
    }
    const struct oomb_ops *o = &r->backend->ops;
    if ((rc = o->to_host(o->ctx, host, dev, (size_t)n * sizeof(float))) != OOMB_OK)
        goto done;
    if (r->job->is_reference) {
        FILE *f = fopen(path, t->records == 0 ? "wb" : "ab");
        if (!f || fwrite(&n, sizeof n, 1, f) != 1 ||
            fwrite(host, sizeof(float), (size_t)n, f) != (size_t)n)
            rc = OOMB_ERR_IO;
        if (f)
            fclose(f);
    } else {
        /* Compare with record `t->records` of the reference, if shapes match. */
        FILE *f = fopen(path, "rb");
        if (f) {
            int64_t rn = 0;
            int found = 0;
            for (int64_t rec = 0; rec <= t->records; rec++) {
                if (fread(&rn, sizeof rn, 1, f) != 1)
                    break;
                if (rec == t->records) {
                    found = 1;
                    break;
                }
                if (fseeko(f, (off_t)rn * (off_t)sizeof(float), SEEK_CUR) != 0)
                    break;
            }
            if (found && rn == n && (ref = malloc((size_t)(n ? n : 1) * sizeof *ref)) &&
                fread(ref, sizeof(float), (size_t)n, f) == (size_t)n) {
                double e = rel_err(host, ref, n);
                struct oomb_run_result *res = r->res;
                if (strcmp(name, "grads0") == 0 && t->records == 0)
                    res->grad_rel_err = e;
                else if (strcmp(name, "output0") == 0 && t->records == 0)
                    res->output_rel_err = e;
                else if (strcmp(name, "weights") == 0) {
                    if (!r->have_weight_err || e > r->max_weight_err || isnan(e))
                        r->max_weight_err = e;
                    r->have_weight_err = 1;
                    res->weight_rel_err = r->max_weight_err;
                }
            }
            fclose(f);
        }
    }
    t->records++;
done:
    add_mark(r, MARK_EXCL_END);
    free(host);
    free(ref);
    return rc;
}

static int h_reference_params(struct oomb_run *r, int layer, float *dst)
{
    const struct oomb_model *m = r->info.model;
    if (layer < 0 || layer >= m->n_layers)
        return OOMB_ERR_INVALID;
    int64_t total = 0, off = 0;
    for (int l = 0; l < m->n_layers; l++) {
        if (l == layer)
            off = total;
        total += m->layers[l]->n_params;
    }
    int64_t n = m->layers[layer]->n_params;
    if (r->job->dry_run)
        return OOMB_OK; /* a teacher "as trained": no values in a dry run */
    char path[PATH_MAX + 160];
    snprintf(path, sizeof path, "%s.final", r->job->ref_prefix);
    FILE *f = fopen(path, "rb");
    if (!f)
        return OOMB_ERR_NOT_USABLE;
    int rc = OOMB_ERR_NOT_USABLE;
    int64_t rn = 0;
    float *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    if (tmp && fread(&rn, sizeof rn, 1, f) == 1 && rn == total &&
        fseeko(f, (off_t)off * (off_t)sizeof(float), SEEK_CUR) == 0 &&
        fread(tmp, sizeof(float), (size_t)n, f) == (size_t)n) {
        const struct oomb_ops *o = &r->backend->ops;
        rc = o->to_device(o->ctx, dst, tmp, (size_t)n * sizeof(float));
    }
    free(tmp);
    fclose(f);
    return rc;
}

/* The `none` run's final weights, kept for strategies that need a trained
 * model (distillation's teacher). */
static void save_final_weights(struct oomb_run *r)
{
    char src[PATH_MAX + 160], dst[PATH_MAX + 160];
    ref_path(r, "weights", src, sizeof src);
    snprintf(dst, sizeof dst, "%s.final", r->job->ref_prefix);
    FILE *f = fopen(src, "rb");
    if (!f)
        return;
    int64_t n = 0;
    float *buf = NULL;
    /* The last record is the final one. */
    while (fread(&n, sizeof n, 1, f) == 1) {
        float *b = realloc(buf, (size_t)(n ? n : 1) * sizeof *b);
        if (!b || fread(b, sizeof(float), (size_t)n, f) != (size_t)n) {
            free(b ? b : buf);
            buf = NULL;
            n = -1;
            break;
        }
        buf = b;
    }
    fclose(f);
    if (buf && n >= 0) {
        FILE *o = fopen(dst, "wb");
        if (o) {
            fwrite(&n, sizeof n, 1, o);
            fwrite(buf, sizeof(float), (size_t)n, o);
            fclose(o);
        }
    }
    free(buf);
}

static int hook_alloc(void *user, size_t bytes, enum oomb_tag tag, const char *label, void **out)
{
    struct oomb_run *r = user;
    if (r->n_hook_ptrs == (int)(sizeof r->hook_ptrs / sizeof r->hook_ptrs[0]))
        return OOMB_ERR_INTERNAL;
    int rc = h_alloc(r, OOMB_SPACE_DEVICE, bytes, tag, label, out);
    if (rc == OOMB_OK)
        r->hook_ptrs[r->n_hook_ptrs++] = *out;
    return rc;
}

static void hook_free(void *user, void *ptr)
{
    struct oomb_run *r = user;
    for (int i = 0; i < r->n_hook_ptrs; i++)
        if (r->hook_ptrs[i] == ptr) {
            r->hook_ptrs[i] = r->hook_ptrs[--r->n_hook_ptrs];
            break;
        }
    h_free(r, ptr);
}

/* ----------------------------------------------------------- driving ---- */

/* Turns the marks of one step into phase durations; returns the step's time
 * less the excluded (reporting) windows. */
static int64_t resolve_step(struct oomb_run *r, int64_t phase_ns[OOMB_PHASE_COUNT],
                            int64_t *data_ns)
{
    void *k = r->backend->ops.ctx;
    for (int p = 0; p < OOMB_PHASE_COUNT; p++)
        phase_ns[p] = 0;
    *data_ns = 0;
    int phase = OOMB_PHASE_OTHER, excluded = 0, in_data = 0;
    int64_t prev = 0, total = 0;
    for (int i = 0; i < r->n_marks; i++) {
        int64_t t = 0;
        r->backend->timer_resolve(k, r->marks[i].id, &t);
        if (i > 0 && !excluded) {
            int64_t d = t - prev;
            if (d < 0)
                d = 0;
            if (in_data)
                *data_ns += d; /* waiting for the input: its own phase */
            else
                phase_ns[phase] += d;
            total += d;
        }
        prev = t;
        switch (r->marks[i].kind) {
        case MARK_EXCL_BEGIN:
            excluded = 1;
            break;
        case MARK_EXCL_END:
            excluded = 0;
            break;
        case MARK_DATA_BEGIN:
            in_data = 1;
            break;
        case MARK_DATA_END:
            in_data = 0;
            break;
        default:
            phase = r->marks[i].kind;
            break;
        }
    }
    return total;
}

static void set_reason(struct oomb_run_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(struct oomb_run_result *res, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(res->reason);
    res->reason = oomb_strdup(buf);
}

/* Maps a plugin's failing status to the run's outcome and reason. */
static void fail_outcome(struct oomb_run *r, const char *where, int rc, const char *msg)
{
    struct oomb_run_result *res = r->res;
    const struct oomb_tracker_stats *s = r->tracker.stats;
    switch (rc) {
    case OOMB_ERR_OOM:
        res->outcome = OOMB_OUTCOME_OOM;
        if (s->oom_hit && s->oom_by_reserved)
            set_reason(res,
                       "%s: request of %llu bytes (%s) refused by the caching allocator: "
                       "%llu bytes allocated, %llu reserved, largest free block %llu; "
                       "a new segment of %llu bytes would exceed the %s %llu: %s",
                       where, (unsigned long long)s->oom_request,
                       oomb_tag_name((enum oomb_tag)s->oom_tag),
                       (unsigned long long)s->cache.oom_allocated,
                       (unsigned long long)s->cache.oom_reserved,
                       (unsigned long long)s->cache.oom_largest_free,
                       (unsigned long long)s->cache.oom_segment,
                       s->budget ? "budget" : "device's", (unsigned long long)s->budget, msg);
        else if (s->oom_hit && s->budget)
            set_reason(res,
                       "%s: request of %llu bytes (%s) refused: %llu bytes in use, "
                       "budget %llu: %s",
                       where, (unsigned long long)s->oom_request,
                       oomb_tag_name((enum oomb_tag)s->oom_tag), (unsigned long long)s->oom_in_use,
                       (unsigned long long)s->budget, msg);
        else if (s->oom_hit)
            set_reason(res,
                       "%s: request of %llu bytes (%s) refused by the device with %llu "
                       "bytes in use: %s",
                       where, (unsigned long long)s->oom_request,
                       oomb_tag_name((enum oomb_tag)s->oom_tag), (unsigned long long)s->oom_in_use,
                       msg);
        else {
            /* nothing was refused by the tracker (a host-side allocation of
             * the plugin failed): not a memory result of the run */
            res->outcome = OOMB_OUTCOME_ERROR;
            set_reason(res,
                       "%s: the plugin reported out of memory but no tracked allocation was "
                       "refused (host memory?): %s",
                       where, msg);
        }
        break;
    case OOMB_ERR_NOT_APPLICABLE:
        res->outcome = OOMB_OUTCOME_NOT_APPLICABLE;
        set_reason(res, "%s", msg);
        break;
    case OOMB_ERR_NOT_USABLE:
        res->outcome = OOMB_OUTCOME_SKIPPED;
        set_reason(res, "%s", msg);
        break;
    default:
        res->outcome = OOMB_OUTCOME_ERROR;
        set_reason(res, "%s: %s: %s", where, oomb_strerror(rc), msg);
        break;
    }
}

/* The input, as the strategy's pipeline says (struct oomb_run). Fills the
 * input counters of the tracker's stats; err says what failed. */
static int prepare_data(struct oomb_run *r, char *err, size_t err_len)
{
    const struct oomb_job *j = r->job;
    const int64_t B = r->info.batch, F = r->info.model->input_features;
    struct oomb_tracker_stats *s = r->tracker.stats;
    r->n_steps_total = r->info.warmup_steps + r->info.measured_steps;
    if (!j->dry_run && oomb_data_init(&r->data, r->info.seed, F, r->info.model->classes,
                                      j->sc->separation) != OOMB_OK) {
        oomb_errf(err, err_len, "out of host memory for the synthetic data's teacher");
        return OOMB_ERR_OOM;
    }
    const int streaming = j->pipeline.kind == OOMB_PIPELINE_STREAMING;
    int rc;
    if (j->train_path) {
        if ((rc = oomb_dataset_file_open(j->train_path, &r->train_file, err, err_len)) != OOMB_OK ||
            (rc = oomb_dataset_file_open(j->test_path, &r->test_file, err, err_len)) != OOMB_OK)
            return rc;
        if (!streaming && j->dry_run) { /* the bytes the sets would take, from the headers */
            s->input_dataset_bytes =
                (uint64_t)(r->train_file.n * (F * 4 + 4)) +
                (r->info.eval_samples > 0 ? (uint64_t)(r->test_file.n * (F * 4 + 4)) : 0);
            oomb_dataset_file_close(&r->train_file);
            oomb_dataset_file_close(&r->test_file);
            return OOMB_OK;
        }
        if (!streaming) {
            if ((rc = oomb_dataset_file_load(&r->train_file, &r->train_set)) != OOMB_OK ||
                (r->info.eval_samples > 0 &&
                 (rc = oomb_dataset_file_load(&r->test_file, &r->test_set)) != OOMB_OK)) {
                oomb_errf(err, err_len, "%s reading the Fashion-MNIST set into memory",
                          oomb_strerror(rc));
                return rc;
            }
            s->input_dataset_bytes = (uint64_t)(r->train_set.n * (F * 4 + 4)) +
                                     (uint64_t)(r->test_set.n * (F * 4 + 4));
            oomb_dataset_file_close(&r->train_file);
            oomb_dataset_file_close(&r->test_file);
            return OOMB_OK;
        }
    } else if (!streaming) {
        int64_t samples;
        size_t x_bytes, y_bytes;
        if (__builtin_mul_overflow(r->n_steps_total, B, &samples) ||
            oomb_data_bytes(samples, F, &x_bytes) != OOMB_OK ||
            oomb_data_bytes(samples, 1, &y_bytes) != OOMB_OK) {
            oomb_errf(err, err_len, "%lld steps of batch %lld do not fit in memory",
                      (long long)r->n_steps_total, (long long)B);
            return OOMB_ERR_OOM; /* the loader refuses such sizes; never wrap */
        }
        s->input_dataset_bytes = (uint64_t)(x_bytes + y_bytes);
        if (j->dry_run)
            return OOMB_OK;
        r->batch_x = malloc(x_bytes);
        r->batch_y = malloc(y_bytes);
        if (!r->batch_x || !r->batch_y) {
            oomb_errf(err, err_len, "out of host memory preparing %lld steps of data",
                      (long long)r->n_steps_total);
            return OOMB_ERR_OOM;
        }
        oomb_data_samples(&r->data, 0, samples, r->batch_x, r->batch_y);
        return OOMB_OK;
    }
    struct oomb_pipeline_cfg cfg = {.batch = B,
                                    .features = F,
                                    .n_steps = r->n_steps_total,
                                    .prefetch = j->pipeline.prefetch,
                                    .fill = fill_step,
                                    .fill_user = r,
                                    .alloc_slot = slot_alloc,
                                    .free_slot = slot_free,
                                    .alloc_user = r};
    if ((rc = oomb_pipeline_start(&cfg, &r->pipe)) != OOMB_OK) {
        oomb_errf(err, err_len, "the input pipeline: %s", oomb_strerror(rc));
        return rc;
    }
    s->input_staging_bytes = oomb_pipeline_staging_bytes(r->pipe);
    return OOMB_OK;
}

static int create_backend(struct oomb_run *r, char *msg, size_t msg_len)
{
    if (r->job->dry_run)
        return oomb_count_backend_create(&r->backend, msg, msg_len);
    if (r->job->backend == OOMB_BACKEND_CUDA) {
        int rc = oomb_cuda_backend_create(r->job->device, &r->backend, msg, msg_len);
        if (rc != OOMB_OK)
            return rc;
        /* host->host_ops: the update of an optimizer offloaded to the host */
        return oomb_cpu_backend_create(&r->host_backend, msg, msg_len);
    }
    return oomb_cpu_backend_create(&r->backend, msg, msg_len);
}

static void fill_info(struct oomb_run *r)
{
    const struct oomb_job *j = r->job;
    const struct oomb_scenario *sc = j->sc;
    struct oomb_run_info *i = &r->info;
    i->struct_size = sizeof *i;
    i->scenario = sc->name;
    i->mode = j->mode;
    i->backend = j->backend;
    i->batch = j->batch;
    i->warmup_steps = sc->warmup_steps;
    i->measured_steps = j->measured_steps;
    i->seed = sc->seed;
    i->optimizer = sc->optimizer;
    i->lr = sc->lr;
    i->momentum = sc->momentum;
    i->beta1 = sc->beta1;
    i->beta2 = sc->beta2;
    i->eps = sc->eps;
    i->weight_decay = sc->weight_decay;
    i->model = &sc->model;
    i->budget_bytes = sc->budget_bytes;
    i->eval_samples = sc->eval_samples;
    i->dry_run = j->dry_run;
}

static void fill_host(struct oomb_run *r)
{
    struct oomb_host *h = &r->host;
    h->struct_size = sizeof *h;
    h->abi_major = OOMB_ABI_MAJOR;
    h->abi_minor = OOMB_ABI_MINOR;
    h->run = r;
    h->info = &r->info;
    h->ops = &r->backend->ops;
    h->param_int = h_param_int;
    h->param_float = h_param_float;
    h->param_str = h_param_str;
    h->alloc = h_alloc;
    h->free = h_free;
    h->load_batch = h_load_batch;
    h->init_params = h_init_params;
    h->phase = h_phase;
    h->log = h_log;
    h->report_loss = h_report_loss;
    h->report_tensor = h_report_tensor;
    h->report_metric = h_report_metric;
    h->report_accuracy = h_report_accuracy;
    h->reference_params = h_reference_params;
    h->load_eval_batch = h_load_eval_batch;
    h->report_eval = h_report_eval;
    h->init_buffers = h_init_buffers;
    h->get_extension = h_get_extension;
    h->host_ops = r->host_backend ? &r->host_backend->ops : &r->backend->ops;
    h->copy_async = h_copy_async;
    h->event_wait = h_event_wait;
    h->event_sync = h_event_sync;
    h->event_free = h_event_free;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v (n > 0), sorting v. */
static double median_in_place(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Drives the plugin; fills r->res. Never fails the process: every problem is
 * the run's outcome. */
static void drive(struct oomb_run *r)
{
    struct oomb_run_result *res = r->res;
    const struct oomb_job *j = r->job;
    char msg[1024] = "";
    struct oomb_loaded_plugin *p = NULL;
    void *state = NULL;
    int created = 0, rc;
    struct oomb_calib cal = {0};
    double *shares = NULL; /* per measured step: wait / (wall x threads) */

    /* A fresh dlopen in the child: the plugin's state starts clean. */
    if ((rc = oomb_plugin_open(j->plugin->path, &p, msg, sizeof msg)) != OOMB_OK) {
        res->outcome = OOMB_OUTCOME_ERROR;
        set_reason(res, "%s", msg);
        return;
    }
    const struct oomb_plugin *d = &p->desc;
    if (strcmp(d->name, j->plugin->desc.name) != 0) {
        /* The file changed since it was described: its parameters may not match. */
        res->outcome = OOMB_OUTCOME_ERROR;
        set_reason(res, "%s: the plugin now calls itself '%s', not '%s' as when it was loaded",
                   j->plugin->path, d->name, j->plugin->desc.name);
        goto out;
    }

    if ((rc = create_backend(r, msg, sizeof msg)) != OOMB_OK) {
        res->outcome = rc == OOMB_ERR_NOT_USABLE ? OOMB_OUTCOME_SKIPPED : OOMB_OUTCOME_ERROR;
        set_reason(res, "backend: %s", msg);
        goto out;
    }
    if (oomb_tracker_init(&r->tracker, r->tracker.stats, r->backend, r->info.budget_bytes)) {
        res->outcome = OOMB_OUTCOME_ERROR;
        set_reason(res, "out of host memory");
        goto out;
    }
    /* a dry run keeps no timeline of its steps: plan reads peaks only, and a
     * search's large batches would spend their time writing events */
    r->tracker.record_step = j->dry_run ? INT32_MAX : (int32_t)r->info.warmup_steps;
    if (j->allocator.kind == OOMB_ALLOCATOR_CACHING) {
        if (oomb_cachealloc_create(&j->allocator.conf, r->info.budget_bytes, &r->cache) !=
            OOMB_OK) {
            res->outcome = OOMB_OUTCOME_ERROR;
            set_reason(res, "the caching allocator model refused its options");
            goto out;
        }
        oomb_tracker_set_cache(&r->tracker, r->cache);
    }
    fill_host(r);
    if (r->backend->set_alloc_hook) {
        r->hook.user = r;
        r->hook.alloc = hook_alloc;
        r->hook.free = hook_free;
        msg[0] = '\0';
        if ((rc = r->backend->set_alloc_hook(r->backend->ops.ctx, &r->hook)) != OOMB_OK) {
            fail_outcome(r, "backend workspace", rc,
                         r->backend->ops.last_error(r->backend->ops.ctx));
            goto out;
        }
    }
    if (prepare_data(r, msg, sizeof msg) != OOMB_OK) {
        res->outcome = OOMB_OUTCOME_ERROR;
        set_reason(res, "input: %s", msg);
        goto out;
    }

    if (d->usable) {
        msg[0] = '\0';
        rc = d->usable(&r->host, msg, sizeof msg);
        msg[sizeof msg - 1] = '\0'; /* a plugin's buffer is read only NUL-terminated */
        if (rc != OOMB_OK) {
            res->outcome = OOMB_OUTCOME_SKIPPED;
            set_reason(res, "not usable here: %s", msg[0] ? msg : oomb_strerror(rc));
            goto out;
        }
    }

    msg[0] = '\0';
    oomb_tracker_set_phase(&r->tracker, OOMB_PHASE_OTHER);
    int64_t t_start = oomb_now_ns();
    rc = d->create(&r->host, &state, msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    if (rc != OOMB_OK) {
        fail_outcome(r, "create", rc, msg);
        goto out;
    }
    created = 1;

    const int64_t warm = r->info.warmup_steps, meas = r->info.measured_steps;
    if (res->calib_ns && oomb_calib_init(&cal) != OOMB_OK) {
        res->outcome = OOMB_OUTCOME_ERROR;
        set_reason(res, "out of memory for the calibration buffers");
        goto out;
    }
    int64_t wait0 = 0;
    if (res->wait_ns)
        shares = calloc((size_t)(meas > 0 ? meas : 1), sizeof *shares);
    int wait_ok = shares != NULL;
    for (int64_t s = 0; s < warm + meas; s++) {
        r->step = s;
        oomb_tracker_set_step(&r->tracker, (int32_t)s);
        /* Outside the step's marks: reading /proc costs tens of us. */
        int64_t wall0 = 0;
        if (s >= warm && wait_ok) {
            wait_ok = (wait0 = oomb_sched_wait_ns()) >= 0;
            wall0 = oomb_now_ns();
        }
        r->backend->timer_reset(r->backend->ops.ctx);
        r->n_marks = 0;
        r->in_step = 1;
        add_mark(r, OOMB_PHASE_OTHER);
        oomb_tracker_set_phase(&r->tracker, OOMB_PHASE_OTHER);
        msg[0] = '\0';
        rc = d->step(state, s, msg, sizeof msg);
        msg[sizeof msg - 1] = '\0';
        int src = r->backend->sync(r->backend->ops.ctx);
        add_mark(r, OOMB_PHASE_OTHER);
        r->in_step = 0;
        if (s >= warm && wait_ok) {
            int64_t wall = oomb_now_ns() - wall0, wait1 = oomb_sched_wait_ns();
            if (wait1 >= wait0 && wall > 0) {
                double share = (double)(wait1 - wait0) / ((double)wall * res->threads);
                res->wait_ns[s - warm] = wait1 - wait0;
                shares[s - warm] = share < 1 ? share : 1;
            } else {
                wait_ok = 0; /* not measurable: no share at all */
            }
        }
        if (rc != OOMB_OK) {
            char where[48];
            snprintf(where, sizeof where, "step %lld", (long long)s);
            fail_outcome(r, where, rc, msg);
            goto out;
        }
        if (src != OOMB_OK) {
            res->outcome = OOMB_OUTCOME_ERROR;
            set_reason(res, "step %lld: %s", (long long)s,
                       r->backend->ops.last_error(r->backend->ops.ctx));
            goto out;
        }
        if (s >= warm) {
            int64_t ph[OOMB_PHASE_COUNT], data_ns;
            int i = (int)(s - warm);
            res->step_ns[i] = resolve_step(r, ph, &data_ns);
            if (res->data_ns)
                res->data_ns[i] = data_ns;
            for (int q = 0; q < OOMB_PHASE_COUNT; q++)
                res->phase_ns[q][i] = ph[q];
            res->n_steps = i + 1;
        }
        if (j->allocator.conf.empty_cache == OOMB_EMPTY_CACHE_STEP)
            oomb_tracker_empty_cache(&r->tracker);
        /* The reference GEMM right after the step (outside its timing), in
         * warm-up too, so that both are warm when measuring starts. */
        if (res->calib_ns) {
            int64_t c = oomb_calib_measure(&cal);
            if (s >= warm)
                res->calib_ns[s - warm] = c;
        }
    }
    oomb_tracker_set_step(&r->tracker, -1);
    r->tracker.stats->reserved_end = r->tracker.stats->cache.reserved;
    if (oomb_instr_rec_collect(&r->instr, (int)meas, &res->instr, msg, sizeof msg) != OOMB_OK) {
        res->outcome = OOMB_OUTCOME_ERROR;
        set_reason(res, "instruction counts: %s", msg);
        goto out;
    }
    if (wait_ok && meas > 0)
        res->cpu_wait_share = median_in_place(shares, (int)meas);
    else {
        free(res->wait_ns);
        res->wait_ns = NULL;
    }
    free(shares);
    shares = NULL;
    if (d->finish) {
        msg[0] = '\0';
        rc = d->finish(state, msg, sizeof msg);
        msg[sizeof msg - 1] = '\0';
        if (rc != OOMB_OK) {
            fail_outcome(r, "finish", rc, msg);
            goto out;
        }
    }
    if (r->info.mode == OOMB_MODE_TRAIN && r->info.eval_samples > 0) {
        if (!d->evaluate) {
            res->eval_note = oomb_strdup("the plugin has no evaluate callback (ABI 1.1)");
        } else {
            msg[0] = '\0';
            oomb_tracker_set_phase(&r->tracker, OOMB_PHASE_OTHER);
            rc = d->evaluate(state, msg, sizeof msg);
            msg[sizeof msg - 1] = '\0';
            if (rc == OOMB_OK)
                rc = r->backend->sync(r->backend->ops.ctx);
            if (rc != OOMB_OK) {
                fail_outcome(r, "evaluate", rc, msg[0] ? msg : oomb_strerror(rc));
                goto out;
            }
            if (!res->has_eval)
                res->eval_note = oomb_strdup("evaluate returned without reporting");
        }
    }
    res->run_seconds = (double)(oomb_now_ns() - t_start) * 1e-9;
    res->outcome = OOMB_OUTCOME_OK;
out:
    free(shares);
    oomb_calib_free(&cal);
    if (created)
        d->destroy(state);
    oomb_pipeline_stop(r->pipe); /* before the backend its slots came from */
    r->pipe = NULL;
    if (r->backend && r->tracker.slots) {
        uint64_t leaked = oomb_tracker_release_all(&r->tracker, r->hook_ptrs, r->n_hook_ptrs);
        if (leaked) {
            h_report_metric(r, "leaked_bytes", (double)leaked);
            fprintf(stderr, "oombench: %s: plugin left %llu bytes allocated after destroy\n",
                    j->spec->label, (unsigned long long)leaked);
        }
    }
    oomb_plugin_close(p);
}

static void fill_memory(struct oomb_run *r)
{
    struct oomb_run_result *res = r->res;
    const struct oomb_tracker_stats *s = r->tracker.stats;
    res->peak_bytes = s->peak_total;
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        res->peak_by_tag[t] = s->peak[t];
    oomb_tracker_report_spaces(s, res);
    if (s->oom_hit) {
        res->oom_request_bytes = s->oom_request;
        res->oom_in_use_bytes = s->oom_in_use;
    }
    oomb_tracker_report_cache(s, r->job->allocator.kind, &r->job->allocator.conf, res);
    res->pipeline_kind = (int)r->job->pipeline.kind;
    res->pipeline_prefetch = r->job->pipeline.prefetch;
    res->pipeline_pinned = staging_space(r) == OOMB_SPACE_HOST_PINNED;
    res->input_dataset_bytes = s->input_dataset_bytes;
    res->input_staging_bytes = s->input_staging_bytes;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        res->host_peak_rss_bytes = (uint64_t)ru.ru_maxrss * 1024;
    if (r->backend && r->backend->device_mem) {
        struct oomb_device_mem dm = {0};
        if (r->backend->device_mem(r->backend->ops.ctx, &dm) == OOMB_OK && dm.valid) {
            res->device_mem_valid = 1;
            res->device_peak_bytes = dm.peak_bytes;
            res->device_reserved_peak_bytes = dm.reserved_peak_bytes;
            res->device_mem_method = oomb_strdup(dm.method ? dm.method : "");
        }
    }
    if (r->tracker.n_events > 0) {
        res->events = r->tracker.events;
        res->n_events = r->tracker.n_events;
        r->tracker.events = NULL;
        r->tracker.n_events = r->tracker.cap_events = 0;
    }
}

int oomb_child_main(const struct oomb_job *job, struct oomb_tracker_stats *shared,
                    const char *result_path)
{
    struct oomb_results out = {0};
    struct oomb_run r = {0};
    r.job = job;
    r.train_file.fd = r.test_file.fd = -1;
    r.tracker.stats = shared;
    memset(shared, 0, sizeof *shared);
    fill_info(&r);
    /* Before the backend and the plugin exist, so that both see it. */
    int threads = oomb_blas_set_threads(job->threads > 0 ? job->threads : 1);

    struct oomb_run_result *res = oomb_results_add_run(&out);
    if (!res)
        return 3;
    r.res = res;
    res->n_losses = (int)(job->sc->warmup_steps + job->measured_steps);
    res->losses = malloc((size_t)res->n_losses * sizeof *res->losses);
    res->step_ns = calloc((size_t)job->measured_steps, sizeof *res->step_ns);
    if (job->calibrate && !(res->calib_ns = calloc((size_t)job->measured_steps, sizeof(int64_t))))
        return 3;
    for (int q = 0; q < OOMB_PHASE_COUNT; q++)
        res->phase_ns[q] = calloc((size_t)job->measured_steps, sizeof(int64_t));
    res->data_ns = calloc((size_t)job->measured_steps, sizeof(int64_t));
    if (!res->losses || !res->step_ns)
        return 3;
    for (int i = 0; i < res->n_losses; i++)
        res->losses[i] = NAN;
    res->threads = threads;
    res->wait_ns = calloc((size_t)job->measured_steps, sizeof *res->wait_ns);

    oomb_instr_rec_init(&r.instr);
    if (r.instr.active) /* counted on one thread, whatever --threads said */
        res->threads = oomb_blas_set_threads(1);
    drive(&r);
    oomb_instr_rec_free(&r.instr);

    fill_memory(&r);
    if (r.acc_total > 0) {
        res->has_accuracy = 1;
        res->accuracy = (double)r.acc_correct / (double)r.acc_total;
    }
    if (res->n_losses > 0)
        res->final_loss = res->losses[res->n_losses - 1];
    res->has_numerics = 1; /* the tensor deviations travel to the parent (NaN: n/a) */
    if (job->is_reference && res->outcome == OOMB_OUTCOME_OK && !job->dry_run)
        save_final_weights(&r);
    res->dry_run = job->dry_run;
    if (r.backend) {
        /* The parent never touches the device (CUDA does not survive fork):
         * it learns what the device is from here. */
        const struct oomb_device_info *di = &r.backend->info;
        out.device_backend = oomb_strdup(di->backend ? di->backend : "");
        out.device_name = oomb_strdup(di->name ? di->name : "");
        out.device_driver = oomb_strdup(di->driver ? di->driver : "");
        out.device_runtime = oomb_strdup(di->runtime ? di->runtime : "");
        r.backend->destroy(r.backend); /* frees its workspaces through the hook */
    if (r.host_backend)
        r.host_backend->destroy(r.host_backend);
    }
    oomb_tracker_free(&r.tracker);
    oomb_cachealloc_destroy(r.cache); /* after the backend returned its workspaces */
    oomb_data_free(&r.data);
    free(r.batch_x);
    free(r.batch_y);
    oomb_dataset_free(&r.train_set);
    oomb_dataset_free(&r.test_set);
    oomb_dataset_file_close(&r.train_file);
    oomb_dataset_file_close(&r.test_file);
    free(r.gather_x);
    free(r.gather_y);
    free(r.marks);

    char err[512];
    int rc = oomb_results_write(&out, result_path, err, sizeof err);
    oomb_results_free(&out);
    if (rc != OOMB_OK) {
        fprintf(stderr, "oombench: %s\n", err);
        return 3;
    }
    return 0;
}
