package dev.rrra;

/**
 * What a model file declares ({@code rrra_model_info}). The enum fields are null only for a
 * value newer than this binding.
 */
public record ModelInfo(
        long dim,
        long hidden,
        long parameterCount,
        Activation activation,
        Similarity similarity,
        BaseTransform baseTransform,
        double adapterMu,
        double adapterTau,
        double baseMu,
        double baseTau,
        double lambdaRr,
        double gammaRs,
        String encoder) {}
