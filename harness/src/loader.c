/*
 * Plugin loading and discovery (see loader.h). The host reads only the
 * descriptor fields within the plugin's struct_size, so a plugin built for a
 * newer minor version (more fields) loads, and one built for an older minor
 * gets zeros for the fields it does not have.
 */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static int valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

int oomb_plugin_open(const char *path, struct oomb_loaded_plugin **out, char *err,
                     size_t err_len)
{
    *out = NULL;
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        oomb_errf(err, err_len, "%s: cannot open plugin: %s", path, e ? e : "unknown error");
        return OOMB_ERR_IO;
    }
    int rc = OOMB_ERR_ABI;
    struct oomb_loaded_plugin *p = NULL;
    dlerror();
    void *sym = dlsym(dl, OOMB_PLUGIN_ENTRY_NAME);
    if (!sym) {
        oomb_errf(err, err_len, "%s: not an oombench plugin: entry symbol '%s' missing", path,
                  OOMB_PLUGIN_ENTRY_NAME);
        goto fail;
    }
    oomb_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object to function pointer, POSIX-sanctioned */
    const struct oomb_plugin *d = entry();
    if (!d) {
        oomb_errf(err, err_len, "%s: entry '%s' returned no descriptor", path,
                  OOMB_PLUGIN_ENTRY_NAME);
        goto fail;
    }
    if (d->struct_size < offsetof(struct oomb_plugin, name)) {
        oomb_errf(err, err_len, "%s: descriptor too small (%u bytes) to hold an ABI version",
                  path, (unsigned)d->struct_size);
        goto fail;
    }
    if (d->abi_major != OOMB_ABI_MAJOR) {
        oomb_errf(err, err_len,
                  "%s: plugin ABI %u.%u is incompatible with this oombench (ABI %d.%d): "
                  "major versions differ; rebuild the plugin against this oombench's plugin.h",
                  path, d->abi_major, d->abi_minor, OOMB_ABI_MAJOR, OOMB_ABI_MINOR);
        goto fail;
    }
    if (d->struct_size < OOMB_PLUGIN_V1_MIN_SIZE) {
        oomb_errf(err, err_len,
                  "%s: descriptor too small: struct_size %u, ABI %d.0 needs at least %zu bytes",
                  path, (unsigned)d->struct_size, OOMB_ABI_MAJOR, OOMB_PLUGIN_V1_MIN_SIZE);
        goto fail;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        rc = OOMB_ERR_OOM;
        oomb_errf(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    size_t n = d->struct_size < sizeof p->desc ? d->struct_size : sizeof p->desc;
    memcpy(&p->desc, d, n);
    const struct oomb_plugin *c = &p->desc;
    if (!valid_name(c->name)) {
        oomb_errf(err, err_len, "%s: plugin name '%s' is not [a-z0-9_]{1,64}", path,
                  c->name ? c->name : "(null)");
        goto fail;
    }
    const char *missing = !c->create ? "create" : !c->step ? "step" : !c->destroy ? "destroy"
                                                                                  : NULL;
    if (missing) {
        oomb_errf(err, err_len, "%s: plugin '%s': required callback '%s' is NULL", path, c->name,
                  missing);
        goto fail;
    }
    if (!(c->modes & (OOMB_MODE_TRAIN | OOMB_MODE_INFER)) ||
        !(c->backends & (OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA))) {
        oomb_errf(err, err_len, "%s: plugin '%s' declares no mode or no backend", path, c->name);
        goto fail;
    }
    if (c->n_params < 0 || (c->n_params > 0 && !c->params)) {
        oomb_errf(err, err_len, "%s: plugin '%s': n_params %d but params is NULL", path, c->name,
                  c->n_params);
        goto fail;
    }
    for (int i = 0; i < c->n_params; i++) {
        const struct oomb_param_desc *pd = &c->params[i];
        if (!pd->name || !pd->default_value || pd->type < OOMB_PARAM_INT ||
            pd->type > OOMB_PARAM_STRING) {
            oomb_errf(err, err_len, "%s: plugin '%s': parameter %d lacks a name, a type or a "
                      "default", path, c->name, i);
            goto fail;
        }
    }
    if (!c->description)
        p->desc.description = "";
    p->path = oomb_strdup(path);
    p->dl = dl;
    if (!p->path) {
        rc = OOMB_ERR_OOM;
        goto fail;
    }
    *out = p;
    return OOMB_OK;
fail:
    free(p);
    dlclose(dl);
    return rc;
}

void oomb_plugin_close(struct oomb_loaded_plugin *p)
{
    if (!p)
        return;
    if (p->dl)
        dlclose(p->dl);
    free(p->path);
    free(p);
}

int oomb_plugin_probe(const char *path, double timeout_s, char *err, size_t err_len)
{
    int fds[2];
    if (pipe(fds) != 0) {
        oomb_errf(err, err_len, "%s: cannot probe: pipe: %s", path, strerror(errno));
        return OOMB_ERR_IO;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        oomb_errf(err, err_len, "%s: cannot probe: fork: %s", path, strerror(errno));
        return OOMB_ERR_IO;
    }
    if (pid == 0) {
        /* Silent: the parent reports what happened (a sanitizer's crash
         * report from here would land in the middle of the harness's
         * output). */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, STDOUT_FILENO);
            dup2(devnull, STDERR_FILENO);
            close(devnull);
        }
        /* status (int) then the message, through the pipe */
        char buf[1024 + sizeof(int)] = {0};
        struct oomb_loaded_plugin *p = NULL;
        int rc = oomb_plugin_open(path, &p, buf + sizeof(int), sizeof buf - sizeof(int));
        memcpy(buf, &rc, sizeof rc);
        ssize_t w = write(fds[1], buf, sizeof buf);
        _exit(w == (ssize_t)sizeof buf ? 0 : 1); /* no dlclose, no atexit: just go */
    }
    close(fds[1]);
    char buf[1024 + sizeof(int)] = {0};
    size_t got = 0;
    int status = 0, done = 0, timed_out = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            done = 1;
            break;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) * 1e-9 >
            timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = 1;
            break;
        }
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
    if (done && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        while (got < sizeof buf) {
            ssize_t n = read(fds[0], buf + got, sizeof buf - got);
            if (n <= 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                break;
            }
            got += (size_t)n;
        }
    }
    close(fds[0]);
    if (timed_out) {
        oomb_errf(err, err_len, "%s: plugin did not load within %.0f s (its constructor or "
                  "entry function hangs)", path, timeout_s);
        return OOMB_ERR_ABI;
    }
    if (got != sizeof buf) {
        if (WIFSIGNALED(status))
            oomb_errf(err, err_len, "%s: plugin crashed (signal %d, %s) while loading", path,
                      WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            oomb_errf(err, err_len, "%s: plugin ended the process (status %d) while loading",
                      path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return OOMB_ERR_ABI;
    }
    int rc;
    memcpy(&rc, buf, sizeof rc);
    buf[sizeof buf - 1] = '\0';
    if (rc != OOMB_OK)
        oomb_errf(err, err_len, "%s", buf + sizeof(int));
    return rc;
}

/* Probe in a child, then load here: the harness survives a plugin that
 * crashes or hangs while loading. */
static int open_safely(const char *path, struct oomb_loaded_plugin **out, char *err,
                       size_t err_len)
{
    *out = NULL;
    int rc = oomb_plugin_probe(path, 10.0, err, err_len);
    if (rc != OOMB_OK)
        return rc;
    return oomb_plugin_open(path, out, err, err_len);
}

int oomb_plugin_param_index(const struct oomb_plugin *d, const char *name)
{
    for (int i = 0; i < d->n_params; i++)
        if (strcmp(d->params[i].name, name) == 0)
            return i;
    return -1;
}

const char *oomb_default_plugin_dir(void)
{
    static char buf[PATH_MAX];
    struct stat st;
    snprintf(buf, sizeof buf, "%s/plugins", oomb_exe_dir());
    if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
        return buf;
    snprintf(buf, sizeof buf, "%s/../lib/oombench/plugins", oomb_exe_dir());
    return buf;
}

static int push_rejected(struct oomb_registry *r, const char *msg)
{
    char **v = realloc(r->rejected, (size_t)(r->n_rejected + 1) * sizeof *v);
    if (!v)
        return OOMB_ERR_OOM;
    r->rejected = v;
    if (!(v[r->n_rejected] = oomb_strdup(msg)))
        return OOMB_ERR_OOM;
    r->n_rejected++;
    return OOMB_OK;
}

/* Adds p, or rejects it as a duplicate. Takes ownership of p. */
static int add_plugin(struct oomb_registry *r, struct oomb_loaded_plugin *p, int explicit_file,
                      char *err, size_t err_len)
{
    const struct oomb_loaded_plugin *prev = oomb_registry_find(r, p->desc.name);
    if (prev) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: plugin name '%s' already provided by %s", p->path,
                 p->desc.name, prev->path);
        oomb_plugin_close(p);
        if (explicit_file) {
            oomb_errf(err, err_len, "%s", msg);
            return OOMB_ERR_ABI;
        }
        return push_rejected(r, msg);
    }
    struct oomb_loaded_plugin **v = realloc(r->plugins, (size_t)(r->n + 1) * sizeof *v);
    if (!v) {
        oomb_plugin_close(p);
        return OOMB_ERR_OOM;
    }
    r->plugins = v;
    v[r->n++] = p;
    return OOMB_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int load_dir(struct oomb_registry *r, const char *dir, int must_exist, char *err,
                    size_t err_len)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (!must_exist)
            return OOMB_OK;
        oomb_errf(err, err_len, "%s: cannot open plugin folder", dir);
        return OOMB_ERR_IO;
    }
    char **names = NULL;
    int n = 0, rc = OOMB_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
            continue;
        char **v = realloc(names, (size_t)(n + 1) * sizeof *v);
        if (!v || !(v[n] = oomb_strdup(de->d_name))) {
            names = v ? v : names;
            rc = OOMB_ERR_OOM;
            break;
        }
        names = v;
        n++;
    }
    closedir(d);
    if (names)
        qsort(names, (size_t)n, sizeof *names, cmp_str); /* deterministic order */
    for (int i = 0; i < n && rc == OOMB_OK; i++) {
        char path[PATH_MAX];
        char msg[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct oomb_loaded_plugin *p;
        if (open_safely(path, &p, msg, sizeof msg) != OOMB_OK)
            rc = push_rejected(r, msg);
        else
            rc = add_plugin(r, p, 0, err, err_len);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int oomb_registry_load(struct oomb_registry *r, const char *const *dirs, int n_dirs,
                       const char *const *files, int n_files, char *err, size_t err_len)
{
    memset(r, 0, sizeof *r);
    int rc;
    /* Explicit files first: they win over same-named plugins of folders. */
    for (int i = 0; i < n_files; i++) {
        struct oomb_loaded_plugin *p;
        if ((rc = open_safely(files[i], &p, err, err_len)) != OOMB_OK)
            goto fail;
        if ((rc = add_plugin(r, p, 1, err, err_len)) != OOMB_OK)
            goto fail;
    }
    for (int i = 0; i < n_dirs; i++)
        if ((rc = load_dir(r, dirs[i], 1, err, err_len)) != OOMB_OK)
            goto fail;
    if ((rc = load_dir(r, oomb_default_plugin_dir(), 0, err, err_len)) != OOMB_OK)
        goto fail;
    return OOMB_OK;
fail:
    oomb_registry_free(r);
    return rc;
}

void oomb_registry_free(struct oomb_registry *r)
{
    for (int i = 0; i < r->n; i++)
        oomb_plugin_close(r->plugins[i]);
    for (int i = 0; i < r->n_rejected; i++)
        free(r->rejected[i]);
    free(r->plugins);
    free(r->rejected);
    memset(r, 0, sizeof *r);
}

const struct oomb_loaded_plugin *oomb_registry_find(const struct oomb_registry *r,
                                                    const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->plugins[i]->desc.name, name) == 0)
            return r->plugins[i];
    return NULL;
}
