package dev.rrra;

/** {@code rrra_status}: the result of every fallible function. Values are never renumbered. */
public enum Status {
    OK(0),
    /** A required pointer argument was NULL (a binding bug if it ever reaches Java code). */
    NULL_POINTER(1001),
    /** A length, stride, index, struct_size, flag or option value is wrong. */
    INVALID_ARGUMENT(1002),
    /** An embedding width disagrees with the model's {@code d}. */
    DIMENSION_MISMATCH(1003),
    /** NaN or ±Inf in queries, candidates or base scores. */
    NON_FINITE_INPUT(1004),
    /** The adapter file is malformed, hostile or violates the format. */
    INVALID_MODEL(1005),
    /** A file could not be read. */
    IO(1006),
    /** The forward pass overflowed on finite input of absurd magnitude. */
    NUMERIC(1007),
    /** The request needs something this build or machine does not have. */
    UNSUPPORTED(1008),
    /** A bug in rrra (a caught panic); the message says where. */
    INTERNAL(1099),
    /** A status this binding does not know (a newer library); see {@link RrraException#code()}. */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    /** The C value. */
    public int code() {
        return code;
    }

    /** The constant for a C value, {@link #UNKNOWN} for one this binding does not know. */
    public static Status of(int code) {
        for (Status s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        return UNKNOWN;
    }
}
