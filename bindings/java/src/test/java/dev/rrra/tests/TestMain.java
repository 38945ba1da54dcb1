package dev.rrra.tests;

import dev.rrra.Activation;
import dev.rrra.BaseTransform;
import dev.rrra.Batch;
import dev.rrra.Corpus;
import dev.rrra.CpuKernel;
import dev.rrra.Dtype;
import dev.rrra.Engine;
import dev.rrra.HeaderCheck;
import dev.rrra.LayoutCheck;
import dev.rrra.Model;
import dev.rrra.ModelInfo;
import dev.rrra.Precision;
import dev.rrra.RerankResult;
import dev.rrra.ResampleRequest;
import dev.rrra.ResampleResult;
import dev.rrra.Rrra;
import dev.rrra.RrraException;
import dev.rrra.ScoreOptions;
import dev.rrra.Session;
import dev.rrra.SessionOptions;
import dev.rrra.Similarity;
import dev.rrra.Status;
import dev.rrra.lucene.RrraRescorer;
import dev.rrra.lucene.RrraRescorer.BaseScore;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.KnnFloatVectorField;
import org.apache.lucene.document.StoredField;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.index.NoMergePolicy;
import org.apache.lucene.index.VectorSimilarityFunction;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.KnnFloatVectorQuery;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.store.ByteBuffersDirectory;

/**
 * The Java binding's tests, without a test framework: each check runs, failures are printed, and
 * the last line reads "java: N passed, M failed"; the exit status is non-zero on any failure.
 * Needs the library (-Drrra.library=...) and, for the layout check, -Drrra.test.layouts=FILE
 * written by src/test/c/layouts.c.
 */
public final class TestMain {
    interface Check {
        void run() throws Exception;
    }

    private static final List<String> failures = new ArrayList<>();
    private static int passed;

    // The test adapter: d = 16, h = 8, tanh, dot, sigmoid base transform with fitted-looking settings.
    static final int D = 16;
    static final int H = 8;
    static final double ADAPTER_MU = 0.05, ADAPTER_TAU = 0.8, BASE_MU = 0.1, BASE_TAU = 0.5, LAMBDA = 1.5,
            GAMMA = 0.75;
    static final Adapter ADAPTER = new Adapter(D, H, 20250811)
            .meta("activation", "tanh")
            .meta("similarity", "dot")
            .meta("adapter_mu", "0.05")
            .meta("adapter_tau", "0.8")
            .meta("base_transform", "sigmoid")
            .meta("base_mu", "0.1")
            .meta("base_tau", "0.5")
            .meta("lambda_rr", "1.5")
            .meta("gamma_rs", "0.75")
            .meta("encoder", "test-encoder/16d");

    static Model model;
    static Session session;

    public static void main(String[] args) throws Exception {
        System.out.println("rrra " + Rrra.version() + " from " + Rrra.libraryPath() + ", Java " + Runtime.version()
                + ", Lucene " + org.apache.lucene.util.Version.LATEST);
        model = Model.loadBytes(ADAPTER.bytes());
        session = Session.open(model);
        System.out.println("engine " + session.engine() + ": " + session.engineReason());

        run("version and status names", TestMain::versionAndStatusNames);
        run("constants and structs match include/rrra.h", TestMain::headerConstants);
        run("struct layouts equal the C compiler's", TestMain::layouts);
        run("model info from bytes and from a file", TestMain::modelInfo);
        run("bad model bytes raise INVALID_MODEL naming the problem", TestMain::badModels);
        run("missing file raises IO", TestMain::missingFile);
        run("one query matches the float64 reference", TestMain::singleQueryReference);
        run("no base scores: sim(q, c) is the base score", TestMain::noBaseScores);
        run("ragged batch equals one call per query", TestMain::raggedBatch);
        run("candidate stride", TestMain::stride);
        run("off-heap segments in place, one native call per batch", TestMain::offHeapSegments);
        run("by-id corpus equals dense rows", TestMain::byIdCorpus);
        run("score option overrides", TestMain::scoreOverrides);
        run("non-finite input names the query and position", TestMain::nonFinite);
        run("f16 and bf16 inputs score exactly as their values widened to floats", TestMain::narrowDtypes);
        run("f16/bf16: non-finite values name the position; misaligned or mistyped data is refused",
                TestMain::narrowErrors);
        run("dimension mismatch", TestMain::dimensionMismatch);
        run("sampler known answers (tests/parity.rs SAMPLER_KATS)", TestMain::samplerKats);
        run("resample: reference scores, determinism, same draws as the sampler", TestMain::resample);
        run("engines and threads agree", TestMain::enginesAndThreads);
        run("closed handles", TestMain::closedHandles);
        run("lucene: rescorer equals the direct rerank call (3 base-score modes)", TestMain::luceneRescorer);
        run("lucene: EUCLIDEAN field, hits without a vector, explain", TestMain::luceneEdgeCases);

        session.close();
        model.close();
        for (String f : failures) {
            System.out.println("FAILED " + f);
        }
        System.out.println("java: " + passed + " passed, " + failures.size() + " failed");
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    private static void run(String name, Check check) {
        try {
            check.run();
            passed++;
            System.out.println("ok   " + name);
        } catch (Throwable t) {
            failures.add(name + ": " + t);
            System.out.println("FAIL " + name);
            t.printStackTrace(System.out);
        }
    }

    // ---------------------------------------------------------------- assertions

    static void check(boolean ok, String message) {
        if (!ok) {
            throw new AssertionError(message);
        }
    }

    static void close(double got, double want, double tol, String what) {
        if (!(Math.abs(got - want) <= tol)) {
            throw new AssertionError(what + ": got " + got + ", want " + want + " (tolerance " + tol + ")");
        }
    }

    static RrraException expect(Status status, Check body, String... mentions) throws Exception {
        try {
            body.run();
        } catch (RrraException e) {
            check(e.status() == status, "expected " + status + ", got " + e.status() + ": " + e.getMessage());
            check(e.statusName().equals("RRRA_STATUS_" + status.name()), "status name " + e.statusName());
            check(!e.nativeMessage().isEmpty(), "empty rrra_last_error message");
            for (String m : mentions) {
                check(e.nativeMessage().contains(m), "message '" + e.nativeMessage() + "' does not mention '" + m + "'");
            }
            return e;
        }
        throw new AssertionError("expected RrraException(" + status + ")");
    }

    // ---------------------------------------------------------------- data

    static float[] randoms(SplittableRandom rng, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (rng.nextGaussian() * scale);
        }
        return v;
    }

    static float[] unit(SplittableRandom rng, int d) {
        float[] v = randoms(rng, d, 1);
        double n = 0;
        for (float x : v) {
            n += x * x;
        }
        n = Math.sqrt(n);
        for (int i = 0; i < d; i++) {
            v[i] = (float) (v[i] / n);
        }
        return v;
    }

    static Reference reference(float[] q, int qOff, float[] c, int cOff, Float base, String transform, double lambda) {
        return new Reference(ADAPTER, "tanh", false, ADAPTER_MU, ADAPTER_TAU, transform, BASE_MU, BASE_TAU, lambda,
                GAMMA, q, qOff, c, cOff, base);
    }

    /** Stable argsort, descending. */
    static int[] argsortDesc(float[] v) {
        Integer[] idx = new Integer[v.length];
        for (int i = 0; i < v.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, (a, b) -> Float.compare(v[b], v[a]));
        return Arrays.stream(idx).mapToInt(Integer::intValue).toArray();
    }

    static float[] slice(float[] v, int from, int n) {
        return Arrays.copyOfRange(v, from, from + n);
    }

    // ---------------------------------------------------------------- binding tests

    static Path header() {
        String file = System.getProperty("rrra.test.header");
        if (file == null || file.isEmpty()) {
            throw new AssertionError("-Drrra.test.header (include/rrra.h) is not set");
        }
        return Path.of(file);
    }

    static void versionAndStatusNames() throws Exception {
        String promised = HeaderCheck.headerVersionString(header());
        check(Rrra.version().equals(promised), "library " + Rrra.version() + " vs rrra.h " + promised);
        check(Rrra.statusName(1005).equals("RRRA_STATUS_INVALID_MODEL"), Rrra.statusName(1005));
        check(Rrra.statusName(0).equals("RRRA_STATUS_OK"), Rrra.statusName(0));
        check(Rrra.statusName(4242).equals("RRRA_STATUS_UNKNOWN"), Rrra.statusName(4242));
        for (Status s : Status.values()) {
            if (s != Status.UNKNOWN) {
                check(Rrra.statusName(s.code()).equals("RRRA_STATUS_" + s.name()), s + " vs " + Rrra.statusName(s.code()));
            }
        }
    }

    static void headerConstants() throws Exception {
        int[] n = new int[1];
        List<String> problems = HeaderCheck.compare(header(), n);
        check(problems.isEmpty(), String.join("; ", problems));
        check(n[0] > 25, "only " + n[0] + " header facts compared");
    }

    static void layouts() throws Exception {
        String file = System.getProperty("rrra.test.layouts");
        if (file == null || file.isEmpty()) {
            throw new AssertionError("-Drrra.test.layouts is not set (test.sh compiles src/test/c/layouts.c; needs cc)");
        }
        int[] n = new int[1];
        List<String> problems = LayoutCheck.compare(Path.of(file), n);
        check(problems.isEmpty(), String.join("; ", problems));
        check(n[0] > 60, "only " + n[0] + " layout facts compared");
    }

    static void modelInfo() throws Exception {
        Path file = Files.createTempFile("rrra-java-", ".safetensors");
        try {
            Files.write(file, ADAPTER.bytes());
            try (Model fromFile = Model.loadFile(file)) {
                for (ModelInfo info : new ModelInfo[] {model.info(), fromFile.info()}) {
                    check(info.dim() == D && info.hidden() == H, "dims " + info);
                    check(info.parameterCount() == ADAPTER.parameterCount(), "parameter count " + info);
                    check(info.activation() == Activation.TANH, "activation " + info);
                    check(info.similarity() == Similarity.DOT, "similarity " + info);
                    check(info.baseTransform() == BaseTransform.SIGMOID, "base transform " + info);
                    close(info.adapterMu(), ADAPTER_MU, 0, "adapter_mu");
                    close(info.adapterTau(), ADAPTER_TAU, 0, "adapter_tau");
                    close(info.baseMu(), BASE_MU, 0, "base_mu");
                    close(info.baseTau(), BASE_TAU, 0, "base_tau");
                    close(info.lambdaRr(), LAMBDA, 0, "lambda_rr");
                    close(info.gammaRs(), GAMMA, 0, "gamma_rs");
                    check(info.encoder().equals("test-encoder/16d"), "encoder '" + info.encoder() + "'");
                }
            }
        } finally {
            Files.deleteIfExists(file);
        }
        // The same bytes from an off-heap segment.
        try (Arena arena = Arena.ofConfined()) {
            byte[] bytes = ADAPTER.bytes();
            MemorySegment seg = arena.allocate(bytes.length);
            MemorySegment.copy(bytes, 0, seg, ValueLayout.JAVA_BYTE, 0, bytes.length);
            try (Model m = Model.loadBytes(seg)) {
                check(m.info().equals(model.info()), "off-heap load differs: " + m.info());
            }
        }
    }

    static void badModels() throws Exception {
        expect(Status.INVALID_MODEL, () -> Model.loadBytes("definitely not safetensors".getBytes()).close());
        expect(Status.INVALID_MODEL, () -> Model.loadBytes(new byte[0]).close());
        byte[] good = ADAPTER.bytes();
        expect(Status.INVALID_MODEL, () -> Model.loadBytes(Arrays.copyOf(good, good.length - 3)).close());
        expect(Status.INVALID_MODEL, () -> Model.loadBytes(ADAPTER.bytes(Set.of("classifier.bias"))).close(),
                "classifier.bias");
        Adapter swish = new Adapter(D, H, 1).meta("activation", "swish");
        expect(Status.INVALID_MODEL, () -> Model.loadBytes(swish.bytes()).close(), "activation", "swish");
        Adapter badTau = new Adapter(D, H, 1).meta("base_tau", "0");
        expect(Status.INVALID_MODEL, () -> Model.loadBytes(badTau.bytes()).close(), "base_tau");
        Adapter nan = new Adapter(D, H, 1);
        nan.fc2W[5] = Float.NaN;
        expect(Status.INVALID_MODEL, () -> Model.loadBytes(nan.bytes()).close(), "fc2.weight");
    }

    static void missingFile() throws Exception {
        expect(Status.IO, () -> Model.loadFile(Path.of("/nonexistent/rrra/adapter.safetensors")).close());
    }

    static void singleQueryReference() {
        SplittableRandom rng = new SplittableRandom(1);
        int k = 37;
        float[] q = randoms(rng, D, 0.5);
        float[] c = randoms(rng, k * D, 0.5);
        float[] b = randoms(rng, k, 1.0);
        RerankResult r = session.rerank(Batch.single(q, c).withBaseScores(b));
        check(r.logSRr().length == k && r.sA().length == k && r.sFn().length == k && r.classProbs().length == 4 * k
                && r.order().length == k, "output lengths");
        for (int i = 0; i < k; i++) {
            Reference ref = reference(q, 0, c, i * D, b[i], "sigmoid", LAMBDA);
            close(r.logSRr()[i], ref.logSRr, 1e-4 * Math.max(1, Math.abs(ref.logSRr)), "log_s_rr[" + i + "]");
            close(r.sA()[i], ref.sA, 1e-5, "s_a[" + i + "]");
            close(r.sFn()[i], ref.sFn, 1e-5, "s_fn[" + i + "]");
            for (int t = 0; t < 4; t++) {
                close(r.classProbs()[4 * i + t], ref.probs[t], 1e-5, "class_probs[" + i + "][" + t + "]");
            }
        }
        check(Arrays.equals(r.order(), argsortDesc(r.logSRr())), "order is not the stable sort of log_s_rr");
    }

    static void noBaseScores() {
        SplittableRandom rng = new SplittableRandom(2);
        int k = 9;
        float[] q = randoms(rng, D, 0.5);
        float[] c = randoms(rng, k * D, 0.5);
        RerankResult r = session.rerank(Batch.single(q, c));
        for (int i = 0; i < k; i++) {
            Reference ref = reference(q, 0, c, i * D, null, "sigmoid", LAMBDA);
            close(r.logSRr()[i], ref.logSRr, 1e-4 * Math.max(1, Math.abs(ref.logSRr)), "log_s_rr[" + i + "]");
        }
    }

    static void raggedBatch() {
        SplittableRandom rng = new SplittableRandom(3);
        int[] counts = {3, 0, 5, 1, 12};
        int total = Arrays.stream(counts).sum();
        float[] qs = randoms(rng, counts.length * D, 0.5);
        float[] cs = randoms(rng, total * D, 0.5);
        float[] bs = randoms(rng, total, 1);
        RerankResult all = session.rerank(Batch.dense(D, qs, counts, cs).withBaseScores(bs));
        int off = 0;
        for (int q = 0; q < counts.length; q++) {
            int k = counts[q];
            check(all.offset(q) == off, "offset(" + q + ")");
            if (k > 0) {
                RerankResult one = session.rerank(Batch.single(slice(qs, q * D, D), slice(cs, off * D, k * D))
                        .withBaseScores(slice(bs, off, k)));
                check(Arrays.equals(one.order(), all.order(q)), "order of query " + q);
                for (int i = 0; i < k; i++) {
                    close(all.logSRr()[off + i], one.logSRr()[i], 1e-6, "query " + q + " log_s_rr[" + i + "]");
                    close(all.sFn()[off + i], one.sFn()[i], 1e-6, "query " + q + " s_fn[" + i + "]");
                }
            }
            off += k;
        }
        RerankResult empty = session.rerank(Batch.dense(D, new float[0], new int[0], new float[0]));
        check(empty.order().length == 0, "empty batch");
    }

    static void stride() {
        SplittableRandom rng = new SplittableRandom(4);
        int k = 6, stride = D + 5;
        float[] q = randoms(rng, D, 0.5);
        float[] dense = randoms(rng, k * D, 0.5);
        float[] strided = new float[(k - 1) * stride + D];
        Arrays.fill(strided, Float.NaN); // the gaps must never be read
        for (int i = 0; i < k; i++) {
            System.arraycopy(dense, i * D, strided, i * stride, D);
        }
        RerankResult a = session.rerank(Batch.single(q, dense));
        RerankResult b = session.rerank(Batch.dense(D, q, new int[] {k}, strided).withStride(stride));
        check(Arrays.equals(a.logSRr(), b.logSRr()) && Arrays.equals(a.order(), b.order()), "strided differs");
    }

    static void offHeapSegments() {
        SplittableRandom rng = new SplittableRandom(5);
        int[] counts = {4, 7};
        float[] qs = randoms(rng, 2 * D, 0.5);
        float[] cs = randoms(rng, 11 * D, 0.5);
        float[] bs = randoms(rng, 11, 1);
        RerankResult heap = session.rerank(Batch.dense(D, qs, counts, cs).withBaseScores(bs));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment q = arena.allocateFrom(ValueLayout.JAVA_FLOAT, qs);
            MemorySegment c = arena.allocateFrom(ValueLayout.JAVA_FLOAT, cs);
            MemorySegment b = arena.allocateFrom(ValueLayout.JAVA_FLOAT, bs);
            long before = session.nativeCalls();
            RerankResult off = session.rerank(Batch.dense(D, q, counts, c, D).withBaseScores(b));
            check(session.nativeCalls() == before + 1, "one native call per batch");
            check(Arrays.equals(heap.logSRr(), off.logSRr()) && Arrays.equals(heap.order(), off.order()),
                    "off-heap differs from heap");
        }
    }

    static void byIdCorpus() {
        SplittableRandom rng = new SplittableRandom(6);
        int rows = 50;
        float[] matrix = randoms(rng, rows * D, 0.5);
        int[] counts = {5, 0, 8};
        long[] ids = new long[13];
        float[] gathered = new float[13 * D];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = rng.nextInt(rows);
            System.arraycopy(matrix, (int) ids[i] * D, gathered, i * D, D);
        }
        float[] qs = randoms(rng, 3 * D, 0.5);
        float[] bs = randoms(rng, 13, 1);
        RerankResult dense = session.rerank(Batch.dense(D, qs, counts, gathered).withBaseScores(bs));
        try (Corpus corpus = Corpus.copyOf(matrix, D)) {
            check(corpus.rows() == rows, "rows");
            RerankResult byId = session.rerank(Batch.byId(qs, counts, corpus, ids).withBaseScores(bs));
            check(Arrays.equals(dense.logSRr(), byId.logSRr()) && Arrays.equals(dense.order(), byId.order()),
                    "by-id differs from dense");
            long[] bad = ids.clone();
            bad[3] = rows; // one past the end
            expect(Status.INVALID_ARGUMENT, () -> session.rerank(Batch.byId(qs, counts, corpus, bad)));
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        // Caller-owned off-heap rows with a stride, no copy.
        try (Arena arena = Arena.ofShared()) {
            int stride = D + 3;
            MemorySegment data = arena.allocate(ValueLayout.JAVA_FLOAT, (long) (rows - 1) * stride + D);
            for (int r = 0; r < rows; r++) {
                MemorySegment.copy(matrix, r * D, data, ValueLayout.JAVA_FLOAT, (long) r * stride * 4, D);
            }
            try (Corpus corpus = Corpus.wrap(data, rows, D, stride)) {
                MemorySegment idSeg = arena.allocateFrom(ValueLayout.JAVA_LONG, ids);
                RerankResult byId = session.rerank(
                        Batch.byId(arena.allocateFrom(ValueLayout.JAVA_FLOAT, qs), counts, corpus, idSeg)
                                .withBaseScores(bs));
                check(Arrays.equals(dense.logSRr(), byId.logSRr()), "wrapped corpus differs from dense");
            }
        }
    }

    static void scoreOverrides() throws Exception {
        SplittableRandom rng = new SplittableRandom(7);
        int k = 12;
        float[] q = randoms(rng, D, 0.5);
        float[] c = randoms(rng, k * D, 0.5);
        float[] b = new float[k];
        for (int i = 0; i < k; i++) {
            b[i] = (float) (0.05 + rng.nextDouble());
        }
        RerankResult zero = session.rerank(Batch.single(q, c).withBaseScores(b), ScoreOptions.DEFAULTS.withLambdaRr(0));
        RerankResult identity = session.rerank(Batch.single(q, c).withBaseScores(b),
                ScoreOptions.DEFAULTS.withBaseTransform(BaseTransform.IDENTITY).withLambdaRr(0.5));
        for (int i = 0; i < k; i++) {
            Reference z = reference(q, 0, c, i * D, b[i], "sigmoid", 0);
            close(zero.logSRr()[i], z.logSRr, 1e-5, "λ=0 log_s_rr[" + i + "]");
            Reference id = reference(q, 0, c, i * D, b[i], "identity", 0.5);
            close(identity.logSRr()[i], id.logSRr, 1e-4, "identity log_s_rr[" + i + "]");
        }
        check(Arrays.equals(zero.order(), argsortDesc(b)), "λ = 0 must order by the base score");
        b[4] = -0.25f;
        expect(Status.INVALID_ARGUMENT, () -> session.rerank(Batch.single(q, c).withBaseScores(b),
                ScoreOptions.DEFAULTS.withBaseTransform(BaseTransform.IDENTITY)));
        expect(Status.INVALID_ARGUMENT, () -> session.rerank(Batch.single(q, c), ScoreOptions.DEFAULTS.withBaseTau(0)));
        expect(Status.INVALID_ARGUMENT, () -> session.rerank(Batch.single(q, c), ScoreOptions.DEFAULTS.withLambdaRr(-1)));
    }

    static void nonFinite() throws Exception {
        SplittableRandom rng = new SplittableRandom(8);
        int[] counts = {3, 4};
        float[] qs = randoms(rng, 2 * D, 0.5);
        float[] cs = randoms(rng, 7 * D, 0.5);
        float[] bs = randoms(rng, 7, 1);
        float[] badC = cs.clone();
        badC[(3 + 2) * D + 5] = Float.NaN; // query 1, position 2, column 5
        expect(Status.NON_FINITE_INPUT, () -> session.rerank(Batch.dense(D, qs, counts, badC)), "candidates",
                "query 1", "position 2");
        float[] badQ = qs.clone();
        badQ[D + 3] = Float.POSITIVE_INFINITY;
        expect(Status.NON_FINITE_INPUT, () -> session.rerank(Batch.dense(D, badQ, counts, cs)), "queries", "query 1");
        float[] badB = bs.clone();
        badB[1] = Float.NaN;
        expect(Status.NON_FINITE_INPUT, () -> session.rerank(Batch.dense(D, qs, counts, cs).withBaseScores(badB)),
                "base_scores", "query 0", "position 1");
        // The sampler on its own names the position too.
        expect(Status.NON_FINITE_INPUT,
                () -> Rrra.sampleNegatives(new float[] {-1, Float.NaN, -2}, null, 1, 0, 2), "position 1");
    }

    /** The 16-bit bits of {@code v}: f16 rounded to nearest, bf16 truncated (either is a valid input). */
    static short[] narrow(Dtype t, float[] v) {
        short[] bits = new short[v.length];
        for (int i = 0; i < v.length; i++) {
            bits[i] = t == Dtype.F16 ? Float.floatToFloat16(v[i]) : (short) (Float.floatToRawIntBits(v[i]) >>> 16);
        }
        return bits;
    }

    static float[] widen(Dtype t, short[] bits) {
        float[] v = new float[bits.length];
        for (int i = 0; i < bits.length; i++) {
            v[i] = t == Dtype.F16 ? Float.float16ToFloat(bits[i]) : Float.intBitsToFloat((bits[i] & 0xFFFF) << 16);
        }
        return v;
    }

    static void same(RerankResult want, RerankResult got, String what) {
        check(Arrays.equals(want.logSRr(), got.logSRr()) && Arrays.equals(want.sA(), got.sA())
                && Arrays.equals(want.sFn(), got.sFn()) && Arrays.equals(want.classProbs(), got.classProbs())
                && Arrays.equals(want.order(), got.order()), what + " differs from the widened floats");
    }

    static void narrowDtypes() {
        SplittableRandom rng = new SplittableRandom(17);
        int[] counts = {5, 0, 9};
        int total = 14, rows = 20, stride = D + 3;
        float[] qs = randoms(rng, counts.length * D, 0.5);
        float[] cs = randoms(rng, total * D, 0.5);
        float[] matrix = randoms(rng, rows * D, 0.5);
        float[] bs = randoms(rng, total, 1);
        long[] ids = new long[total];
        for (int i = 0; i < total; i++) {
            ids[i] = rng.nextInt(rows);
        }
        for (Dtype t : new Dtype[] {Dtype.F16, Dtype.BF16}) {
            short[] qBits = narrow(t, qs), cBits = narrow(t, cs), mBits = narrow(t, matrix);
            float[] qWide = widen(t, qBits), cWide = widen(t, cBits), mWide = widen(t, mBits);
            RerankResult want = session.rerank(Batch.dense(D, qWide, counts, cWide).withBaseScores(bs));
            same(want, session.rerank(Batch.dense(D, t, MemorySegment.ofArray(qBits), counts, t,
                    MemorySegment.ofArray(cBits), D).withBaseScores(bs)), t + " queries and candidates");
            // f32 queries against 16-bit candidates, the usual mix.
            same(session.rerank(Batch.dense(D, qs, counts, cWide).withBaseScores(bs)),
                    session.rerank(Batch.dense(D, qs, counts, t, cBits).withBaseScores(bs)), "f32 queries, " + t);
            // Off-heap strided candidates: the stride counts values, not bytes.
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment strided = arena.allocate(ValueLayout.JAVA_SHORT, (long) (total - 1) * stride + D);
                for (int i = 0; i < total; i++) {
                    MemorySegment.copy(cBits, i * D, strided, ValueLayout.JAVA_SHORT, 2L * i * stride, D);
                }
                same(want, session.rerank(Batch.dense(D, t, MemorySegment.ofArray(qBits), counts, t, strided, stride)
                        .withBaseScores(bs)), t + " strided off-heap");
            }
            // By id: a copied corpus with f32 queries, a wrapped strided one with 16-bit queries.
            float[] gathered = new float[total * D];
            for (int i = 0; i < total; i++) {
                System.arraycopy(mWide, (int) ids[i] * D, gathered, i * D, D);
            }
            try (Corpus corpus = Corpus.copyOf(t, mBits, D); Arena arena = Arena.ofShared()) {
                check(corpus.dtype() == t && corpus.rows() == rows, "corpus " + corpus.dtype() + " " + corpus.rows());
                same(session.rerank(Batch.dense(D, qs, counts, gathered)),
                        session.rerank(Batch.byId(qs, counts, corpus, ids)), t + " corpus");
                MemorySegment data = arena.allocate(ValueLayout.JAVA_SHORT, (long) (rows - 1) * stride + D);
                for (int r = 0; r < rows; r++) {
                    MemorySegment.copy(mBits, r * D, data, ValueLayout.JAVA_SHORT, 2L * r * stride, D);
                }
                try (Corpus wrapped = Corpus.wrap(t, data, rows, D, stride)) {
                    same(session.rerank(Batch.dense(D, qWide, counts, gathered)),
                            session.rerank(Batch.byId(t, MemorySegment.ofArray(qBits), counts, wrapped,
                                    MemorySegment.ofArray(ids))), t + " wrapped corpus");
                }
            }
        }
    }

    static void narrowErrors() throws Exception {
        SplittableRandom rng = new SplittableRandom(18);
        int[] counts = {3, 4};
        float[] qs = randoms(rng, 2 * D, 0.5);
        short[] cBits = narrow(Dtype.F16, randoms(rng, 7 * D, 0.5));
        for (short bad : new short[] {(short) 0x7E00, (short) 0xFC00}) { // NaN, −Inf
            short[] c = cBits.clone();
            c[(3 + 2) * D + 5] = bad; // query 1, position 2, column 5
            expect(Status.NON_FINITE_INPUT, () -> session.rerank(Batch.dense(D, qs, counts, Dtype.F16, c)),
                    "candidates", "query 1", "position 2", "column 5");
        }
        short[] badQ = narrow(Dtype.BF16, qs);
        badQ[D + 3] = (short) 0x7F80; // +Inf
        expect(Status.NON_FINITE_INPUT, () -> session.rerank(Batch.dense(D, Dtype.BF16, MemorySegment.ofArray(badQ),
                counts, Dtype.F16, MemorySegment.ofArray(cBits), D)), "queries", "query 1", "column 3");
        // An odd address cannot hold 16-bit values.
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment odd = arena.allocate(2L * cBits.length + 2, 4).asSlice(1, 2L * cBits.length);
            MemorySegment.copy(MemorySegment.ofArray(cBits), 0, odd, 0, odd.byteSize());
            expect(Status.INVALID_ARGUMENT, () -> Corpus.wrap(Dtype.F16, odd, 7, D, D), "aligned");
            expect(Status.INVALID_ARGUMENT, () -> session.rerank(Batch.dense(D, Dtype.F32, MemorySegment.ofArray(qs),
                    counts, Dtype.F16, odd, D)), "aligned");
        }
        // A Dtype is an enum, so no unknown code reaches the library; F32 with a short[] is caught here.
        check(Dtype.of(3) == null, "Dtype.of(3)");
        try {
            Corpus.copyOf(Dtype.F32, cBits, D);
            throw new AssertionError("F32 rows in a short[] were accepted");
        } catch (IllegalArgumentException expected) {
            // ok
        }
    }

    static void dimensionMismatch() throws Exception {
        float[] q = new float[D - 1];
        float[] c = new float[3 * (D - 1)];
        expect(Status.DIMENSION_MISMATCH, () -> session.rerank(Batch.single(q, c)));
    }

    /** One KAT row of tests/parity.rs. */
    record Kat(String name, long seed, long queryIndex, float[] logSRs, boolean[] mask, int[] expected, int count) {}

    static boolean[] mask(int... bits) {
        boolean[] m = new boolean[bits.length];
        for (int i = 0; i < bits.length; i++) {
            m[i] = bits[i] != 0;
        }
        return m;
    }

    static final int ND = Rrra.NOT_DRAWN;

    static final Kat[] KATS = {
        new Kat("basic", 0x000000000012D687L, 0L, new float[] {-0.5f, -1.25f, -3.0f, -0.125f, -2.0f, -0.75f, -5.5f, -1.0f},
                null, new int[] {0, 1, 5}, 3),
        new Kat("ties_masked", 0x2AL, 7L, new float[] {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
                mask(0, 1, 0, 0, 1, 0, 0, 0, 0, 1), new int[] {8, 0, 3, 2}, 4),
        new Kat("underflow_and_positive", 0xDEADBEEFCAFEF00DL, 0x0000010000000003L,
                new float[] {-1000.0f, 0.5f, -2.25f, -1000.0f, 2.0f, -0.375f, -1000.0f}, mask(0, 0, 1, 0, 0, 0, 0),
                new int[] {4, 1, 5, 0, 3, 6, ND, ND, ND}, 6),
        new Kat("empty", 0L, 0L, new float[0], null, new int[] {ND, ND}, 0),
        new Kat("query_index_max", 0x7E8L, 0xFFFFFFFFFFFFFFFFL, new float[] {-0.25f, -4.0f, -0.625f, -1.5f, -0.125f, -8.0f},
                null, new int[] {4, 0, 2, 3}, 4),
    };

    static void samplerKats() {
        for (Kat kat : KATS) {
            Rrra.Samples s = Rrra.sampleNegatives(kat.logSRs(), kat.mask(), kat.seed(), kat.queryIndex(),
                    kat.expected().length);
            check(s.count() == kat.count(), kat.name() + ": count " + s.count());
            check(Arrays.equals(s.samples(), kat.expected()),
                    kat.name() + ": " + Arrays.toString(s.samples()) + " != " + Arrays.toString(kat.expected()));
        }
    }

    static void resample() {
        SplittableRandom rng = new SplittableRandom(9);
        int[] counts = {10, 0, 6, 25};
        int total = Arrays.stream(counts).sum();
        float[] qs = randoms(rng, counts.length * D, 0.5);
        float[] cs = randoms(rng, total * D, 0.5);
        float[] bs = randoms(rng, total, 1);
        boolean[] positives = new boolean[total];
        for (int i = 0; i < total; i += 4) {
            positives[i] = true;
        }
        Batch batch = Batch.dense(D, qs, counts, cs).withBaseScores(bs);
        ResampleRequest req = new ResampleRequest(5, 0xC0FFEEL, 1000, positives);
        ResampleResult a = session.resample(batch, req);
        ResampleResult b = session.resample(batch, req);
        check(Arrays.equals(a.samples(), b.samples()) && Arrays.equals(a.sampleCounts(), b.sampleCounts()),
                "same seed, different draws");
        check(a.samples().length == counts.length * 5, "sample slots");
        RerankResult rr = session.rerank(batch);
        int off = 0;
        for (int q = 0; q < counts.length; q++) {
            int k = counts[q];
            for (int i = 0; i < k; i++) {
                Reference ref = reference(qs, q * D, cs, (off + i) * D, bs[off + i], "sigmoid", LAMBDA);
                close(a.logSRs()[off + i], ref.logSRs, 1e-4 * Math.max(1, Math.abs(ref.logSRs)), "log_s_rs");
                close(a.sFn()[off + i], rr.sFn()[off + i], 1e-6, "s_fn resample vs rerank");
            }
            boolean[] m = Arrays.copyOfRange(positives, off, off + k);
            Rrra.Samples s = Rrra.sampleNegatives(slice(a.logSRs(), off, k), m, 0xC0FFEEL, 1000 + q, 5);
            check(s.count() == a.sampleCounts()[q], "query " + q + " count");
            check(Arrays.equals(s.samples(), Arrays.copyOfRange(a.samples(), q * 5, q * 5 + 5)),
                    "query " + q + ": session draws differ from rrra_sample_negatives");
            for (int j : a.samples(q)) {
                check(!m[j], "query " + q + " drew labelled positive " + j);
            }
            off += k;
        }
        check(a.sampleCounts()[1] == 0, "empty query drew something");
        ResampleResult other = session.resample(batch, new ResampleRequest(5, 0xC0FFEEL + 1, 1000, positives));
        check(!Arrays.equals(a.samples(), other.samples()), "a different seed should draw differently");
    }

    static void enginesAndThreads() throws Exception {
        SplittableRandom rng = new SplittableRandom(10);
        int[] counts = {30, 1, 0, 17, 64, 8, 40};
        int total = Arrays.stream(counts).sum();
        float[] qs = randoms(rng, counts.length * D, 0.5);
        float[] cs = randoms(rng, total * D, 0.5);
        Batch batch = Batch.dense(D, qs, counts, cs);
        RerankResult auto = session.rerank(batch);
        int engines = 0;
        for (Engine e : new Engine[] {Engine.REFERENCE, Engine.FOLDED, Engine.CUDA}) {
            for (int threads : new int[] {1, 3}) {
                Session s;
                try {
                    s = Session.open(model, new SessionOptions(e, threads));
                } catch (RrraException ex) {
                    check(ex.status() == Status.UNSUPPORTED, "engine " + e + ": " + ex.getMessage());
                    System.out.println("     (engine " + e + " unavailable: " + ex.nativeMessage() + ")");
                    continue;
                }
                try (s) {
                    check(s.engine() == e, "asked for " + e + ", got " + s.engine());
                    RerankResult r = s.rerank(batch);
                    for (int i = 0; i < total; i++) {
                        close(r.logSRr()[i], auto.logSRr()[i], 1e-4 * Math.max(1, Math.abs(auto.logSRr()[i])),
                                e + "/" + threads + " log_s_rr[" + i + "]");
                    }
                    engines++;
                }
            }
        }
        check(engines >= 2, "no engine ran");
        int kernels = 0;
        for (CpuKernel k : new CpuKernel[] {CpuKernel.PORTABLE, CpuKernel.AVX2, CpuKernel.AVX512}) {
            Session s;
            try {
                s = Session.open(model, new SessionOptions(Engine.FOLDED, 1, k));
            } catch (RrraException ex) {
                check(ex.status() == Status.UNSUPPORTED, "cpu kernel " + k + ": " + ex.getMessage());
                System.out.println("     (cpu kernel " + k + " unavailable: " + ex.nativeMessage() + ")");
                continue;
            }
            try (s) {
                check(s.cpuKernel() == k, "asked for " + k + ", got " + s.cpuKernel());
                RerankResult r = s.rerank(batch);
                for (int i = 0; i < total; i++) {
                    close(r.logSRr()[i], auto.logSRr()[i], 1e-4 * Math.max(1, Math.abs(auto.logSRr()[i])),
                            k + " log_s_rr[" + i + "]");
                }
                kernels++;
            }
        }
        check(kernels >= 1, "no cpu kernel ran");
        try (Session s = Session.open(model, new SessionOptions(Engine.REFERENCE, 1))) {
            check(s.cpuKernel() == CpuKernel.AUTO, "the reference engine reports no cpu kernel");
            check(s.precision() == Precision.F32, "sessions default to f32");
        }
        Session half = null;
        try {
            half = Session.open(model, new SessionOptions(Engine.AUTO, 1, CpuKernel.AUTO, Precision.F16));
        } catch (RrraException ex) {
            check(ex.status() == Status.UNSUPPORTED, "f16: " + ex.getMessage());
            System.out.println("     (f16 precision unavailable: " + ex.nativeMessage() + ")");
        }
        if (half != null) {
            try (Session s = half) {
                check(s.precision() == Precision.F16, "asked for f16, got " + s.precision());
                RerankResult r = s.rerank(batch);
                for (int i = 0; i < total; i++) {
                    close(r.logSRr()[i], auto.logSRr()[i], 2e-2 * Math.max(1, Math.abs(auto.logSRr()[i])),
                            "f16 log_s_rr[" + i + "]");
                }
            }
        }
    }

    static void closedHandles() throws Exception {
        Model m = Model.loadBytes(ADAPTER.bytes());
        Session s = Session.open(m);
        m.close(); // sessions keep their own reference
        m.close();
        RerankResult r = s.rerank(Batch.single(new float[D], new float[2 * D]));
        check(r.order().length == 2, "session after model close");
        s.close();
        s.close();
        try {
            s.rerank(Batch.single(new float[D], new float[D]));
            throw new AssertionError("a closed session was used");
        } catch (IllegalStateException expected) {
            // ok
        }
        try {
            Session.open(m);
            throw new AssertionError("a closed model was used");
        } catch (IllegalStateException expected) {
            // ok
        }
        Corpus c = Corpus.copyOf(new float[4 * D], D);
        c.close();
        try {
            session.rerank(Batch.byId(new float[D], new int[] {1}, c, new long[] {0}));
            throw new AssertionError("a closed corpus was used");
        } catch (IllegalStateException expected) {
            // ok
        }
    }

    // ---------------------------------------------------------------- Lucene

    static final int DOCS = 300;

    /** The index: 300 docs in 3 segments; every 37th doc has no vector. */
    static final class Index implements AutoCloseable {
        final float[][] vectors = new float[DOCS][];
        final ByteBuffersDirectory dir = new ByteBuffersDirectory();
        final DirectoryReader reader;
        final IndexSearcher searcher;

        Index(String field, VectorSimilarityFunction function, long seed) throws Exception {
            SplittableRandom rng = new SplittableRandom(seed);
            IndexWriterConfig config = new IndexWriterConfig().setMergePolicy(NoMergePolicy.INSTANCE);
            try (IndexWriter writer = new IndexWriter(dir, config)) {
                for (int i = 0; i < DOCS; i++) {
                    Document doc = new Document();
                    doc.add(new StoredField("id", i));
                    if (i % 37 != 5) {
                        vectors[i] = unit(rng, D);
                        doc.add(new KnnFloatVectorField(field, vectors[i], function));
                    }
                    writer.addDocument(doc);
                    if ((i + 1) % 100 == 0) {
                        writer.commit();
                    }
                }
            }
            reader = DirectoryReader.open(dir);
            searcher = new IndexSearcher(reader);
        }

        int id(int doc) throws Exception {
            return searcher.storedFields().document(doc).getField("id").numericValue().intValue();
        }

        @Override
        public void close() throws Exception {
            reader.close();
            dir.close();
        }
    }

    static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += (double) a[i] * b[i];
        }
        return s;
    }

    /** The binding's direct call on the same vectors (from the test's own arrays) and base scores. */
    static RerankResult direct(Index index, float[] q, ScoreDoc[] hits, BaseScore mode) throws Exception {
        float[] c = new float[hits.length * D];
        float[] b = new float[hits.length];
        for (int i = 0; i < hits.length; i++) {
            System.arraycopy(index.vectors[index.id(hits[i].doc)], 0, c, i * D, D);
            b[i] = mode == BaseScore.LUCENE_SCORE ? hits[i].score : 2 * hits[i].score - 1;
        }
        Batch batch = Batch.single(q, c);
        ScoreOptions options = ScoreOptions.DEFAULTS;
        if (mode == BaseScore.LUCENE_SCORE) {
            options = options.withBaseTransform(BaseTransform.IDENTITY);
        }
        if (mode != BaseScore.ADAPTER_SIMILARITY) {
            batch = batch.withBaseScores(b);
        }
        return session.rerank(batch, options);
    }

    static void luceneRescorer() throws Exception {
        try (Index index = new Index("vec", VectorSimilarityFunction.DOT_PRODUCT, 11)) {
            check(index.reader.leaves().size() == 3, "expected 3 segments, got " + index.reader.leaves().size());
            SplittableRandom rng = new SplittableRandom(12);
            for (int round = 0; round < 3; round++) {
                float[] q = unit(rng, D);
                TopDocs first = index.searcher.search(new KnnFloatVectorQuery("vec", q, 60), 60);
                check(first.scoreDocs.length == 60, "first pass found " + first.scoreDocs.length);
                for (ScoreDoc hit : first.scoreDocs) { // Lucene's DOT_PRODUCT score is (1 + dot) / 2
                    close(hit.score, Math.max((1 + dot(q, index.vectors[index.id(hit.doc)])) / 2, 0), 1e-6,
                            "Lucene score transform");
                }
                for (BaseScore mode : BaseScore.values()) {
                    ScoreOptions extra = ScoreOptions.DEFAULTS;
                    RrraRescorer rescorer = new RrraRescorer(session, "vec", q, mode, extra);
                    long before = session.nativeCalls();
                    TopDocs rescored = rescorer.rescore(index.searcher, first, 60);
                    check(session.nativeCalls() == before + 1, mode + ": " + (session.nativeCalls() - before)
                            + " native calls for one hit list");
                    RerankResult want = direct(index, q, first.scoreDocs, mode);
                    check(rescored.scoreDocs.length == 60, "rescored length");
                    for (int j = 0; j < 60; j++) {
                        ScoreDoc got = rescored.scoreDocs[j];
                        int row = want.order()[j];
                        check(got.doc == first.scoreDocs[row].doc, mode + ": rank " + j + " is doc " + got.doc
                                + ", the direct call says " + first.scoreDocs[row].doc);
                        check(Float.compare(got.score, want.logSRr()[row]) == 0,
                                mode + ": rank " + j + " score " + got.score + " vs " + want.logSRr()[row]);
                    }
                    check(rescored.totalHits.equals(first.totalHits), "totalHits");
                    TopDocs top10 = rescorer.rescore(index.searcher, first, 10);
                    check(top10.scoreDocs.length == 10, "topN");
                    for (int j = 0; j < 10; j++) {
                        check(top10.scoreDocs[j].doc == rescored.scoreDocs[j].doc, "topN is not a prefix");
                    }
                }
                // The adapter must actually change something: the rescored order differs from the first pass.
                TopDocs rr = new RrraRescorer(session, "vec", q).rescore(index.searcher, first, 60);
                boolean moved = false;
                for (int j = 0; j < 60; j++) {
                    moved |= rr.scoreDocs[j].doc != first.scoreDocs[j].doc;
                }
                check(moved, "rescoring changed nothing");
            }
        }
    }

    static void luceneEdgeCases() throws Exception {
        // EUCLIDEAN: score = 1 / (1 + d²); RAW_SIMILARITY hands rrra −d².
        try (Index index = new Index("e", VectorSimilarityFunction.EUCLIDEAN, 13)) {
            float[] q = unit(new SplittableRandom(14), D);
            TopDocs first = index.searcher.search(new KnnFloatVectorQuery("e", q, 40), 40);
            float[] c = new float[40 * D];
            float[] b = new float[40];
            for (int i = 0; i < 40; i++) {
                float[] v = index.vectors[index.id(first.scoreDocs[i].doc)];
                System.arraycopy(v, 0, c, i * D, D);
                double d2 = 0;
                for (int t = 0; t < D; t++) {
                    d2 += (q[t] - v[t]) * (q[t] - v[t]);
                }
                close(first.scoreDocs[i].score, 1 / (1 + d2), 1e-6, "Lucene EUCLIDEAN score");
                b[i] = 1 - 1 / first.scoreDocs[i].score;
                close(b[i], -d2, 1e-4, "recovered −d²");
            }
            RerankResult want = session.rerank(Batch.single(q, c).withBaseScores(b));
            TopDocs got = new RrraRescorer(session, "e", q).rescore(index.searcher, first, 40);
            for (int j = 0; j < 40; j++) {
                check(got.scoreDocs[j].doc == first.scoreDocs[want.order()[j]].doc, "EUCLIDEAN rank " + j);
            }
        }
        try (Index index = new Index("vec", VectorSimilarityFunction.DOT_PRODUCT, 15)) {
            float[] q = unit(new SplittableRandom(16), D);
            TopDocs first = index.searcher.search(new KnnFloatVectorQuery("vec", q, 20), 20);
            // Hits without a vector (docs 5 and 42 have none) go last, in first-pass order, at -Infinity.
            List<ScoreDoc> hits = new ArrayList<>(Arrays.asList(first.scoreDocs));
            int noVecA = docOfId(index, 5), noVecB = docOfId(index, 42);
            hits.add(3, new ScoreDoc(noVecB, 0.9f));
            hits.add(7, new ScoreDoc(noVecA, 0.8f));
            TopDocs mixed = new TopDocs(first.totalHits, hits.toArray(new ScoreDoc[0]));
            RrraRescorer rescorer = new RrraRescorer(session, "vec", q);
            TopDocs got = rescorer.rescore(index.searcher, mixed, 100);
            check(got.scoreDocs.length == 22, "length " + got.scoreDocs.length);
            check(got.scoreDocs[20].doc == noVecB && got.scoreDocs[21].doc == noVecA, "vectorless hits are not last");
            check(got.scoreDocs[21].score == Float.NEGATIVE_INFINITY, "vectorless score");
            TopDocs plain = rescorer.rescore(index.searcher, first, 20);
            for (int j = 0; j < 20; j++) {
                check(got.scoreDocs[j].doc == plain.scoreDocs[j].doc, "vectorless hits disturbed the order");
            }
            // explain() scores one document alone; under sigmoid it equals the rescored score.
            ScoreDoc top = plain.scoreDocs[0];
            float firstScore = Arrays.stream(first.scoreDocs).filter(h -> h.doc == top.doc).findFirst()
                    .orElseThrow().score;
            Explanation e = rescorer.explain(index.searcher, Explanation.match(firstScore, "knn"), top.doc);
            check(e.isMatch(), "explain: no match");
            close(e.getValue().doubleValue(), top.score, 1e-5, "explain value");
            check(!rescorer.explain(index.searcher, Explanation.match(0.5f, "knn"), noVecA).isMatch(),
                    "explain of a vectorless doc");
            // Empty hit list: no native call.
            long before = session.nativeCalls();
            TopDocs none = rescorer.rescore(index.searcher, new TopDocs(first.totalHits, new ScoreDoc[0]), 10);
            check(none.scoreDocs.length == 0 && session.nativeCalls() == before, "empty hit list");
        }
    }

    static int docOfId(Index index, int id) throws Exception {
        for (int doc = 0; doc < index.reader.maxDoc(); doc++) {
            if (index.id(doc) == id) {
                return doc;
            }
        }
        throw new AssertionError("no doc with id " + id);
    }
}
