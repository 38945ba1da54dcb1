package dev.rrra;

import static dev.rrra.Native.SCORE_OPTIONS;
import static dev.rrra.Native.SIZE_T;
import static dev.rrra.Native.off;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;

/**
 * Per-call overrides of the model file's score settings ({@code rrra_score_options}, SPEC §2, §4).
 * Only the settings named through a {@code with*} call are overridden; the rest come from the file.
 * Immutable.
 */
public final class ScoreOptions {
    static final int LAMBDA_RR = 1, GAMMA_RS = 2, BASE_TRANSFORM = 4, BASE_MU = 8, BASE_TAU = 16;

    /** Nothing overridden: the model file's settings. */
    public static final ScoreOptions DEFAULTS = new ScoreOptions(0, BaseTransform.IDENTITY, 0, 0, 0, 1);

    private final int flags;
    private final BaseTransform baseTransform;
    private final double lambdaRr, gammaRs, baseMu, baseTau;

    private ScoreOptions(int flags, BaseTransform baseTransform, double lambdaRr, double gammaRs, double baseMu,
            double baseTau) {
        this.flags = flags;
        this.baseTransform = baseTransform;
        this.lambdaRr = lambdaRr;
        this.gammaRs = gammaRs;
        this.baseMu = baseMu;
        this.baseTau = baseTau;
    }

    /** λ ≥ 0 in {@code log s_RR = log s_B + λ · log s_A}. */
    public ScoreOptions withLambdaRr(double v) {
        return new ScoreOptions(flags | LAMBDA_RR, baseTransform, v, gammaRs, baseMu, baseTau);
    }

    /** γ ≥ 0 in {@code log s_RS = log s_B + γ · log(1 − s_FN)}. */
    public ScoreOptions withGammaRs(double v) {
        return new ScoreOptions(flags | GAMMA_RS, baseTransform, lambdaRr, v, baseMu, baseTau);
    }

    public ScoreOptions withBaseTransform(BaseTransform v) {
        return new ScoreOptions(flags | BASE_TRANSFORM, v, lambdaRr, gammaRs, baseMu, baseTau);
    }

    public ScoreOptions withBaseMu(double v) {
        return new ScoreOptions(flags | BASE_MU, baseTransform, lambdaRr, gammaRs, v, baseTau);
    }

    /** &gt; 0. */
    public ScoreOptions withBaseTau(double v) {
        return new ScoreOptions(flags | BASE_TAU, baseTransform, lambdaRr, gammaRs, baseMu, v);
    }

    /** The {@code RRRA_OVERRIDE_*} bits set. */
    public int overrideFlags() {
        return flags;
    }

    /** NULL when nothing is overridden, else a filled struct in {@code a}. */
    MemorySegment write(SegmentAllocator a) {
        if (flags == 0) {
            return MemorySegment.NULL;
        }
        MemorySegment s = a.allocate(SCORE_OPTIONS).fill((byte) 0);
        s.set(SIZE_T, off(SCORE_OPTIONS, "struct_size"), SCORE_OPTIONS.byteSize());
        s.set(JAVA_INT, off(SCORE_OPTIONS, "override_flags"), flags);
        s.set(JAVA_INT, off(SCORE_OPTIONS, "base_transform"), baseTransform.code());
        s.set(JAVA_DOUBLE, off(SCORE_OPTIONS, "lambda_rr"), lambdaRr);
        s.set(JAVA_DOUBLE, off(SCORE_OPTIONS, "gamma_rs"), gammaRs);
        s.set(JAVA_DOUBLE, off(SCORE_OPTIONS, "base_mu"), baseMu);
        s.set(JAVA_DOUBLE, off(SCORE_OPTIONS, "base_tau"), baseTau);
        return s;
    }
}
