/*
 * Report data preparation (see report.h): picks the runs each chart needs
 * from the loaded results, writes gnuplot data files (tab-separated, one
 * block per series, "?" for a missing value) and the scripts that draw them
 * to SVG and PNG, and the text of index.html and summary.md. Nothing here
 * touches the file system or starts a process, so every chart's data can be
 * checked by a test without gnuplot.
 */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "table.h"
#include "util.h"

#define MAX_TIMELINE_PANELS 6
#define MAX_HISTORY_SERIES 8
#define KiB 1024.0
#define MiB (1024.0 * 1024.0)
#define GiB (1024.0 * 1024.0 * 1024.0)

static const char *const chart_stems[OOMB_REPORT_CHARTS] = {
    "chart1-memory", "chart2-time",     "chart3-tradeoff", "chart4-timeline",
    "chart5-sweep",  "chart6-baseline", "chart7-history"};
static const char *const chart_titles[OOMB_REPORT_CHARTS] = {
    "Peak memory per strategy, by allocation tag",
    "Step time per strategy, by phase",
    "Memory against time: the trade-off",
    "Memory in use during one training step",
    "Batch sweep: peak memory and throughput against batch size",
    "Baseline against current",
    "History over successive runs"};

/* Colours: allocation tags and phases keep theirs in every chart; series
 * (strategies, runs) take the Okabe-Ito palette in order. */
static const char *const tag_colors[OOMB_TAG_COUNT] = {"#4477AA", "#66CCEE", "#228833",
                                                        "#CCBB44", "#EE6677", "#AA3377"};
static const char *const phase_colors[OOMB_PHASE_COUNT] = {"#BBBBBB", "#4477AA", "#EE7733",
                                                            "#228833"};
static const char *const series_colors[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                            "#56B4E9", "#D55E00", "#999933", "#000000",
                                            "#882255", "#44AA99"};
/* Point types cycle with a different period, so a colour that comes round
 * again has another marker. */
static const int series_points[] = {7, 5, 9, 11, 13, 15, 7};
#define SERIES_PT(i) series_points[(i) % 7]
#define N_SERIES_COLORS (sizeof series_colors / sizeof series_colors[0])
#define RED "#CC0000"

/* ------------------------------------------------------------- strings - */

void oomb_sbuf_printf(struct oomb_sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        va_end(ap2);
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            va_end(ap2);
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void oomb_sbuf_free(struct oomb_sbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

#define SB oomb_sbuf_printf

/* A number for a data file: "?" (gnuplot's missing marker here) when not
 * finite. Returns a static buffer from a small ring, so a few can be used in
 * one printf. */
static const char *num(double v)
{
    static char ring[8][32];
    static int at;
    char *b = ring[at++ % 8];
    if (!isfinite(v))
        return "?";
    snprintf(b, 32, "%.6g", v);
    return b;
}

/* Text safe for one tab-separated data field, or a '#' comment line of a
 * data file: no tab, control character (a newline would start a data row)
 * or double quote (gnuplot reads "..." in a data file as one quoted
 * field). gnuplot never evaluates data-file text: labels drawn from a data
 * column are plain text (the terminals are noenhanced). */
static void dat_text(const char *s, char *buf, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; s && s[i] && j + 1 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[j++] = ch < 0x20 || ch == 0x7f || ch == '"' ? ' ' : (char)ch;
    }
    buf[j] = '\0';
}

/* A small ring of growable buffers, so that a few encoded strings can be
 * used in one printf (report building is single-threaded). The buffers
 * stay allocated for the process's life. */
static const char *ring_encode(oomb_encoder enc, const char *s)
{
    static char *ring[8];
    static size_t cap[8];
    static int at;
    int k = at++ % 8;
    size_t n = enc(NULL, s);
    if (n + 1 > cap[k]) {
        char *p = realloc(ring[k], n + 1);
        if (!p)
            return NULL;
        ring[k] = p;
        cap[k] = n + 1;
    }
    enc(ring[k], s);
    return ring[k];
}

/* s as one gnuplot string literal, quotes included (oomb_encode_gnuplot):
 * every name written into a .gp script goes through here or gp_lines(). */
static const char *gp_text(const char *s)
{
    const char *e = ring_encode(oomb_encode_gnuplot, s);
    return e ? e : "''";
}

/* A data-file field or comment text (dat_text) from a ring buffer. */
static const char *dat_str(const char *s)
{
    static char ring[4][512];
    static int at;
    char *b = ring[at++ % 4];
    dat_text(s, b, sizeof ring[0]);
    return b;
}

/* A multi-line title as a gnuplot string expression: each line of s
 * encoded by gp_text(), joined with "\n" ('x'."\n".'y'). */
static void gp_lines(struct oomb_sbuf *g, const char *s)
{
    const char *nl;
    while ((nl = strchr(s, '\n')) != NULL) {
        char *line = strndup(s, (size_t)(nl - s));
        if (!line) {
            g->failed = 1;
            return;
        }
        SB(g, "%s.\"\\n\".", gp_text(line));
        free(line);
        s = nl + 1;
    }
    SB(g, "%s", gp_text(s));
}

/* HTML text or attribute value (oomb_encode_html). */
static void html_text(struct oomb_sbuf *b, const char *s)
{
    const char *e = ring_encode(oomb_encode_html, s);
    if (!e)
        b->failed = 1;
    else
        SB(b, "%s", e);
}

/* Markdown text or table cell (oomb_encode_markdown). */
static void md_text(struct oomb_sbuf *b, const char *s)
{
    const char *e = ring_encode(oomb_encode_markdown, s);
    if (!e)
        b->failed = 1;
    else
        SB(b, "%s", e);
}

static const char *mode_text(enum oomb_mode m)
{
    return m == OOMB_MODE_INFER ? "infer" : "train";
}

/* --------------------------------------------------------------- units - */

struct unit {
    const char *name;
    double div;
};

static struct unit mem_unit(double max_bytes)
{
    if (max_bytes < MiB)
        return (struct unit){"KiB", KiB};
    if (max_bytes >= 10 * GiB)
        return (struct unit){"GiB", GiB};
    return (struct unit){"MiB", MiB};
}

static struct unit time_unit(double max_ns)
{
    if (max_ns < 1e6)
        return (struct unit){"us", 1e3};
    if (max_ns < 1e10)
        return (struct unit){"ms", 1e6};
    return (struct unit){"s", 1e9};
}

static double fin(double v)
{
    return isfinite(v) ? v : 0.0;
}

/* ---------------------------------------------------------- run labels - */

static int same_group(const struct oomb_run_result *a, const struct oomb_run_result *b)
{
    return a->mode == b->mode && a->batch == b->batch && strcmp(a->scenario, b->scenario) == 0;
}

static int same_key(const struct oomb_run_result *a, const struct oomb_run_result *b)
{
    return same_group(a, b) && strcmp(a->strategy, b->strategy) == 0;
}

/* What tells the current runs apart, so labels say no more than needed. */
struct labels {
    int multi_scenario, multi_mode, multi_batch;
};

static void labels_init(struct labels *L, const struct oomb_run_result *const *runs, int n)
{
    memset(L, 0, sizeof *L);
    for (int i = 1; i < n; i++) {
        L->multi_scenario |= strcmp(runs[i]->scenario, runs[0]->scenario) != 0;
        L->multi_mode |= runs[i]->mode != runs[0]->mode;
        L->multi_batch |= runs[i]->batch != runs[0]->batch;
    }
}

static void run_label(const struct labels *L, const struct oomb_run_result *r, char *buf,
                      size_t len)
{
    char parts[160] = "";
    size_t at = 0;
    if (L->multi_scenario)
        at += (size_t)snprintf(parts + at, sizeof parts - at, "%s", r->scenario);
    if (L->multi_mode && at < sizeof parts)
        at += (size_t)snprintf(parts + at, sizeof parts - at, "%s%s", at ? " " : "",
                               mode_text(r->mode));
    if (L->multi_batch && at < sizeof parts)
        snprintf(parts + at, sizeof parts - at, "%sb=%lld", at ? " " : "", (long long)r->batch);
    if (parts[0])
        snprintf(buf, len, "%s (%s)", r->strategy, parts);
    else
        snprintf(buf, len, "%s", r->strategy);
}

/* The full name of a run, for comparisons and history. */
static void run_fullname(const struct oomb_run_result *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s %s b=%lld", r->scenario, r->strategy, mode_text(r->mode),
             (long long)r->batch);
}

static void group_text(const struct oomb_run_result *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s, %s, batch %lld", r->scenario, mode_text(r->mode),
             (long long)r->batch);
}

/* The `none` run of r's group among runs, or NULL. */
static const struct oomb_run_result *reference_of(const struct oomb_run_result *const *runs,
                                                  int n, const struct oomb_run_result *r)
{
    for (int i = 0; i < n; i++)
        if (same_group(runs[i], r) && strcmp(runs[i]->plugin, "none") == 0 &&
            runs[i]->outcome == OOMB_OUTCOME_OK)
            return runs[i];
    return NULL;
}

/* ------------------------------------------------------ gnuplot script - */

static void gp_begin(struct oomb_chart *c, const struct oomb_report_input *in, int w, int h)
{
    struct oomb_sbuf *g = &c->gp;
    const char *png = in->png_terminal ? in->png_terminal : "pngcairo";
    int cairo = strcmp(png, "pngcairo") == 0;
    SB(g,
       "# %s\n"
       "# Written by `oombench report`. Re-plot in this folder with: gnuplot %s.gp\n"
       "# (reads %s.dat, writes %s.svg and %s.png)\n"
       "if (!exists(\"suffix\")) suffix = \"\"\n"
       "do for [fmt in \"svg png\"] {\n"
       "if (fmt eq \"svg\") {\n"
       "    set terminal svg size %d,%d noenhanced font \"Sans,12\" background rgb \"white\"\n"
       "    set output \"%s.svg\".suffix\n"
       "} else {\n"
       "    set terminal %s size %d,%d noenhanced font \"%s\"%s\n"
       "    set output \"%s.png\".suffix\n"
       "}\n"
       "reset\n"
       "set encoding utf8\n"
       "set datafile separator \"\\t\"\n"
       "set datafile missing \"?\"\n"
       "set grid lc rgb \"#dddddd\" lw 1\n"
       "set border lw 1.2\n"
       "set key noautotitle\n",
       c->title, c->stem, c->stem, c->stem, c->stem, w, h, c->stem, png, w, h,
       cairo ? "Sans,10" : "DejaVuSans,10",
       cairo ? " background rgb \"white\"" : " background \"#ffffff\"", c->stem);
}

static void gp_end(struct oomb_chart *c)
{
    SB(&c->gp, "unset output\n}\n");
}

static void note(struct oomb_chart *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(struct oomb_chart *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->note, sizeof c->note, fmt, ap);
    va_end(ap);
    oomb_sbuf_free(&c->dat);
    oomb_sbuf_free(&c->gp);
    c->n_series = 0;
}

static void caption(struct oomb_chart *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void caption(struct oomb_chart *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->caption, sizeof c->caption, fmt, ap);
    va_end(ap);
}

/* The bars of a per-run chart (1 and 2): one cluster per mode x batch (the
 * runs come sorted so), a bar's width of gap between clusters, each
 * cluster titled below its bars; a bar's tick label is then the strategy
 * alone. One cluster: no title (the chart's title names the group). */
#define MAX_BARS 512
struct clusters {
    int n;              /* clusters */
    int of[MAX_BARS];   /* each run's cluster */
    int x[MAX_BARS];    /* each run's bar position */
    int slots;          /* positions used, gaps included */
    struct labels L;    /* for tick labels: no mode or batch (the cluster says them) */
    struct labels full; /* what tells the chart's runs apart */
    size_t longest;     /* the longest tick label, in bytes */
};

static void clusters_init(struct clusters *C, const struct oomb_run_result *const *runs, int n,
                          const struct labels *L, int marks)
{
    C->n = 0;
    C->L = *L;
    C->full = *L;
    C->L.multi_mode = C->L.multi_batch = 0;
    C->longest = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || runs[i]->mode != runs[i - 1]->mode || runs[i]->batch != runs[i - 1]->batch)
            C->n++;
        C->of[i] = C->n - 1;
        C->x[i] = i + C->n - 1;
        char lab[256];
        run_label(&C->L, runs[i], lab, sizeof lab);
        size_t len = strlen(lab);
        if (marks && (runs[i]->outcome == OOMB_OUTCOME_OOM ||
                      runs[i]->outcome == OOMB_OUTCOME_NOT_APPLICABLE))
            len += 6; /* " [OOM]" or " [n/a]" */
        if (len > C->longest)
            C->longest = len;
    }
    C->slots = n + C->n - 1;
}

/* A cluster's title: what its runs share that the chart's runs do not. */
static void cluster_title(const struct labels *L, const struct oomb_run_result *r, char *buf,
                          size_t len)
{
    if (L->multi_mode && L->multi_batch)
        snprintf(buf, len, "%s, batch %lld", mode_text(r->mode), (long long)r->batch);
    else if (L->multi_mode)
        snprintf(buf, len, "%s", mode_text(r->mode));
    else
        snprintf(buf, len, "batch %lld", (long long)r->batch);
}

/* The chart's size for its bars: about 30 pixels a bar (and gap) beside the
 * margins and the key, never less than 900 x 600; taller for long tick
 * labels. */
static void clusters_size(const struct clusters *C, int *w, int *h)
{
    *w = C->slots > 6 ? 330 + 30 * C->slots : 900;
    if (*w < 900)
        *w = 900;
    if (*w > 4000)
        *w = 4000;
    *h = 600 + (C->longest > 24 ? 6 * (int)(C->longest - 24) : 0);
    if (*h > 900)
        *h = 900;
}

/* The x axis of the bars: tick labels rotated when there are many or long
 * ones, room below for them and the cluster titles. */
static void gp_clusters_axis(struct oomb_sbuf *g, const struct clusters *C, int n)
{
    int rotate = C->slots > 6 || C->longest * (size_t)n > 90;
    int angle = C->slots > 20 ? 45 : 30;
    /* a label's height when rotated, in character heights (a character is
     * about half as wide as high) */
    int drop = rotate ? (int)ceil(0.5 * (double)C->longest * (angle == 45 ? 0.71 : 0.5)) + 1 : 1;
    if (rotate)
        SB(g, "set xtics rotate by %d right nomirror\nset lmargin 18\n", angle);
    else
        SB(g, "set xtics nomirror\n");
    if (C->n > 1) {
        /* gnuplot puts a cluster's title below the tick labels */
        SB(g, "unset xlabel\nset bmargin %d\n"
              "set style histogram rowstacked title offset 0,-1\n",
           drop + 3);
    } else if (rotate) {
        SB(g, "set bmargin %d\n", drop + 4);
    }
}

/* The rowstacked bars: for each cluster a newhistogram at its position,
 * columns 3 .. 2 + ncols of its data block, titled (the key) in the first
 * cluster only. */
static void gp_clusters_plot(struct oomb_sbuf *g, const struct clusters *C,
                             const struct oomb_run_result *const *runs, int n, const char *stem,
                             int ncols, const char *const *titles, const char *const *colors)
{
    SB(g, "plot ");
    int run = 0;
    for (int k = 0; k < C->n; k++) {
        while (run < n && C->of[run] != k)
            run++;
        char ct[160] = "";
        if (C->n > 1)
            cluster_title(&C->full, runs[run], ct, sizeof ct);
        SB(g, "%snewhistogram %s at %d", k ? ", \\\n     " : "", gp_text(ct), C->x[run]);
        for (int col = 0; col < ncols; col++)
            SB(g, ", \\\n     \"%s.dat\" index %d using %d%s %s%s lc rgb \"%s\"", stem, k,
               3 + col, col == 0 ? ":xtic(2)" : "", k == 0 ? "title " : "notitle",
               k == 0 ? gp_text(titles[col]) : "", colors[col]);
    }
}

/* The runs one section's charts see: one scenario's current runs. */
struct view {
    const struct oomb_run_result *const *cur;
    int n;
    struct labels L; /* what tells these runs apart */
};

/* A second title line: the group when all runs shown are one scenario x
 * mode x batch, else the scenario (and mode when there is one). */
static void view_context(const struct labels *L, const struct oomb_run_result *r, char *buf,
                         size_t len)
{
    if (!L->multi_scenario && !L->multi_mode && !L->multi_batch)
        group_text(r, buf, len);
    else if (!L->multi_scenario && !L->multi_mode)
        snprintf(buf, len, "%s, %s", r->scenario, mode_text(r->mode));
    else if (!L->multi_scenario)
        snprintf(buf, len, "%s", r->scenario);
    else
        buf[0] = '\0';
}

/* ---------------------------------------------- chart 1: peak memory - */

static void chart_memory(struct oomb_chart *c, const struct view *v,
                         const struct oomb_report_input *in)
{
    const struct labels *L = &v->L;
    const struct oomb_run_result *runs[512];
    int n = 0, n_measured = 0, n_na = 0;
    for (int i = 0; i < v->n && n < 512; i++) {
        enum oomb_outcome o = v->cur[i]->outcome;
        if (o == OOMB_OUTCOME_OK || o == OOMB_OUTCOME_OOM) {
            runs[n++] = v->cur[i];
            n_measured++;
        } else if (o == OOMB_OUTCOME_NOT_APPLICABLE) {
            runs[n++] = v->cur[i];
            n_na++;
        }
    }
    if (n_measured == 0) {
        note(c, "no run ended ok or oom, so there is no peak memory to show");
        return;
    }
    double top = 0;
    uint64_t budget = 0;
    int mixed_budget = 0, any_host = 0;
    for (int i = 0; i < n; i++) {
        if (runs[i]->outcome == OOMB_OUTCOME_NOT_APPLICABLE)
            continue;
        double sum = 0;
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            sum += (double)runs[i]->peak_by_tag[t];
        if (sum > top)
            top = sum;
        if ((double)runs[i]->peak_bytes > top)
            top = (double)runs[i]->peak_bytes;
        if ((double)runs[i]->space_peak[0] > top)
            top = (double)runs[i]->space_peak[0];
        if (runs[i]->space_peak[0])
            any_host = 1;
        if (runs[i]->budget_bytes) {
            if (budget && budget != runs[i]->budget_bytes)
                mixed_budget = 1;
            if (runs[i]->budget_bytes > budget)
                budget = runs[i]->budget_bytes;
        }
    }
    /* A budget far above every bar would flatten them: say it instead. */
    int budget_on_scale = budget > 0 && (double)budget <= 3.0 * top;
    struct unit u = mem_unit(budget_on_scale ? fmax(top, (double)budget) : top);

    struct clusters *C = malloc(sizeof *C);
    if (!C) {
        c->dat.failed = 1;
        return;
    }
    clusters_init(C, runs, n, L, 1);
    struct oomb_sbuf *d = &c->dat;
    SB(d, "# %s\n# memory in %s; peak = total tracked peak; budget '?' when none or off scale; "
          "na 1: not applicable (no bar); one block per mode x batch\n",
       c->title, u.name);
    for (int i = 0; i < n; i++) {
        char lab[256], field[256];
        int na = runs[i]->outcome == OOMB_OUTCOME_NOT_APPLICABLE;
        if (i == 0 || C->of[i] != C->of[i - 1]) {
            group_text(runs[i], lab, sizeof lab);
            SB(d, "%s# index %d: %s\n# x\tlabel\tweights\tgrads\toptimizer\tactivations"
                  "\tworkspace\tother\tpeak\tbudget\thost_peak\tna\n",
               i ? "\n\n" : "", C->of[i], dat_str(lab));
        }
        run_label(&C->L, runs[i], lab, sizeof lab);
        if (runs[i]->outcome == OOMB_OUTCOME_OOM)
            strncat(lab, " [OOM]", sizeof lab - strlen(lab) - 1);
        if (na)
            strncat(lab, " [n/a]", sizeof lab - strlen(lab) - 1);
        dat_text(lab, field, sizeof field);
        SB(d, "%d\t%s", C->x[i], field);
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            SB(d, "\t%s", na ? "?" : num((double)runs[i]->peak_by_tag[t] / u.div));
        SB(d, "\t%s", na ? "?" : num((double)runs[i]->peak_bytes / u.div));
        SB(d, "\t%s", !na && budget_on_scale && runs[i]->budget_bytes
                          ? num((double)runs[i]->budget_bytes / u.div)
                          : "?");
        SB(d, "\t%s", !na && runs[i]->space_peak[0]
                          ? num((double)runs[i]->space_peak[0] / u.div)
                          : "?");
        SB(d, "\t%d\n", na);
    }

    char btxt[64] = "", sub[256] = "";
    if (budget) {
        oomb_format_bytes(budget, btxt, sizeof btxt);
        if (!budget_on_scale)
            snprintf(sub, sizeof sub, "\nbudget %s%s is far above the bars (not drawn)", btxt,
                     mixed_budget ? " (largest)" : "");
    }
    char ctx[200];
    view_context(L, runs[0], ctx, sizeof ctx);
    if (ctx[0]) {
        size_t at = strlen(sub);
        snprintf(sub + at, sizeof sub - at, "\n%s", ctx);
    }
    int w, h;
    clusters_size(C, &w, &h);
    gp_begin(c, in, w, h);
    struct oomb_sbuf *g = &c->gp;
    SB(g, "set title %s.", gp_text(c->title));
    gp_lines(g, sub);
    SB(g, "\n");
    SB(g, "set ylabel \"peak memory (%s)\"\nset xlabel \"strategy\"\n", u.name);
    SB(g, "set style data histograms\nset style histogram rowstacked\n"
          "set style fill solid 0.85 border lc rgb \"#333333\"\nset boxwidth 0.65\n"
          "set key outside right top vertical\nset grid noxtics ytics\nset yrange [0:*]\n"
          "set xrange [-0.7:%g]\nset offsets 0, 0, graph 0.08, 0\n",
       C->slots - 0.3);
    gp_clusters_axis(g, C, n);
    const char *tag_names[OOMB_TAG_COUNT];
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        tag_names[t] = oomb_tag_name(t);
    gp_clusters_plot(g, C, runs, n, c->stem, OOMB_TAG_COUNT, tag_names, tag_colors);
    SB(g, ", \\\n     \"%s.dat\" using 1:9 with points pt 13 ps 1.6 lc rgb \"black\" "
          "title \"peak (total)\"",
       c->stem);
    c->n_series = OOMB_TAG_COUNT + 1;
    if (any_host) {
        SB(g, ", \\\n     \"%s.dat\" using 1:11 with points pt 9 ps 1.8 lc rgb \"#1f4e9c\" "
              "title \"host memory peak\"",
           c->stem);
        c->n_series++;
    }
    if (budget_on_scale) {
        SB(g, ", \\\n     \"%s.dat\" using ($1-0.45):10:(0.9):(0) with vectors nohead lw 2.5 "
              "dt 2 lc rgb \"%s\" title \"budget %s\"",
           c->stem, RED, btxt);
        c->n_series++;
    }
    if (n_na) {
        /* A gap with "n/a" standing on the axis: no bar, not a 0-byte one. */
        SB(g, ", \\\n     \"%s.dat\" using 1:($12==1?0:NaN):(\"n/a\") with labels rotate by 90 "
              "left offset 0,0.6 tc rgb \"#777777\" notitle",
           c->stem);
        c->n_series++;
    }
    SB(g, "\n");
    gp_end(c);
    free(C);
    caption(c,
            "Stacked bars: each allocation tag's own peak (weights, gradients, optimizer state, "
            "activations, workspace, other); the black diamond is the total tracked peak, which "
            "can be lower than the stack because tags peak at different moments. %s%s%s"
            "Runs that ran out of memory are marked [OOM] and show what they held when refused.%s",
            any_host ? "Bars are device memory; the blue triangle is the peak of the host memory "
                       "a strategy moved data to (offload), which the budget does not cover "
                       "(on the CPU backend both are RAM of one process). "
                     : "",
            budget_on_scale ? "The dashed red line is the memory budget. " : "",
            budget && !budget_on_scale ? "The budget is far above the bars and is not drawn. "
                                       : "",
            n_na ? " Runs marked [n/a] did not apply (the strategy does not support the mode or "
                   "model; the reasons are listed with the runs): they have a gap labelled n/a, "
                   "not a bar."
                 : "");
}

/* ------------------------------------------------- chart 2: step time - */

static void chart_time(struct oomb_chart *c, const struct view *v,
                       const struct oomb_report_input *in)
{
    const struct labels *L = &v->L;
    const struct oomb_run_result *runs[512];
    int n = 0;
    double top = 0;
    for (int i = 0; i < v->n && n < 512; i++) {
        const struct oomb_run_result *r = v->cur[i];
        if (r->outcome != OOMB_OUTCOME_OK || !isfinite(r->step_stats.median))
            continue;
        runs[n++] = r;
        top = fmax(top, fmax(r->step_stats.median, fin(r->step_stats.ci_high)));
    }
    if (n == 0) {
        note(c, "no run ended ok with timed steps");
        return;
    }
    struct unit u = time_unit(top);
    struct clusters *C = malloc(sizeof *C);
    if (!C) {
        c->dat.failed = 1;
        return;
    }
    clusters_init(C, runs, n, L, 0);
    struct oomb_sbuf *d = &c->dat;
    SB(d, "# %s\n# times in %s: per-phase medians; the rest of the step median is 'other'; "
          "step median with its 95%% interval; one block per mode x batch\n",
       c->title, u.name);
    for (int i = 0; i < n; i++) {
        const struct oomb_run_result *r = runs[i];
        char lab[256], field[256];
        if (i == 0 || C->of[i] != C->of[i - 1]) {
            group_text(r, lab, sizeof lab);
            SB(d, "%s# index %d: %s\n"
                  "# x\tlabel\tforward\tbackward\tupdate\tother\tmedian\tci_low\tci_high\n",
               i ? "\n\n" : "", C->of[i], dat_str(lab));
        }
        run_label(&C->L, r, lab, sizeof lab);
        dat_text(lab, field, sizeof field);
        double f = fin(r->phase_stats[OOMB_PHASE_FORWARD].median);
        double b = fin(r->phase_stats[OOMB_PHASE_BACKWARD].median);
        double up = fin(r->phase_stats[OOMB_PHASE_UPDATE].median);
        double med = r->step_stats.median;
        double rest = fmax(0.0, med - f - b - up);
        double lo = isfinite(r->step_stats.ci_low) ? r->step_stats.ci_low : med;
        double hi = isfinite(r->step_stats.ci_high) ? r->step_stats.ci_high : med;
        SB(d, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", C->x[i], field, num(f / u.div),
           num(b / u.div),
           num(up / u.div), num(rest / u.div), num(med / u.div), num(lo / u.div),
           num(hi / u.div));
    }
    char sub[200] = "", ctx[180];
    view_context(L, runs[0], ctx, sizeof ctx);
    if (ctx[0])
        snprintf(sub, sizeof sub, "\n%s", ctx);
    int w, h;
    clusters_size(C, &w, &h);
    gp_begin(c, in, w, h);
    struct oomb_sbuf *g = &c->gp;
    SB(g, "set title %s.", gp_text(c->title));
    gp_lines(g, sub);
    SB(g, "\n");
    SB(g, "set ylabel \"step time (%s)\"\nset xlabel \"strategy\"\n", u.name);
    SB(g, "set style data histograms\nset style histogram rowstacked\n"
          "set style fill solid 0.85 border lc rgb \"#333333\"\nset boxwidth 0.65\n"
          "set key outside right top vertical\nset grid noxtics ytics\nset yrange [0:*]\n"
          "set xrange [-0.7:%g]\nset offsets 0, 0, graph 0.08, 0\n",
       C->slots - 0.3);
    gp_clusters_axis(g, C, n);
    static const char *const phase_names[] = {"forward", "backward", "update", "other"};
    const char *colors[] = {phase_colors[OOMB_PHASE_FORWARD], phase_colors[OOMB_PHASE_BACKWARD],
                            phase_colors[OOMB_PHASE_UPDATE], phase_colors[OOMB_PHASE_OTHER]};
    gp_clusters_plot(g, C, runs, n, c->stem, 4, phase_names, colors);
    SB(g, ", \\\n     \"%s.dat\" using 1:7:8:9 with yerrorbars pt 7 ps 0.9 lw 1.8 "
          "lc rgb \"black\" title \"step median, 95%% interval\"\n",
       c->stem);
    c->n_series = 5;
    gp_end(c);
    free(C);
    caption(c,
            "Bars: the median time of each phase of a training or inference step (forward, "
            "backward, update; 'other' is the rest of the step median). The black point and "
            "whiskers: the median step time and its 95%% bootstrap interval. Lower is faster.");
}

/* ------------------------------------------- chart 3: memory vs time - */

#define MAX_TRADEOFF_PANELS 6

static void chart_tradeoff(struct oomb_chart *c, const struct view *v,
                           const struct oomb_report_input *in)
{
    const struct oomb_run_result *runs[512];
    int group[512];
    const struct oomb_run_result *heads[MAX_TRADEOFF_PANELS];
    int n = 0, ng = 0, more = 0;
    double tmax = 0, mmax = 0;
    for (int i = 0; i < v->n && n < 512; i++) {
        const struct oomb_run_result *r = v->cur[i];
        if (r->outcome != OOMB_OUTCOME_OK || !isfinite(r->step_stats.median) || !r->peak_bytes)
            continue;
        int g = -1;
        for (int k = 0; k < ng && g < 0; k++)
            if (same_group(heads[k], r))
                g = k;
        if (g < 0) {
            if (ng == MAX_TRADEOFF_PANELS) {
                more = 1;
                continue;
            }
            heads[ng] = r;
            g = ng++;
        }
        group[n] = g;
        runs[n++] = r;
        tmax = fmax(tmax, r->step_stats.median);
        mmax = fmax(mmax, (double)r->peak_bytes);
    }
    if (n == 0) {
        note(c, "no run ended ok with a measured step time");
        return;
    }
    struct unit tu = time_unit(tmax), mu = mem_unit(mmax);
    double qmax = 1.0;
    double q[512];
    int pareto[512];
    for (int i = 0; i < n; i++) {
        const struct oomb_run_result *ref = reference_of(v->cur, v->n, runs[i]);
        q[i] = 0;
        if (ref && isfinite(ref->final_loss) && isfinite(runs[i]->final_loss) &&
            ref->final_loss != 0)
            q[i] = 100.0 * (runs[i]->final_loss / ref->final_loss - 1.0);
        qmax = fmax(qmax, fabs(q[i]));
        /* a distillation student is another model: never on the front, and
         * it moves no other run off it */
        pareto[i] = !oomb_run_is_other_model(runs[i]);
        for (int j = 0; j < n && pareto[i]; j++) {
            if (j == i || group[j] != group[i] || oomb_run_is_other_model(runs[j]))
                continue;
            double ti = runs[i]->step_stats.median, tj = runs[j]->step_stats.median;
            uint64_t mi = runs[i]->peak_bytes, mj = runs[j]->peak_bytes;
            if (tj <= ti && mj <= mi && (tj < ti || mj < mi))
                pareto[i] = 0;
        }
    }
    /* Per group two blocks: the runs, then its Pareto front by time. */
    struct oomb_sbuf *d = &c->dat;
    SB(d, "# %s\n# per scenario x mode x batch two blocks: the runs (time in %s, memory in %s, "
          "final loss vs none in %%, on the Pareto front), then the front by time\n",
       c->title, tu.name, mu.name);
    for (int g = 0; g < ng; g++) {
        char grp[160];
        group_text(heads[g], grp, sizeof grp);
        SB(d, "%s# index %d: %s\n# row\tstrategy\ttime\tmemory\tloss_vs_none\tpareto\n",
           g ? "\n\n" : "", 2 * g, dat_str(grp));
        int idx[512], k = 0, row = 0;
        for (int i = 0; i < n; i++) {
            if (group[i] != g)
                continue;
            char field[256], name[200];
            if (oomb_run_is_other_model(runs[i]))
                snprintf(name, sizeof name, "%.80s (other model, loss %+.0f%%%s)",
                         runs[i]->strategy ? runs[i]->strategy : "", q[i],
                         oomb_run_metric(runs[i], "teacher_from_none") == 0
                             ? ", untrained teacher"
                             : "");
            else
                snprintf(name, sizeof name, "%s", runs[i]->strategy ? runs[i]->strategy : "");
            dat_text(name, field, sizeof field);
            SB(d, "%d\t%s\t%s\t%s\t%s\t%d\n", row++, field,
               num(runs[i]->step_stats.median / tu.div),
               num((double)runs[i]->peak_bytes / mu.div), num(q[i]), pareto[i]);
            if (pareto[i])
                idx[k++] = i;
        }
        for (int a = 1; a < k; a++)
            for (int b = a; b > 0 && runs[idx[b]]->step_stats.median <
                                         runs[idx[b - 1]]->step_stats.median;
                 b--) {
                int t = idx[b];
                idx[b] = idx[b - 1];
                idx[b - 1] = t;
            }
        SB(d, "\n\n# index %d: Pareto front of %s (time, memory)\n", 2 * g + 1, dat_str(grp));
        for (int a = 0; a < k; a++)
            SB(d, "%s\t%s\n", num(runs[idx[a]]->step_stats.median / tu.div),
               num((double)runs[idx[a]]->peak_bytes / mu.div));
    }

    int cols = ng > 1 ? 2 : 1, rows = (ng + cols - 1) / cols;
    int w = cols == 1 ? 1000 : 1500, h = 90 + 520 * rows;
    gp_begin(c, in, w, h);
    struct oomb_sbuf *g = &c->gp;
    SB(g,
       "set multiplot layout %d,%d title %s.\"\\nlower left is better; ringed points are on "
       "the Pareto front (dashed line); colour: final loss vs none\"\n",
       rows, cols, gp_text(c->title));
    SB(g, "unset key\n"
          "set palette defined (-1 \"#1a9850\", 0 \"#c8c8c8\", 1 \"#d73027\")\n"
          "set cbrange [%g:%g]\nset cblabel \"final loss vs none (%%)\"\n"
          "set xlabel \"median step time (%s)\"\nset ylabel \"peak memory (%s)\"\n",
       -qmax, qmax, tu.name, mu.name);
    for (int p = 0; p < ng; p++) {
        double t0 = INFINITY, t1 = 0, m0 = INFINITY, m1 = 0;
        for (int i = 0; i < n; i++)
            if (group[i] == p) {
                t0 = fmin(t0, runs[i]->step_stats.median);
                t1 = fmax(t1, runs[i]->step_stats.median);
                m0 = fmin(m0, (double)runs[i]->peak_bytes);
                m1 = fmax(m1, (double)runs[i]->peak_bytes);
            }
        char grp[160];
        group_text(heads[p], grp, sizeof grp);
        SB(g, "set title %s\n", gp_text(grp));
        if (t0 > 0 && t1 / t0 > 20)
            SB(g, "unset xrange\nset logscale x\n");
        else
            SB(g, "unset logscale x\nset xrange [0:*]\n");
        if (m0 > 0 && m1 / m0 > 20)
            SB(g, "unset yrange\nset logscale y\n");
        else
            SB(g, "unset logscale y\nset yrange [0:*]\n");
        SB(g, "set offsets 0, graph 0.25, graph 0.12, 0\n");
        SB(g,
           "plot \"%s.dat\" index %d using 1:2 with lines lw 2 dt 2 lc rgb \"#555555\", \\\n"
           "     \"%s.dat\" index %d using 3:($6==1?$4:NaN) with points pt 6 ps 3.2 lw 2 "
           "lc rgb \"#333333\", \\\n"
           "     \"%s.dat\" index %d using 3:4:5 with points pt 7 ps 2.2 lc palette, \\\n"
           "     \"%s.dat\" index %d using 3:4:(int($1)%%2==0?stringcolumn(2):\"\") "
           "with labels left offset char 1.4,0.7, \\\n"
           "     \"%s.dat\" index %d using 3:4:(int($1)%%2==1?stringcolumn(2):\"\") "
           "with labels left offset char 1.4,-0.7\n",
           c->stem, 2 * p + 1, c->stem, 2 * p, c->stem, 2 * p, c->stem, 2 * p, c->stem, 2 * p);
        c->n_series += 5;
    }
    SB(g, "unset multiplot\n");
    gp_end(c);
    caption(c,
            "One panel per scenario, mode and batch; one point per run: median step time "
            "across, peak memory up. The dashed line joins the Pareto front (no other strategy "
            "of the panel is both faster and smaller); ringed points are on it. Colour: final "
            "loss relative to the reference strategy none of the same panel (green lower, red "
            "higher); the accuracy change against none is in the runs table. A "
            "distillation student (\"other model\") is a smaller network than the "
            "scenario's: it is drawn with its loss change but kept off the front. Axes turn "
            "logarithmic when their values span more than a factor 20.%s",
            more ? " Only the first six groups are drawn; use --scenario to focus." : "");
}

/* --------------------------------------------- chart 4: the timeline - */

/* Events of the measured step (step >= 0): [first, last). */
static void step_events(const struct oomb_run_result *r, int *first, int *last)
{
    *first = *last = 0;
    int i = 0;
    while (i < r->n_events && r->events[i].step < 0)
        i++;
    *first = i;
    while (i < r->n_events && r->events[i].step >= 0)
        i++;
    *last = i;
}

static void chart_timeline(struct oomb_chart *c, const struct view *v,
                           const struct oomb_report_input *in)
{
    /* The group to show: training if any, with the most strategies that have
     * a timeline; a group with checkpointing first, since that is the
     * picture this chart is for. */
    int best = -1, best_score = -1;
    for (int i = 0; i < v->n; i++) {
        const struct oomb_run_result *r = v->cur[i];
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= same_group(v->cur[j], r);
        if (seen)
            continue;
        int k = 0, ckpt = 0;
        for (int j = i; j < v->n; j++) {
            const struct oomb_run_result *s = v->cur[j];
            int a, b;
            step_events(s, &a, &b);
            if (same_group(s, r) && s->outcome == OOMB_OUTCOME_OK && b > a) {
                k++;
                ckpt |= strcmp(s->plugin, "checkpoint") == 0;
            }
        }
        if (k == 0)
            continue;
        int score = (r->mode == OOMB_MODE_TRAIN) * 100000 + ckpt * 50000 + (k > 1) * 20000 +
                    k * 100 + (int)(r->batch > 99 ? 99 : r->batch);
        if (score > best_score) {
            best_score = score;
            best = i;
        }
    }
    if (best < 0) {
        note(c, "no run ended ok with an allocation timeline");
        return;
    }
    const struct oomb_run_result *runs[MAX_TIMELINE_PANELS];
    int n = 0, more = 0;
    for (int j = best; j < v->n; j++) {
        const struct oomb_run_result *s = v->cur[j];
        int a, b;
        step_events(s, &a, &b);
        if (!same_group(s, v->cur[best]) || s->outcome != OOMB_OUTCOME_OK || b <= a)
            continue;
        if (n < MAX_TIMELINE_PANELS)
            runs[n++] = s;
        else
            more++;
    }
    double xmax = 0, ymax = 0;
    for (int k = 0; k < n; k++) {
        int a, b;
        step_events(runs[k], &a, &b);
        xmax = fmax(xmax, (double)(runs[k]->events[b - 1].t_ns - runs[k]->events[a].t_ns));
        ymax = fmax(ymax, (double)(runs[k]->events[a].in_use - (uint64_t)runs[k]->events[a].delta));
        for (int e = a; e < b; e++)
            ymax = fmax(ymax, (double)runs[k]->events[e].in_use);
        for (int e = a > 0 ? a - 1 : a; e < b; e++)
            ymax = fmax(ymax, (double)runs[k]->events[e].reserved);
    }
    if (xmax <= 0)
        xmax = 1;
    uint64_t budget = runs[0]->budget_bytes;
    int budget_on_scale = budget && (double)budget <= 2.0 * ymax;
    struct unit tu = time_unit(xmax), mu = mem_unit(budget_on_scale ? (double)budget : ymax);
    double xtop = xmax / tu.div * 1.02;
    double ytop = fmax(ymax, budget_on_scale ? (double)budget : 0) / mu.div * 1.15;

    struct oomb_sbuf *d = &c->dat;
    SB(d, "# %s\n# per run two blocks: phase spans (from, to in %s; phase 0 other, 1 forward, "
          "2 backward, 3 update), then bytes in use (time in %s, memory in %s)\n",
       c->title, tu.name, tu.name, mu.name);
    double peaks[MAX_TIMELINE_PANELS];
    for (int k = 0; k < n; k++) {
        const struct oomb_run_result *r = runs[k];
        int a, b;
        step_events(r, &a, &b);
        int64_t t0 = r->events[a].t_ns;
        SB(d, "%s# index %d: %s phases\n", k ? "\n\n" : "", 2 * k, dat_str(r->strategy));
        int e = a;
        while (e < b) {
            int ph = r->events[e].phase;
            int f = e;
            while (f < b && r->events[f].phase == ph)
                f++;
            int64_t end = f < b ? r->events[f].t_ns : r->events[b - 1].t_ns;
            SB(d, "%s\t%s\t%d\n", num((double)(r->events[e].t_ns - t0) / tu.div),
               num((double)(end - t0) / tu.div), ph);
            e = f;
        }
        SB(d, "\n\n# index %d: %s bytes in use (time, all tags, activations, reserved by the "
              "caching allocator model or 0)\n",
           2 * k + 1, dat_str(r->strategy));
        double start = (double)(r->events[a].in_use - (uint64_t)r->events[a].delta);
        double act = 0;
        for (e = 0; e < a; e++)
            if (r->events[e].tag == OOMB_TAG_ACTIVATIONS)
                act += (double)r->events[e].delta;
        peaks[k] = start;
        /* reserved before the step: the last event before it */
        double res0 = a > 0 ? (double)r->events[a - 1].reserved : 0;
        SB(d, "0\t%s\t%s\t%s\n", num(start / mu.div), num(act / mu.div), num(res0 / mu.div));
        for (e = a; e < b; e++) {
            if (r->events[e].tag == OOMB_TAG_ACTIVATIONS)
                act += (double)r->events[e].delta;
            SB(d, "%s\t%s\t%s\t%s\n", num((double)(r->events[e].t_ns - t0) / tu.div),
               num((double)r->events[e].in_use / mu.div), num(act / mu.div),
               num((double)r->events[e].reserved / mu.div));
            peaks[k] = fmax(peaks[k], (double)r->events[e].in_use);
        }
    }

    char grp[160];
    group_text(runs[0], grp, sizeof grp);
    gp_begin(c, in, 1000, 110 + 230 * n);
    struct oomb_sbuf *g = &c->gp;
    SB(g, "set multiplot layout %d,1 title %s.' ('.%s.')'\n", n, gp_text(c->title), gp_text(grp));
    SB(g, "set xrange [0:%g]\nset yrange [0:%g]\nset ylabel \"in use (%s)\"\n"
          "set lmargin at screen 0.09\nset rmargin at screen 0.76\n"
          "set style fill transparent solid 0.22 noborder\n",
       xtop, ytop, mu.name);
    static const char *const phase_label[OOMB_PHASE_COUNT] = {"other", "forward", "backward",
                                                               "update"};
    for (int k = 0; k < n; k++) {
        const struct oomb_run_result *r = runs[k];
        char pk[64], act[64];
        oomb_format_bytes((uint64_t)peaks[k], pk, sizeof pk);
        oomb_format_bytes(r->peak_by_tag[OOMB_TAG_ACTIVATIONS], act, sizeof act);
        SB(g, "set title %s.\": peak %s in the step, activations peak %s\"\n", gp_text(r->strategy),
           pk, act);
        if (k == n - 1)
            SB(g, "set xlabel \"time since the step began (%s)\"\n", tu.name);
        else
            SB(g, "unset xlabel\n");
        if (k == 0)
            SB(g, "set key at screen 0.99, screen %g right top box opaque\n",
               1.0 - 60.0 / (110.0 + 230.0 * n));
        else
            SB(g, "unset key\n");
        SB(g, "plot ");
        for (int p = 1; p < OOMB_PHASE_COUNT; p++)
            SB(g, "\"%s.dat\" index %d using ($3==%d?($1+$2)/2:NaN):(%g):1:2:(0):(%g) "
                  "with boxxyerror lc rgb \"%s\" title \"%s\", \\\n     ",
               c->stem, 2 * k, p, ytop / 2, ytop, phase_colors[p], phase_label[p]);
        SB(g, "\"%s.dat\" index %d using 1:2 with steps lw 2.2 lc rgb \"black\" "
              "title \"bytes in use\", \\\n     "
              "\"%s.dat\" index %d using 1:3 with steps lw 2.2 lc rgb \"#997700\" "
              "title \"activations in use\", \\\n     "
              "%g with lines dt 3 lw 1.5 lc rgb \"#555555\" title \"step peak\"",
           c->stem, 2 * k + 1, c->stem, 2 * k + 1, peaks[k] / mu.div);
        c->n_series += 6;
        if (r->alloc_kind == 1) {
            SB(g, ", \\\n     \"%s.dat\" index %d using 1:4 with steps lw 2.2 lc rgb \"#1f5fbf\" "
                  "title \"reserved (caching model)\"",
               c->stem, 2 * k + 1);
            c->n_series++;
        }
        if (budget_on_scale) {
            char bt[64];
            oomb_format_bytes(budget, bt, sizeof bt);
            SB(g, ", \\\n     %g with lines dt 2 lw 2 lc rgb \"%s\" title \"budget %s\"",
               (double)budget / mu.div, RED, bt);
            c->n_series++;
        }
        SB(g, "\n");
    }
    SB(g, "unset multiplot\n");
    gp_end(c);
    caption(c,
            "Bytes in use (tracked; black: all tags, gold: activations) through the first "
            "measured step of %s, one panel per strategy on the same scales; the shading shows "
            "the phase (forward, backward, "
            "update) the allocations happened in. Without checkpointing the forward pass keeps "
            "what each layer saves for backward, so memory climbs through forward; with "
            "checkpointing it stays near the segment inputs and backward recomputes. %s%s",
            grp,
            runs[0]->alloc_kind == 1
                ? "Blue: the bytes the caching allocator model has reserved (allocator: "
                  "caching), what torch.cuda.memory_reserved() would show; the gap to black is "
                  "cached free memory and rounding. "
                : "",
            more ? "More strategies ran in this group than fit; the first six are shown." : "");
}

/* -------------------------------------------- chart 5: batch sweep - */

static void chart_sweep(struct oomb_chart *c, const struct view *v,
                        const struct oomb_report_input *in)
{
    /* The scenario x mode with the most batch sizes. */
    int best = -1, best_n = 1;
    for (int i = 0; i < v->n; i++) {
        int64_t seen[256];
        int k = 0;
        for (int j = 0; j < v->n; j++) {
            const struct oomb_run_result *s = v->cur[j];
            if (s->mode != v->cur[i]->mode || strcmp(s->scenario, v->cur[i]->scenario) ||
                (s->outcome != OOMB_OUTCOME_OK && s->outcome != OOMB_OUTCOME_OOM))
                continue;
            int dup = 0;
            for (int q = 0; q < k; q++)
                dup |= seen[q] == s->batch;
            if (!dup && k < 256)
                seen[k++] = s->batch;
        }
        if (k > best_n) {
            best_n = k;
            best = i;
        }
    }
    if (best < 0) {
        note(c, "no scenario in these results sweeps more than one batch size "
                "(give the scenario a list, e.g. batch: [64, 256, 1024])");
        return;
    }
    const struct oomb_run_result *ref = v->cur[best];
    /* Strategies in order of appearance. */
    const char *strat[N_SERIES_COLORS * 2];
    int ns = 0;
    const struct oomb_run_result *rows[512];
    int nr = 0;
    double mtop = 0, ttop = 0;
    uint64_t budget = 0;
    int any_oom = 0;
    for (int j = 0; j < v->n && nr < 512; j++) {
        const struct oomb_run_result *s = v->cur[j];
        if (s->mode != ref->mode || strcmp(s->scenario, ref->scenario) ||
            (s->outcome != OOMB_OUTCOME_OK && s->outcome != OOMB_OUTCOME_OOM))
            continue;
        rows[nr++] = s;
        int known = 0;
        for (int q = 0; q < ns; q++)
            known |= strcmp(strat[q], s->strategy) == 0;
        if (!known && ns < (int)(N_SERIES_COLORS * 2))
            strat[ns++] = s->strategy;
        if (s->outcome == OOMB_OUTCOME_OK) {
            mtop = fmax(mtop, (double)s->peak_bytes);
            ttop = fmax(ttop, fin(s->samples_per_s));
        } else {
            any_oom = 1;
        }
        if (s->budget_bytes > budget)
            budget = s->budget_bytes;
    }
    int budget_on_scale = budget && (mtop == 0 || (double)budget <= 4.0 * mtop);
    struct unit mu = mem_unit(budget_on_scale ? fmax(mtop, (double)budget) : mtop);
    double oom_y = budget_on_scale ? (double)budget : mtop;

    int64_t bmin = rows[0]->batch, bmax = rows[0]->batch;
    for (int j = 1; j < nr; j++) {
        if (rows[j]->batch < bmin)
            bmin = rows[j]->batch;
        if (rows[j]->batch > bmax)
            bmax = rows[j]->batch;
    }
    /* Several strategies out of memory at one batch size would put their
     * markers on one spot: they are spread across, in strategy order, about
     * 18 pixels apart (the plot is 660 pixels wide, log2 batch across), but
     * never by more than 0.6 of the closest gap between two batch sizes. */
    int max_ooms = 0;
    double min_gap = INFINITY;
    for (int j = 0; j < nr; j++) {
        int k = 0;
        for (int i = 0; i < nr; i++)
            k += rows[i]->batch == rows[j]->batch && rows[i]->outcome == OOMB_OUTCOME_OOM;
        if (k > max_ooms)
            max_ooms = k;
        for (int i = 0; i < nr; i++)
            if (rows[i]->batch > rows[j]->batch)
                min_gap = fmin(min_gap, log2((double)rows[i]->batch / (double)rows[j]->batch));
    }
    double span = log2((double)bmax / (double)bmin) + 2 * log2(1.3);
    double step = 18.0 / 660.0 * span;
    if (max_ooms > 1 && isfinite(min_gap) && step * (max_ooms - 1) > 0.6 * min_gap)
        step = 0.6 * min_gap / (max_ooms - 1);
    double half = max_ooms > 1 ? step * (max_ooms - 1) / 2 : 0;

    struct oomb_sbuf *d = &c->dat;
    SB(d, "# %s\n# one block per strategy: batch, peak memory (%s), throughput (samples/s), "
          "oom (1: ran out of memory; the point is drawn at the budget), oom_at (its height), "
          "oom_x (its batch position, spread when several strategies ran out of memory at that "
          "batch), label\n",
       c->title, mu.name);
    for (int q = 0; q < ns; q++) {
        SB(d, "%s# index %d: %s\n# batch\tpeak\tsamples_per_s\toom\toom_at\toom_x\tlabel\n",
           q ? "\n\n" : "", q, dat_str(strat[q]));
        const struct oomb_run_result *mine[256];
        int k = 0;
        for (int j = 0; j < nr && k < 256; j++)
            if (strcmp(rows[j]->strategy, strat[q]) == 0)
                mine[k++] = rows[j];
        for (int a = 1; a < k; a++)
            for (int b = a; b > 0 && mine[b]->batch < mine[b - 1]->batch; b--) {
                const struct oomb_run_result *t = mine[b];
                mine[b] = mine[b - 1];
                mine[b - 1] = t;
            }
        for (int a = 0; a < k; a++) {
            int oom = mine[a]->outcome == OOMB_OUTCOME_OOM;
            double x = (double)mine[a]->batch;
            if (oom) {
                /* its rank among the strategies out of memory at this batch */
                int rank = 0, count = 0;
                for (int p = 0; p < ns; p++)
                    for (int j = 0; j < nr; j++)
                        if (rows[j]->batch == mine[a]->batch &&
                            rows[j]->outcome == OOMB_OUTCOME_OOM &&
                            strcmp(rows[j]->strategy, strat[p]) == 0) {
                            rank += p < q;
                            count++;
                            break;
                        }
                x *= exp2((rank - (count - 1) / 2.0) * step);
            }
            SB(d, "%lld\t%s\t%s\t%d\t%s\t%s\t%s\n", (long long)mine[a]->batch,
               oom ? "?" : num((double)mine[a]->peak_bytes / mu.div),
               oom ? "?" : num(mine[a]->samples_per_s), oom, num(oom_y / mu.div), num(x),
               dat_str(strat[q]));
        }
    }

    char title2[300];
    snprintf(title2, sizeof title2, "%s (%s, %s)", c->title, ref->scenario,
             mode_text(ref->mode));
    gp_begin(c, in, 1000, 820);
    struct oomb_sbuf *g = &c->gp;
    SB(g, "set multiplot layout 2,1 title %s\n", gp_text(title2));
    SB(g, "set logscale x 2\nset xrange [%g:%g]\nset xlabel \"batch size (samples)\"\n"
          "set lmargin at screen 0.10\nset rmargin at screen 0.76\n"
          "set key outside right top\nset offsets 0, 0, graph 0.1, 0\n"
          "set style textbox opaque noborder margins 1,1\n",
       (double)bmin / 1.3 / exp2(half), (double)bmax * 1.3 * exp2(half));
    /* top: peak memory */
    SB(g, "set title \"peak memory%s\"\nset ylabel \"peak memory (%s)\"\nset yrange [0:*]\n",
       any_oom ? "; x in the strategy's marker, labelled: out of memory at that batch" : "",
       mu.name);
    SB(g, "plot ");
    for (int q = 0; q < ns; q++)
        SB(g,
           "%s\"%s.dat\" index %d using 1:($4==0?$2:NaN) with linespoints pt %d ps 1.3 "
           "lw 2 lc rgb \"%s\" title %s",
           q ? ", \\\n     " : "", c->stem, q, SERIES_PT(q), series_colors[q % N_SERIES_COLORS],
           gp_text(strat[q]));
    c->n_series += ns;
    if (budget_on_scale) {
        char bt[64];
        oomb_format_bytes(budget, bt, sizeof bt);
        SB(g, ", \\\n     %g with lines dt 2 lw 2 lc rgb \"%s\" title \"budget %s\"",
           (double)budget / mu.div, RED, bt);
        c->n_series++;
    }
    if (any_oom) {
        /* Out of memory: an x inside the open form of the strategy's marker,
         * at its own position, with its name below in its colour. */
        for (int q = 0; q < ns; q++)
            SB(g, ", \\\n     \"%s.dat\" index %d using 6:($4==1?$5:NaN) with points pt %d ps 2.4 "
                  "lw 2 lc rgb \"%s\" notitle, \\\n"
                  "     \"%s.dat\" index %d using 6:($4==1?$5:NaN) with points pt 2 ps 1.5 "
                  "lw 2.5 lc rgb \"%s\" %s, \\\n"
                  "     \"%s.dat\" index %d using 6:($4==1?$5:NaN):7 with labels boxed rotate by "
                  "90 right offset 0,-1.6 tc rgb \"%s\" notitle",
               c->stem, q, SERIES_PT(q) - 1, series_colors[q % N_SERIES_COLORS], c->stem, q,
               series_colors[q % N_SERIES_COLORS],
               q == 0 ? "title \"out of memory (OOM)\"" : "notitle", c->stem, q,
               series_colors[q % N_SERIES_COLORS]);
        c->n_series += 3 * ns;
    }
    SB(g, "\n");
    /* bottom: throughput */
    SB(g, "set title \"throughput%s\"\nset ylabel \"throughput (samples/s)\"\nset yrange [0:%g]\n",
       any_oom ? "; x on the axis: out of memory" : "", ttop > 0 ? ttop * 1.15 : 1.0);
    SB(g, "plot ");
    for (int q = 0; q < ns; q++)
        SB(g,
           "%s\"%s.dat\" index %d using 1:($4==0?$3:NaN) with linespoints pt %d ps 1.3 "
           "lw 2 lc rgb \"%s\" title %s",
           q ? ", \\\n     " : "", c->stem, q, SERIES_PT(q), series_colors[q % N_SERIES_COLORS],
           gp_text(strat[q]));
    c->n_series += ns;
    if (any_oom) {
        for (int q = 0; q < ns; q++)
            SB(g, ", \\\n     \"%s.dat\" index %d using 6:($4==1?0:NaN) with points pt %d ps 2.4 "
                  "lw 2 lc rgb \"%s\" notitle, \\\n"
                  "     \"%s.dat\" index %d using 6:($4==1?0:NaN) with points pt 2 ps 1.5 "
                  "lw 2.5 lc rgb \"%s\" %s",
               c->stem, q, SERIES_PT(q) - 1, series_colors[q % N_SERIES_COLORS], c->stem, q,
               series_colors[q % N_SERIES_COLORS],
               q == 0 ? "title \"out of memory (OOM)\"" : "notitle");
        c->n_series += 2 * ns;
    }
    SB(g, "\nunset multiplot\n");
    gp_end(c);
    caption(c,
            "Each strategy of %s (%s) across the batch sizes swept. Top: peak tracked memory%s; "
            "an x inside the open form of a strategy's marker, labelled with its name, marks a "
            "batch size at which that strategy ran out of memory (drawn at the budget; when "
            "several did at one batch size their marks are set side by side around it). "
            "Bottom: throughput in samples per second; an x on the axis is an out-of-memory "
            "run.",
            ref->scenario, mode_text(ref->mode),
            budget_on_scale ? " against the budget (dashed red)" : "");
}

/* --------------------------------------- chart 6: baseline vs current - */

static const struct oomb_run_result *find_key(const struct oomb_results *r,
                                              const struct oomb_run_result *k)
{
    for (int i = 0; i < r->n_runs; i++)
        if (same_key(&r->runs[i], k))
            return &r->runs[i];
    return NULL;
}

/* Appends a shallow copy of run to dst, which owns only its array (free it
 * with free(dst->runs)). */
static int append_run(struct oomb_results *dst, int *cap, const struct oomb_run_result *run)
{
    if (dst->n_runs == *cap) {
        int nc = *cap ? 2 * *cap : 16;
        struct oomb_run_result *p = realloc(dst->runs, (size_t)nc * sizeof *p);
        if (!p)
            return OOMB_ERR_INTERNAL;
        dst->runs = p;
        *cap = nc;
    }
    dst->runs[dst->n_runs++] = *run;
    return OOMB_OK;
}

/* Appends every run of src with k's identity to dst (as append_run). */
static int append_same_key(struct oomb_results *dst, int *cap, const struct oomb_results *src,
                           const struct oomb_run_result *k)
{
    int rc = OOMB_OK;
    for (int i = 0; i < src->n_runs && rc == OOMB_OK; i++)
        if (same_key(&src->runs[i], k))
            rc = append_run(dst, cap, &src->runs[i]);
    return rc;
}

/* The file-level fields the engine reads (BLAS setup), lent from src. */
static void lend_file_fields(struct oomb_results *dst, const struct oomb_results *src)
{
    dst->device_class = src->device_class;
    dst->blas_library = src->blas_library;
    dst->blas_version = src->blas_version;
    dst->blas_kernel = src->blas_kernel;
    dst->blas_parallel = src->blas_parallel;
}

/* Whether the chart and tables show an item: every verdict but "same", and
 * the headline metrics of a run also when unchanged. */
static int shown_item(const struct oomb_verdict_item *it)
{
    if (it->kind == OOMB_VERDICT_NEW || it->kind == OOMB_VERDICT_MISSING)
        return 0;
    if (it->kind != OOMB_VERDICT_SAME)
        return 1;
    return strcmp(it->metric, "memory.total") == 0 || strcmp(it->metric, "time.step") == 0 ||
           strcmp(it->metric, "quality.final_loss") == 0;
}

/* Judges head against base with the verdict engine and keeps its items. */
static int judge(struct oomb_report *rep, const struct oomb_report_input *in,
                 const struct oomb_results *base, const struct oomb_results *head)
{
    struct oomb_verdict_options def;
    const struct oomb_verdict_options *o = in->verdict;
    if (!o) {
        oomb_verdict_options_init(&def);
        o = &def;
    }
    struct oomb_verdict v;
    if (oomb_verdict_compare(base, 1, head, 1, o, &v) != OOMB_OK) {
        oomb_verdict_free(&v);
        return OOMB_ERR_INTERNAL;
    }
    oomb_verdict_sort(&v);
    rep->n_regressions = v.n_regressed;
    rep->n_improvements = v.n_improved;
    rep->n_inconclusive = v.n_inconclusive;
    for (int i = 0; i < v.n; i++) {
        const struct oomb_verdict_item *it = &v.items[i];
        if (it->area == OOMB_AREA_TIME && isfinite(it->threshold_pct))
            rep->noise_pct = it->threshold_pct;
        if (!shown_item(it))
            continue;
        struct oomb_report_change *p =
            realloc(rep->changes, (size_t)(rep->n_changes + 1) * sizeof *rep->changes);
        if (!p) {
            oomb_verdict_free(&v);
            return OOMB_ERR_INTERNAL;
        }
        rep->changes = p;
        struct oomb_report_change *ch = &p[rep->n_changes++];
        memset(ch, 0, sizeof *ch);
        snprintf(ch->run, sizeof ch->run, "%.80s/%.80s %s b=%lld", it->scenario, it->strategy,
                 mode_text(it->mode), (long long)it->batch);
        snprintf(ch->metric, sizeof ch->metric, "%s", it->metric);
        snprintf(ch->detail, sizeof ch->detail, "%s", it->detail);
        ch->base = it->base;
        ch->cur = it->head;
        ch->unit = it->area == OOMB_AREA_MEMORY                   ? "bytes"
                   : strcmp(it->metric, "throughput") == 0        ? "/s"
                   : it->area == OOMB_AREA_TIME                   ? "ns"
                                                                  : "";
        if (it->area == OOMB_AREA_TIME)
            ch->change = it->change_pct / 100;
        else if (!isfinite(it->base) || !isfinite(it->head) || it->area == OOMB_AREA_OUTCOME)
            ch->change = NAN;
        else if (it->base == 0)
            ch->change = it->head == 0 ? 0.0 : (it->head > 0 ? 1.0 : -1.0);
        else
            ch->change = (it->head - it->base) / fabs(it->base);
        ch->verdict = it->kind == OOMB_VERDICT_REGRESSED      ? OOMB_CHANGE_REGRESSION
                      : it->kind == OOMB_VERDICT_IMPROVED     ? OOMB_CHANGE_IMPROVEMENT
                      : it->kind == OOMB_VERDICT_INCONCLUSIVE ? OOMB_CHANGE_INCONCLUSIVE
                                                              : OOMB_CHANGE_SAME;
    }
    oomb_verdict_free(&v);
    return OOMB_OK;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/*
 * The comparison: the current runs against the baseline (or the oldest file
 * holding each run against the newest, when no baseline is given), judged
 * by the verdict engine as `compare` judges them: every run of a matched
 * identity in the baseline file takes part (a baseline of several runs), and
 * the counts and numbers are the engine's.
 */
static int build_changes(struct oomb_report *rep, const struct oomb_report_input *in)
{
    struct oomb_results base = {0}, head = {0};
    int cap_b = 0, cap_h = 0, matched = 0, rc = OOMB_OK;
    rep->noise_pct = in->verdict && in->verdict->noise_pct >= 0 ? in->verdict->noise_pct : 5;
    if (in->n_baseline > 0) {
        snprintf(rep->cmp_what, sizeof rep->cmp_what, "baseline %s against the current results",
                 in->baseline_label ? base_name(in->baseline_label) : "(given)");
        snprintf(rep->cmp_short, sizeof rep->cmp_short, "baseline %s against current",
                 in->baseline_label ? base_name(in->baseline_label) : "(given)");
        for (int i = 0; i < rep->n_cur && rc == OOMB_OK; i++) {
            int s = in->n_baseline - 1;
            while (s >= 0 && !find_key(in->baseline[s].res, rep->cur[i]))
                s--;
            if (s < 0)
                continue;
            if (!matched++) {
                lend_file_fields(&base, in->baseline[s].res);
                lend_file_fields(&head, in->sets[in->n_sets - 1].res);
            }
            rc = append_same_key(&base, &cap_b, in->baseline[s].res, rep->cur[i]);
            if (rc == OOMB_OK)
                rc = append_run(&head, &cap_h, rep->cur[i]);
        }
        if (!matched) {
            snprintf(rep->cmp_note, sizeof rep->cmp_note,
                     "the baseline %s has no run of the same scenario, mode, batch and strategy",
                     in->baseline_label ? in->baseline_label : "");
            rep->cmp_what[0] = '\0';
        }
    } else if (in->n_sets < 2) {
        snprintf(rep->cmp_note, sizeof rep->cmp_note,
                 "no baseline given (--baseline) and only one results file: nothing to compare");
    } else {
        const struct oomb_report_set *old = &in->sets[0], *new = &in->sets[in->n_sets - 1];
        snprintf(rep->cmp_what, sizeof rep->cmp_what,
                 "the oldest results (%s, created %s) against the newest (%s, created %s)",
                 base_name(old->path), old->res->created, base_name(new->path), new->res->created);
        snprintf(rep->cmp_short, sizeof rep->cmp_short, "oldest file %s against newest %s",
                 base_name(old->path), base_name(new->path));
        for (int i = 0; i < rep->n_cur && rc == OOMB_OK; i++) {
            /* The oldest and the newest file holding this run, when they differ. */
            int bs = 0, rs = in->n_sets - 1;
            while (bs < in->n_sets && !find_key(in->sets[bs].res, rep->cur[i]))
                bs++;
            while (rs >= 0 && !find_key(in->sets[rs].res, rep->cur[i]))
                rs--;
            if (bs >= in->n_sets || rs < 0 || bs == rs)
                continue;
            if (!matched++) {
                lend_file_fields(&base, in->sets[bs].res);
                lend_file_fields(&head, in->sets[rs].res);
            }
            rc = append_same_key(&base, &cap_b, in->sets[bs].res, rep->cur[i]);
            if (rc == OOMB_OK)
                rc = append_same_key(&head, &cap_h, in->sets[rs].res, rep->cur[i]);
        }
        if (!matched) {
            snprintf(rep->cmp_note, sizeof rep->cmp_note,
                     "the results files given share no run (same scenario, mode, batch and "
                     "strategy) to compare");
            rep->cmp_what[0] = '\0';
        }
    }
    if (rc == OOMB_OK && matched)
        rc = judge(rep, in, &base, &head);
    free(base.runs);
    free(head.runs);
    return rc;
}

static void chart_baseline(struct oomb_chart *c, struct oomb_report *rep,
                           const struct oomb_report_input *in)
{
    if (!rep->cmp_what[0]) {
        note(c, "%s", rep->cmp_note);
        return;
    }
    int rows[1024], n = 0, count[4] = {0, 0, 0, 0}, n_zero = 0, n_finite = 0;
    const double noise = rep->noise_pct;
    double lo = -2 * noise, hi = 2 * noise;
    for (int i = 0; i < rep->n_changes; i++)
        if (isfinite(rep->changes[i].change)) {
            n_finite++;
            n_zero += rep->changes[i].change == 0;
        }
    /* Unchanged metrics (memory is exact, losses often are) are listed in the
     * table; bars for them would only make the chart long. */
    int skip_zero = n_zero < n_finite;
    for (int i = 0; i < rep->n_changes && n < 1024; i++) {
        if (!isfinite(rep->changes[i].change) || (skip_zero && rep->changes[i].change == 0))
            continue;
        rows[n++] = i;
        count[rep->changes[i].verdict]++;
        double pc = 100 * rep->changes[i].change;
        lo = fmin(lo, pc);
        hi = fmax(hi, pc);
    }
    if (n == 0) {
        note(c, "no metric could be compared (no run ended ok in both)");
        return;
    }
    /* Room for the value labels right of the bars. */
    double span = hi - lo;
    lo -= 0.05 * span;
    hi += 0.22 * span;
    struct oomb_sbuf *d = &c->dat;
    SB(d,
       "# %s: %s\n# change in %% of the baseline; verdict 0 unchanged or within noise "
       "(%g%%), 1 regression, 2 improvement, 3 inconclusive (too noisy to judge)\n"
       "# row\tlabel\tbaseline\tcurrent\tchange_pct\tverdict\ttext\n",
       c->title, dat_str(rep->cmp_what), noise);
    for (int k = 0; k < n; k++) {
        const struct oomb_report_change *ch = &rep->changes[rows[k]];
        char lab[320], field[320], text[64];
        snprintf(lab, sizeof lab, "%s: %s", ch->run, ch->metric);
        dat_text(lab, field, sizeof field);
        snprintf(text, sizeof text, "%+.2f%%%s", 100 * ch->change,
                 ch->verdict == OOMB_CHANGE_REGRESSION      ? " regression"
                 : ch->verdict == OOMB_CHANGE_INCONCLUSIVE ? " inconclusive"
                                                            : "");
        SB(d, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", k, field, num(ch->base), num(ch->cur),
           num(100 * ch->change), (int)ch->verdict, text);
    }
    int h = 170 + 26 * n;
    if (h < 420)
        h = 420;
    gp_begin(c, in, 1200, h);
    struct oomb_sbuf *g = &c->gp;
    char zero[96] = "";
    if (skip_zero && n_zero)
        snprintf(zero, sizeof zero, "\\n%d metric(s) exactly unchanged are not drawn", n_zero);
    SB(g, "set title %s.\": relative change per metric\\n\".%s.\"%s\"\n", gp_text(c->title),
       gp_text(rep->cmp_short), zero);
    SB(g, "set xlabel \"change against the baseline (%%; positive: more memory, slower, "
          "higher loss)\"\n"
          "set xrange [%g:%g]\nset yrange [%g:-0.7]\n"
          "set ytics nomirror\nset grid xtics noytics\nset key outside top center horizontal\n"
          "set object 1 rect from %g, graph 0 to %g, graph 1 behind fc rgb \"#e4e4e4\" "
          "fs solid 1.0 noborder\n"
          "set arrow 1 from 0, graph 0 to 0, graph 1 nohead lc rgb \"#333333\" lw 1.2\n"
          "set style fill solid 0.85 noborder\n",
       lo, hi, n - 0.3, -noise, noise);
    static const char *const vname[4] = {"unchanged or within noise", "regression", "improvement",
                                         "inconclusive"};
    static const char *const vcolor[4] = {"#999999", RED, "#228833", "#ddaa33"};
    SB(g, "set ytics (");
    for (int k = 0; k < n; k++) {
        const struct oomb_report_change *ch = &rep->changes[rows[k]];
        char lab[320];
        snprintf(lab, sizeof lab, "%s: %s", ch->run, ch->metric);
        SB(g, "%s%s %d", k ? ", " : "", gp_text(lab), k);
    }
    SB(g, ")\n");
    SB(g, "plot NaN with boxes fs solid 1.0 lc rgb \"#e4e4e4\" title \"noise band \u00b1%g%%\"",
       noise);
    c->n_series = 1;
    for (int v = 0; v < 4; v++) {
        if (!count[v])
            continue;
        SB(g, ", \\\n     \"%s.dat\" using ($6==%d?$5/2:NaN):1:($5<0?$5:0):($5<0?0:$5):"
              "($1-0.35):($1+0.35) "
              "with boxxyerror lc rgb \"%s\" title \"%s (%d)\"",
           c->stem, v, vcolor[v], vname[v], count[v]);
        c->n_series++;
    }
    SB(g, ", \\\n     \"%s.dat\" using ($5>0?$5:0):1:7 with labels left offset char 0.6,0 "
          "notitle\n",
       c->stem);
    c->n_series++;
    gp_end(c);
    caption(c,
            "Compared: %s, by the verdict engine of `oombench compare` (the same verdicts and "
            "numbers). One bar per metric of each run: the relative change of the current "
            "value against the baseline. The grey band is the time noise threshold (%g%%). Red "
            "bars are regressions: any increase of memory (exact), a time whose whole interval "
            "lies beyond the threshold, a quality beyond its tolerance; green bars improved; "
            "amber times are inconclusive (the machine too noisy to judge them).%s",
            rep->cmp_what, noise,
            skip_zero && n_zero ? " Metrics exactly unchanged are in the table only." : "");
}

/* --------------------------------------------------- chart 7: history - */

/* Commits in order: by the commit time of the revision each file records,
 * else by creation time. */
static int cmp_set_created(const void *a, const void *b)
{
    const struct oomb_report_set *x = a, *y = b;
    int64_t wx = oomb_results_when(x->res), wy = oomb_results_when(y->res);
    if (wx != wy)
        return wx < wy ? -1 : 1;
    int c = strcmp(x->res->created ? x->res->created : "", y->res->created ? y->res->created : "");
    return c ? c : strcmp(x->path, y->path);
}

static int build_history(struct oomb_report *rep, const struct oomb_report_input *in)
{
    int cap = in->n_sets + in->n_history;
    rep->hist = calloc((size_t)(cap ? cap : 1), sizeof *rep->hist);
    if (!rep->hist)
        return OOMB_ERR_INTERNAL;
    for (int pass = 0; pass < 2; pass++) {
        const struct oomb_report_set *src = pass ? in->history : in->sets;
        int n = pass ? in->n_history : in->n_sets;
        for (int i = 0; i < n; i++) {
            int dup = 0;
            for (int j = 0; j < rep->n_hist; j++)
                dup |= strcmp(rep->hist[j].path, src[i].path) == 0;
            if (!dup)
                rep->hist[rep->n_hist++] = src[i];
        }
    }
    qsort(rep->hist, (size_t)rep->n_hist, sizeof *rep->hist, cmp_set_created);
    return OOMB_OK;
}

static void short_created(const char *created, char *buf, size_t len)
{
    /* "2026-11-23T06:27:12Z" -> "11-23 06:27" */
    if (created && strlen(created) >= 16 && created[10] == 'T')
        snprintf(buf, len, "%.5s %.5s", created + 5, created + 11);
    else
        snprintf(buf, len, "%s", created && created[0] ? created : "?");
}

static void chart_history(struct oomb_chart *c, struct oomb_report *rep,
                          const struct oomb_report_input *in)
{
    if (rep->n_hist < 2) {
        note(c, "history needs at least two results files (several RESULTS, or --history DIR "
                "with the files a nightly job keeps); found %d",
             rep->n_hist);
        return;
    }
    /* Series: the ok runs of the newest set found ok in at least two sets. */
    const struct oomb_run_result *keys[MAX_HISTORY_SERIES];
    int nk = 0, more = 0;
    for (int s = rep->n_hist - 1; s >= 0; s--) {
        const struct oomb_results *res = rep->hist[s].res;
        for (int i = 0; i < res->n_runs; i++) {
            const struct oomb_run_result *r = &res->runs[i];
            if (r->outcome != OOMB_OUTCOME_OK ||
                (in->scenario && strcmp(r->scenario, in->scenario) != 0))
                continue;
            int known = 0;
            for (int k = 0; k < nk; k++)
                known |= same_key(keys[k], r);
            if (known)
                continue;
            int found = 0;
            for (int t = 0; t < rep->n_hist; t++) {
                const struct oomb_run_result *x = find_key(rep->hist[t].res, r);
                found += x && x->outcome == OOMB_OUTCOME_OK;
            }
            if (found < 2)
                continue;
            if (nk < MAX_HISTORY_SERIES)
                keys[nk++] = r;
            else
                more++;
        }
    }
    if (nk == 0) {
        note(c, "no run (same scenario, mode, batch and strategy) ended ok in two or more of the "
                "%d results files",
             rep->n_hist);
        return;
    }
    double mtop = 0, ttop = 0;
    for (int k = 0; k < nk; k++)
        for (int s = 0; s < rep->n_hist; s++) {
            const struct oomb_run_result *x = find_key(rep->hist[s].res, keys[k]);
            if (x && x->outcome == OOMB_OUTCOME_OK) {
                mtop = fmax(mtop, (double)x->peak_bytes);
                ttop = fmax(ttop, fin(x->step_stats.median));
            }
        }
    struct unit mu = mem_unit(mtop), tu = time_unit(ttop);
    struct oomb_sbuf *d = &c->dat;
    SB(d, "# %s\n# one block per run: file number (oldest 0), peak memory (%s), step time median "
          "(%s), memory regression, time regression (1: worse than the previous file)\n",
       c->title, mu.name, tu.name);
    int n_reg = 0;
    for (int k = 0; k < nk; k++) {
        char name[192];
        run_fullname(keys[k], name, sizeof name);
        SB(d, "%s# index %d: %s\n", k ? "\n\n" : "", k, dat_str(name));
        double pm = NAN, pt = NAN;
        for (int s = 0; s < rep->n_hist; s++) {
            const struct oomb_run_result *x = find_key(rep->hist[s].res, keys[k]);
            if (!x || x->outcome != OOMB_OUTCOME_OK) {
                SB(d, "%d\t?\t?\t0\t0\n", s);
                continue;
            }
            double m = (double)x->peak_bytes, t = x->step_stats.median;
            int rm = isfinite(pm) && m > pm;
            int rt = isfinite(pt) && isfinite(t) && pt > 0 && (t - pt) / pt > rep->noise_pct / 100;
            n_reg += rm + rt;
            SB(d, "%d\t%s\t%s\t%d\t%d\n", s, num(m / mu.div), num(t / tu.div), rm, rt);
            pm = m;
            if (isfinite(t))
                pt = t;
        }
    }
    gp_begin(c, in, 1100, 860);
    struct oomb_sbuf *g = &c->gp;
    SB(g, "set multiplot layout 2,1 title %s.\" (%d results files, oldest left)\"\n",
       gp_text(c->title), rep->n_hist);
    SB(g, "set xrange [-0.3:%g]\nset xtics (", rep->n_hist - 1 + 0.3);
    int any_rev = 0;
    for (int s = 0; s < rep->n_hist; s++)
        any_rev |= rep->hist[s].res->revision && rep->hist[s].res->revision[0];
    for (int s = 0; s < rep->n_hist; s++) {
        const struct oomb_results *hr = rep->hist[s].res;
        char when[64], rev[16];
        short_created(hr->created, when, sizeof when);
        if (hr->revision_time > 0) { /* the commit's own time */
            time_t t = (time_t)hr->revision_time;
            struct tm tm;
            if (gmtime_r(&t, &tm))
                strftime(when, sizeof when, "%m-%d %H:%M", &tm);
        }
        snprintf(rev, sizeof rev, "%.10s", hr->revision && hr->revision[0] ? hr->revision : "?");
        SB(g, "%s", s ? ", " : "");
        if (any_rev) { /* the commit, its date on a second line */
            SB(g, "%s.\"\\n\".", gp_text(rev));
        }
        SB(g, "%s %d", gp_text(when), s);
    }
    SB(g, ")%s\n", rep->n_hist > 6 ? " rotate by 30 right" : "");
    SB(g, "set xlabel \"%s\"%s\nset lmargin at screen 0.09\n"
          "set rmargin at screen 0.68\nset key outside right top\n"
          "set offsets 0, 0, graph 0.1, 0\n",
       any_rev ? "commit (in commit order; its time, UTC, below)" : "results file (created, UTC)",
       any_rev ? " offset 0,-0.6" : "");
    for (int panel = 0; panel < 2; panel++) {
        if (panel == 0)
            SB(g, "set title \"peak memory (any increase is a regression)\"\n"
                  "set ylabel \"peak memory (%s)\"\nset yrange [0:*]\n",
               mu.name);
        else
            SB(g, "set title \"median step time (regression: slower by more than %g%%)\"\n"
                  "set ylabel \"step time (%s)\"\nset yrange [0:*]\n",
               rep->noise_pct, tu.name);
        SB(g, "plot ");
        for (int k = 0; k < nk; k++) {
            char name[192];
            run_fullname(keys[k], name, sizeof name);
            SB(g,
               "%s\"%s.dat\" index %d using 1:%d with linespoints pt %d ps 1.2 lw 2 "
               "lc rgb \"%s\" title %s",
               k ? ", \\\n     " : "", c->stem, k, panel ? 3 : 2, SERIES_PT(k),
               series_colors[k % N_SERIES_COLORS], gp_text(name));
        }
        c->n_series += nk;
        for (int k = 0; k < nk; k++) {
            SB(g, ", \\\n     \"%s.dat\" index %d using 1:($%d==1?$%d:NaN) with points pt 6 "
                  "ps 3 lw 2.5 lc rgb \"%s\" %s",
               c->stem, k, panel ? 5 : 4, panel ? 3 : 2, RED,
               k == 0 ? "title \"regression\"" : "notitle");
        }
        c->n_series += nk;
        SB(g, "\n");
    }
    SB(g, "unset multiplot\n");
    gp_end(c);
    caption(c,
            "Peak memory (top) and median step time (bottom) of each run across %d results "
            "files ordered by their creation time. A red ring marks a regression against the "
            "previous file: any increase of peak memory, or a step time slower by more than "
            "%g%%. %d regression(s) in this history.%s",
            rep->n_hist, rep->noise_pct, n_reg,
            more ? " Only the first eight runs are drawn; use --scenario to focus." : "");
}

/* ----------------------------------------------------------- building - */

struct cur_item {
    const struct oomb_run_result *r;
    int order;
    int scen; /* the order of the first run of its scenario */
};

static int cmp_cur(const void *a, const void *b)
{
    const struct cur_item *x = a, *y = b;
    if (x->scen != y->scen)
        return x->scen - y->scen;
    if (x->r->mode != y->r->mode)
        return x->r->mode == OOMB_MODE_TRAIN ? -1 : 1;
    if (x->r->batch != y->r->batch)
        return x->r->batch < y->r->batch ? -1 : 1;
    return x->order - y->order;
}

/* A section's chart stem: "chartN-what" when the report has one section,
 * else "sK-SCENARIO-chartN-what", the scenario's name left out when it is
 * not a safe file name (oomb_check_path_component): the section number
 * keeps stems apart, the name only helps a reader of the folder. */
static void section_stem(struct oomb_chart *c, const struct oomb_report *rep, int section,
                         int kind)
{
    if (rep->n_sections == 1) {
        snprintf(c->stem, sizeof c->stem, "%s", chart_stems[kind]);
        return;
    }
    const char *name = rep->sections[section].scenario;
    char why[128];
    if (oomb_check_path_component(name, why, sizeof why) == OOMB_OK)
        snprintf(c->stem, sizeof c->stem, "s%d-%s-%s", section + 1, name, chart_stems[kind]);
    else
        snprintf(c->stem, sizeof c->stem, "s%d-%s", section + 1, chart_stems[kind]);
}

/* Splits the current runs (sorted, a scenario's runs together) into
 * sections and lays out the charts: charts 1 to 5 of each section, then
 * charts 6 and 7. */
static int build_sections(struct oomb_report *rep)
{
    int ns = 0;
    for (int i = 0; i < rep->n_cur; i++)
        ns += i == 0 || strcmp(rep->cur[i]->scenario, rep->cur[i - 1]->scenario) != 0;
    int nc = ns * OOMB_REPORT_SECTION_CHARTS + OOMB_REPORT_CHARTS - OOMB_REPORT_SECTION_CHARTS;
    rep->sections = calloc((size_t)ns, sizeof *rep->sections);
    rep->charts = calloc((size_t)nc, sizeof *rep->charts);
    if (!rep->sections || !rep->charts)
        return OOMB_ERR_INTERNAL;
    rep->n_sections = ns;
    rep->n_charts = nc;
    int k = -1;
    for (int i = 0; i < rep->n_cur; i++) {
        const struct oomb_run_result *r = rep->cur[i];
        if (k < 0 || strcmp(r->scenario, rep->sections[k].scenario) != 0) {
            struct oomb_report_section *sec = &rep->sections[++k];
            sec->scenario = r->scenario;
            sec->first = i;
            sec->charts = k * OOMB_REPORT_SECTION_CHARTS;
            snprintf(sec->id, sizeof sec->id, "s%d", k + 1);
        }
        struct oomb_report_section *sec = &rep->sections[k];
        sec->n++;
        switch (r->outcome) {
        case OOMB_OUTCOME_OK: sec->n_ok++; break;
        case OOMB_OUTCOME_OOM: sec->n_oom++; break;
        case OOMB_OUTCOME_NOT_APPLICABLE: sec->n_na++; break;
        default: sec->n_other++; break;
        }
        if (r->budget_bytes > sec->budget)
            sec->budget = r->budget_bytes;
    }
    for (int s = 0; s < ns; s++)
        for (int kind = 0; kind < OOMB_REPORT_SECTION_CHARTS; kind++) {
            struct oomb_chart *c = &rep->charts[s * OOMB_REPORT_SECTION_CHARTS + kind];
            c->kind = kind;
            c->section = s;
            c->title = chart_titles[kind];
            section_stem(c, rep, s, kind);
        }
    for (int kind = OOMB_REPORT_SECTION_CHARTS; kind < OOMB_REPORT_CHARTS; kind++) {
        struct oomb_chart *c =
            &rep->charts[ns * OOMB_REPORT_SECTION_CHARTS + kind - OOMB_REPORT_SECTION_CHARTS];
        c->kind = kind;
        c->section = -1;
        c->title = chart_titles[kind];
        snprintf(c->stem, sizeof c->stem, "%s", chart_stems[kind]);
    }
    return OOMB_OK;
}

int oomb_report_build(const struct oomb_report_input *in, struct oomb_report *rep, char *err,
                      size_t err_len)
{
    memset(rep, 0, sizeof *rep);
    int total = 0;
    for (int s = 0; s < in->n_sets; s++)
        total += in->sets[s].res->n_runs;
    struct cur_item *items = calloc((size_t)(total ? total : 1), sizeof *items);
    rep->cur = calloc((size_t)(total ? total : 1), sizeof *rep->cur);
    if (!items || !rep->cur) {
        free(items);
        oomb_errf(err, err_len, "out of memory");
        return OOMB_ERR_INTERNAL;
    }
    /* The newest run of each key: walk the sets newest first. Within the
     * newest set the file's order is kept (none first); scenarios keep the
     * order they first appear in. */
    int n = 0;
    for (int s = in->n_sets - 1; s >= 0; s--) {
        const struct oomb_results *res = in->sets[s].res;
        for (int i = 0; i < res->n_runs; i++) {
            const struct oomb_run_result *r = &res->runs[i];
            if (in->scenario && strcmp(r->scenario, in->scenario) != 0)
                continue;
            int dup = 0, scen = n;
            for (int j = 0; j < n && !dup; j++) {
                dup = same_key(items[j].r, r);
                if (scen == n && strcmp(items[j].r->scenario, r->scenario) == 0)
                    scen = items[j].scen;
            }
            if (!dup) {
                items[n].r = r;
                items[n].order = n;
                items[n].scen = scen;
                n++;
            }
        }
    }
    if (n == 0) {
        free(items);
        if (in->scenario)
            oomb_errf(err, err_len, "no run of scenario '%s' in the results given", in->scenario);
        else
            oomb_errf(err, err_len, "the results given hold no runs");
        return OOMB_ERR_INVALID;
    }
    qsort(items, (size_t)n, sizeof *items, cmp_cur);
    for (int i = 0; i < n; i++)
        rep->cur[i] = items[i].r;
    rep->n_cur = n;
    free(items);

    if (build_sections(rep) != OOMB_OK || build_changes(rep, in) != OOMB_OK ||
        build_history(rep, in) != OOMB_OK) {
        oomb_errf(err, err_len, "out of memory");
        return OOMB_ERR_INTERNAL;
    }
    for (int s = 0; s < rep->n_sections; s++) {
        const struct oomb_report_section *sec = &rep->sections[s];
        struct view v;
        v.cur = rep->cur + sec->first;
        v.n = sec->n;
        /* Labels from the runs the section's charts show. */
        labels_init(&v.L, v.cur, v.n);
        struct oomb_chart *c = &rep->charts[sec->charts];
        chart_memory(&c[0], &v, in);
        chart_time(&c[1], &v, in);
        chart_tradeoff(&c[2], &v, in);
        chart_timeline(&c[3], &v, in);
        chart_sweep(&c[4], &v, in);
    }
    struct oomb_chart *last = &rep->charts[rep->n_charts - 2];
    chart_baseline(&last[0], rep, in);
    chart_history(&last[1], rep, in);
    for (int i = 0; i < rep->n_charts; i++)
        if (rep->charts[i].dat.failed || rep->charts[i].gp.failed) {
            oomb_errf(err, err_len, "out of memory");
            return OOMB_ERR_INTERNAL;
        }
    return OOMB_OK;
}

int oomb_report_is_chart_file(const char *name)
{
    static const char *const exts[] = {".svg", ".png", ".dat", ".gp"};
    const char *dot = strrchr(name, '.');
    int ext_ok = 0;
    for (size_t e = 0; dot && e < sizeof exts / sizeof exts[0]; e++)
        ext_ok |= strcmp(dot, exts[e]) == 0;
    if (!ext_ok)
        return 0;
    size_t stem_len = (size_t)(dot - name);
    int section = 0;
    if (name[0] == 's' && name[1] >= '0' && name[1] <= '9') {
        const char *p = name + 1;
        while (*p >= '0' && *p <= '9')
            p++;
        section = *p == '-';
    }
    for (int k = 0; k < OOMB_REPORT_CHARTS; k++) {
        size_t n = strlen(chart_stems[k]);
        if (stem_len == n && strncmp(name, chart_stems[k], n) == 0)
            return 1;
        if (section && k < OOMB_REPORT_SECTION_CHARTS && stem_len > n &&
            strncmp(dot - n, chart_stems[k], n) == 0 && dot[-(long)n - 1] == '-')
            return 1;
    }
    return 0;
}

void oomb_report_free(struct oomb_report *rep)
{
    for (int i = 0; i < rep->n_charts; i++) {
        oomb_sbuf_free(&rep->charts[i].dat);
        oomb_sbuf_free(&rep->charts[i].gp);
    }
    free(rep->charts);
    free(rep->sections);
    free(rep->cur);
    free(rep->changes);
    free(rep->hist);
    memset(rep, 0, sizeof *rep);
}

/* ------------------------------------------------------- html and md - */

static void fmt_value(const struct oomb_report_change *ch, double v, char *buf, size_t len)
{
    if (strcmp(ch->metric, "outcome") == 0) {
        const char *o = isfinite(v) ? oomb_outcome_name((enum oomb_outcome)(int)v) : NULL;
        snprintf(buf, len, "%s", o ? o : "-");
    } else if (!isfinite(v)) {
        snprintf(buf, len, "-");
    } else if (strcmp(ch->unit, "bytes") == 0) {
        oomb_format_bytes((uint64_t)v, buf, len);
    } else if (strcmp(ch->unit, "ns") == 0) {
        oomb_format_ns(v, buf, len);
    } else if (strcmp(ch->unit, "/s") == 0) {
        snprintf(buf, len, "%.4g/s", v);
    } else {
        snprintf(buf, len, "%.5g", v);
    }
}

static const char *verdict_text(enum oomb_change_verdict v)
{
    return v == OOMB_CHANGE_REGRESSION     ? "regression"
           : v == OOMB_CHANGE_IMPROVEMENT  ? "improvement"
           : v == OOMB_CHANGE_INCONCLUSIVE ? "inconclusive"
                                           : "unchanged or within noise";
}

/* The cells of one run row, formatted. */
struct run_cells {
    char peak[32], tags[OOMB_TAG_COUNT][32], step[32], ci[32], fwd[32], bwd[32], upd[32],
        tput[32], loss[32], acc[32], tacc[32], tdelta[32];
};

/* Whether any current run has a held-out evaluation: the tables then have
 * test accuracy columns. */
static int any_eval(const struct oomb_report *rep)
{
    for (int i = 0; i < rep->n_cur; i++)
        if (rep->cur[i]->has_eval)
            return 1;
    return 0;
}

/* A run that did not apply measured nothing: every cell says so ("n/a"),
 * none shows a zero. */
static void run_cells(const struct oomb_run_result *r, struct run_cells *c)
{
    if (r->outcome == OOMB_OUTCOME_NOT_APPLICABLE) {
        char *cells[] = {c->peak, c->step, c->ci,   c->fwd, c->bwd,  c->upd,
                         c->tput, c->loss, c->acc, c->tacc, c->tdelta};
        for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
            snprintf(cells[i], sizeof c->peak, "n/a");
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            snprintf(c->tags[t], sizeof c->tags[t], "n/a");
        return;
    }
    oomb_format_bytes(r->peak_bytes, c->peak, sizeof c->peak);
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        oomb_format_bytes(r->peak_by_tag[t], c->tags[t], sizeof c->tags[t]);
    oomb_format_ns(r->step_stats.median, c->step, sizeof c->step);
    if (isfinite(r->step_stats.ci_low) && isfinite(r->step_stats.ci_high)) {
        char a[32], b[32];
        oomb_format_ns(r->step_stats.ci_low, a, sizeof a);
        oomb_format_ns(r->step_stats.ci_high, b, sizeof b);
        snprintf(c->ci, sizeof c->ci, "%.14s - %.14s", a, b);
    } else {
        snprintf(c->ci, sizeof c->ci, "-");
    }
    oomb_format_ns(r->phase_stats[OOMB_PHASE_FORWARD].median, c->fwd, sizeof c->fwd);
    oomb_format_ns(r->phase_stats[OOMB_PHASE_BACKWARD].median, c->bwd, sizeof c->bwd);
    oomb_format_ns(r->phase_stats[OOMB_PHASE_UPDATE].median, c->upd, sizeof c->upd);
    if (isfinite(r->samples_per_s))
        snprintf(c->tput, sizeof c->tput, "%.4g", r->samples_per_s);
    else
        snprintf(c->tput, sizeof c->tput, "-");
    if (isfinite(r->final_loss))
        snprintf(c->loss, sizeof c->loss, "%.4g", r->final_loss);
    else
        snprintf(c->loss, sizeof c->loss, "-");
    if (r->has_accuracy && isfinite(r->accuracy_delta))
        snprintf(c->acc, sizeof c->acc, "%+.2f pp", 100 * r->accuracy_delta);
    else
        snprintf(c->acc, sizeof c->acc, "-");
    if (r->has_eval && isfinite(r->test_accuracy))
        snprintf(c->tacc, sizeof c->tacc, "%.4f", r->test_accuracy);
    else
        snprintf(c->tacc, sizeof c->tacc, "-");
    if (r->has_eval && isfinite(r->test_accuracy_delta))
        snprintf(c->tdelta, sizeof c->tdelta, "%+.2f pp", 100 * r->test_accuracy_delta);
    else
        snprintf(c->tdelta, sizeof c->tdelta, "-");
}

static const char css[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;"
    "max-width:1260px;padding:24px;color:#222;background:#fff;line-height:1.45}"
    "h1{margin-bottom:4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}"
    "table{border-collapse:collapse;margin:12px 0;font-size:13px}"
    "th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}"
    "th{background:#f3f3f3}td.l,th.l{text-align:left}"
    ".wide{overflow-x:auto}"
    "figure{margin:12px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}"
    ".note{background:#fff7e0;border-left:4px solid #e0a800;padding:8px 12px}"
    ".files{font-size:13px;color:#555}.meta{color:#555}"
    ".bad{color:#b00000;font-weight:600}.good{color:#1d7a35}.ok{color:#1d7a35}"
    ".oom{color:#a06000}.fail{color:#b00000}"
    "nav a{margin-right:14px}code{background:#f3f3f3;padding:1px 4px}";

static const char *outcome_class(enum oomb_outcome o)
{
    switch (o) {
    case OOMB_OUTCOME_OK: return "ok";
    case OOMB_OUTCOME_OOM:
    case OOMB_OUTCOME_SKIPPED:
    case OOMB_OUTCOME_NOT_APPLICABLE: return "oom";
    default: return "fail";
    }
}

/* The runs table of cur[0 .. n - 1]. */
static void html_runs_table(struct oomb_sbuf *b, const struct oomb_report *rep,
                            const struct oomb_run_result *const *cur, int n)
{
    SB(b, "<div class=\"wide\"><table>\n<tr><th class=\"l\">scenario</th><th class=\"l\">mode"
          "</th><th>batch</th><th class=\"l\">strategy</th><th class=\"l\">outcome</th>"
          "<th>peak</th>");
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        SB(b, "<th>%s</th>", oomb_tag_name(t));
    SB(b, "<th>step median</th><th>95%% interval</th><th>forward</th><th>backward</th>"
          "<th>update</th><th>samples/s</th><th>final loss</th><th>accuracy vs none</th>");
    int ev = any_eval(rep);
    if (ev)
        SB(b, "<th>test accuracy</th><th>test accuracy vs none</th>");
    SB(b, "</tr>\n");
    for (int i = 0; i < n; i++) {
        const struct oomb_run_result *r = cur[i];
        struct run_cells c;
        run_cells(r, &c);
        SB(b, "<tr><td class=\"l\">");
        html_text(b, r->scenario);
        SB(b, "</td><td class=\"l\">%s</td><td>%lld</td><td class=\"l\">", mode_text(r->mode),
           (long long)r->batch);
        html_text(b, r->strategy);
        SB(b, "</td><td class=\"l %s\" title=\"", outcome_class(r->outcome));
        html_text(b, r->reason);
        SB(b, "\">%s</td><td>%s</td>", oomb_outcome_name(r->outcome), c.peak);
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            SB(b, "<td>%s</td>", c.tags[t]);
        SB(b, "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
              "<td>%s</td>",
           c.step, c.ci, c.fwd, c.bwd, c.upd, c.tput, c.loss, c.acc);
        if (ev) {
            SB(b, "<td title=\"");
            if (r->has_eval)
                SB(b, "%lld held-out samples", (long long)r->eval_samples);
            else
                html_text(b, r->eval_note);
            SB(b, "\">%s</td><td>%s</td>", c.tacc, c.tdelta);
        }
        SB(b, "</tr>\n");
    }
    SB(b, "</table></div>\n");
}

static void html_changes_table(struct oomb_sbuf *b, const struct oomb_report *rep)
{
    SB(b, "<div class=\"wide\"><table>\n<tr><th class=\"l\">run</th><th class=\"l\">metric</th>"
          "<th>baseline</th><th>current</th><th>change</th><th class=\"l\">verdict</th>"
          "<th class=\"l\">detail</th></tr>\n");
    for (int i = 0; i < rep->n_changes; i++) {
        const struct oomb_report_change *ch = &rep->changes[i];
        char bv[48], cv[48], pc[32];
        fmt_value(ch, ch->base, bv, sizeof bv);
        fmt_value(ch, ch->cur, cv, sizeof cv);
        if (isfinite(ch->change))
            snprintf(pc, sizeof pc, "%+.2f%%", 100 * ch->change);
        else
            snprintf(pc, sizeof pc, "-");
        SB(b, "<tr><td class=\"l\">");
        html_text(b, ch->run);
        SB(b, "</td><td class=\"l\">");
        html_text(b, ch->metric);
        SB(b, "</td><td>%s</td><td>%s</td><td>%s</td><td class=\"l %s\">%s</td><td class=\"l\">",
           bv, cv, pc,
           ch->verdict == OOMB_CHANGE_REGRESSION    ? "bad"
           : ch->verdict == OOMB_CHANGE_IMPROVEMENT ? "good"
                                                    : "",
           verdict_text(ch->verdict));
        html_text(b, ch->detail);
        SB(b, "</td></tr>\n");
    }
    SB(b, "</table></div>\n");
}

static void html_sets_table(struct oomb_sbuf *b, const struct oomb_report_set *sets, int n)
{
    SB(b, "<div class=\"wide\"><table>\n<tr><th>#</th><th class=\"l\">file</th>"
          "<th class=\"l\">created</th><th class=\"l\">device class</th>"
          "<th class=\"l\">tool version</th><th>runs</th></tr>\n");
    for (int i = 0; i < n; i++) {
        SB(b, "<tr><td>%d</td><td class=\"l\">", i);
        html_text(b, sets[i].path);
        SB(b, "</td><td class=\"l\">");
        html_text(b, sets[i].res->created);
        SB(b, "</td><td class=\"l\">");
        html_text(b, sets[i].res->device_class);
        SB(b, "</td><td class=\"l\">");
        html_text(b, sets[i].res->tool_version);
        SB(b, "</td><td>%d</td></tr>\n", sets[i].res->n_runs);
    }
    SB(b, "</table></div>\n");
}

/* One chart: its heading (level 2, or 3 inside a scenario's section), the
 * caption, the picture and its files, or why it is not drawn. */
static void html_chart(struct oomb_sbuf *b, const struct oomb_chart *c, int level)
{
    SB(b, "<h%d id=\"%s\">%d. ", level, c->stem, c->kind + 1);
    html_text(b, c->title);
    SB(b, "</h%d>\n", level);
    if (c->note[0]) {
        SB(b, "<p class=\"note\">Not drawn: ");
        html_text(b, c->note);
        SB(b, ".</p>\n");
        return;
    }
    SB(b, "<p>");
    html_text(b, c->caption);
    SB(b, "</p>\n");
    if (c->drawn)
        SB(b, "<figure><img src=\"%s.svg\" alt=\"%s\"></figure>\n"
              "<p class=\"files\"><a href=\"%s.png\">PNG</a> · <a href=\"%s.svg\">SVG"
              "</a> · <a href=\"%s.dat\">data</a> · <a href=\"%s.gp\">gnuplot script</a>"
              " (re-plot: <code>gnuplot %s.gp</code> in this folder)</p>\n",
           c->stem, c->title, c->stem, c->stem, c->stem, c->stem, c->stem);
    else
        SB(b, "<p class=\"note\">Chart not drawn; <a href=\"%s.dat\">data</a> and "
              "<a href=\"%s.gp\">gnuplot script</a> are here: run <code>gnuplot %s.gp"
              "</code> in this folder.</p>\n",
           c->stem, c->stem, c->stem);
}

/* The runs of cur[0 .. n - 1] that did not apply, one line per strategy and
 * reason with the modes and batch sizes it holds for. Nothing when none. */
static void html_na_list(struct oomb_sbuf *b, const struct oomb_run_result *const *cur, int n)
{
    int any = 0;
    for (int i = 0; i < n; i++) {
        const struct oomb_run_result *r = cur[i];
        if (r->outcome != OOMB_OUTCOME_NOT_APPLICABLE)
            continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = cur[j]->outcome == OOMB_OUTCOME_NOT_APPLICABLE &&
                   strcmp(cur[j]->strategy, r->strategy) == 0 &&
                   strcmp(cur[j]->reason ? cur[j]->reason : "", r->reason ? r->reason : "") == 0;
        if (seen)
            continue;
        if (!any++)
            SB(b, "<p>Not applicable (no bar in the charts, n/a in the table):</p>\n<ul>\n");
        SB(b, "<li><b>");
        html_text(b, r->strategy);
        SB(b, "</b> (");
        int k = 0;
        for (int j = i; j < n; j++)
            if (cur[j]->outcome == OOMB_OUTCOME_NOT_APPLICABLE &&
                strcmp(cur[j]->strategy, r->strategy) == 0 &&
                strcmp(cur[j]->reason ? cur[j]->reason : "", r->reason ? r->reason : "") == 0)
                SB(b, "%s%s b=%lld", k++ ? ", " : "", mode_text(cur[j]->mode),
                   (long long)cur[j]->batch);
        SB(b, "): ");
        html_text(b, r->reason && r->reason[0] ? r->reason : "no reason given");
        SB(b, "</li>\n");
    }
    if (any)
        SB(b, "</ul>\n");
}

/* "12 runs: 11 ok, 1 out of memory; budget 84.0 MiB; train; batch 256, 1024" */
static void html_section_meta(struct oomb_sbuf *b, const struct oomb_report *rep,
                              const struct oomb_report_section *sec)
{
    const struct oomb_run_result *const *cur = rep->cur + sec->first;
    SB(b, "%d run(s): %d ok", sec->n, sec->n_ok);
    if (sec->n_oom)
        SB(b, ", %d out of memory", sec->n_oom);
    if (sec->n_na)
        SB(b, ", %d not applicable", sec->n_na);
    if (sec->n_other)
        SB(b, ", %d failed, timed out or skipped", sec->n_other);
    char bt[64];
    if (sec->budget) {
        oomb_format_bytes(sec->budget, bt, sizeof bt);
        SB(b, "; budget %s", bt);
    } else {
        SB(b, "; no budget");
    }
    int train = 0, infer = 0;
    for (int i = 0; i < sec->n; i++) {
        train |= cur[i]->mode == OOMB_MODE_TRAIN;
        infer |= cur[i]->mode == OOMB_MODE_INFER;
    }
    SB(b, "; %s%s%s; batch ", train ? "train" : "", train && infer ? " and " : "",
       infer ? "infer" : "");
    int k = 0;
    for (int i = 0; i < sec->n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = cur[j]->batch == cur[i]->batch;
        if (!seen)
            SB(b, "%s%lld", k++ ? ", " : "", (long long)cur[i]->batch);
    }
    SB(b, ". <a href=\"#%s\">charts</a>", rep->charts[sec->charts].stem);
}

/* One row per scenario: its runs by outcome, its budget, a link. */
static void html_sections_table(struct oomb_sbuf *b, const struct oomb_report *rep)
{
    SB(b, "<div class=\"wide\"><table>\n<tr><th class=\"l\">scenario</th><th>runs</th>"
          "<th>ok</th><th>out of memory</th><th>not applicable</th><th>other</th>"
          "<th>budget</th></tr>\n");
    for (int s = 0; s < rep->n_sections; s++) {
        const struct oomb_report_section *sec = &rep->sections[s];
        char bt[64] = "-";
        if (sec->budget)
            oomb_format_bytes(sec->budget, bt, sizeof bt);
        SB(b, "<tr><td class=\"l\"><a href=\"#%s\">", sec->id);
        html_text(b, sec->scenario);
        SB(b, "</a></td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%s</td>"
              "</tr>\n",
           sec->n, sec->n_ok, sec->n_oom, sec->n_na, sec->n_other, bt);
    }
    SB(b, "</table></div>\n");
}

int oomb_report_html(const struct oomb_report *rep, const struct oomb_report_input *in,
                     const char *plot_note, struct oomb_sbuf *b)
{
    SB(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>oombench report</title>\n<style>%s</style>\n</head>\n<body>\n",
       css);
    const struct oomb_results *newest = in->sets[in->n_sets - 1].res;
    SB(b, "<h1>oombench report</h1>\n<p class=\"meta\">%d results file(s); newest created ",
       in->n_sets);
    html_text(b, newest->created);
    SB(b, " on ");
    html_text(b, newest->host_name);
    SB(b, " (device class ");
    html_text(b, newest->device_class);
    SB(b, ", ");
    html_text(b, newest->device_name && newest->device_name[0] ? newest->device_name : "cpu");
    SB(b, "); oombench ");
    html_text(b, newest->tool_version);
    SB(b, ".");
    if (in->scenario) {
        SB(b, " Scenario: ");
        html_text(b, in->scenario);
        SB(b, ".");
    }
    SB(b, "</p>\n");
    int multi = rep->n_sections > 1;
    SB(b, "<nav><a href=\"#runs\">%s</a>", multi ? "scenarios" : "runs");
    for (int i = 0; i < rep->n_charts; i++) {
        const struct oomb_chart *c = &rep->charts[i];
        if (multi && c->section >= 0) {
            if (c->kind == 0) {
                SB(b, "<a href=\"#%s\">", rep->sections[c->section].id);
                html_text(b, rep->sections[c->section].scenario);
                SB(b, "</a>");
            }
            continue;
        }
        SB(b, "<a href=\"#%s\">%d. %s</a>", c->stem, c->kind + 1,
           strchr(chart_stems[c->kind], '-') + 1);
    }
    SB(b, "<a href=\"#inputs\">inputs</a><a href=\"summary.md\">summary.md</a></nav>\n");
    if (plot_note) {
        SB(b, "<p class=\"note\">");
        html_text(b, plot_note);
        SB(b, "</p>\n");
    }
    if (rep->cmp_what[0]) {
        SB(b, "<p>%s%d regression(s)%s, %d improvement(s), %d inconclusive time(s) against ",
           rep->n_regressions ? "<span class=\"bad\">" : "<span class=\"good\">",
           rep->n_regressions, "</span>", rep->n_improvements, rep->n_inconclusive);
        html_text(b, rep->cmp_what);
        SB(b, ".</p>\n");
    }

    if (!multi) {
        const struct oomb_report_section *sec = &rep->sections[0];
        SB(b, "<h2 id=\"runs\">Runs</h2>\n<p>The newest result of each scenario, mode, batch "
              "and strategy. Memory is exact (tracked bytes); times are medians of the measured "
              "steps.</p>\n");
        html_runs_table(b, rep, rep->cur, rep->n_cur);
        html_na_list(b, rep->cur + sec->first, sec->n);
        for (int k = 0; k < OOMB_REPORT_SECTION_CHARTS; k++)
            html_chart(b, &rep->charts[k], 2);
    } else {
        SB(b, "<h2 id=\"runs\">Scenarios</h2>\n<p>One section per scenario, each with its own "
              "runs, budget and charts. Memory is exact (tracked bytes); times are medians of "
              "the measured steps. The comparison and the history, across scenarios, follow the "
              "sections.</p>\n");
        html_sections_table(b, rep);
        for (int s = 0; s < rep->n_sections; s++) {
            const struct oomb_report_section *sec = &rep->sections[s];
            SB(b, "<h2 id=\"%s\">Scenario ", sec->id);
            html_text(b, sec->scenario);
            SB(b, "</h2>\n<p class=\"meta\">");
            html_section_meta(b, rep, sec);
            SB(b, "</p>\n<h3 id=\"%s-runs\">Runs</h3>\n", sec->id);
            html_runs_table(b, rep, rep->cur + sec->first, sec->n);
            html_na_list(b, rep->cur + sec->first, sec->n);
            for (int k = 0; k < OOMB_REPORT_SECTION_CHARTS; k++)
                html_chart(b, &rep->charts[sec->charts + k], 3);
        }
    }
    for (int i = rep->n_charts - 2; i < rep->n_charts; i++) {
        const struct oomb_chart *c = &rep->charts[i];
        html_chart(b, c, 2);
        if (c->kind == 5 && rep->n_changes > 0)
            html_changes_table(b, rep);
        if (c->kind == 6 && rep->n_hist > 0) {
            SB(b, "<p>Results files in the history, oldest first:</p>\n");
            html_sets_table(b, rep->hist, rep->n_hist);
        }
    }
    SB(b, "<h2 id=\"inputs\">Inputs</h2>\n");
    html_sets_table(b, in->sets, in->n_sets);
    if (in->n_baseline > 0) {
        SB(b, "<p>Baseline:</p>\n");
        html_sets_table(b, in->baseline, in->n_baseline);
    }
    SB(b, "<p class=\"files\">Written by <code>oombench report</code>. What each chart shows: "
          "docs/report.md in the oombench sources.</p>\n</body>\n</html>\n");
    return b->failed ? OOMB_ERR_INTERNAL : OOMB_OK;
}

int oomb_report_markdown(const struct oomb_report *rep, const struct oomb_report_input *in,
                         const char *plot_note, struct oomb_sbuf *b)
{
    const struct oomb_results *newest = in->sets[in->n_sets - 1].res;
    SB(b, "# oombench report\n\n%d results file(s); newest created ", in->n_sets);
    md_text(b, newest->created);
    SB(b, " (device class ");
    md_text(b, newest->device_class);
    SB(b, ", oombench ");
    md_text(b, newest->tool_version);
    SB(b, "). Full report with tables: [index.html](index.html).\n\n");
    if (plot_note) {
        SB(b, "> ");
        md_text(b, plot_note);
        SB(b, "\n\n");
    }
    if (rep->cmp_what[0]) {
        SB(b, "**%d regression(s)**, %d improvement(s), %d inconclusive time(s) against ",
           rep->n_regressions, rep->n_improvements, rep->n_inconclusive);
        md_text(b, rep->cmp_what);
        SB(b,
           " (the verdicts of `oombench compare`: memory exact, times against a %g%% noise "
           "threshold).\n\n",
           rep->noise_pct);
        for (int i = 0; i < rep->n_changes; i++) {
            const struct oomb_report_change *ch = &rep->changes[i];
            if (ch->verdict == OOMB_CHANGE_SAME)
                continue;
            char bv[48], cv[48];
            fmt_value(ch, ch->base, bv, sizeof bv);
            fmt_value(ch, ch->cur, cv, sizeof cv);
            SB(b, "- %s ", verdict_text(ch->verdict));
            md_text(b, ch->run);
            SB(b, ", ");
            md_text(b, ch->metric);
            SB(b, ": %s -> %s (", bv, cv);
            md_text(b, ch->detail);
            SB(b, ")\n");
        }
        SB(b, "\n");
    } else {
        SB(b, "No comparison: ");
        md_text(b, rep->cmp_note);
        SB(b, ".\n\n");
    }
    int ev = any_eval(rep);
    SB(b, "| scenario | mode | batch | strategy | outcome | peak | step median | samples/s | "
          "final loss | accuracy vs none |%s\n|---|---|---:|---|---|---:|---:|---:|---:|---:|%s\n",
       ev ? " test accuracy | test accuracy vs none |" : "", ev ? "---:|---:|" : "");
    for (int i = 0; i < rep->n_cur; i++) {
        const struct oomb_run_result *r = rep->cur[i];
        struct run_cells c;
        run_cells(r, &c);
        SB(b, "| ");
        md_text(b, r->scenario);
        SB(b, " | %s | %lld | ", mode_text(r->mode), (long long)r->batch);
        md_text(b, r->strategy);
        SB(b, " | %s | %s | %s | %s | %s | %s |", oomb_outcome_name(r->outcome), c.peak,
           c.step, c.tput, c.loss, c.acc);
        if (ev)
            SB(b, " %s | %s |", c.tacc, c.tdelta);
        SB(b, "\n");
    }
    SB(b, "\n## Charts\n\n");
    for (int i = 0; i < rep->n_charts; i++) {
        const struct oomb_chart *c = &rep->charts[i];
        if (rep->n_sections > 1 && c->kind == 0) {
            SB(b, "%s### Scenario ", i ? "\n" : "");
            md_text(b, rep->sections[c->section].scenario);
            SB(b, "\n\n");
        } else if (rep->n_sections > 1 && c->kind == OOMB_REPORT_SECTION_CHARTS) {
            SB(b, "\n### Across scenarios\n\n");
        }
        int k = c->kind + 1;
        if (c->note[0]) {
            SB(b, "%d. %s: not drawn (", k, c->title);
            md_text(b, c->note);
            SB(b, ").\n");
        } else if (c->drawn)
            SB(b, "%d. [%s](%s.svg) ([PNG](%s.png), [data](%s.dat), [script](%s.gp))\n\n"
                  "   ![%s](%s.png)\n\n",
               k, c->title, c->stem, c->stem, c->stem, c->stem, c->title, c->stem);
        else
            SB(b, "%d. %s: not drawn; re-plot with `gnuplot %s.gp` ([data](%s.dat)).\n", k,
               c->title, c->stem, c->stem);
    }
    return b->failed ? OOMB_ERR_INTERNAL : OOMB_OK;
}
