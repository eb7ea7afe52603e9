// Sizes every part of nsfork agrees on (base/limits.h), as typed constants.
#pragma once

#include <cstddef>

extern "C" {
#include "base/limits.h"
}

namespace nsfork {

inline constexpr std::size_t kMaxIdLength = NSFORK_MAX_ID_LENGTH;
inline constexpr std::size_t kMaxDatagram = NSFORK_MAX_DATAGRAM;
inline constexpr std::size_t kMaxPassedFds = NSFORK_MAX_PASSED_FDS;
inline constexpr std::size_t kMaxPlanBytes = NSFORK_PLAN_MAX;
static_assert(kMaxPlanBytes < kMaxDatagram, "a plan travels in one datagram");

} // namespace nsfork
