// Order statistics of a set of samples: what every figure of the report is made of.
#pragma once

#include <cstddef>
#include <vector>

namespace nsfork::bench {

struct Summary {
    std::size_t n = 0;
    double median = 0;
    double p90 = 0;
    double p99 = 0;
    double min = 0;
    double max = 0;
};

// Median (mean of the two middle samples when n is even) and nearest-rank percentiles.
// With few samples p99 is simply the largest: n is always printed beside it.
Summary summarize(std::vector<double> samples);

} // namespace nsfork::bench
