#include "stats.hpp"

#include <algorithm>
#include <cmath>

namespace nsfork::bench {

namespace {

// Nearest-rank percentile of sorted, non-empty samples: the smallest value with at least
// p of the samples at or below it.
double nearest_rank(const std::vector<double>& sorted, double p) {
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

} // namespace

Summary summarize(std::vector<double> samples) {
    Summary s;
    s.n = samples.size();
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    const std::size_t mid = s.n / 2;
    s.median = s.n % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
    s.p90 = nearest_rank(samples, 0.90);
    s.p99 = nearest_rank(samples, 0.99);
    s.min = samples.front();
    s.max = samples.back();
    return s;
}

} // namespace nsfork::bench
