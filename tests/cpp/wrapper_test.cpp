// wrapper_test.cpp: exercises every part of include/rrra.hpp and its error paths, and checks
// that the wrapper returns exactly (bit for bit) what the C API returns for the same inputs.
//
//   c++ -std=c++17 -Wall -Wextra -Werror -pthread -Iinclude -Iexamples/cpp -Itests/cpp
//       tests/cpp/wrapper_test.cpp librrra.a -lpthread -ldl -lm        (one line)
//   ./wrapper_test SCRATCH_DIR ADAPTER_FILE
//
// tests/cpp_faiss.rs builds it under ASan + UBSan and writes ADAPTER_FILE with the Rust API:
// AdapterWeights::random(8, 6, 11) with the settings in `expected_info` below (keep the two in
// step). The last line of output is "wrapper_test: N passed, M failed".

#include "check.hpp"
#include "random_adapter.hpp"
#include "rrra.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Compile-time properties of the wrapper
// ---------------------------------------------------------------------------------------------

template <class T>
constexpr bool move_only_v = !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
                             std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
                             std::is_nothrow_destructible_v<T>;
static_assert(move_only_v<rrra::Model>);
static_assert(move_only_v<rrra::Corpus>);
static_assert(move_only_v<rrra::Session>);
static_assert(std::is_base_of_v<std::runtime_error, rrra::Error>);
static_assert(std::is_nothrow_copy_constructible_v<rrra::Error>);

// Span conversions: writable views only of lvalues with matching, non-const elements.
static_assert(std::is_convertible_v<std::vector<float> &, rrra::Span<float>>);
static_assert(std::is_convertible_v<std::vector<float> &, rrra::Span<const float>>);
static_assert(std::is_convertible_v<const std::vector<float> &, rrra::Span<const float>>);
static_assert(std::is_convertible_v<std::vector<float>, rrra::Span<const float>>);
static_assert(std::is_convertible_v<std::array<float, 3> &, rrra::Span<float>>);
static_assert(std::is_convertible_v<float (&)[4], rrra::Span<float>>);
static_assert(std::is_convertible_v<rrra::Span<float>, rrra::Span<const float>>);
static_assert(!std::is_convertible_v<const std::vector<float> &, rrra::Span<float>>);
static_assert(!std::is_convertible_v<std::vector<float>, rrra::Span<float>>);
static_assert(!std::is_convertible_v<std::vector<double> &, rrra::Span<const float>>);
static_assert(!std::is_convertible_v<rrra::Span<const float>, rrra::Span<float>>);
static_assert(!std::is_convertible_v<std::vector<std::int32_t> &, rrra::Span<std::uint32_t>>);

// Values: floats convert as Spans do; 16-bit patterns must say whether they are f16 or bf16.
static_assert(std::is_convertible_v<std::vector<float> &, rrra::Values>);
static_assert(std::is_convertible_v<const std::vector<float> &, rrra::Values>);
static_assert(std::is_convertible_v<rrra::Span<float>, rrra::Values>);
static_assert(std::is_convertible_v<rrra::Span<const float>, rrra::Values>);
static_assert(!std::is_convertible_v<std::vector<std::uint16_t> &, rrra::Values>);
static_assert(!std::is_convertible_v<std::vector<double> &, rrra::Values>);
static_assert(!std::is_convertible_v<rrra::Values, rrra::Span<const float>>);
static_assert(std::is_same_v<std::underlying_type_t<rrra::Dtype>, std::uint32_t>);

// The C structs the wrapper fills: a struct_size mismatch would be refused at run time, but the
// fields the wrapper sets must exist in this header's version.
static_assert(sizeof(rrra_session_options) == sizeof(std::size_t) + 4 * sizeof(std::uint32_t));

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

constexpr std::size_t D = 8;    // the Rust-written adapter's d
constexpr std::size_t H = 6;    // and h
constexpr std::size_t NQ = 3;   // queries in the ragged batch
constexpr std::size_t TOTAL = 7; // 3 + 0 + 4 candidates
constexpr std::size_t STRIDE = 11;       // dense candidate stride; the padding holds NaN
constexpr std::size_t CORPUS_ROWS = 12;
constexpr std::size_t CORPUS_STRIDE = 10; // the padding holds NaN
const float NaN = std::numeric_limits<float>::quiet_NaN();

const std::vector<std::size_t> COUNTS = {3, 0, 4};
const std::vector<std::uint64_t> IDS = {5, 0, 11, 3, 3, 7, 1}; // a repeated id is allowed
const std::vector<std::uint8_t> MASK = {1, 0, 0, 0, 0, 1, 0};

rrra::ModelInfo expected_info() {
    rrra::ModelInfo i;
    i.dim = D;
    i.hidden = H;
    i.parameter_count = H * 3 * D + H + D * H + D + 4 * H + 4;
    i.activation = rrra::Activation::gelu;
    i.similarity = rrra::Similarity::cosine;
    i.base_transform = rrra::BaseTransform::sigmoid;
    i.adapter_mu = 0.125;
    i.adapter_tau = 0.5;
    i.base_mu = 0.25;
    i.base_tau = 0.75;
    i.lambda_rr = 0.625;
    i.gamma_rs = 1.5;
    i.encoder = "cpp-wrapper-test encoder";
    return i;
}

struct Rng {
    std::uint64_t s = 0x9E3779B97F4A7C15ull;
    float uniform(float lo, float hi) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return lo + (hi - lo) * static_cast<float>(s >> 40) / static_cast<float>(1ull << 24);
    }
};

struct Fixture {
    std::vector<float> queries;    // NQ × D
    std::vector<float> candidates; // TOTAL rows, STRIDE apart (exact minimum length)
    std::vector<float> corpus;     // CORPUS_ROWS rows, CORPUS_STRIDE apart
    std::vector<float> by_id_rows; // the corpus rows IDS names, packed: dense twin of the id batch
    std::vector<float> base;       // TOTAL retriever scores, positive

    Fixture() {
        Rng rng;
        for (std::size_t i = 0; i < NQ * D; i++) {
            queries.push_back(rng.uniform(-1, 1));
        }
        candidates.assign((TOTAL - 1) * STRIDE + D, NaN);
        for (std::size_t r = 0; r < TOTAL; r++) {
            for (std::size_t j = 0; j < D; j++) {
                candidates[r * STRIDE + j] = rng.uniform(-1, 1);
            }
        }
        corpus.assign(CORPUS_ROWS * CORPUS_STRIDE, NaN);
        for (std::size_t r = 0; r < CORPUS_ROWS; r++) {
            for (std::size_t j = 0; j < D; j++) {
                corpus[r * CORPUS_STRIDE + j] = rng.uniform(-1, 1);
            }
        }
        for (std::uint64_t id : IDS) {
            by_id_rows.insert(by_id_rows.end(), corpus.begin() + static_cast<std::ptrdiff_t>(id * CORPUS_STRIDE),
                              corpus.begin() + static_cast<std::ptrdiff_t>(id * CORPUS_STRIDE + D));
        }
        for (std::size_t i = 0; i < TOTAL; i++) {
            base.push_back(rng.uniform(0.1f, 2.0f));
        }
    }

    rrra::Matrix candidate_matrix() const { return rrra::Matrix(candidates.data(), TOTAL, D, STRIDE); }
    rrra::Batch dense() const { return rrra::Batch::dense(queries, COUNTS, candidate_matrix(), base); }
};

template <class T> bool same_bits(const std::vector<T> &a, const std::vector<T> &b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool same_bits(const rrra::RerankResult &a, const rrra::RerankResult &b) {
    return same_bits(a.log_s_rr, b.log_s_rr) && same_bits(a.s_a, b.s_a) && same_bits(a.s_fn, b.s_fn) &&
           same_bits(a.class_probs, b.class_probs) && same_bits(a.order, b.order);
}

bool same_bits(const rrra::ResampleResult &a, const rrra::ResampleResult &b) {
    return same_bits(a.log_s_rs, b.log_s_rs) && same_bits(a.s_fn, b.s_fn) && same_bits(a.samples, b.samples) &&
           same_bits(a.sample_counts, b.sample_counts);
}

// ---------------------------------------------------------------------------------------------
// f16 and bf16 by hand (round to nearest, ties to even), independent of the library
// ---------------------------------------------------------------------------------------------

std::uint32_t float_bits(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}

float bits_float(std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

std::uint16_t to_bf16(float x) {
    const std::uint32_t u = float_bits(x);
    if (std::isnan(x)) {
        return static_cast<std::uint16_t>((u >> 16) | 0x40); // quiet, whatever the payload
    }
    return static_cast<std::uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

float from_bf16(std::uint16_t b) { return bits_float(static_cast<std::uint32_t>(b) << 16); }

std::uint16_t to_f16(float x) {
    const std::uint32_t u = float_bits(x);
    const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000);
    const std::uint32_t abs = u & 0x7FFFFFFF;
    if (abs > 0x7F800000) {
        return static_cast<std::uint16_t>(sign | 0x7E00);
    }
    if (abs >= 0x477FF000) { // 65520 and up round to infinity
        return static_cast<std::uint16_t>(sign | 0x7C00);
    }
    const int exp = static_cast<int>(abs >> 23) - 127;
    if (exp >= -14) { // normal: drop 13 mantissa bits; a carry rolls into the exponent
        std::uint32_t h = (static_cast<std::uint32_t>(exp + 15) << 10) | ((abs >> 13) & 0x3FF);
        const std::uint32_t rest = abs & 0x1FFF;
        h += (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ? 1 : 0;
        return static_cast<std::uint16_t>(sign | h);
    }
    // Subnormal: units of 2^-24; the implicit bit becomes explicit.
    const int shift = -exp - 1;
    if (shift > 24) {
        return sign;
    }
    const std::uint32_t m = (abs & 0x7FFFFF) | 0x800000;
    std::uint32_t h = m >> shift;
    const std::uint32_t rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    h += (rest > half || (rest == half && (h & 1))) ? 1 : 0;
    return static_cast<std::uint16_t>(sign | h);
}

float from_f16(std::uint16_t h) {
    const float sign = (h & 0x8000) != 0 ? -1.0f : 1.0f;
    const int e = (h >> 10) & 0x1F;
    const int m = h & 0x3FF;
    if (e == 31) {
        return m == 0 ? sign * std::numeric_limits<float>::infinity() : NaN;
    }
    return sign * (e == 0 ? std::ldexp(static_cast<float>(m), -24) : std::ldexp(static_cast<float>(1024 + m), e - 25));
}

template <class F> std::vector<std::uint16_t> narrow(const std::vector<float> &v, F to) {
    std::vector<std::uint16_t> out;
    for (float x : v) {
        out.push_back(to(x));
    }
    return out;
}

template <class F> std::vector<float> widen(const std::vector<std::uint16_t> &v, F from) {
    std::vector<float> out;
    for (std::uint16_t b : v) {
        out.push_back(from(b));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// The same calls straight through the C API, for the bit-for-bit comparisons
// ---------------------------------------------------------------------------------------------

rrra_batch c_batch(const Fixture &f, const std::size_t *counts, std::size_t n_queries) {
    rrra_batch b;
    std::memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    b.dim = D;
    b.n_queries = n_queries;
    b.queries = f.queries.data();
    b.queries_len = n_queries * D;
    b.candidate_counts = counts;
    b.candidates = f.candidates.data();
    b.candidates_len = f.candidates.size();
    b.candidate_stride = STRIDE;
    b.base_scores = f.base.data();
    b.base_scores_len = TOTAL;
    return b;
}

rrra::RerankResult c_rerank(rrra_session *s, const rrra_batch &b, std::size_t total,
                            const rrra_score_options *options = nullptr) {
    rrra::RerankResult r;
    r.log_s_rr.resize(total);
    r.s_a.resize(total);
    r.s_fn.resize(total);
    r.class_probs.resize(4 * total);
    r.order.resize(total);
    rrra_rerank_outputs o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.log_s_rr = r.log_s_rr.data();
    o.log_s_rr_len = total;
    o.s_a = r.s_a.data();
    o.s_a_len = total;
    o.s_fn = r.s_fn.data();
    o.s_fn_len = total;
    o.class_probs = r.class_probs.data();
    o.class_probs_len = 4 * total;
    o.order = r.order.data();
    o.order_len = total;
    const rrra_status st = rrra_session_rerank(s, &b, options, &o);
    CHECK(st == RRRA_STATUS_OK);
    return r;
}

rrra::ResampleResult c_resample(rrra_session *s, const rrra_batch &b, std::size_t total, std::size_t spq,
                                std::uint64_t seed, std::uint64_t first, const std::uint8_t *mask,
                                const rrra_score_options *options = nullptr) {
    rrra::ResampleResult r;
    r.samples_per_query = spq;
    r.log_s_rs.resize(total);
    r.s_fn.resize(total);
    r.samples.resize(b.n_queries * spq);
    r.sample_counts.resize(b.n_queries);
    rrra_resample_request q;
    std::memset(&q, 0, sizeof q);
    q.struct_size = sizeof q;
    q.samples_per_query = spq;
    q.seed = seed;
    q.first_query_index = first;
    q.positive_mask = mask;
    q.positive_mask_len = mask != nullptr ? total : 0;
    rrra_resample_outputs o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.log_s_rs = r.log_s_rs.data();
    o.log_s_rs_len = total;
    o.s_fn = r.s_fn.data();
    o.s_fn_len = total;
    o.samples = r.samples.data();
    o.samples_len = r.samples.size();
    o.sample_counts = r.sample_counts.data();
    o.sample_counts_len = r.sample_counts.size();
    const rrra_status st = rrra_session_resample(s, &b, options, &q, &o);
    CHECK(st == RRRA_STATUS_OK);
    return r;
}

/// A C session of its own, so the comparisons share no state with the wrapper's session.
struct CSession {
    rrra_session *s = nullptr;
    explicit CSession(const rrra::Model &m) { CHECK(rrra_session_new(m.get(), nullptr, &s) == RRRA_STATUS_OK); }
    ~CSession() { rrra_session_free(s); }
    CSession(const CSession &) = delete;
    CSession &operator=(const CSession &) = delete;
};

std::vector<std::uint8_t> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool same_info(const rrra::ModelInfo &a, const rrra::ModelInfo &b) {
    return a.dim == b.dim && a.hidden == b.hidden && a.parameter_count == b.parameter_count &&
           a.activation == b.activation && a.similarity == b.similarity && a.base_transform == b.base_transform &&
           a.adapter_mu == b.adapter_mu && a.adapter_tau == b.adapter_tau && a.base_mu == b.base_mu &&
           a.base_tau == b.base_tau && a.lambda_rr == b.lambda_rr && a.gamma_rs == b.gamma_rs &&
           a.encoder == b.encoder;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

void test_version_and_names() {
    CHECK(std::string(rrra::version()) == RRRA_VERSION_STRING);
    CHECK(std::string(rrra::status_name(RRRA_STATUS_INVALID_MODEL)) == "RRRA_STATUS_INVALID_MODEL");
    CHECK(rrra::not_drawn == UINT32_MAX);

    const rrra::Error e(RRRA_STATUS_IO, "disk on fire");
    CHECK(e.status() == RRRA_STATUS_IO);
    CHECK(std::string(e.message()) == "disk on fire");
    CHECK(std::string(e.what()) == "RRRA_STATUS_IO: disk on fire");
    CHECK(std::string(e.status_name()) == "RRRA_STATUS_IO");
    const rrra::Error copy = e; // copies share the message and keep the status
    CHECK(copy.status() == RRRA_STATUS_IO && std::string(copy.message()) == "disk on fire");
}

void test_spans() {
    std::vector<float> v = {1, 2, 3, 4};
    std::array<float, 3> a = {5, 6, 7};
    float c[2] = {8, 9};
    const rrra::Span<float> sv = v;
    const rrra::Span<const float> sa = a;
    const rrra::Span<float> sc = c;
    const rrra::Span<const float> widened = sv;
    CHECK(sv.data() == v.data() && sv.size() == 4 && sa.size() == 3 && sc.size() == 2);
    CHECK(widened.data() == v.data() && widened.size() == 4);
    float sum = 0;
    for (float x : sv.subspan(1, 2)) {
        sum += x;
    }
    CHECK(sum == 5.0f);
    sv[0] = 10;
    CHECK(v[0] == 10.0f);
    CHECK(rrra::Span<float>().empty() && rrra::Span<float>().data() == nullptr);

    const rrra::Matrix m(v.data(), 2, 1, 3); // rows 0 and 3 of a stride-3 buffer
    CHECK(m.rows() == 2 && m.cols() == 1 && m.row_stride() == 3 && m.data_len() == 4);
    CHECK(m.row(1).data() == v.data() + 3 && m.row(1).size() == 1);
    const rrra::Matrix packed(v, 2);
    CHECK(packed.rows() == 2 && packed.cols() == 2 && packed.row_stride() == 2 && packed.data_len() == 4);
    CHECK(rrra::Matrix().rows() == 0 && rrra::Matrix().data_len() == 0);
    EXPECT_WRAPPER_ERROR(rrra::Matrix(v, 3), RRRA_STATUS_INVALID_ARGUMENT, "not whole rows of 3");
    EXPECT_WRAPPER_ERROR(rrra::Matrix(v, 0), RRRA_STATUS_INVALID_ARGUMENT, "whole rows");
    EXPECT_WRAPPER_ERROR(rrra::Matrix(v.data(), std::numeric_limits<std::size_t>::max(), 2, 2),
                         RRRA_STATUS_INVALID_ARGUMENT, "overflows");
    EXPECT_WRAPPER_ERROR(rrra::Matrix(v.data(), 2, std::numeric_limits<std::size_t>::max(), 1),
                         RRRA_STATUS_INVALID_ARGUMENT, "overflows");
}

rrra::Model test_loading(const std::string &dir, const std::string &path) {
    EXPECT_ERROR(rrra::Model::load_file(dir + "/missing.safetensors"), RRRA_STATUS_IO, "missing.safetensors");
    EXPECT_WRAPPER_ERROR(rrra::Model::load_file(std::string("a\0b", 3)), RRRA_STATUS_INVALID_ARGUMENT, "NUL");
    const std::vector<std::uint8_t> garbage = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    EXPECT_ERROR(rrra::Model::load_bytes(garbage), RRRA_STATUS_INVALID_MODEL, "");
    EXPECT_ERROR(rrra::Model::load_bytes(nullptr, 0), RRRA_STATUS_INVALID_MODEL, "");
    EXPECT_ERROR(rrra::Model::load_bytes(rrra_example::random_adapter(5, 3, 1, R"(,"bogus_key":"1")")),
                 RRRA_STATUS_INVALID_MODEL, "bogus_key");
    EXPECT_ERROR(rrra::Model::load_bytes(rrra_example::random_adapter(5, 3, 1, R"(,"adapter_tau":"0")")),
                 RRRA_STATUS_INVALID_MODEL, "adapter_tau");

    // An rrra::Error is a std::runtime_error and carries the library's message.
    try {
        (void)rrra::Model::load_file(dir + "/also-missing.safetensors");
        CHECK(false);
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()).find("also-missing.safetensors") != std::string::npos);
    }

    rrra::Model model = rrra::Model::load_file(path);
    CHECK(static_cast<bool>(model) && model.get() != nullptr);
    CHECK(same_info(model.info(), expected_info()));

    const std::vector<std::uint8_t> bytes = read_file(path);
    CHECK(!bytes.empty());
    const rrra::Model from_bytes = rrra::Model::load_bytes(bytes);
    CHECK(same_info(from_bytes.info(), expected_info()));
    const rrra::Model from_pointer = rrra::Model::load_bytes(static_cast<const void *>(bytes.data()), bytes.size());
    CHECK(same_info(from_pointer.info(), expected_info()));

    const rrra::ModelInfo small = rrra::Model::load_bytes(rrra_example::random_adapter(5, 3, 2)).info();
    CHECK(small.dim == 5 && small.hidden == 3 && small.parameter_count == 84);
    CHECK(small.activation == rrra::Activation::relu && small.similarity == rrra::Similarity::dot);
    CHECK(small.base_transform == rrra::BaseTransform::sigmoid && small.lambda_rr == 1.0 && small.encoder.empty());
    return model;
}

void test_model_handles(const std::string &path) {
    rrra::Model a = rrra::Model::load_file(path);
    rrra::Model b(std::move(a));
    CHECK(!a && a.get() == nullptr && static_cast<bool>(b));
    EXPECT_ERROR((void)a.info(), RRRA_STATUS_NULL_POINTER, "model");
    EXPECT_ERROR(rrra::Session{a}, RRRA_STATUS_NULL_POINTER, "model");
    a = std::move(b);
    CHECK(static_cast<bool>(a) && !b);
    // Assigning over a live handle frees the old one (LeakSanitizer would see it otherwise).
    a = rrra::Model::load_bytes(rrra_example::random_adapter(5, 3, 3));
    CHECK(a.info().dim == 5);
    a = rrra::Model();
    CHECK(!a);

    // release() hands the handle back to C; the adopting constructor takes it again.
    rrra::Model c = rrra::Model::load_file(path);
    rrra_model *raw = c.release();
    CHECK(!c && raw != nullptr);
    rrra::Model adopted(raw);
    CHECK(adopted.get() == raw && adopted.info().dim == D);
    rrra::Model d = rrra::Model::load_file(path);
    rrra_model_free(d.release()); // freed by hand exactly once; d's destructor frees nothing
    CHECK(!d);
}

void test_sessions(const rrra::Model &model, const Fixture &f) {
    rrra::Session s(model);
    CHECK(static_cast<bool>(s) && s.get() != nullptr);
    CHECK(s.engine() == rrra::Engine::reference || s.engine() == rrra::Engine::folded ||
          s.engine() == rrra::Engine::cuda);
    CHECK(!s.engine_reason().empty());

    rrra::SessionOptions reference;
    reference.engine = rrra::Engine::reference;
    CHECK(rrra::Session(model, reference).engine() == rrra::Engine::reference);
    rrra::SessionOptions folded;
    folded.engine = rrra::Engine::folded;
    CHECK(rrra::Session(model, folded).engine() == rrra::Engine::folded);
    CHECK(rrra::Session(model, folded).cpu_kernel() != rrra::CpuKernel::automatic);
    CHECK(rrra::Session(model, reference).cpu_kernel() == rrra::CpuKernel::automatic);
    folded.cpu_kernel = rrra::CpuKernel::portable;
    CHECK(rrra::Session(model, folded).cpu_kernel() == rrra::CpuKernel::portable);
    CHECK(rrra::Session(model, folded).precision() == rrra::Precision::f32);
    rrra::SessionOptions half;
    half.precision = rrra::Precision::f16;
    try {
        CHECK(rrra::Session(model, half).precision() == rrra::Precision::f16);
    } catch (const rrra::Error &e) {
        CHECK(e.status() == RRRA_STATUS_UNSUPPORTED);  // no AVX512-FP16 on this CPU
    }
    rrra::SessionOptions threaded;
    threaded.threads = 4;
    rrra::Session four(model, threaded);
    CHECK(same_bits(four.rerank(f.dense()), s.rerank(f.dense())));

    rrra::SessionOptions bad_engine;
    bad_engine.engine = static_cast<rrra::Engine>(77);
    EXPECT_ERROR(rrra::Session(model, bad_engine), RRRA_STATUS_INVALID_ARGUMENT, "engine");
    rrra::SessionOptions too_many;
    too_many.threads = 5000;
    EXPECT_ERROR(rrra::Session(model, too_many), RRRA_STATUS_INVALID_ARGUMENT, "thread");

    // Moved-from sessions are empty; every call on them fails cleanly.
    rrra::Session moved = std::move(s);
    CHECK(!s && static_cast<bool>(moved));
    EXPECT_ERROR((void)s.engine(), RRRA_STATUS_NULL_POINTER, "session");
    EXPECT_ERROR((void)s.engine_reason(), RRRA_STATUS_NULL_POINTER, "session");
    EXPECT_ERROR((void)s.rerank(f.dense()), RRRA_STATUS_NULL_POINTER, "session");
    rrra::ResampleRequest req;
    req.samples_per_query = 1;
    EXPECT_ERROR((void)s.resample(f.dense(), req), RRRA_STATUS_NULL_POINTER, "session");
    s = std::move(moved);
    CHECK(static_cast<bool>(s) && !moved);

    // A session keeps its own reference to the model.
    rrra::Model temporary = rrra::Model::load_bytes(rrra_example::random_adapter(D, 4, 9));
    rrra::Session outlives(temporary);
    temporary = rrra::Model();
    CHECK(outlives.rerank(f.dense()).order.size() == TOTAL);
}

void test_rerank(const rrra::Model &model, const Fixture &f) {
    rrra::Session s(model);
    CSession c(model);
    const rrra_batch cb = c_batch(f, COUNTS.data(), NQ);
    const rrra::RerankResult want = c_rerank(c.s, cb, TOTAL);

    // The allocating call, every output, bit for bit.
    const rrra::RerankResult got = s.rerank(f.dense());
    CHECK(same_bits(got, want));
    CHECK(got.order.size() == TOTAL && got.class_probs.size() == 4 * TOTAL);

    // Into caller buffers: all five outputs, then only some.
    rrra::RerankResult into;
    into.log_s_rr.assign(TOTAL, -1);
    into.s_a.assign(TOTAL, -1);
    into.s_fn.assign(TOTAL, -1);
    into.class_probs.assign(4 * TOTAL, -1);
    into.order.assign(TOTAL, 99);
    s.rerank_into(f.dense(), rrra::RerankOutputs{into.log_s_rr, into.s_a, into.s_fn, into.class_probs, into.order});
    CHECK(same_bits(into, want));
    std::vector<std::uint32_t> order(TOTAL, 99);
    std::vector<float> log_s_rr(TOTAL, -1);
    s.rerank_into(f.dense(), order, log_s_rr);
    CHECK(same_bits(order, want.order) && same_bits(log_s_rr, want.log_s_rr));
    std::vector<std::uint32_t> order_only(TOTAL, 99);
    s.rerank_into(f.dense(), order_only);
    CHECK(same_bits(order_only, want.order));

    // A wrong-length buffer: the library names it, and nothing is written anywhere.
    std::vector<std::uint32_t> short_order(TOTAL - 1, 42);
    std::vector<float> untouched(TOTAL, -7);
    EXPECT_ERROR(s.rerank_into(f.dense(), short_order, untouched), RRRA_STATUS_INVALID_ARGUMENT, "order");
    CHECK(short_order == std::vector<std::uint32_t>(TOTAL - 1, 42) && untouched == std::vector<float>(TOTAL, -7));

    // Overlapping output buffers are refused.
    std::vector<float> shared(TOTAL, 0);
    rrra::RerankOutputs overlap;
    overlap.log_s_rr = shared;
    overlap.s_a = shared;
    EXPECT_ERROR(s.rerank_into(f.dense(), overlap), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");

    // One query through the single-query overloads, against the C API with n_queries = 1.
    const std::size_t q2 = 2, start2 = 3, k2 = COUNTS[2];
    const std::vector<float> query2(f.queries.begin() + static_cast<std::ptrdiff_t>(q2 * D),
                                    f.queries.begin() + static_cast<std::ptrdiff_t>((q2 + 1) * D));
    const rrra::Matrix rows2(f.candidates.data() + start2 * STRIDE, k2, D, STRIDE);
    const std::vector<float> base2(f.base.begin() + start2, f.base.begin() + start2 + k2);
    rrra_batch cb2 = c_batch(f, &k2, 1);
    cb2.queries = query2.data();
    cb2.candidates = rows2.data();
    cb2.candidates_len = rows2.data_len();
    cb2.base_scores = base2.data();
    cb2.base_scores_len = k2;
    const rrra::RerankResult want2 = c_rerank(c.s, cb2, k2);
    CHECK(same_bits(s.rerank(query2, rows2, base2), want2));
    std::vector<std::uint32_t> order2(k2);
    s.rerank_into(rrra::Batch::single(query2, rows2, base2), order2);
    CHECK(same_bits(order2, want2.order));
    const rrra::Batch single = rrra::Batch::single(query2, rows2);
    CHECK(single.n_queries() == 1 && single.candidate_rows() == k2 && single.dim() == D);

    // Score overrides reach the library exactly as set.
    rrra::ScoreOptions no_adapter;
    no_adapter.lambda_rr = 0.0;
    rrra_score_options co;
    std::memset(&co, 0, sizeof co);
    co.struct_size = sizeof co;
    co.override_flags = RRRA_OVERRIDE_LAMBDA_RR;
    co.lambda_rr = 0.0;
    const rrra::RerankResult base_only = s.rerank(f.dense(), no_adapter);
    CHECK(same_bits(base_only, c_rerank(c.s, cb, TOTAL, &co)));
    // With λ = 0 the order is the retriever's (the sigmoid transform is monotone).
    bool base_order = true;
    for (std::size_t q = 0, start = 0; q < NQ; start += COUNTS[q], q++) {
        for (std::size_t j = 1; j < COUNTS[q]; j++) {
            base_order = base_order && f.base[start + base_only.order[start + j - 1]] >=
                                           f.base[start + base_only.order[start + j]];
        }
    }
    CHECK(base_order);
    rrra::ScoreOptions all;
    all.lambda_rr = 2.0;
    all.gamma_rs = 0.5;
    all.base_transform = rrra::BaseTransform::softmax;
    all.base_mu = 0.1;
    all.base_tau = 0.3;
    co.override_flags = RRRA_OVERRIDE_LAMBDA_RR | RRRA_OVERRIDE_GAMMA_RS | RRRA_OVERRIDE_BASE_TRANSFORM |
                        RRRA_OVERRIDE_BASE_MU | RRRA_OVERRIDE_BASE_TAU;
    co.lambda_rr = 2.0;
    co.gamma_rs = 0.5;
    co.base_transform = RRRA_BASE_TRANSFORM_SOFTMAX;
    co.base_mu = 0.1;
    co.base_tau = 0.3;
    CHECK(same_bits(s.rerank(f.dense(), all), c_rerank(c.s, cb, TOTAL, &co)));
    CHECK(!same_bits(s.rerank(f.dense(), all).log_s_rr, want.log_s_rr));
    rrra::ScoreOptions bad_tau;
    bad_tau.base_tau = 0.0;
    EXPECT_ERROR((void)s.rerank(f.dense(), bad_tau), RRRA_STATUS_INVALID_ARGUMENT, "base_tau");
    rrra::ScoreOptions identity;
    identity.base_transform = rrra::BaseTransform::identity;
    std::vector<float> negative_base = f.base;
    negative_base[4] = -0.5f;
    EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(f.queries, COUNTS, f.candidate_matrix(), negative_base), identity),
                 RRRA_STATUS_INVALID_ARGUMENT, "");

    // Input errors, each named by the library.
    std::vector<float> wide(TOTAL * (D + 1), 0.5f);
    std::vector<float> wide_queries(NQ * (D + 1), 0.5f);
    EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(wide_queries, COUNTS, rrra::Matrix(wide, D + 1))),
                 RRRA_STATUS_DIMENSION_MISMATCH, "dim");
    std::vector<float> nan_queries = f.queries;
    nan_queries[D + 3] = NaN; // query 1, which has no candidates, is not checked; query 2 is
    nan_queries[2 * D + 3] = NaN;
    EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(nan_queries, COUNTS, f.candidate_matrix(), f.base)),
                 RRRA_STATUS_NON_FINITE_INPUT, "quer");
    const std::vector<std::size_t> wrong_counts = {3, 0, 3};
    EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(f.queries, wrong_counts, f.candidate_matrix(), f.base)),
                 RRRA_STATUS_INVALID_ARGUMENT, "candidate");
    EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(f.queries, COUNTS, f.candidate_matrix(),
                                                   rrra::Span<const float>(f.base.data(), TOTAL - 1))),
                 RRRA_STATUS_INVALID_ARGUMENT, "base_scores");
    EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(rrra::Span<const float>(f.queries.data(), NQ * D - 1), COUNTS,
                                                   f.candidate_matrix())),
                 RRRA_STATUS_INVALID_ARGUMENT, "queries");

    // Empty batches: no queries at all, and queries with no candidates.
    const rrra::RerankResult none = s.rerank(rrra::Batch::dense({}, {}, rrra::Matrix(nullptr, 0, D)));
    CHECK(none.order.empty() && none.log_s_rr.empty() && none.class_probs.empty());
    const std::vector<std::size_t> zeros = {0, 0, 0};
    const rrra::RerankResult no_candidates =
        s.rerank(rrra::Batch::dense(f.queries, zeros, rrra::Matrix(nullptr, 0, D)));
    CHECK(no_candidates.order.empty());
    EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(f.queries, COUNTS, rrra::Matrix(nullptr, 0, D))),
                 RRRA_STATUS_NULL_POINTER, "candidates");
}

void test_corpus(const rrra::Model &model, const Fixture &f) {
    rrra::Session s(model);
    CSession c(model);
    const rrra::Matrix rows(f.corpus.data(), CORPUS_ROWS, D, CORPUS_STRIDE);
    rrra::Corpus corpus(rows);
    CHECK(static_cast<bool>(corpus) && corpus.rows() == CORPUS_ROWS && corpus.dim() == D);

    // By id == the same rows given densely == the C API by id, bit for bit.
    const rrra::Batch by_id = rrra::Batch::by_id(f.queries, COUNTS, corpus, IDS, f.base);
    CHECK(by_id.candidate_rows() == TOTAL && by_id.n_queries() == NQ && by_id.dim() == D);
    const rrra::RerankResult got = s.rerank(by_id);
    const rrra::RerankResult dense = s.rerank(rrra::Batch::dense(f.queries, COUNTS, rrra::Matrix(f.by_id_rows, D), f.base));
    CHECK(same_bits(got, dense));
    rrra_batch cb = c_batch(f, COUNTS.data(), NQ);
    cb.candidates = nullptr;
    cb.candidates_len = 0;
    cb.candidate_stride = 0;
    cb.corpus = corpus.get();
    cb.candidate_ids = IDS.data();
    cb.candidate_ids_len = IDS.size();
    CHECK(same_bits(got, c_rerank(c.s, cb, TOTAL)));

    std::vector<std::uint64_t> bad_ids = IDS;
    bad_ids[1] = CORPUS_ROWS;
    EXPECT_ERROR((void)s.rerank(rrra::Batch::by_id(f.queries, COUNTS, corpus, bad_ids, f.base)),
                 RRRA_STATUS_INVALID_ARGUMENT, "12");
    EXPECT_ERROR(rrra::Corpus(rrra::Matrix(f.corpus.data(), 3, D, D - 1)), RRRA_STATUS_INVALID_ARGUMENT, "stride");
    EXPECT_ERROR(rrra::Corpus(rrra::Matrix(nullptr, 0, 0)), RRRA_STATUS_INVALID_ARGUMENT, "");

    // Moving a Corpus moves the registration; the empty one fails cleanly in a batch.
    rrra::Corpus moved = std::move(corpus);
    CHECK(!corpus && corpus.rows() == 0 && corpus.dim() == 0 && moved.rows() == CORPUS_ROWS);
    CHECK(same_bits(s.rerank(rrra::Batch::by_id(f.queries, COUNTS, moved, IDS, f.base)), got));
    EXPECT_ERROR((void)s.rerank(rrra::Batch::by_id(f.queries, COUNTS, corpus, IDS, f.base)),
                 RRRA_STATUS_NULL_POINTER, "corpus");
    corpus = std::move(moved);
    CHECK(static_cast<bool>(corpus) && !moved);
}

void test_half_conversions() {
    // The helpers the 16-bit tests trust: exact on every f16 value, ties to even, the edges.
    bool round_trips = true;
    for (std::uint32_t h = 0; h <= 0xFFFF; h++) {
        const auto bits = static_cast<std::uint16_t>(h);
        const float x = from_f16(bits);
        round_trips = round_trips && (std::isnan(x) ? (to_f16(x) & 0x7FFF) > 0x7C00 : to_f16(x) == bits);
        const float y = from_bf16(bits);
        round_trips = round_trips && (std::isnan(y) ? to_bf16(y) == (bits | 0x0040) : to_bf16(y) == bits);
    }
    CHECK(round_trips);
    CHECK(to_f16(1.0f) == 0x3C00 && to_f16(-2.0f) == 0xC000 && to_f16(65504.0f) == 0x7BFF);
    CHECK(to_f16(65519.0f) == 0x7BFF && to_f16(65520.0f) == 0x7C00);
    CHECK(to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);     // a tie, to the even 1.0
    CHECK(to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02); // a tie, to the even 1 + 2^-9
    CHECK(to_f16(std::ldexp(1.0f, -24)) == 0x0001 && to_f16(std::ldexp(1.0f, -25)) == 0x0000);
    CHECK(to_f16(std::ldexp(3.0f, -26)) == 0x0001 && to_f16(std::ldexp(1023.5f, -24)) == 0x0400);
    CHECK(to_bf16(1.0f) == 0x3F80 && to_bf16(bits_float(0x3F808000)) == 0x3F80 &&
          to_bf16(bits_float(0x3F818000)) == 0x3F82 && to_bf16(bits_float(0x3F808001)) == 0x3F81);
}

void test_dtypes(const rrra::Model &model, const Fixture &f) {
    rrra::Session s(model);
    CSession c(model);

    // The views: Dtype, NULL float accessors on 16-bit data, the wrapper's own checks.
    const std::vector<std::uint16_t> packed = narrow(f.by_id_rows, to_f16);
    const rrra::Values v(rrra::Dtype::f16, packed);
    CHECK(v.dtype() == rrra::Dtype::f16 && v.data() == packed.data() && v.size() == TOTAL * D);
    CHECK(rrra::Values(f.queries).dtype() == rrra::Dtype::f32 && rrra::Values().empty());
    const rrra::Matrix m(v, D);
    CHECK(m.dtype() == rrra::Dtype::f16 && m.values() == packed.data() && m.rows() == TOTAL && m.cols() == D);
    CHECK(m.data() == nullptr && m.row(1).empty() && m.data_len() == TOTAL * D);
    const rrra::Matrix strided(rrra::Dtype::bf16, packed.data(), 2, 3, 5);
    CHECK(strided.dtype() == rrra::Dtype::bf16 && strided.row_stride() == 5 && strided.data_len() == 8);
    CHECK(f.candidate_matrix().dtype() == rrra::Dtype::f32 && f.candidate_matrix().data() == f.candidates.data());
    EXPECT_WRAPPER_ERROR(rrra::Values(rrra::Dtype::f32, packed), RRRA_STATUS_INVALID_ARGUMENT, "Dtype::f32");
    EXPECT_WRAPPER_ERROR(rrra::Matrix(rrra::Dtype::f32, packed.data(), TOTAL, D), RRRA_STATUS_INVALID_ARGUMENT,
                         "Dtype::f32");
    EXPECT_WRAPPER_ERROR(rrra::Matrix(v, 3), RRRA_STATUS_INVALID_ARGUMENT, "not whole rows of 3");

    const std::vector<std::uint16_t> corpus_rows16 = narrow(f.corpus, to_f16);
    const std::vector<float> corpus_rows16_wide = widen(corpus_rows16, from_f16);
    const rrra::Corpus corpus16(rrra::Matrix(rrra::Dtype::f16, corpus_rows16.data(), CORPUS_ROWS, D, CORPUS_STRIDE));
    const rrra::Corpus corpus16_wide(rrra::Matrix(corpus_rows16_wide.data(), CORPUS_ROWS, D, CORPUS_STRIDE));
    CHECK(corpus16.rows() == CORPUS_ROWS && corpus16.dim() == D);

    struct Case {
        const char *name;
        rrra::Dtype dtype;
        std::uint16_t (*to)(float);
        float (*from)(std::uint16_t);
    };
    for (const Case &k : {Case{"f16", rrra::Dtype::f16, to_f16, from_f16},
                          Case{"bf16", rrra::Dtype::bf16, to_bf16, from_bf16}}) {
        // Each 16-bit batch against the same values widened to float (the NaN padding too).
        const std::vector<std::uint16_t> q16 = narrow(f.queries, k.to), c16 = narrow(f.candidates, k.to);
        const std::vector<float> q = widen(q16, k.from), cand = widen(c16, k.from);
        const rrra::Values queries16(k.dtype, q16);
        const rrra::Matrix candidates16(k.dtype, c16.data(), TOTAL, D, STRIDE);
        const rrra::Matrix candidates(cand.data(), TOTAL, D, STRIDE);
        const rrra::RerankResult want = s.rerank(rrra::Batch::dense(q, COUNTS, candidates, f.base));
        const bool narrowed = !same_bits(q, f.queries) && !same_bits(cand, f.candidates);
        CHECK(narrowed && !same_bits(want.log_s_rr, s.rerank(f.dense()).log_s_rr));
        const rrra::RerankResult got = s.rerank(rrra::Batch::dense(queries16, COUNTS, candidates16, f.base));
        check::report(same_bits(got, want), __FILE__, __LINE__, std::string(k.name) + " batch == its float values");
        CHECK(same_bits(s.rerank(rrra::Batch::dense(q, COUNTS, candidates16, f.base)), want));
        CHECK(same_bits(s.rerank(rrra::Batch::dense(queries16, COUNTS, candidates, f.base)), want));

        // The C API with the same dtypes agrees with the wrapper.
        rrra_batch cb = c_batch(f, COUNTS.data(), NQ);
        cb.queries = q16.data();
        cb.queries_dtype = static_cast<std::uint32_t>(k.dtype);
        cb.candidates = c16.data();
        cb.candidates_dtype = static_cast<std::uint32_t>(k.dtype);
        CHECK(same_bits(got, c_rerank(c.s, cb, TOTAL)));

        // One query, and resampling.
        const std::size_t start2 = 3, k2 = COUNTS[2];
        const std::vector<std::uint16_t> query2(q16.begin() + 2 * D, q16.begin() + 3 * D);
        const std::vector<float> base2(f.base.begin() + start2, f.base.begin() + start2 + k2);
        CHECK(same_bits(s.rerank(rrra::Values(k.dtype, query2),
                                 rrra::Matrix(k.dtype, c16.data() + start2 * STRIDE, k2, D, STRIDE), base2),
                        s.rerank(rrra::Span<const float>(q.data() + 2 * D, D),
                                 rrra::Matrix(cand.data() + start2 * STRIDE, k2, D, STRIDE), base2)));
        rrra::ResampleRequest req;
        req.samples_per_query = 2;
        req.seed = 77;
        req.positive_mask = MASK;
        CHECK(same_bits(s.resample(rrra::Batch::dense(queries16, COUNTS, candidates16, f.base), req),
                        s.resample(rrra::Batch::dense(q, COUNTS, candidates, f.base), req)));

        // A NaN candidate and an infinite query are named like float ones.
        std::vector<std::uint16_t> bad_c16 = c16;
        bad_c16[4 * STRIDE + 3] = k.to(NaN); // row 4: query 2, position 1
        EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(queries16, COUNTS,
                                                       rrra::Matrix(k.dtype, bad_c16.data(), TOTAL, D, STRIDE))),
                     RRRA_STATUS_NON_FINITE_INPUT, "candidates: query 2, position 1, column 3 is NaN");
        std::vector<std::uint16_t> bad_q16 = q16;
        bad_q16[5] = k.to(-std::numeric_limits<float>::infinity());
        EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(rrra::Values(k.dtype, bad_q16), COUNTS, candidates16)),
                     RRRA_STATUS_NON_FINITE_INPUT, "queries: query 0, column 5");
        EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(rrra::Values(k.dtype, {q16.data(), NQ * D - 1}), COUNTS,
                                                       candidates16)),
                     RRRA_STATUS_INVALID_ARGUMENT, "queries");

        // By id: float and 16-bit queries against an f16 corpus, and its float twin.
        const rrra::RerankResult by_id_want = s.rerank(rrra::Batch::by_id(q, COUNTS, corpus16_wide, IDS, f.base));
        CHECK(same_bits(s.rerank(rrra::Batch::by_id(q, COUNTS, corpus16, IDS, f.base)), by_id_want));
        CHECK(same_bits(s.rerank(rrra::Batch::by_id(queries16, COUNTS, corpus16_wide, IDS, f.base)), by_id_want));
        CHECK(same_bits(s.rerank(rrra::Batch::by_id(queries16, COUNTS, corpus16, IDS, f.base)), by_id_want));
    }

    // A bf16 corpus; a non-finite value in a registered row shows up when a batch uses it.
    std::vector<std::uint16_t> brain_rows = narrow(f.corpus, to_bf16);
    const std::vector<float> brain_wide = widen(brain_rows, from_bf16);
    brain_rows[11 * CORPUS_STRIDE + 6] = to_bf16(NaN);
    const rrra::Corpus brain(rrra::Matrix(rrra::Dtype::bf16, brain_rows.data(), CORPUS_ROWS, D, CORPUS_STRIDE));
    const std::vector<std::uint64_t> clean_ids = {5, 0, 10, 3, 3, 7, 1};
    CHECK(same_bits(
        s.rerank(rrra::Batch::by_id(f.queries, COUNTS, brain, clean_ids, f.base)),
        s.rerank(rrra::Batch::by_id(f.queries, COUNTS,
                                    rrra::Corpus(rrra::Matrix(brain_wide.data(), CORPUS_ROWS, D, CORPUS_STRIDE)),
                                    clean_ids, f.base))));
    EXPECT_ERROR((void)s.rerank(rrra::Batch::by_id(f.queries, COUNTS, brain, IDS, f.base)),
                 RRRA_STATUS_NON_FINITE_INPUT, "query 0, position 2, column 6");

    // Dtype codes the library does not know are its to refuse.
    const auto unknown = static_cast<rrra::Dtype>(7);
    EXPECT_ERROR((void)s.rerank(rrra::Batch::dense(rrra::Values(unknown, packed), COUNTS, f.candidate_matrix())),
                 RRRA_STATUS_INVALID_ARGUMENT, "unknown element type 7");
    EXPECT_ERROR(rrra::Corpus(rrra::Matrix(unknown, packed.data(), TOTAL, D)), RRRA_STATUS_INVALID_ARGUMENT,
                 "unknown element type 7");
}

void test_resample(const rrra::Model &model, const Fixture &f) {
    rrra::Session s(model);
    CSession c(model);
    const rrra_batch cb = c_batch(f, COUNTS.data(), NQ);
    const std::size_t spq = 2;
    const std::uint64_t seed = 0xC0FFEE, first = 40;

    rrra::ResampleRequest req;
    req.samples_per_query = spq;
    req.seed = seed;
    req.first_query_index = first;
    req.positive_mask = MASK;
    const rrra::ResampleResult got = s.resample(f.dense(), req);
    CHECK(same_bits(got, c_resample(c.s, cb, TOTAL, spq, seed, first, MASK.data())));
    CHECK(got.samples.size() == NQ * spq && got.sample_counts.size() == NQ && got.samples_per_query == spq);

    // drawn(q), the not_drawn padding, the mask, and agreement with the sampler on its own.
    for (std::size_t q = 0, start = 0; q < NQ; start += COUNTS[q], q++) {
        const rrra::Span<const std::uint32_t> drawn = got.drawn(q);
        CHECK(drawn.size() == got.sample_counts[q] && drawn.size() <= spq);
        for (std::size_t j = drawn.size(); j < spq; j++) {
            CHECK(got.samples[q * spq + j] == rrra::not_drawn);
        }
        for (std::uint32_t pos : drawn) {
            CHECK(pos < COUNTS[q] && MASK[start + pos] == 0);
        }
        const rrra::Span<const float> scores(got.log_s_rs.data() + start, COUNTS[q]);
        const rrra::Span<const std::uint8_t> mask(MASK.data() + start, COUNTS[q]);
        const std::vector<std::uint32_t> alone = rrra::sample_negatives(scores, spq, seed, first + q, mask);
        CHECK(alone == std::vector<std::uint32_t>(drawn.begin(), drawn.end()));
    }

    // Into caller buffers.
    rrra::ResampleResult into;
    into.samples_per_query = spq;
    into.log_s_rs.assign(TOTAL, 0);
    into.s_fn.assign(TOTAL, 0);
    into.samples.assign(NQ * spq, 0);
    into.sample_counts.assign(NQ, 0);
    s.resample_into(f.dense(), req, rrra::ResampleOutputs{into.log_s_rs, into.s_fn, into.samples, into.sample_counts});
    CHECK(same_bits(into, got));
    std::vector<std::uint32_t> counts_only(NQ, 0);
    rrra::ResampleOutputs partial;
    partial.sample_counts = counts_only;
    s.resample_into(f.dense(), req, partial);
    CHECK(counts_only == got.sample_counts);

    // Overrides, and a mask of the wrong length.
    rrra::ScoreOptions gamma;
    gamma.gamma_rs = 3.0;
    rrra_score_options co;
    std::memset(&co, 0, sizeof co);
    co.struct_size = sizeof co;
    co.override_flags = RRRA_OVERRIDE_GAMMA_RS;
    co.gamma_rs = 3.0;
    CHECK(same_bits(s.resample(f.dense(), req, gamma), c_resample(c.s, cb, TOTAL, spq, seed, first, MASK.data(), &co)));
    rrra::ResampleRequest bad = req;
    bad.positive_mask = rrra::Span<const std::uint8_t>(MASK.data(), TOTAL - 1);
    EXPECT_ERROR((void)s.resample(f.dense(), bad), RRRA_STATUS_INVALID_ARGUMENT, "positive_mask");
}

void test_sampler() {
    const std::vector<float> log_s_rs = {-0.5f, -3.0f, -0.1f, -1.2f, -0.7f, -2.2f};
    const std::vector<std::uint8_t> mask = {0, 0, 1, 0, 0, 0};
    std::vector<std::uint32_t> c_samples(4, 0);
    std::size_t c_count = 0;
    CHECK(rrra_sample_negatives(log_s_rs.data(), log_s_rs.size(), mask.data(), mask.size(), 5, 9, c_samples.data(),
                                c_samples.size(), &c_count) == RRRA_STATUS_OK);
    const std::vector<std::uint32_t> got = rrra::sample_negatives(log_s_rs, 4, 5, 9, mask);
    CHECK(got.size() == c_count && std::equal(got.begin(), got.end(), c_samples.begin()));

    // More slots than candidates: all eligible ones, the rest padded (into) or cut (allocating).
    std::vector<std::uint32_t> wide(10, 0);
    CHECK(rrra::sample_negatives_into(log_s_rs, wide, 5, 9, mask) == 5);
    for (std::size_t j = 5; j < wide.size(); j++) {
        CHECK(wide[j] == rrra::not_drawn);
    }
    CHECK(rrra::sample_negatives(log_s_rs, std::numeric_limits<std::size_t>::max(), 5, 9, mask).size() == 5);
    // The first n draws do not depend on how many slots follow them.
    CHECK(rrra::sample_negatives(log_s_rs, 3, 5, 9, mask) == std::vector<std::uint32_t>(wide.begin(), wide.begin() + 3));
    CHECK(rrra::sample_negatives({}, 3, 5, 9).empty());
    CHECK(rrra::sample_negatives(log_s_rs, 0, 5, 9).empty());

    std::vector<float> bad = log_s_rs;
    bad[3] = std::numeric_limits<float>::infinity();
    EXPECT_ERROR((void)rrra::sample_negatives(bad, 2, 5, 9), RRRA_STATUS_NON_FINITE_INPUT, "");
    EXPECT_ERROR((void)rrra::sample_negatives(log_s_rs, 2, 5, 9, rrra::Span<const std::uint8_t>(mask.data(), 2)),
                 RRRA_STATUS_INVALID_ARGUMENT, "mask");
}

void test_threads(const rrra::Model &model, const Fixture &f) {
    // One shared model, one session per thread; every thread gets the single-threaded result,
    // and each thread's failures carry that thread's own message.
    const rrra::RerankResult want = rrra::Session(model).rerank(f.dense());
    constexpr int kThreads = 4;
    std::vector<rrra::RerankResult> results(kThreads);
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
        threads.emplace_back([&, t] {
            rrra::Session s(model);
            for (int i = 0; i < 20; i++) {
                results[static_cast<std::size_t>(t)] = s.rerank(f.dense());
            }
            try {
                (void)rrra::Model::load_file("/nonexistent/thread-" + std::to_string(t));
            } catch (const rrra::Error &e) {
                errors[static_cast<std::size_t>(t)] = e.message();
            }
        });
    }
    for (std::thread &t : threads) {
        t.join();
    }
    for (int t = 0; t < kThreads; t++) {
        CHECK(same_bits(results[static_cast<std::size_t>(t)], want));
        CHECK(errors[static_cast<std::size_t>(t)].find("thread-" + std::to_string(t)) != std::string::npos);
    }
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        std::printf("usage: wrapper_test SCRATCH_DIR ADAPTER_FILE\n");
        return 2;
    }
    const std::string dir = argv[1], path = argv[2];
    try {
        const Fixture f;
        test_version_and_names();
        test_spans();
        const rrra::Model model = test_loading(dir, path);
        test_model_handles(path);
        test_sessions(model, f);
        test_rerank(model, f);
        test_corpus(model, f);
        test_half_conversions();
        test_dtypes(model, f);
        test_resample(model, f);
        test_sampler();
        test_threads(model, f);
    } catch (const std::exception &e) {
        check::report(false, __FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
    }
    return check::finish("wrapper_test");
}
