// Signalling every process of a container (Kill with `all`, runc kill --all): those of its
// cgroup tree, or, without cgroups, those of its pid namespace and the namespaces below it.
// Each process is signalled through a pidfd opened before its membership is checked, so that a
// pid recycled meanwhile is never signalled. A process forked after its cgroup (or /proc) was
// read is missed, as with kill(2) on a process group; SIGKILL has atomic ways (cgroup.kill, or
// the namespace's pid 1) that the caller takes instead.
#pragma once

#include "nsfork/error.hpp"

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>

namespace nsfork {

// Sends `sig` to every process in the cgroup v2 directory `cgroup` (a path under the cgroup2
// mount `mount`) and its sub-cgroups, except the host pids in `spare` (the caller's unreaped
// children: their numbers cannot be recycled). Processes that exit meanwhile are skipped; other
// failures are returned after every process was tried (the first one).
Result<void> signal_cgroup_tree(const std::string& mount, const std::string& cgroup, int sig,
                                std::span<const pid_t> spare);

// Sends `sig` to every process whose pid namespace is the one of inode `pidns` or below it
// (nested), found in /proc, except `spare`; errors as above. `pidns` must not be the caller's
// own namespace nor above it (every process of the host would qualify).
Result<void> signal_pid_namespace_tree(std::uint64_t pidns, int sig, std::span<const pid_t> spare);

} // namespace nsfork
