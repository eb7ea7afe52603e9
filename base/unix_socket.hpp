// Unix socket pairs: every internal channel of nsfork (a plan, an intermediate's pidfd, an
// embedded server's connection) is one of these.
#pragma once

#include "base/error.hpp"
#include "base/fd.hpp"

#include <utility>

namespace nsfork {

// A connected AF_UNIX SOCK_SEQPACKET pair, both ends close-on-exec from birth.
Result<std::pair<UniqueFd, UniqueFd>> seqpacket_pair();

} // namespace nsfork
