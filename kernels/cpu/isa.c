/*
 * Run-time choice of the CPU kernels' vector instruction set (isa.h).
 */
#include "isa.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#define OOMB_ISA_X86 1
#endif

static int chosen = -1; /* enum oomb_cpu_isa once chosen */

int oomb_cpu_isa_supported(enum oomb_cpu_isa isa)
{
    if (isa == OOMB_CPU_ISA_SCALAR)
        return 1;
#ifdef OOMB_ISA_X86
    if (isa == OOMB_CPU_ISA_AVX2) {
        static int v = -1;
        if (v < 0) {
            /* The builtins check the OS's support for the YMM registers (XGETBV);
             * F16C is CPUID leaf 1, ECX bit 29 (not every compiler's builtin knows it). */
            unsigned a = 0, b = 0, c = 0, d = 0;
            __builtin_cpu_init();
            v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1u);
        }
        return v;
    }
#endif
    return 0;
}

enum oomb_cpu_isa oomb_cpu_isa_get(void)
{
    if (chosen < 0) {
        const char *e = getenv("OOMB_CPU_ISA");
        enum oomb_cpu_isa want = OOMB_CPU_ISA_AVX2; /* the best there is */
        if (e && strcmp(e, "scalar") == 0)
            want = OOMB_CPU_ISA_SCALAR;
        chosen = oomb_cpu_isa_supported(want) ? (int)want : (int)OOMB_CPU_ISA_SCALAR;
    }
    return (enum oomb_cpu_isa)chosen;
}

int oomb_cpu_isa_force(enum oomb_cpu_isa isa)
{
    if (!oomb_cpu_isa_supported(isa))
        return -1;
    chosen = (int)isa;
    return 0;
}

const char *oomb_cpu_isa_name(enum oomb_cpu_isa isa)
{
    return isa == OOMB_CPU_ISA_AVX2 ? "avx2+fma+f16c" : "scalar";
}
