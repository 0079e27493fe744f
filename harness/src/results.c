/*
 * Results of an invocation: their lifecycle, and their JSON form
 * ("oombench-results/1", see docs/results-format.md).
 *
 * Writing builds a jansson tree and dumps it to a temp file next to the
 * target, then fsyncs and renames, so a results file on disk is always either
 * the old one or the complete new one. Reading is tolerant of fields it does
 * not know (newer writers may add them) and strict about the schema string
 * and about the type of the fields it does know.
 *
 * Byte counts are uint64_t in memory and JSON integers on disk. jansson keeps
 * integers as long long, so counts round-trip exactly up to 2^63-1; a larger
 * count is refused by the writer rather than silently corrupted.
 */
#include "results.h"
#include "instr.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- names ---- */

static const char *const outcome_names[OOMB_OUTCOME_COUNT] = {
    "ok", "oom", "crash", "timeout", "error", "skipped", "not_applicable",
};

static const char *const tag_names[OOMB_TAG_COUNT] = {
    "weights", "grads", "optimizer", "activations", "workspace", "other",
};

/* The results' names of the host memory counters (index 0: both host spaces). */
static const char *const host_space_keys[OOMB_SPACE_COUNT] = {"host", "host_pageable",
                                                              "host_pinned"};

static const char *const phase_names[OOMB_PHASE_COUNT] = {
    "other",
    "forward",
    "backward",
    "update",
};

const char *oomb_outcome_name(enum oomb_outcome o)
{
    if ((int)o < 0 || o >= OOMB_OUTCOME_COUNT)
        return NULL;
    return outcome_names[o];
}

int oomb_outcome_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < OOMB_OUTCOME_COUNT; i++)
        if (strcmp(name, outcome_names[i]) == 0)
            return i;
    return -1;
}

const char *oomb_tag_name(enum oomb_tag t)
{
    if ((int)t < 0 || t >= OOMB_TAG_COUNT)
        return NULL;
    return tag_names[t];
}

int64_t oomb_results_when(const struct oomb_results *r)
{
    if (r->revision_time > 0)
        return r->revision_time;
    int y, mo, d, h, mi, sec;
    if (!r->created || sscanf(r->created, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6 ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return 0;
    /* days from 1970-01-01 to y-mo-d (proleptic Gregorian) */
    y -= mo <= 2;
    const int64_t era = y / 400, yoe = y - era * 400;
    const int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const int64_t days = era * 146097 + doe - 719468;
    return days * 86400 + h * 3600 + mi * 60 + sec;
}

const char *oomb_phase_name(enum oomb_phase p)
{
    if ((int)p < 0 || p >= OOMB_PHASE_COUNT)
        return NULL;
    return phase_names[p];
}

static const char *const check_status_names[] = {"pass", "fail", "skipped"};
#define CHECK_STATUS_COUNT 3

static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static const char *mode_name(enum oomb_mode m)
{
    switch (m) {
    case OOMB_MODE_TRAIN:
        return "train";
    case OOMB_MODE_INFER:
        return "infer";
    }
    return NULL;
}

static const char *backend_name(enum oomb_backend b)
{
    switch (b) {
    case OOMB_BACKEND_CPU:
        return "cpu";
    case OOMB_BACKEND_CUDA:
        return "cuda";
    }
    return NULL;
}

/* --------------------------------------------------------- lifecycle ---- */

static void stats_set_nan(struct oomb_stats *s)
{
    s->median = s->mean = s->stddev = s->min = s->max = NAN;
    s->p05 = s->p95 = s->ci_low = s->ci_high = NAN;
}

struct oomb_run_result *oomb_results_add_run(struct oomb_results *r)
{
    if (r->n_runs < 0 || r->n_runs >= INT_MAX)
        return NULL;
    /* Grows by one: runs are at most a few hundred and this keeps `runs`
     * an exactly-sized array whoever else built it. */
    struct oomb_run_result *runs = realloc(r->runs, ((size_t)r->n_runs + 1) * sizeof(*runs));
    if (!runs)
        return NULL;
    r->runs = runs;
    struct oomb_run_result *run = &runs[r->n_runs++];
    memset(run, 0, sizeof(*run));
    /* NAN is "not available" everywhere a 0 would be a plausible value. */
    run->loss_rel_err = NAN;
    run->grad_rel_err = NAN;
    run->output_rel_err = NAN;
    run->weight_rel_err = NAN;
    run->final_loss = NAN;
    run->accuracy = NAN;
    run->accuracy_delta = NAN;
    run->test_accuracy = NAN;
    run->test_loss = NAN;
    run->test_accuracy_delta = NAN;
    run->run_seconds = NAN;
    run->samples_per_s = NAN;
    run->cpu_wait_share = NAN;
    stats_set_nan(&run->step_stats);
    for (int p = 0; p < OOMB_PHASE_COUNT; p++)
        stats_set_nan(&run->phase_stats[p]);
    stats_set_nan(&run->data_stats);
    return run;
}

double oomb_run_metric(const struct oomb_run_result *run, const char *name)
{
    for (int i = 0; run && i < run->n_metrics; i++)
        if (run->metrics[i].name && strcmp(run->metrics[i].name, name) == 0)
            return run->metrics[i].value;
    return NAN;
}

int oomb_run_is_other_model(const struct oomb_run_result *run)
{
    return !isnan(oomb_run_metric(run, "student_weight_bytes"));
}

void oomb_run_result_free(struct oomb_run_result *run)
{
    if (!run)
        return;
    free(run->scenario);
    free(run->scenario_digest);
    free(run->strategy);
    free(run->plugin);
    free(run->plugin_path);
    for (int i = 0; i < run->n_params; i++) {
        if (run->param_keys)
            free(run->param_keys[i]);
        if (run->param_values)
            free(run->param_values[i]);
    }
    free(run->param_keys);
    free(run->param_values);
    free(run->reason);
    free(run->eval_note);
    free(run->device_mem_method);
    free(run->step_ns);
    free(run->calib_ns);
    free(run->wait_ns);
    oomb_instr_destroy(run->instr);
    for (int p = 0; p < OOMB_PHASE_COUNT; p++)
        free(run->phase_ns[p]);
    free(run->data_ns);
    free(run->losses);
    for (int i = 0; i < run->n_metrics; i++)
        free(run->metrics[i].name);
    free(run->metrics);
    free(run->events);
    memset(run, 0, sizeof(*run));
}

void oomb_results_free(struct oomb_results *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_runs; i++)
        oomb_run_result_free(&r->runs[i]);
    free(r->runs);
    for (int i = 0; r->checks && i < r->n_checks; i++) {
        free(r->checks[i].scenario);
        free(r->checks[i].expr);
        free(r->checks[i].op);
        free(r->checks[i].message);
    }
    free(r->checks);
    free(r->tool_version);
    free(r->build_id);
    free(r->revision);
    free(r->revision_from);
    free(r->created);
    free(r->host_name);
    free(r->host_os);
    free(r->host_cpu);
    free(r->device_class);
    free(r->device_backend);
    free(r->device_name);
    free(r->device_driver);
    free(r->device_runtime);
    free(r->blas_library);
    free(r->blas_version);
    free(r->blas_config);
    free(r->blas_kernel);
    free(r->blas_parallel);
    free(r->cpu_isa);
    for (int i = 0; i < r->n_env; i++) {
        if (r->env_names)
            free(r->env_names[i]);
        if (r->env_values)
            free(r->env_values[i]);
    }
    free(r->env_names);
    free(r->env_values);
    memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------- write ---- */

/* Builder state: one flag instead of a check after every call. */
struct jw {
    int oom;     /* a jansson allocation failed */
    int too_big; /* a byte count above 2^63-1 */
    const char *big_field;
    int big_run;
};

static void put(struct jw *w, json_t *obj, const char *key, json_t *val)
{
    /* json_object_set_new releases val on failure, also for a NULL obj. */
    if (!val || json_object_set_new(obj, key, val) != 0)
        w->oom = 1;
}

static void append(struct jw *w, json_t *arr, json_t *val)
{
    if (!val || json_array_append_new(arr, val) != 0)
        w->oom = 1;
}

/* jansson accepts only valid UTF-8; a reason may hold raw bytes from a
 * crashed child, so invalid sequences are replaced with '?'. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int len = u[i] < 0x80             ? 1
                  : (u[i] & 0xE0) == 0xC0 ? 2
                  : (u[i] & 0xF0) == 0xE0 ? 3
                  : (u[i] & 0xF8) == 0xF0 ? 4
                                          : 0;
        int ok = len > 0 && i + (size_t)len <= n;
        for (int k = 1; ok && k < len; k++)
            ok = (u[i + k] & 0xC0) == 0x80;
        if (ok) {
            /* jansson also rejects overlong forms and surrogates: let it judge. */
            json_t *probe = json_stringn(s + i, (size_t)len);
            ok = probe != NULL;
            json_decref(probe);
        }
        if (ok) {
            memcpy(copy + i, s + i, (size_t)len);
            i += (size_t)len;
        } else {
            copy[i++] = '?';
        }
    }
    copy[n] = '\0';
    j = json_string(copy);
    free(copy);
    return j;
}

/* NaN and infinities have no JSON token: they are written as null. */
static json_t *jnum(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *jbytes(struct jw *w, uint64_t v, const char *field, int run)
{
    if (v > (uint64_t)INT64_MAX) {
        if (!w->too_big) {
            w->too_big = 1;
            w->big_field = field;
            w->big_run = run;
        }
        return json_integer(0);
    }
    return json_integer((json_int_t)v);
}

static void put_stats(struct jw *w, json_t *obj, const struct oomb_stats *s)
{
    put(w, obj, "median", jnum(s->median));
    put(w, obj, "mean", jnum(s->mean));
    put(w, obj, "stddev", jnum(s->stddev));
    put(w, obj, "min", jnum(s->min));
    put(w, obj, "max", jnum(s->max));
    put(w, obj, "p05", jnum(s->p05));
    put(w, obj, "p95", jnum(s->p95));
    json_t *ci = json_array();
    append(w, ci, jnum(s->ci_low));
    append(w, ci, jnum(s->ci_high));
    put(w, obj, "ci95", ci);
}

static json_t *samples_array(struct jw *w, const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        append(w, a, json_integer(v[i]));
    return a;
}

static json_t *run_to_json(struct jw *w, const struct oomb_run_result *run, int idx)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    put(w, o, "scenario", jstr(run->scenario));
    put(w, o, "scenario_digest", jstr(run->scenario_digest ? run->scenario_digest : ""));
    put(w, o, "seq", json_integer(run->seq));
    put(w, o, "strategy", jstr(run->strategy));
    put(w, o, "plugin", jstr(run->plugin));
    put(w, o, "plugin_path", jstr(run->plugin_path));

    json_t *params = json_object();
    for (int i = 0; params && i < run->n_params; i++) {
        const char *k = run->param_keys && run->param_keys[i] ? run->param_keys[i] : "";
        const char *v = run->param_values ? run->param_values[i] : NULL;
        json_t *key = jstr(k); /* object keys must be valid UTF-8 too */
        if (!key) {
            w->oom = 1;
            break;
        }
        put(w, params, json_string_value(key), jstr(v));
        json_decref(key);
    }
    put(w, o, "params", params);

    const char *m = mode_name(run->mode), *b = backend_name(run->backend);
    put(w, o, "mode", m ? json_string(m) : json_null());
    put(w, o, "backend", b ? json_string(b) : json_null());
    if (run->dry_run)
        put(w, o, "dry_run", json_true());
    put(w, o, "batch", json_integer(run->batch));
    const char *oc = oomb_outcome_name(run->outcome);
    put(w, o, "outcome", json_string(oc ? oc : "error"));
    put(w, o, "reason", jstr(run->reason ? run->reason : ""));

    /* memory */
    json_t *mem = json_object();
    put(w, mem, "peak_bytes", jbytes(w, run->peak_bytes, "memory.peak_bytes", idx));
    json_t *bytag = json_object();
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        put(w, bytag, tag_names[t], jbytes(w, run->peak_by_tag[t], "memory.peak_by_tag", idx));
    put(w, mem, "peak_by_tag", bytag);
    put(w, mem, "host_peak_rss_bytes",
        jbytes(w, run->host_peak_rss_bytes, "memory.host_peak_rss_bytes", idx));
    put(w, mem, "budget_bytes", jbytes(w, run->budget_bytes, "memory.budget_bytes", idx));
    /* the host spaces and the copies between spaces */
    json_t *spaces = json_object();
    for (int sp = 0; sp < OOMB_SPACE_COUNT; sp++) {
        json_t *one = json_object(), *tags = json_object();
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            put(w, tags, tag_names[t],
                jbytes(w, run->space_peak_by_tag[sp][t], "memory.spaces.peak_by_tag", idx));
        put(w, one, "peak_bytes", jbytes(w, run->space_peak[sp], "memory.spaces.peak_bytes", idx));
        put(w, one, "peak_by_tag", tags);
        put(w, spaces, host_space_keys[sp], one);
    }
    put(w, mem, "spaces", spaces);
    json_t *xfer = json_object();
    put(w, xfer, "to_host_bytes", jbytes(w, run->to_host_bytes, "memory.transfers", idx));
    put(w, xfer, "to_device_bytes", jbytes(w, run->to_device_bytes, "memory.transfers", idx));
    put(w, xfer, "copies", jbytes(w, run->n_copies, "memory.transfers", idx));
    put(w, xfer, "copy_ns", json_integer(run->copy_ns));
    if (run->has_copy_hidden)
        put(w, xfer, "hidden_share", jnum(run->copy_hidden_share));
    put(w, mem, "transfers", xfer);
    if (run->outcome == OOMB_OUTCOME_OOM) {
        json_t *oom = json_object();
        put(w, oom, "request_bytes",
            jbytes(w, run->oom_request_bytes, "memory.oom.request_bytes", idx));
        put(w, oom, "in_use_bytes",
            jbytes(w, run->oom_in_use_bytes, "memory.oom.in_use_bytes", idx));
        put(w, oom, "cause", json_string(run->oom_by_reserved ? "reserved" : "allocated"));
        if (run->oom_by_reserved) {
            const struct oomb_cachealloc_stats *a = &run->alloc;
            put(w, oom, "reserved_bytes", jbytes(w, a->oom_reserved, "memory.oom", idx));
            put(w, oom, "allocated_bytes", jbytes(w, a->oom_allocated, "memory.oom", idx));
            put(w, oom, "largest_free_bytes", jbytes(w, a->oom_largest_free, "memory.oom", idx));
            put(w, oom, "segment_bytes", jbytes(w, a->oom_segment, "memory.oom", idx));
        }
        put(w, mem, "oom", oom);
    }
    {
        /* the input pipeline's host memory */
        json_t *in = json_object();
        put(w, in, "pipeline", json_string(run->pipeline_kind == 1 ? "streaming" : "resident"));
        put(w, in, "prefetch", json_integer(run->pipeline_prefetch));
        put(w, in, "pinned", json_boolean(run->pipeline_pinned));
        put(w, in, "dataset_bytes", jbytes(w, run->input_dataset_bytes, "memory.input", idx));
        put(w, in, "staging_bytes", jbytes(w, run->input_staging_bytes, "memory.input", idx));
        put(w, mem, "input", in);
    }
    if (run->alloc_kind == 1) {
        /* allocator: caching (cachealloc.h) */
        const struct oomb_cachealloc_stats *a = &run->alloc;
        const struct oomb_cachealloc_conf *c = &run->alloc_conf;
        json_t *al = json_object(), *opt = json_object();
        put(w, al, "kind", json_string("caching"));
        put(w, opt, "max_split_size_mb",
            c->max_split_size ? json_integer((json_int_t)(c->max_split_size >> 20)) : json_null());
        put(w, opt, "roundup_power2_divisions", json_integer(c->roundup_power2_divisions));
        put(w, opt, "expandable_segments", json_boolean(c->expandable_segments));
        put(w, opt, "garbage_collection_threshold",
            c->gc_threshold > 0 ? json_real(c->gc_threshold) : json_null());
        put(w, opt, "empty_cache",
            json_string(c->empty_cache == OOMB_EMPTY_CACHE_STEP ? "step" : "never"));
        put(w, al, "options", opt);
        put(w, al, "reserved_peak_bytes", jbytes(w, a->reserved_peak, "memory.allocator", idx));
        put(w, al, "reserved_end_bytes", jbytes(w, run->reserved_end, "memory.allocator", idx));
        put(w, al, "allocated_peak_bytes",
            jbytes(w, a->allocated_peak, "memory.allocator", idx));
        put(w, al, "requested_at_reserved_peak_bytes",
            jbytes(w, a->requested_at_reserved_peak, "memory.allocator", idx));
        put(w, al, "fragmentation_bytes",
            jbytes(w, a->reserved_peak - a->requested_at_reserved_peak, "memory.allocator", idx));
        put(w, al, "largest_free_bytes", jbytes(w, a->largest_free, "memory.allocator", idx));
        put(w, al, "segment_allocs", jbytes(w, a->n_segment_allocs, "memory.allocator", idx));
        put(w, al, "segment_frees", jbytes(w, a->n_segment_frees, "memory.allocator", idx));
        put(w, al, "cache_flushes", jbytes(w, a->n_flushes, "memory.allocator", idx));
        put(w, al, "empty_cache_calls", jbytes(w, a->n_empty_cache, "memory.allocator", idx));
        put(w, mem, "allocator", al);
    }
    if (run->device_mem_valid) {
        json_t *dev = json_object();
        put(w, dev, "peak_bytes",
            jbytes(w, run->device_peak_bytes, "memory.device.peak_bytes", idx));
        put(w, dev, "method", jstr(run->device_mem_method ? run->device_mem_method : ""));
        if (run->device_reserved_peak_bytes)
            put(w, dev, "reserved_peak_bytes",
                jbytes(w, run->device_reserved_peak_bytes, "memory.device", idx));
        put(w, mem, "device", dev);
    }
    put(w, o, "memory", mem);

    /* time */
    int n_steps = run->step_ns ? run->n_steps : 0;
    json_t *time = json_object();
    put(w, time, "unit", json_string("ns"));
    put(w, time, "samples", samples_array(w, run->step_ns, n_steps));
    if (n_steps > 0)
        put_stats(w, time, &run->step_stats);
    json_t *phases = json_object();
    /* Forward, backward, update, then other: the order a reader expects. */
    static const int order[OOMB_PHASE_COUNT] = {OOMB_PHASE_FORWARD, OOMB_PHASE_BACKWARD,
                                                OOMB_PHASE_UPDATE, OOMB_PHASE_OTHER};
    for (int i = 0; i < OOMB_PHASE_COUNT; i++) {
        int p = order[i];
        if (!run->phase_ns[p] || n_steps <= 0)
            continue;
        json_t *ph = json_object();
        put(w, ph, "samples", samples_array(w, run->phase_ns[p], n_steps));
        put_stats(w, ph, &run->phase_stats[p]);
        put(w, phases, phase_names[p], ph);
    }
    if (run->data_ns && n_steps > 0) {
        /* waiting for the input (the pipeline), left out of the others */
        json_t *ph = json_object();
        put(w, ph, "samples", samples_array(w, run->data_ns, n_steps));
        put_stats(w, ph, &run->data_stats);
        put(w, phases, "data", ph);
    }
    put(w, time, "phases", phases);
    /* The reference GEMM timed after each step (run --calibrate). */
    if (run->calib_ns && n_steps > 0) {
        json_t *cal = json_object();
        put(w, cal, "samples", samples_array(w, run->calib_ns, n_steps));
        struct oomb_stats cs;
        oomb_stats_compute(run->calib_ns, n_steps, &cs);
        put(w, cal, "median", json_real(cs.median));
        put(w, time, "calibration", cal);
    }
    /* Run-queue wait of the run's threads per step (Linux schedstat). */
    if (run->wait_ns && n_steps > 0) {
        json_t *cw = json_object();
        put(w, cw, "samples", samples_array(w, run->wait_ns, n_steps));
        put(w, cw, "share", jnum(run->cpu_wait_share));
        put(w, time, "cpu_wait", cw);
    }
    /* Wall time of the whole run, seconds; only when it was measured. */
    if (isfinite(run->run_seconds))
        put(w, time, "run_seconds", json_real(run->run_seconds));
    put(w, o, "time", time);
    if (run->threads > 0)
        put(w, o, "threads", json_integer(run->threads));

    if (run->instr) { /* run --instructions */
        json_t *ins = oomb_instr_to_json(run->instr);
        if (!ins)
            w->oom = 1;
        put(w, o, "instructions", ins);
    }

    json_t *tp = json_object();
    put(w, tp, "samples_per_s", jnum(run->samples_per_s));
    put(w, o, "throughput", tp);

    if (run->has_numerics > 0) {
        json_t *num = json_object();
        put(w, num, "loss_rel_err", jnum(run->loss_rel_err));
        put(w, num, "grad_rel_err", jnum(run->grad_rel_err));
        put(w, num, "output_rel_err", jnum(run->output_rel_err));
        put(w, num, "weight_rel_err", jnum(run->weight_rel_err));
        put(w, o, "numerics", num);
    }

    json_t *q = json_object();
    put(w, q, "final_loss", jnum(run->final_loss));
    json_t *losses = json_array();
    for (int i = 0; losses && run->losses && i < run->n_losses; i++)
        append(w, losses, jnum(run->losses[i]));
    put(w, q, "losses", losses);
    if (run->has_accuracy)
        put(w, q, "accuracy", jnum(run->accuracy));
    put(w, q, "accuracy_delta", jnum(run->accuracy_delta));
    if (run->has_eval) {
        put(w, q, "test_accuracy", jnum(run->test_accuracy));
        put(w, q, "test_loss", jnum(run->test_loss));
        put(w, q, "test_accuracy_delta", jnum(run->test_accuracy_delta));
        put(w, q, "eval_samples", json_integer(run->eval_samples));
    }
    if (run->eval_note && run->eval_note[0])
        put(w, q, "eval_note", jstr(run->eval_note));
    put(w, o, "quality", q);

    json_t *metrics = json_object();
    for (int i = 0; metrics && run->metrics && i < run->n_metrics; i++) {
        json_t *key = jstr(run->metrics[i].name ? run->metrics[i].name : "");
        if (!key) {
            w->oom = 1;
            break;
        }
        put(w, metrics, json_string_value(key), jnum(run->metrics[i].value));
        json_decref(key);
    }
    put(w, o, "metrics", metrics);

    json_t *tl = json_object();
    json_t *events = json_array();
    for (int i = 0; events && run->events && i < run->n_events; i++) {
        const struct oomb_event *e = &run->events[i];
        json_t *ev = json_array();
        append(w, ev, json_integer(e->t_ns));
        append(w, ev, json_integer(e->delta));
        append(w, ev, jbytes(w, e->in_use, "timeline.events", idx));
        const char *tn = oomb_tag_name((enum oomb_tag)e->tag);
        const char *pn = oomb_phase_name((enum oomb_phase)e->phase);
        append(w, ev, json_string(tn ? tn : "other"));
        append(w, ev, json_string(pn ? pn : "other"));
        append(w, ev, json_integer(e->step));
        if (run->alloc_kind == 1)
            append(w, ev, jbytes(w, e->reserved, "timeline.events", idx));
        append(w, events, ev);
    }
    put(w, tl, "events", events);
    put(w, o, "timeline", tl);
    return o;
}

static json_t *results_to_json(struct jw *w, const struct oomb_results *r)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    put(w, root, "schema", json_string(OOMB_RESULTS_SCHEMA));
    put(w, root, "tool_version", jstr(r->tool_version));
    put(w, root, "build_id", jstr(r->build_id ? r->build_id : ""));
    json_t *src = json_object();
    put(w, src, "revision", jstr(r->revision ? r->revision : ""));
    put(w, src, "from", jstr(r->revision_from ? r->revision_from : ""));
    put(w, src, "time", r->revision_time > 0 ? json_integer(r->revision_time) : json_null());
    put(w, root, "source", src);
    if (r->shard_count > 0) {
        json_t *sh = json_object();
        put(w, sh, "index", json_integer(r->shard_index));
        put(w, sh, "count", json_integer(r->shard_count));
        put(w, root, "shard", sh);
    }
    put(w, root, "created", jstr(r->created));

    json_t *host = json_object();
    put(w, host, "name", jstr(r->host_name));
    put(w, host, "os", jstr(r->host_os));
    put(w, host, "cpu", jstr(r->host_cpu));
    put(w, host, "cores", json_integer(r->host_cores));
    put(w, host, "mem_bytes", jbytes(w, r->host_mem_bytes, "host.mem_bytes", -1));
    put(w, root, "host", host);

    json_t *dev = json_object();
    put(w, dev, "class", jstr(r->device_class));
    put(w, dev, "backend", jstr(r->device_backend));
    put(w, dev, "name", jstr(r->device_name));
    put(w, dev, "driver", jstr(r->device_driver));
    put(w, dev, "runtime", jstr(r->device_runtime));
    put(w, root, "device", dev);

    json_t *blas = json_object();
    put(w, blas, "library", jstr(r->blas_library));
    put(w, blas, "version", jstr(r->blas_version));
    put(w, blas, "config", jstr(r->blas_config));
    put(w, blas, "kernel", jstr(r->blas_kernel));
    put(w, blas, "parallel", jstr(r->blas_parallel));
    put(w, blas, "cpu_isa", jstr(r->cpu_isa));
    json_t *env = json_object();
    for (int i = 0; env && i < r->n_env; i++)
        put(w, env, r->env_names[i], jstr(r->env_values[i]));
    put(w, blas, "env", env);
    put(w, root, "blas", blas);

    json_t *runs = json_array();
    for (int i = 0; runs && r->runs && i < r->n_runs; i++)
        append(w, runs, run_to_json(w, &r->runs[i], i));
    put(w, root, "runs", runs);

    json_t *checks = json_array();
    for (int i = 0; checks && r->checks && i < r->n_checks; i++) {
        const struct oomb_check_record *c = &r->checks[i];
        json_t *o = json_object();
        put(w, o, "scenario", jstr(c->scenario));
        put(w, o, "expr", jstr(c->expr));
        const char *m = mode_name(c->mode);
        put(w, o, "mode", m ? json_string(m) : json_null());
        put(w, o, "batch", json_integer(c->batch));
        int st = (int)c->status;
        put(w, o, "status",
            json_string(st >= 0 && st < CHECK_STATUS_COUNT ? check_status_names[st] : "fail"));
        put(w, o, "lhs", jnum(c->lhs));
        put(w, o, "op", jstr(c->op));
        put(w, o, "rhs", jnum(c->rhs));
        put(w, o, "message", jstr(c->message ? c->message : ""));
        append(w, checks, o);
    }
    put(w, root, "checks", checks);
    return root;
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* mkdir -p of the directory part of `path` (no-op when it has none). */
static int make_parent_dirs(const char *path, char *err, size_t err_len)
{
    char *dir = strdup(path);
    if (!dir) {
        set_err(err, err_len, "%s: out of memory", path);
        return OOMB_ERR_IO;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        free(dir);
        return OOMB_OK;
    }
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        int end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
                set_err(err, err_len, "%s: cannot create directory %s: %s", path, dir,
                        strerror(errno));
                free(dir);
                return OOMB_ERR_IO;
            }
            if (end)
                break;
            *p = '/';
        }
    }
    free(dir);
    return OOMB_OK;
}

/* fsync the directory holding `path` so that the rename itself is durable;
 * best effort: some file systems refuse fsync on a directory. */
static void sync_parent_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir)
        d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int oomb_results_write(const struct oomb_results *r, const char *path, char *err, size_t err_len)
{
    struct jw w = {0};
    json_t *root = NULL;
    char *tmp = NULL;
    FILE *f = NULL;
    int fd = -1;
    int rc = OOMB_ERR_IO;

    root = results_to_json(&w, r);
    if (!root || w.oom) {
        set_err(err, err_len, "%s: out of memory while building the results", path);
        goto fail;
    }
    if (w.too_big) {
        if (w.big_run >= 0)
            set_err(err, err_len, "%s: run %d: %s exceeds 2^63-1 bytes", path, w.big_run,
                    w.big_field);
        else
            set_err(err, err_len, "%s: %s exceeds 2^63-1 bytes", path, w.big_field);
        rc = OOMB_ERR_INVALID;
        goto fail;
    }
    rc = make_parent_dirs(path, err, err_len);
    if (rc != OOMB_OK)
        goto fail;
    rc = OOMB_ERR_IO;

    /* The writer's pid in the name lets a later start tell a file left by a
     * killed writer from one being written (oomb_proc_clean_stale_results). */
    size_t tlen = strlen(path) + sizeof(".tmp.-2147483648.XXXXXX");
    tmp = malloc(tlen);
    if (!tmp) {
        set_err(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    snprintf(tmp, tlen, "%s.tmp.%d.XXXXXX", path, (int)getpid());
    fd = mkstemp(tmp);
    if (fd < 0) {
        set_err(err, err_len, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(tmp);
        tmp = NULL; /* nothing to unlink */
        goto fail;
    }
    /* mkstemp makes the file 0600; a results file is meant to be shared. */
    (void)fchmod(fd, 0644);
    f = fdopen(fd, "w");
    if (!f) {
        set_err(err, err_len, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1; /* owned by f now */
    errno = 0;
    if (json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) != 0 ||
        fputc('\n', f) == EOF || fflush(f) != 0) {
        set_err(err, err_len, "%s: write failed: %s", tmp, errno ? strerror(errno) : "error");
        goto fail;
    }
    if (fsync(fileno(f)) != 0) {
        set_err(err, err_len, "%s: fsync failed: %s", tmp, strerror(errno));
        goto fail;
    }
    int close_rc = fclose(f);
    f = NULL;
    if (close_rc != 0) {
        set_err(err, err_len, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, err_len, "%s: cannot rename temporary file into place: %s", path,
                strerror(errno));
        goto fail;
    }
    sync_parent_dir(path);
    free(tmp);
    json_decref(root);
    return OOMB_OK;

fail:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    json_decref(root);
    return rc;
}

/* -------------------------------------------------------------- read ---- */

struct jr {
    const char *path;
    char *err;
    size_t err_len;
    int failed;      /* first error wins; later ones are not reported */
    char ident[224]; /* the run being read ("run 3 (scenario 'x', strategy 'y')"), or "" */
    int child;       /* a child's one-run file: the run's identity is the parent's */
};

static void rd_fail(struct jr *rd, const char *where, const char *key, const char *what)
{
    if (rd->failed)
        return;
    rd->failed = 1;
    set_err(rd->err, rd->err_len, "%s: %s%sfield '%s%s%s': %s", rd->path, rd->ident,
            rd->ident[0] ? ": " : "", where ? where : "", where && *where ? "." : "", key, what);
}

/* A name for an error message: at most 48 bytes, control characters as
 * '?' (a name must not move the terminal's cursor or colour it). */
static void printable(const char *s, char *buf, size_t len)
{
    oomb_term_text(s, 48, buf, len);
}

/* A required member: the value, or NULL (and the error) when it is
 * missing or null. `why` says when it is required ("" for always). */
static json_t *rd_need(struct jr *rd, json_t *obj, const char *where, const char *key,
                       const char *why)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        char what[96];
        snprintf(what, sizeof what, "missing (required%s%s)", why && *why ? " " : "",
                 why ? why : "");
        rd_fail(rd, where, key, what);
        return NULL;
    }
    return v;
}

/* A finite number outside [lo, hi] is an error; NaN (null, missing) passes. */
static double rd_range(struct jr *rd, double x, const char *where, const char *key, double lo,
                       double hi)
{
    if (!isnan(x) && (x < lo || x > hi)) {
        char what[96];
        snprintf(what, sizeof what, "%g is out of range [%g, %g]", x, lo, hi);
        rd_fail(rd, where, key, what);
    }
    return x;
}

static void rd_oom(struct jr *rd)
{
    if (rd->failed)
        return;
    rd->failed = 1;
    set_err(rd->err, rd->err_len, "%s: out of memory", rd->path);
}

/* A string field; "" for a missing field or null, so that every string of a
 * read result is non-NULL. */
static char *rd_str(struct jr *rd, json_t *obj, const char *where, const char *key)
{
    json_t *v = json_object_get(obj, key);
    const char *s = "";
    if (v && json_is_string(v))
        s = json_string_value(v);
    else if (v && !json_is_null(v))
        rd_fail(rd, where, key, "expected a string");
    char *copy = strdup(s);
    if (!copy)
        rd_oom(rd);
    return copy;
}

static double rd_num_value(struct jr *rd, json_t *v, const char *where, const char *key)
{
    if (!v || json_is_null(v))
        return NAN;
    if (!json_is_number(v)) {
        rd_fail(rd, where, key, "expected a number or null");
        return NAN;
    }
    return json_number_value(v);
}

static double rd_num(struct jr *rd, json_t *obj, const char *where, const char *key)
{
    return rd_num_value(rd, json_object_get(obj, key), where, key);
}

static int64_t rd_int(struct jr *rd, json_t *obj, const char *where, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        rd_fail(rd, where, key, "expected an integer");
        return 0;
    }
    return json_integer_value(v);
}

static uint64_t rd_bytes_value(struct jr *rd, json_t *v, const char *where, const char *key)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        rd_fail(rd, where, key, "expected a non-negative integer byte count");
        return 0;
    }
    return (uint64_t)json_integer_value(v);
}

static uint64_t rd_bytes(struct jr *rd, json_t *obj, const char *where, const char *key)
{
    return rd_bytes_value(rd, json_object_get(obj, key), where, key);
}

/* An optional sub-object: NULL when missing or null, an error otherwise. */
static json_t *rd_obj(struct jr *rd, json_t *obj, const char *where, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_object(v)) {
        rd_fail(rd, where, key, "expected an object");
        return NULL;
    }
    return v;
}

static json_t *rd_arr(struct jr *rd, json_t *obj, const char *where, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_array(v)) {
        rd_fail(rd, where, key, "expected an array");
        return NULL;
    }
    return v;
}

/* Statistics of times in ns: each one null or a number >= 0. */
static void rd_stats(struct jr *rd, json_t *obj, const char *where, struct oomb_stats *s)
{
#define STAT(f) (s->f = rd_range(rd, rd_num(rd, obj, where, #f), where, #f, 0, HUGE_VAL))
    STAT(median);
    STAT(mean);
    STAT(stddev);
    STAT(min);
    STAT(max);
    STAT(p05);
    STAT(p95);
#undef STAT
    s->ci_low = s->ci_high = NAN;
    json_t *ci = rd_arr(rd, obj, where, "ci95");
    if (ci) {
        if (json_array_size(ci) != 2) {
            rd_fail(rd, where, "ci95", "expected [low, high]");
            return;
        }
        s->ci_low = rd_num_value(rd, json_array_get(ci, 0), where, "ci95");
        s->ci_high = rd_num_value(rd, json_array_get(ci, 1), where, "ci95");
    }
}

/* An array of at most OOMB_RESULTS_MAX_SAMPLES non-negative integers (times
 * in ns); *n receives its length. NULL (and *n = 0) when absent. */
static int64_t *rd_samples(struct jr *rd, json_t *arr, const char *where, const char *key, int *n)
{
    *n = 0;
    if (!arr)
        return NULL;
    size_t len = json_array_size(arr);
    if (len > OOMB_RESULTS_MAX_SAMPLES) {
        char what[96];
        snprintf(what, sizeof what, "%zu samples, at most %d allowed", len,
                 OOMB_RESULTS_MAX_SAMPLES);
        rd_fail(rd, where, key, what);
        return NULL;
    }
    int64_t *v = malloc((len ? len : 1) * sizeof(*v));
    if (!v) {
        rd_oom(rd);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        json_t *x = json_array_get(arr, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0) {
            char what[96];
            snprintf(what, sizeof what, "sample %zu: expected a non-negative integer (ns)", i);
            rd_fail(rd, where, key, what);
            free(v);
            return NULL;
        }
        v[i] = json_integer_value(x);
    }
    *n = (int)len;
    return v;
}

/* time.phases.<name> when present: its samples (n_steps of them) and stats. */
static void rd_phase(struct jr *rd, json_t *phases, const char *sub, const char *name,
                     int n_steps, int64_t **samples, struct oomb_stats *st)
{
    char sub2[112];
    snprintf(sub2, sizeof(sub2), "%s.phases", sub);
    json_t *ph = rd_obj(rd, phases, sub2, name);
    if (!ph)
        return;
    snprintf(sub2, sizeof(sub2), "%s.phases.%s", sub, name);
    int n = 0;
    *samples = rd_samples(rd, rd_arr(rd, ph, sub2, "samples"), sub2, "samples", &n);
    if (*samples && n != n_steps)
        rd_fail(rd, sub2, "samples", "length differs from time.samples");
    rd_stats(rd, ph, sub2, st);
}

static void rd_run(struct jr *rd, json_t *o, struct oomb_run_result *run, const char *where,
                   size_t index)
{
    char sub[96];

    run->scenario = rd_str(rd, o, where, "scenario");
    run->scenario_digest = rd_str(rd, o, where, "scenario_digest");
    run->seq = rd_int(rd, o, where, "seq");
    if (run->seq < 0)
        rd_fail(rd, where, "seq", "must not be negative");
    run->strategy = rd_str(rd, o, where, "strategy");
    if (!rd->failed) {
        char sc[64], st[64];
        printable(run->scenario, sc, sizeof sc);
        printable(run->strategy, st, sizeof st);
        snprintf(rd->ident, sizeof rd->ident, "run %zu (scenario '%s', strategy '%s')", index, sc,
                 st);
    }
    /* rd_str() reads a missing name as "": tell the two apart. */
    if (!rd->failed && !rd->child && !run->scenario[0] && rd_need(rd, o, where, "scenario", ""))
        rd_fail(rd, where, "scenario", "empty");
    if (!rd->failed && !rd->child && !run->strategy[0] && rd_need(rd, o, where, "strategy", ""))
        rd_fail(rd, where, "strategy", "empty");
    run->plugin = rd_str(rd, o, where, "plugin");
    run->plugin_path = rd_str(rd, o, where, "plugin_path");

    json_t *params = rd_obj(rd, o, where, "params");
    if (params && json_object_size(params) > 0) {
        size_t n = json_object_size(params);
        run->param_keys = calloc(n, sizeof(char *));
        run->param_values = calloc(n, sizeof(char *));
        if (!run->param_keys || !run->param_values) {
            rd_oom(rd);
            return;
        }
        snprintf(sub, sizeof(sub), "%s.params", where);
        const char *k;
        json_t *v;
        json_object_foreach(params, k, v)
        {
            char num[64];
            const char *text = NULL;
            if (json_is_string(v))
                text = json_string_value(v);
            else if (json_is_integer(v)) {
                snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                text = num;
            } else if (json_is_real(v)) {
                snprintf(num, sizeof(num), "%.17g", json_real_value(v));
                text = num;
            } else {
                rd_fail(rd, sub, k, "expected a string");
                return;
            }
            run->param_keys[run->n_params] = strdup(k);
            run->param_values[run->n_params] = strdup(text);
            run->n_params++;
            if (!run->param_keys[run->n_params - 1] || !run->param_values[run->n_params - 1]) {
                rd_oom(rd);
                return;
            }
        }
    }

    json_t *v = json_object_get(o, "outcome");
    int oc = v && json_is_string(v) ? oomb_outcome_parse(json_string_value(v)) : -1;
    if (oc < 0) {
        rd_fail(rd, where, "outcome",
                v && !json_is_null(v) ? "not a known outcome (ok, oom, crash, timeout, error, "
                                        "skipped, not_applicable)"
                                      : "missing (required)");
        return;
    }
    run->outcome = (enum oomb_outcome)oc;
    int ok = run->outcome == OOMB_OUTCOME_OK;

    v = rd->child ? json_object_get(o, "mode") : rd_need(rd, o, where, "mode", "");
    if (v && json_is_null(v))
        v = NULL;
    if (v && json_is_string(v) && strcmp(json_string_value(v), "train") == 0)
        run->mode = OOMB_MODE_TRAIN;
    else if (v && json_is_string(v) && strcmp(json_string_value(v), "infer") == 0)
        run->mode = OOMB_MODE_INFER;
    else if (v)
        rd_fail(rd, where, "mode", "expected \"train\" or \"infer\"");
    v = rd->child ? json_object_get(o, "backend") : rd_need(rd, o, where, "backend", "");
    if (v && json_is_null(v))
        v = NULL;
    if (v && json_is_string(v) && strcmp(json_string_value(v), "cpu") == 0)
        run->backend = OOMB_BACKEND_CPU;
    else if (v && json_is_string(v) && strcmp(json_string_value(v), "cuda") == 0)
        run->backend = OOMB_BACKEND_CUDA;
    else if (v)
        rd_fail(rd, where, "backend", "expected \"cpu\" or \"cuda\"");
    v = json_object_get(o, "dry_run");
    if (v && !json_is_boolean(v))
        rd_fail(rd, where, "dry_run", "expected true or false");
    run->dry_run = json_is_true(v);
    if (!rd->child && rd_need(rd, o, where, "batch", "")) {
        run->batch = rd_int(rd, o, where, "batch");
        if (!rd->failed && (run->batch < 1 || run->batch > OOMB_RESULTS_MAX_BATCH)) {
            char what[96];
            snprintf(what, sizeof what, "%lld is out of range [1, %d]", (long long)run->batch,
                     OOMB_RESULTS_MAX_BATCH);
            rd_fail(rd, where, "batch", what);
        }
    }
    run->reason = rd_str(rd, o, where, "reason");

    /* memory */
    snprintf(sub, sizeof(sub), "%s.memory", where);
    json_t *mem = rd_obj(rd, o, where, "memory");
    if (ok && !mem)
        rd_need(rd, o, where, "memory", "for an ok run");
    if (ok && mem)
        rd_need(rd, mem, sub, "peak_bytes", "for an ok run");
    if (mem) {
        run->peak_bytes = rd_bytes(rd, mem, sub, "peak_bytes");
        run->host_peak_rss_bytes = rd_bytes(rd, mem, sub, "host_peak_rss_bytes");
        run->budget_bytes = rd_bytes(rd, mem, sub, "budget_bytes");
        json_t *bytag = rd_obj(rd, mem, sub, "peak_by_tag");
        if (bytag) {
            char sub2[112];
            snprintf(sub2, sizeof(sub2), "%s.peak_by_tag", sub);
            for (int t = 0; t < OOMB_TAG_COUNT; t++)
                run->peak_by_tag[t] = rd_bytes(rd, bytag, sub2, tag_names[t]);
        }
        json_t *spaces = rd_obj(rd, mem, sub, "spaces");
        for (int sp = 0; spaces && sp < OOMB_SPACE_COUNT; sp++) {
            char sub2[112], sub3[128];
            snprintf(sub2, sizeof(sub2), "%s.spaces", sub);
            json_t *one = rd_obj(rd, spaces, sub2, host_space_keys[sp]);
            if (!one)
                continue;
            snprintf(sub2, sizeof(sub2), "%s.spaces.%s", sub, host_space_keys[sp]);
            run->space_peak[sp] = rd_bytes(rd, one, sub2, "peak_bytes");
            json_t *tags = rd_obj(rd, one, sub2, "peak_by_tag");
            snprintf(sub3, sizeof(sub3), "%s.peak_by_tag", sub2);
            for (int t = 0; tags && t < OOMB_TAG_COUNT; t++)
                run->space_peak_by_tag[sp][t] = rd_bytes(rd, tags, sub3, tag_names[t]);
        }
        json_t *xfer = rd_obj(rd, mem, sub, "transfers");
        if (xfer) {
            char sub2[112];
            snprintf(sub2, sizeof(sub2), "%s.transfers", sub);
            run->to_host_bytes = rd_bytes(rd, xfer, sub2, "to_host_bytes");
            run->to_device_bytes = rd_bytes(rd, xfer, sub2, "to_device_bytes");
            run->n_copies = rd_bytes(rd, xfer, sub2, "copies");
            run->copy_ns = (int64_t)rd_bytes(rd, xfer, sub2, "copy_ns");
            json_t *hs = json_object_get(xfer, "hidden_share");
            if (json_is_number(hs)) {
                run->copy_hidden_share = json_number_value(hs);
                run->has_copy_hidden = run->copy_hidden_share >= 0 && run->copy_hidden_share <= 1;
            }
        }
        json_t *oom = rd_obj(rd, mem, sub, "oom");
        if (oom) {
            char sub2[112];
            snprintf(sub2, sizeof(sub2), "%s.oom", sub);
            run->oom_request_bytes = rd_bytes(rd, oom, sub2, "request_bytes");
            run->oom_in_use_bytes = rd_bytes(rd, oom, sub2, "in_use_bytes");
            char *cause = rd_str(rd, oom, sub2, "cause");
            if (cause && cause[0] && strcmp(cause, "allocated") != 0 &&
                strcmp(cause, "reserved") != 0)
                rd_fail(rd, sub2, "cause", "expected \"allocated\" or \"reserved\"");
            run->oom_by_reserved = cause && strcmp(cause, "reserved") == 0;
            free(cause);
            run->alloc.oom_reserved = rd_bytes(rd, oom, sub2, "reserved_bytes");
            run->alloc.oom_allocated = rd_bytes(rd, oom, sub2, "allocated_bytes");
            run->alloc.oom_largest_free = rd_bytes(rd, oom, sub2, "largest_free_bytes");
            run->alloc.oom_segment = rd_bytes(rd, oom, sub2, "segment_bytes");
        }
        json_t *in = rd_obj(rd, mem, sub, "input");
        if (in) {
            char sub2[112];
            snprintf(sub2, sizeof(sub2), "%s.input", sub);
            char *kind = rd_str(rd, in, sub2, "pipeline");
            if (kind && kind[0] && strcmp(kind, "resident") != 0 && strcmp(kind, "streaming") != 0)
                rd_fail(rd, sub2, "pipeline", "expected \"resident\" or \"streaming\"");
            run->pipeline_kind = kind && strcmp(kind, "streaming") == 0;
            free(kind);
            int64_t pf = rd_int(rd, in, sub2, "prefetch");
            if (pf < 0 || pf > 1024)
                rd_fail(rd, sub2, "prefetch", "expected 0 to 1024");
            else
                run->pipeline_prefetch = (int)pf;
            run->pipeline_pinned = json_is_true(json_object_get(in, "pinned"));
            run->input_dataset_bytes = rd_bytes(rd, in, sub2, "dataset_bytes");
            run->input_staging_bytes = rd_bytes(rd, in, sub2, "staging_bytes");
        }
        json_t *al = rd_obj(rd, mem, sub, "allocator");
        if (al) {
            char sub2[112], sub3[128];
            snprintf(sub2, sizeof(sub2), "%s.allocator", sub);
            char *kind = rd_str(rd, al, sub2, "kind");
            if (!kind || strcmp(kind, "caching") != 0)
                rd_fail(rd, sub2, "kind", "expected \"caching\"");
            free(kind);
            run->alloc_kind = 1;
            struct oomb_cachealloc_stats *a = &run->alloc;
            a->reserved_peak = rd_bytes(rd, al, sub2, "reserved_peak_bytes");
            run->reserved_end = rd_bytes(rd, al, sub2, "reserved_end_bytes");
            a->allocated_peak = rd_bytes(rd, al, sub2, "allocated_peak_bytes");
            a->requested_at_reserved_peak =
                rd_bytes(rd, al, sub2, "requested_at_reserved_peak_bytes");
            if (a->requested_at_reserved_peak > a->reserved_peak)
                rd_fail(rd, sub2, "requested_at_reserved_peak_bytes",
                        "above reserved_peak_bytes");
            a->largest_free = rd_bytes(rd, al, sub2, "largest_free_bytes");
            a->n_segment_allocs = rd_bytes(rd, al, sub2, "segment_allocs");
            a->n_segment_frees = rd_bytes(rd, al, sub2, "segment_frees");
            a->n_flushes = rd_bytes(rd, al, sub2, "cache_flushes");
            a->n_empty_cache = rd_bytes(rd, al, sub2, "empty_cache_calls");
            json_t *opt = rd_obj(rd, al, sub2, "options");
            if (opt) {
                struct oomb_cachealloc_conf *c = &run->alloc_conf;
                snprintf(sub3, sizeof(sub3), "%s.options", sub2);
                uint64_t mb = rd_bytes(rd, opt, sub3, "max_split_size_mb");
                if (mb > ((uint64_t)1 << 30))
                    rd_fail(rd, sub3, "max_split_size_mb", "above 2^30");
                else
                    c->max_split_size = mb << 20;
                int64_t d = rd_int(rd, opt, sub3, "roundup_power2_divisions");
                if (d < 0 || d > 64)
                    rd_fail(rd, sub3, "roundup_power2_divisions", "expected 0 to 64");
                else
                    c->roundup_power2_divisions = (int)d;
                c->expandable_segments = json_is_true(json_object_get(opt, "expandable_segments"));
                double g = rd_num(rd, opt, sub3, "garbage_collection_threshold");
                c->gc_threshold = g > 0 && g < 1 ? g : 0;
                char *ec = rd_str(rd, opt, sub3, "empty_cache");
                c->empty_cache = ec && strcmp(ec, "step") == 0 ? OOMB_EMPTY_CACHE_STEP
                                                               : OOMB_EMPTY_CACHE_NEVER;
                free(ec);
            }
        }
        json_t *dev = rd_obj(rd, mem, sub, "device");
        if (dev) {
            char sub2[112];
            snprintf(sub2, sizeof(sub2), "%s.device", sub);
            run->device_mem_valid = 1;
            run->device_peak_bytes = rd_bytes(rd, dev, sub2, "peak_bytes");
            run->device_mem_method = rd_str(rd, dev, sub2, "method");
            run->device_reserved_peak_bytes = rd_bytes(rd, dev, sub2, "reserved_peak_bytes");
        }
    }
    if (!run->device_mem_method) {
        run->device_mem_method = strdup("");
        if (!run->device_mem_method)
            rd_oom(rd);
    }

    /* time */
    snprintf(sub, sizeof(sub), "%s.time", where);
    json_t *time = rd_obj(rd, o, where, "time");
    if (ok && !time)
        rd_need(rd, o, where, "time", "for an ok run");
    if (ok && time && rd_need(rd, time, sub, "samples", "for an ok run")) {
        json_t *smp = json_object_get(time, "samples");
        if (json_is_array(smp) && json_array_size(smp) == 0)
            rd_fail(rd, sub, "samples", "empty (an ok run has at least one measured step)");
    }
    if (time) {
        v = json_object_get(time, "unit");
        if (v && (!json_is_string(v) || strcmp(json_string_value(v), "ns") != 0))
            rd_fail(rd, sub, "unit", "expected \"ns\"");
        run->step_ns =
            rd_samples(rd, rd_arr(rd, time, sub, "samples"), sub, "samples", &run->n_steps);
        rd_stats(rd, time, sub, &run->step_stats);
        json_t *phases = rd_obj(rd, time, sub, "phases");
        for (int p = 0; phases && p < OOMB_PHASE_COUNT; p++)
            rd_phase(rd, phases, sub, phase_names[p], run->n_steps, &run->phase_ns[p],
                     &run->phase_stats[p]);
        if (phases) /* waiting for the input */
            rd_phase(rd, phases, sub, "data", run->n_steps, &run->data_ns, &run->data_stats);
        run->run_seconds = rd_num(rd, time, sub, "run_seconds");
        json_t *cal = json_object_get(time, "calibration");
        if (cal) {
            char sub2[112];
            snprintf(sub2, sizeof(sub2), "%s.calibration", sub);
            int n = 0;
            if (!json_is_object(cal))
                rd_fail(rd, sub, "calibration", "expected an object");
            else
                run->calib_ns =
                    rd_samples(rd, rd_arr(rd, cal, sub2, "samples"), sub2, "samples", &n);
            if (run->calib_ns && n != run->n_steps)
                rd_fail(rd, sub2, "samples", "length differs from time.samples");
        }
        json_t *cw = rd_obj(rd, time, sub, "cpu_wait");
        if (cw) {
            char sub2[112];
            snprintf(sub2, sizeof(sub2), "%s.cpu_wait", sub);
            int n = 0;
            run->wait_ns = rd_samples(rd, rd_arr(rd, cw, sub2, "samples"), sub2, "samples", &n);
            if (run->wait_ns && n != run->n_steps)
                rd_fail(rd, sub2, "samples", "length differs from time.samples");
            run->cpu_wait_share = rd_num(rd, cw, sub2, "share");
            if (run->cpu_wait_share < 0 || run->cpu_wait_share > 1)
                rd_fail(rd, sub2, "share", "expected a fraction between 0 and 1");
        }
        run->run_seconds = rd_range(rd, run->run_seconds, sub, "run_seconds", 0, HUGE_VAL);
        if (run->step_stats.min > run->step_stats.max)
            rd_fail(rd, sub, "min", "greater than max");
    }
    int64_t threads = rd_int(rd, o, where, "threads");
    if (threads < 0 || threads > OOMB_RESULTS_MAX_THREADS) {
        char what[96];
        snprintf(what, sizeof what, "%lld is out of range [0, %d]", (long long)threads,
                 OOMB_RESULTS_MAX_THREADS);
        rd_fail(rd, where, "threads", what);
    }
    run->threads = (int)threads;

    if (!rd->failed) { /* run --instructions; absent in other files */
        char ierr[512];
        if (oomb_instr_from_json(json_object_get(o, "instructions"), run->n_steps, &run->instr,
                                 ierr, sizeof ierr) != OOMB_OK) {
            rd->failed = 1;
            set_err(rd->err, rd->err_len, "%s: %s: %s", rd->path, where, ierr);
        }
    }

    json_t *tp = rd_obj(rd, o, where, "throughput");
    if (tp) {
        snprintf(sub, sizeof(sub), "%s.throughput", where);
        run->samples_per_s =
            rd_range(rd, rd_num(rd, tp, sub, "samples_per_s"), sub, "samples_per_s", 0, HUGE_VAL);
    }

    json_t *num = rd_obj(rd, o, where, "numerics");
    if (num) {
        snprintf(sub, sizeof(sub), "%s.numerics", where);
        run->has_numerics = 1;
#define REL(f) (run->f = rd_range(rd, rd_num(rd, num, sub, #f), sub, #f, 0, HUGE_VAL))
        REL(loss_rel_err);
        REL(grad_rel_err);
        REL(output_rel_err);
        REL(weight_rel_err);
#undef REL
    }

    json_t *q = rd_obj(rd, o, where, "quality");
    if (q) {
        snprintf(sub, sizeof(sub), "%s.quality", where);
        run->final_loss = rd_num(rd, q, sub, "final_loss");
        json_t *losses = rd_arr(rd, q, sub, "losses");
        size_t n = losses ? json_array_size(losses) : 0;
        if (n > OOMB_RESULTS_MAX_SAMPLES) {
            char what[96];
            snprintf(what, sizeof what, "%zu values, at most %d allowed", n,
                     OOMB_RESULTS_MAX_SAMPLES);
            rd_fail(rd, sub, "losses", what);
            return;
        }
        if (n > 0) {
            run->losses = malloc(n * sizeof(double));
            if (!run->losses) {
                rd_oom(rd);
                return;
            }
            for (size_t i = 0; i < n; i++)
                run->losses[i] = rd_num_value(rd, json_array_get(losses, i), sub, "losses");
            run->n_losses = (int)n;
        }
        if (json_object_get(q, "accuracy")) {
            run->has_accuracy = 1;
            run->accuracy = rd_range(rd, rd_num(rd, q, sub, "accuracy"), sub, "accuracy", 0, 1);
        }
        run->accuracy_delta =
            rd_range(rd, rd_num(rd, q, sub, "accuracy_delta"), sub, "accuracy_delta", -1, 1);
        if (json_object_get(q, "test_accuracy")) {
            run->has_eval = 1;
            run->test_accuracy =
                rd_range(rd, rd_num(rd, q, sub, "test_accuracy"), sub, "test_accuracy", 0, 1);
            run->test_loss =
                rd_range(rd, rd_num(rd, q, sub, "test_loss"), sub, "test_loss", 0, HUGE_VAL);
            run->test_accuracy_delta = rd_range(rd, rd_num(rd, q, sub, "test_accuracy_delta"), sub,
                                                "test_accuracy_delta", -1, 1);
            run->eval_samples = rd_int(rd, q, sub, "eval_samples");
            if (run->eval_samples < 0)
                rd_fail(rd, sub, "eval_samples", "expected a non-negative integer");
        }
        run->eval_note = rd_str(rd, q, sub, "eval_note");
    }
    if (!run->eval_note) {
        run->eval_note = strdup("");
        if (!run->eval_note)
            rd_oom(rd);
    }

    json_t *metrics = rd_obj(rd, o, where, "metrics");
    if (metrics && json_object_size(metrics) > 0) {
        snprintf(sub, sizeof(sub), "%s.metrics", where);
        run->metrics = calloc(json_object_size(metrics), sizeof(*run->metrics));
        if (!run->metrics) {
            rd_oom(rd);
            return;
        }
        const char *k;
        json_object_foreach(metrics, k, v)
        {
            struct oomb_metric *m = &run->metrics[run->n_metrics];
            m->value = rd_num_value(rd, v, sub, k);
            m->name = strdup(k);
            run->n_metrics++;
            if (!m->name) {
                rd_oom(rd);
                return;
            }
        }
    }

    snprintf(sub, sizeof(sub), "%s.timeline", where);
    json_t *tl = rd_obj(rd, o, where, "timeline");
    json_t *events = tl ? rd_arr(rd, tl, sub, "events") : NULL;
    size_t n_ev = events ? json_array_size(events) : 0;
    if (n_ev > OOMB_RESULTS_MAX_EVENTS) {
        char what[96];
        snprintf(what, sizeof what, "%zu events, at most %d allowed", n_ev,
                 OOMB_RESULTS_MAX_EVENTS);
        rd_fail(rd, sub, "events", what);
        return;
    }
    if (n_ev > 0) {
        run->events = calloc(n_ev, sizeof(*run->events));
        if (!run->events) {
            rd_oom(rd);
            return;
        }
        for (size_t i = 0; i < n_ev; i++) {
            json_t *ev = json_array_get(events, i);
            json_t *t = json_array_get(ev, 0), *d = json_array_get(ev, 1),
                   *u = json_array_get(ev, 2), *tg = json_array_get(ev, 3),
                   *ph = json_array_get(ev, 4), *st = json_array_get(ev, 5);
            if (!json_is_array(ev) || !json_is_integer(t) || !json_is_integer(d) ||
                !json_is_integer(u) || json_integer_value(u) < 0 || !json_is_string(tg) ||
                !json_is_string(ph) || !json_is_integer(st) || json_integer_value(t) < 0 ||
                json_integer_value(st) < -1 || json_integer_value(st) > INT32_MAX) {
                char what[128];
                snprintf(what, sizeof what,
                         "event %zu: expected [t_ns >= 0, delta, in_use >= 0, tag, phase, "
                         "step >= -1]",
                         i);
                rd_fail(rd, sub, "events", what);
                return;
            }
            struct oomb_event *e = &run->events[i];
            e->t_ns = json_integer_value(t);
            e->delta = json_integer_value(d);
            e->in_use = (uint64_t)json_integer_value(u);
            /* Names a newer writer may add read as "other". */
            int ti = name_index(tag_names, OOMB_TAG_COUNT, json_string_value(tg));
            int pi = name_index(phase_names, OOMB_PHASE_COUNT, json_string_value(ph));
            e->tag = (uint8_t)(ti < 0 ? OOMB_TAG_OTHER : ti);
            e->phase = (uint8_t)(pi < 0 ? OOMB_PHASE_OTHER : pi);
            e->step = (int32_t)json_integer_value(st);
            json_t *rs = json_array_get(ev, 6); /* reserved: allocator caching */
            if (rs && (!json_is_integer(rs) || json_integer_value(rs) < 0)) {
                char what[96];
                snprintf(what, sizeof what, "event %zu: reserved must be an integer >= 0", i);
                rd_fail(rd, sub, "events", what);
                return;
            }
            e->reserved = rs ? (uint64_t)json_integer_value(rs) : 0;
        }
        run->n_events = (int)n_ev;
    }
}

static int results_read(const char *path, int child, struct oomb_results *r, char *err,
                        size_t err_len)
{
    struct jr rd = {.path = path, .err = err, .err_len = err_len, .child = child};
    json_t *root = NULL;

    memset(r, 0, sizeof(*r));
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, err_len, "%s: %s", path, strerror(errno));
        return OOMB_ERR_IO;
    }
    struct stat fst;
    if (fstat(fileno(f), &fst) == 0 && S_ISDIR(fst.st_mode)) {
        set_err(err, err_len, "%s: is a directory, not a results file", path);
        fclose(f);
        return OOMB_ERR_IO;
    }
    json_error_t jerr;
    root = json_loadf(f, 0, &jerr);
    int read_error = ferror(f);
    fclose(f);
    if (!root) {
        if (read_error) {
            set_err(err, err_len, "%s: read error", path);
            return OOMB_ERR_IO;
        }
        set_err(err, err_len, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return OOMB_ERR_PARSE;
    }
    if (!json_is_object(root)) {
        set_err(err, err_len, "%s: expected a JSON object at the top level", path);
        goto fail;
    }
    json_t *schema = json_object_get(root, "schema");
    if (!schema) {
        set_err(err, err_len, "%s: missing field 'schema' (expected \"%s\")", path,
                OOMB_RESULTS_SCHEMA);
        goto fail;
    }
    if (!json_is_string(schema) || (strcmp(json_string_value(schema), OOMB_RESULTS_SCHEMA) != 0 &&
                                    strcmp(json_string_value(schema), OOMB_RESULTS_SCHEMA_V1) != 0)) {
        set_err(err, err_len, "%s: field 'schema' is %s%s%s, expected \"%s\"", path,
                json_is_string(schema) ? "\"" : "",
                json_is_string(schema) ? json_string_value(schema) : "not a string",
                json_is_string(schema) ? "\"" : "", OOMB_RESULTS_SCHEMA);
        goto fail;
    }

    r->tool_version = rd_str(&rd, root, "", "tool_version");
    r->build_id = rd_str(&rd, root, "", "build_id");
    json_t *source = rd_obj(&rd, root, "", "source");
    if (source) {
        r->revision = rd_str(&rd, source, "source", "revision");
        r->revision_from = rd_str(&rd, source, "source", "from");
        r->revision_time = rd_int(&rd, source, "source", "time");
        if (r->revision_time < 0)
            rd_fail(&rd, "source", "time", "must not be negative");
    }
    json_t *shard = rd_obj(&rd, root, "", "shard");
    if (shard) {
        int64_t si = rd_int(&rd, shard, "shard", "index"), sn = rd_int(&rd, shard, "shard", "count");
        if (sn < 1 || sn > 100000 || si < 1 || si > sn)
            rd_fail(&rd, "", "shard", "index and count must satisfy 1 <= index <= count <= 100000");
        else {
            r->shard_index = (int)si;
            r->shard_count = (int)sn;
        }
    }
    r->created = rd_str(&rd, root, "", "created");
    json_t *host = rd_obj(&rd, root, "", "host");
    r->host_name = rd_str(&rd, host, "host", "name");
    r->host_os = rd_str(&rd, host, "host", "os");
    r->host_cpu = rd_str(&rd, host, "host", "cpu");
    int64_t cores = rd_int(&rd, host, "host", "cores");
    if (cores < 0 || cores > OOMB_RESULTS_MAX_THREADS)
        rd_fail(&rd, "host", "cores", "out of range");
    r->host_cores = (int)cores;
    r->host_mem_bytes = rd_bytes(&rd, host, "host", "mem_bytes");
    json_t *dev = rd_obj(&rd, root, "", "device");
    r->device_class = rd_str(&rd, dev, "device", "class");
    r->device_backend = rd_str(&rd, dev, "device", "backend");
    r->device_name = rd_str(&rd, dev, "device", "name");
    r->device_driver = rd_str(&rd, dev, "device", "driver");
    r->device_runtime = rd_str(&rd, dev, "device", "runtime");
    json_t *blas = rd_obj(&rd, root, "", "blas");
    r->blas_library = rd_str(&rd, blas, "blas", "library");
    r->blas_version = rd_str(&rd, blas, "blas", "version");
    r->blas_config = rd_str(&rd, blas, "blas", "config");
    r->blas_kernel = rd_str(&rd, blas, "blas", "kernel");
    r->blas_parallel = rd_str(&rd, blas, "blas", "parallel");
    r->cpu_isa = rd_str(&rd, blas, "blas", "cpu_isa"); /* "" in files from before it */
    json_t *env = blas ? rd_obj(&rd, blas, "blas", "env") : NULL;
    if (env && json_object_size(env) > 0 && json_object_size(env) <= 64) {
        size_t n = json_object_size(env);
        r->env_names = calloc(n, sizeof(char *));
        r->env_values = calloc(n, sizeof(char *));
        if (!r->env_names || !r->env_values)
            rd_oom(&rd);
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
            if (rd.failed)
                break;
            r->env_names[r->n_env] = strdup(k);
            r->env_values[r->n_env] = rd_str(&rd, env, "blas.env", k);
            if (!r->env_names[r->n_env])
                rd_oom(&rd);
            r->n_env++;
        }
    } else if (env && json_object_size(env) > 64) {
        rd_fail(&rd, "blas", "env", "more than 64 variables");
    }

    json_t *runs = rd_arr(&rd, root, "", "runs");
    if (!runs)
        rd_need(&rd, root, "", "runs", "");
    if (runs && json_array_size(runs) > OOMB_RESULTS_MAX_RUNS) {
        char what[96];
        snprintf(what, sizeof what, "%zu runs, at most %d allowed", json_array_size(runs),
                 OOMB_RESULTS_MAX_RUNS);
        rd_fail(&rd, "", "runs", what);
    }
    for (size_t i = 0; runs && !rd.failed && i < json_array_size(runs); i++) {
        char where[32];
        snprintf(where, sizeof(where), "runs[%zu]", i);
        json_t *o = json_array_get(runs, i);
        if (!json_is_object(o)) {
            set_err(err, err_len, "%s: field '%s': expected an object", path, where);
            goto fail;
        }
        struct oomb_run_result *run = oomb_results_add_run(r);
        if (!run) {
            rd_oom(&rd);
            break;
        }
        rd_run(&rd, o, run, where, i);
        if (!rd.failed)
            rd.ident[0] = '\0';
    }
    json_t *checks = rd_arr(&rd, root, "", "checks");
    size_t n_checks = checks ? json_array_size(checks) : 0;
    if (n_checks > INT_MAX)
        rd_fail(&rd, "", "checks", "too many checks");
    if (!rd.failed && n_checks > 0) {
        r->checks = calloc(n_checks, sizeof(*r->checks));
        if (!r->checks)
            rd_oom(&rd);
    }
    for (size_t i = 0; r->checks && !rd.failed && i < n_checks; i++) {
        char where[32];
        snprintf(where, sizeof(where), "checks[%zu]", i);
        json_t *o = json_array_get(checks, i);
        if (!json_is_object(o)) {
            rd_fail(&rd, "", where, "expected an object");
            break;
        }
        struct oomb_check_record *c = &r->checks[i];
        r->n_checks = (int)i + 1;
        c->scenario = rd_str(&rd, o, where, "scenario");
        c->expr = rd_str(&rd, o, where, "expr");
        c->op = rd_str(&rd, o, where, "op");
        c->message = rd_str(&rd, o, where, "message");
        json_t *v = json_object_get(o, "mode");
        if (v && json_is_string(v) && strcmp(json_string_value(v), "train") == 0)
            c->mode = OOMB_MODE_TRAIN;
        else if (v && json_is_string(v) && strcmp(json_string_value(v), "infer") == 0)
            c->mode = OOMB_MODE_INFER;
        else if (v && !json_is_null(v))
            rd_fail(&rd, where, "mode", "expected \"train\" or \"infer\"");
        c->batch = rd_int(&rd, o, where, "batch");
        if (c->batch < 0 || c->batch > OOMB_RESULTS_MAX_BATCH)
            rd_fail(&rd, where, "batch", "out of range");
        v = json_object_get(o, "status");
        int st = v && json_is_string(v)
                     ? name_index(check_status_names, CHECK_STATUS_COUNT, json_string_value(v))
                     : -1;
        if (st < 0)
            rd_fail(&rd, where, "status", "expected \"pass\", \"fail\" or \"skipped\"");
        c->status = (enum oomb_check_status)(st < 0 ? OOMB_CHECK_FAIL : st);
        c->lhs = rd_num(&rd, o, where, "lhs");
        c->rhs = rd_num(&rd, o, where, "rhs");
    }
    if (rd.failed)
        goto fail;
    json_decref(root);
    return OOMB_OK;

fail:
    json_decref(root);
    oomb_results_free(r);
    return OOMB_ERR_PARSE;
}

int oomb_results_read(const char *path, struct oomb_results *r, char *err, size_t err_len)
{
    return results_read(path, 0, r, err, err_len);
}

int oomb_results_read_child(const char *path, struct oomb_results *r, char *err, size_t err_len)
{
    return results_read(path, 1, r, err, err_len);
}
