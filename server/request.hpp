// Turning a verified Launch message into a LaunchSpec: every check that needs no server state.
// Pure (no syscalls), so the fuzzer can drive it.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "launcher/spawn.hpp"
#include "protocol/nsfork_generated.h"

#include <sched.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nsfork {

struct LaunchRequest {
    std::string id;    // checked with validate_id; empty: the server picks one
    LaunchSpec spec;   // argv, env, cwd, the command's process; stdio and extra fds borrowed
                       // from the datagram
    int join_fd = -1;  // a pid namespace fd or pidfd to join, borrowed from the datagram
    std::string cgroup_name; // a hold launch's leaf, relative (checked with check_cgroup_name);
                             // empty: the server names it
    std::span<const std::uint8_t> device_program; // a hold launch's, borrowed from the message:
                                                  // whole instructions, at most kMaxDeviceInstructions
    std::uint32_t new_namespaces = 0;             // a hold launch's: within kSpareNamespaceTypes
};

// A hold launch's device program: struct bpf_insn is 8 bytes; the kernel's limit for a program
// without CAP_BPF is 4096 of them, plenty for any device list.
inline constexpr std::size_t kDeviceInstructionBytes = 8;
inline constexpr std::size_t kMaxDeviceInstructions = 4096;
// The namespaces a hold launch may ask to be made ahead (new_namespaces).
inline constexpr std::uint32_t kSpareNamespaceTypes = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

// Most bytes of a cgroup_name, and of each of its components (NAME_MAX).
inline constexpr std::size_t kMaxCgroupName = 1024;
inline constexpr std::size_t kMaxCgroupComponent = 255;

// Refuses a cgroup_name that is not a relative path of plain components below the server's tree:
// empty, absolute, an empty, "." or ".." component, a NUL, too long, or a first component of the
// form c<digits>, which the server gives its own leaves.
Result<void> check_cgroup_name(std::string_view name);

// Checks `req` against the fds that came with it. Each refusal names its cause.
Result<LaunchRequest> parse_launch(const wire::Launch& req, const std::vector<UniqueFd>& fds);

// The protocol version a connection speaks after `hello`: the highest one both the client
// ([min_version, version]; min_version 0: = version) and this server ([kMinProtocolVersion,
// kProtocolVersion]) speak. Errc::protocol naming both ranges when they do not meet.
Result<std::uint32_t> negotiate_version(const wire::Hello& hello);

} // namespace nsfork
