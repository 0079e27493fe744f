/*
 * The report: every chart is drawn (SVG and PNG) and is not trivial (plotted
 * series, axis labels with units, a PNG of real size and many colours), the
 * data and scripts sit next to the charts, a missing gnuplot costs the
 * charts and nothing else, and the data preparation finds regressions and
 * out-of-memory batches without gnuplot.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "cmd_report.h"
#include "report.h"
#include "table.h"
#include "test_helpers.h"
#include "util.h"

/* A small MLP swept over three batch sizes; the budget lets the small
 * batches fit and refuses the largest one. */
#define SCENARIO                                                                                 \
    "name: rep\n"                                                                                \
    "model: {input: 16, classes: 4, layers: [{linear: 64}, relu, {linear: 64}, relu, "           \
    "{linear: 64}, relu, {linear: 4}]}\n"                                                        \
    "input: {kind: synthetic, seed: 7}\n"                                                        \
    "mode: train\nbatch: [8, 32, 512]\noptimizer: {name: adam, lr: 1e-3}\n"                     \
    "steps: {warmup: 1, measured: 3}\nbudget: 360KiB\ntimeout: 30s\n"                            \
    "strategies:\n  - none\n  - checkpoint\n"

static const char *const stems[OOMB_REPORT_CHARTS] = {
    "chart1-memory", "chart2-time",     "chart3-tradeoff", "chart4-timeline",
    "chart5-sweep",  "chart6-baseline", "chart7-history"};

/* The chart tests need gnuplot (scripts/setup.sh installs gnuplot-nox). */
static void need_gnuplot(void)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        cr_skip_test("gnuplot is not installed");
}

/* Runs the scenario once; the results file's path goes to path. */
static void run_once(const char *dir, char *path, size_t len)
{
    char scen[PATH_MAX], err[2048] = "";
    th_write(dir, "rep.yaml", SCENARIO, scen, sizeof scen);
    struct oomb_results res;
    struct oomb_run_summary sum;
    cr_assert_eq(th_run(dir, scen, &res, &sum, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(sum.n_failed, 0);
    cr_assert_eq(sum.n_oom, 2, "batch 512 is over the budget for both strategies");
    snprintf(path, len, "%s", sum.results_path);
    oomb_results_free(&res);
    /* Two files of one invocation second must still sort apart. */
    sleep(1);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s is missing", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

static int count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int file_exists(const char *dir, const char *stem, const char *ext)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s%s", dir, stem, ext);
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* ---- PNG: size from IHDR and the number of distinct colours ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Decodes an 8-bit RGB, RGBA or palette PNG enough to count colours (up to
 * 4096). */
static void png_stats(const char *path, uint32_t *w, uint32_t *h, int *colors)
{
    size_t len;
    unsigned char *d = (unsigned char *)slurp(path, &len);
    cr_assert(len > 33 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0, "%s: not a PNG", path);
    cr_assert(memcmp(d + 12, "IHDR", 4) == 0);
    *w = be32(d + 16);
    *h = be32(d + 20);
    int depth = d[24], ctype = d[25], interlace = d[28];
    cr_assert_eq(depth, 8, "%s: bit depth %d", path, depth);
    cr_assert_eq(interlace, 0);
    int bpp = ctype == 6 ? 4 : ctype == 2 ? 3 : ctype == 3 ? 1 : ctype == 4 ? 2 : 1;
    unsigned char *idat = malloc(len);
    size_t nidat = 0;
    for (size_t at = 8; at + 12 <= len;) {
        uint32_t n = be32(d + at);
        if (memcmp(d + at + 4, "IDAT", 4) == 0) {
            memcpy(idat + nidat, d + at + 8, n);
            nidat += n;
        }
        at += 12 + n;
    }
    size_t stride = (size_t)*w * (size_t)bpp;
    uLongf rawlen = (uLongf)((stride + 1) * *h);
    unsigned char *raw = malloc(rawlen);
    cr_assert_eq(uncompress(raw, &rawlen, idat, nidat), Z_OK, "%s: bad image data", path);
    unsigned char *prev = calloc(stride, 1), *cur = malloc(stride);
    uint32_t seen[8192];
    memset(seen, 0xff, sizeof seen);
    int n = 0;
    for (uint32_t y = 0; y < *h; y++) {
        const unsigned char *line = raw + y * (stride + 1);
        int f = line[0];
        for (size_t x = 0; x < stride; x++) {
            int a = x >= (size_t)bpp ? cur[x - bpp] : 0, b = prev[x];
            int c = x >= (size_t)bpp ? prev[x - bpp] : 0, v = line[1 + x];
            v += f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : f == 4 ? paeth(a, b, c) : 0;
            cur[x] = (unsigned char)v;
        }
        for (size_t x = 0; x + (size_t)bpp <= stride && n < 4096; x += (size_t)bpp) {
            uint32_t col = 0;
            for (int k = 0; k < bpp && k < 3; k++)
                col = col << 8 | cur[x + (size_t)k];
            uint32_t hsh = (col * 2654435761u) & 8191;
            while (seen[hsh] != 0xffffffffu && seen[hsh] != col)
                hsh = (hsh + 1) & 8191;
            if (seen[hsh] != col) {
                seen[hsh] = col;
                n++;
            }
        }
        memcpy(prev, cur, stride);
    }
    *colors = n;
    free(prev);
    free(cur);
    free(raw);
    free(idat);
    free(d);
}

/* What each chart's SVG must show: plot elements and axis labels. */
struct expect {
    int min_plots;
    const char *labels[4];
};

static const struct expect expects[OOMB_REPORT_CHARTS] = {
    {8, {"peak memory (KiB)", "strategy", "budget", "peak (total)"}},
    {5, {"step time (", "forward", "backward", "update"}},
    {5, {"median step time (", "peak memory (", "Pareto front", "final loss vs none (%)"}},
    {10, {"in use (", "time since the step began (", "checkpoint: peak", "none: peak"}},
    {8, {"batch size (samples)", "throughput (samples/s)", "peak memory (", "OOM"}},
    {2, {"change against the baseline (%", "noise band", "time.step", NULL}},
    {8, {"results file (created, UTC)", "peak memory (", "step time (", "regression"}},
};

static void check_charts(const char *out)
{
    for (int i = 0; i < OOMB_REPORT_CHARTS; i++) {
        const char *st = stems[i];
        cr_assert(file_exists(out, st, ".dat"), "%s.dat", st);
        cr_assert(file_exists(out, st, ".gp"), "%s.gp", st);
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s.svg", out, st);
        char *svg = slurp(path, NULL);
        cr_assert(strstr(svg, "<svg") && strstr(svg, "</svg>"), "%s: not a whole SVG", st);
        int plots = count_str(svg, "id=\"gnuplot_plot_");
        cr_assert_geq(plots, expects[i].min_plots, "%s: %d plot elements", st, plots);
        for (int k = 0; k < 4 && expects[i].labels[k]; k++)
            cr_assert(strstr(svg, expects[i].labels[k]), "%s: no '%s' in the SVG", st,
                      expects[i].labels[k]);
        /* Drawn data, not an empty frame: many path points. */
        cr_assert_gt(count_str(svg, "<path"), 10, "%s: too few paths", st);
        free(svg);

        snprintf(path, sizeof path, "%s/%s.png", out, st);
        struct stat sb;
        cr_assert_eq(stat(path, &sb), 0, "%s.png missing", st);
        cr_assert_gt(sb.st_size, 8000, "%s.png: %lld bytes", st, (long long)sb.st_size);
        uint32_t w, h;
        int colors;
        png_stats(path, &w, &h, &colors);
        cr_assert(w >= 600 && h >= 400, "%s.png: %ux%u", st, w, h);
        cr_assert_gt(colors, 12, "%s.png: %d colours", st, colors);
        /* No temporary left behind. */
        char cmd[PATH_MAX + 64];
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp'", out);
        cr_assert_neq(system(cmd), 0, "a temporary file was left in %s", out);
    }
}

Test(report, draws_all_seven_charts, .timeout = 120)
{
    need_gnuplot();
    char dir[PATH_MAX], r1[PATH_MAX], r2[PATH_MAX], out[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    run_once(dir, r1, sizeof r1);
    run_once(dir, r2, sizeof r2);
    snprintf(out, sizeof out, "%s/report", dir);
    char *argv[] = {"report", "-q", "--out", out, r1, r2, NULL};
    cr_assert_eq(oomb_cmd_report(6, argv), 0);
    check_charts(out);

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = slurp(path, NULL);
    cr_assert_eq(count_str(html, "<img "), OOMB_REPORT_CHARTS);
    cr_assert_null(strstr(html, "Not drawn"), "every chart applies");
    cr_assert_null(strstr(html, "<script"));
    for (int i = 0; i < OOMB_REPORT_CHARTS; i++) {
        char ref[128];
        snprintf(ref, sizeof ref, "src=\"%s.svg\"", stems[i]);
        cr_assert(strstr(html, ref), "index.html lacks %s", ref);
    }
    cr_assert(strstr(html, "<table>"));
    free(html);
    snprintf(path, sizeof path, "%s/summary.md", out);
    char *md = slurp(path, NULL);
    cr_assert(strstr(md, "(chart1-memory.png)") && strstr(md, "(chart7-history.png)"));
    cr_assert(strstr(md, "| rep | train | 512 | none | oom |"), "%s", md);
    free(md);
    th_rmtree(dir);
}

Test(report, history_folder_and_baseline_file, .timeout = 120)
{
    need_gnuplot();
    char dir[PATH_MAX], r1[PATH_MAX], r2[PATH_MAX], out[PATH_MAX], hist[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    run_once(dir, r1, sizeof r1);
    run_once(dir, r2, sizeof r2);
    /* The results folder is the history; the older file is the baseline. */
    snprintf(hist, sizeof hist, "%s/out", dir);
    snprintf(out, sizeof out, "%s/report", dir);
    char *argv[] = {"report", "-q", "-o", out, "--history", hist, "--baseline", r1,
                    "--noise", "10", r2, NULL};
    cr_assert_eq(oomb_cmd_report(11, argv), 0);
    check_charts(out);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/chart6-baseline.gp", out);
    char *gp = slurp(path, NULL);
    cr_assert(strstr(gp, "noise band \xc2\xb1" "10%"), "the --noise threshold is drawn");
    free(gp);
    th_rmtree(dir);
}

Test(report, run_report_flag_reports_the_fresh_results, .timeout = 120)
{
    need_gnuplot();
    char dir[PATH_MAX], r1[PATH_MAX], out[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    run_once(dir, r1, sizeof r1);
    snprintf(out, sizeof out, "%s/report", dir);
    cr_assert_eq(oomb_report_after_run(r1, out, 1), 0);
    /* One file: charts 1-5 drawn; no comparison and no history, said so. */
    for (int i = 0; i < 5; i++)
        cr_assert(file_exists(out, stems[i], ".svg") && file_exists(out, stems[i], ".png"),
                  "%s", stems[i]);
    cr_assert(!file_exists(out, stems[5], ".svg") && !file_exists(out, stems[6], ".svg"));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = slurp(path, NULL);
    cr_assert(strstr(html, "Not drawn: no baseline given"), "chart 6 omitted with a note");
    cr_assert(strstr(html, "Not drawn: history needs at least two results files"));
    free(html);
    th_rmtree(dir);
}

static void redirect(void)
{
    cr_redirect_stderr();
}

Test(report, missing_gnuplot_keeps_html_and_exit_status, .init = redirect, .timeout = 120)
{
    char dir[PATH_MAX], r1[PATH_MAX], out[PATH_MAX];
    th_mkdtemp(dir, sizeof dir);
    run_once(dir, r1, sizeof r1);
    snprintf(out, sizeof out, "%s/report", dir);
    char *argv[] = {"report", "-q", "--gnuplot", "/nonexistent/gnuplot", "--out", out, r1, NULL};
    cr_assert_eq(oomb_cmd_report(7, argv), 0);
    fflush(stderr);
    char line[2048] = "";
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(line, 1, sizeof line - 1, f);
    line[n] = '\0';
    cr_assert_eq(count_str(line, "\n"), 1, "one line on stderr: %s", line);
    cr_assert(strstr(line, "gnuplot not found"), "%s", line);
    for (int i = 0; i < 5; i++) {
        cr_assert(file_exists(out, stems[i], ".dat") && file_exists(out, stems[i], ".gp"));
        cr_assert(!file_exists(out, stems[i], ".svg") && !file_exists(out, stems[i], ".png"));
    }
    cr_assert(file_exists(out, "index", ".html") && file_exists(out, "summary", ".md"));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = slurp(path, NULL);
    cr_assert(strstr(html, "gnuplot was not found"));
    cr_assert_null(strstr(html, "<img "), "no image points at a chart that is not there");
    cr_assert(strstr(html, "<table>"), "the tables are written");
    free(html);
    th_rmtree(dir);
}

Test(report, finds_regressions_and_oom_without_gnuplot, .timeout = 120)
{
    char dir[PATH_MAX], r1[PATH_MAX], err[1024];
    th_mkdtemp(dir, sizeof dir);
    run_once(dir, r1, sizeof r1);
    struct oomb_results base, cur;
    cr_assert_eq(oomb_results_read(r1, &base, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_results_read(r1, &cur, err, sizeof err), OOMB_OK, "%s", err);
    /* One byte more memory is a regression; 3% slower is within 5% noise;
     * 20% slower is one. The step samples are set (the same low spread on
     * both sides, no CPU wait), so that the verdict does not depend on how
     * busy the machine was when the runs were made. */
    struct oomb_run_result *a = NULL, *b = NULL;
    for (int i = 0; i < cur.n_runs; i++) {
        if (cur.runs[i].outcome != OOMB_OUTCOME_OK)
            continue;
        if (!a)
            a = &cur.runs[i];
        else if (!b)
            b = &cur.runs[i];
    }
    cr_assert(a && b);
    for (int i = 0; i < cur.n_runs; i++) {
        struct oomb_run_result *x = &cur.runs[i], *y = &base.runs[i];
        if (x->outcome != OOMB_OUTCOME_OK)
            continue;
        x->cpu_wait_share = y->cpu_wait_share = NAN;
        double f = x == a ? 1.03 : x == b ? 1.20 : 1.0;
        /* 12 steps: 3 are too few for the rank test to be significant. */
        for (int p = 0; p < OOMB_PHASE_COUNT; p++) {
            free(x->phase_ns[p]);
            free(y->phase_ns[p]);
            x->phase_ns[p] = y->phase_ns[p] = NULL;
        }
        free(x->wait_ns);
        free(y->wait_ns);
        x->wait_ns = y->wait_ns = NULL;
        x->n_steps = y->n_steps = 12;
        x->step_ns = realloc(x->step_ns, 12 * sizeof *x->step_ns);
        y->step_ns = realloc(y->step_ns, 12 * sizeof *y->step_ns);
        cr_assert(x->step_ns && y->step_ns);
        for (int j = 0; j < x->n_steps; j++) {
            y->step_ns[j] = (int64_t)(1e6 * (1 + 0.001 * (j % 3)));
            x->step_ns[j] = (int64_t)(f * (double)y->step_ns[j]);
        }
    }
    a->peak_bytes += 1;
    free(cur.created);
    cur.created = oomb_strdup("2999-01-01T00:00:00Z");
    struct oomb_report_set sets[] = {{"cur.json", &cur}};
    struct oomb_report_set bl[] = {{"base.json", &base}};
    struct oomb_report_input in = {0};
    in.sets = sets;
    in.n_sets = 1;
    in.baseline = bl;
    in.n_baseline = 1;
    in.baseline_label = "base.json";
    struct oomb_report rep;
    cr_assert_eq(oomb_report_build(&in, &rep, err, sizeof err), OOMB_OK, "%s", err);
    int mem = 0, slow = 0, same = 0, other = 0;
    for (int i = 0; i < rep.n_changes; i++) {
        const struct oomb_report_change *ch = &rep.changes[i];
        if (ch->verdict == OOMB_CHANGE_REGRESSION && strcmp(ch->metric, "memory.total") == 0)
            mem++;
        else if (ch->verdict == OOMB_CHANGE_REGRESSION && strcmp(ch->metric, "time.step") == 0) {
            slow++;
            cr_assert_float_eq(ch->change, 0.20, 1e-6);
        } else if (ch->verdict == OOMB_CHANGE_SAME && strcmp(ch->metric, "time.step") == 0 &&
                   fabs(ch->change - 0.03) < 1e-6)
            same++;
        else if (ch->verdict == OOMB_CHANGE_REGRESSION)
            other++; /* the throughput of the slower run */
    }
    cr_assert_eq(mem, 1);
    cr_assert_eq(slow, 1);
    cr_assert_eq(same, 1);
    cr_assert_eq(rep.n_regressions, mem + slow + other);
    cr_assert_eq(other, 1, "throughput -16.7%%");
    /* Chart 5 marks batch 512 as out of memory for both strategies. */
    const struct oomb_chart *sweep = &rep.charts[4];
    cr_assert_str_empty(sweep->note);
    cr_assert_eq(count_str(sweep->dat.data, "512\t?\t?\t1\t"), 2, "%s", sweep->dat.data);
    cr_assert(strstr(sweep->gp.data, "budget 360.0 KiB"), "%s", sweep->gp.data);
    /* Chart 1 carries the budget column; chart 7 needs a second file. */
    cr_assert(strstr(rep.charts[0].gp.data, "title \"budget"));
    cr_assert(strstr(rep.charts[6].note, "at least two"));
    cr_assert_eq(rep.charts[3].n_series, 14,
                 "two timeline panels: 3 phases, in use, activations, peak, budget");
    oomb_report_free(&rep);
    oomb_results_free(&base);
    oomb_results_free(&cur);
    th_rmtree(dir);
}

Test(report, test_accuracy_columns_when_evaluated, .timeout = 120)
{
    char dir[PATH_MAX], r1[PATH_MAX], err[1024];
    th_mkdtemp(dir, sizeof dir);
    run_once(dir, r1, sizeof r1);
    struct oomb_results cur;
    cr_assert_eq(oomb_results_read(r1, &cur, err, sizeof err), OOMB_OK, "%s", err);
    struct oomb_report_set sets[] = {{"cur.json", &cur}};
    struct oomb_report_input in = {0};
    in.sets = sets;
    in.n_sets = 1;

    /* Without an evaluation the tables keep their columns. */
    struct oomb_report rep;
    struct oomb_sbuf html = {0}, md = {0};
    cr_assert_eq(oomb_report_build(&in, &rep, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_report_html(&rep, &in, NULL, &html), OOMB_OK);
    cr_assert_eq(oomb_report_markdown(&rep, &in, NULL, &md), OOMB_OK);
    cr_assert_null(strstr(html.data, "test accuracy"));
    cr_assert_null(strstr(md.data, "test accuracy"));
    cr_assert(strstr(md.data, "| final loss | accuracy vs none |\n|---|---|---:|---|---|---:|---:|"
                              "---:|---:|---:|\n"),
              "%s", md.data);
    oomb_sbuf_free(&html);
    oomb_sbuf_free(&md);
    oomb_report_free(&rep);

    /* Evaluated runs: the test accuracy and its change against none. */
    int evaluated = 0;
    for (int i = 0; i < cur.n_runs; i++) {
        struct oomb_run_result *r = &cur.runs[i];
        if (r->outcome != OOMB_OUTCOME_OK || r->batch != 8)
            continue;
        r->has_eval = 1;
        r->eval_samples = 2000;
        r->test_accuracy = strcmp(r->strategy, "none") == 0 ? 0.8775 : 0.8734;
        r->test_accuracy_delta = strcmp(r->strategy, "none") == 0 ? 0 : -0.0041;
        evaluated++;
    }
    cr_assert_eq(evaluated, 2);
    memset(&html, 0, sizeof html);
    memset(&md, 0, sizeof md);
    cr_assert_eq(oomb_report_build(&in, &rep, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_report_html(&rep, &in, NULL, &html), OOMB_OK);
    cr_assert_eq(oomb_report_markdown(&rep, &in, NULL, &md), OOMB_OK);
    cr_assert(strstr(html.data, "<th>test accuracy</th><th>test accuracy vs none</th></tr>"),
              "%s", html.data);
    cr_assert(strstr(html.data, "<td title=\"2000 held-out samples\">0.8734</td><td>-0.41 pp"
                                "</td></tr>"),
              "%s", html.data);
    cr_assert(strstr(html.data, ">0.8775</td><td>+0.00 pp</td></tr>"), "%s", html.data);
    cr_assert(strstr(html.data, ">-</td><td>-</td></tr>"), "a run without: dashes");
    cr_assert(strstr(md.data, "| accuracy vs none | test accuracy | test accuracy vs none |\n"
                              "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|\n"),
              "%s", md.data);
    cr_assert(strstr(md.data, "| rep | train | 8 | checkpoint | ok |"), "%s", md.data);
    cr_assert(strstr(md.data, " | 0.8734 | -0.41 pp |\n"), "%s", md.data);
    cr_assert(strstr(md.data, "| rep | train | 512 | none | oom |"), "%s", md.data);
    cr_assert(strstr(md.data, " | - | - |\n"), "%s", md.data);
    oomb_sbuf_free(&html);
    oomb_sbuf_free(&md);
    oomb_report_free(&rep);
    oomb_results_free(&cur);
    th_rmtree(dir);
}

Test(report, rejects_bad_input)
{
    char *a1[] = {"report", NULL};
    cr_assert_eq(oomb_cmd_report(1, a1), 2);
    char *a2[] = {"report", "-q", "--out", "/tmp/oombench-no-report", "/nonexistent.json", NULL};
    cr_assert_eq(oomb_cmd_report(5, a2), 2);
    char *a3[] = {"report", "--noise", "lots", "x.json", NULL};
    cr_assert_eq(oomb_cmd_report(4, a3), 2);
    struct stat st;
    cr_assert_neq(stat("/tmp/oombench-no-report", &st), 0, "nothing written on input error");
}

/* ------------------------------------------------------------ encoders - */

/* Names made of gnuplot, shell, HTML and Markdown syntax ("%s": a marker
 * file a command would create). */
static const char *const hostile[] = {
    "`touch %s`",
    "system(\"touch %s\")",
    "\"; ! touch %s; \"",
    "'.system('touch %s').'",
    "a\nset output '%s'\nplot 1\n#",
    "@m @%s ''''' '' \\\\ \\ {/Symbol a}^2_x",
    "x\r\ty\x1b[31m\x7f",
    "\xff\xfe invalid \xc3 utf-8 %s",
    "<script>alert('%s')</script> | *b* [l](javascript:x) &amp; @team $x$",
    "",
};
#define N_HOSTILE (sizeof hostile / sizeof hostile[0])

Test(encode, gnuplot_constants_print_back_and_run_nothing, .timeout = 60)
{
    need_gnuplot();
    char dir[PATH_MAX], mark[PATH_MAX + 16], gp[PATH_MAX + 16], out[PATH_MAX + 16];
    th_mkdtemp(dir, sizeof dir);
    snprintf(mark, sizeof mark, "%s/PWNED", dir);
    snprintf(gp, sizeof gp, "%s/t.gp", dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    FILE *f = fopen(gp, "w");
    cr_assert_not_null(f);
    char want[N_HOSTILE][512];
    for (size_t i = 0; i < N_HOSTILE; i++) {
        char s[512];
        snprintf(s, sizeof s, hostile[i], mark);
        char *e = oomb_encode(oomb_encode_gnuplot, s);
        cr_assert_not_null(e);
        cr_assert_eq(strlen(e), oomb_encode_gnuplot(NULL, s), "measured = written");
        cr_assert_null(strchr(e, '\n'), "one line: %s", e);
        /* the text as gnuplot must print it: control characters as spaces,
         * invalid UTF-8 as '?' */
        size_t j = 0;
        for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
            if (*u < 0x20 || *u == 0x7f)
                want[i][j++] = ' ';
            else if (*u == 0xff || *u == 0xfe || (*u == 0xc3 && u[1] == ' '))
                want[i][j++] = '?';
            else
                want[i][j++] = (char)*u;
        }
        want[i][j] = '\0';
        fprintf(f, "set title %s\nset xtics (%s 0)\nprint %s\n", e, e, e);
        free(e);
    }
    fclose(f);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot t.gp 2>out.txt", dir);
    cr_assert_eq(system(cmd), 0, "gnuplot refused a constant");
    struct stat st;
    cr_assert_neq(stat(mark, &st), 0, "a name ran a command");
    char *text = slurp(out, NULL), *line = text;
    for (size_t i = 0; i < N_HOSTILE; i++) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "gnuplot printed %zu lines of %zu", i, N_HOSTILE);
        *nl = '\0';
        cr_assert_str_eq(line, want[i]);
        line = nl + 1;
    }
    free(text);
    th_rmtree(dir);
}

Test(encode, html_escapes_markup_quotes_and_controls)
{
    char *e =
        oomb_encode(oomb_encode_html, "<a href=\"x\" title='y'>&amp;</a>\x01\x1b\t\n\xc3\xa9\xff");
    cr_assert_str_eq(e, "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;??\t\n"
                        "\xc3\xa9?");
    free(e);
    e = oomb_encode(oomb_encode_html, NULL);
    cr_assert_str_eq(e, "");
    free(e);
}

Test(encode, markdown_escapes_markup_and_keeps_one_line)
{
    char *e = oomb_encode(oomb_encode_markdown,
                          "a|b *c* _d_ `e` [f](g) <h> ~i~ &j; @k $l$ \\m\nn\r\x1b-o. #p");
    cr_assert_str_eq(e,
                     "a\\|b \\*c\\* \\_d\\_ \\`e\\` \\[f\\](g) \\<h\\> \\~i\\~ \\&j; \\@k \\$l\\$ "
                     "\\\\m n  -o. #p");
    free(e);
}

Test(encode, invalid_utf8_becomes_a_question_mark_everywhere)
{
    /* overlong, surrogate, above U+10FFFF, truncated, stray continuation */
    const char *bad = "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x82|\x80";
    char *h = oomb_encode(oomb_encode_html, bad);
    cr_assert_str_eq(h, "??|???|????|??|?");
    char *g = oomb_encode(oomb_encode_gnuplot, "\xe2\x82\xac ok \xe2\x82");
    cr_assert_str_eq(g, "'\xe2\x82\xac ok ?"
                        "?'");
    free(h);
    free(g);
}

Test(encode, path_component_accepts_safe_names)
{
    const char *good[] = {"mlp", "mlp-small", "cpu-x86_64", "cuda-sm90", "a.b", "A_9"};
    char why[128];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(oomb_check_path_component(good[i], why, sizeof why), OOMB_OK, "%s", good[i]);
}

Test(encode, path_component_refuses_what_could_leave_the_folder)
{
    char long_name[OOMB_PATH_COMPONENT_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    struct {
        const char *name, *why;
    } bad[] = {{"..", "starts with '.'"},
               {"../x", "starts with '.'"},
               {".hidden", "starts with '.'"},
               {"a/b", "'/' at byte 1"},
               {"", "empty"},
               {NULL, "empty"},
               {"a b", "' ' at byte 1"},
               {"a\nb", "byte 0x0a at byte 1"},
               {"a\\b", "'\\' at byte 1"},
               {"\xc3\xa9", "byte 0xc3 at byte 0"},
               {long_name, "129 bytes long"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[128] = "";
        cr_assert_eq(oomb_check_path_component(bad[i].name, why, sizeof why), OOMB_ERR_INVALID,
                     "%zu accepted", i);
        cr_assert_not_null(strstr(why, bad[i].why), "%zu: %s", i, why);
    }
}

/* A results file whose names are hostile: the report draws every chart with
 * the real gnuplot, runs nothing, and index.html carries the names encoded. */
Test(report, hostile_names_are_inert_in_scripts_and_html, .timeout = 120)
{
    need_gnuplot();
    char dir[PATH_MAX], mark[PATH_MAX + 16], out[PATH_MAX + 16], path[PATH_MAX + 32];
    th_mkdtemp(dir, sizeof dir);
    snprintf(mark, sizeof mark, "%s/PWNED", dir);
    snprintf(out, sizeof out, "%s/report", dir);
    struct oomb_results r = {0};
    r.device_class = strdup("cpu-test");
    r.created = strdup("2024-05-01T12:00:00Z");
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < N_HOSTILE - 1; i++) {
            struct oomb_run_result *run = oomb_results_add_run(&r);
            cr_assert_not_null(run);
            char s[512];
            snprintf(s, sizeof s, hostile[i], mark);
            run->strategy = strdup(i == 0 ? "none" : s);
            run->plugin = strdup(i == 0 ? "none" : "x");
            snprintf(s, sizeof s, hostile[(i + 1) % (N_HOSTILE - 1)], mark);
            run->scenario = strdup(s);
            run->reason = strdup(s);
            run->mode = OOMB_MODE_TRAIN;
            run->backend = OOMB_BACKEND_CPU;
            run->batch = 32 << b;
            run->outcome = OOMB_OUTCOME_OK;
            run->peak_bytes = 4096 * (i + 1) * (size_t)(b + 1);
            run->peak_by_tag[OOMB_TAG_ACTIVATIONS] = run->peak_bytes / 2;
            run->n_steps = 3;
            run->step_ns = malloc(3 * sizeof *run->step_ns);
            cr_assert_not_null(run->step_ns);
            for (int k = 0; k < 3; k++)
                run->step_ns[k] = 1000000 * (int64_t)(i + 1) + 1000 * k;
            oomb_stats_compute(run->step_ns, 3, &run->step_stats);
            run->samples_per_s = run->batch * 1e9 / run->step_stats.median;
            run->final_loss = 0.5;
            run->n_events = 2;
            run->events = calloc(2, sizeof *run->events);
            cr_assert_not_null(run->events);
            run->events[0] = (struct oomb_event){0, 1024, 1024, OOMB_TAG_WEIGHTS, 0, -1, 0};
            run->events[1] = (struct oomb_event){10, 2048, 3072, OOMB_TAG_ACTIVATIONS, 1, 0, 0};
        }
    char err[512];
    snprintf(path, sizeof path, "%s/hostile.json", dir);
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof err), OOMB_OK, "%s", err);
    oomb_results_free(&r);
    char *argv[] = {"report", "-q", "--out", out, path, NULL};
    cr_assert_eq(oomb_cmd_report(5, argv), 0);
    struct stat st;
    cr_assert_neq(stat(mark, &st), 0, "a name ran a command");
    /* Every run has its own scenario, so each is a section; the names are no
     * safe file names, so the charts are s1-chart1-memory.svg and so on. */
    int drawn = 0, named = 0;
    DIR *dd = opendir(out);
    cr_assert_not_null(dd);
    struct dirent *de;
    while ((de = readdir(dd))) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".svg") == 0) {
            drawn++;
            named += strncmp(de->d_name, "s", 1) == 0 && strstr(de->d_name, "-chart") &&
                     strspn(de->d_name, "abcdefghijklmnopqrstuvwxyz0123456789-.") == len;
        }
    }
    closedir(dd);
    cr_assert_geq(drawn, 4, "only %d charts drawn", drawn);
    cr_assert_eq(named, drawn, "a chart's file name carries a hostile name");
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = slurp(path, NULL);
    cr_assert_null(strstr(html, "<script>"));
    cr_assert_not_null(strstr(html, "&lt;script&gt;alert(&#39;"));
    free(html);
    th_rmtree(dir);
}

/* ------------------------------------------------ sections per scenario - */

/* Adds one made-up run: peak bytes split into weights and activations, three
 * timed steps, a short timeline; oom and not_applicable runs measured
 * nothing but what they held (oom) or nothing at all (n/a). */
static void fake_run(struct oomb_results *res, const char *scenario, const char *strategy,
                     enum oomb_mode mode, int64_t batch, enum oomb_outcome outcome,
                     uint64_t peak, uint64_t budget)
{
    struct oomb_run_result *run = oomb_results_add_run(res);
    cr_assert_not_null(run);
    run->scenario = strdup(scenario);
    run->strategy = strdup(strategy);
    run->plugin = strdup(strategy);
    run->mode = mode;
    run->backend = OOMB_BACKEND_CPU;
    run->batch = batch;
    run->outcome = outcome;
    run->budget_bytes = budget;
    run->final_loss = NAN;
    run->samples_per_s = NAN;
    run->step_stats.median = run->step_stats.ci_low = run->step_stats.ci_high = NAN;
    if (outcome == OOMB_OUTCOME_NOT_APPLICABLE) {
        run->reason = strdup("plugin does not support mode infer");
        return;
    }
    run->reason = strdup(outcome == OOMB_OUTCOME_OOM ? "step 0: out of memory" : "");
    run->peak_bytes = peak;
    run->peak_by_tag[OOMB_TAG_WEIGHTS] = peak / 3;
    run->peak_by_tag[OOMB_TAG_ACTIVATIONS] = peak - peak / 3;
    if (outcome != OOMB_OUTCOME_OK)
        return;
    run->n_steps = 3;
    run->step_ns = malloc(3 * sizeof *run->step_ns);
    cr_assert_not_null(run->step_ns);
    for (int k = 0; k < 3; k++)
        run->step_ns[k] = 1000000 + 1000 * k + (int64_t)batch;
    oomb_stats_compute(run->step_ns, 3, &run->step_stats);
    run->samples_per_s = (double)batch * 1e9 / run->step_stats.median;
    run->final_loss = 0.5;
    run->n_events = 2;
    run->events = calloc(2, sizeof *run->events);
    cr_assert_not_null(run->events);
    run->events[0] = (struct oomb_event){0, (int64_t)(peak / 3), peak / 3, OOMB_TAG_WEIGHTS, 0, -1, 0};
    run->events[1] = (struct oomb_event){10, (int64_t)(peak - peak / 3), peak,
                                         OOMB_TAG_ACTIVATIONS, 1, 0, 0};
}

#define MiB_ (1024ull * 1024ull)

/* Two scenarios as the main job has them: mlp-budget sweeps two batch sizes
 * under 96 MiB, none running out of memory at the larger; transformer runs
 * one batch size under 2 GiB in train and infer, with runs that do not apply
 * to inference. */
static void two_scenarios(struct oomb_results *r)
{
    memset(r, 0, sizeof *r);
    r->device_class = strdup("cpu-test");
    r->created = strdup("2024-05-01T12:00:00Z");
    const char *ms[] = {"none", "checkpoint", "grad_accum"};
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < 3; s++)
            fake_run(r, "mlp-budget", ms[s], OOMB_MODE_TRAIN, b ? 1024 : 256,
                     b && s == 0 ? OOMB_OUTCOME_OOM : OOMB_OUTCOME_OK,
                     (uint64_t)(60 + 10 * b - 5 * s) * MiB_, 96 * MiB_);
    const char *ts[] = {"none", "checkpoint", "fp16"};
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < 3; s++)
            fake_run(r, "transformer", ts[s], m ? OOMB_MODE_INFER : OOMB_MODE_TRAIN, 64,
                     m && s == 1 ? OOMB_OUTCOME_NOT_APPLICABLE : OOMB_OUTCOME_OK,
                     (uint64_t)(40 - 5 * s - 20 * m) * MiB_, 2048 * MiB_);
}

static const struct oomb_chart *chart_of(const struct oomb_report *rep, int section, int kind)
{
    for (int i = 0; i < rep->n_charts; i++)
        if (rep->charts[i].section == section && rep->charts[i].kind == kind)
            return &rep->charts[i];
    cr_assert_fail("no chart %d in section %d", kind + 1, section);
    return NULL;
}

Test(report, one_section_per_scenario_with_its_own_budget)
{
    struct oomb_results r;
    two_scenarios(&r);
    struct oomb_report_set sets[] = {{"main.json", &r}};
    struct oomb_report_input in = {0};
    in.sets = sets;
    in.n_sets = 1;
    struct oomb_report rep;
    char err[512];
    cr_assert_eq(oomb_report_build(&in, &rep, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(rep.n_sections, 2);
    cr_assert_str_eq(rep.sections[0].scenario, "mlp-budget", "the order the file has them");
    cr_assert_str_eq(rep.sections[1].scenario, "transformer");
    cr_assert_eq(rep.sections[0].n, 6);
    cr_assert_eq(rep.sections[0].n_oom, 1);
    cr_assert_eq(rep.sections[1].n_na, 1);
    cr_assert_eq(rep.n_charts, 2 * OOMB_REPORT_SECTION_CHARTS + 2);
    cr_assert_str_eq(chart_of(&rep, 0, 0)->stem, "s1-mlp-budget-chart1-memory");
    cr_assert_str_eq(chart_of(&rep, 1, 4)->stem, "s2-transformer-chart5-sweep");
    cr_assert_str_eq(rep.charts[rep.n_charts - 2].stem, "chart6-baseline");
    cr_assert_str_eq(rep.charts[rep.n_charts - 1].stem, "chart7-history");

    /* mlp-budget's chart 1: its 96 MiB budget drawn, its runs only; the
     * 2 GiB of transformer neither drawn there nor flattening its bars. */
    const struct oomb_chart *m1 = chart_of(&rep, 0, 0);
    cr_assert_str_empty(m1->note);
    char bt[64], line[128];
    oomb_format_bytes(96 * MiB_, bt, sizeof bt);
    snprintf(line, sizeof line, "title \"budget %s\"", bt);
    cr_assert(strstr(m1->gp.data, line), "%s", m1->gp.data);
    cr_assert_null(strstr(m1->gp.data, "GiB"), "%s", m1->gp.data);
    cr_assert_null(strstr(m1->dat.data, "transformer"));
    cr_assert(strstr(m1->dat.data, "# memory in MiB"), "%s", m1->dat.data);
    cr_assert(strstr(m1->dat.data, "\t96\t"), "the budget column: %s", m1->dat.data);
    cr_assert(strstr(m1->gp.data, "newhistogram 'batch 256' at 0"), "%s", m1->gp.data);
    cr_assert(strstr(m1->gp.data, "newhistogram 'batch 1024' at 4"), "%s", m1->gp.data);
    /* transformer's chart 1: its own 2 GiB, far above its bars, said so */
    const struct oomb_chart *t1 = chart_of(&rep, 1, 0);
    cr_assert(strstr(t1->gp.data, "budget 2.00 GiB is far above the bars"), "%s", t1->gp.data);
    cr_assert_null(strstr(t1->dat.data, "mlp-budget"));
    /* Each section sweeps its own scenario: mlp-budget has two batch sizes,
     * transformer one (so no sweep, and a note says why). */
    const struct oomb_chart *m5 = chart_of(&rep, 0, 4);
    cr_assert_str_empty(m5->note);
    cr_assert(strstr(m5->gp.data, "(mlp-budget, train)"), "%s", m5->gp.data);
    cr_assert(strstr(m5->gp.data, line), "the sweep draws the budget too");
    cr_assert(strstr(chart_of(&rep, 1, 4)->note, "more than one batch size"));
    /* The timeline and the trade-off of transformer are its own. */
    cr_assert(strstr(chart_of(&rep, 1, 3)->caption, "transformer, train, batch 64"));

    struct oomb_sbuf html = {0}, md = {0};
    for (int i = 0; i < rep.n_charts; i++)
        rep.charts[i].drawn = !rep.charts[i].note[0];
    cr_assert_eq(oomb_report_html(&rep, &in, NULL, &html), OOMB_OK);
    cr_assert_eq(oomb_report_markdown(&rep, &in, NULL, &md), OOMB_OK);
    cr_assert(strstr(html.data, "<h2 id=\"s1\">Scenario mlp-budget</h2>"), "%s", html.data);
    cr_assert(strstr(html.data, "<h2 id=\"s2\">Scenario transformer</h2>"));
    cr_assert(strstr(html.data, "<img src=\"s1-mlp-budget-chart1-memory.svg\""));
    cr_assert(strstr(html.data, "<a href=\"#s2\">transformer</a>"));
    snprintf(line, sizeof line, "budget %s; train; batch 256, 1024.", bt);
    cr_assert(strstr(html.data, line), "%s", html.data);
    /* mlp-budget's runs table comes before transformer's heading and holds
     * none of its runs. */
    const char *s2 = strstr(html.data, "<h2 id=\"s2\">");
    const char *tr = strstr(html.data, "<td class=\"l\">transformer</td>");
    cr_assert(tr && tr > s2, "transformer's rows are in its own section");
    cr_assert(strstr(md.data, "### Scenario mlp-budget\n"), "%s", md.data);
    cr_assert(strstr(md.data, "### Across scenarios\n"), "%s", md.data);
    oomb_sbuf_free(&html);
    oomb_sbuf_free(&md);
    oomb_report_free(&rep);

    /* --scenario: that section alone, with the file names of a one-scenario
     * report. */
    in.scenario = "mlp-budget";
    cr_assert_eq(oomb_report_build(&in, &rep, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(rep.n_sections, 1);
    cr_assert_eq(rep.n_charts, OOMB_REPORT_CHARTS);
    for (int i = 0; i < OOMB_REPORT_CHARTS; i++)
        cr_assert_str_eq(rep.charts[i].stem, stems[i]);
    cr_assert(strstr(rep.charts[0].gp.data, "title \"budget"));
    oomb_report_free(&rep);
    oomb_results_free(&r);
}

Test(report, not_applicable_is_a_labelled_gap_not_a_zero_bar)
{
    struct oomb_results r;
    two_scenarios(&r);
    struct oomb_report_set sets[] = {{"main.json", &r}};
    struct oomb_report_input in = {0};
    in.sets = sets;
    in.n_sets = 1;
    in.scenario = "transformer";
    struct oomb_report rep;
    char err[512];
    cr_assert_eq(oomb_report_build(&in, &rep, err, sizeof err), OOMB_OK, "%s", err);
    /* Chart 1: checkpoint in inference has a row with no numbers (no bar,
     * not a 0-byte one), marked n/a, and the script writes "n/a" there. */
    const char *dat = rep.charts[0].dat.data;
    const char *row = strstr(dat, "\tcheckpoint [n/a]\t");
    cr_assert_not_null(row, "%s", dat);
    cr_assert(strncmp(strchr(row + 1, '\t'), "\t?\t?\t?\t?\t?\t?\t?\t?\t?\t1\n", 21) == 0,
              "%s", dat);
    cr_assert_null(strstr(dat, "\t0\t0\t0\t0\t0\t0\t0\t"), "no zero bar: %s", dat);
    cr_assert(strstr(rep.charts[0].gp.data, "($12==1?0:NaN):(\"n/a\") with labels"),
              "%s", rep.charts[0].gp.data);
    cr_assert(strstr(rep.charts[0].caption, "[n/a]"));
    /* The tables say n/a, with the reason listed, and never 0 B. */
    struct oomb_sbuf html = {0}, md = {0};
    cr_assert_eq(oomb_report_html(&rep, &in, NULL, &html), OOMB_OK);
    cr_assert_eq(oomb_report_markdown(&rep, &in, NULL, &md), OOMB_OK);
    cr_assert(strstr(html.data, ">not_applicable</td><td>n/a</td><td>n/a</td>"), "%s", html.data);
    cr_assert(strstr(html.data, "<li><b>checkpoint</b> (infer b=64): plugin does not support "
                                "mode infer</li>"),
              "%s", html.data);
    const char *na_row = strstr(html.data, ">not_applicable</td>");
    cr_assert_not_null(na_row);
    const char *na_end = strstr(na_row, "</tr>");
    const char *zero = strstr(na_row, "0 B");
    cr_assert(!zero || zero > na_end, "no zero in the n/a row: %.400s", na_row);
    cr_assert(strstr(md.data, "| transformer | infer | 64 | checkpoint | not_applicable | n/a | "
                              "n/a | n/a | n/a | n/a |"),
              "%s", md.data);
    oomb_sbuf_free(&html);
    oomb_sbuf_free(&md);
    oomb_report_free(&rep);
    oomb_results_free(&r);
}

/* The x position (column 6) of strategy's oom row at batch in a sweep's data. */
static double oom_x(const char *dat, const char *strategy, int64_t batch)
{
    char key[128];
    snprintf(key, sizeof key, "# index");
    for (const char *p = dat; (p = strchr(p, '\n')); p++) {
        long long b;
        int oom;
        double at, x;
        char name[64];
        if (sscanf(p + 1, "%lld\t%*s\t%*s\t%d\t%lf\t%lf\t%63[^\n]", &b, &oom, &at, &x, name) == 5 &&
            b == batch && oom == 1 && strcmp(name, strategy) == 0)
            return x;
    }
    return NAN;
}

Test(report, oom_marks_at_one_batch_are_spread_and_labelled)
{
    struct oomb_results r = {0};
    r.device_class = strdup("cpu-test");
    r.created = strdup("2024-05-01T12:00:00Z");
    const char *ss[] = {"none", "checkpoint", "grad_accum", "fp16"};
    for (int b = 0; b < 3; b++)
        for (int s = 0; s < 4; s++)
            fake_run(&r, "sweep", ss[s], OOMB_MODE_TRAIN, 64 << (2 * b),
                     b == 2 && s != 2 ? OOMB_OUTCOME_OOM : OOMB_OUTCOME_OK,
                     (uint64_t)(20 + 20 * b + s) * MiB_, 80 * MiB_);
    struct oomb_report_set sets[] = {{"sweep.json", &r}};
    struct oomb_report_input in = {0};
    in.sets = sets;
    in.n_sets = 1;
    struct oomb_report rep;
    char err[512];
    cr_assert_eq(oomb_report_build(&in, &rep, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_chart *c = &rep.charts[4];
    cr_assert_str_empty(c->note);
    /* Three strategies out of memory at 1024: three positions around 1024,
     * in strategy order, none on another's spot, each labelled. */
    double a = oom_x(c->dat.data, "none", 1024), b = oom_x(c->dat.data, "checkpoint", 1024),
           f = oom_x(c->dat.data, "fp16", 1024);
    cr_assert(isfinite(a) && isfinite(b) && isfinite(f), "%s", c->dat.data);
    cr_assert(a < b && b < f, "%g %g %g", a, b, f);
    cr_assert_float_eq(b, 1024, 1e-9, "the middle one at the batch itself");
    cr_assert_gt(f / b, 1.02, "far enough apart to see: %g %g", b, f);
    cr_assert_lt(f / a, 2.0, "and still at 1024, not at a neighbour");
    cr_assert(isnan(oom_x(c->dat.data, "grad_accum", 1024)), "grad_accum fit");
    /* Each strategy's marker is the open form of its own point type, and
     * its name is drawn beside it from the data. */
    cr_assert(strstr(c->gp.data, "index 0 using 6:($4==1?$5:NaN) with points pt 6 "), "%s",
              c->gp.data);
    cr_assert(strstr(c->gp.data, "index 1 using 6:($4==1?$5:NaN) with points pt 4 "), "%s",
              c->gp.data);
    cr_assert_eq(count_str(c->gp.data, "using 6:($4==1?$5:NaN):7 with labels"), 4, "%s",
                 c->gp.data);
    cr_assert(strstr(c->gp.data, "title \"out of memory (OOM)\""));
    oomb_report_free(&rep);
    oomb_results_free(&r);
}

Test(report, chart_file_names_an_earlier_report_may_have_left)
{
    const char *yes[] = {"chart1-memory.svg", "chart7-history.gp", "s1-mlp-chart1-memory.png",
                         "s12-chart5-sweep.dat", "s3-a-b-chart4-timeline.svg"};
    const char *no[] = {"index.html", "chart1-memory.svg.tmp12", "s-mlp-chart1-memory.svg",
                        "mlp-chart1-memory.svg", "s1-mlp-chart6-baseline.svg", "notes.gp",
                        "s1-mlpchart1-memory.svg", "chart8-x.svg", "s1.svg"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_assert(oomb_report_is_chart_file(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_assert_not(oomb_report_is_chart_file(no[i]), "%s", no[i]);
}

/* The whole command on the two scenarios: every section's charts drawn
 * under their own names, a stale chart of an earlier report removed. */
Test(report, draws_each_section_and_removes_stale_charts, .timeout = 120)
{
    need_gnuplot();
    char dir[PATH_MAX], out[PATH_MAX + 16], path[PATH_MAX + 64];
    th_mkdtemp(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/report", dir);
    struct oomb_results r;
    two_scenarios(&r);
    char err[512];
    snprintf(path, sizeof path, "%s/main.json", dir);
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof err), OOMB_OK, "%s", err);
    oomb_results_free(&r);
    char stale[PATH_MAX + 64];
    cr_assert_eq(mkdir(out, 0777), 0);
    snprintf(stale, sizeof stale, "%s/chart1-memory.svg", out);
    FILE *f = fopen(stale, "w");
    cr_assert_not_null(f);
    fputs("<svg>old</svg>", f);
    fclose(f);
    char *argv[] = {"report", "-q", "--out", out, path, NULL};
    cr_assert_eq(oomb_cmd_report(5, argv), 0);
    struct stat st;
    cr_assert_neq(stat(stale, &st), 0, "the stale chart1-memory.svg is gone");
    const char *want[] = {"s1-mlp-budget-chart1-memory", "s1-mlp-budget-chart2-time",
                          "s1-mlp-budget-chart5-sweep", "s2-transformer-chart1-memory",
                          "s2-transformer-chart3-tradeoff"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(file_exists(out, want[i], ".svg") && file_exists(out, want[i], ".png"), "%s",
                  want[i]);
    cr_assert(!file_exists(out, "s2-transformer-chart5-sweep", ".svg"), "no sweep there");
    snprintf(path, sizeof path, "%s/s1-mlp-budget-chart1-memory.svg", out);
    char *svg = slurp(path, NULL);
    cr_assert(strstr(svg, "budget 96.00 MiB"), "the budget in the key");
    cr_assert(strstr(svg, "batch 1024"), "the cluster's title");
    free(svg);
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = slurp(path, NULL);
    cr_assert_eq(count_str(html, "<img "), 2 * OOMB_REPORT_SECTION_CHARTS - 1);
    cr_assert(strstr(html, "Not drawn: no scenario in these results sweeps"), "%s", html);
    free(html);
    th_rmtree(dir);
}
