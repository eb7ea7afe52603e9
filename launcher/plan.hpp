// The plan a shim receives on its --plan socket (shim_plan.h): encoding and sending it.
#pragma once

#include "base/error.hpp"
#include "launcher/spawn.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace nsfork {

// The plan datagram for `spec`'s argv, env and cwd; nullopt when it exceeds NSFORK_PLAN_MAX
// (the launch then passes them the classic way, through the shim's exec).
std::optional<std::vector<std::uint8_t>> encode_plan(const LaunchSpec& spec);

// Sends `plan` on `sock` with those of `spec`'s stdio fds that are given.
Result<void> send_plan(int sock, const std::vector<std::uint8_t>& plan, const LaunchSpec& spec);

} // namespace nsfork
