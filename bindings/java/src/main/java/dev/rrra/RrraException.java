package dev.rrra;

/**
 * A failed rrra call: the C status and the library's own message ({@code rrra_last_error()}),
 * which names the argument and the problem, e.g. "candidates: query 1, position 2, column 5 is NaN".
 */
public class RrraException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int code;
    private final String statusName;
    private final String nativeMessage;

    RrraException(int code, String statusName, String nativeMessage) {
        super(statusName + ": " + nativeMessage);
        this.code = code;
        this.statusName = statusName;
        this.nativeMessage = nativeMessage;
    }

    /** The status as an enum ({@link Status#UNKNOWN} for a code newer than this binding). */
    public Status status() {
        return Status.of(code);
    }

    /** The raw {@code rrra_status} value. */
    public int code() {
        return code;
    }

    /** {@code rrra_status_name(code)}, e.g. "RRRA_STATUS_INVALID_MODEL". */
    public String statusName() {
        return statusName;
    }

    /** {@code rrra_last_error()} as it was right after the failed call. */
    public String nativeMessage() {
        return nativeMessage;
    }
}
