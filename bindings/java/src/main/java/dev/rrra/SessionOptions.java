package dev.rrra;

/**
 * {@code rrra_session_options}: the engine ({@link Engine#AUTO} picks the best available) and the
 * threads one call may use, splitting a batch's queries between them (0 means 1).
 */
public record SessionOptions(Engine engine, int threads) {
    public static final SessionOptions DEFAULTS = new SessionOptions(Engine.AUTO, 0);

    public SessionOptions {
        if (engine == null) {
            throw new IllegalArgumentException("engine is null");
        }
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0, got " + threads);
        }
    }
}
