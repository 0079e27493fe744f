/*
 * Plugin loading (dlopen) and discovery. Each way a plugin can be rejected
 * has its own message naming the file: cannot open (dlerror), entry symbol
 * missing, ABI major mismatch (both versions), descriptor too small, a
 * required callback NULL, bad name or modes.
 */
#ifndef OOMB_LOADER_H
#define OOMB_LOADER_H

#include <stddef.h>

#include "oombench/plugin.h"

/* The smallest descriptor of ABI 1.0: up to and including `destroy`. */
#define OOMB_PLUGIN_V1_MIN_SIZE (offsetof(struct oomb_plugin, destroy) + sizeof(void (*)(void *)))

struct oomb_loaded_plugin {
    char *path;
    void *dl;
    /* A copy of the plugin's descriptor: fields beyond its struct_size are
     * zero. Strings and callbacks point into the loaded object and stay valid
     * until oomb_plugin_close(). */
    struct oomb_plugin desc;
};

/* dlopen `path` and validate its descriptor. Returns OOMB_OK and a heap
 * handle (close with oomb_plugin_close), OOMB_ERR_IO when the file cannot be
 * opened, OOMB_ERR_ABI for any descriptor problem; err names the file. */
int oomb_plugin_open(const char *path, struct oomb_loaded_plugin **out, char *err,
                     size_t err_len) OOMB_WARN_UNUSED;
void oomb_plugin_close(struct oomb_loaded_plugin *p);

/* Loads `path` in a throw-away child process first, so that a plugin whose
 * constructor or entry function crashes or hangs cannot take the harness
 * down. Returns OOMB_OK when the child loaded it and validated the
 * descriptor, else the child's status (OOMB_ERR_IO, OOMB_ERR_ABI) with its
 * message, or OOMB_ERR_ABI with "crashed (signal N) while loading" / "did
 * not load within N s"; err names the file. */
int oomb_plugin_probe(const char *path, double timeout_s, char *err, size_t err_len)
    OOMB_WARN_UNUSED;

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

/* Load every *.so of the folders and the files. Files given explicitly must
 * load (else OOMB_ERR_ABI/IO, err says why); a folder's files that fail are
 * recorded in `rejected`. Later entries with a name already seen are
 * rejected as duplicates. Caller frees with oomb_registry_free. */
int oomb_registry_load(struct oomb_registry *r, const char *const *dirs, int n_dirs,
                       const char *const *files, int n_files, char *err,
                       size_t err_len) OOMB_WARN_UNUSED;
void oomb_registry_free(struct oomb_registry *r);
const struct oomb_loaded_plugin *oomb_registry_find(const struct oomb_registry *r,
                                                    const char *name);

#endif
