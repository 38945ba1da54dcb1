// random_adapter.hpp: an RRRA adapter file (SPEC §2) with random weights, built in memory.
//
// For examples and tests that have no trained adapter at hand: load the bytes with
// rrra::Model::load_bytes, or write them to a file. The scores such an adapter gives show the
// mechanics of reranking, not relevance. Weights are uniform in ±1/sqrt(fan_in), as
// AdapterWeights::random in the Rust crate draws them (from a different generator).

#ifndef RRRA_EXAMPLE_RANDOM_ADAPTER_HPP
#define RRRA_EXAMPLE_RANDOM_ADAPTER_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace rrra_example {

/// The bytes of a safetensors file holding a d × h adapter with F32 weights and the minimal
/// metadata; `metadata_extra` is appended to the metadata object verbatim (e.g.
/// R"(,"similarity":"cosine")"), for callers that want other score settings.
inline std::vector<std::uint8_t> random_adapter(std::size_t d, std::size_t h, std::uint64_t seed,
                                                const std::string &metadata_extra = "") {
    struct Tensor {
        const char *name;
        std::size_t rows, cols; // cols == 0: a vector of `rows` values
        std::size_t fan_in;
    };
    const Tensor tensors[] = {
        {"fc1.weight", h, 3 * d, 3 * d}, {"fc1.bias", h, 0, 3 * d}, {"fc2.weight", d, h, h},
        {"fc2.bias", d, 0, h},           {"classifier.weight", 4, h, h}, {"classifier.bias", 4, 0, h},
    };

    std::mt19937_64 rng(seed);
    std::vector<float> values;
    std::string header = R"({"__metadata__":{"format":"rrra-adapter","format_version":"1")" + metadata_extra + "}";
    for (const Tensor &t : tensors) {
        const std::size_t count = t.cols == 0 ? t.rows : t.rows * t.cols;
        const std::size_t begin = 4 * values.size();
        const float bound = 1.0f / std::sqrt(static_cast<float>(t.fan_in));
        std::uniform_real_distribution<float> uniform(-bound, bound);
        for (std::size_t i = 0; i < count; i++) {
            values.push_back(uniform(rng));
        }
        const std::string shape = t.cols == 0 ? "[" + std::to_string(t.rows) + "]"
                                              : "[" + std::to_string(t.rows) + "," + std::to_string(t.cols) + "]";
        header += std::string(",\"") + t.name + R"(":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[)" +
                  std::to_string(begin) + "," + std::to_string(4 * values.size()) + "]}";
    }
    header += "}";
    // The reference writer pads the header with spaces to a multiple of 8 bytes, so the
    // tensor data that follows is aligned.
    header.append((8 - header.size() % 8) % 8, ' ');

    std::vector<std::uint8_t> bytes;
    bytes.reserve(8 + header.size() + 4 * values.size());
    const std::uint64_t header_len = header.size();
    for (int i = 0; i < 8; i++) { // little-endian length prefix
        bytes.push_back(static_cast<std::uint8_t>(header_len >> (8 * i)));
    }
    bytes.insert(bytes.end(), header.begin(), header.end());
    for (float v : values) { // little-endian F32, whatever the host's byte order
        std::uint32_t u;
        std::memcpy(&u, &v, sizeof u);
        for (int i = 0; i < 4; i++) {
            bytes.push_back(static_cast<std::uint8_t>(u >> (8 * i)));
        }
    }
    return bytes;
}

} // namespace rrra_example

#endif
