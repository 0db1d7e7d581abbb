// DISTOPT_SIMD_CLONES: compile a hot loop for AVX2 and for the x86-64
// baseline and let the loader pick per CPU (GCC target_clones, an ifunc
// resolved once at start-up). The build targets plain x86-64 so one binary
// runs on every host of a cluster; the loops where SIMD width pays
// (aggregation, optimizer updates; CRC32C has its own check in crc32c.cc)
// still get the wide path where the CPU has it. A no-op where the baseline
// already has AVX2 (-march=native on such a CPU), on other compilers and
// architectures, and under sanitizers (their runtimes and ifuncs disagree).
#ifndef DISTOPT_BASE_SIMD_H_
#define DISTOPT_BASE_SIMD_H_

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define DISTOPT_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DISTOPT_SIMD_CLONES
#endif

#endif  // DISTOPT_BASE_SIMD_H_
