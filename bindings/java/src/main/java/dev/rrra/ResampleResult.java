package dev.rrra;

/**
 * What {@code rrra_session_resample} wrote. {@code samples} holds {@code samplesPerQuery} slots per
 * query: positions within that query's list, best key first, slots past {@code sampleCounts[q]}
 * holding {@link Rrra#NOT_DRAWN} (uint32 max, which reads as −1 in a Java int).
 */
public record ResampleResult(int[] counts, int samplesPerQuery, float[] logSRs, float[] sFn, int[] samples,
        int[] sampleCounts) {
    /** Query {@code q}'s drawn positions ({@code sampleCounts[q]} of them). */
    public int[] samples(int q) {
        int[] out = new int[sampleCounts[q]];
        System.arraycopy(samples, q * samplesPerQuery, out, 0, out.length);
        return out;
    }
}
