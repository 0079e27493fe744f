/*
 * Plugin loading (dlopen) and discovery. Each way a plugin can be rejected
 * has its own message naming the file: cannot open (dlerror), entry symbol
 * missing, ABI major mismatch (both versions), descriptor too small, a
 * required callback NULL, bad name or modes, a descriptor string that cannot
 * be read or is too long, a plugin file or folder others may write.
 *
 * The harness itself never runs plugin code: the registry's plugins are
 * copies of descriptors that a contained probe process (proc.h) loaded and
 * serialised into a pipe; the parent rebuilds them from the bytes alone and
 * never follows a pointer of the plugin. Only a run's worker dlopens the
 * plugin (oomb_plugin_open).
 */
#ifndef OOMB_LOADER_H
#define OOMB_LOADER_H

#include <stddef.h>

#include "oombench/plugin.h"

/* The smallest descriptor of ABI 1.0: up to and including `destroy`. */
#define OOMB_PLUGIN_V1_MIN_SIZE (offsetof(struct oomb_plugin, destroy) + sizeof(void (*)(void *)))

/* Bounds of the descriptor's strings (bytes, without the NUL) and table. */
#define OOMB_PLUGIN_MAX_DESCRIPTION 1024
#define OOMB_PLUGIN_MAX_PARAMS 256
#define OOMB_PLUGIN_MAX_PARAM_TEXT 256 /* a parameter's name, default, unit */
#define OOMB_PLUGIN_MAX_PARAM_HELP 1024

/* Which optional callbacks a described plugin has (oomb_loaded_plugin). */
enum {
    OOMB_CB_USABLE = 1 << 0,
    OOMB_CB_CREATE = 1 << 1,
    OOMB_CB_STEP = 1 << 2,
    OOMB_CB_FINISH = 1 << 3,
    OOMB_CB_DESTROY = 1 << 4,
    OOMB_CB_EVALUATE = 1 << 5,
};

struct oomb_loaded_plugin {
    char *path;
    /* The dlopen handle (oomb_plugin_open, in a run's worker), or NULL for a
     * described copy (oomb_plugin_describe, the registry). */
    void *dl;
    /* Opened: a copy of the descriptor (fields beyond its struct_size zero)
     * whose strings and callbacks point into the loaded object, valid until
     * oomb_plugin_close(). Described: a copy owned by this struct (strings,
     * params) with every callback NULL; strings are valid UTF-8 without
     * control characters (others are written as \xNN). */
    struct oomb_plugin desc;
    unsigned callbacks; /* OOMB_CB_* the plugin has (both kinds) */
    /* Opened: desc.params points here, the plugin's array re-read with its
     * own stride into this build's struct (owned). Described: NULL. */
    struct oomb_param_desc *params_copy;
};

/* dlopen `path` in this process and validate its descriptor: only where
 * plugin code may run (a run's worker). Returns OOMB_OK and a heap handle
 * (close with oomb_plugin_close), OOMB_ERR_IO when the file cannot be
 * opened, OOMB_ERR_ABI for any descriptor problem; err names the file. */
int oomb_plugin_open(const char *path, struct oomb_loaded_plugin **out, char *err,
                     size_t err_len) OOMB_WARN_UNUSED;
/* Closes an opened handle or frees a described copy; NULL is allowed. */
void oomb_plugin_close(struct oomb_loaded_plugin *p);

/* Loads `path` in a contained probe process (proc.h; OOMB_PLUGIN_PROBE=1 is
 * set in its environment), which sends the descriptor back through a pipe:
 * bounded lengths, strings checked to be readable and NUL-terminated. The
 * parent rebuilds and validates its own copy (*out, close with
 * oomb_plugin_close) and never runs plugin code. Returns OOMB_OK, else the
 * probe's status (OOMB_ERR_IO, OOMB_ERR_ABI) with its message, or
 * OOMB_ERR_ABI with "crashed (signal N) while loading" / "did not load within
 * N s" / "descriptor field 'X' points to memory that cannot be read" / "...
 * is longer than N bytes"; err names the file. Whatever the plugin started
 * while loading is gone when this returns. */
int oomb_plugin_describe(const char *path, double timeout_s, struct oomb_loaded_plugin **out,
                         char *err, size_t err_len) OOMB_WARN_UNUSED;

/* oomb_plugin_describe without keeping the copy. */
int oomb_plugin_probe(const char *path, double timeout_s, char *err,
                      size_t err_len) OOMB_WARN_UNUSED;

/* OOMB_OK when path (a plugin file, or with is_dir a plugin folder) and, for
 * a file, the folder holding it can only be written by this user or root:
 * not world-writable, not group-writable unless owned by this user or root.
 * Else OOMB_ERR_INVALID with err naming the path, its mode and the way out
 * (--allow-unsafe-plugins); OOMB_ERR_IO when it cannot be examined. */
int oomb_plugin_check_path(const char *path, int is_dir, char *err,
                           size_t err_len) OOMB_WARN_UNUSED;

/* Checks `value` (scenario text) against a parameter's declaration: an INT
 * or FLOAT must parse completely and lie within the declared bounds, a
 * STRING with choices must be one of them. Returns OOMB_OK, or
 * OOMB_ERR_INVALID with `why` saying what is wrong ("1.5 is out of range:
 * must be [0, 1)"), without the key or file (the caller adds them). */
int oomb_param_check(const struct oomb_param_desc *pd, const char *value, char *why,
                     size_t why_len);
/* The accepted values of a parameter in words ("[0, 1)", ">= 1", "one of
 * a|b", "any string") into buf (always NUL-terminated). */
void oomb_param_describe_range(const struct oomb_param_desc *pd, char *buf, size_t len);

/* Index of a parameter in the descriptor, or -1. */
int oomb_plugin_param_index(const struct oomb_plugin *d, const char *name);

/* The set of plugins found: by default the build's (or install's) plugin
 * folder, plus --plugin-dir folders and --plugin files. */
struct oomb_registry {
    struct oomb_loaded_plugin **plugins;
    int n;
    char **rejected; /* messages for .so files that failed to load */
    int n_rejected;
};

/* Default plugin folder: <exe dir>/plugins when it exists (build tree), else
 * <exe dir>/../lib/oombench/plugins (installed). Static buffer. */
const char *oomb_default_plugin_dir(void);

/* oomb_registry_load_flags: load plugins from places others may write. */
#define OOMB_LOAD_ALLOW_UNSAFE 1u

/* Describe (oomb_plugin_describe) every *.so of the folders and the files.
 * Files given explicitly must load (else OOMB_ERR_ABI/IO, err says why); a
 * folder's files that fail are recorded in `rejected`. Later entries with a
 * name already seen are rejected as duplicates. A plugin file or folder that
 * fails oomb_plugin_check_path is an error (OOMB_ERR_INVALID) unless flags
 * has OOMB_LOAD_ALLOW_UNSAFE. Caller frees with oomb_registry_free, also on
 * failure. oomb_registry_load is oomb_registry_load_flags with flags 0. */
int oomb_registry_load(struct oomb_registry *r, const char *const *dirs, int n_dirs,
                       const char *const *files, int n_files, char *err,
                       size_t err_len) OOMB_WARN_UNUSED;
int oomb_registry_load_flags(struct oomb_registry *r, const char *const *dirs, int n_dirs,
                             const char *const *files, int n_files, unsigned flags, char *err,
                             size_t err_len) OOMB_WARN_UNUSED;
void oomb_registry_free(struct oomb_registry *r);
const struct oomb_loaded_plugin *oomb_registry_find(const struct oomb_registry *r,
                                                    const char *name);

#endif
