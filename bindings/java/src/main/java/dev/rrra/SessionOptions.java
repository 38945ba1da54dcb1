package dev.rrra;

/**
 * {@code rrra_session_options}: the engine ({@link Engine#AUTO} picks the best available), the
 * threads one call may use, splitting a batch's queries between them (0 means 1), and the folded
 * engine's instruction set ({@link CpuKernel#AUTO}: the best this CPU has; forcing one is for
 * tests and benchmarks).
 */
public record SessionOptions(Engine engine, int threads, CpuKernel cpuKernel) {
    public static final SessionOptions DEFAULTS = new SessionOptions(Engine.AUTO, 0, CpuKernel.AUTO);

    public SessionOptions(Engine engine, int threads) {
        this(engine, threads, CpuKernel.AUTO);
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
    }
}
