// The one clock every figure is taken with: CLOCK_MONOTONIC, in nanoseconds.
#pragma once

#include <cstdint>
#include <ctime>

namespace nsfork::bench {

// Monotonic time in ns; never goes back, unaffected by clock adjustments.
inline std::int64_t now_ns() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline double ns_to_us(std::int64_t ns) noexcept { return static_cast<double>(ns) / 1e3; }

} // namespace nsfork::bench
