package dev.rrra;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.File;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The one place that knows {@code include/rrra.h}: the library lookup, one downcall handle per
 * function and one {@link StructLayout} per struct, laid out member by member as a C compiler
 * lays them out on 64-bit Linux (LP64: {@code size_t} and pointers are 8 bytes, {@code uint32_t}
 * 4, {@code double} 8 and 8-aligned). Padding is spelled out: {@link MemoryLayout#structLayout}
 * rejects a misaligned member, so a layout that disagrees with C fails when this class loads
 * instead of corrupting memory later.
 */
final class Native {
    private Native() {}

    /** The header this binding was written against ({@code RRRA_VERSION_STRING}). */
    static final String HEADER_VERSION = "0.1.0";

    static final Linker LINKER = Linker.nativeLinker();
    /** {@code size_t}; the binding supports LP64 platforms only (checked below). */
    static final ValueLayout.OfLong SIZE_T = JAVA_LONG;
    /** {@code uint32_t} / {@code int32_t} / the C enums (read as unsigned where the value is). */
    static final ValueLayout.OfInt U32 = JAVA_INT;

    // ---- struct layouts (names equal the C member names) ----

    static final StructLayout MODEL_INFO = MemoryLayout.structLayout(
            SIZE_T.withName("struct_size"),
            SIZE_T.withName("dim"),
            SIZE_T.withName("hidden"),
            SIZE_T.withName("parameter_count"),
            U32.withName("activation"),
            U32.withName("similarity"),
            U32.withName("base_transform"),
            MemoryLayout.paddingLayout(4), // the next double is 8-aligned
            JAVA_DOUBLE.withName("adapter_mu"),
            JAVA_DOUBLE.withName("adapter_tau"),
            JAVA_DOUBLE.withName("base_mu"),
            JAVA_DOUBLE.withName("base_tau"),
            JAVA_DOUBLE.withName("lambda_rr"),
            JAVA_DOUBLE.withName("gamma_rs"),
            ADDRESS.withName("encoder")).withName("rrra_model_info");

    static final StructLayout SESSION_OPTIONS = MemoryLayout.structLayout(
            SIZE_T.withName("struct_size"),
            U32.withName("engine"),
            U32.withName("threads"),
            U32.withName("cpu_kernel"),
            U32.withName("precision")).withName("rrra_session_options");

    static final StructLayout BATCH = MemoryLayout.structLayout(
            SIZE_T.withName("struct_size"),
            SIZE_T.withName("dim"),
            SIZE_T.withName("n_queries"),
            ADDRESS.withName("queries"),
            SIZE_T.withName("queries_len"),
            ADDRESS.withName("candidate_counts"),
            ADDRESS.withName("candidates"),
            SIZE_T.withName("candidates_len"),
            SIZE_T.withName("candidate_stride"),
            ADDRESS.withName("corpus"),
            ADDRESS.withName("candidate_ids"),
            SIZE_T.withName("candidate_ids_len"),
            ADDRESS.withName("base_scores"),
            SIZE_T.withName("base_scores_len"),
            U32.withName("queries_dtype"),
            U32.withName("candidates_dtype")).withName("rrra_batch");

    static final StructLayout SCORE_OPTIONS = MemoryLayout.structLayout(
            SIZE_T.withName("struct_size"),
            U32.withName("override_flags"),
            U32.withName("base_transform"),
            JAVA_DOUBLE.withName("lambda_rr"),
            JAVA_DOUBLE.withName("gamma_rs"),
            JAVA_DOUBLE.withName("base_mu"),
            JAVA_DOUBLE.withName("base_tau")).withName("rrra_score_options");

    static final StructLayout RERANK_OUTPUTS = MemoryLayout.structLayout(
            SIZE_T.withName("struct_size"),
            ADDRESS.withName("log_s_rr"),
            SIZE_T.withName("log_s_rr_len"),
            ADDRESS.withName("s_a"),
            SIZE_T.withName("s_a_len"),
            ADDRESS.withName("s_fn"),
            SIZE_T.withName("s_fn_len"),
            ADDRESS.withName("class_probs"),
            SIZE_T.withName("class_probs_len"),
            ADDRESS.withName("order"),
            SIZE_T.withName("order_len")).withName("rrra_rerank_outputs");

    static final StructLayout RESAMPLE_REQUEST = MemoryLayout.structLayout(
            SIZE_T.withName("struct_size"),
            SIZE_T.withName("samples_per_query"),
            JAVA_LONG.withName("seed"),
            JAVA_LONG.withName("first_query_index"),
            ADDRESS.withName("positive_mask"),
            SIZE_T.withName("positive_mask_len")).withName("rrra_resample_request");

    static final StructLayout RESAMPLE_OUTPUTS = MemoryLayout.structLayout(
            SIZE_T.withName("struct_size"),
            ADDRESS.withName("log_s_rs"),
            SIZE_T.withName("log_s_rs_len"),
            ADDRESS.withName("s_fn"),
            SIZE_T.withName("s_fn_len"),
            ADDRESS.withName("samples"),
            SIZE_T.withName("samples_len"),
            ADDRESS.withName("sample_counts"),
            SIZE_T.withName("sample_counts_len")).withName("rrra_resample_outputs");

    /** Every struct of the header, for the layout test against the C compiler. */
    static final List<StructLayout> ALL_STRUCTS = List.of(
            MODEL_INFO, SESSION_OPTIONS, BATCH, SCORE_OPTIONS, RERANK_OUTPUTS, RESAMPLE_REQUEST, RESAMPLE_OUTPUTS);

    /** Byte offset of member {@code name} of {@code struct}. */
    static long off(StructLayout struct, String name) {
        return struct.byteOffset(groupElement(name));
    }

    // ---- functions ----

    static final SymbolLookup LOOKUP;
    /** Where the library was found, for messages. */
    static final String LIBRARY;

    static final MethodHandle LAST_ERROR;
    static final MethodHandle STATUS_NAME;
    static final MethodHandle VERSION;
    static final MethodHandle CORPUS_NEW_TYPED;
    static final MethodHandle CORPUS_FREE;
    static final MethodHandle MODEL_LOAD_FILE;
    /** {@code rrra_model_load_bytes} for off-heap bytes. */
    static final MethodHandle MODEL_LOAD_BYTES;
    /** {@code rrra_model_load_bytes} as a critical call: a heap {@code byte[]} is passed in place. */
    static final MethodHandle MODEL_LOAD_BYTES_HEAP;
    static final MethodHandle MODEL_FREE;
    static final MethodHandle MODEL_INFO_GET;
    /** {@code rrra_sample_negatives} as a critical call: every argument may be a heap array. */
    static final MethodHandle SAMPLE_NEGATIVES_HEAP;
    static final MethodHandle SESSION_NEW;
    static final MethodHandle SESSION_FREE;
    static final MethodHandle SESSION_ENGINE;
    static final MethodHandle SESSION_CPU_KERNEL;
    static final MethodHandle SESSION_PRECISION;
    static final MethodHandle SESSION_RERANK;
    static final MethodHandle SESSION_RESAMPLE;

    static {
        if (Runtime.version().feature() < 22) {
            throw new UnsupportedOperationException(
                    "rrra's Java binding needs JDK 22 or later (the final FFM API); this is " + Runtime.version());
        }
        MemoryLayout sizeT = LINKER.canonicalLayouts().get("size_t");
        if (sizeT == null || sizeT.byteSize() != 8 || ADDRESS.byteSize() != 8) {
            throw new UnsupportedOperationException("rrra's Java binding supports 64-bit (LP64) platforms only");
        }
        String[] where = new String[1];
        LOOKUP = openLibrary(where);
        LIBRARY = where[0];

        LAST_ERROR = handle("rrra_last_error", FunctionDescriptor.of(ADDRESS));
        STATUS_NAME = handle("rrra_status_name", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        VERSION = handle("rrra_version", FunctionDescriptor.of(ADDRESS));
        CORPUS_NEW_TYPED = handle("rrra_corpus_new_typed",
                FunctionDescriptor.of(JAVA_INT, U32, ADDRESS, SIZE_T, SIZE_T, SIZE_T, SIZE_T, ADDRESS));
        CORPUS_FREE = handle("rrra_corpus_free", FunctionDescriptor.ofVoid(ADDRESS));
        MODEL_LOAD_FILE = handle("rrra_model_load_file", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        FunctionDescriptor loadBytes = FunctionDescriptor.of(JAVA_INT, ADDRESS, SIZE_T, ADDRESS);
        MODEL_LOAD_BYTES = handle("rrra_model_load_bytes", loadBytes);
        MODEL_LOAD_BYTES_HEAP = handle("rrra_model_load_bytes", loadBytes, Linker.Option.critical(true));
        MODEL_FREE = handle("rrra_model_free", FunctionDescriptor.ofVoid(ADDRESS));
        MODEL_INFO_GET = handle("rrra_model_info_get", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        SAMPLE_NEGATIVES_HEAP = handle("rrra_sample_negatives",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, SIZE_T, ADDRESS, SIZE_T, JAVA_LONG, JAVA_LONG, ADDRESS,
                        SIZE_T, ADDRESS),
                Linker.Option.critical(true));
        SESSION_NEW = handle("rrra_session_new", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        SESSION_FREE = handle("rrra_session_free", FunctionDescriptor.ofVoid(ADDRESS));
        SESSION_ENGINE = handle("rrra_session_engine", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        SESSION_CPU_KERNEL = handle("rrra_session_cpu_kernel", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        SESSION_PRECISION = handle("rrra_session_precision", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        SESSION_RERANK = handle("rrra_session_rerank",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        SESSION_RESAMPLE = handle("rrra_session_resample",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));

        String version = version();
        if (!sameMajorMinor(version, HEADER_VERSION)) {
            throw new UnsatisfiedLinkError("rrra library " + LIBRARY + " is version " + version
                    + " but this binding was written against rrra.h " + HEADER_VERSION
                    + " (major.minor must match while the major version is 0)");
        }
    }

    private static boolean sameMajorMinor(String a, String b) {
        String[] x = a.split("\\."), y = b.split("\\.");
        return x.length >= 2 && y.length >= 2 && x[0].equals(y[0]) && x[1].equals(y[1]);
    }

    /**
     * Finds librrra: {@code -Drrra.library=/path/to/librrra.so} first, then each directory of
     * {@code java.library.path}, then the dynamic linker's own search (LD_LIBRARY_PATH, ld.so.cache).
     * The library stays loaded for the life of the JVM (the global arena).
     */
    private static SymbolLookup openLibrary(String[] where) {
        String explicit = System.getProperty("rrra.library");
        if (explicit != null && !explicit.isEmpty()) {
            Path path = Path.of(explicit).toAbsolutePath();
            if (!Files.isRegularFile(path)) {
                throw new UnsatisfiedLinkError("-Drrra.library=" + explicit + ": no such file");
            }
            where[0] = path.toString();
            return SymbolLookup.libraryLookup(path, Arena.global());
        }
        String name = System.mapLibraryName("rrra");
        List<String> searched = new ArrayList<>();
        for (String dir : System.getProperty("java.library.path", "").split(File.pathSeparator)) {
            if (dir.isEmpty()) {
                continue;
            }
            Path path = Path.of(dir, name).toAbsolutePath();
            searched.add(path.toString());
            if (Files.isRegularFile(path)) {
                where[0] = path.toString();
                return SymbolLookup.libraryLookup(path, Arena.global());
            }
        }
        try {
            where[0] = name + " (dynamic linker search path)";
            return SymbolLookup.libraryLookup(name, Arena.global());
        } catch (IllegalArgumentException e) {
            throw new UnsatisfiedLinkError("cannot find " + name + ": pass -Drrra.library=/path/to/" + name
                    + " or put its directory on java.library.path (looked at " + searched
                    + " and the dynamic linker's search path)");
        }
    }

    private static MethodHandle handle(String symbol, FunctionDescriptor descriptor, Linker.Option... options) {
        MemorySegment address = LOOKUP.find(symbol).orElseThrow(
                () -> new UnsatisfiedLinkError(LIBRARY + " does not export " + symbol + " (wrong library?)"));
        return LINKER.downcallHandle(address, descriptor, options);
    }

    // ---- small helpers every class uses ----

    /** A NUL-terminated string the library owns, copied into Java; NULL reads as "". */
    static String string(MemorySegment cString) {
        if (cString.equals(MemorySegment.NULL)) {
            return "";
        }
        return cString.reinterpret(Long.MAX_VALUE).getString(0);
    }

    static String lastError() {
        try {
            return string((MemorySegment) LAST_ERROR.invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static String statusName(int status) {
        try {
            return string((MemorySegment) STATUS_NAME.invokeExact(status));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static String version() {
        try {
            return string((MemorySegment) VERSION.invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Turns a failed status into an exception, reading {@code rrra_last_error()} right away on
     * the same thread (the message is thread-local and lives until the next rrra call).
     */
    static void check(int status) {
        if (status != 0) {
            throw new RrraException(status, statusName(status), lastError());
        }
    }

    /** Downcalls declare {@code Throwable}; pass runtime exceptions and errors through unchanged. */
    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }
}
