package dev.rrra;

/** {@code rrra_similarity}. */
public enum Similarity {
    DOT, COSINE;

    /** The constant for a C value, or null for one this binding does not know. */
    public static Similarity of(int code) {
        return code >= 0 && code < values().length ? values()[code] : null;
    }

    public int code() {
        return ordinal();
    }
}
