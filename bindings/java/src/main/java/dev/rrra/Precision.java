package dev.rrra;

/** {@code rrra_precision}: the arithmetic of a session. */
public enum Precision {
    /** f32 weights, candidates and sums (SPEC §6's f32 tolerance). */
    F32,
    /**
     * Weights and candidates rounded to IEEE half, SPEC §6's reduced-precision tolerance: the
     * folded engine on a CPU with AVX512-FP16 (twice the f32 rate), or the cuda engine.
     */
    F16,
    /** bfloat16, on the cuda engine's tensor cores only. */
    BF16;

    /** The constant for a C value, or null for one this binding does not know. */
    public static Precision of(int code) {
        return code >= 0 && code < values().length ? values()[code] : null;
    }

    public int code() {
        return ordinal();
    }
}
