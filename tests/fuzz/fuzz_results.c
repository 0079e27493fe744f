/*
 * libFuzzer target: the results reader (oomb_results_read) on arbitrary
 * bytes. The reader takes a path, so each input is written to one memfd made
 * at start-up and read back through /proc/self/fd/N: no files on disk and no
 * change to the reader. It must return OOMB_OK, OOMB_ERR_PARSE or
 * OOMB_ERR_IO (or OOMB_ERR_OOM) and leave nothing allocated on failure.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("oomb-fuzz-results", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
    struct oomb_results r;
    memset(&r, 0, sizeof r);
    char err[1024];
    int rc = oomb_results_read(path, &r, err, sizeof err);
    if (rc != OOMB_OK && rc != OOMB_ERR_PARSE && rc != OOMB_ERR_IO && rc != OOMB_ERR_OOM) {
        fprintf(stderr, "unexpected status %d: %s\n", rc, err);
        abort();
    }
    if (rc == OOMB_OK) {
        for (int i = 0; i < r.n_runs; i++)
            if (r.runs[i].scenario == NULL || r.runs[i].strategy == NULL)
                abort();
    }
    oomb_results_free(&r);
    return 0;
}
