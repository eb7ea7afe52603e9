// The operator's choices: which isolators are on, and whether sharing the agent's pid
// namespace is allowed — parsed and checked for consistency once, at start. And what a server
// without root (in a user namespace of its own) may not do, said once, at start.
#pragma once

#include "nsfork/error.hpp"

#include <string>
#include <string_view>

namespace nsfork {

struct Isolation {
    bool filesystem = true; // filesystem/linux: a new mount namespace, / private, /proc fresh
    bool pid = true;        // namespaces/pid: a pid namespace per container (unless shared)
};

// Parses a comma list of isolator names ("filesystem/linux,namespaces/pid"); "" turns all off.
// Unknown names and a pid isolator without filesystem/linux are refused, naming the cause.
Result<Isolation> parse_isolation(std::string_view list);

// Refuses option combinations that could not serve any launch.
Result<void> check_policy(const Isolation& isolation, bool disallow_sharing_agent_pidns);

// Whether this process may create pid and mount namespaces: CAP_SYS_ADMIN in its user namespace
// (root, or the owner of a user namespace: rootless), or why not. Also refuses an isolation under
// which every container would share a pid namespace the server is not privileged in.
Result<void> check_privilege(const Isolation& isolation);

// Why no container may share the server's own pid namespace, or "" when they may: a rootless
// server's is the host's, which belongs to the initial user namespace, where it has no privilege
// (it could not mount the container's /proc, and the container would run among the host's
// processes). A namespace the server's user namespace owns may be shared.
std::string_view own_pid_namespace_refusal();

// Why this server cannot place containers in cgroups under `operator_root` (or, when empty, under
// its own cgroup), or "" when it can. Without root the kernel lets a process move itself or a
// child between cgroups only when it may write cgroup.procs of their common ancestor: the server
// must run inside a cgroup v2 subtree delegated to its user. Root always can.
std::string cgroup_delegation_refusal(const std::string& operator_root);

// Whether a child of ours set to SCHED_IDLE could be given our scheduling back, as the warm pool
// does once an entry is ready: leaving SCHED_IDLE needs CAP_SYS_NICE in the initial user
// namespace, or an RLIMIT_NICE that allows our nice value — neither, usually, without root.
bool may_leave_sched_idle();

} // namespace nsfork
