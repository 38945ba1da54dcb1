// faiss_rerank: retrieve with FAISS, rerank the top-k with an RRRA adapter through rrra.hpp.
//
//   faiss_rerank [adapter.safetensors]
//
// Builds an exact inner-product index (faiss::IndexFlatIP) over N random unit vectors, searches
// the top-k of a few queries and reranks each query's candidates, passing FAISS's inner products
// as the base scores (the adapter file's base_transform, sigmoid by default, maps them to s_B).
// d is the adapter's. Without an adapter file it builds a random one (d = 64) in memory: the
// reranked order then shows the mechanics, not relevance.
//
// The candidates reach rrra in two ways, and the program checks that both give the same scores:
//  1. copied: `reconstruct` each candidate from the index into a (nq·k) × d buffer. This works for
//     any index that can reconstruct (compressed ones decode approximately);
//  2. by id: the flat index's own storage (get_xb()) registered once as an rrra::Corpus, and
//     FAISS's ids passed as they are. No vector is copied; only flat indexes hold raw vectors.
// Then the same by id over an f16 corpus: an IndexScalarQuantizer with QT_fp16 keeps each vector
// as d IEEE halves, which rrra reads in place (rrra::Dtype::f16). It scores exactly as the halves
// widened to float, i.e. as the candidates that index reconstructs, which the program checks too.
//
// Build (see docs/cpp.md):
//   cargo build --release
//   c++ -std=c++17 -O2 -fopenmp -Iinclude examples/cpp/faiss_rerank.cpp target/release/librrra.a
//       -lfaiss -llapack -lblas -lpthread -ldl -lm -o faiss_rerank      (one line)

#include "rrra.hpp"
#include "random_adapter.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexScalarQuantizer.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <vector>

namespace {

// FAISS's id type: faiss::idx_t (Index::idx_t before 1.7.4), int64_t in every version.
using Id = std::int64_t;

constexpr std::size_t kDefaultDim = 64;
constexpr std::size_t kCorpusSize = 5000;
constexpr std::size_t kQueries = 4;
constexpr std::size_t kTopK = 10;

/// `rows` random unit vectors of `d` values, packed.
std::vector<float> unit_vectors(std::size_t rows, std::size_t d, std::mt19937 &rng) {
    std::normal_distribution<float> normal;
    std::vector<float> v(rows * d);
    for (std::size_t r = 0; r < rows; r++) {
        float *row = v.data() + r * d;
        double norm = 0;
        for (std::size_t j = 0; j < d; j++) {
            row[j] = normal(rng);
            norm += static_cast<double>(row[j]) * row[j];
        }
        const float scale = static_cast<float>(1.0 / std::sqrt(norm));
        for (std::size_t j = 0; j < d; j++) {
            row[j] *= scale;
        }
    }
    return v;
}

int run(int argc, char **argv) {
    rrra::Model model = argc > 1 ? rrra::Model::load_file(argv[1])
                                 : rrra::Model::load_bytes(rrra_example::random_adapter(kDefaultDim, 32, 7));
    const rrra::ModelInfo info = model.info();
    const std::size_t d = info.dim;
    std::printf("adapter: %s, d = %zu, h = %zu\n", argc > 1 ? argv[1] : "random (in memory)", d, info.hidden);

    rrra::Session session(model);
    std::printf("engine: %s\n", session.engine_reason().c_str());

    // The retriever: exact inner product over unit vectors (cosine similarity).
    std::mt19937 rng(42);
    const std::vector<float> xb = unit_vectors(kCorpusSize, d, rng);
    const std::vector<float> xq = unit_vectors(kQueries, d, rng);
    faiss::IndexFlatIP index(static_cast<Id>(d));
    index.add(static_cast<Id>(kCorpusSize), xb.data());

    std::vector<float> scores(kQueries * kTopK);
    std::vector<Id> labels(kQueries * kTopK);
    index.search(static_cast<Id>(kQueries), xq.data(), static_cast<Id>(kTopK),
                 scores.data(), labels.data());

    // FAISS pads a short result list with id -1; rrra's lists are ragged, so each query keeps
    // only its real hits and the lists are packed one after another.
    std::vector<std::size_t> counts(kQueries, 0);
    std::vector<std::uint64_t> ids;
    std::vector<float> base;
    for (std::size_t q = 0; q < kQueries; q++) {
        for (std::size_t j = 0; j < kTopK && labels[q * kTopK + j] >= 0; j++) {
            ids.push_back(static_cast<std::uint64_t>(labels[q * kTopK + j]));
            base.push_back(scores[q * kTopK + j]);
            counts[q]++;
        }
    }

    // 1. Copied candidates.
    std::vector<float> candidates(ids.size() * d);
    for (std::size_t i = 0; i < ids.size(); i++) {
        index.reconstruct(static_cast<Id>(ids[i]), candidates.data() + i * d);
    }
    const rrra::RerankResult copied =
        session.rerank(rrra::Batch::dense(xq, counts, rrra::Matrix(candidates, d), base));

    // 2. By id, over the index's own storage. The Corpus must not outlive the index, and must
    // be rebuilt after index.add(), which may move get_xb().
    const rrra::Corpus corpus(rrra::Matrix(index.get_xb(), static_cast<std::size_t>(index.ntotal), d));
    const rrra::RerankResult by_id = session.rerank(rrra::Batch::by_id(xq, counts, corpus, ids, base));

    std::size_t start = 0;
    for (std::size_t q = 0; q < kQueries; q++) {
        std::printf("query %zu: faiss   ", q);
        for (std::size_t j = 0; j < counts[q]; j++) {
            std::printf(" %llu", static_cast<unsigned long long>(ids[start + j]));
        }
        std::printf("\nquery %zu: reranked", q);
        for (std::size_t j = 0; j < counts[q]; j++) {
            // order holds positions within the query's own list.
            std::printf(" %llu", static_cast<unsigned long long>(ids[start + copied.order[start + j]]));
        }
        std::printf("\n");
        start += counts[q];
    }

    // 3. By id over an f16 corpus: the fp16 index's codes are n rows of d halves (code_size =
    // 2·d bytes), registered as they are. The same rules as for get_xb() apply to `codes`.
    faiss::IndexScalarQuantizer index16(static_cast<Id>(d), faiss::ScalarQuantizer::QT_fp16,
                                        faiss::METRIC_INNER_PRODUCT);
    index16.add(static_cast<Id>(kCorpusSize), xb.data());
    if (index16.code_size != 2 * d) {
        std::fprintf(stderr, "faiss_rerank: unexpected QT_fp16 code size %zu\n", index16.code_size);
        return 1;
    }
    const rrra::Corpus corpus16(rrra::Matrix(rrra::Dtype::f16,
                                             reinterpret_cast<const std::uint16_t *>(index16.codes.data()),
                                             static_cast<std::size_t>(index16.ntotal), d));
    const rrra::RerankResult by_id16 = session.rerank(rrra::Batch::by_id(xq, counts, corpus16, ids, base));
    std::vector<float> widened(ids.size() * d);
    for (std::size_t i = 0; i < ids.size(); i++) {
        index16.reconstruct(static_cast<Id>(ids[i]), widened.data() + i * d);
    }
    const rrra::RerankResult copied16 =
        session.rerank(rrra::Batch::dense(xq, counts, rrra::Matrix(widened, d), base));

    const auto same_scores = [](const rrra::RerankResult &a, const rrra::RerankResult &b) {
        return a.order == b.order &&
               std::memcmp(a.log_s_rr.data(), b.log_s_rr.data(), a.log_s_rr.size() * sizeof(float)) == 0;
    };
    const bool same16 = same_scores(by_id16, copied16);
    std::printf("f16 corpus (QT_fp16 codes, by id) gives the same scores as its reconstructed candidates: %s\n",
                same16 ? "yes" : "NO");
    const bool same = same_scores(copied, by_id);
    std::printf("by-id corpus (no copy) gives the same scores as the copied candidates: %s\n", same ? "yes" : "NO");
    return same && same16 ? 0 : 1;
}

} // namespace

int main(int argc, char **argv) {
    try {
        return run(argc, argv);
    } catch (const rrra::Error &e) {
        std::fprintf(stderr, "faiss_rerank: %s\n", e.what());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "faiss_rerank: %s\n", e.what());
    }
    return 1;
}
