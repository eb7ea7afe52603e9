// The plan a shim receives on its --plan socket (shim_plan.h): encoding and sending it, and a
// whole launch through one (what a launcher without a server does; the server does the same
// steps itself, spread over its event loop).
#pragma once

#include "base/error.hpp"
#include "base/fd.hpp"
#include "launcher/spawn.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace nsfork {

// The plan datagram for `spec`'s command (argv, env, cwd and its process's settings); nullopt
// when it exceeds NSFORK_PLAN_MAX (the launch then passes argv, env and cwd the classic way,
// through the shim's exec) or when check_command_settings refuses `spec` (spawn() then says why).
std::optional<std::vector<std::uint8_t>> encode_plan(const LaunchSpec& spec);

// Sends `plan` on `sock` with those of `spec`'s stdio fds that are given, then its extra fds.
Result<void> send_plan(int sock, const std::vector<std::uint8_t>& plan, const LaunchSpec& spec);

// A launch through a plan, cold: spawned, its plan sent.
struct PlannedLaunch {
    Spawned spawned;  // spawned.report: the init's setup report (an OK once the shim is up)
    UniqueFd channel; // the plan socket: the command's exec report, then, with spec.foreground,
                      // the job-control channel (job_control.h); empty on the classic path
};

// Spawns `spec` (its plan_fd is ours to set) and sends it its plan; a command too large for a
// plan goes the classic way (spawn() refuses settings that need a plan). Only from a
// single-threaded process, like spawn().
Result<PlannedLaunch> spawn_planned(LaunchSpec spec);

// Waits for the command's exec (see read_exec_report) and, with spec.tty, receives its
// terminal's master into `*terminal` (required then). A shim that died before reporting on
// the channel is asked on its setup report why.
Result<void> read_launch_outcome(PlannedLaunch& launch, const LaunchSpec& spec, UniqueFd* terminal = nullptr);

} // namespace nsfork
