/*
 * The CUDA entry points of a build without the CUDA backend: they report why
 * the backend is absent instead of leaving the harness with undefined symbols.
 */
#include <stdio.h>

#include "backend.h"

int oomb_cuda_backend_compiled(void) { return 0; }

int oomb_cuda_device_count(char *msg, size_t msg_len)
{
    snprintf(msg, msg_len, "this oombench was built without the CUDA backend "
                           "(no nvcc/cuDNN found at configure time, or OOMB_CUDA=OFF)");
    return 0;
}

int oomb_cuda_backend_create(int device, struct oomb_kernel_backend **out, char *msg, size_t msg_len)
{
    (void)device;
    *out = NULL;
    oomb_cuda_device_count(msg, msg_len);
    return OOMB_ERR_NOT_USABLE;
}
