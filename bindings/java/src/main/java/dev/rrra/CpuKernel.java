package dev.rrra;

/** {@code rrra_cpu_kernel}: the instruction set of the folded engine's kernels. */
public enum CpuKernel {
    /** Options: the best this CPU has, detected at run time. Query: the engine has no CPU kernels. */
    AUTO,
    /** Plain code vectorised for the build's baseline (SSE2 on x86-64, NEON on AArch64). */
    PORTABLE,
    /** x86-64 AVX2 with FMA. */
    AVX2,
    /** x86-64 AVX-512F. */
    AVX512;

    /** The constant for a C value, or null for one this binding does not know. */
    public static CpuKernel of(int code) {
        return code >= 0 && code < values().length ? values()[code] : null;
    }

    public int code() {
        return ordinal();
    }
}
