package dev.rrra.lucene;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import dev.rrra.BaseTransform;
import dev.rrra.Batch;
import dev.rrra.RerankResult;
import dev.rrra.ScoreOptions;
import dev.rrra.Session;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import org.apache.lucene.index.FieldInfo;
import org.apache.lucene.index.FloatVectorValues;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.ReaderUtil;
import org.apache.lucene.index.VectorSimilarityFunction;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Rescorer;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TopDocs;

/**
 * A Lucene 9.x {@link Rescorer} that reranks a hit list with the RRRA adapter, in ONE native call
 * per hit list.
 *
 * <p><b>Gathering.</b> The hits' vectors are read from the {@code KnnFloatVectorField} named
 * {@code field} through each leaf's forward-only {@link FloatVectorValues} iterator: the hits are
 * sorted by doc id, each leaf's iterator is advanced once through its hits, and every vector is
 * copied straight into one off-heap candidate matrix (rows in first-pass order, so equal scores
 * keep the first-pass order). That matrix, the query and the base scores go to
 * {@link Session#rerankOrder} as off-heap segments, which the library reads in place.
 *
 * <p><b>Base scores.</b> Lucene's KNN scores are not raw similarities but transforms of them
 * (Lucene 9.9: DOT_PRODUCT and COSINE give {@code max((1 + sim) / 2, 0)}, EUCLIDEAN
 * {@code 1 / (1 + d²)}, MAXIMUM_INNER_PRODUCT {@code dot < 0 ? 1 / (1 − dot) : dot + 1}). The
 * adapter file's {@code base_transform}, {@code base_mu} and {@code base_tau} were fitted on the
 * retriever's raw scores, so {@link BaseScore#RAW_SIMILARITY} (the default) undoes Lucene's
 * transform and leaves the file's own transform (usually sigmoid) in charge. See {@link BaseScore}
 * for the other two choices.
 *
 * <p><b>Result.</b> A {@link TopDocs} of at most {@code topN} hits in reranked order, each scored
 * with the library's {@code log s_RR = log s_B + λ · log s_A} (≤ 0, larger is better). The log is
 * used rather than {@code s_RR} itself because it is exactly what the library sorts by, so the
 * TopDocs' scores are consistent with its order, and because {@code s_RR} can underflow a float
 * (a softmax base transform or a large λ), which would tie hits the library tells apart. Take
 * {@code Math.exp(score)} where a score in (0, 1] is needed. Hits without a vector in
 * {@code field} cannot be scored by the adapter: they follow the reranked hits, in first-pass
 * order, with score {@code -Infinity}.
 *
 * <p>One rescorer is one query (like Lucene's {@code QueryRescorer} holds one query). The session
 * must stay open while the rescorer is used; sessions are single-threaded (calls serialise).
 */
public final class RrraRescorer extends Rescorer {

    /** Which base score the library receives for each hit, and which transform it goes through. */
    public enum BaseScore {
        /**
         * Lucene's raw similarity, recovered from the first-pass score by inverting the field's
         * {@link VectorSimilarityFunction} (DOT_PRODUCT/COSINE: {@code 2s − 1}; EUCLIDEAN:
         * {@code −d² = 1 − 1/s}; MAXIMUM_INNER_PRODUCT: the dot product), then the model file's
         * own base transform. Right when the first pass is a KNN query on {@code field}: it is the
         * score the adapter's base_mu/base_tau were fitted on.
         */
        RAW_SIMILARITY,
        /**
         * Lucene's score as it is, with the base transform overridden to {@code identity}
         * ({@code s_B = score}): Lucene's KNN scores already lie in (0, 1]. Works for any first
         * pass whose scores are positive (BM25, hybrid); a score ≤ 0 is raised to
         * {@link Float#MIN_NORMAL} (log s_B ≈ −87) rather than failing the call.
         */
        LUCENE_SCORE,
        /**
         * No base scores: the library uses {@code sim(q, c)} of the model's similarity on the
         * stored vectors, through the file's base transform. Ignores the first-pass scores.
         */
        ADAPTER_SIMILARITY
    }

    private final Session session;
    private final String field;
    private final float[] query;
    private final BaseScore baseScore;
    private final ScoreOptions options;

    /** {@link BaseScore#RAW_SIMILARITY} with the model's own score settings. */
    public RrraRescorer(Session session, String field, float[] queryVector) {
        this(session, field, queryVector, BaseScore.RAW_SIMILARITY, ScoreOptions.DEFAULTS);
    }

    /**
     * @param options further overrides (λ, base_mu, ...); under {@link BaseScore#LUCENE_SCORE} the
     *     base transform is forced to identity on top of them.
     */
    public RrraRescorer(Session session, String field, float[] queryVector, BaseScore baseScore,
            ScoreOptions options) {
        if (queryVector.length != session.dim()) {
            throw new IllegalArgumentException("query vector has " + queryVector.length
                    + " dimensions, the model " + session.dim());
        }
        this.session = session;
        this.field = field;
        this.query = queryVector.clone();
        this.baseScore = baseScore;
        this.options = baseScore == BaseScore.LUCENE_SCORE ? options.withBaseTransform(BaseTransform.IDENTITY) : options;
    }

    public BaseScore baseScore() {
        return baseScore;
    }

    @Override
    public TopDocs rescore(IndexSearcher searcher, TopDocs firstPass, int topN) throws IOException {
        ScoreDoc[] hits = firstPass.scoreDocs;
        int k = hits.length;
        int dim = query.length;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment rows = arena.allocate(JAVA_FLOAT, Math.max(1, (long) k * dim));
            VectorSimilarityFunction[] similarity = new VectorSimilarityFunction[k];
            boolean[] found = gather(searcher, hits, rows, similarity);

            // Compact the rows that have a vector (in first-pass order) and build their base scores.
            int[] position = new int[k]; // reranked row -> index into hits
            int m = 0;
            MemorySegment base = arena.allocate(JAVA_FLOAT, Math.max(1, k));
            for (int i = 0; i < k; i++) {
                if (!found[i]) {
                    continue;
                }
                if (m != i) {
                    MemorySegment.copy(rows, (long) i * dim * Float.BYTES, rows, (long) m * dim * Float.BYTES,
                            (long) dim * Float.BYTES);
                }
                base.setAtIndex(JAVA_FLOAT, m, baseScore(hits[i].score, similarity[i]));
                position[m++] = i;
            }

            ScoreDoc[] out = new ScoreDoc[Math.min(Math.max(topN, 0), k)];
            int filled = 0;
            if (m > 0) {
                MemorySegment q = arena.allocate(JAVA_FLOAT, dim);
                MemorySegment.copy(query, 0, q, JAVA_FLOAT, 0, dim);
                Batch batch = Batch.dense(dim, q, new int[] {m}, rows.asSlice(0, (long) m * dim * Float.BYTES), dim);
                if (baseScore != BaseScore.ADAPTER_SIMILARITY) {
                    batch = batch.withBaseScores(base.asSlice(0, (long) m * Float.BYTES));
                }
                RerankResult r = session.rerankOrder(batch, options); // the one native call
                for (int j = 0; j < m && filled < out.length; j++) {
                    int row = r.order()[j];
                    ScoreDoc hit = hits[position[row]];
                    out[filled++] = new ScoreDoc(hit.doc, r.logSRr()[row], hit.shardIndex);
                }
            }
            for (int i = 0; i < k && filled < out.length; i++) {
                if (!found[i]) {
                    out[filled++] = new ScoreDoc(hits[i].doc, Float.NEGATIVE_INFINITY, hits[i].shardIndex);
                }
            }
            return new TopDocs(firstPass.totalHits, out);
        }
    }

    /**
     * Copies hit {@code i}'s vector to row {@code i} of {@code rows}, visiting the hits in doc-id
     * order so each leaf's forward-only iterator is advanced, never rewound. Returns which hits
     * had a vector; records each hit's field similarity function.
     */
    private boolean[] gather(IndexSearcher searcher, ScoreDoc[] hits, MemorySegment rows,
            VectorSimilarityFunction[] similarity) throws IOException {
        int k = hits.length;
        int dim = query.length;
        long[] byDoc = new long[k];
        for (int i = 0; i < k; i++) {
            byDoc[i] = ((long) hits[i].doc << 32) | i;
        }
        Arrays.sort(byDoc);
        boolean[] found = new boolean[k];
        List<LeafReaderContext> leaves = searcher.getIndexReader().leaves();
        LeafReaderContext leaf = null;
        FloatVectorValues values = null;
        VectorSimilarityFunction function = null;
        for (long key : byDoc) {
            int doc = (int) (key >>> 32);
            int i = (int) key;
            if (leaf == null || doc >= leaf.docBase + leaf.reader().maxDoc()) {
                leaf = leaves.get(ReaderUtil.subIndex(doc, leaves));
                values = leaf.reader().getFloatVectorValues(field);
                FieldInfo info = leaf.reader().getFieldInfos().fieldInfo(field);
                function = info == null ? null : info.getVectorSimilarityFunction();
                if (values != null && values.dimension() != dim) {
                    throw new IllegalArgumentException("field '" + field + "' holds " + values.dimension()
                            + "-dimensional vectors, the model expects " + dim);
                }
            }
            if (values == null) {
                continue;
            }
            int target = doc - leaf.docBase;
            int at = values.docID();
            if (at < target) {
                at = values.advance(target);
            }
            if (at == target) {
                float[] v = values.vectorValue(); // may be a reused buffer: copy now
                MemorySegment.copy(v, 0, rows, JAVA_FLOAT, (long) i * dim * Float.BYTES, dim);
                found[i] = true;
                similarity[i] = function;
            }
        }
        return found;
    }

    private float baseScore(float luceneScore, VectorSimilarityFunction function) {
        switch (baseScore) {
            case LUCENE_SCORE:
                return luceneScore > 0 ? luceneScore : Float.MIN_NORMAL;
            case RAW_SIMILARITY:
                return rawSimilarity(luceneScore, function);
            default:
                return 0; // unused: ADAPTER_SIMILARITY passes no base scores
        }
    }

    /** Inverts Lucene 9.9's score transform for {@code function}. */
    static float rawSimilarity(float score, VectorSimilarityFunction function) {
        if (function == null) {
            throw new IllegalStateException("no vector similarity function for the field");
        }
        switch (function) {
            case DOT_PRODUCT:
            case COSINE:
                return 2 * score - 1;
            case EUCLIDEAN:
                return 1 - 1 / score; // −d²
            case MAXIMUM_INNER_PRODUCT:
                return score < 1 ? 1 - 1 / score : score - 1;
            default:
                throw new IllegalStateException("unknown vector similarity " + function);
        }
    }

    /**
     * Scores one document alone: log s_RR with the first-pass explanation's value as its base
     * score. Equal to the document's rescored score under identity and sigmoid base transforms;
     * under softmax the base score depends on the whole hit list, which an explanation does not see.
     */
    @Override
    public Explanation explain(IndexSearcher searcher, Explanation firstPass, int docID) throws IOException {
        ScoreDoc hit = new ScoreDoc(docID, firstPass.getValue().floatValue());
        int dim = query.length;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment row = arena.allocate(JAVA_FLOAT, dim);
            VectorSimilarityFunction[] similarity = new VectorSimilarityFunction[1];
            if (!gather(searcher, new ScoreDoc[] {hit}, row, similarity)[0]) {
                return Explanation.noMatch("no vector in field '" + field + "'", firstPass);
            }
            MemorySegment q = arena.allocate(JAVA_FLOAT, dim);
            MemorySegment.copy(query, 0, q, JAVA_FLOAT, 0, dim);
            Batch batch = Batch.dense(dim, q, new int[] {1}, row, dim);
            float b = 0;
            if (baseScore != BaseScore.ADAPTER_SIMILARITY) {
                b = baseScore(hit.score, similarity[0]);
                batch = batch.withBaseScores(new float[] {b});
            }
            RerankResult r = session.rerank(batch, options);
            return Explanation.match(r.logSRr()[0], "rrra log s_RR = log s_B + λ·log s_A",
                    firstPass,
                    baseScore == BaseScore.ADAPTER_SIMILARITY
                            ? Explanation.match(0, "no base score given: rrra used sim(q, c) (" + baseScore + ")")
                            : Explanation.match(b, "base score given to rrra (" + baseScore + ")"),
                    Explanation.match(r.sA()[0], "s_A, adapter relevance"),
                    Explanation.match(r.sFn()[0], "s_FN, false-negative probability"));
        }
    }
}
