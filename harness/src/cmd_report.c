/*
 * `oombench report RESULTS... --out DIR`: loads results files (and a
 * baseline and a history folder), lets report.c prepare every chart, writes
 * the data files and gnuplot scripts, runs gnuplot on each script (found on
 * PATH or given with --gnuplot; a separate process, never linked), and
 * writes index.html and summary.md. gnuplot draws into temporary names that
 * are renamed once it succeeded, so a chart on disk is always complete.
 */
#include "cmd_report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"
#include "results.h"
#include "baseline.h"
#include "util.h"

enum { EXIT_FINE = 0, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

#define MAX_FILES 1024

static void usage_report(FILE *f)
{
    fprintf(f,
            "usage: oombench report [options] RESULTS...\n"
            "\n"
            "Draws comparison charts with gnuplot (SVG and PNG) from results files (or\n"
            "folders of them) and writes index.html with the tables, summary.md, and the\n"
            "data (.dat) and gnuplot scripts (.gp) next to the charts for re-plotting.\n"
            "The newest result of each scenario x mode x batch x strategy is the current\n"
            "one. One section per scenario, with its runs and its own charts: peak memory\n"
            "by tag (its budget), step time by phase, memory against time, one step's\n"
            "memory timeline, its batch sweep; then baseline against current and history.\n"
            "\n"
            "options:\n"
            "  -o, --out DIR            report folder (default: report)\n"
            "  -b, --baseline PATH      baseline results file, or a folder holding\n"
            "                           <device-class>/<scenario>.json (default: compare the\n"
            "                           oldest with the newest RESULTS)\n"
            "  -H, --history DIR        folder of earlier results files for the history chart\n"
            "  -n, --noise PERCENT      time noise threshold (default: 5 on the CPU, 2 on the\n"
            "                           GPU); the comparison is `oombench compare`'s\n"
            "  -s, --scenario NAME      only this scenario's runs\n"
            "  -g, --gnuplot PATH       the gnuplot program (default: gnuplot on PATH)\n"
            "  -q, --quiet              no summary line\n"
            "  -h, --help               this help\n"
            "\n"
            "Without gnuplot the charts are skipped (one line on stderr) and the rest is\n"
            "written. exit status: 0 written, 2 usage or input error, 3 a file could not\n"
            "be written or gnuplot failed\n");
}

/* ---------------------------------------------------------- the inputs - */

struct loaded {
    struct oomb_report_set *sets;
    struct oomb_results *res; /* one per set; sets[i].res points here */
    char **paths;
    int n, cap;
};

static int loaded_reserve(struct loaded *l)
{
    if (l->n < l->cap)
        return 0;
    int cap = l->cap ? 2 * l->cap : 16;
    /* sets[i].res points into res: fixed up after every move. */
    struct oomb_results *res = realloc(l->res, (size_t)cap * sizeof *res);
    if (!res)
        return -1;
    l->res = res;
    struct oomb_report_set *sets = realloc(l->sets, (size_t)cap * sizeof *sets);
    if (!sets)
        return -1;
    l->sets = sets;
    char **paths = realloc(l->paths, (size_t)cap * sizeof *paths);
    if (!paths)
        return -1;
    l->paths = paths;
    l->cap = cap;
    for (int i = 0; i < l->n; i++)
        l->sets[i].res = &l->res[i];
    return 0;
}

static void loaded_free(struct loaded *l)
{
    for (int i = 0; i < l->n; i++) {
        oomb_results_free(&l->res[i]);
        free(l->paths[i]);
    }
    free(l->res);
    free(l->sets);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

/* Loads one results file. strict: a bad file is an error (2); otherwise it
 * is skipped with a line on stderr. Returns 0, or the exit status. */
static int load_file(struct loaded *l, const char *path, int strict)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        snprintf(real, sizeof real, "%s", path);
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->paths[i], real) == 0)
            return 0;
    if (loaded_reserve(l) != 0) {
        fprintf(stderr, "oombench report: out of memory\n");
        return EXIT_INTERNAL;
    }
    char err[1024];
    struct oomb_results *r = &l->res[l->n];
    if (oomb_results_read(path, r, err, sizeof err) != OOMB_OK) {
        fprintf(stderr, "oombench report: %s%s\n", err, strict ? "" : " (skipped)");
        return strict ? EXIT_USAGE : 0;
    }
    l->paths[l->n] = oomb_strdup(real);
    l->sets[l->n].path = l->paths[l->n];
    l->sets[l->n].res = r;
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every *.json directly in dir, in name order. */
static int load_dir(struct loaded *l, const char *dir, int strict)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "oombench report: %s: %s\n", dir, strerror(errno));
        return EXIT_USAGE;
    }
    char *names[MAX_FILES];
    int n = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < MAX_FILES) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0 && de->d_name[0] != '.')
            names[n++] = oomb_strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!rc)
            rc = load_file(l, path, strict);
        free(names[i]);
    }
    return rc;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_created(const void *a, const void *b)
{
    const struct oomb_report_set *x = a, *y = b;
    int c = strcmp(x->res->created, y->res->created);
    return c ? c : strcmp(x->path, y->path);
}

/* A baseline folder: <dir>/<device-class>/<scenario>.json, else
 * <dir>/<scenario>.json, for each scenario of the inputs. */
static int load_baseline_dir(struct loaded *b, const char *dir, const struct loaded *in)
{
    for (int s = 0; s < in->n; s++) {
        const struct oomb_results *r = in->sets[s].res;
        /* The names become paths: only safe path components, so that
         * nothing outside dir is read. */
        char err[2048], why[128];
        const char *cls = r->device_class && r->device_class[0] ? r->device_class : NULL;
        if (cls && oomb_check_path_component(cls, why, sizeof why) != OOMB_OK) {
            fprintf(stderr,
                    "oombench report: %s: field 'device.class': %s; it cannot name a folder "
                    "under --baseline %s\n",
                    in->sets[s].path, why, dir);
            return EXIT_USAGE;
        }
        if (oomb_baseline_check_scenarios(r, in->sets[s].path, err, sizeof err) != OOMB_OK) {
            fprintf(stderr, "oombench report: --baseline %s: %s\n", dir, err);
            return EXIT_USAGE;
        }
        for (int i = 0; i < r->n_runs; i++) {
            char path[PATH_MAX] = "";
            if (cls)
                snprintf(path, sizeof path, "%s/%s/%s.json", dir, cls, r->runs[i].scenario);
            if (!is_file(path))
                snprintf(path, sizeof path, "%s/%s.json", dir, r->runs[i].scenario);
            if (is_file(path)) {
                int rc = load_file(b, path, 1);
                if (rc)
                    return rc;
            }
        }
    }
    if (b->n == 0) {
        fprintf(stderr, "oombench report: --baseline %s: no <device-class>/<scenario>.json or "
                        "<scenario>.json there for the scenarios given\n", dir);
        return EXIT_USAGE;
    }
    return 0;
}

/* ------------------------------------------------------------- gnuplot - */

/* The gnuplot program: `name` when it holds a '/', else the first
 * executable of that name on PATH. Returns 0 and the path in buf, or -1. */
static int find_program(const char *name, char *buf, size_t len)
{
    if (strchr(name, '/')) {
        snprintf(buf, len, "%s", name);
        return is_file(buf) && access(buf, X_OK) == 0 ? 0 : -1;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(buf, len, "%.*s/%s", (int)n, n ? path : ".", name);
        if (is_file(buf) && access(buf, X_OK) == 0)
            return 0;
        path += n + (colon ? 1 : 0);
    }
    return -1;
}

/* Runs gnuplot with args in folder dir, stdin and stdout on /dev/null;
 * stderr is kept in errbuf. Returns the exit status, or -1 when it could
 * not be started. */
static int run_gnuplot(const char *prog, const char *dir, const char *const *args, char *errbuf,
                       size_t errlen)
{
    int fds[2];
    errbuf[0] = '\0';
    if (pipe(fds) != 0) {
        snprintf(errbuf, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(errbuf, errlen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
        }
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        if (chdir(dir) != 0)
            _exit(126);
        char *argv[16];
        int k = 0;
        argv[k++] = (char *)prog;
        for (; args[k - 1] && k < 15; k++)
            argv[k] = (char *)args[k - 1];
        argv[k] = NULL;
        execv(prog, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t at = 0;
    char chunk[512];
    ssize_t got;
    while ((got = read(fds[0], chunk, sizeof chunk)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        size_t take = (size_t)got;
        if (at + take >= errlen)
            take = errlen - 1 - at;
        memcpy(errbuf + at, chunk, take);
        at += take;
    }
    errbuf[at] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The most telling line of gnuplot's complaint: the first one that mentions
 * an error, else the last non-empty one. */
static void first_error_line(const char *text, char *buf, size_t len)
{
    const char *pick = NULL, *last = NULL;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0) {
            last = p;
            if (!pick && (strstr(p, "rror") && (!e || strstr(p, "rror") < e)))
                pick = p;
        }
        p += n + (e ? 1 : 0);
    }
    if (!pick)
        pick = last;
    if (!pick) {
        snprintf(buf, len, "(no message)");
        return;
    }
    const char *e = strchr(pick, '\n');
    snprintf(buf, len, "%.*s", (int)(e ? (size_t)(e - pick) : strlen(pick)), pick);
}

/* Draws one chart: gnuplot writes STEM.svg.tmpPID and STEM.png.tmpPID,
 * which are renamed once it succeeded. Returns 0 or -1 (message printed). */
static int draw_chart(const char *prog, const char *dir, const char *stem)
{
    char suffix_arg[64], script[256], err[8192];
    snprintf(suffix_arg, sizeof suffix_arg, "suffix='.tmp%ld'", (long)getpid());
    snprintf(script, sizeof script, "%s.gp", stem);
    const char *args[] = {"-e", suffix_arg, script, NULL};
    int st = run_gnuplot(prog, dir, args, err, sizeof err);
    static const char *const ext[] = {"svg", "png"};
    char tmp[2][PATH_MAX], fin[2][PATH_MAX];
    for (int i = 0; i < 2; i++) {
        snprintf(tmp[i], sizeof tmp[i], "%s/%s.%s.tmp%ld", dir, stem, ext[i], (long)getpid());
        snprintf(fin[i], sizeof fin[i], "%s/%s.%s", dir, stem, ext[i]);
    }
    struct stat sa, sb;
    if (st == 0 && stat(tmp[0], &sa) == 0 && sa.st_size > 0 && stat(tmp[1], &sb) == 0 &&
        sb.st_size > 0) {
        if (rename(tmp[0], fin[0]) == 0 && rename(tmp[1], fin[1]) == 0)
            return 0;
        fprintf(stderr, "oombench report: %s/%s: cannot rename the chart: %s\n", dir, stem,
                strerror(errno));
    } else {
        char line[512];
        first_error_line(err, line, sizeof line);
        if (st < 0)
            fprintf(stderr, "oombench report: cannot start %s: %s\n", prog, err);
        else
            fprintf(stderr, "oombench report: gnuplot failed on %s/%s.gp (status %d): %s\n", dir,
                    stem, st, line);
    }
    unlink(tmp[0]);
    unlink(tmp[1]);
    return -1;
}

/* Whether this gnuplot has the cairo PNG terminal (Debian's gnuplot-nox
 * does; a build without cairo has only the libgd `png`). */
static const char *png_terminal(const char *prog)
{
    char err[2048];
    const char *args[] = {"-e", "set terminal pngcairo", NULL};
    int st = run_gnuplot(prog, "/", args, err, sizeof err);
    return st == 0 && !strstr(err, "unknown") ? "pngcairo" : "png";
}

/* ------------------------------------------------------------ writing - */

static int write_text(const char *dir, const char *stem, const char *ext,
                      const struct oomb_sbuf *b)
{
    char path[PATH_MAX], err[1024];
    snprintf(path, sizeof path, "%s/%s%s", dir, stem, ext);
    if (oomb_write_file_atomic(path, b->data ? b->data : "", b->len, err, sizeof err) !=
        OOMB_OK) {
        fprintf(stderr, "oombench report: %s\n", err);
        return -1;
    }
    /* The temporary file was private; a report is for reading. */
    mode_t mask = umask(0);
    umask(mask);
    chmod(path, 0666 & ~mask);
    return 0;
}

/* Removes the chart files an earlier report left in dir (every name
 * oomb_report_is_chart_file() knows, any section), so that none of them
 * contradicts this report. */
static void remove_chart_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!oomb_report_is_chart_file(de->d_name))
            continue;
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < sizeof path)
            unlink(path);
    }
    closedir(d);
}

/* ---------------------------------------------------------- the command - */

static int parse_noise(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno)
        return -1;
    if (*end == '%')
        end++;
    if (*end || !isfinite(v) || v < 0 || v >= 1000)
        return -1;
    *out = v;
    return 0;
}

int oomb_cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},      {"baseline", required_argument, NULL, 'b'},
        {"history", required_argument, NULL, 'H'},  {"noise", required_argument, NULL, 'n'},
        {"scenario", required_argument, NULL, 's'}, {"gnuplot", required_argument, NULL, 'g'},
        {"quiet", no_argument, NULL, 'q'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *out = "report", *baseline = NULL, *history = NULL, *scenario = NULL;
    const char *gnuplot = "gnuplot";
    double noise = -1; /* the verdict engine's default */
    int quiet = 0, c;
    optind = 0; /* full reinitialisation: may run after another command's getopt */
    while ((c = getopt_long(argc, argv, "o:b:H:n:s:g:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'b': baseline = optarg; break;
        case 'H': history = optarg; break;
        case 'n':
            if (parse_noise(optarg, &noise) != 0) {
                fprintf(stderr, "oombench report: --noise '%s': expected a percentage such as "
                                "5 or 2.5%%\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 's': scenario = optarg; break;
        case 'g': gnuplot = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage_report(stdout); return EXIT_FINE;
        default: usage_report(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "oombench report: no results file given\n");
        usage_report(stderr);
        return EXIT_USAGE;
    }

    struct loaded in = {0}, base = {0}, hist = {0};
    struct oomb_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = 0;
    for (int i = optind; i < argc && !rc; i++)
        rc = is_dir(argv[i]) ? load_dir(&in, argv[i], 1) : load_file(&in, argv[i], 1);
    if (!rc && in.n == 0) {
        fprintf(stderr, "oombench report: no results files found in the paths given\n");
        rc = EXIT_USAGE;
    }
    if (rc)
        goto done;
    qsort(in.sets, (size_t)in.n, sizeof *in.sets, cmp_created);
    if (baseline) {
        if (access(baseline, F_OK) != 0) { /* say which option named it */
            fprintf(stderr, "oombench report: --baseline %s: %s\n", baseline, strerror(errno));
            rc = EXIT_USAGE;
            goto done;
        }
        if (is_dir(baseline))
            rc = load_baseline_dir(&base, baseline, &in);
        else
            rc = load_file(&base, baseline, 1);
        if (rc)
            goto done;
        qsort(base.sets, (size_t)base.n, sizeof *base.sets, cmp_created);
    }
    if (history) {
        if (!is_dir(history)) {
            fprintf(stderr, "oombench report: --history %s: not a folder\n", history);
            rc = EXIT_USAGE;
            goto done;
        }
        if ((rc = load_dir(&hist, history, 0)))
            goto done;
    }

    /* gnuplot first: the scripts name the PNG terminal it has. */
    char prog[PATH_MAX];
    int have_gnuplot = find_program(gnuplot, prog, sizeof prog) == 0;
    const char *png = have_gnuplot ? png_terminal(prog) : "pngcairo";

    struct oomb_report_input ri = {0};
    ri.sets = in.sets;
    ri.n_sets = in.n;
    ri.baseline = base.sets;
    ri.n_baseline = base.n;
    ri.baseline_label = baseline;
    ri.history = hist.sets;
    ri.n_history = hist.n;
    ri.scenario = scenario;
    struct oomb_verdict_options vo;
    oomb_verdict_options_init(&vo);
    vo.noise_pct = noise;
    ri.verdict = &vo;
    ri.png_terminal = png;
    char err[1024];
    int st = oomb_report_build(&ri, &rep, err, sizeof err);
    if (st != OOMB_OK) {
        fprintf(stderr, "oombench report: %s\n", err);
        rc = st == OOMB_ERR_INVALID ? EXIT_USAGE : EXIT_INTERNAL;
        goto done;
    }
    if ((st = oomb_mkdir_p(out, err, sizeof err)) != OOMB_OK) {
        fprintf(stderr, "oombench report: %s\n", err);
        rc = st == OOMB_ERR_INVALID ? EXIT_USAGE : EXIT_INTERNAL;
        goto done;
    }
    int n_drawn = 0, n_failed = 0, n_omitted = 0;
    /* A chart left from an earlier report here would contradict this one. */
    remove_chart_files(out);
    for (int i = 0; i < rep.n_charts; i++) {
        struct oomb_chart *ch = &rep.charts[i];
        if (ch->note[0]) {
            n_omitted++;
            continue;
        }
        if (write_text(out, ch->stem, ".dat", &ch->dat) ||
            write_text(out, ch->stem, ".gp", &ch->gp)) {
            rc = EXIT_INTERNAL;
            goto done;
        }
    }
    const char *plot_note = NULL;
    char note_buf[PATH_MAX + 256];
    if (!have_gnuplot) {
        fprintf(stderr, "oombench report: gnuplot not found (%s): charts not drawn; "
                        "index.html, summary.md and the .dat/.gp files are written\n", gnuplot);
        snprintf(note_buf, sizeof note_buf,
                 "gnuplot was not found (%s), so the charts are not drawn. The data and "
                 "scripts are here: with gnuplot installed, run gnuplot chartN.gp in this "
                 "folder.", gnuplot);
        plot_note = note_buf;
    } else {
        for (int i = 0; i < rep.n_charts; i++) {
            struct oomb_chart *ch = &rep.charts[i];
            if (ch->note[0])
                continue;
            if (draw_chart(prog, out, ch->stem) == 0) {
                ch->drawn = 1;
                n_drawn++;
            } else {
                n_failed++;
            }
        }
        if (n_failed) {
            snprintf(note_buf, sizeof note_buf,
                     "gnuplot failed on %d chart(s); their data and scripts are here.", n_failed);
            plot_note = note_buf;
        }
    }
    struct oomb_sbuf html = {0}, md = {0};
    if (oomb_report_html(&rep, &ri, plot_note, &html) != OOMB_OK ||
        oomb_report_markdown(&rep, &ri, plot_note, &md) != OOMB_OK) {
        fprintf(stderr, "oombench report: out of memory\n");
        rc = EXIT_INTERNAL;
    } else if (write_text(out, "index", ".html", &html) || write_text(out, "summary", ".md", &md)) {
        rc = EXIT_INTERNAL;
    }
    oomb_sbuf_free(&html);
    oomb_sbuf_free(&md);
    if (!rc && n_failed)
        rc = EXIT_INTERNAL;
    if (!rc && !quiet)
        printf("report: %s/index.html (%d chart(s) drawn, %d not applicable to these results; "
               "%d regression(s)%s)\n",
               out, n_drawn, n_omitted, rep.n_regressions,
               rep.cmp_what[0] ? "" : ", nothing compared");
done:
    oomb_report_free(&rep);
    loaded_free(&in);
    loaded_free(&base);
    loaded_free(&hist);
    return rc;
}

int oomb_report_after_run(const char *results_path, const char *out_dir, int quiet)
{
    char *argv[] = {(char *)"report", (char *)"--out", (char *)out_dir, (char *)results_path,
                    quiet ? (char *)"-q" : NULL,
                    NULL};
    return oomb_cmd_report(quiet ? 5 : 4, argv);
}
