package dev.rrra;

import static dev.rrra.Native.MODEL_INFO;
import static dev.rrra.Native.off;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * A validated adapter ({@code rrra_model}). Immutable and thread-safe: share one model between
 * any number of threads and sessions. Sessions keep their own reference, so closing the model
 * while sessions are open is fine.
 */
public final class Model implements AutoCloseable {
    private MemorySegment handle;
    private final ModelInfo info;

    private Model(MemorySegment handle) {
        this.handle = handle;
        this.info = readInfo(handle);
    }

    /** {@code rrra_model_load_file}. */
    public static Model loadFile(Path path) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int status = (int) Native.MODEL_LOAD_FILE.invokeExact(arena.allocateFrom(path.toString()), out);
            Native.check(status);
            return new Model(out.get(ADDRESS, 0));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /**
     * {@code rrra_model_load_bytes} on a heap array, passed in place (a critical downcall with
     * heap access, no copy on the Java side; the library copies what it keeps).
     */
    public static Model loadBytes(byte[] bytes) {
        long[] out = new long[1];
        try {
            int status = (int) Native.MODEL_LOAD_BYTES_HEAP.invokeExact(
                    MemorySegment.ofArray(bytes), (long) bytes.length, MemorySegment.ofArray(out));
            Native.check(status);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        return new Model(MemorySegment.ofAddress(out[0]));
    }

    /** {@code rrra_model_load_bytes} on any segment (off-heap ones are passed as they are). */
    public static Model loadBytes(MemorySegment bytes) {
        if (bytes.isNative()) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment out = arena.allocate(ADDRESS);
                int status = (int) Native.MODEL_LOAD_BYTES.invokeExact(bytes, bytes.byteSize(), out);
                Native.check(status);
                return new Model(out.get(ADDRESS, 0));
            } catch (Throwable t) {
                throw Native.rethrow(t);
            }
        }
        long[] out = new long[1];
        try {
            int status = (int) Native.MODEL_LOAD_BYTES_HEAP.invokeExact(
                    bytes, bytes.byteSize(), MemorySegment.ofArray(out));
            Native.check(status);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        return new Model(MemorySegment.ofAddress(out[0]));
    }

    /** What the file declares (read once at load). */
    public ModelInfo info() {
        return info;
    }

    /** The embedding dimension {@code d}. */
    public int dim() {
        return Math.toIntExact(info.dim());
    }

    private static ModelInfo readInfo(MemorySegment handle) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(MODEL_INFO);
            s.set(JAVA_LONG, off(MODEL_INFO, "struct_size"), MODEL_INFO.byteSize());
            int status = (int) Native.MODEL_INFO_GET.invokeExact(handle, s);
            Native.check(status);
            return new ModelInfo(
                    s.get(JAVA_LONG, off(MODEL_INFO, "dim")),
                    s.get(JAVA_LONG, off(MODEL_INFO, "hidden")),
                    s.get(JAVA_LONG, off(MODEL_INFO, "parameter_count")),
                    Activation.of(s.get(JAVA_INT, off(MODEL_INFO, "activation"))),
                    Similarity.of(s.get(JAVA_INT, off(MODEL_INFO, "similarity"))),
                    BaseTransform.of(s.get(JAVA_INT, off(MODEL_INFO, "base_transform"))),
                    s.get(JAVA_DOUBLE, off(MODEL_INFO, "adapter_mu")),
                    s.get(JAVA_DOUBLE, off(MODEL_INFO, "adapter_tau")),
                    s.get(JAVA_DOUBLE, off(MODEL_INFO, "base_mu")),
                    s.get(JAVA_DOUBLE, off(MODEL_INFO, "base_tau")),
                    s.get(JAVA_DOUBLE, off(MODEL_INFO, "lambda_rr")),
                    s.get(JAVA_DOUBLE, off(MODEL_INFO, "gamma_rs")),
                    Native.string(s.get(ADDRESS, off(MODEL_INFO, "encoder"))));
        } catch (Throwable t) {
            // Do not leak the handle when the constructor fails.
            try {
                Native.MODEL_FREE.invokeExact(handle);
            } catch (Throwable ignored) {
                // rrra_model_free never fails
            }
            throw Native.rethrow(t);
        }
    }

    synchronized MemorySegment handle() {
        if (handle == null) {
            throw new IllegalStateException("the model is closed");
        }
        return handle;
    }

    /** {@code rrra_model_free}; idempotent. */
    @Override
    public synchronized void close() {
        if (handle != null) {
            MemorySegment h = handle;
            handle = null;
            try {
                Native.MODEL_FREE.invokeExact(h);
            } catch (Throwable t) {
                throw Native.rethrow(t);
            }
        }
    }
}
