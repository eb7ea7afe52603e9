// Cgroup v2 device programs (BPF_PROG_TYPE_CGROUP_DEVICE): loaded and attached the one way, for
// the server (Launch.device_program) and for nsfork-oci when its server predates that field.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <cstdint>
#include <span>

namespace nsfork {

// Loads `instructions` (whole struct bpf_insn) as a device program, close-on-exec. A program the
// verifier refuses is Errc::bad_request "the kernel refused the device program: <its verdict>";
// any other failure Errc::unavailable.
Result<UniqueFd> load_device_program(std::span<const std::uint8_t> instructions);

// Attaches `program` to the cgroup v2 directory `cgroup_fd`, BPF_F_ALLOW_MULTI (programs above
// keep deciding too). The attachment lives as long as the cgroup.
Result<void> attach_device_program(int cgroup_fd, int program);

} // namespace nsfork
