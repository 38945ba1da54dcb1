/*
 * rrra.hpp: a header-only C++17 wrapper over the rrra C ABI (rrra.h).
 *
 * Written by hand (rrra.h is generated; this file is not). It adds no logic of its own: every
 * check and every number comes from the C library, and this layer only turns handles into
 * move-only RAII objects, status codes into exceptions and pointer + length pairs into views.
 *
 *   rrra::Model    an adapter file, loaded and validated. Immutable: share one between threads.
 *   rrra::Corpus   a registered view of the caller's embedding matrix (no copy is made).
 *   rrra::Session  scratch memory and an engine over a model. One thread at a time.
 *   rrra::Batch    a view of one call's queries and candidate lists (dense rows or corpus ids).
 *   rrra::Span<T>, rrra::Values, rrra::Matrix   non-owning views of caller memory; Values and
 *                  Matrix hold embeddings as float, or as the bits of f16 / bf16 (rrra::Dtype).
 *   rrra::Error    thrown by every failing call: the status code and the library's message.
 *
 * Link as for rrra.h: librrra.a (or librrra.so) plus -lpthread -ldl -lm. See docs/cpp.md.
 *
 * Lifetimes, in one place: views (Span, Values, Matrix, Batch) never own memory; what they
 * point to must outlive every call that uses them. A Corpus points at the caller's matrix from
 * its construction to its destruction, and a Batch built over a Corpus points at the Corpus.
 * Sessions keep their own reference to the model, so a Model may be destroyed before them.
 */

#ifndef RRRA_HPP
#define RRRA_HPP

#include "rrra.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if __cplusplus < 201703L && (!defined(_MSVC_LANG) || _MSVC_LANG < 201703L)
#error "rrra.hpp needs C++17 or later"
#endif

namespace rrra {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Thrown by every wrapper call whose C call failed (and by the few checks the wrapper makes
/// itself, which use the same status codes). what() is "RRRA_STATUS_<NAME>: <message>".
class Error : public std::runtime_error {
public:
    Error(rrra_status status, const std::string &message)
        : std::runtime_error(std::string(rrra_status_name(status)) + ": " + message), status_(status),
          prefix_(std::strlen(rrra_status_name(status)) + 2) {}

    /// The C status code (never RRRA_STATUS_OK).
    rrra_status status() const noexcept { return status_; }
    /// The library's message alone, as rrra_last_error() returned it.
    const char *message() const noexcept { return what() + prefix_; }
    /// E.g. "RRRA_STATUS_INVALID_MODEL".
    const char *status_name() const noexcept { return rrra_status_name(status_); }

private:
    // The message lives in runtime_error's reference-counted string, so copying an Error
    // (as throwing does) cannot throw.
    rrra_status status_;
    std::size_t prefix_;
};

namespace detail {

/// Turns a failed status into an Error. rrra_last_error() stays valid only until the next
/// rrra call on this thread (even rrra_*_free resets it), so it is copied before anything else.
inline void check(rrra_status status) {
    if (status != RRRA_STATUS_OK) {
        const std::string message(rrra_last_error());
        throw Error(status, message);
    }
}

/// A C struct with its struct_size set, every other field zero.
template <class T> T sized() noexcept {
    T s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = sizeof(T);
    return s;
}

/// a · b, or an Error naming `what` when it does not fit in size_t.
inline std::size_t checked_mul(std::size_t a, std::size_t b, const char *what) {
    if (b != 0 && a > std::numeric_limits<std::size_t>::max() / b) {
        throw Error(RRRA_STATUS_INVALID_ARGUMENT, std::string(what) + ": size overflows size_t");
    }
    return a * b;
}

template <class T> struct is_span : std::false_type {};

template <class T> using remove_cvref_t = std::remove_cv_t<std::remove_reference_t<T>>;

template <class C, class T, class = void> struct is_container_of : std::false_type {};

// Anything with std::data() / std::size() (std::vector, std::array, C arrays, std::span,
// Eigen-style maps...) whose elements are T. A temporary may only become a Span of const T,
// as with std::span: writing through a view of a temporary would lose the writes. A data()
// that returns void * (rrra::Values) is no container: `void (*)[]` is not a type.
template <class C, class T>
struct is_container_of<C, T,
                       std::void_t<decltype(std::data(std::declval<C &>())), decltype(std::size(std::declval<C &>())),
                                   std::enable_if_t<std::is_object_v<
                                       std::remove_pointer_t<decltype(std::data(std::declval<C &>()))>>>>>
    : std::bool_constant<!is_span<remove_cvref_t<C>>::value &&
                         std::is_convertible_v<std::remove_pointer_t<decltype(std::data(std::declval<C &>()))> (*)[],
                                               T (*)[]> &&
                         (std::is_lvalue_reference_v<C> || std::is_const_v<T>)> {};

} // namespace detail

// ---------------------------------------------------------------------------------------------
// Views of caller memory
// ---------------------------------------------------------------------------------------------

/// A non-owning view of `size()` contiguous T (std::span's subset that rrra needs, for C++17).
/// Converts implicitly from std::vector, std::array, C arrays, std::span and anything else
/// with data() and size(). An empty Span is passed to the library as NULL: for an optional
/// input (base scores, a mask) that means "not given", for an output "not wanted".
template <class T> class Span {
public:
    using element_type = T;
    using value_type = std::remove_cv_t<T>;

    constexpr Span() noexcept = default;
    constexpr Span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}

    template <class C, class = std::enable_if_t<detail::is_container_of<C &&, T>::value>>
    constexpr Span(C &&container) noexcept(noexcept(std::data(container)) && noexcept(std::size(container)))
        : data_(std::data(container)), size_(static_cast<std::size_t>(std::size(container))) {}

    /// Span<T> → Span<const T>.
    template <class U, class = std::enable_if_t<!std::is_same_v<U, T> && std::is_convertible_v<U (*)[], T (*)[]>>>
    constexpr Span(const Span<U> &other) noexcept : data_(other.data()), size_(other.size()) {}

    constexpr T *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T *begin() const noexcept { return data_; }
    constexpr T *end() const noexcept { return data_ + size_; }
    /// Unchecked, like std::span.
    constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }
    /// `count` elements from `offset` (unchecked).
    constexpr Span subspan(std::size_t offset, std::size_t count) const noexcept { return {data_ + offset, count}; }

private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

namespace detail {
template <class T> struct is_span<Span<T>> : std::true_type {};

/// The pointer the C ABI gets for a span: NULL when empty (see Span).
template <class T> T *ptr(Span<T> s) noexcept { return s.empty() ? nullptr : s.data(); }
} // namespace detail

/// How embedding values are stored (rrra_dtype). C++17 has no half type, so f16 (IEEE half)
/// and bf16 (bfloat16, the top 16 bits of a float) values are passed as their bit patterns, in
/// std::uint16_t. The library widens them to float exactly: they score as the same values
/// passed as float would. The session's arithmetic is a separate choice (Precision).
enum class Dtype : std::uint32_t {
    f32 = RRRA_DTYPE_F32,
    f16 = RRRA_DTYPE_F16,
    bf16 = RRRA_DTYPE_BF16,
};

namespace detail {
/// 16-bit patterns labelled Dtype::f32 would be read as half as many floats.
inline void check_bits_dtype(Dtype dtype, const char *what) {
    if (dtype == Dtype::f32) {
        throw Error(RRRA_STATUS_INVALID_ARGUMENT,
                    std::string(what) + ": 16-bit values need Dtype::f16 or Dtype::bf16, not Dtype::f32");
    }
}
} // namespace detail

/// A non-owning view of `size()` embedding values of one Dtype: floats, or the bit patterns of
/// f16 / bf16 values. Converts implicitly from whatever Span<const float> does, so float
/// callers never name it; 16-bit values say which type they are: Values(Dtype::f16, bits).
class Values {
public:
    constexpr Values() noexcept = default;
    constexpr Values(const float *data, std::size_t size) noexcept : data_(data), size_(size) {}
    constexpr Values(Span<const float> floats) noexcept : Values(floats.data(), floats.size()) {}
    template <class C, class = std::enable_if_t<!std::is_same_v<detail::remove_cvref_t<C>, Span<const float>> &&
                                                std::is_convertible_v<C &&, Span<const float>>>>
    constexpr Values(C &&floats) : Values(Span<const float>(std::forward<C>(floats))) {}

    /// f16 or bf16 values as their bit patterns. Throws INVALID_ARGUMENT for Dtype::f32.
    Values(Dtype dtype, Span<const std::uint16_t> bits) : data_(bits.data()), size_(bits.size()), dtype_(dtype) {
        detail::check_bits_dtype(dtype, "rrra::Values");
    }

    Dtype dtype() const noexcept { return dtype_; }
    /// The first value, of dtype() (a float or a 16-bit pattern).
    const void *data() const noexcept { return data_; }
    /// Values of dtype(), not bytes.
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

private:
    const void *data_ = nullptr;
    std::size_t size_ = 0;
    Dtype dtype_ = Dtype::f32;
};

/// A non-owning view of a row-major matrix of embedding values: `rows` rows of `cols` values,
/// row i at `i * row_stride` values from the start. Only the values rows actually cover are
/// read: the last row needs `cols` values, not a full stride. Floats by default; f16 / bf16
/// rows are given as their bit patterns with their Dtype, e.g. Matrix(Dtype::f16, bits, rows, d).
class Matrix {
public:
    constexpr Matrix() noexcept = default;

    Matrix(const float *data, std::size_t rows, std::size_t cols, std::size_t row_stride)
        : Matrix(data, Dtype::f32, rows, cols, row_stride) {}

    /// Packed rows (row_stride = cols).
    Matrix(const float *data, std::size_t rows, std::size_t cols) : Matrix(data, rows, cols, cols) {}

    /// f16 or bf16 rows, as bit patterns; row_stride counts values. Throws INVALID_ARGUMENT for
    /// Dtype::f32.
    Matrix(Dtype dtype, const std::uint16_t *bits, std::size_t rows, std::size_t cols, std::size_t row_stride)
        : Matrix(bits, dtype, rows, cols, row_stride) {
        detail::check_bits_dtype(dtype, "rrra::Matrix");
    }

    /// Packed f16 or bf16 rows.
    Matrix(Dtype dtype, const std::uint16_t *bits, std::size_t rows, std::size_t cols)
        : Matrix(dtype, bits, rows, cols, cols) {}

    /// Packed rows over a flat buffer (of any Dtype) whose size is a multiple of `cols`.
    Matrix(Values values, std::size_t cols) : Matrix(values.data(), values.dtype(), 0, cols, cols) {
        if (cols == 0 || values.size() % cols != 0) {
            throw Error(RRRA_STATUS_INVALID_ARGUMENT,
                        "rrra::Matrix: " + std::to_string(values.size()) + " values are not whole rows of " +
                            std::to_string(cols));
        }
        rows_ = values.size() / cols;
        len_ = values.size();
    }

    Dtype dtype() const noexcept { return dtype_; }
    /// The first row's first value, of dtype(): what the C ABI takes.
    const void *values() const noexcept { return data_; }
    /// The floats of an f32 matrix; NULL for f16 / bf16 (see values()).
    const float *data() const noexcept { return dtype_ == Dtype::f32 ? static_cast<const float *>(data_) : nullptr; }
    std::size_t rows() const noexcept { return rows_; }
    std::size_t cols() const noexcept { return cols_; }
    /// In values, not bytes.
    std::size_t row_stride() const noexcept { return stride_; }
    /// Values from the first row's start to the last row's end: what the C ABI calls data_len.
    std::size_t data_len() const noexcept { return len_; }
    /// Row `i` of an f32 matrix (unchecked); empty for f16 / bf16.
    Span<const float> row(std::size_t i) const noexcept {
        return dtype_ == Dtype::f32 ? Span<const float>(data() + i * stride_, cols_) : Span<const float>();
    }

private:
    Matrix(const void *data, Dtype dtype, std::size_t rows, std::size_t cols, std::size_t row_stride)
        : data_(data), dtype_(dtype), rows_(rows), cols_(cols), stride_(row_stride) {
        if (rows > 0) {
            // The C library checks the extent again; checking here keeps the size_t arithmetic
            // below from wrapping into a small, wrong data_len.
            const std::size_t last = detail::checked_mul(rows - 1, row_stride, "rrra::Matrix rows × row_stride");
            if (last > std::numeric_limits<std::size_t>::max() - cols) {
                throw Error(RRRA_STATUS_INVALID_ARGUMENT, "rrra::Matrix: extent overflows size_t");
            }
            len_ = last + cols;
        }
    }

    const void *data_ = nullptr;
    Dtype dtype_ = Dtype::f32;
    std::size_t rows_ = 0;
    std::size_t cols_ = 0;
    std::size_t stride_ = 0;
    std::size_t len_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Enumerations and plain settings
// ---------------------------------------------------------------------------------------------

enum class Activation : std::uint32_t {
    relu = RRRA_ACTIVATION_RELU,
    gelu = RRRA_ACTIVATION_GELU,
    gelu_tanh = RRRA_ACTIVATION_GELU_TANH,
    silu = RRRA_ACTIVATION_SILU,
    tanh = RRRA_ACTIVATION_TANH,
};

enum class Similarity : std::uint32_t {
    dot = RRRA_SIMILARITY_DOT,
    cosine = RRRA_SIMILARITY_COSINE,
};

enum class BaseTransform : std::uint32_t {
    identity = RRRA_BASE_TRANSFORM_IDENTITY,
    sigmoid = RRRA_BASE_TRANSFORM_SIGMOID,
    softmax = RRRA_BASE_TRANSFORM_SOFTMAX,
};

enum class Engine : std::uint32_t {
    /// The best engine available (session options only).
    automatic = RRRA_ENGINE_AUTO,
    reference = RRRA_ENGINE_REFERENCE,
    folded = RRRA_ENGINE_FOLDED,
    /// NVIDIA GPU; a library built with the cuda feature. Forcing it elsewhere throws UNSUPPORTED.
    cuda = RRRA_ENGINE_CUDA,
};

/// The folded engine's instruction set (rrra_cpu_kernel).
enum class CpuKernel : std::uint32_t {
    /// Options: the best this CPU has. Query: the engine has no CPU kernels.
    automatic = RRRA_CPU_KERNEL_AUTO,
    portable = RRRA_CPU_KERNEL_PORTABLE,
    avx2 = RRRA_CPU_KERNEL_AVX2,
    avx512 = RRRA_CPU_KERNEL_AVX512,
};

/// The arithmetic of a session (rrra_precision).
enum class Precision : std::uint32_t {
    f32 = RRRA_PRECISION_F32,
    /// Weights and candidates rounded to half: SPEC §6's reduced-precision tolerance (the folded
    /// engine on AVX512-FP16, or the cuda engine).
    f16 = RRRA_PRECISION_F16,
    /// bfloat16: the cuda engine only.
    bf16 = RRRA_PRECISION_BF16,
};

/// Slots of ResampleResult::samples past a query's count.
inline constexpr std::uint32_t not_drawn = RRRA_NOT_DRAWN;

/// What a model file declares (rrra_model_info, with the encoder name copied).
struct ModelInfo {
    std::size_t dim = 0;
    std::size_t hidden = 0;
    std::size_t parameter_count = 0;
    Activation activation = Activation::relu;
    Similarity similarity = Similarity::dot;
    BaseTransform base_transform = BaseTransform::sigmoid;
    double adapter_mu = 0, adapter_tau = 1;
    double base_mu = 0, base_tau = 1;
    double lambda_rr = 1, gamma_rs = 1;
    std::string encoder;
};

/// Per-call overrides of the model file's score settings (SPEC §2, §4); unset fields keep the
/// file's value. All unset (the default) passes NULL to the C call.
struct ScoreOptions {
    std::optional<double> lambda_rr;
    std::optional<double> gamma_rs;
    std::optional<BaseTransform> base_transform;
    std::optional<double> base_mu;
    std::optional<double> base_tau;
};

struct SessionOptions {
    Engine engine = Engine::automatic;
    /// Threads one call may use; 0 means 1 (see rrra_session_options).
    std::uint32_t threads = 0;
    /// Forces the folded engine's instruction set (tests and benchmarks).
    CpuKernel cpu_kernel = CpuKernel::automatic;
    Precision precision = Precision::f32;
};

/// The library's version string; compare with RRRA_VERSION_STRING (this header's).
inline const char *version() noexcept { return rrra_version(); }

/// The static name of a status code, e.g. "RRRA_STATUS_IO".
inline const char *status_name(rrra_status status) noexcept { return rrra_status_name(status); }

// ---------------------------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------------------------

namespace detail {
struct ModelFree {
    void operator()(rrra_model *m) const noexcept { rrra_model_free(m); }
};
struct CorpusFree {
    void operator()(rrra_corpus *c) const noexcept { rrra_corpus_free(c); }
};
struct SessionFree {
    void operator()(rrra_session *s) const noexcept { rrra_session_free(s); }
};
} // namespace detail

/// A validated adapter. Move-only; a moved-from or default-constructed Model is empty (false),
/// and using it throws Error(RRRA_STATUS_NULL_POINTER). Immutable: const methods may run on
/// any number of threads at once.
class Model {
public:
    Model() noexcept = default;
    /// Takes ownership of a handle from rrra_model_load_*.
    explicit Model(rrra_model *handle) noexcept : handle_(handle) {}

    /// Loads an adapter file (UTF-8 path). Throws RRRA_STATUS_IO, RRRA_STATUS_INVALID_MODEL, ...
    static Model load_file(const std::string &path) {
        // c_str() would silently cut the path at an embedded NUL and open another file.
        if (path.find('\0') != std::string::npos) {
            throw Error(RRRA_STATUS_INVALID_ARGUMENT, "path contains a NUL character");
        }
        rrra_model *m = nullptr;
        detail::check(rrra_model_load_file(path.c_str(), &m));
        return Model(m);
    }

    /// Loads an adapter file held in memory; the bytes are copied, so they may go after the call.
    static Model load_bytes(Span<const std::uint8_t> bytes) {
        rrra_model *m = nullptr;
        detail::check(rrra_model_load_bytes(detail::ptr(bytes), bytes.size(), &m));
        return Model(m);
    }
    static Model load_bytes(const void *bytes, std::size_t len) {
        return load_bytes(Span<const std::uint8_t>(static_cast<const std::uint8_t *>(bytes), len));
    }

    ModelInfo info() const {
        rrra_model_info c = detail::sized<rrra_model_info>();
        detail::check(rrra_model_info_get(handle_.get(), &c));
        ModelInfo out;
        out.dim = c.dim;
        out.hidden = c.hidden;
        out.parameter_count = c.parameter_count;
        out.activation = static_cast<Activation>(c.activation);
        out.similarity = static_cast<Similarity>(c.similarity);
        out.base_transform = static_cast<BaseTransform>(c.base_transform);
        out.adapter_mu = c.adapter_mu;
        out.adapter_tau = c.adapter_tau;
        out.base_mu = c.base_mu;
        out.base_tau = c.base_tau;
        out.lambda_rr = c.lambda_rr;
        out.gamma_rs = c.gamma_rs;
        out.encoder = c.encoder != nullptr ? c.encoder : "";
        return out;
    }

    /// The C handle, still owned by this object (NULL when empty).
    const rrra_model *get() const noexcept { return handle_.get(); }
    /// Gives up ownership: the caller must rrra_model_free the result.
    rrra_model *release() noexcept { return handle_.release(); }
    explicit operator bool() const noexcept { return handle_ != nullptr; }

private:
    std::unique_ptr<rrra_model, detail::ModelFree> handle_;
};

/// A registered view of the caller's corpus matrix, for candidates given by row id. No copy is
/// made: the matrix must stay valid and unchanged from construction until this Corpus is
/// destroyed (or moved into another Corpus, which then carries the same obligation). For a
/// FAISS IndexFlat, register its get_xb() after the last add(): adding may reallocate it.
/// Rows may be f16 or bf16 bit patterns, which halves the memory and scores as the same values
/// widened to float. A FAISS IndexScalarQuantizer(d, QT_fp16) keeps exactly that in its codes:
///   rrra::Corpus(rrra::Matrix(rrra::Dtype::f16, reinterpret_cast<const std::uint16_t *>(index.codes.data()),
///                             rows, d))
/// Move-only; shareable between threads and sessions for reading.
class Corpus {
public:
    Corpus() noexcept = default;

    explicit Corpus(const Matrix &rows) : rows_(rows.rows()), dim_(rows.cols()) {
        rrra_corpus *c = nullptr;
        detail::check(rrra_corpus_new_typed(static_cast<std::uint32_t>(rows.dtype()), rows.values(), rows.data_len(),
                                            rows.rows(), rows.cols(), rows.row_stride(), &c));
        handle_.reset(c);
    }

    Corpus(Corpus &&other) noexcept
        : handle_(std::move(other.handle_)), rows_(std::exchange(other.rows_, 0)), dim_(std::exchange(other.dim_, 0)) {}
    Corpus &operator=(Corpus &&other) noexcept {
        handle_ = std::move(other.handle_);
        rows_ = std::exchange(other.rows_, 0);
        dim_ = std::exchange(other.dim_, 0);
        return *this;
    }

    std::size_t rows() const noexcept { return rows_; }
    std::size_t dim() const noexcept { return dim_; }
    const rrra_corpus *get() const noexcept { return handle_.get(); }
    explicit operator bool() const noexcept { return handle_ != nullptr; }

private:
    std::unique_ptr<rrra_corpus, detail::CorpusFree> handle_;
    std::size_t rows_ = 0;
    std::size_t dim_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Batches, results and output views
// ---------------------------------------------------------------------------------------------

/// One call's queries and their ragged candidate lists: a view, valid while what it points to
/// (including a Corpus) lives. `queries` holds counts.size() contiguous rows of dim values;
/// the candidate lists of consecutive queries follow each other. Queries and candidates each
/// have their own Dtype (float queries against f16 candidates, say); a Corpus has its own too.
class Batch {
public:
    /// Dense candidates: `candidates` has one row per candidate (sum of counts), any stride.
    /// dim is candidates.cols(), so give an empty list a Matrix(nullptr, 0, d).
    static Batch dense(Values queries, Span<const std::size_t> counts, const Matrix &candidates,
                       Span<const float> base_scores = {}) {
        Batch b(queries, counts, base_scores, candidates.cols(), candidates.rows());
        b.candidates_ = candidates;
        return b;
    }

    /// Candidates by row id into `corpus`, one id per candidate.
    static Batch by_id(Values queries, Span<const std::size_t> counts, const Corpus &corpus,
                       Span<const std::uint64_t> ids, Span<const float> base_scores = {}) {
        Batch b(queries, counts, base_scores, corpus.dim(), ids.size());
        b.by_id_ = true;
        b.corpus_ = corpus.get();
        b.ids_ = ids;
        return b;
    }

    /// One query (dim values) and its candidate rows.
    static Batch single(Values query, const Matrix &candidates, Span<const float> base_scores = {}) {
        Batch b = dense(query, {}, candidates, base_scores);
        b.single_count_ = candidates.rows();
        b.single_ = true;
        return b;
    }

    std::size_t dim() const noexcept { return dim_; }
    std::size_t n_queries() const noexcept { return single_ ? 1 : counts_.size(); }
    /// Candidate rows given (dense rows or ids). The library checks that it equals the sum of
    /// the counts; the allocating calls size their outputs by it.
    std::size_t candidate_rows() const noexcept { return rows_; }

    /// The C struct. It points into this Batch (the single-query count), so use it only while
    /// this object lives and has not moved.
    rrra_batch to_c() const noexcept {
        rrra_batch c = detail::sized<rrra_batch>();
        c.dim = dim_;
        c.n_queries = n_queries();
        c.queries = queries_.empty() ? nullptr : queries_.data();
        c.queries_len = queries_.size();
        c.queries_dtype = static_cast<std::uint32_t>(queries_.dtype());
        c.candidate_counts = single_ ? &single_count_ : detail::ptr(counts_);
        if (!by_id_) {
            c.candidates = candidates_.rows() > 0 ? candidates_.values() : nullptr;
            c.candidates_len = candidates_.data_len();
            c.candidate_stride = candidates_.row_stride();
            c.candidates_dtype = static_cast<std::uint32_t>(candidates_.dtype());
        } else {
            c.corpus = corpus_;
            c.candidate_ids = detail::ptr(ids_);
            c.candidate_ids_len = ids_.size();
        }
        c.base_scores = detail::ptr(base_);
        c.base_scores_len = base_.size();
        return c;
    }

private:
    Batch(Values queries, Span<const std::size_t> counts, Span<const float> base, std::size_t dim,
          std::size_t rows) noexcept
        : queries_(queries), counts_(counts), base_(base), dim_(dim), rows_(rows) {}

    Values queries_;
    Span<const std::size_t> counts_;
    Span<const float> base_;
    Matrix candidates_;
    const rrra_corpus *corpus_ = nullptr;
    Span<const std::uint64_t> ids_;
    std::size_t dim_ = 0;
    std::size_t rows_ = 0;
    std::size_t single_count_ = 0;
    bool single_ = false;
    bool by_id_ = false;
};

/// Everything rrra_session_rerank computes, one entry per candidate (class_probs: four,
/// p_TP p_FN p_FP p_TN); order: per query, positions 0..k−1 of its list, best first.
struct RerankResult {
    std::vector<float> log_s_rr;
    std::vector<float> s_a;
    std::vector<float> s_fn;
    std::vector<float> class_probs;
    std::vector<std::uint32_t> order;
};

/// Caller buffers for Session::rerank_into; each must hold exactly the stated count
/// (candidate total, 4 × total for class_probs). An empty Span skips that output.
struct RerankOutputs {
    Span<float> log_s_rr;
    Span<float> s_a;
    Span<float> s_fn;
    Span<float> class_probs;
    Span<std::uint32_t> order;
};

struct ResampleRequest {
    /// Negatives to draw per query.
    std::size_t samples_per_query = 0;
    std::uint64_t seed = 0;
    /// The sampler's query index of the batch's first query (SPEC §5).
    std::uint64_t first_query_index = 0;
    /// Empty, or one byte per candidate: nonzero marks a labelled positive, never drawn.
    Span<const std::uint8_t> positive_mask;
};

struct ResampleResult {
    std::vector<float> log_s_rs;
    std::vector<float> s_fn;
    /// n_queries × samples_per_query positions; slots past a query's count hold not_drawn.
    std::vector<std::uint32_t> samples;
    std::vector<std::uint32_t> sample_counts;
    std::size_t samples_per_query = 0;

    /// The positions drawn for query `q` of the batch (unchecked).
    Span<const std::uint32_t> drawn(std::size_t q) const noexcept {
        return {samples.data() + q * samples_per_query, sample_counts[q]};
    }
};

/// Caller buffers for Session::resample_into (lengths as in rrra_resample_outputs); an empty
/// Span skips that output.
struct ResampleOutputs {
    Span<float> log_s_rs;
    Span<float> s_fn;
    Span<std::uint32_t> samples;
    Span<std::uint32_t> sample_counts;
};

namespace detail {
/// The C options, or NULL when nothing is overridden.
inline const rrra_score_options *score_options(const ScoreOptions &o, rrra_score_options &c) noexcept {
    c = sized<rrra_score_options>();
    if (o.lambda_rr) {
        c.override_flags |= RRRA_OVERRIDE_LAMBDA_RR;
        c.lambda_rr = *o.lambda_rr;
    }
    if (o.gamma_rs) {
        c.override_flags |= RRRA_OVERRIDE_GAMMA_RS;
        c.gamma_rs = *o.gamma_rs;
    }
    if (o.base_transform) {
        c.override_flags |= RRRA_OVERRIDE_BASE_TRANSFORM;
        c.base_transform = static_cast<std::uint32_t>(*o.base_transform);
    }
    if (o.base_mu) {
        c.override_flags |= RRRA_OVERRIDE_BASE_MU;
        c.base_mu = *o.base_mu;
    }
    if (o.base_tau) {
        c.override_flags |= RRRA_OVERRIDE_BASE_TAU;
        c.base_tau = *o.base_tau;
    }
    return c.override_flags != 0 ? &c : nullptr;
}
} // namespace detail

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

/// Scratch memory and an engine over a model. Move-only; use from one thread at a time (it may
/// move between threads). Outputs are written only when a call succeeds; on failure it throws
/// and caller buffers keep their contents.
class Session {
public:
    Session() noexcept = default;

    /// Throws RRRA_STATUS_UNSUPPORTED when a forced engine is not available.
    explicit Session(const Model &model, const SessionOptions &options = {}) {
        rrra_session_options c = detail::sized<rrra_session_options>();
        c.engine = static_cast<std::uint32_t>(options.engine);
        c.threads = options.threads;
        c.cpu_kernel = static_cast<std::uint32_t>(options.cpu_kernel);
        c.precision = static_cast<std::uint32_t>(options.precision);
        rrra_session *s = nullptr;
        detail::check(rrra_session_new(model.get(), &c, &s));
        handle_.reset(s);
    }

    /// The engine that runs (never Engine::automatic).
    Engine engine() const {
        std::uint32_t e = 0;
        detail::check(rrra_session_engine(handle_.get(), &e, nullptr));
        return static_cast<Engine>(e);
    }

    /// The folded engine's instruction set (CpuKernel::automatic for an engine without one).
    CpuKernel cpu_kernel() const {
        std::uint32_t k = 0;
        detail::check(rrra_session_cpu_kernel(handle_.get(), &k));
        return static_cast<CpuKernel>(k);
    }

    /// The session's arithmetic.
    Precision precision() const {
        std::uint32_t p = 0;
        detail::check(rrra_session_precision(handle_.get(), &p));
        return static_cast<Precision>(p);
    }

    /// Why that engine was chosen.
    std::string engine_reason() const {
        const char *reason = nullptr;
        detail::check(rrra_session_engine(handle_.get(), nullptr, &reason));
        return reason != nullptr ? reason : "";
    }

    /// Reranks every query of `batch`; outputs are allocated.
    [[nodiscard]] RerankResult rerank(const Batch &batch, const ScoreOptions &options = {}) {
        const std::size_t n = batch.candidate_rows();
        RerankResult r;
        r.log_s_rr.resize(n);
        r.s_a.resize(n);
        r.s_fn.resize(n);
        r.class_probs.resize(detail::checked_mul(n, 4, "class_probs"));
        r.order.resize(n);
        rerank_into(batch, RerankOutputs{r.log_s_rr, r.s_a, r.s_fn, r.class_probs, r.order}, options);
        return r;
    }

    /// One query and its candidate rows.
    [[nodiscard]] RerankResult rerank(Values query, const Matrix &candidates,
                                      Span<const float> base_scores = {}, const ScoreOptions &options = {}) {
        return rerank(Batch::single(query, candidates, base_scores), options);
    }

    /// Reranks into caller buffers (no allocation by the wrapper).
    void rerank_into(const Batch &batch, const RerankOutputs &out, const ScoreOptions &options = {}) {
        rrra_rerank_outputs c = detail::sized<rrra_rerank_outputs>();
        c.log_s_rr = detail::ptr(out.log_s_rr);
        c.log_s_rr_len = out.log_s_rr.size();
        c.s_a = detail::ptr(out.s_a);
        c.s_a_len = out.s_a.size();
        c.s_fn = detail::ptr(out.s_fn);
        c.s_fn_len = out.s_fn.size();
        c.class_probs = detail::ptr(out.class_probs);
        c.class_probs_len = out.class_probs.size();
        c.order = detail::ptr(out.order);
        c.order_len = out.order.size();
        rrra_score_options opt;
        const rrra_batch b = batch.to_c();
        detail::check(rrra_session_rerank(handle_.get(), &b, detail::score_options(options, opt), &c));
    }

    /// The common case: just the order (and optionally log s_RR).
    void rerank_into(const Batch &batch, Span<std::uint32_t> order, Span<float> log_s_rr = {},
                     const ScoreOptions &options = {}) {
        RerankOutputs out;
        out.order = order;
        out.log_s_rr = log_s_rr;
        rerank_into(batch, out, options);
    }

    /// log s_RS and `request.samples_per_query` negatives per query; outputs are allocated.
    [[nodiscard]] ResampleResult resample(const Batch &batch, const ResampleRequest &request,
                                          const ScoreOptions &options = {}) {
        ResampleResult r;
        r.samples_per_query = request.samples_per_query;
        r.log_s_rs.resize(batch.candidate_rows());
        r.s_fn.resize(batch.candidate_rows());
        r.samples.resize(detail::checked_mul(batch.n_queries(), request.samples_per_query, "samples"));
        r.sample_counts.resize(batch.n_queries());
        resample_into(batch, request, ResampleOutputs{r.log_s_rs, r.s_fn, r.samples, r.sample_counts}, options);
        return r;
    }

    void resample_into(const Batch &batch, const ResampleRequest &request, const ResampleOutputs &out,
                       const ScoreOptions &options = {}) {
        rrra_resample_request req = detail::sized<rrra_resample_request>();
        req.samples_per_query = request.samples_per_query;
        req.seed = request.seed;
        req.first_query_index = request.first_query_index;
        req.positive_mask = detail::ptr(request.positive_mask);
        req.positive_mask_len = request.positive_mask.size();
        rrra_resample_outputs c = detail::sized<rrra_resample_outputs>();
        c.log_s_rs = detail::ptr(out.log_s_rs);
        c.log_s_rs_len = out.log_s_rs.size();
        c.s_fn = detail::ptr(out.s_fn);
        c.s_fn_len = out.s_fn.size();
        c.samples = detail::ptr(out.samples);
        c.samples_len = out.samples.size();
        c.sample_counts = detail::ptr(out.sample_counts);
        c.sample_counts_len = out.sample_counts.size();
        rrra_score_options opt;
        const rrra_batch b = batch.to_c();
        detail::check(rrra_session_resample(handle_.get(), &b, detail::score_options(options, opt), &req, &c));
    }

    rrra_session *get() const noexcept { return handle_.get(); }
    explicit operator bool() const noexcept { return handle_ != nullptr; }

private:
    std::unique_ptr<rrra_session, detail::SessionFree> handle_;
};

// ---------------------------------------------------------------------------------------------
// The SPEC §5 sampler on its own
// ---------------------------------------------------------------------------------------------

/// Draws up to samples.size() of one query's candidates (SPEC §5) into `samples`, best key
/// first, the slots past the count set to not_drawn; returns the count. `positive_mask`: empty,
/// or one byte per candidate (nonzero: never drawn).
inline std::size_t sample_negatives_into(Span<const float> log_s_rs, Span<std::uint32_t> samples, std::uint64_t seed,
                                         std::uint64_t query_index, Span<const std::uint8_t> positive_mask = {}) {
    std::size_t count = 0;
    detail::check(rrra_sample_negatives(detail::ptr(log_s_rs), log_s_rs.size(), detail::ptr(positive_mask),
                                        positive_mask.size(), seed, query_index, detail::ptr(samples),
                                        samples.size(), &count));
    return count;
}

/// The positions of up to `n` drawn negatives, best key first.
[[nodiscard]] inline std::vector<std::uint32_t> sample_negatives(Span<const float> log_s_rs, std::size_t n,
                                                                 std::uint64_t seed, std::uint64_t query_index,
                                                                 Span<const std::uint8_t> positive_mask = {}) {
    // At most k can be drawn, and the first draws do not depend on how many slots follow, so
    // an absurd n costs no allocation.
    std::vector<std::uint32_t> out(n < log_s_rs.size() ? n : log_s_rs.size());
    out.resize(sample_negatives_into(log_s_rs, out, seed, query_index, positive_mask));
    return out;
}

} // namespace rrra

#endif /* RRRA_HPP */
