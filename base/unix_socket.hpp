// Unix socket pairs: every internal channel of nsfork (a plan, an intermediate's pidfd, an
// embedded server's connection) is one of these.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <sys/un.h>

#include <string>
#include <utility>

namespace nsfork {

// The address of the socket file at `path`; refused, naming it, when it does not fit sun_path.
Result<sockaddr_un> unix_address(const std::string& path);

// A connected AF_UNIX SOCK_SEQPACKET pair, both ends close-on-exec from birth.
Result<std::pair<UniqueFd, UniqueFd>> seqpacket_pair();

} // namespace nsfork
