/*
 * libFuzzer target: the scenario loader on arbitrary bytes. Every input must
 * either load (and then read back consistently) or fail with OOMB_ERR_PARSE,
 * OOMB_ERR_IO or OOMB_ERR_OOM and a message naming the file; any other
 * status, a crash, a sanitizer report, a hang or a leak is a finding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

#define NAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct oomb_scenario *sc = NULL;
    char err[1024];
    int rc = oomb_scenario_load_mem(NAME, data, size, &sc, err, sizeof err);
    if (rc != OOMB_OK) {
        if (sc != NULL || (rc != OOMB_ERR_PARSE && rc != OOMB_ERR_IO && rc != OOMB_ERR_OOM) ||
            strncmp(err, NAME ":", strlen(NAME ":")) != 0) {
            fprintf(stderr, "unexpected failure %d: %s\n", rc, err);
            abort();
        }
        return 0;
    }
    /* A loaded scenario is internally consistent. */
    if (sc->n_batches < 1 || sc->n_strategies < 1 || sc->model.n_layers < 1 ||
        !oomb_scenario_name_ok(sc->name)) {
        fprintf(stderr, "inconsistent scenario\n");
        abort();
    }
    for (int i = 0; i < sc->n_batches; i++)
        if (oomb_scenario_measured_steps(sc, sc->batches[i]) < 1)
            abort();
    for (int i = 0; i < sc->model.n_layers; i++)
        if (sc->model.layers[i]->n_params < 0 || sc->model.layers[i]->out_features < 1)
            abort();
    oomb_scenario_destroy(sc);
    return 0;
}
