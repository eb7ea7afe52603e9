#include "alternate.hpp"

namespace nsfork::bench {

Alternated alternate(int rounds, const std::vector<Variant>& variants, int warmup) {
    const std::size_t k = variants.size();
    Alternated out;
    out.samples.resize(k);
    out.errors.resize(k);
    for (int round = -warmup; round < rounds; ++round) {
        for (std::size_t step = 0; step < k; ++step) {
            const std::size_t i = (static_cast<std::size_t>(round + warmup) + step) % k;
            if (out.errors[i]) continue;
            auto sample = variants[i].run();
            if (!sample) out.errors[i] = std::move(sample).error();
            else if (round >= 0) out.samples[i].push_back(*sample);
        }
    }
    return out;
}

} // namespace nsfork::bench
