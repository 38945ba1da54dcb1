package dev.rrra;

/** {@code rrra_activation}. */
public enum Activation {
    RELU, GELU, GELU_TANH, SILU, TANH;

    /** The constant for a C value, or null for one this binding does not know. */
    public static Activation of(int code) {
        return code >= 0 && code < values().length ? values()[code] : null;
    }

    public int code() {
        return ordinal();
    }
}
