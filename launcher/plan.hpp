// The plan a shim receives on its --plan socket (shim_plan.h): encoding and sending it, and a
// whole launch through one (what a launcher without a server does; the server does the same
// steps itself, spread over its event loop).
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "launcher/spawn.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace nsfork {

// The plan datagram for `spec`'s command (argv, env, cwd and its process's settings); nullopt
// when it exceeds NSFORK_PLAN_MAX (a cold launch then takes encode_cold_plan's, a warm one none)
// or when check_command_settings refuses `spec` (spawn() then says why).
std::optional<std::vector<std::uint8_t>> encode_plan(const LaunchSpec& spec);

// The plan of a cold launch: encode_plan's, or, for a command too large for one, a settings-only
// plan (shim_plan.h): the command's process settings and fds, while its argv, env and cwd go
// through the shim's exec, which spawn() arranges when the plan socket it is given goes with a
// command that fits no plan. nullopt only when check_command_settings refuses `spec`. Not for a
// warm pool entry, whose shim has no command of its own: that takes encode_plan's or none.
std::optional<std::vector<std::uint8_t>> encode_cold_plan(const LaunchSpec& spec);

// Whether `spec`'s argv, env and cwd fit one plan datagram (else they go through the exec).
bool command_fits_plan(const LaunchSpec& spec);

// Sends `plan` on `sock` with those of `spec`'s stdio fds that are given, then its extra fds.
Result<void> send_plan(int sock, const std::vector<std::uint8_t>& plan, const LaunchSpec& spec);

// A launch through a plan, cold: spawned, its plan sent.
struct PlannedLaunch {
    Spawned spawned;  // spawned.report: the init's setup report (an OK once the shim is up)
    UniqueFd channel; // the plan socket: the command's exec report, then, with spec.foreground,
                      // the job-control channel (job_control.h)
};

// Spawns `spec` (its plan_fd is ours to set) and sends it its plan (encode_cold_plan's). Only
// from a single-threaded process, like spawn().
Result<PlannedLaunch> spawn_planned(LaunchSpec spec);

// Waits for the command's exec (see read_exec_report) and, with spec.tty, receives its
// terminal's master into `*terminal` (required then). A shim that died before reporting on
// the channel is asked on its setup report why.
Result<void> read_launch_outcome(PlannedLaunch& launch, const LaunchSpec& spec, UniqueFd* terminal = nullptr);

// The same from the fds themselves: the plan `channel` and the init's `setup_report` (-1: none,
// as for a warm pool entry's launch). `terminal` as read_exec_report takes it.
Result<void> read_launch_outcome(int channel, int setup_report, const std::string& command, const std::string& cwd,
                                 UniqueFd* terminal);

} // namespace nsfork
