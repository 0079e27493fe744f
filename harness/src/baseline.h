/*
 * Stored baselines: baselines/<device-class>/<scenario>.json, each a results
 * file (same schema, docs/results-format.md) holding one scenario's runs,
 * one or several of each configuration.
 * `oombench baseline save` writes them (atomically), `oombench compare` and
 * `oombench run --compare` read them.
 */
#ifndef OOMB_BASELINE_H
#define OOMB_BASELINE_H

#include <stddef.h>
#include <stdio.h>

#include "results.h"

#define OOMB_BASELINE_DIR "baselines"
/* Runs of one configuration a baseline keeps by default (the most recent). */
#define OOMB_BASELINE_KEEP 10

/* The device class to file baselines under: `override` when non-empty, else
 * $OOMB_DEVICE_CLASS when set, else the results' device.class, else
 * "unknown". The returned pointer is override, getenv's or r's string. */
const char *oomb_baseline_device_class(const struct oomb_results *r, const char *override);

/* The same, checked: the class must be a safe path component
 * (oomb_check_path_component: A-Z a-z 0-9 . _ -, not starting with '.', at
 * most OOMB_PATH_COMPONENT_MAX bytes), since it names a folder under the
 * baseline folder. Returns OOMB_OK and *cls (valid as long as r, override
 * and the environment), or OOMB_ERR_INVALID with err naming where the class
 * came from (--device-class, $OOMB_DEVICE_CLASS, or results_path's field
 * 'device.class') and what is wrong with it. */
int oomb_baseline_resolve_class(const struct oomb_results *r, const char *results_path,
                                const char *override, const char **cls, char *err,
                                size_t err_len) OOMB_WARN_UNUSED;

/* Every scenario name of r's runs must be a safe path component (as
 * above), since it names a file under the baseline folder. Returns OOMB_OK,
 * or OOMB_ERR_INVALID with err naming results_path, the run and the field. */
int oomb_baseline_check_scenarios(const struct oomb_results *r, const char *results_path, char *err,
                                  size_t err_len) OOMB_WARN_UNUSED;

/* dir/class/scenario.json into buf (always NUL-terminated), only under dir:
 * class and scenario must be safe path components (as above). Returns
 * OOMB_OK, or OOMB_ERR_INVALID (err says which name and why, buf is "")
 * for an unsafe name or a path longer than len. */
int oomb_baseline_path(const char *dir, const char *device_class, const char *scenario, char *buf,
                       size_t len, char *err, size_t err_len) OOMB_WARN_UNUSED;

/* The distinct scenario names of r's runs, in order of first appearance.
 * *names is an array of n pointers into r (caller frees the array only). */
int oomb_results_scenarios(const struct oomb_results *r, const char ***names, int *n)
    OOMB_WARN_UNUSED;

/* Drop every run and check of r that is not of `scenario`. */
void oomb_results_keep_scenario(struct oomb_results *r, const char *scenario);

/* Move every run of src to the end of dst (src keeps no runs). */
int oomb_results_move_runs(struct oomb_results *dst, struct oomb_results *src) OOMB_WARN_UNUSED;

/* Load the baseline of one scenario. *found = 0 and OOMB_OK when there is
 * no such file; OOMB_ERR_IO / OOMB_ERR_PARSE (err names the file and field)
 * when it exists but cannot be read; OOMB_ERR_INVALID when a name is not a
 * safe path component (oomb_baseline_path). Caller frees *out. */
int oomb_baseline_load(const char *dir, const char *device_class, const char *scenario,
                       struct oomb_results *out, int *found, char *err, size_t err_len)
    OOMB_WARN_UNUSED;

/* Write one baseline file per scenario of the results file `results_path`
 * under dir/class/, atomically, and print to `report` what changed against
 * the previous file (runs added or removed, outcome and memory differences
 * per tag, held-out test accuracy changes). Returns OOMB_OK, or
 * OOMB_ERR_IO / OOMB_ERR_PARSE / OOMB_ERR_INVALID (a device class or
 * scenario name that is not a safe path component) with err; on an error
 * no file is written. */
int oomb_baseline_save(const char *results_path, const char *dir, const char *class_override,
                       FILE *report, char *err, size_t err_len) OOMB_WARN_UNUSED;

/* The same for several results files of one build (e.g. five invocations of
 * `oombench run`): each baseline file holds every run of every file, so a
 * configuration (scenario x mode x batch x strategy) has several runs, and
 * the time verdicts see the spread between processes (verdict.h). With
 * `append`, the runs are added to the existing baseline file instead of
 * replacing it. Of each configuration the `keep` most recent runs are kept.
 * Memory is deterministic: a run whose peak (total or one tag) differs from
 * the first run of its configuration is refused with OOMB_ERR_INVALID, err
 * naming the file, the run and the tag, and nothing of that scenario is
 * written. paths[0]'s device class files them. */
int oomb_baseline_save_runs(const char *const *paths, int n_paths, const char *dir,
                            const char *class_override, int append, int keep, FILE *report,
                            char *err, size_t err_len) OOMB_WARN_UNUSED;

#endif
