/*
 * Helpers shared by the harness modules (see util.h).
 */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void oomb_errf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!buf || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

uint64_t oomb_fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

const char *oomb_term_text(const char *s, size_t max, char *buf, size_t len)
{
    size_t j = 0, i = 0;
    for (; s && s[i] && j + 4 < len && i < max; i++)
        buf[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s && s[i] && j + 4 < len) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

int oomb_file_digest(const char *path, char out[17])
{
    out[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return OOMB_ERR_IO;
    uint64_t h = OOMB_FNV1A64_INIT;
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        h = oomb_fnv1a64(h, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return OOMB_ERR_IO;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return OOMB_OK;
}

static int revision_text_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              *s == '.' || *s == '_' || *s == '/' || *s == '-'))
            return 0;
    return 1;
}

/* `git -C dir log -1 --format=%H %ct [rev]`: fills rev (when empty) and
 * *time; silent (stderr to /dev/null), bounded output. */
static void git_revision(const char *dir, char rev[65], int64_t *time)
{
    int fds[2];
    if (!dir || pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(fds[1], STDOUT_FILENO);
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        char *argv[] = {"git", "-C", (char *)dir, "log", "-1", "--format=%H %ct",
                        rev[0] ? rev : NULL, NULL};
        execvp("git", argv);
        _exit(127);
    }
    close(fds[1]);
    char buf[256];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && ((k = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0 ||
                                  (k < 0 && errno == EINTR)))
        if (k > 0)
            n += (size_t)k;
    buf[n] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return;
    char hash[65];
    long long t;
    if (sscanf(buf, "%64[0-9a-f] %lld", hash, &t) != 2 || t <= 0)
        return;
    if (!rev[0])
        snprintf(rev, 65, "%s", hash);
    *time = t;
}

int oomb_source_revision(const char *given, const char *dir, char rev[65], char from[32],
                         int64_t *time)
{
    static const char *const vars[] = {"GITHUB_SHA", "CI_COMMIT_SHA", "BUILDKITE_COMMIT",
                                       "CIRCLE_SHA1", "GIT_COMMIT", "BUILD_VCS_NUMBER"};
    rev[0] = from[0] = '\0';
    *time = 0;
    if (given) {
        if (!revision_text_ok(given))
            return OOMB_ERR_INVALID;
        snprintf(rev, 65, "%s", given);
        snprintf(from, 32, "--commit");
    }
    for (size_t i = 0; !rev[0] && i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && revision_text_ok(v)) {
            snprintf(rev, 65, "%s", v);
            snprintf(from, 32, "%s", vars[i]);
        }
    }
    int had = rev[0] != '\0';
    git_revision(dir, rev, time);
    if (!had && rev[0])
        snprintf(from, 32, "git");
    return OOMB_OK;
}

char *oomb_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int oomb_mkdir_p(const char *path, char *err, size_t err_len)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        oomb_errf(err, err_len, "%s: invalid directory path", path);
        return OOMB_ERR_IO;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            oomb_errf(err, err_len, "%s: cannot create directory: %s", buf, strerror(errno));
            /* A file where the path needs a folder: the path is wrong, not the machine. */
            return errno == ENOTDIR ? OOMB_ERR_INVALID : OOMB_ERR_IO;
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        oomb_errf(err, err_len, "%s: not a directory", path);
        return OOMB_ERR_INVALID;
    }
    return OOMB_OK;
}

int64_t oomb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const char *oomb_exe_dir(void)
{
    static char dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0)
        return ".";
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (!slash)
        return ".";
    *slash = '\0';
    return dir;
}

int oomb_write_file_atomic(const char *path, const void *data, size_t len, char *err,
                           size_t err_len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        oomb_errf(err, err_len, "%s: path too long", path);
        return OOMB_ERR_IO;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        oomb_errf(err, err_len, "%s: cannot create temporary file: %s", path, strerror(errno));
        return OOMB_ERR_IO;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    return OOMB_OK;
fail:
    oomb_errf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return OOMB_ERR_IO;
}

int64_t oomb_sched_wait_ns(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int64_t total = 0;
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[64], buf[128];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* the thread ended meanwhile */
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        uint64_t run_ns, wait_ns;
        if (sscanf(buf, "%" SCNu64 " %" SCNu64, &run_ns, &wait_ns) == 2) {
            total += (int64_t)wait_ns;
            seen = 1;
        }
    }
    closedir(d);
    return seen ? total : -1;
}

/* ------------------------------------------------------------ encoders - */

/* Length of the valid UTF-8 sequence at u (1 to 4), or 0 when the bytes
 * there are not one (overlong forms, surrogates and code points above
 * U+10FFFF included). */
static int utf8_len(const unsigned char *u)
{
    unsigned c = u[0];
    if (c < 0x80)
        return 1;
    int len = c >= 0xC2 && c <= 0xDF   ? 2
              : c >= 0xE0 && c <= 0xEF ? 3
              : c >= 0xF0 && c <= 0xF4 ? 4
                                       : 0;
    for (int k = 1; k < len; k++)
        if ((u[k] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && u[1] < 0xA0) || (c == 0xED && u[1] >= 0xA0) || (c == 0xF0 && u[1] < 0x90) ||
        (c == 0xF4 && u[1] >= 0x90))
        return 0;
    return len;
}

/* Appends n bytes of p at dst + at (when dst is not NULL); returns at + n. */
static size_t put(char *dst, size_t at, const char *p, size_t n)
{
    if (dst)
        memcpy(dst + at, p, n);
    return at + n;
}

/* The loop shared by the encoders: `ascii` encodes one ASCII byte; valid
 * multi-byte UTF-8 is copied and invalid bytes become '?'. */
static size_t encode_with(char *dst, const char *s, size_t (*ascii)(char *, size_t, char),
                          const char *open, const char *close)
{
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    size_t at = put(dst, 0, open, strlen(open));
    while (*u) {
        if (*u < 0x80) {
            at = ascii(dst, at, (char)*u);
            u++;
            continue;
        }
        int len = utf8_len(u);
        if (len > 0) {
            at = put(dst, at, (const char *)u, (size_t)len);
            u += len;
        } else {
            at = put(dst, at, "?", 1);
            u++;
        }
    }
    at = put(dst, at, close, strlen(close));
    if (dst)
        dst[at] = '\0';
    return at;
}

static size_t gp_ascii(char *dst, size_t at, char c)
{
    /* Not '' (gnuplot 5.4 misreads two of them in a row): close the
     * literal, append a double-quoted one holding only the quote (no
     * backquote, no backslash: nothing to substitute), reopen. */
    if (c == '\'')
        return put(dst, at, "'.\"'\".'", 7);
    if ((unsigned char)c < 0x20 || c == 0x7f)
        return put(dst, at, " ", 1);
    return put(dst, at, &c, 1);
}

size_t oomb_encode_gnuplot(char *dst, const char *s)
{
    return encode_with(dst, s, gp_ascii, "'", "'");
}

static size_t html_ascii(char *dst, size_t at, char c)
{
    switch (c) {
    case '&':
        return put(dst, at, "&amp;", 5);
    case '<':
        return put(dst, at, "&lt;", 4);
    case '>':
        return put(dst, at, "&gt;", 4);
    case '"':
        return put(dst, at, "&quot;", 6);
    case '\'':
        return put(dst, at, "&#39;", 5);
    default:
        if (((unsigned char)c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
            return put(dst, at, "?", 1);
        return put(dst, at, &c, 1);
    }
}

size_t oomb_encode_html(char *dst, const char *s)
{
    return encode_with(dst, s, html_ascii, "", "");
}

static size_t md_ascii(char *dst, size_t at, char c)
{
    if ((unsigned char)c < 0x20 || c == 0x7f)
        return put(dst, at, " ", 1);
    if (strchr("\\`*_[]<>|~&@$", c))
        at = put(dst, at, "\\", 1);
    return put(dst, at, &c, 1);
}

size_t oomb_encode_markdown(char *dst, const char *s)
{
    return encode_with(dst, s, md_ascii, "", "");
}

char *oomb_encode(oomb_encoder enc, const char *s)
{
    size_t n = enc(NULL, s);
    char *out = malloc(n + 1);
    if (out)
        enc(out, s);
    return out;
}

int oomb_fput_encoded(FILE *f, oomb_encoder enc, const char *s)
{
    char *e = oomb_encode(enc, s);
    if (!e)
        return -1;
    int rc = fputs(e, f) < 0 ? -1 : 0;
    free(e);
    return rc;
}

int oomb_check_path_component(const char *name, char *why, size_t why_len)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0) {
        oomb_errf(why, why_len, "empty");
        return OOMB_ERR_INVALID;
    }
    if (n > OOMB_PATH_COMPONENT_MAX) {
        oomb_errf(why, why_len, "%zu bytes long, at most %d allowed", n, OOMB_PATH_COMPONENT_MAX);
        return OOMB_ERR_INVALID;
    }
    if (name[0] == '.') {
        oomb_errf(why, why_len, "starts with '.'");
        return OOMB_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            if (c >= 0x20 && c < 0x7f)
                oomb_errf(why, why_len, "holds '%c' at byte %zu (allowed: A-Z a-z 0-9 . _ -)", c,
                          i);
            else
                oomb_errf(why, why_len,
                          "holds byte 0x%02x at byte %zu (allowed: A-Z a-z 0-9 . _ -)", c, i);
            return OOMB_ERR_INVALID;
        }
    }
    return OOMB_OK;
}
