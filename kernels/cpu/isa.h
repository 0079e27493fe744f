/*
 * Private to the CPU backend: the vector instruction set its own kernels use
 * (vec_cpu.c), chosen once per process at run time, so that one binary built
 * for baseline x86-64 runs everywhere and uses AVX2, FMA and F16C where the
 * CPU has them. The BLAS chooses its own kernels (struct oomb_blas_info).
 *
 * The choice follows the CPU and the environment variable OOMB_CPU_ISA:
 * unset, "" or "auto": the best level the CPU supports; "scalar": the
 * portable C loops; "avx2": AVX2+FMA+F16C when the CPU supports them, else
 * the scalar loops (oomb_cpu_isa_name says which one runs). Any other value
 * counts as "auto". Not thread-safe before the first call (the kernels run
 * on the thread that calls the ops).
 */
#ifndef OOMB_KERNELS_CPU_ISA_H
#define OOMB_KERNELS_CPU_ISA_H

enum oomb_cpu_isa {
    OOMB_CPU_ISA_SCALAR = 0, /* portable C, any CPU and architecture */
    OOMB_CPU_ISA_AVX2 = 1,   /* x86-64 with AVX2, FMA and F16C (and the OS saving YMM) */
};

/* The level the kernels use now: chosen on the first call from the CPU and
 * OOMB_CPU_ISA, then kept (unless oomb_cpu_isa_force changes it). */
enum oomb_cpu_isa oomb_cpu_isa_get(void);

/* 1 when this CPU (and this build: x86-64 with GCC or Clang) can run `isa`. */
int oomb_cpu_isa_supported(enum oomb_cpu_isa isa);

/* Makes the kernels use `isa` from now on (tests run both paths this way).
 * Returns 0, or -1 and changes nothing when the CPU cannot run it. */
int oomb_cpu_isa_force(enum oomb_cpu_isa isa);

/* "scalar" or "avx2+fma+f16c": static storage, never NULL. */
const char *oomb_cpu_isa_name(enum oomb_cpu_isa isa);

#endif
