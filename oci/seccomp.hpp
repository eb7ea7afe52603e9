// linux.seccomp compiled to a classic BPF program by libseccomp, in the runtime before it forks
// the container process, which only loads it (seccomp(2)) as its last step before exec.
#pragma once

#include "nsfork/error.hpp"
#include "oci/spec.hpp"

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nsfork::oci {

struct SeccompProgram {
    std::vector<sock_filter> filter;
    unsigned flags = 0;          // SECCOMP_FILTER_FLAG_* for seccomp(SECCOMP_SET_MODE_FILTER)
};

// Compiles `seccomp` for the running kernel's architectures; a syscall name this libseccomp does
// not know is skipped (as runc and crun do: profiles list syscalls newer than the library), an
// unknown action, operator, architecture or flag is an error naming its field
// ("linux.seccomp.syscalls[12].action: unknown action \"SCMP_ACT_FOO\"").
Result<SeccompProgram> compile_seccomp(const Seccomp& seccomp);

// The architectures and argument operators compile_seccomp takes, sorted, for `nsfork-oci features`.
std::vector<std::string> known_seccomp_architectures();
std::vector<std::string> known_seccomp_operators();

} // namespace nsfork::oci
