package dev.rrra;

import static dev.rrra.Native.RERANK_OUTPUTS;
import static dev.rrra.Native.RESAMPLE_OUTPUTS;
import static dev.rrra.Native.RESAMPLE_REQUEST;
import static dev.rrra.Native.SESSION_OPTIONS;
import static dev.rrra.Native.SIZE_T;
import static dev.rrra.Native.off;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;

/**
 * Scratch memory and an engine over a model ({@code rrra_session}). One thread at a time: the
 * methods are synchronized, so sharing a session is safe but serialises the calls; give each
 * thread its own session over a shared {@link Model}.
 *
 * <p>Every call is one native call. Inputs that are already off-heap segments are read in place;
 * heap arrays and the outputs go through an off-heap scratch buffer the session keeps and grows,
 * so steady-state calls allocate nothing off-heap.
 */
public final class Session implements AutoCloseable {
    private MemorySegment handle;
    private final Model model;
    private final int dim;
    private final Engine engine;
    private final String engineReason;
    private final CpuKernel cpuKernel;
    private final Precision precision;
    private Arena scratchArena;
    private MemorySegment scratch;
    private long calls;

    private Session(Model model, MemorySegment handle) {
        this.model = model;
        this.dim = model.dim();
        this.handle = handle;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment engineOut = arena.allocate(JAVA_INT);
            MemorySegment reasonOut = arena.allocate(ADDRESS);
            int status = (int) Native.SESSION_ENGINE.invokeExact(handle, engineOut, reasonOut);
            Native.check(status);
            this.engine = Engine.of(engineOut.get(JAVA_INT, 0));
            this.engineReason = Native.string(reasonOut.get(ADDRESS, 0));
            status = (int) Native.SESSION_CPU_KERNEL.invokeExact(handle, engineOut);
            Native.check(status);
            this.cpuKernel = CpuKernel.of(engineOut.get(JAVA_INT, 0));
            status = (int) Native.SESSION_PRECISION.invokeExact(handle, engineOut);
            Native.check(status);
            this.precision = Precision.of(engineOut.get(JAVA_INT, 0));
        } catch (Throwable t) {
            free(handle);
            throw Native.rethrow(t);
        }
    }

    /** {@code rrra_session_new} with the default options. */
    public static Session open(Model model) {
        return open(model, SessionOptions.DEFAULTS);
    }

    /** {@code rrra_session_new}. */
    public static Session open(Model model, SessionOptions options) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment o = arena.allocate(SESSION_OPTIONS).fill((byte) 0);
            o.set(SIZE_T, off(SESSION_OPTIONS, "struct_size"), SESSION_OPTIONS.byteSize());
            o.set(JAVA_INT, off(SESSION_OPTIONS, "engine"), options.engine().code());
            o.set(JAVA_INT, off(SESSION_OPTIONS, "threads"), options.threads());
            o.set(JAVA_INT, off(SESSION_OPTIONS, "cpu_kernel"), options.cpuKernel().code());
            o.set(JAVA_INT, off(SESSION_OPTIONS, "precision"), options.precision().code());
            MemorySegment out = arena.allocate(ADDRESS);
            int status = (int) Native.SESSION_NEW.invokeExact(model.handle(), o, out);
            Native.check(status);
            return new Session(model, out.get(ADDRESS, 0));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** The engine that runs ({@code rrra_session_engine}). */
    public Engine engine() {
        return engine;
    }

    /** The folded engine's instruction set ({@code rrra_session_cpu_kernel}); AUTO for an engine without CPU kernels. */
    public CpuKernel cpuKernel() {
        return cpuKernel;
    }

    /** The session's arithmetic ({@code rrra_session_precision}). */
    public Precision precision() {
        return precision;
    }

    /** Why that engine was chosen over the others. */
    public String engineReason() {
        return engineReason;
    }

    /** The model's embedding dimension. */
    public int dim() {
        return dim;
    }

    public Model model() {
        return model;
    }

    /** Native rerank/resample calls this session made (a diagnostic: one per batch). */
    public synchronized long nativeCalls() {
        return calls;
    }

    /** Reranks with the model's own score settings; every output. */
    public RerankResult rerank(Batch batch) {
        return rerank(batch, ScoreOptions.DEFAULTS);
    }

    /** {@code rrra_session_rerank}: log s_RR, s_A, s_FN, class probabilities and the order. */
    public RerankResult rerank(Batch batch, ScoreOptions options) {
        return rerank(batch, options, true);
    }

    /** Like {@link #rerank(Batch, ScoreOptions)} but asks only for log s_RR and the order. */
    public RerankResult rerankOrder(Batch batch, ScoreOptions options) {
        return rerank(batch, options, false);
    }

    private synchronized RerankResult rerank(Batch batch, ScoreOptions options, boolean everything) {
        MemorySegment session = handle();
        long total = batch.total;
        long outBytes = RERANK_OUTPUTS.byteSize() + total * 4 * (everything ? 8 : 2) + 6 * 8;
        SegmentAllocator a = scratch(batch.scratchBytes() + Native.SCORE_OPTIONS.byteSize() + 8 + outBytes);
        MemorySegment b = batch.write(a);
        MemorySegment o = options.write(a);
        MemorySegment out = a.allocate(RERANK_OUTPUTS).fill((byte) 0);
        out.set(SIZE_T, off(RERANK_OUTPUTS, "struct_size"), RERANK_OUTPUTS.byteSize());
        MemorySegment logSRr = output(a, out, RERANK_OUTPUTS, "log_s_rr", JAVA_FLOAT, total);
        MemorySegment order = output(a, out, RERANK_OUTPUTS, "order", JAVA_INT, total);
        MemorySegment sA = everything ? output(a, out, RERANK_OUTPUTS, "s_a", JAVA_FLOAT, total) : null;
        MemorySegment sFn = everything ? output(a, out, RERANK_OUTPUTS, "s_fn", JAVA_FLOAT, total) : null;
        MemorySegment probs = everything ? output(a, out, RERANK_OUTPUTS, "class_probs", JAVA_FLOAT, 4 * total) : null;
        int status;
        try {
            status = (int) Native.SESSION_RERANK.invokeExact(session, b, o, out);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        calls++;
        Native.check(status);
        return new RerankResult(batch.counts.clone(), floats(logSRr), floats(sA), floats(sFn), floats(probs),
                order.toArray(JAVA_INT));
    }

    /** {@code rrra_session_resample} with the model's own score settings. */
    public ResampleResult resample(Batch batch, ResampleRequest request) {
        return resample(batch, ScoreOptions.DEFAULTS, request);
    }

    /** {@code rrra_session_resample}: log s_RS, s_FN and the SPEC §5 draws. */
    public synchronized ResampleResult resample(Batch batch, ScoreOptions options, ResampleRequest request) {
        MemorySegment session = handle();
        long total = batch.total;
        long slots = (long) batch.counts.length * request.samplesPerQuery();
        boolean[] mask = request.positiveMask();
        long bytes = batch.scratchBytes() + Native.SCORE_OPTIONS.byteSize() + RESAMPLE_REQUEST.byteSize()
                + RESAMPLE_OUTPUTS.byteSize() + total * 8 + slots * 4 + batch.counts.length * 4L
                + (mask == null ? 0 : mask.length) + 8 * 8;
        SegmentAllocator a = scratch(bytes);
        MemorySegment b = batch.write(a);
        MemorySegment o = options.write(a);
        MemorySegment r = a.allocate(RESAMPLE_REQUEST).fill((byte) 0);
        r.set(SIZE_T, off(RESAMPLE_REQUEST, "struct_size"), RESAMPLE_REQUEST.byteSize());
        r.set(SIZE_T, off(RESAMPLE_REQUEST, "samples_per_query"), request.samplesPerQuery());
        r.set(JAVA_LONG, off(RESAMPLE_REQUEST, "seed"), request.seed());
        r.set(JAVA_LONG, off(RESAMPLE_REQUEST, "first_query_index"), request.firstQueryIndex());
        if (mask != null) {
            MemorySegment m = a.allocate(JAVA_BYTE, Math.max(1, mask.length));
            for (int i = 0; i < mask.length; i++) {
                m.set(JAVA_BYTE, i, mask[i] ? (byte) 1 : (byte) 0);
            }
            r.set(ADDRESS, off(RESAMPLE_REQUEST, "positive_mask"), m);
            r.set(SIZE_T, off(RESAMPLE_REQUEST, "positive_mask_len"), mask.length);
        }
        MemorySegment out = a.allocate(RESAMPLE_OUTPUTS).fill((byte) 0);
        out.set(SIZE_T, off(RESAMPLE_OUTPUTS, "struct_size"), RESAMPLE_OUTPUTS.byteSize());
        MemorySegment logSRs = output(a, out, RESAMPLE_OUTPUTS, "log_s_rs", JAVA_FLOAT, total);
        MemorySegment sFn = output(a, out, RESAMPLE_OUTPUTS, "s_fn", JAVA_FLOAT, total);
        MemorySegment samples = output(a, out, RESAMPLE_OUTPUTS, "samples", JAVA_INT, slots);
        MemorySegment counts = output(a, out, RESAMPLE_OUTPUTS, "sample_counts", JAVA_INT, batch.counts.length);
        int status;
        try {
            status = (int) Native.SESSION_RESAMPLE.invokeExact(session, b, o, r, out);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        calls++;
        Native.check(status);
        return new ResampleResult(batch.counts.clone(), request.samplesPerQuery(), floats(logSRs), floats(sFn),
                samples.toArray(JAVA_INT), counts.toArray(JAVA_INT));
    }

    /** Allocates {@code n} elements for output {@code name} and points the struct at them. */
    private static MemorySegment output(SegmentAllocator a, MemorySegment struct, StructLayout layout, String name,
            ValueLayout element, long n) {
        MemorySegment s = a.allocate(element, Math.max(1, n)).asSlice(0, n * element.byteSize());
        struct.set(ADDRESS, layout.byteOffset(MemoryLayout.PathElement.groupElement(name)), s);
        struct.set(SIZE_T, layout.byteOffset(MemoryLayout.PathElement.groupElement(name + "_len")), n);
        return s;
    }

    private static float[] floats(MemorySegment s) {
        return s == null ? null : s.toArray(JAVA_FLOAT);
    }

    /** A bump allocator over at least {@code bytes} of the session's scratch memory. */
    private SegmentAllocator scratch(long bytes) {
        bytes += 512; // alignment padding and the one-element minimum of empty buffers
        if (scratch == null || scratch.byteSize() < bytes) {
            long size = Math.max(bytes, scratch == null ? 4096 : 2 * scratch.byteSize());
            Arena fresh = Arena.ofShared(); // a session may move between threads
            MemorySegment segment = fresh.allocate(size, 64);
            if (scratchArena != null) {
                scratchArena.close();
            }
            scratchArena = fresh;
            scratch = segment;
        }
        return SegmentAllocator.slicingAllocator(scratch);
    }

    private synchronized MemorySegment handle() {
        if (handle == null) {
            throw new IllegalStateException("the session is closed");
        }
        return handle;
    }

    private static void free(MemorySegment h) {
        try {
            Native.SESSION_FREE.invokeExact(h);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** {@code rrra_session_free} and the scratch memory; idempotent. */
    @Override
    public synchronized void close() {
        if (handle != null) {
            MemorySegment h = handle;
            handle = null;
            try {
                free(h);
            } finally {
                if (scratchArena != null) {
                    scratchArena.close();
                    scratchArena = null;
                    scratch = null;
                }
            }
        }
    }
}
