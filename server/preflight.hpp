// Before a server serves: the host checks (one thread, root, kernel, shim, fds, limits, signal
// dispositions), the facts they establish, and the cgroup root its containers go under.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "launcher/cgroup.hpp"
#include "server/server.hpp"

#include <sys/types.h>

#include <optional>
#include <string>

namespace nsfork {

// What the checks found out, for the rest of the server's life.
struct HostFacts {
    std::string shim;                  // the nsfork-shim to run as pid 1
    UniqueFd own_pidns;                // the server's pid namespace
    ino_t own_pidns_ino = 0;
    bool per_namespace_pid_max = false; // Linux 6.14: pid_max is per pid namespace
};

// Checks the host and prepares the process (fds 0-2, RLIMIT_NOFILE, SIGCHLD, SIGPIPE), or says
// what is missing. Only from the single thread of the server-to-be.
Result<HostFacts> check_host(const ServerOptions& options);

// Whether pid_max is per pid namespace (Linux 6.14); before, writing it from a container would
// change the host's.
bool per_namespace_pid_max();

// The containers' cgroup root, or why there is none (launches sharing a namespace are then refused).
struct CgroupRoot {
    std::optional<Cgroup> root;
    std::string no_cgroup_reason;
};

// Adopts the operator's root (made if missing, kept at exit) or creates nsfork-PID under the
// server's own cgroup.
CgroupRoot setup_cgroup_root(const std::string& operator_root);

} // namespace nsfork
