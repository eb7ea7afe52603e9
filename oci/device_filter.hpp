// linux.resources.devices on cgroup v2, which has no devices.allow/deny files: the rule list is
// run through cgroup v1's semantics (as runc's devices emulator does) and the resulting
// allow/deny exceptions become an eBPF program of type CGROUP_DEVICE attached to the cgroup.
#pragma once

#include "nsfork/error.hpp"
#include "oci/spec.hpp"

#include <linux/bpf.h>

#include <cstdint>
#include <vector>

namespace nsfork::oci {

// What a v1 device cgroup holds after `rules` were written to a new one, starting (as runc's
// emulator does) from "deny all": a default and the exceptions to it, each with the accesses
// ("rwm") it covers, ordered by major, minor and type.
struct DeviceAccess {
    bool default_allow = false;
    std::vector<DeviceRule> exceptions;   // allow == !default_allow; type 'c' or 'b'
};

// Errors name the rule ("linux.resources.devices[3]") that cgroup v1 itself would refuse: a
// hole punched in a wildcard exception.
Result<DeviceAccess> emulate_device_rules(const std::vector<DeviceRule>& rules);

// The CGROUP_DEVICE program that decides as `access` does (runc's devicefilter).
std::vector<bpf_insn> device_filter_program(const DeviceAccess& access);

// The program for `rules`, or none when what the cgroup inherits already allows all they allow
// (the rules allow everything).
Result<std::vector<bpf_insn>> device_filter_for(const std::vector<DeviceRule>& rules);

// Attaches the program for `rules` to the cgroup v2 directory `cgroup_fd` (BPF_F_ALLOW_MULTI:
// programs attached above keep deciding too): `loaded`, that program already loaded (the
// server's, Launch.device_program), or else loaded here. The attachment lives as long as the
// cgroup; nothing is left to clean up.
Result<void> attach_device_filter(int cgroup_fd, const std::vector<DeviceRule>& rules, int loaded = -1);

} // namespace nsfork::oci
