/*
 * Plugin loading and discovery (see loader.h). The host reads only the
 * descriptor fields within the plugin's struct_size, so a plugin built for a
 * newer minor version (more fields) loads, and one built for an older minor
 * gets zeros for the fields it does not have. The registry holds copies made
 * from a probe process's serialised description: the harness never runs a
 * plugin's code or reads its memory.
 */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"
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

static unsigned callback_mask(const struct oomb_plugin *c)
{
    return (c->usable ? OOMB_CB_USABLE : 0u) | (c->create ? OOMB_CB_CREATE : 0u) |
           (c->step ? OOMB_CB_STEP : 0u) | (c->finish ? OOMB_CB_FINISH : 0u) |
           (c->destroy ? OOMB_CB_DESTROY : 0u) | (c->evaluate ? OOMB_CB_EVALUATE : 0u);
}

/* The smallest parameter descriptor of ABI 2.0: up to and including choices. */
#define PARAM_DESC_MIN_SIZE (offsetof(struct oomb_param_desc, choices) + sizeof(const char *))

/* Element i of a plugin's parameter array, read with the plugin's stride
 * (params[0].struct_size) into *out: the fields within that size, zeros
 * beyond. The caller checked the stride (param_stride_ok). Volatile reads,
 * no memcpy: in the probe a fault here must reach the guard, not a sanitizer
 * interceptor. */
__attribute__((no_sanitize_address)) static void read_param(const struct oomb_param_desc *params,
                                                            int i, struct oomb_param_desc *out)
{
    const volatile unsigned char *base = (const volatile unsigned char *)params;
    uint32_t stride = ((const volatile struct oomb_param_desc *)params)->struct_size;
    size_t n = stride < sizeof *out ? stride : sizeof *out;
    const volatile unsigned char *src = base + (size_t)i * stride;
    unsigned char *dst = (unsigned char *)out;
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < n; k++)
        dst[k] = src[k];
}

/* OOMB_OK when every element's struct_size equals the first's and holds the
 * ABI 2.0 fields; else OOMB_ERR_ABI with err naming the element. */
__attribute__((no_sanitize_address)) static int param_stride_ok(const char *path,
                                                                 const char *plugin,
                                                                 const struct oomb_param_desc *params,
                                                                 int n, char *err, size_t err_len)
{
    uint32_t stride = ((const volatile struct oomb_param_desc *)params)->struct_size;
    if (stride < PARAM_DESC_MIN_SIZE || stride > 4096) {
        oomb_errf(err, err_len,
                  "%s: plugin '%s': params[0].struct_size is %u; ABI %d.%d parameter "
                  "descriptors have at least %zu bytes (set it to OOMB_PARAM_DESC_SIZE)",
                  path, plugin ? plugin : "?", (unsigned)stride, OOMB_ABI_MAJOR, OOMB_ABI_MINOR,
                  PARAM_DESC_MIN_SIZE);
        return OOMB_ERR_ABI;
    }
    for (int i = 1; i < n; i++) {
        const volatile struct oomb_param_desc *e =
            (const volatile struct oomb_param_desc *)((const char *)params + (size_t)i * stride);
        if (e->struct_size != stride) {
            oomb_errf(err, err_len,
                      "%s: plugin '%s': params[%d].struct_size is %u but params[0]'s is %u: "
                      "every element of the array must carry the same size",
                      path, plugin ? plugin : "?", i, (unsigned)e->struct_size, (unsigned)stride);
            return OOMB_ERR_ABI;
        }
    }
    return OOMB_OK;
}

static void append_bound(char *buf, size_t len, const struct oomb_param_desc *pd)
{
    int integer = pd->type == OOMB_PARAM_INT;
    if ((pd->bounds & OOMB_PARAM_MIN) && (pd->bounds & OOMB_PARAM_MAX))
        snprintf(buf, len, "%s%.*g, %.*g%s", (pd->bounds & OOMB_PARAM_MIN_OPEN) ? "(" : "[",
                 integer ? 19 : 6, pd->min, integer ? 19 : 6, pd->max,
                 (pd->bounds & OOMB_PARAM_MAX_OPEN) ? ")" : "]");
    else if (pd->bounds & OOMB_PARAM_MIN)
        snprintf(buf, len, "%s %.*g", (pd->bounds & OOMB_PARAM_MIN_OPEN) ? ">" : ">=",
                 integer ? 19 : 6, pd->min);
    else if (pd->bounds & OOMB_PARAM_MAX)
        snprintf(buf, len, "%s %.*g", (pd->bounds & OOMB_PARAM_MAX_OPEN) ? "<" : "<=",
                 integer ? 19 : 6, pd->max);
    else
        snprintf(buf, len, "any");
}

void oomb_param_describe_range(const struct oomb_param_desc *pd, char *buf, size_t len)
{
    if (pd->type == OOMB_PARAM_STRING) {
        if (pd->choices)
            snprintf(buf, len, "one of %s", pd->choices);
        else
            snprintf(buf, len, "any string");
        return;
    }
    append_bound(buf, len, pd);
}

static int choice_listed(const char *choices, const char *value)
{
    size_t n = strlen(value);
    const char *c = choices;
    for (;;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, value, n) == 0)
            return 1;
        if (!bar)
            return 0;
        c = bar + 1;
    }
}

int oomb_param_check(const struct oomb_param_desc *pd, const char *value, char *why,
                     size_t why_len)
{
    char range[128];
    oomb_param_describe_range(pd, range, sizeof range);
    if (pd->type == OOMB_PARAM_STRING) {
        if (pd->choices && !choice_listed(pd->choices, value)) {
            oomb_errf(why, why_len, "'%s' is not %s", value, range);
            return OOMB_ERR_INVALID;
        }
        return OOMB_OK;
    }
    char *end;
    double v;
    errno = 0;
    if (pd->type == OOMB_PARAM_INT) {
        long long iv = strtoll(value, &end, 10);
        v = (double)iv;
    } else {
        v = strtod(value, &end);
    }
    if (errno || end == value || *end != '\0' || v != v) {
        oomb_errf(why, why_len, "expected %s, got '%s'",
                  pd->type == OOMB_PARAM_INT ? "an integer" : "a number", value);
        return OOMB_ERR_INVALID;
    }
    if (pd->type == OOMB_PARAM_FLOAT && (v > 1.7e308 || v < -1.7e308)) {
        oomb_errf(why, why_len, "'%s' is not a finite number", value);
        return OOMB_ERR_INVALID;
    }
    unsigned b = pd->bounds;
    int below = (b & OOMB_PARAM_MIN) && ((b & OOMB_PARAM_MIN_OPEN) ? v <= pd->min : v < pd->min);
    int above = (b & OOMB_PARAM_MAX) && ((b & OOMB_PARAM_MAX_OPEN) ? v >= pd->max : v > pd->max);
    if (below || above) {
        oomb_errf(why, why_len, "%s is out of range: must be %s", value, range);
        return OOMB_ERR_INVALID;
    }
    return OOMB_OK;
}

/* dlopen and the entry function: where a plugin's own code first runs. */
static int load_entry(const char *path, void **dl_out, const struct oomb_plugin **d_out, char *err,
                      size_t err_len)
{
    *dl_out = NULL;
    *d_out = NULL;
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        oomb_errf(err, err_len, "%s: cannot open plugin: %s", path, e ? e : "unknown error");
        return OOMB_ERR_IO;
    }
    dlerror();
    void *sym = dlsym(dl, OOMB_PLUGIN_ENTRY_NAME);
    if (!sym) {
        oomb_errf(err, err_len, "%s: not an oombench plugin: entry symbol '%s' missing", path,
                  OOMB_PLUGIN_ENTRY_NAME);
        dlclose(dl);
        return OOMB_ERR_ABI;
    }
    oomb_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object to function pointer, POSIX-sanctioned */
    const struct oomb_plugin *d = entry();
    if (!d) {
        oomb_errf(err, err_len, "%s: entry '%s' returned no descriptor", path,
                  OOMB_PLUGIN_ENTRY_NAME);
        dlclose(dl);
        return OOMB_ERR_ABI;
    }
    *dl_out = dl;
    *d_out = d;
    return OOMB_OK;
}

/* Size and version, then a copy of the fields this host knows into *c. */
static int copy_header(const char *path, const struct oomb_plugin *d, struct oomb_plugin *c,
                       char *err, size_t err_len)
{
    if (d->struct_size < offsetof(struct oomb_plugin, name)) {
        oomb_errf(err, err_len, "%s: descriptor too small (%u bytes) to hold an ABI version", path,
                  (unsigned)d->struct_size);
        return OOMB_ERR_ABI;
    }
    if (d->abi_major != OOMB_ABI_MAJOR) {
        oomb_errf(err, err_len,
                  "%s: plugin ABI %u.%u is incompatible with this oombench (ABI %d.%d): "
                  "major versions differ; rebuild the plugin against this oombench's plugin.h",
                  path, d->abi_major, d->abi_minor, OOMB_ABI_MAJOR, OOMB_ABI_MINOR);
        return OOMB_ERR_ABI;
    }
    if (d->abi_minor > OOMB_ABI_MINOR) {
        oomb_errf(err, err_len,
                  "%s: plugin ABI %u.%u is newer than this oombench's (ABI %d.%d): it may use "
                  "members of the host or op tables that this oombench does not have; use an "
                  "oombench at least as new, or rebuild the plugin against this plugin.h",
                  path, d->abi_major, d->abi_minor, OOMB_ABI_MAJOR, OOMB_ABI_MINOR);
        return OOMB_ERR_ABI;
    }
    if (d->struct_size < OOMB_PLUGIN_V1_MIN_SIZE) {
        oomb_errf(err, err_len,
                  "%s: descriptor too small: struct_size %u, ABI %d.0 needs at least %zu bytes",
                  path, (unsigned)d->struct_size, OOMB_ABI_MAJOR, OOMB_PLUGIN_V1_MIN_SIZE);
        return OOMB_ERR_ABI;
    }
    memset(c, 0, sizeof *c);
    memcpy(c, d, d->struct_size < sizeof *c ? d->struct_size : sizeof *c);
    return OOMB_OK;
}

/* The checks of a descriptor whose strings are known to be readable. */
static int validate(const char *path, const struct oomb_plugin *c, unsigned callbacks, char *err,
                    size_t err_len)
{
    if (!valid_name(c->name)) {
        oomb_errf(err, err_len, "%s: plugin name '%s' is not [a-z0-9_]{1,64}", path,
                  c->name ? c->name : "(null)");
        return OOMB_ERR_ABI;
    }
    const char *missing = !(callbacks & OOMB_CB_CREATE)    ? "create"
                          : !(callbacks & OOMB_CB_STEP)    ? "step"
                          : !(callbacks & OOMB_CB_DESTROY) ? "destroy"
                                                           : NULL;
    if (missing) {
        oomb_errf(err, err_len, "%s: plugin '%s': required callback '%s' is NULL", path, c->name,
                  missing);
        return OOMB_ERR_ABI;
    }
    if (!(c->modes & (OOMB_MODE_TRAIN | OOMB_MODE_INFER)) ||
        !(c->backends & (OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA))) {
        oomb_errf(err, err_len, "%s: plugin '%s' declares no mode or no backend", path, c->name);
        return OOMB_ERR_ABI;
    }
    if (c->n_params < 0 || (c->n_params > 0 && !c->params)) {
        oomb_errf(err, err_len, "%s: plugin '%s': n_params %d but params is NULL", path, c->name,
                  c->n_params);
        return OOMB_ERR_ABI;
    }
    if (c->n_params > OOMB_PLUGIN_MAX_PARAMS) {
        oomb_errf(err, err_len, "%s: plugin '%s': %d parameters, at most %d are allowed", path,
                  c->name, c->n_params, OOMB_PLUGIN_MAX_PARAMS);
        return OOMB_ERR_ABI;
    }
    for (int i = 0; i < c->n_params; i++) {
        const struct oomb_param_desc *pd = &c->params[i];
        if (!pd->name || !pd->default_value || pd->type < OOMB_PARAM_INT ||
            pd->type > OOMB_PARAM_STRING) {
            oomb_errf(err, err_len,
                      "%s: plugin '%s': parameter %d lacks a name, a type or a "
                      "default",
                      path, c->name, i);
            return OOMB_ERR_ABI;
        }
        if (((pd->bounds & OOMB_PARAM_MIN) && !(pd->min - pd->min == 0)) ||
            ((pd->bounds & OOMB_PARAM_MAX) && !(pd->max - pd->max == 0)) ||
            ((pd->bounds & OOMB_PARAM_MIN) && (pd->bounds & OOMB_PARAM_MAX) && pd->min > pd->max)) {
            oomb_errf(err, err_len, "%s: plugin '%s': parameter '%s' has bounds that are not "
                      "finite or not ordered", path, c->name, pd->name);
            return OOMB_ERR_ABI;
        }
        if (pd->type != OOMB_PARAM_STRING && pd->choices) {
            oomb_errf(err, err_len, "%s: plugin '%s': parameter '%s' has choices but is not a "
                      "string", path, c->name, pd->name);
            return OOMB_ERR_ABI;
        }
        char why[256];
        if (oomb_param_check(pd, pd->default_value, why, sizeof why) != OOMB_OK) {
            oomb_errf(err, err_len, "%s: plugin '%s': the default of parameter '%s' is invalid: %s",
                      path, c->name, pd->name, why);
            return OOMB_ERR_ABI;
        }
    }
    return OOMB_OK;
}

int oomb_plugin_open(const char *path, struct oomb_loaded_plugin **out, char *err, size_t err_len)
{
    *out = NULL;
    void *dl;
    const struct oomb_plugin *d;
    int rc = load_entry(path, &dl, &d, err, err_len);
    if (rc != OOMB_OK)
        return rc;
    struct oomb_loaded_plugin *p = calloc(1, sizeof *p);
    if (!p) {
        rc = OOMB_ERR_OOM;
        oomb_errf(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    if ((rc = copy_header(path, d, &p->desc, err, err_len)) != OOMB_OK)
        goto fail;
    if (p->desc.n_params > 0 && p->desc.n_params <= OOMB_PLUGIN_MAX_PARAMS && p->desc.params) {
        /* The host's view of the plugin's array: its stride, this build's struct. */
        if ((rc = param_stride_ok(path, p->desc.name, p->desc.params, p->desc.n_params, err,
                                  err_len)) != OOMB_OK)
            goto fail;
        p->params_copy = calloc((size_t)p->desc.n_params, sizeof *p->params_copy);
        if (!p->params_copy) {
            rc = OOMB_ERR_OOM;
            oomb_errf(err, err_len, "%s: out of memory", path);
            goto fail;
        }
        for (int i = 0; i < p->desc.n_params; i++)
            read_param(p->desc.params, i, &p->params_copy[i]);
        p->desc.params = p->params_copy;
    }
    p->callbacks = callback_mask(&p->desc);
    if ((rc = validate(path, &p->desc, p->callbacks, err, err_len)) != OOMB_OK)
        goto fail;
    if (!p->desc.description)
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
    if (p)
        free(p->params_copy);
    free(p);
    dlclose(dl);
    return rc;
}

static void free_copy(struct oomb_plugin *d)
{
    free((char *)d->name);
    free((char *)d->description);
    struct oomb_param_desc *pv = (struct oomb_param_desc *)d->params;
    for (int i = 0; pv && i < d->n_params; i++) {
        free((char *)pv[i].name);
        free((char *)pv[i].default_value);
        free((char *)pv[i].unit);
        free((char *)pv[i].help);
        free((char *)pv[i].choices);
    }
    free(pv);
}

void oomb_plugin_close(struct oomb_loaded_plugin *p)
{
    if (!p)
        return;
    if (p->dl) {
        dlclose(p->dl);
        free(p->params_copy);
    } else {
        free_copy(&p->desc);
    }
    free(p->path);
    free(p);
}

/* ------------------------------------------------ the descriptor probe --- */

/*
 * The probe's message, in host byte order (both ends are this build):
 *   "OOMBDSC1", int32 status; then for an error one string (the message),
 *   else uint32 struct_size, uint16 abi_major, abi_minor, uint32 modes,
 *   backends, callbacks, string name, description, int32 n_params and per
 *   parameter string name, int32 type, string default, unit, help, uint32
 *   bounds, double min, max, string choices.
 * A string is uint32 length (PROBE_NULL for a NULL pointer) then its bytes.
 */
#define PROBE_MAGIC "OOMBDSC2"
#define PROBE_NULL 0xffffffffu
#define PROBE_MAX_BYTES ((size_t)1 << 20)

struct blob {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct blob *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u32(struct blob *b, uint32_t v)
{
    put(b, &v, sizeof v);
}

static void put_str(struct blob *b, const char *s)
{
    if (!s) {
        put_u32(b, PROBE_NULL);
        return;
    }
    size_t n = strlen(s);
    put_u32(b, (uint32_t)n);
    put(b, s, n);
}

/* Reading the plugin's memory in the probe: a fault while `guard_armed`
 * jumps back with the field being read; any other fault is a crash. */
static sigjmp_buf guard_jmp;
static volatile sig_atomic_t guard_armed;
static char guard_field[96];

static void guard_handler(int sig)
{
    if (guard_armed) {
        guard_armed = 0;
        siglongjmp(guard_jmp, sig);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Copies string s (a plugin's pointer) of at most max bytes into b; a fault
 * ends in guard_jmp. Not instrumented: the sanitizer would report the very
 * read this function is there to survive. */
__attribute__((no_sanitize_address)) static int put_plugin_str(struct blob *b, const char *field,
                                                               const char *s, size_t max, char *err,
                                                               size_t err_len)
{
    snprintf(guard_field, sizeof guard_field, "%s", field);
    if (!s) {
        put_u32(b, PROBE_NULL);
        return OOMB_OK;
    }
    const volatile char *v = s;
    size_t n = 0;
    while (n <= max && v[n])
        n++;
    if (n > max) {
        oomb_errf(err, err_len,
                  "descriptor field '%s' is longer than %zu bytes (or lacks its terminating NUL)",
                  field, max);
        return OOMB_ERR_ABI;
    }
    put_u32(b, (uint32_t)n);
    char tmp[256];
    for (size_t i = 0; i < n; i += sizeof tmp) {
        size_t k = n - i < sizeof tmp ? n - i : sizeof tmp;
        for (size_t j = 0; j < k; j++)
            tmp[j] = v[i + j];
        put(b, tmp, k);
    }
    return OOMB_OK;
}

/* Serialises the descriptor d into b (the probe's side). */
__attribute__((no_sanitize_address)) static int describe_into(struct blob *b, const char *path,
                                                              const struct oomb_plugin *d,
                                                              char *err, size_t err_len)
{
    struct oomb_plugin c;
    snprintf(guard_field, sizeof guard_field, "struct_size");
    int rc = copy_header(path, d, &c, err, err_len);
    if (rc != OOMB_OK)
        return rc;
    put_u32(b, c.struct_size);
    uint16_t v[2] = {c.abi_major, c.abi_minor};
    put(b, v, sizeof v);
    put_u32(b, c.modes);
    put_u32(b, c.backends);
    put_u32(b, callback_mask(&c));
    char msg[512] = "";
    if ((rc = put_plugin_str(b, "name", c.name, 64, msg, sizeof msg)) != OOMB_OK ||
        (rc = put_plugin_str(b, "description", c.description, OOMB_PLUGIN_MAX_DESCRIPTION, msg,
                             sizeof msg)) != OOMB_OK)
        goto fail;
    if (c.n_params < 0 || c.n_params > OOMB_PLUGIN_MAX_PARAMS || (c.n_params && !c.params)) {
        put_u32(b, (uint32_t)c.n_params); /* validate() names the problem */
        return OOMB_OK;
    }
    if (c.n_params > 0) {
        snprintf(guard_field, sizeof guard_field, "params");
        /* c.name was read (and found readable) above */
        if ((rc = param_stride_ok(path, c.name, c.params, c.n_params, msg, sizeof msg))) {
            snprintf(err, err_len, "%s", msg); /* already names the file */
            return rc;
        }
    }
    put_u32(b, (uint32_t)c.n_params);
    for (int i = 0; i < c.n_params; i++) {
        char f[64];
        snprintf(guard_field, sizeof guard_field, "params[%d]", i);
        struct oomb_param_desc pd;
        read_param(c.params, i, &pd);
        snprintf(f, sizeof f, "params[%d].name", i);
        if ((rc = put_plugin_str(b, f, pd.name, OOMB_PLUGIN_MAX_PARAM_TEXT, msg, sizeof msg)))
            goto fail;
        put_u32(b, (uint32_t)pd.type);
        snprintf(f, sizeof f, "params[%d].default_value", i);
        if ((rc = put_plugin_str(b, f, pd.default_value, OOMB_PLUGIN_MAX_PARAM_TEXT, msg,
                                 sizeof msg)))
            goto fail;
        snprintf(f, sizeof f, "params[%d].unit", i);
        if ((rc = put_plugin_str(b, f, pd.unit, OOMB_PLUGIN_MAX_PARAM_TEXT, msg, sizeof msg)))
            goto fail;
        snprintf(f, sizeof f, "params[%d].help", i);
        if ((rc = put_plugin_str(b, f, pd.help, OOMB_PLUGIN_MAX_PARAM_HELP, msg, sizeof msg)))
            goto fail;
        put_u32(b, pd.bounds);
        put(b, &pd.min, sizeof pd.min);
        put(b, &pd.max, sizeof pd.max);
        snprintf(f, sizeof f, "params[%d].choices", i);
        if ((rc = put_plugin_str(b, f, pd.choices, OOMB_PLUGIN_MAX_PARAM_HELP, msg, sizeof msg)))
            goto fail;
    }
    return OOMB_OK;
fail:
    oomb_errf(err, err_len, "%s: %s", path, msg);
    return rc;
}

struct probe_arg {
    const char *path;
    int fd; /* the pipe's write end */
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The probe process: load, describe, send, go (no dlclose, no atexit). */
static int probe_main(void *arg)
{
    const struct probe_arg *a = arg;
    /* Silent: the parent reports what happened (a sanitizer's crash report
     * from here would land in the middle of the harness's output). */
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);
        close(devnull);
    }
    setenv("OOMB_PLUGIN_PROBE", "1", 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = guard_handler;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    char err[1024] = "";
    struct blob b = {0};
    int32_t rc;
    put(&b, PROBE_MAGIC, 8);
    size_t rc_at = b.len;
    put(&b, &(int32_t){0}, sizeof(int32_t));
    void *dl;
    const struct oomb_plugin *d;
    rc = load_entry(a->path, &dl, &d, err, sizeof err);
    if (rc == OOMB_OK) {
        int sig = sigsetjmp(guard_jmp, 1);
        if (sig == 0) {
            guard_armed = 1;
            rc = describe_into(&b, a->path, d, err, sizeof err);
            guard_armed = 0;
        } else {
            oomb_errf(err, sizeof err,
                      "%s: descriptor field '%s' points to memory that cannot be read "
                      "(signal %d, %s)",
                      a->path, guard_field, sig, strsignal(sig));
            rc = OOMB_ERR_ABI;
        }
    }
    if (rc != OOMB_OK) {
        b.len = rc_at + sizeof(int32_t);
        put_str(&b, err);
    }
    if (b.oom)
        return 3;
    memcpy(b.p + rc_at, &rc, sizeof rc);
    return write_all(a->fd, b.p, b.len) == 0 ? 0 : 1;
}

struct reader {
    const char *p;
    size_t len, at;
    int bad;
};

static uint32_t get_u32(struct reader *r)
{
    uint32_t v = 0;
    if (r->bad || r->len - r->at < sizeof v) {
        r->bad = 1;
        return 0;
    }
    memcpy(&v, r->p + r->at, sizeof v);
    r->at += sizeof v;
    return v;
}

static void get_f64(struct reader *r, double *out)
{
    *out = 0;
    if (r->bad || r->len - r->at < sizeof *out) {
        r->bad = 1;
        return;
    }
    memcpy(out, r->p + r->at, sizeof *out);
    r->at += sizeof *out;
}

/* Bytes as UTF-8 text without control characters: what is not is written
 * as \xNN, so that no terminal, table or file sees raw plugin bytes. */
static char *escape_text(const unsigned char *s, size_t n)
{
    char *out = malloc(4 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        int ok = k > 0 && i + k <= n;
        uint32_t cp = k == 1 ? c : k == 2 ? c & 0x1f : k == 3 ? c & 0x0f : c & 0x07;
        for (size_t j = 1; ok && j < k; j++) {
            ok = (s[i + j] & 0xc0) == 0x80;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (ok && k > 1) /* overlong forms, surrogates, beyond Unicode */
            ok = !(k == 2 && cp < 0x80) && !(k == 3 && cp < 0x800) && !(k == 4 && cp < 0x10000) &&
                 !(cp >= 0xd800 && cp <= 0xdfff) && cp <= 0x10ffff;
        if (ok && k == 1 && (c < 0x20 || c == 0x7f))
            ok = 0;
        if (!ok) {
            o += sprintf(o, "\\x%02x", c);
            i++;
            continue;
        }
        memcpy(o, s + i, k);
        o += k;
        i += k;
    }
    *o = '\0';
    return out;
}

/* A string of the probe's message: NULL stays NULL (*is_null), else an
 * escaped copy of at most max bytes. */
static char *get_str(struct reader *r, size_t max, int *is_null)
{
    *is_null = 0;
    uint32_t n = get_u32(r);
    if (r->bad)
        return NULL;
    if (n == PROBE_NULL) {
        *is_null = 1;
        return NULL;
    }
    if (n > max || r->len - r->at < n) {
        r->bad = 1;
        return NULL;
    }
    char *s = escape_text((const unsigned char *)r->p + r->at, n);
    r->at += n;
    if (!s)
        r->bad = 1;
    return s;
}

/* Rebuilds the plugin's descriptor from the probe's message alone. */
static int parse_description(const char *path, const char *msg, size_t len,
                             struct oomb_loaded_plugin *p, char *err, size_t err_len)
{
    struct reader r = {msg, len, 0, 0};
    struct oomb_plugin *d = &p->desc;
    int is_null;
    if (len < 12 || memcmp(msg, PROBE_MAGIC, 8) != 0)
        goto bad;
    r.at = 8;
    int32_t rc = (int32_t)get_u32(&r);
    if (rc != OOMB_OK) {
        char *text = get_str(&r, 4096, &is_null);
        if (r.bad || !text) {
            free(text);
            goto bad;
        }
        oomb_errf(err, err_len, "%s", text);
        free(text);
        return rc == OOMB_ERR_IO ? OOMB_ERR_IO : OOMB_ERR_ABI;
    }
    d->struct_size = get_u32(&r);
    uint16_t v[2] = {0, 0};
    if (!r.bad && r.len - r.at >= sizeof v) {
        memcpy(v, r.p + r.at, sizeof v);
        r.at += sizeof v;
    } else {
        r.bad = 1;
    }
    d->abi_major = v[0];
    d->abi_minor = v[1];
    d->modes = get_u32(&r);
    d->backends = get_u32(&r);
    p->callbacks = get_u32(&r);
    d->name = get_str(&r, 64, &is_null);
    d->description = get_str(&r, OOMB_PLUGIN_MAX_DESCRIPTION, &is_null);
    if (!r.bad && !d->description && !(d->description = oomb_strdup("")))
        r.bad = 1;
    int32_t n = (int32_t)get_u32(&r);
    if (r.bad)
        goto bad;
    if (n < 0 || n > OOMB_PLUGIN_MAX_PARAMS) {
        d->n_params = n; /* validate() says what is wrong */
        return validate(path, d, p->callbacks, err, err_len);
    }
    if (n > 0) {
        struct oomb_param_desc *pv = calloc((size_t)n, sizeof *pv);
        if (!pv)
            goto bad;
        d->params = pv;
        for (int i = 0; i < n && !r.bad; i++) {
            d->n_params = i + 1; /* what free_copy frees */
            pv[i].name = get_str(&r, OOMB_PLUGIN_MAX_PARAM_TEXT, &is_null);
            pv[i].type = (enum oomb_param_type)(int32_t)get_u32(&r);
            pv[i].default_value = get_str(&r, OOMB_PLUGIN_MAX_PARAM_TEXT, &is_null);
            pv[i].unit = get_str(&r, OOMB_PLUGIN_MAX_PARAM_TEXT, &is_null);
            pv[i].help = get_str(&r, OOMB_PLUGIN_MAX_PARAM_HELP, &is_null);
            pv[i].bounds = get_u32(&r);
            get_f64(&r, &pv[i].min);
            get_f64(&r, &pv[i].max);
            pv[i].choices = get_str(&r, OOMB_PLUGIN_MAX_PARAM_HELP, &is_null);
            pv[i].struct_size = OOMB_PARAM_DESC_SIZE;
        }
    }
    if (r.bad || r.at != r.len)
        goto bad;
    return validate(path, d, p->callbacks, err, err_len);
bad:
    oomb_errf(err, err_len, "%s: the plugin's probe process sent a malformed description", path);
    return OOMB_ERR_ABI;
}

int oomb_plugin_describe(const char *path, double timeout_s, struct oomb_loaded_plugin **out,
                         char *err, size_t err_len)
{
    *out = NULL;
    int fds[2];
    if (pipe(fds) != 0) {
        oomb_errf(err, err_len, "%s: cannot probe: pipe: %s", path, strerror(errno));
        return OOMB_ERR_IO;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    struct probe_arg arg = {path, fds[1]};
    struct oomb_proc_opts po = {0};
    po.timeout_s = timeout_s;
    po.drain_fd = fds[0];
    po.close_fd = fds[1];
    po.drain_max = PROBE_MAX_BYTES;
    po.cpu_threads = 1;
    struct oomb_proc_result pr;
    char perr[256];
    int rc = oomb_proc_run(&po, probe_main, &arg, &pr, perr, sizeof perr);
    close(fds[0]);
    if (rc != OOMB_OK) {
        oomb_errf(err, err_len, "%s: cannot probe: %s", path, perr);
        return OOMB_ERR_IO;
    }
    int st = pr.status;
    if (pr.timed_out) {
        oomb_errf(err, err_len,
                  "%s: plugin did not load within %.0f s (its constructor or "
                  "entry function hangs)",
                  path, timeout_s);
        rc = OOMB_ERR_ABI;
    } else if (pr.no_status || pr.terminated) {
        oomb_errf(err, err_len, "%s: the probe process failed (status 0x%x)", path, (unsigned)st);
        rc = OOMB_ERR_ABI;
    } else if (WIFSIGNALED(st)) {
        oomb_errf(err, err_len, "%s: plugin crashed (signal %d, %s) while loading", path,
                  WTERMSIG(st), strsignal(WTERMSIG(st)));
        rc = OOMB_ERR_ABI;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || pr.out_truncated) {
        oomb_errf(err, err_len, "%s: plugin ended the process (status %d) while loading", path,
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        rc = OOMB_ERR_ABI;
    } else {
        struct oomb_loaded_plugin *p = calloc(1, sizeof *p);
        if (!p) {
            oomb_errf(err, err_len, "%s: out of memory", path);
            rc = OOMB_ERR_OOM;
        } else if ((rc = parse_description(path, pr.out, pr.out_len, p, err, err_len)) != OOMB_OK ||
                   !(p->path = oomb_strdup(path))) {
            rc = rc ? rc : OOMB_ERR_OOM;
            oomb_plugin_close(p);
        } else {
            *out = p;
        }
    }
    free(pr.out);
    return rc;
}

int oomb_plugin_probe(const char *path, double timeout_s, char *err, size_t err_len)
{
    struct oomb_loaded_plugin *p;
    int rc = oomb_plugin_describe(path, timeout_s, &p, err, err_len);
    oomb_plugin_close(p);
    return rc;
}

/* ------------------------------------------------------- path safety --- */

static int unsafe_mode(const struct stat *st)
{
    return (st->st_mode & S_IWOTH) ||
           ((st->st_mode & S_IWGRP) && st->st_uid != getuid() && st->st_uid != 0);
}

static int check_one(const char *shown, const char *what, const char *path, char *err,
                     size_t err_len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        oomb_errf(err, err_len, "%s: cannot examine %s: %s", shown, path, strerror(errno));
        return OOMB_ERR_IO;
    }
    if (!unsafe_mode(&st))
        return OOMB_OK;
    oomb_errf(err, err_len,
              "%s: refusing to load a plugin: %s %s is %s (mode %04o, owner uid %u), so others "
              "could replace the code oombench runs; fix the permissions or pass "
              "--allow-unsafe-plugins",
              shown, what, path,
              (st.st_mode & S_IWOTH) ? "world-writable" : "group-writable and not yours",
              (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
    return OOMB_ERR_INVALID;
}

int oomb_plugin_check_path(const char *path, int is_dir, char *err, size_t err_len)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        oomb_errf(err, err_len, "%s: cannot examine: %s", path, strerror(errno));
        return OOMB_ERR_IO;
    }
    if (is_dir)
        return check_one(path, "plugin folder", real, err, err_len);
    int rc = check_one(path, "plugin file", real, err, err_len);
    if (rc != OOMB_OK)
        return rc;
    char *slash = strrchr(real, '/');
    if (slash == real)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    return check_one(path, "the folder of plugin", real, err, err_len);
}

/* Probe in a contained process, keep the copy: the harness survives a
 * plugin that crashes or hangs while loading and never runs its code. */
static int open_safely(const char *path, unsigned flags, struct oomb_loaded_plugin **out, char *err,
                       size_t err_len)
{
    *out = NULL;
    if (!(flags & OOMB_LOAD_ALLOW_UNSAFE)) {
        int rc = oomb_plugin_check_path(path, 0, err, err_len);
        if (rc != OOMB_OK)
            return rc;
    }
    return oomb_plugin_describe(path, 10.0, out, err, err_len);
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

static int load_dir(struct oomb_registry *r, const char *dir, int must_exist, unsigned flags,
                    char *err, size_t err_len)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (!must_exist)
            return OOMB_OK;
        oomb_errf(err, err_len, "%s: cannot open plugin folder", dir);
        return OOMB_ERR_IO;
    }
    if (!(flags & OOMB_LOAD_ALLOW_UNSAFE)) {
        int rc = oomb_plugin_check_path(dir, 1, err, err_len);
        if (rc != OOMB_OK) {
            closedir(d);
            return rc;
        }
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
        int orc = open_safely(path, flags, &p, msg, sizeof msg);
        if (orc == OOMB_ERR_INVALID) { /* unsafe permissions: never quietly */
            oomb_errf(err, err_len, "%s", msg);
            rc = orc;
        } else if (orc != OOMB_OK) {
            rc = push_rejected(r, msg);
        } else {
            rc = add_plugin(r, p, 0, err, err_len);
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int oomb_registry_load(struct oomb_registry *r, const char *const *dirs, int n_dirs,
                       const char *const *files, int n_files, char *err, size_t err_len)
{
    return oomb_registry_load_flags(r, dirs, n_dirs, files, n_files, 0, err, err_len);
}

int oomb_registry_load_flags(struct oomb_registry *r, const char *const *dirs, int n_dirs,
                             const char *const *files, int n_files, unsigned flags, char *err,
                             size_t err_len)
{
    memset(r, 0, sizeof *r);
    int rc;
    /* Explicit files first: they win over same-named plugins of folders. */
    for (int i = 0; i < n_files; i++) {
        struct oomb_loaded_plugin *p;
        if ((rc = open_safely(files[i], flags, &p, err, err_len)) != OOMB_OK)
            goto fail;
        if ((rc = add_plugin(r, p, 1, err, err_len)) != OOMB_OK)
            goto fail;
    }
    for (int i = 0; i < n_dirs; i++)
        if ((rc = load_dir(r, dirs[i], 1, flags, err, err_len)) != OOMB_OK)
            goto fail;
    if ((rc = load_dir(r, oomb_default_plugin_dir(), 0, flags, err, err_len)) != OOMB_OK)
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

const struct oomb_loaded_plugin *oomb_registry_find(const struct oomb_registry *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->plugins[i]->desc.name, name) == 0)
            return r->plugins[i];
    return NULL;
}
