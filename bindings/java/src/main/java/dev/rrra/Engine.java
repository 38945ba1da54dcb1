package dev.rrra;

/** {@code rrra_engine}. */
public enum Engine {
    /** The best engine available (session options only). */
    AUTO,
    /** The straightforward f32 CPU engine. */
    REFERENCE,
    /** SPEC §8's folded layers on blocked f32 GEMMs (CPU). */
    FOLDED,
    /** SPEC §8's folded layers in CUDA kernels (NVIDIA GPU, a library built with the cuda feature). */
    CUDA;

    /** The constant for a C value, or null for one this binding does not know. */
    public static Engine of(int code) {
        return code >= 0 && code < values().length ? values()[code] : null;
    }

    public int code() {
        return ordinal();
    }
}
