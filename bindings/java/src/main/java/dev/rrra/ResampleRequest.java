package dev.rrra;

/**
 * {@code rrra_resample_request}: draw {@code samplesPerQuery} negatives per query with the SPEC §5
 * sampler. Query {@code q} of the batch draws as sampler query index {@code firstQueryIndex + q}.
 * {@code positiveMask} (null, or one flag per candidate of the batch) marks labelled positives,
 * never drawn.
 */
public record ResampleRequest(int samplesPerQuery, long seed, long firstQueryIndex, boolean[] positiveMask) {
    public ResampleRequest {
        if (samplesPerQuery < 0) {
            throw new IllegalArgumentException("samplesPerQuery must be >= 0, got " + samplesPerQuery);
        }
    }
}
