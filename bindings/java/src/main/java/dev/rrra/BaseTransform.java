package dev.rrra;

/** {@code rrra_base_transform}: how a base score {@code b} becomes {@code s_B} (SPEC §4). */
public enum BaseTransform {
    /** {@code s_B = b}; every base score must be &gt; 0. */
    IDENTITY,
    /** {@code s_B = sigmoid((b − base_mu) / base_tau)}. */
    SIGMOID,
    /** {@code s_B = softmax_i(b_i / base_tau)} over one query's candidates. */
    SOFTMAX;

    /** The constant for a C value, or null for one this binding does not know. */
    public static BaseTransform of(int code) {
        return code >= 0 && code < values().length ? values()[code] : null;
    }

    public int code() {
        return ordinal();
    }
}
