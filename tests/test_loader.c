/*
 * Plugin loader: each way a plugin is rejected has its own message naming
 * the file; accepted plugins are copied within their struct_size. The
 * registry's plugins are copies sent by a probe process: the harness never
 * runs plugin code nor reads a plugin's pointers, whatever the plugin
 * started while probed is gone, and plugins others may write are refused.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"
#include "oombench/plugin.h"

static int open_fixture(const char *name, struct oomb_loaded_plugin **p, char *err, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.so", OOMB_FIXTURE_DIR, name);
    return oomb_plugin_open(path, p, err, len);
}

Test(loader, accepts_reference_plugin)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(oomb_plugin_open(OOMB_PLUGIN_DIR "/none.so", &p, err, sizeof err), OOMB_OK, "%s",
                 err);
    cr_assert_str_eq(p->desc.name, "none");
    cr_assert_eq(p->desc.abi_major, OOMB_ABI_MAJOR);
    cr_assert(p->desc.modes & OOMB_MODE_TRAIN);
    oomb_plugin_close(p);
}

Test(loader, rejects_missing_file)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(oomb_plugin_open("/nonexistent/dir/x.so", &p, err, sizeof err), OOMB_ERR_IO);
    cr_assert_null(p);
    cr_assert(strstr(err, "/nonexistent/dir/x.so: cannot open plugin"), "%s", err);
}

Test(loader, rejects_file_that_is_not_a_shared_object)
{
    char path[] = "/tmp/oombench-notso-XXXXXX.so";
    int fd = mkstemps(path, 3);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "not an ELF file\n", 16), 16);
    close(fd);
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(oomb_plugin_open(path, &p, err, sizeof err), OOMB_ERR_IO);
    cr_assert(strstr(err, path) && strstr(err, "cannot open plugin"), "%s", err);
    unlink(path);
}

Test(loader, rejects_missing_entry_symbol)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(open_fixture("fixture_noentry", &p, err, sizeof err), OOMB_ERR_ABI);
    cr_assert(strstr(err, "fixture_noentry.so") &&
                  strstr(err, "entry symbol 'oomb_plugin_entry' missing"),
              "%s", err);
}

Test(loader, rejects_major_mismatch_printing_both_versions)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(open_fixture("fixture_abi2", &p, err, sizeof err), OOMB_ERR_ABI);
    char want_plugin[32], want_host[32];
    snprintf(want_plugin, sizeof want_plugin, "ABI %d.3", OOMB_ABI_MAJOR + 1);
    snprintf(want_host, sizeof want_host, "ABI %d.%d", OOMB_ABI_MAJOR, OOMB_ABI_MINOR);
    cr_assert(strstr(err, want_plugin) && strstr(err, want_host), "%s", err);
    cr_assert(strstr(err, "fixture_abi2.so"), "%s", err);
}

Test(loader, rejects_descriptor_too_small)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(open_fixture("fixture_small", &p, err, sizeof err), OOMB_ERR_ABI);
    cr_assert(strstr(err, "descriptor too small"), "%s", err);
}

Test(loader, rejects_null_required_callback)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(open_fixture("fixture_nullcb", &p, err, sizeof err), OOMB_ERR_ABI);
    cr_assert(strstr(err, "required callback 'step' is NULL"), "%s", err);
}

/* A plugin built against a newer minor may read host or op members this
 * host does not have: refused, with both versions. */
Test(loader, rejects_newer_minor_with_both_versions)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "", want[128];
    cr_assert_eq(open_fixture("fixture_newminor", &p, err, sizeof err), OOMB_ERR_ABI);
    cr_assert_null(p);
    snprintf(want, sizeof want, "plugin ABI %d.%d is newer than this oombench's (ABI %d.%d)",
             OOMB_ABI_MAJOR, OOMB_ABI_MINOR + 7, OOMB_ABI_MAJOR, OOMB_ABI_MINOR);
    cr_assert(strstr(err, want), "%s", err);
}

/* ABI 2 parameter descriptors: read with the plugin's own element size
 * (a newer, larger one included), in the worker and through the probe. */
Test(loader, reads_parameter_descriptors_with_their_own_size)
{
    char path[1024], err[1024] = "";
    snprintf(path, sizeof path, "%s/fixture_bigparam.so", OOMB_FIXTURE_DIR);
    struct oomb_loaded_plugin *opened = NULL, *described = NULL;
    cr_assert_eq(oomb_plugin_open(path, &opened, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_plugin_describe(path, 10.0, &described, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_plugin *ds[] = {&opened->desc, &described->desc};
    for (int i = 0; i < 2; i++) {
        const struct oomb_plugin *d = ds[i];
        cr_assert_eq(d->n_params, 2);
        cr_expect_str_eq(d->params[0].name, "count");
        cr_expect_eq(d->params[0].bounds, OOMB_PARAM_MIN | OOMB_PARAM_MAX);
        cr_expect_eq(d->params[0].min, 1.0);
        cr_expect_eq(d->params[0].max, 5.0);
        cr_expect_str_eq(d->params[1].name, "kind");
        cr_expect_str_eq(d->params[1].choices, "x|y");
        cr_expect_eq(d->params[1].type, OOMB_PARAM_STRING);
    }
    oomb_plugin_close(opened);
    oomb_plugin_close(described);
}

static void expect_param_rejected(const char *name, const char *want)
{
    char path[1024], err[1024] = "";
    snprintf(path, sizeof path, "%s/%s.so", OOMB_FIXTURE_DIR, name);
    struct oomb_loaded_plugin *p = NULL;
    cr_expect_eq(oomb_plugin_open(path, &p, err, sizeof err), OOMB_ERR_ABI, "%s", name);
    cr_expect(strstr(err, want) && strstr(err, name), "%s: %s", name, err);
    oomb_plugin_close(p);
    p = NULL;
    err[0] = '\0';
    cr_expect_eq(oomb_plugin_describe(path, 10.0, &p, err, sizeof err), OOMB_ERR_ABI, "%s", name);
    cr_expect(strstr(err, want), "%s (probe): %s", name, err);
    oomb_plugin_close(p);
}

Test(loader, rejects_a_default_outside_its_bounds)
{
    expect_param_rejected("fixture_baddefault", "the default of parameter 'count' is invalid: 9 "
                                                "is out of range: must be [1, 5]");
}

Test(loader, rejects_parameter_descriptors_of_abi_1)
{
    expect_param_rejected("fixture_oldparam", "params[0].struct_size is 40");
}

Test(loader, rejects_parameter_descriptors_of_two_sizes)
{
    expect_param_rejected("fixture_mixparam", "every element of the array must carry the same size");
}

Test(loader, param_check_bounds_and_choices)
{
    struct oomb_param_desc f = {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "f",
                                .type = OOMB_PARAM_FLOAT, .default_value = "0.5",
                                .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MAX | OOMB_PARAM_MAX_OPEN,
                                .min = 0, .max = 1};
    char why[256];
    cr_expect_eq(oomb_param_check(&f, "0", why, sizeof why), OOMB_OK);
    cr_expect_eq(oomb_param_check(&f, "0.999", why, sizeof why), OOMB_OK);
    cr_expect_eq(oomb_param_check(&f, "1", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_str_eq(why, "1 is out of range: must be [0, 1)");
    cr_expect_eq(oomb_param_check(&f, "-1e-9", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_eq(oomb_param_check(&f, "nan", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_eq(oomb_param_check(&f, "1e999", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_eq(oomb_param_check(&f, "0.5x", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_str_eq(why, "expected a number, got '0.5x'");
    struct oomb_param_desc i = {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "i",
                                .type = OOMB_PARAM_INT, .default_value = "2",
                                .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MIN_OPEN, .min = 1};
    cr_expect_eq(oomb_param_check(&i, "2", why, sizeof why), OOMB_OK);
    cr_expect_eq(oomb_param_check(&i, "1", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_str_eq(why, "1 is out of range: must be > 1");
    cr_expect_eq(oomb_param_check(&i, "2.5", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_eq(oomb_param_check(&i, "99999999999999999999", why, sizeof why), OOMB_ERR_INVALID);
    struct oomb_param_desc s = {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "s",
                                .type = OOMB_PARAM_STRING, .default_value = "ab",
                                .choices = "ab|2:4"};
    cr_expect_eq(oomb_param_check(&s, "2:4", why, sizeof why), OOMB_OK);
    cr_expect_eq(oomb_param_check(&s, "ab", why, sizeof why), OOMB_OK);
    cr_expect_eq(oomb_param_check(&s, "a", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_eq(oomb_param_check(&s, "ab|2:4", why, sizeof why), OOMB_ERR_INVALID);
    cr_expect_str_eq(why, "'ab|2:4' is not one of ab|2:4");
    s.choices = NULL;
    cr_expect_eq(oomb_param_check(&s, "anything", why, sizeof why), OOMB_OK);
}

Test(loader, loads_unusable_plugin_for_a_skip_at_run_time)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(open_fixture("fixture_unusable", &p, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_not_null(p->desc.usable);
    oomb_plugin_close(p);
}

Test(loader, registry_records_rejected_files_and_finds_by_name)
{
    struct oomb_registry r;
    char err[1024] = "";
    const char *dirs[] = {OOMB_FIXTURE_DIR};
    cr_assert_eq(oomb_registry_load(&r, dirs, 1, NULL, 0, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_not_null(oomb_registry_find(&r, "fixture_fail"));
    cr_assert_null(oomb_registry_find(&r, "fixture_abi2"));
    int saw_abi = 0, saw_small = 0;
    for (int i = 0; i < r.n_rejected; i++) {
        saw_abi |= strstr(r.rejected[i], "fixture_abi2.so") != NULL;
        saw_small |= strstr(r.rejected[i], "fixture_small.so") != NULL;
    }
    cr_assert(saw_abi && saw_small);
    oomb_registry_free(&r);
}

Test(loader, explicit_file_that_fails_is_an_error)
{
    struct oomb_registry r;
    char err[1024] = "";
    const char *files[] = {OOMB_FIXTURE_DIR "/fixture_nullcb.so"};
    cr_assert_eq(oomb_registry_load(&r, NULL, 0, files, 1, err, sizeof err), OOMB_ERR_ABI);
    cr_assert(strstr(err, "fixture_nullcb.so"), "%s", err);
}

Test(loader, duplicate_name_from_explicit_file_is_rejected)
{
    struct oomb_registry r;
    char err[1024] = "";
    const char *files[] = {OOMB_PLUGIN_DIR "/none.so", OOMB_PLUGIN_DIR "/none.so"};
    cr_assert_eq(oomb_registry_load(&r, NULL, 0, files, 2, err, sizeof err), OOMB_ERR_ABI);
    cr_assert(strstr(err, "already provided"), "%s", err);
}

Test(loader, plugin_crashing_while_loading_is_rejected_not_fatal)
{
    char err[1024] = "";
    cr_assert_eq(oomb_plugin_probe(OOMB_FIXTURE_DIR "/fixture_ctorcrash.so", 10.0, err, sizeof err),
                 OOMB_ERR_ABI);
    cr_assert(strstr(err, "fixture_ctorcrash.so: plugin crashed (signal 11") ||
                  strstr(err, "ended the process"),
              "%s", err);
    struct oomb_registry r;
    const char *dirs[] = {OOMB_FIXTURE_DIR};
    cr_assert_eq(oomb_registry_load(&r, dirs, 1, NULL, 0, err, sizeof err), OOMB_OK, "%s", err);
    int saw = 0;
    for (int i = 0; i < r.n_rejected; i++)
        saw |= strstr(r.rejected[i], "fixture_ctorcrash.so") != NULL;
    cr_assert(saw, "the crashing plugin is listed as rejected");
    cr_assert_not_null(oomb_registry_find(&r, "fixture_fail"), "the others still load");
    oomb_registry_free(&r);
}

Test(loader, probe_passes_through_the_childs_verdict)
{
    char err[1024] = "";
    cr_assert_eq(oomb_plugin_probe(OOMB_FIXTURE_DIR "/fixture_abi2.so", 10.0, err, sizeof err),
                 OOMB_ERR_ABI);
    cr_assert(strstr(err, "incompatible"), "%s", err);
    cr_assert_eq(oomb_plugin_probe(OOMB_PLUGIN_DIR "/none.so", 10.0, err, sizeof err), OOMB_OK,
                 "%s", err);
}

/* ---- the harness never runs plugin code nor follows a plugin's pointers ---- */

static int describe_fixture(const char *name, struct oomb_loaded_plugin **p, char *err, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.so", OOMB_FIXTURE_DIR, name);
    return oomb_plugin_describe(path, 10.0, p, err, len);
}

Test(loader, described_copy_matches_the_plugin_and_owns_its_strings)
{
    struct oomb_loaded_plugin *opened = NULL, *copy = NULL;
    char err[1024] = "";
    cr_assert_eq(oomb_plugin_open(OOMB_FIXTURE_DIR "/fixture_fail.so", &opened, err, sizeof err),
                 OOMB_OK, "%s", err);
    cr_assert_eq(describe_fixture("fixture_fail", &copy, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_null(copy->dl, "the harness did not dlopen it");
    cr_assert_null(copy->desc.create, "no callback pointers in the copy");
    cr_assert_eq(copy->callbacks, opened->callbacks);
    cr_assert_str_eq(copy->desc.name, opened->desc.name);
    cr_assert_str_eq(copy->desc.description, opened->desc.description);
    cr_assert_neq(copy->desc.name, opened->desc.name, "a copy, not the plugin's pointer");
    cr_assert_eq(copy->desc.modes, opened->desc.modes);
    cr_assert_eq(copy->desc.backends, opened->desc.backends);
    cr_assert_eq(copy->desc.abi_minor, opened->desc.abi_minor);
    cr_assert_eq(copy->desc.n_params, opened->desc.n_params);
    for (int i = 0; i < copy->desc.n_params; i++) {
        cr_assert_str_eq(copy->desc.params[i].name, opened->desc.params[i].name);
        cr_assert_eq(copy->desc.params[i].type, opened->desc.params[i].type);
        cr_assert_str_eq(copy->desc.params[i].default_value, opened->desc.params[i].default_value);
        cr_assert_str_eq(copy->desc.params[i].help, opened->desc.params[i].help);
    }
    oomb_plugin_close(copy);
    oomb_plugin_close(opened);
}

Test(loader, wild_descriptor_pointer_is_rejected_not_followed)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(describe_fixture("fixture_wild", &p, err, sizeof err), OOMB_ERR_ABI);
    cr_assert_null(p);
    cr_assert(strstr(err, "fixture_wild.so: descriptor field 'description' points to memory "
                          "that cannot be read"),
              "%s", err);
}

Test(loader, descriptor_string_without_nul_is_rejected)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(describe_fixture("fixture_unterminated", &p, err, sizeof err), OOMB_ERR_ABI);
    cr_assert(strstr(err, "descriptor field 'description' is longer than 1024 bytes"), "%s", err);
}

Test(loader, registry_never_runs_plugin_code_in_the_harness)
{
    /* Its constructor crashes in every process but the probe: were the
     * registry to dlopen it here, this test process would die. */
    struct oomb_registry r;
    char err[1024] = "";
    const char *files[] = {OOMB_FIXTURE_DIR "/fixture_ctorparent.so"};
    cr_assert_eq(oomb_registry_load(&r, NULL, 0, files, 1, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_loaded_plugin *p = oomb_registry_find(&r, "fixture_ctorparent");
    cr_assert_not_null(p);
    cr_assert_null(p->dl);
    oomb_registry_free(&r);
}

Test(loader, processes_started_while_probed_do_not_survive_the_probe, .timeout = 30)
{
    char pidfile[] = "/tmp/oombench-pids-XXXXXX";
    int fd = mkstemp(pidfile);
    cr_assert_geq(fd, 0);
    close(fd);
    setenv("OOMB_FIXTURE_PIDFILE", pidfile, 1);
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(describe_fixture("fixture_forkctor", &p, err, sizeof err), OOMB_OK, "%s", err);
    unsetenv("OOMB_FIXTURE_PIDFILE");
    oomb_plugin_close(p);
    FILE *f = fopen(pidfile, "r");
    int pid, n = 0;
    while (f && fscanf(f, "%d", &pid) == 1) {
        char path[64], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%d/comm", pid);
        FILE *c = fopen(path, "r");
        if (c) {
            if (!fgets(comm, sizeof comm, c))
                comm[0] = '\0';
            fclose(c);
        }
        cr_assert_neq(strncmp(comm, "oomb-fx", 7), 0, "pid %d outlived the probe", pid);
        n++;
    }
    if (f)
        fclose(f);
    unlink(pidfile);
    cr_assert_geq(n, 1, "the constructor forked");
}

/* A folder with a copy of fixture_fail.so; the caller removes both. */
static void unsafe_copy(char *dir, size_t dlen, char *file, size_t flen, mode_t dmode, mode_t fmode)
{
    snprintf(dir, dlen, "/tmp/oombench-unsafe-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(file, flen, "%s/fixture_fail.so", dir);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp '%s/fixture_fail.so' '%s'", OOMB_FIXTURE_DIR, file);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(chmod(file, fmode), 0);
    cr_assert_eq(chmod(dir, dmode), 0);
}

static void unsafe_remove(const char *dir, const char *file)
{
    unlink(file);
    rmdir(dir);
}

Test(loader, world_writable_plugin_folder_is_refused_unless_allowed)
{
    char dir[PATH_MAX], file[PATH_MAX + 32], err[1024] = "";
    unsafe_copy(dir, sizeof dir, file, sizeof file, 0777, 0755);
    const char *dirs[] = {dir};
    struct oomb_registry r;
    cr_assert_eq(oomb_registry_load(&r, dirs, 1, NULL, 0, err, sizeof err), OOMB_ERR_INVALID);
    cr_assert(strstr(err, dir) && strstr(err, "world-writable") && strstr(err, "0777") &&
                  strstr(err, "--allow-unsafe-plugins"),
              "%s", err);
    cr_assert_eq(
        oomb_registry_load_flags(&r, dirs, 1, NULL, 0, OOMB_LOAD_ALLOW_UNSAFE, err, sizeof err),
        OOMB_OK, "%s", err);
    cr_assert_not_null(oomb_registry_find(&r, "fixture_fail"));
    oomb_registry_free(&r);
    unsafe_remove(dir, file);
}

Test(loader, world_writable_plugin_file_is_refused_unless_allowed)
{
    char dir[PATH_MAX], file[PATH_MAX + 32], err[1024] = "";
    unsafe_copy(dir, sizeof dir, file, sizeof file, 0755, 0666);
    const char *files[] = {file};
    struct oomb_registry r;
    cr_assert_eq(oomb_registry_load(&r, NULL, 0, files, 1, err, sizeof err), OOMB_ERR_INVALID);
    cr_assert(strstr(err, file) && strstr(err, "plugin file") && strstr(err, "0666"), "%s", err);
    /* The same file found in its folder is refused just as loudly. */
    const char *dirs[] = {dir};
    cr_assert_eq(oomb_registry_load(&r, dirs, 1, NULL, 0, err, sizeof err), OOMB_ERR_INVALID);
    cr_assert(strstr(err, "0666"), "%s", err);
    cr_assert_eq(
        oomb_registry_load_flags(&r, NULL, 0, files, 1, OOMB_LOAD_ALLOW_UNSAFE, err, sizeof err),
        OOMB_OK, "%s", err);
    oomb_registry_free(&r);
    unsafe_remove(dir, file);
}

Test(loader, group_writable_plugin_of_another_owner_is_refused)
{
    char dir[PATH_MAX], file[PATH_MAX + 32], err[1024] = "";
    unsafe_copy(dir, sizeof dir, file, sizeof file, 0755, 0664);
    /* Ours (or root's) and group-writable: accepted. */
    cr_assert_eq(oomb_plugin_check_path(file, 0, err, sizeof err), OOMB_OK, "%s", err);
    if (chown(file, 12345, (gid_t)-1) == 0) { /* only where we may give files away */
        cr_assert_eq(oomb_plugin_check_path(file, 0, err, sizeof err), OOMB_ERR_INVALID);
        cr_assert(strstr(err, "group-writable") && strstr(err, "0664"), "%s", err);
    }
    unsafe_remove(dir, file);
}

/* OOMB_HAS: a member a table is too small to hold, or that is NULL, is not
 * there; one it holds and that is set is. */
Test(loader, has_tells_whether_a_table_holds_a_member)
{
    struct oomb_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.struct_size = sizeof ops;
    cr_assert(!OOMB_HAS(&ops, maxpool_forward_idx));
    ops.maxpool_forward_idx =
        (int (*)(void *, float *, int32_t *, const float *, const struct oomb_pool2d *, int64_t))1;
    cr_assert(OOMB_HAS(&ops, maxpool_forward_idx));
    ops.struct_size = (uint32_t)offsetof(struct oomb_ops, maxpool_forward_idx); /* an 1.1 table */
    cr_assert(!OOMB_HAS(&ops, maxpool_forward_idx));
    cr_assert(OOMB_HAS(&ops, add) || ops.add == NULL);
}

/* A plugin turns a status into words with the header alone. */
Test(loader, status_names_come_from_the_header)
{
    cr_assert_str_eq(oomb_status_name(OOMB_ERR_OOM), "out of memory");
    cr_assert_str_eq(oomb_status_name(OOMB_ERR_NOT_APPLICABLE), "not applicable");
    cr_assert_str_eq(oomb_status_name(12345), "unknown status");
}
