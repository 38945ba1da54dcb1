package dev.rrra;

import static dev.rrra.Native.BATCH;
import static dev.rrra.Native.SIZE_T;
import static dev.rrra.Native.off;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;

/**
 * Queries and their candidate lists ({@code rrra_batch}): {@code counts[q]} candidates for query
 * {@code q} (0 allowed), the lists of consecutive queries following each other. Candidates come
 * dense (rows of {@code dim} values, {@code stride} values apart) or as row ids into a
 * {@link Corpus}; base scores (the retriever's, one per candidate) are optional. Queries and
 * dense candidates are floats, or F16/BF16 bits where a factory takes a {@link Dtype}; the two
 * may differ.
 *
 * <p>Arrays are held by reference, not copied, until a {@link Session} call. Inputs given as
 * off-heap {@link MemorySegment}s go to the library as they are (zero copy); heap arrays are
 * copied once per call into the session's reusable off-heap scratch memory, because the C ABI
 * takes these pointers inside a struct, where the JVM cannot pass a heap array.
 * Immutable; the {@code with*} methods return a new batch.
 */
public final class Batch {
    final int dim;
    final int[] counts;
    final long total;
    final MemorySegment queries;
    final Dtype queriesDtype;
    final MemorySegment candidates; // null for by-id
    final Dtype candidatesDtype; // F32 for by-id: a corpus has its own
    final long stride;
    final Corpus corpus; // null for dense
    final MemorySegment ids; // null for dense
    final MemorySegment baseScores; // null: sim(q, c) is the base score

    private Batch(int dim, int[] counts, MemorySegment queries, Dtype queriesDtype, MemorySegment candidates,
            Dtype candidatesDtype, long stride, Corpus corpus, MemorySegment ids, MemorySegment baseScores) {
        if (dim <= 0) {
            throw new IllegalArgumentException("dim must be > 0, got " + dim);
        }
        long sum = 0;
        for (int q = 0; q < counts.length; q++) {
            if (counts[q] < 0) {
                throw new IllegalArgumentException("counts[" + q + "] is negative: " + counts[q]);
            }
            sum += counts[q];
        }
        this.dim = dim;
        this.counts = counts;
        this.total = sum;
        this.queries = queries;
        this.queriesDtype = queriesDtype;
        this.candidates = candidates;
        this.candidatesDtype = candidatesDtype;
        this.stride = stride;
        this.corpus = corpus;
        this.ids = ids;
        this.baseScores = baseScores;
    }

    /** Dense candidates from heap arrays: {@code queries} is {@code counts.length × dim}, rows {@code dim} apart. */
    public static Batch dense(int dim, float[] queries, int[] counts, float[] candidates) {
        return dense(dim, Dtype.F32, MemorySegment.ofArray(queries), counts, Dtype.F32,
                MemorySegment.ofArray(candidates), dim);
    }

    /** As {@link #dense(int, float[], int[], float[])} with the candidates' F16 or BF16 bits. */
    public static Batch dense(int dim, float[] queries, int[] counts, Dtype candidatesDtype, short[] candidates) {
        return dense(dim, Dtype.F32, MemorySegment.ofArray(queries), counts, candidatesDtype.requireSixteenBits(),
                MemorySegment.ofArray(candidates), dim);
    }

    /**
     * Dense candidates from segments of floats: off-heap ones are read in place by the library
     * (zero copy). Row {@code i} of the candidates starts at float {@code i · stride}.
     */
    public static Batch dense(int dim, MemorySegment queries, int[] counts, MemorySegment candidates, long stride) {
        return dense(dim, Dtype.F32, queries, counts, Dtype.F32, candidates, stride);
    }

    /**
     * As {@link #dense(int, MemorySegment, int[], MemorySegment, long)} with each segment's
     * values stored as its {@code Dtype}; {@code stride} counts values, not bytes. Heap segments
     * ({@code MemorySegment.ofArray(short[])}) are copied per call like heap arrays.
     */
    public static Batch dense(int dim, Dtype queriesDtype, MemorySegment queries, int[] counts, Dtype candidatesDtype,
            MemorySegment candidates, long stride) {
        return new Batch(dim, counts.clone(), queries, queriesDtype, candidates, candidatesDtype, stride, null, null,
                null);
    }

    /** One query and its {@code candidates.length / query.length} candidates. */
    public static Batch single(float[] query, float[] candidates) {
        if (query.length == 0 || candidates.length % query.length != 0) {
            throw new IllegalArgumentException("candidates length " + candidates.length
                    + " is not a multiple of the query's dimension " + query.length);
        }
        return dense(query.length, query, new int[] {candidates.length / query.length}, candidates);
    }

    /** Candidates as row ids into {@code corpus} (its rows are never copied). */
    public static Batch byId(float[] queries, int[] counts, Corpus corpus, long[] ids) {
        return byId(Dtype.F32, MemorySegment.ofArray(queries), counts, corpus, MemorySegment.ofArray(ids));
    }

    /** Candidates as row ids into {@code corpus}, from segments ({@code ids} holds uint64 values). */
    public static Batch byId(MemorySegment queries, int[] counts, Corpus corpus, MemorySegment ids) {
        return byId(Dtype.F32, queries, counts, corpus, ids);
    }

    /** As {@link #byId(MemorySegment, int[], Corpus, MemorySegment)} with queries stored as {@code queriesDtype}. */
    public static Batch byId(Dtype queriesDtype, MemorySegment queries, int[] counts, Corpus corpus, MemorySegment ids) {
        return new Batch(corpus.dim(), counts.clone(), queries, queriesDtype, null, Dtype.F32, 0, corpus, ids, null);
    }

    /** The same batch with dense candidate rows {@code stride} values apart. */
    public Batch withStride(long stride) {
        if (candidates == null) {
            throw new IllegalStateException("a by-id batch has no stride");
        }
        return new Batch(dim, counts, queries, queriesDtype, candidates, candidatesDtype, stride, corpus, ids,
                baseScores);
    }

    /** The same batch with the retriever's scores, one per candidate. */
    public Batch withBaseScores(float[] scores) {
        return withBaseScores(MemorySegment.ofArray(scores));
    }

    /** The same batch with the retriever's scores (f32), one per candidate; null removes them. */
    public Batch withBaseScores(MemorySegment scores) {
        return new Batch(dim, counts, queries, queriesDtype, candidates, candidatesDtype, stride, corpus, ids, scores);
    }

    public int dim() {
        return dim;
    }

    public int queryCount() {
        return counts.length;
    }

    /** Candidates of all queries together. */
    public long total() {
        return total;
    }

    public int count(int query) {
        return counts[query];
    }

    /** Bytes of scratch memory {@link #write} may take, alignment slack included. */
    long scratchBytes() {
        long bytes = BATCH.byteSize() + 8 + (long) counts.length * 8 + 8;
        for (MemorySegment s : new MemorySegment[] {queries, candidates, ids, baseScores}) {
            if (s != null && !s.isNative()) {
                bytes += s.byteSize() + 8;
            }
        }
        return bytes;
    }

    /** Allocates and fills an {@code rrra_batch} in {@code a}, copying heap inputs there too. */
    MemorySegment write(SegmentAllocator a) {
        MemorySegment b = a.allocate(BATCH).fill((byte) 0);
        b.set(SIZE_T, off(BATCH, "struct_size"), BATCH.byteSize());
        b.set(SIZE_T, off(BATCH, "dim"), dim);
        b.set(SIZE_T, off(BATCH, "n_queries"), counts.length);
        MemorySegment c = a.allocate(SIZE_T, Math.max(1, counts.length));
        for (int q = 0; q < counts.length; q++) {
            c.setAtIndex(SIZE_T, q, counts[q]);
        }
        b.set(ADDRESS, off(BATCH, "candidate_counts"), c);
        put(a, b, "queries", "queries_len", queries, queriesDtype.layout());
        b.set(JAVA_INT, off(BATCH, "queries_dtype"), queriesDtype.code());
        b.set(JAVA_INT, off(BATCH, "candidates_dtype"), candidatesDtype.code());
        if (candidates != null) {
            put(a, b, "candidates", "candidates_len", candidates, candidatesDtype.layout());
            b.set(SIZE_T, off(BATCH, "candidate_stride"), stride);
        } else {
            b.set(ADDRESS, off(BATCH, "corpus"), corpus.handle());
            put(a, b, "candidate_ids", "candidate_ids_len", ids, JAVA_LONG);
        }
        if (baseScores != null) {
            put(a, b, "base_scores", "base_scores_len", baseScores, JAVA_FLOAT);
        }
        return b;
    }

    private static void put(SegmentAllocator a, MemorySegment struct, String pointer, String length,
            MemorySegment data, ValueLayout element) {
        long n = data.byteSize() / element.byteSize();
        MemorySegment p = data;
        if (!data.isNative()) {
            p = a.allocate(element, Math.max(1, n));
            MemorySegment.copy(data, 0, p, 0, data.byteSize());
        }
        struct.set(ADDRESS, off(BATCH, pointer), p);
        struct.set(SIZE_T, off(BATCH, length), n);
    }
}
