package dev.rrra;

/**
 * {@code rrra_session_options}: the engine ({@link Engine#AUTO} picks the best available), the
 * threads one call may use, splitting a batch's queries or one list's work between them (0
 * means 1; the session starts them once and parks them between calls), the folded
 * engine's instruction set ({@link CpuKernel#AUTO}: the best this CPU has; forcing one is for
 * tests and benchmarks) and the arithmetic ({@link Precision#F32} unless asked otherwise).
 */
public record SessionOptions(Engine engine, int threads, CpuKernel cpuKernel, Precision precision) {
    public static final SessionOptions DEFAULTS = new SessionOptions(Engine.AUTO, 0, CpuKernel.AUTO, Precision.F32);

    public SessionOptions(Engine engine, int threads) {
        this(engine, threads, CpuKernel.AUTO, Precision.F32);
    }

    public SessionOptions(Engine engine, int threads, CpuKernel cpuKernel) {
        this(engine, threads, cpuKernel, Precision.F32);
    }

    public SessionOptions {
        if (engine == null) {
            throw new IllegalArgumentException("engine is null");
        }
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0, got " + threads);
        }
        if (cpuKernel == null) {
            throw new IllegalArgumentException("cpuKernel is null");
        }
        if (precision == null) {
            throw new IllegalArgumentException("precision is null");
        }
    }
}
