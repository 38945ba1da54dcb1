package dev.rrra;

import java.lang.foreign.MemorySegment;

/** Library-wide functions: version, status names and the SPEC §5 sampler on its own. */
public final class Rrra {
    private Rrra() {}

    /** {@code RRRA_NOT_DRAWN} (UINT32_MAX) as a Java int. */
    public static final int NOT_DRAWN = -1;

    /** {@code rrra_version()}: the loaded library's "MAJOR.MINOR.PATCH". */
    public static String version() {
        return Native.version();
    }

    /** The rrra.h version this binding was written against. */
    public static String headerVersion() {
        return Native.HEADER_VERSION;
    }

    /** Where the native library was loaded from. */
    public static String libraryPath() {
        return Native.LIBRARY;
    }

    /** {@code rrra_status_name(code)}. */
    public static String statusName(int code) {
        return Native.statusName(code);
    }

    /** Drawn positions: {@code samples.length} slots, the first {@code count} used, the rest {@link #NOT_DRAWN}. */
    public record Samples(int[] samples, int count) {}

    /**
     * {@code rrra_sample_negatives}: draws up to {@code n} of one query's candidates without
     * replacement with probability ∝ exp(logSRs), never a masked one (mask may be null). A pure
     * function of its arguments. The heap arrays are passed in place (a critical downcall with
     * heap access; no copies).
     */
    public static Samples sampleNegatives(float[] logSRs, boolean[] positiveMask, long seed, long queryIndex, int n) {
        if (n < 0) {
            throw new IllegalArgumentException("n must be >= 0, got " + n);
        }
        MemorySegment mask = MemorySegment.NULL;
        long maskLen = 0;
        if (positiveMask != null) {
            byte[] m = new byte[positiveMask.length];
            for (int i = 0; i < m.length; i++) {
                m[i] = positiveMask[i] ? (byte) 1 : (byte) 0;
            }
            mask = MemorySegment.ofArray(m);
            maskLen = m.length;
        }
        int[] samples = new int[n];
        long[] count = new long[1];
        try {
            int status = (int) Native.SAMPLE_NEGATIVES_HEAP.invokeExact(MemorySegment.ofArray(logSRs),
                    (long) logSRs.length, mask, maskLen, seed, queryIndex, MemorySegment.ofArray(samples), (long) n,
                    MemorySegment.ofArray(count));
            Native.check(status);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        return new Samples(samples, Math.toIntExact(count[0]));
    }
}
