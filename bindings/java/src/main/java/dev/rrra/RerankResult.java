package dev.rrra;

import java.util.Arrays;

/**
 * What {@code rrra_session_rerank} wrote, flat over the batch: candidate {@code i} of query
 * {@code q} is at {@code offset(q) + i}. {@code order} holds, per query, the positions
 * {@code 0..k−1} of its list, best first (stable sort by {@code log s_RR}). Arrays a call did not
 * ask for are null.
 */
public record RerankResult(int[] counts, float[] logSRr, float[] sA, float[] sFn, float[] classProbs, int[] order) {
    /** Flat index of query {@code q}'s first candidate. */
    public int offset(int q) {
        int o = 0;
        for (int i = 0; i < q; i++) {
            o += counts[i];
        }
        return o;
    }

    /** Query {@code q}'s reranked positions, best first. */
    public int[] order(int q) {
        int o = offset(q);
        return Arrays.copyOfRange(order, o, o + counts[q]);
    }

    /** Query {@code q}'s log s_RR values, in input order. */
    public float[] logSRr(int q) {
        int o = offset(q);
        return Arrays.copyOfRange(logSRr, o, o + counts[q]);
    }
}
