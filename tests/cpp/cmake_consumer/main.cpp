// The downstream program of the packaging checks (CMake and pkg-config): it needs only the
// installed headers and library. Usage: consumer ADAPTER_FILE (any adapter with d = 8).
#include <rrra.hpp>

#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: consumer ADAPTER_FILE\n");
        return 2;
    }
    try {
        if (std::strcmp(rrra::version(), RRRA_VERSION_STRING) != 0) {
            std::printf("consumer: header %s but library %s\n", RRRA_VERSION_STRING, rrra::version());
            return 1;
        }
        const rrra::Model model = rrra::Model::load_file(argv[1]);
        const std::size_t d = model.info().dim;
        rrra::Session session(model);
        std::vector<float> query(d, 0.25f), candidates(3 * d, 0.5f);
        candidates[0] = -1.0f;
        const rrra::RerankResult r = session.rerank(query, rrra::Matrix(candidates, d));
        std::printf("consumer: rrra %s, reranked %zu candidates\n", rrra::version(), r.order.size());
        return r.order.size() == 3 ? 0 : 1;
    } catch (const rrra::Error &e) {
        std::printf("consumer: %s\n", e.what());
        return 1;
    }
}
