// Turning a verified Launch message into a LaunchSpec: every check that needs no server state.
// Pure (no syscalls), so the fuzzer can drive it.
#pragma once

#include "base/error.hpp"
#include "base/fd.hpp"
#include "launcher/spawn.hpp"
#include "protocol/nsfork_generated.h"

#include <string>
#include <vector>

namespace nsfork {

struct LaunchRequest {
    std::string id;    // checked with validate_id; empty: the server picks one
    LaunchSpec spec;   // argv, env, cwd, the command's process; stdio and extra fds borrowed
                       // from the datagram
    int join_fd = -1;  // a pid namespace fd or pidfd to join, borrowed from the datagram
};

// Checks `req` against the fds that came with it. Each refusal names its cause.
Result<LaunchRequest> parse_launch(const wire::Launch& req, const std::vector<UniqueFd>& fds);

} // namespace nsfork
