// faiss_test.cpp: the FAISS → rrra flow of examples/cpp/faiss_rerank.cpp, checked.
//
// An exact inner-product index (faiss::IndexFlatIP, FAISS's C++ API) retrieves each query's
// top-k; the candidates go to rrra through rrra.hpp both copied out of the index
// (reconstruct) and by id over the index's own storage (rrra::Corpus over get_xb()), with
// FAISS's scores as base scores. Checks: both paths and a direct rrra_session_rerank call on
// the same candidates agree bit for bit; the reranked lists are permutations of FAISS's; with
// λ = 0 the order is FAISS's own; resampling gives the same draws on both paths and never
// draws the labelled positive; short result lists (FAISS's -1 padding) become ragged lists.
//
//   ./faiss_test ADAPTER_FILE        (tests/cpp_faiss.rs writes one with d = 64)
//
// Last line: "faiss_test: N passed, M failed".

#include "check.hpp"
#include "rrra.hpp"

#include <faiss/IndexFlat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

using Id = std::int64_t; // faiss::idx_t in every FAISS version

std::vector<float> unit_vectors(std::size_t rows, std::size_t d, std::mt19937 &rng) {
    std::normal_distribution<float> normal;
    std::vector<float> v(rows * d);
    for (std::size_t r = 0; r < rows; r++) {
        double norm = 0;
        for (std::size_t j = 0; j < d; j++) {
            v[r * d + j] = normal(rng);
            norm += static_cast<double>(v[r * d + j]) * v[r * d + j];
        }
        for (std::size_t j = 0; j < d; j++) {
            v[r * d + j] = static_cast<float>(v[r * d + j] / std::sqrt(norm));
        }
    }
    return v;
}

template <class T> bool same_bits(const std::vector<T> &a, const std::vector<T> &b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool same_bits(const rrra::RerankResult &a, const rrra::RerankResult &b) {
    return same_bits(a.log_s_rr, b.log_s_rr) && same_bits(a.s_a, b.s_a) && same_bits(a.s_fn, b.s_fn) &&
           same_bits(a.class_probs, b.class_probs) && same_bits(a.order, b.order);
}

/// What a retriever hands over: ragged lists (FAISS's -1 padding dropped), packed.
struct Retrieved {
    std::vector<std::size_t> counts;
    std::vector<std::uint64_t> ids;
    std::vector<float> scores;
};

Retrieved search(const faiss::IndexFlatIP &index, const std::vector<float> &xq, std::size_t nq, std::size_t k) {
    std::vector<float> distances(nq * k);
    std::vector<Id> labels(nq * k);
    index.search(static_cast<Id>(nq), xq.data(), static_cast<Id>(k), distances.data(), labels.data());
    Retrieved r;
    r.counts.assign(nq, 0);
    for (std::size_t q = 0; q < nq; q++) {
        for (std::size_t j = 0; j < k && labels[q * k + j] >= 0; j++) {
            r.ids.push_back(static_cast<std::uint64_t>(labels[q * k + j]));
            r.scores.push_back(distances[q * k + j]);
            r.counts[q]++;
        }
    }
    return r;
}

/// rrra_session_rerank called directly on dense candidates, every output requested.
rrra::RerankResult c_rerank(const rrra::Model &model, const std::vector<float> &queries, const Retrieved &r,
                            const std::vector<float> &candidates, std::size_t d, const rrra_score_options *options) {
    const std::size_t total = r.ids.size();
    rrra::RerankResult out;
    out.log_s_rr.resize(total);
    out.s_a.resize(total);
    out.s_fn.resize(total);
    out.class_probs.resize(4 * total);
    out.order.resize(total);
    rrra_session *s = nullptr;
    CHECK(rrra_session_new(model.get(), nullptr, &s) == RRRA_STATUS_OK);
    rrra_batch b;
    std::memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    b.dim = d;
    b.n_queries = r.counts.size();
    b.queries = queries.data();
    b.queries_len = queries.size();
    b.candidate_counts = r.counts.data();
    b.candidates = candidates.data();
    b.candidates_len = candidates.size();
    b.candidate_stride = d;
    b.base_scores = r.scores.data();
    b.base_scores_len = total;
    rrra_rerank_outputs o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.log_s_rr = out.log_s_rr.data();
    o.log_s_rr_len = total;
    o.s_a = out.s_a.data();
    o.s_a_len = total;
    o.s_fn = out.s_fn.data();
    o.s_fn_len = total;
    o.class_probs = out.class_probs.data();
    o.class_probs_len = 4 * total;
    o.order = out.order.data();
    o.order_len = total;
    CHECK(rrra_session_rerank(s, &b, options, &o) == RRRA_STATUS_OK);
    rrra_session_free(s);
    return out;
}

void test_flow(const rrra::Model &model) {
    const std::size_t d = model.info().dim, n = 3000, nq = 16, k = 25;
    std::mt19937 rng(1234);
    const std::vector<float> xb = unit_vectors(n, d, rng);
    const std::vector<float> xq = unit_vectors(nq, d, rng);
    faiss::IndexFlatIP index(static_cast<Id>(d));
    index.add(static_cast<Id>(n), xb.data());
    CHECK(index.ntotal == static_cast<Id>(n));

    const Retrieved r = search(index, xq, nq, k);
    CHECK(r.ids.size() == nq * k);
    bool best_first = true; // FAISS returns each list best first
    for (std::size_t i = 1; i < r.ids.size(); i++) {
        best_first = best_first && (i % k == 0 || r.scores[i - 1] >= r.scores[i]);
    }
    CHECK(best_first);

    // Copied candidates: reconstruct gives back exactly the indexed rows (a flat index).
    std::vector<float> candidates(r.ids.size() * d);
    for (std::size_t i = 0; i < r.ids.size(); i++) {
        index.reconstruct(static_cast<Id>(r.ids[i]), candidates.data() + i * d);
    }
    bool exact = true;
    for (std::size_t i = 0; i < r.ids.size(); i++) {
        exact = exact && std::memcmp(candidates.data() + i * d, xb.data() + r.ids[i] * d, d * sizeof(float)) == 0;
    }
    CHECK(exact);

    rrra::Session session(model);
    const rrra::RerankResult dense =
        session.rerank(rrra::Batch::dense(xq, r.counts, rrra::Matrix(candidates, d), r.scores));

    // The library's own answer for the same candidates.
    CHECK(same_bits(dense, c_rerank(model, xq, r, candidates, d, nullptr)));

    // By id over the index's storage: no copy, same bits.
    const rrra::Corpus corpus(rrra::Matrix(index.get_xb(), static_cast<std::size_t>(index.ntotal), d));
    const rrra::Batch by_id_batch = rrra::Batch::by_id(xq, r.counts, corpus, r.ids, r.scores);
    CHECK(same_bits(session.rerank(by_id_batch), dense));

    // Each reranked list is a permutation of the query's FAISS list.
    bool permutations = true;
    for (std::size_t q = 0; q < nq; q++) {
        std::vector<std::uint32_t> seen(dense.order.begin() + static_cast<std::ptrdiff_t>(q * k),
                                        dense.order.begin() + static_cast<std::ptrdiff_t>((q + 1) * k));
        std::sort(seen.begin(), seen.end());
        for (std::size_t j = 0; j < k; j++) {
            permutations = permutations && seen[j] == j;
        }
    }
    CHECK(permutations);

    // λ = 0: only the base score counts, and the sigmoid is monotone, so FAISS's order stays
    // (ties, which keep the input order in both, included).
    rrra::ScoreOptions base_only;
    base_only.lambda_rr = 0.0;
    const rrra::RerankResult kept = session.rerank(by_id_batch, base_only);
    bool identity = true;
    for (std::size_t i = 0; i < kept.order.size(); i++) {
        identity = identity && kept.order[i] == i % k;
    }
    CHECK(identity);
    rrra_score_options co;
    std::memset(&co, 0, sizeof co);
    co.struct_size = sizeof co;
    co.override_flags = RRRA_OVERRIDE_LAMBDA_RR;
    co.lambda_rr = 0.0;
    CHECK(same_bits(kept, c_rerank(model, xq, r, candidates, d, &co)));

    // With the adapter the order changes somewhere (random weights, 16 lists of 25).
    CHECK(!same_bits(dense.order, kept.order));

    // Several threads in one session: the same bits.
    rrra::SessionOptions threaded;
    threaded.threads = 4;
    CHECK(same_bits(rrra::Session(model, threaded).rerank(by_id_batch), dense));

    // Hard negatives over the same candidates, FAISS's top-1 as the labelled positive (SPEC §7).
    std::vector<std::uint8_t> mask(r.ids.size(), 0);
    for (std::size_t q = 0; q < nq; q++) {
        mask[q * k] = 1;
    }
    rrra::ResampleRequest req;
    req.samples_per_query = 5;
    req.seed = 99;
    req.positive_mask = mask;
    const rrra::ResampleResult drawn = session.resample(by_id_batch, req);
    const rrra::ResampleResult drawn_dense =
        session.resample(rrra::Batch::dense(xq, r.counts, rrra::Matrix(candidates, d), r.scores), req);
    CHECK(same_bits(drawn.samples, drawn_dense.samples) && same_bits(drawn.log_s_rs, drawn_dense.log_s_rs));
    bool draws_ok = true;
    for (std::size_t q = 0; q < nq; q++) {
        draws_ok = draws_ok && drawn.sample_counts[q] == 5;
        for (std::uint32_t pos : drawn.drawn(q)) {
            draws_ok = draws_ok && pos != 0 && pos < k;
        }
    }
    CHECK(draws_ok); // five per query, never the positive
}

void test_short_lists(const rrra::Model &model) {
    // Five vectors, k = 8: FAISS pads every list with -1, which must not reach rrra as an id.
    const std::size_t d = model.info().dim, n = 5, nq = 3, k = 8;
    std::mt19937 rng(7);
    const std::vector<float> xb = unit_vectors(n, d, rng);
    const std::vector<float> xq = unit_vectors(nq, d, rng);
    faiss::IndexFlatIP index(static_cast<Id>(d));
    index.add(static_cast<Id>(n), xb.data());
    const Retrieved r = search(index, xq, nq, k);
    CHECK(r.counts == std::vector<std::size_t>(nq, n));

    const rrra::Corpus corpus(rrra::Matrix(index.get_xb(), n, d));
    rrra::Session session(model);
    const rrra::RerankResult got = session.rerank(rrra::Batch::by_id(xq, r.counts, corpus, r.ids, r.scores));
    CHECK(got.order.size() == nq * n);

    // An unfiltered -1 would be an id out of range, which the library refuses with a message.
    std::vector<std::uint64_t> raw(r.ids);
    raw[2] = static_cast<std::uint64_t>(Id{-1});
    EXPECT_ERROR((void)session.rerank(rrra::Batch::by_id(xq, r.counts, corpus, raw, r.scores)),
                 RRRA_STATUS_INVALID_ARGUMENT, "");
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::printf("usage: faiss_test ADAPTER_FILE\n");
        return 2;
    }
    try {
        const rrra::Model model = rrra::Model::load_file(argv[1]);
        test_flow(model);
        test_short_lists(model);
    } catch (const std::exception &e) {
        check::report(false, __FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
    }
    return check::finish("faiss_test");
}
