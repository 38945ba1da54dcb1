package dev.rrra;

import static java.lang.foreign.ValueLayout.ADDRESS;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A registered embedding matrix ({@code rrra_corpus}) for by-id candidates: row {@code i} at
 * value offset {@code i · rowStride}, values stored as a {@link Dtype}. The library keeps a
 * pointer to the rows and never copies them, so the rows must be off-heap and must outlive the
 * corpus: {@link #copyOf} copies a heap array once into memory the corpus owns; {@link #wrap}
 * uses the caller's off-heap segment as it is.
 * Immutable once built: any number of threads and sessions may use one corpus at once, but do
 * not close it while a call uses it.
 */
public final class Corpus implements AutoCloseable {
    private MemorySegment handle;
    private final Arena owned; // null when wrapping caller memory
    private final MemorySegment rows;
    private final long rowCount;
    private final int dim;
    private final Dtype dtype;

    private Corpus(Dtype dtype, MemorySegment rows, long rowCount, int dim, long rowStride, Arena owned) {
        if (!rows.isNative()) {
            throw new IllegalArgumentException("corpus rows must be off-heap (the library keeps a pointer to them)");
        }
        this.rows = rows;
        this.rowCount = rowCount;
        this.dim = dim;
        this.dtype = dtype;
        this.owned = owned;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int status = (int) Native.CORPUS_NEW_TYPED.invokeExact(dtype.code(), rows,
                    rows.byteSize() / dtype.layout().byteSize(), rowCount, (long) dim, rowStride, out);
            Native.check(status);
            handle = out.get(ADDRESS, 0);
        } catch (Throwable t) {
            if (owned != null) {
                owned.close();
            }
            throw Native.rethrow(t);
        }
    }

    /** Copies {@code rows × dim} floats (row-major) into off-heap memory this corpus owns. */
    public static Corpus copyOf(float[] data, int dim) {
        return copyOf(Dtype.F32, MemorySegment.ofArray(data), data.length, dim);
    }

    /** Copies {@code rows × dim} F16 or BF16 values (their bits, row-major) into off-heap memory this corpus owns. */
    public static Corpus copyOf(Dtype dtype, short[] data, int dim) {
        return copyOf(dtype.requireSixteenBits(), MemorySegment.ofArray(data), data.length, dim);
    }

    private static Corpus copyOf(Dtype dtype, MemorySegment data, int length, int dim) {
        if (dim <= 0 || length % dim != 0) {
            throw new IllegalArgumentException("data length " + length + " is not a multiple of dim " + dim);
        }
        Arena arena = Arena.ofShared();
        MemorySegment rows = arena.allocate(dtype.layout(), Math.max(1, length)).asSlice(0, data.byteSize());
        MemorySegment.copy(data, 0, rows, 0, data.byteSize());
        return new Corpus(dtype, rows, length / dim, dim, dim, arena);
    }

    /**
     * Registers the caller's off-heap rows of floats without copying: row {@code i} at float
     * offset {@code i · rowStride}. The segment's arena must stay open until this corpus is closed.
     */
    public static Corpus wrap(MemorySegment data, long rows, int dim, long rowStride) {
        return wrap(Dtype.F32, data, rows, dim, rowStride);
    }

    /**
     * As {@link #wrap(MemorySegment, long, int, long)} for rows stored as {@code dtype}: the
     * stride counts values, not bytes, and the segment must be aligned to one value.
     */
    public static Corpus wrap(Dtype dtype, MemorySegment data, long rows, int dim, long rowStride) {
        return new Corpus(dtype, data, rows, dim, rowStride, null);
    }

    public long rows() {
        return rowCount;
    }

    public int dim() {
        return dim;
    }

    public Dtype dtype() {
        return dtype;
    }

    /** The rows the library reads (for by-id batches built on top of this corpus). */
    public MemorySegment data() {
        return rows;
    }

    synchronized MemorySegment handle() {
        if (handle == null) {
            throw new IllegalStateException("the corpus is closed");
        }
        return handle;
    }

    /** {@code rrra_corpus_free}, then frees the rows if this corpus copied them; idempotent. */
    @Override
    public synchronized void close() {
        if (handle != null) {
            MemorySegment h = handle;
            handle = null;
            try {
                Native.CORPUS_FREE.invokeExact(h);
            } catch (Throwable t) {
                throw Native.rethrow(t);
            } finally {
                if (owned != null) {
                    owned.close();
                }
            }
        }
    }
}
