/*
 * Plugin loader: each way a plugin is rejected has its own message naming
 * the file; accepted plugins are copied within their struct_size.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
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
    cr_assert_eq(oomb_plugin_open(OOMB_PLUGIN_DIR "/none.so", &p, err, sizeof err), OOMB_OK,
                 "%s", err);
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
    cr_assert(strstr(err, "fixture_noentry.so") && strstr(err, "entry symbol 'oomb_plugin_entry' missing"),
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

Test(loader, accepts_newer_minor_reading_only_known_fields)
{
    struct oomb_loaded_plugin *p = NULL;
    char err[1024] = "";
    cr_assert_eq(open_fixture("fixture_newminor", &p, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(p->desc.abi_minor, OOMB_ABI_MINOR + 7);
    cr_assert_gt(p->desc.struct_size, sizeof(struct oomb_plugin));
    oomb_plugin_close(p);
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
