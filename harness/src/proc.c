/*
 * Process containment and temporary files (see proc.h). The signal handler
 * only uses system calls (kill, waitpid, openat, getdents64, unlinkat), so
 * that it may run at any moment of the harness.
 */
#define _GNU_SOURCE
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* Written by the supervisor, read by the harness after it exited (and by
 * the signal handler while it runs). */
struct sup_shared {
    volatile pid_t worker;
    int have_status;
    int status;
    int timed_out;
    int terminated;
    struct rusage ru;
};

/* What the signal handler needs, set only by the harness's main flow. */
static struct {
    char tmpdir[PATH_MAX];
    volatile sig_atomic_t have_tmpdir;
    char res_dir[PATH_MAX];
    char res_prefix[NAME_MAX + 8];
    volatile sig_atomic_t have_res;
    volatile pid_t sup;
    struct sup_shared *volatile shared;
    int lock_fd;
    int installed[3];
    struct sigaction old[3];
} g = {.lock_fd = -1};

static const int guarded_signals[3] = {SIGINT, SIGTERM, SIGHUP};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void nap_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&ts, NULL);
}

static int pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* ------------------------------------------------ async-signal-safe rm --- */

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int name_is_dots(const char *n)
{
    return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

static int has_prefix(const char *s, const char *prefix)
{
    while (*prefix)
        if (*s++ != *prefix++)
            return 0;
    return 1;
}

/* Removes parent/name and everything below it (at most `depth` levels),
 * without following symbolic links. Only system calls: safe in a handler. */
static void rm_tree_at(int parent, const char *name, int depth)
{
    if (unlinkat(parent, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
        return;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    /* Entries removed while reading may shift the listing: read again until
     * a pass finds nothing (bounded). */
    for (int pass = 0; pass < 16; pass++) {
        int found = 0;
        lseek(fd, 0, SEEK_SET);
        for (;;) {
            char buf[4096] __attribute__((aligned(8)));
            long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
            if (n <= 0)
                break;
            for (long off = 0; off < n;) {
                struct linux_dirent64 *d = (struct linux_dirent64 *)(void *)(buf + off);
                off += d->d_reclen;
                if (name_is_dots(d->d_name))
                    continue;
                found = 1;
                if (d->d_type == DT_DIR && depth > 0)
                    rm_tree_at(fd, d->d_name, depth - 1);
                else if (unlinkat(fd, d->d_name, 0) != 0 && errno == EISDIR && depth > 0)
                    rm_tree_at(fd, d->d_name, depth - 1);
            }
        }
        if (!found)
            break;
    }
    close(fd);
    unlinkat(parent, name, AT_REMOVEDIR);
}

/* Splits path at its last '/' into a descriptor of the folder and the name. */
static void rm_tree(const char *path)
{
    char dir[PATH_MAX];
    size_t len = 0, slash = (size_t)-1;
    for (; path[len] && len < sizeof dir - 1; len++) {
        dir[len] = path[len];
        if (path[len] == '/')
            slash = len;
    }
    dir[len] = '\0';
    int pfd;
    const char *name;
    if (slash == (size_t)-1) {
        pfd = AT_FDCWD;
        name = dir;
    } else {
        dir[slash] = '\0';
        name = dir + slash + 1;
        pfd = open(slash == 0 ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
            return;
    }
    rm_tree_at(pfd, name, 8);
    if (pfd >= 0)
        close(pfd);
}

/* Unlinks the entries of dir whose name starts with prefix. */
static void rm_prefixed(const char *dir, const char *prefix)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (;;) {
        char buf[4096] __attribute__((aligned(8)));
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(void *)(buf + off);
            off += d->d_reclen;
            if (has_prefix(d->d_name, prefix))
                unlinkat(fd, d->d_name, 0);
        }
    }
    close(fd);
}

/* ---------------------------------------------------- signal handling --- */

static void on_signal(int sig)
{
    int saved = errno;
    pid_t s = g.sup;
    if (s > 0) {
        /* Stop the run before its folder goes: the worker at once, then the
         * supervisor, which kills and reaps what the worker started. */
        struct sup_shared *sh = g.shared;
        pid_t w = sh ? sh->worker : 0;
        if (w > 0)
            kill(-w, SIGKILL);
        kill(s, SIGTERM);
        int gone = 0;
        for (int i = 0; i < 300 && !gone; i++) {
            if (waitpid(s, NULL, WNOHANG) != 0)
                gone = 1;
            else
                nap_ns(10000000);
        }
        if (!gone) {
            kill(s, SIGKILL);
            waitpid(s, NULL, 0);
        }
    }
    if (g.have_tmpdir)
        rm_tree(g.tmpdir);
    if (g.have_res)
        rm_prefixed(g.res_dir, g.res_prefix);
    /* Die of the signal as if nobody had caught it. */
    for (int i = 0; i < 3; i++)
        if (guarded_signals[i] == sig)
            sigaction(sig, &g.old[i], NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    errno = saved;
}

static void install_handlers(void)
{
    for (int i = 0; i < 3; i++) {
        struct sigaction old;
        if (g.installed[i] || sigaction(guarded_signals[i], NULL, &old) != 0)
            continue;
        if (old.sa_handler == SIG_IGN)
            continue; /* nohup and friends: the signal stays ignored */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigfillset(&sa.sa_mask);
        if (sigaction(guarded_signals[i], &sa, &g.old[i]) == 0)
            g.installed[i] = 1;
    }
}

static void restore_handlers(void)
{
    for (int i = 0; i < 3; i++)
        if (g.installed[i]) {
            sigaction(guarded_signals[i], &g.old[i], NULL);
            g.installed[i] = 0;
        }
}

/* ---------------------------------------------------- the supervisor --- */

/* The supervisor's children, from /proc/self/task/<tid>/children, else by
 * scanning /proc for processes whose parent it is. Returns the count (at
 * most max). */
static int list_children(pid_t self, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)self);
    int n = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        long v;
        while (n < max && fscanf(f, "%ld", &v) == 1)
            out[n++] = (pid_t)v;
        fclose(f);
        return n;
    }
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *de;
    while (n < max && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char stat[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *sf = fopen(path, "r");
        if (!sf)
            continue;
        size_t got = fread(stat, 1, sizeof stat - 1, sf);
        fclose(sf);
        stat[got] = '\0';
        char *rp = strrchr(stat, ')'); /* the name may hold spaces and ')' */
        char state;
        long ppid;
        if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == (long)self)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

static void note_worker(struct sup_shared *sh, pid_t w, pid_t p, int st, const struct rusage *ru)
{
    if (p == w && !sh->have_status) {
        sh->status = st;
        sh->ru = *ru;
        sh->have_status = 1;
    }
}

/* Kills the worker's group and everything that reparented to us, and reaps
 * it all: at the end the supervisor has no child left (or 3 s passed). */
static void kill_all(struct sup_shared *sh, pid_t w)
{
    const pid_t self = getpid();
    int64_t give_up = now_ns() + 3000000000LL;
    for (;;) {
        kill(-w, SIGKILL);
        pid_t kids[256];
        int n = list_children(self, kids, 256);
        for (int i = 0; i < n; i++) {
            kill(-kids[i], SIGKILL); /* a setsid escape leads its own group */
            kill(kids[i], SIGKILL);
        }
        int st;
        struct rusage ru;
        pid_t p;
        while ((p = wait4(-1, &st, WNOHANG, &ru)) > 0)
            note_worker(sh, w, p, st, &ru);
        if (p < 0 && errno == ECHILD)
            return;
        if (now_ns() > give_up)
            return;
        nap_ns(1000000);
    }
}

static void worker_limits(const struct oomb_proc_opts *o)
{
    double threads = o->cpu_threads;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (double)n : 1;
    }
    /* CPU time cannot outrun wall time x threads: this only ever fires for a
     * worker that somehow outlived its supervisor. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_CPU, &rl) == 0) {
        rlim_t soft = (rlim_t)ceil(o->timeout_s * threads) + 10;
        if (rl.rlim_max == RLIM_INFINITY || soft + 5 <= rl.rlim_max) {
            rl.rlim_cur = soft;
            rl.rlim_max = soft + 5;
            setrlimit(RLIMIT_CPU, &rl);
        }
    }
    double a = ceil(o->timeout_s) + 10;
    alarm(a < 1e9 ? (unsigned)a : 1000000000u);
}

static void supervise(const struct oomb_proc_opts *o, int (*fn)(void *), void *arg,
                      struct sup_shared *sh, pid_t harness) __attribute__((noreturn));
static void supervise(const struct oomb_proc_opts *o, int (*fn)(void *), void *arg,
                      struct sup_shared *sh, pid_t harness)
{
    static const int reset[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGALRM, SIGPIPE};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++)
        signal(reset[i], SIG_DFL);
    setpgid(0, 0);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    /* Dies with the harness; the harness may already be gone (the race the
     * getppid() check closes). */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != harness)
        _exit(0);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (o->drain_fd >= 0)
        close(o->drain_fd);
    const pid_t self = getpid();
    pid_t w = fork();
    if (w < 0)
        _exit(2);
    if (w == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != self)
            _exit(125);
        worker_limits(o);
        int code = fn(arg);
        fflush(NULL);
        _exit(code);
    }
    setpgid(w, w); /* also here: the group must exist before we may kill it */
    sh->worker = w;
    if (o->close_fd >= 0)
        close(o->close_fd);
    int64_t deadline = now_ns() + (int64_t)(o->timeout_s * 1e9);
    for (;;) {
        int64_t left = deadline - now_ns();
        if (left <= 0) {
            sh->timed_out = 1;
            break;
        }
        if (left > 50000000)
            left = 50000000; /* also look at the parent now and then */
        struct timespec ts = {0, (long)left};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || getppid() != harness) {
            sh->terminated = 1;
            break;
        }
        int st;
        struct rusage ru;
        pid_t p;
        while ((p = wait4(-1, &st, WNOHANG, &ru)) > 0)
            note_worker(sh, w, p, st, &ru); /* orphans are reaped here too */
        if (sh->have_status)
            break;
    }
    kill_all(sh, w);
    _exit(0);
}

int oomb_proc_run(const struct oomb_proc_opts *opts, int (*fn)(void *arg), void *arg,
                  struct oomb_proc_result *res, char *err, size_t err_len)
{
    memset(res, 0, sizeof *res);
    size_t cap = opts->drain_fd >= 0 ? opts->drain_max + 1 : 1;
    res->out = calloc(1, cap);
    if (!res->out) {
        oomb_errf(err, err_len, "out of memory");
        return OOMB_ERR_INTERNAL;
    }
    struct sup_shared *sh =
        mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        oomb_errf(err, err_len, "mmap: %s", strerror(errno));
        free(res->out);
        res->out = NULL;
        return OOMB_ERR_INTERNAL;
    }
    memset(sh, 0, sizeof *sh);
    const pid_t harness = getpid();
    fflush(NULL);
    pid_t s = fork();
    if (s < 0) {
        oomb_errf(err, err_len, "fork: %s", strerror(errno));
        munmap(sh, sizeof *sh);
        free(res->out);
        res->out = NULL;
        return OOMB_ERR_INTERNAL;
    }
    if (s == 0)
        supervise(opts, fn, arg, sh, harness);
    if (opts->close_fd >= 0)
        close(opts->close_fd);
    setpgid(s, s);
    g.shared = sh;
    g.sup = s;

    int draining = opts->drain_fd >= 0;
    if (draining)
        fcntl(opts->drain_fd, F_SETFL, fcntl(opts->drain_fd, F_GETFL) | O_NONBLOCK);
    /* A pidfd wakes us the moment the supervisor exits; without one (old
     * kernels) we look with growing naps. */
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, s, 0);
#endif
    /* Our own deadline is only a backstop for a supervisor that hangs. */
    int64_t deadline = now_ns() + (int64_t)((opts->timeout_s + 5.0) * 1e9), kill_at = 0;
    int64_t nap = 200000; /* 0.2 ms, growing to 20 ms */
    int status = 0;
    for (;;) {
        struct pollfd pfd[2];
        int n_pfd = 0;
        if (pidfd >= 0)
            pfd[n_pfd++] = (struct pollfd){pidfd, POLLIN, 0};
        if (draining)
            pfd[n_pfd++] = (struct pollfd){opts->drain_fd, POLLIN, 0};
        if (n_pfd > 0)
            poll(pfd, (nfds_t)n_pfd, pidfd >= 0 ? 100 : (int)(nap / 1000000) + 1);
        else
            nap_ns(nap);
        while (draining) {
            char buf[4096];
            ssize_t n = read(opts->drain_fd, buf, sizeof buf);
            if (n > 0) {
                size_t keep = res->out_len + (size_t)n > opts->drain_max
                                  ? opts->drain_max - res->out_len
                                  : (size_t)n;
                memcpy(res->out + res->out_len, buf, keep);
                res->out_len += keep;
                res->out_truncated |= keep < (size_t)n;
                continue;
            }
            if (n == 0)
                draining = 0; /* every writer is gone */
            break;
        }
        pid_t w = waitpid(s, &status, WNOHANG);
        if (w == s)
            break;
        if (w < 0 && errno != EINTR) {
            status = 0;
            break;
        }
        int64_t t = now_ns();
        if (!kill_at && t > deadline) {
            if (sh->worker > 0)
                kill(-sh->worker, SIGKILL);
            kill(s, SIGTERM);
            kill_at = t + 2000000000LL;
        } else if (kill_at && t > kill_at) {
            kill(s, SIGKILL);
        }
        if (nap < 20000000)
            nap *= 2;
    }
    if (pidfd >= 0)
        close(pidfd);
    g.sup = 0;
    g.shared = NULL;
    if (draining) { /* what is left; nothing can block now */
        char buf[4096];
        ssize_t n;
        while ((n = read(opts->drain_fd, buf, sizeof buf)) > 0) {
            size_t keep = res->out_len + (size_t)n > opts->drain_max
                              ? opts->drain_max - res->out_len
                              : (size_t)n;
            memcpy(res->out + res->out_len, buf, keep);
            res->out_len += keep;
            res->out_truncated |= keep < (size_t)n;
        }
    }
    res->out[res->out_len] = '\0';
    if (sh->have_status) {
        res->status = sh->status;
        res->ru = sh->ru;
    } else {
        res->no_status = 1;
        res->status = status;
    }
    res->timed_out = sh->timed_out || kill_at != 0;
    res->terminated = sh->terminated;
    munmap(sh, sizeof *sh);
    return OOMB_OK;
}

/* ------------------------------------------------- temporary folders --- */

void oomb_proc_tmp_base(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(buf, len, "%s/oombench-%u", base, (unsigned)getuid());
}

/* A run folder is stale when nobody holds its lock (the harness and every
 * process it forked are gone) and its pid is not alive. */
static void clean_stale_tmpdirs(const char *base)
{
    DIR *d = opendir(base);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "run-", 4) != 0)
            continue;
        char *end;
        long pid = strtol(de->d_name + 4, &end, 10);
        if (end == de->d_name + 4 || *end != '.' || pid <= 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s/.lock", base, de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        int locked = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0;
        if (fd >= 0)
            close(fd);
        if (locked || (pid_alive((pid_t)pid) && pid != getpid()))
            continue;
        snprintf(path, sizeof path, "%s/%s", base, de->d_name);
        rm_tree(path);
    }
    closedir(d);
}

int oomb_proc_tmpdir_create(char *buf, size_t len, char *err, size_t err_len)
{
    char base[PATH_MAX];
    oomb_proc_tmp_base(base, sizeof base);
    if (mkdir(base, 0700) != 0 && errno != EEXIST) {
        oomb_errf(err, err_len, "%s: cannot create the temporary folder: %s", base,
                  strerror(errno));
        return OOMB_ERR_IO;
    }
    struct stat st;
    if (lstat(base, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 077)) {
        oomb_errf(err, err_len,
                  "%s: not a private folder of this user (owner uid %u, mode %04o); remove it "
                  "or set TMPDIR elsewhere",
                  base, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        return OOMB_ERR_IO;
    }
    clean_stale_tmpdirs(base);
    if ((size_t)snprintf(buf, len, "%s/run-%d.XXXXXX", base, (int)getpid()) >= len ||
        !mkdtemp(buf)) {
        oomb_errf(err, err_len, "%s: cannot create a temporary folder: %s", buf, strerror(errno));
        return OOMB_ERR_IO;
    }
    char lock[PATH_MAX + 8];
    snprintf(lock, sizeof lock, "%s/.lock", buf);
    /* Inherited by the runs' processes: the folder is in use while any of
     * them lives. */
    g.lock_fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (g.lock_fd < 0 || flock(g.lock_fd, LOCK_EX) != 0) {
        oomb_errf(err, err_len, "%s: cannot lock: %s", lock, strerror(errno));
        if (g.lock_fd >= 0)
            close(g.lock_fd);
        g.lock_fd = -1;
        rm_tree(buf);
        return OOMB_ERR_IO;
    }
    snprintf(g.tmpdir, sizeof g.tmpdir, "%s", buf);
    g.have_tmpdir = 1;
    install_handlers();
    return OOMB_OK;
}

void oomb_proc_tmpdir_remove(const char *dir)
{
    if (!dir || !dir[0])
        return;
    g.have_tmpdir = 0;
    rm_tree(dir);
    if (g.lock_fd >= 0)
        close(g.lock_fd);
    g.lock_fd = -1;
    oomb_proc_guard_results(NULL);
    restore_handlers();
}

void oomb_proc_guard_results(const char *path)
{
    g.have_res = 0;
    if (!path)
        return;
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof g.res_dir)
            return;
        memcpy(g.res_dir, path, n);
        g.res_dir[n] = '\0';
        if (n == 0)
            snprintf(g.res_dir, sizeof g.res_dir, "/");
    } else {
        snprintf(g.res_dir, sizeof g.res_dir, ".");
    }
    if ((size_t)snprintf(g.res_prefix, sizeof g.res_prefix, "%s.tmp.", slash ? slash + 1 : path) >=
        sizeof g.res_prefix)
        return;
    g.have_res = 1;
}

/* The pid of a results file name `<stem>-<YYYYMMDDTHHMMSSZ>-<pid>[-n].json`,
 * or -1. */
static long results_name_pid(const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i + 18 <= len; i++) {
        const char *s = name + i;
        int ok = 1;
        for (int k = 0; k < 16 && ok; k++)
            ok = k == 8 ? s[k] == 'T' : k == 15 ? s[k] == 'Z' : (s[k] >= '0' && s[k] <= '9');
        if (!ok || s[16] != '-')
            continue;
        char *end;
        long pid = strtol(s + 17, &end, 10);
        if (end == s + 17 || (*end != '-' && *end != '.'))
            continue;
        return pid;
    }
    return -1;
}

/* The writer's pid of a temp file `<name>.json.tmp.<pid>.XXXXXX` (what
 * oomb_results_write makes), or -1. */
static long tmp_name_pid(const char *name)
{
    const char *s = strstr(name, ".json.tmp.");
    if (!s)
        return -1;
    s += strlen(".json.tmp.");
    char *end;
    long pid = strtol(s, &end, 10);
    if (end == s || *end != '.' || *s < '0' || *s > '9')
        return -1;
    return pid;
}

int oomb_proc_clean_stale_results(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".json.tmp."))
            continue;
        long pid = tmp_name_pid(de->d_name);
        if (pid <= 0)
            pid = results_name_pid(de->d_name);
        if (pid <= 0 || pid_alive((pid_t)pid))
            continue;
        char path[PATH_MAX + 300];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        /* A temp file lives for milliseconds: one a minute old whose writer
         * is gone was left behind (the age also spares a writer in another
         * pid namespace sharing the folder). */
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() ||
            now - st.st_mtime < 60)
            continue;
        if (unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}
