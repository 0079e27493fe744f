/*
 * The console summary table (see table.h). Cells of a group are formatted
 * first and measured, then printed, so columns fit their contents whatever
 * the units; widths count UTF-8 code points, not bytes, because strategy
 * labels and reasons may hold any text and the CI column uses "±".
 */
#include "table.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CELL_LEN 256
#define REASON_MAX 48 /* code points shown of a reason */

enum col {
    C_STRATEGY,
    C_OUTCOME,
    C_PEAK,
    C_HEADROOM, /* only in groups with a budget */
    C_RESERVED, /* with C_FRAG: only in groups with allocator: caching */
    C_FRAG,
    C_TAG0, /* OOMB_TAG_COUNT columns */
    C_HOST = C_TAG0 + OOMB_TAG_COUNT, /* host memory peak: only in groups that offload */
    C_DATASET, /* with C_STAGING, C_RSS, C_DWAIT: only in groups with a streaming input */
    C_STAGING,
    C_RSS,
    C_STEP,
    C_DWAIT,
    C_CI,
    C_TPUT,
    C_RUNTIME, /* with C_TACC and C_TDELTA: only in groups with an evaluation */
    C_LOSS,
    C_ACC,
    C_TACC,
    C_TDELTA,
    C_DEV,
    C_REASON,
    C_COUNT
};

static const char *const col_head[C_COUNT] = {
    "strategy", "outcome",  "peak",   "headroom", "reserved", "frag",   "weights", "grads",     "optim",    "activ",
    "wkspace",  "other",    "host",   "data set", "staging", "rss", "step", "data wait", "ci95",    "samples/s", "run time", "loss",
    "acc",      "test acc", "Δ test", "dev",     "reason",
};

static int col_left(int c)
{
    return c == C_STRATEGY || c == C_OUTCOME || c == C_REASON;
}

void oomb_format_bytes(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (!buf || len == 0)
        return;
    if (bytes < 1024) {
        snprintf(buf, len, "%" PRIu64 " B", bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    int u = 0;
    /* Switch unit before the value would print as "1024.0". */
    while (v >= 1023.95 && u < 5) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, len, v < 99.995 ? "%.2f %s" : "%.1f %s", v, units[u]);
}

void oomb_format_ns(double ns, char *buf, size_t len)
{
    if (!buf || len == 0)
        return;
    if (!(ns >= 0) || isinf(ns)) {
        snprintf(buf, len, "-");
        return;
    }
    if (ns < 999.5) {
        snprintf(buf, len, "%.0f ns", ns);
        return;
    }
    static const char *const units[] = {"us", "ms", "s"};
    double v = ns / 1e3;
    int u = 0;
    while (v >= 999.95 && u < 2) {
        v /= 1e3;
        u++;
    }
    snprintf(buf, len, v < 99.995 ? "%.2f %s" : "%.1f %s", v, units[u]);
}

/* Display width of UTF-8 text: one column per code point. */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* Copy s into a cell on one line: control characters become spaces, and
 * more than max code points are cut (on a code point boundary) with "...". */
static void clip(char *dst, size_t len, const char *s, int max)
{
    size_t o = 0;
    int w = 0;
    if (!s)
        s = "";
    if (len < 16) { /* never needed here; keeps the arithmetic below safe */
        if (len)
            dst[0] = '\0';
        return;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c & 0xC0) != 0x80) {
            /* at a code point boundary: room for one more (4 bytes) plus "..."? */
            if (w == max || o + 8 >= len) {
                /* back off to make room for the ellipsis */
                int drop = 0;
                while (o > 0 && drop < 3) {
                    o--;
                    if (((unsigned char)dst[o] & 0xC0) != 0x80)
                        drop++;
                }
                memcpy(dst + o, "...", 3);
                o += 3;
                break;
            }
            w++;
        } else if (o + 5 >= len) {
            break; /* a long run of stray continuation bytes */
        }
        dst[o++] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
    }
    dst[o] = '\0';
}

static const char *outcome_color(enum oomb_outcome o)
{
    switch (o) {
    case OOMB_OUTCOME_OK:
        return "\033[32m";
    case OOMB_OUTCOME_OOM:
    case OOMB_OUTCOME_SKIPPED:
    case OOMB_OUTCOME_NOT_APPLICABLE:
        return "\033[33m";
    default:
        return "\033[31m";
    }
}

static int same_group(const struct oomb_run_result *a, const struct oomb_run_result *b)
{
    const char *sa = a->scenario ? a->scenario : "", *sb = b->scenario ? b->scenario : "";
    return strcmp(sa, sb) == 0 && a->mode == b->mode && a->batch == b->batch;
}

static double max_dev(const struct oomb_run_result *run)
{
    if (run->has_numerics <= 0)
        return NAN;
    const double e[] = {run->loss_rel_err, run->grad_rel_err, run->output_rel_err,
                        run->weight_rel_err};
    double m = NAN;
    for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++)
        if (!isnan(e[i]) && (isnan(m) || e[i] > m))
            m = e[i];
    return m;
}

static void fill_row(char (*cell)[CELL_LEN], const struct oomb_run_result *run)
{
    clip(cell[C_STRATEGY], CELL_LEN, run->strategy, 32);
    if (oomb_run_is_other_model(run)) {
        /* another, smaller model: say so where its numbers are read */
        size_t l = strlen(cell[C_STRATEGY]);
        snprintf(cell[C_STRATEGY] + l, CELL_LEN - l, "%s",
                 oomb_run_metric(run, "teacher_from_none") == 0 ? " [student; untrained teacher]"
                                                                : " [student]");
    }
    const char *on = oomb_outcome_name(run->outcome);
    snprintf(cell[C_OUTCOME], CELL_LEN, "%s", on ? on : "?");

    int has_mem = run->peak_bytes > 0;
    if (has_mem)
        oomb_format_bytes(run->peak_bytes, cell[C_PEAK], CELL_LEN);
    else
        snprintf(cell[C_PEAK], CELL_LEN, "-");
    for (int t = 0; t < OOMB_TAG_COUNT; t++) {
        if (has_mem)
            oomb_format_bytes(run->peak_by_tag[t], cell[C_TAG0 + t], CELL_LEN);
        else
            snprintf(cell[C_TAG0 + t], CELL_LEN, "-");
    }
    /* headroom: the budget less the peak it applies to (reserved with the
     * caching model); an oom run has none */
    uint64_t held = run->alloc_kind == 1 ? run->alloc.reserved_peak : run->peak_bytes;
    if (run->budget_bytes && run->outcome == OOMB_OUTCOME_OK && held <= run->budget_bytes) {
        char b[32];
        oomb_format_bytes(run->budget_bytes - held, b, sizeof b);
        snprintf(cell[C_HEADROOM], CELL_LEN, "%s", b);
    } else if (run->budget_bytes && run->outcome == OOMB_OUTCOME_OOM) {
        snprintf(cell[C_HEADROOM], CELL_LEN, "none");
    } else {
        snprintf(cell[C_HEADROOM], CELL_LEN, "-");
    }
    if (run->alloc_kind == 1 && run->alloc.reserved_peak) {
        oomb_format_bytes(run->alloc.reserved_peak, cell[C_RESERVED], CELL_LEN);
        oomb_format_bytes(run->alloc.reserved_peak - run->alloc.requested_at_reserved_peak,
                          cell[C_FRAG], CELL_LEN);
    } else {
        snprintf(cell[C_RESERVED], CELL_LEN, "-");
        snprintf(cell[C_FRAG], CELL_LEN, "-");
    }
    if (has_mem && run->space_peak[0])
        oomb_format_bytes(run->space_peak[0], cell[C_HOST], CELL_LEN);
    else
        snprintf(cell[C_HOST], CELL_LEN, "-");

    oomb_format_bytes(run->input_dataset_bytes, cell[C_DATASET], CELL_LEN);
    oomb_format_bytes(run->input_staging_bytes, cell[C_STAGING], CELL_LEN);
    if (run->host_peak_rss_bytes)
        oomb_format_bytes(run->host_peak_rss_bytes, cell[C_RSS], CELL_LEN);
    else
        snprintf(cell[C_RSS], CELL_LEN, "-");
    if (run->data_ns && run->n_steps > 0 && isfinite(run->data_stats.median))
        oomb_format_ns(run->data_stats.median, cell[C_DWAIT], CELL_LEN);
    else
        snprintf(cell[C_DWAIT], CELL_LEN, "-");
    const struct oomb_stats *s = &run->step_stats;
    int has_time = run->n_steps > 0 && !isnan(s->median);
    if (has_time)
        oomb_format_ns(s->median, cell[C_STEP], CELL_LEN);
    else
        snprintf(cell[C_STEP], CELL_LEN, "-");
    if (has_time && s->median > 0 && !isnan(s->ci_low) && !isnan(s->ci_high))
        snprintf(cell[C_CI], CELL_LEN, "±%.1f%%",
                 100.0 * 0.5 * (s->ci_high - s->ci_low) / s->median);
    else
        snprintf(cell[C_CI], CELL_LEN, "-");

    double tp = run->samples_per_s;
    if (isfinite(tp))
        snprintf(cell[C_TPUT], CELL_LEN, tp >= 100 ? "%.0f" : "%.2f", tp);
    else
        snprintf(cell[C_TPUT], CELL_LEN, "-");
    if (isfinite(run->final_loss))
        snprintf(cell[C_LOSS], CELL_LEN, "%.4g", run->final_loss);
    else
        snprintf(cell[C_LOSS], CELL_LEN, "-");
    if (run->has_accuracy && isfinite(run->accuracy))
        snprintf(cell[C_ACC], CELL_LEN, "%.2f%%", 100.0 * run->accuracy);
    else
        snprintf(cell[C_ACC], CELL_LEN, "-");
    if (isfinite(run->run_seconds) && run->run_seconds >= 0)
        oomb_format_ns(run->run_seconds * 1e9, cell[C_RUNTIME], CELL_LEN);
    else
        snprintf(cell[C_RUNTIME], CELL_LEN, "-");
    if (run->has_eval && isfinite(run->test_accuracy))
        snprintf(cell[C_TACC], CELL_LEN, "%.2f%%", 100.0 * run->test_accuracy);
    else
        snprintf(cell[C_TACC], CELL_LEN, "-");
    if (run->has_eval && isfinite(run->test_accuracy_delta))
        snprintf(cell[C_TDELTA], CELL_LEN, "%+.2f pp", 100.0 * run->test_accuracy_delta);
    else
        snprintf(cell[C_TDELTA], CELL_LEN, "-");
    double dev = max_dev(run);
    if (isfinite(dev))
        snprintf(cell[C_DEV], CELL_LEN, "%.2e", dev);
    else
        snprintf(cell[C_DEV], CELL_LEN, "-");
    if (run->outcome == OOMB_OUTCOME_OOM && run->oom_request_bytes) {
        /* what was refused and why, in numbers, never cut */
        char q[32], u[32], b[32], x[32], l[32];
        oomb_format_bytes(run->oom_request_bytes, q, sizeof q);
        oomb_format_bytes(run->budget_bytes, b, sizeof b);
        if (run->oom_by_reserved) {
            oomb_format_bytes(run->alloc.oom_reserved, u, sizeof u);
            oomb_format_bytes(run->alloc.oom_segment, x, sizeof x);
            oomb_format_bytes(run->alloc.oom_largest_free, l, sizeof l);
            snprintf(cell[C_REASON], CELL_LEN,
                     "refused %s: reserved %s + a %s segment > budget %s; largest free %s", q,
                     u, x, b, l);
        } else {
            oomb_format_bytes(run->oom_in_use_bytes, u, sizeof u);
            if (run->budget_bytes)
                snprintf(cell[C_REASON], CELL_LEN, "refused %s with %s in use; budget %s", q, u,
                         b);
            else
                snprintf(cell[C_REASON], CELL_LEN, "the device refused %s with %s in use", q, u);
        }
    } else if (run->outcome != OOMB_OUTCOME_OK) {
        clip(cell[C_REASON], CELL_LEN, run->reason, REASON_MAX);
    } else {
        cell[C_REASON][0] = '\0';
    }
}

/* A row is assembled in a buffer so that trailing blanks (empty last cells)
 * can be cut before it is printed. */
struct line {
    char buf[C_COUNT * (CELL_LEN + 16) + 64];
    size_t len;
};

static void line_add(struct line *l, const char *s, int pad_before, int pad_after)
{
    size_t room = sizeof(l->buf) - l->len;
    int n = snprintf(l->buf + l->len, room, "%*s%s%*s", pad_before, "", s, pad_after, "");
    if (n > 0)
        l->len += (size_t)n < room ? (size_t)n : room - 1;
}

static void put_cell(struct line *l, const char *text, int width, int left, const char *color)
{
    int pad = width - text_width(text);
    if (pad < 0)
        pad = 0;
    if (color) {
        char colored[CELL_LEN + 16];
        snprintf(colored, sizeof(colored), "%s%s\033[0m", color, text);
        line_add(l, colored, left ? 0 : pad, left ? pad : 0);
    } else {
        line_add(l, text, left ? 0 : pad, left ? pad : 0);
    }
}

static void line_print(FILE *f, struct line *l)
{
    while (l->len > 0 && l->buf[l->len - 1] == ' ')
        l->len--;
    l->buf[l->len] = '\0';
    fprintf(f, "%s\n", l->buf);
    l->len = 0;
}

static void print_group(FILE *f, const struct oomb_results *r, const int *idx, int n, int color,
                        unsigned *shown)
{
    const struct oomb_run_result *first = &r->runs[idx[0]];
    char scen[CELL_LEN];
    clip(scen, sizeof(scen), first->scenario, 64);
    const char *mode = first->mode == OOMB_MODE_INFER   ? "infer"
                       : first->mode == OOMB_MODE_TRAIN ? "train"
                                                        : "?";
    fprintf(f, "%s (%s, batch %" PRId64 ")\n", scen, mode, first->batch);

    char(*cells)[C_COUNT][CELL_LEN] = calloc((size_t)n, sizeof(*cells));
    if (!cells) {
        fprintf(f, "  (out of memory)\n");
        return;
    }
    int show[C_COUNT];
    int width[C_COUNT];
    for (int c = 0; c < C_COUNT; c++) {
        show[c] = c != C_ACC && c != C_REASON && c != C_RUNTIME && c != C_TACC && c != C_TDELTA &&
                  c != C_HOST && c != C_HEADROOM && c != C_RESERVED && c != C_FRAG &&
                  c != C_DATASET &&
                  c != C_STAGING && c != C_RSS && c != C_DWAIT;
        width[c] = text_width(col_head[c]);
    }
    for (int i = 0; i < n; i++) {
        const struct oomb_run_result *run = &r->runs[idx[i]];
        fill_row(cells[i], run);
        if (run->has_accuracy)
            show[C_ACC] = 1;
        if (run->has_eval)
            show[C_RUNTIME] = show[C_TACC] = show[C_TDELTA] = 1;
        if (run->space_peak[0])
            show[C_HOST] = 1;
        if (run->alloc_kind == 1)
            show[C_RESERVED] = show[C_FRAG] = 1;
        if (run->budget_bytes)
            show[C_HEADROOM] = 1;
        if (oomb_run_is_other_model(run))
            *shown |= 1u << C_COUNT; /* the [student] note */
        if (oomb_run_is_other_model(run) && oomb_run_metric(run, "teacher_from_none") == 0)
            *shown |= 1u << (C_COUNT + 1); /* ... and the untrained teacher's */
        if (run->pipeline_kind == 1)
            show[C_DATASET] = show[C_STAGING] = show[C_RSS] = show[C_DWAIT] = 1;
        if (run->outcome != OOMB_OUTCOME_OK && cells[i][C_REASON][0])
            show[C_REASON] = 1;
        for (int c = 0; c < C_COUNT; c++) {
            int w = text_width(cells[i][c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    struct line *l = calloc(1, sizeof(*l));
    if (!l) {
        free(cells);
        fprintf(f, "  (out of memory)\n");
        return;
    }
    line_add(l, "", 2, 0);
    for (int c = 0; c < C_COUNT; c++) {
        if (show[c]) {
            put_cell(l, col_head[c], width[c], col_left(c), NULL);
            line_add(l, "", 2, 0);
        }
    }
    line_print(f, l);
    for (int i = 0; i < n; i++) {
        const struct oomb_run_result *run = &r->runs[idx[i]];
        line_add(l, "", 2, 0);
        for (int c = 0; c < C_COUNT; c++) {
            if (!show[c])
                continue;
            const char *col = color && c == C_OUTCOME ? outcome_color(run->outcome) : NULL;
            put_cell(l, cells[i][c], width[c], col_left(c), col);
            line_add(l, "", 2, 0);
        }
        line_print(f, l);
    }
    for (int c = 0; c < C_COUNT; c++)
        if (show[c])
            *shown |= 1u << c;
    free(l);
    free(cells);
}

/* One line per column that needs saying what it means, after a table. */
static void print_legend(FILE *f, unsigned shown)
{
    if (shown & (1u << C_HEADROOM))
        fprintf(f, "headroom: the budget less the run's peak (its reserved peak with the caching "
                   "allocator)\n");
    if (shown & (1u << C_RESERVED))
        fprintf(f, "reserved: peak bytes the caching allocator model held; frag: reserved minus "
                   "tensor bytes at that peak\n");
    if (shown & (1u << C_DATASET))
        fprintf(f, "data set, staging: host bytes of the input held whole and of the buffers "
                   "batches are made in; rss: the run's peak resident set; data wait: median "
                   "time a step waited for its batch\n");
    if (shown & (1u << C_COUNT))
        fprintf(f, "[student]: distillation trains a smaller model than the scenario's; its "
                   "memory and time are that model's, its quality is to be read against "
                   "none's\n");
    if (shown & (1u << (C_COUNT + 1)))
        fprintf(f, "untrained teacher: no trained weights of none were available; the teacher "
                   "kept its initial ones, so its targets are noise\n");
    if (shown & (1u << C_DEV))
        fprintf(f, "dev: the largest relative deviation from none's final loss, first-step "
                   "gradients, first-step logits and weights (0: bit-identical)\n");
}

static int same_scenario(const struct oomb_run_result *a, const struct oomb_run_result *b)
{
    return strcmp(a->scenario ? a->scenario : "", b->scenario ? b->scenario : "") == 0;
}

int oomb_scenario_run_time(const struct oomb_results *r, const char *scenario, double *seconds)
{
    int n = 0;
    double total = 0;
    for (int i = 0; r && r->runs && i < r->n_runs; i++) {
        const struct oomb_run_result *run = &r->runs[i];
        if ((scenario && strcmp(run->scenario ? run->scenario : "", scenario) != 0) ||
            !isfinite(run->run_seconds) || run->run_seconds < 0)
            continue;
        total += run->run_seconds;
        n++;
    }
    *seconds = n > 0 ? total : NAN;
    return n;
}

/* After the last group of a scenario: the wall time of its runs, when the
 * runs measured it. */
static void print_scenario_time(FILE *f, const struct oomb_results *r,
                                const struct oomb_run_result *run)
{
    double total;
    int n = oomb_scenario_run_time(r, run->scenario ? run->scenario : "", &total);
    if (n == 0)
        return;
    char scen[CELL_LEN], t[32];
    clip(scen, sizeof(scen), run->scenario, 64);
    oomb_format_ns(total * 1e9, t, sizeof t);
    fprintf(f, "%s: total run time %s (%d run(s))\n", scen, t, n);
}

void oomb_table_print(FILE *f, const struct oomb_results *r, int color)
{
    if (!r || r->n_runs <= 0 || !r->runs) {
        fprintf(f, "no runs\n");
        return;
    }
    int *idx = malloc((size_t)r->n_runs * sizeof(*idx));
    char *done = calloc((size_t)r->n_runs, 1);
    if (!idx || !done) {
        fprintf(f, "(out of memory)\n");
        free(idx);
        free(done);
        return;
    }
    int groups = 0;
    unsigned shown = 0;
    for (int i = 0; i < r->n_runs; i++) {
        if (done[i])
            continue;
        int n = 0;
        for (int j = i; j < r->n_runs; j++) {
            if (!done[j] && same_group(&r->runs[i], &r->runs[j])) {
                idx[n++] = j;
                done[j] = 1;
            }
        }
        if (groups++ > 0)
            fprintf(f, "\n");
        print_group(f, r, idx, n, color, &shown);
        int more = 0; /* a later group of the same scenario */
        for (int j = i + 1; j < r->n_runs && !more; j++)
            more = !done[j] && same_scenario(&r->runs[i], &r->runs[j]);
        if (!more)
            print_scenario_time(f, r, &r->runs[i]);
    }
    print_legend(f, shown);
    free(idx);
    free(done);
}
