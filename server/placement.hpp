// Where a container goes: a pid namespace of its own or a shared one (the server's, its
// parent's, or one joined by fd), and under which cgroup. The sharing rules of DESIGN.md and the
// operator's switch live here, as a pure function: the caller opens and resolves namespaces
// before (a joined fd's inode) and after (the parent's /proc/PID/ns/pid).
#pragma once

#include "nsfork/error.hpp"
#include "server/policy.hpp"

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace nsfork {

// What a Launch asks for.
struct PlacementRequest {
    std::string_view parent_id;          // "": a top-level container
    bool share_pid_namespace = false;
    std::optional<ino_t> joined_pidns;   // the inode of the namespace a join fd names, if one came
    bool join_fd = false;                // a join fd came (joined_pidns then says which namespace)
    std::uint32_t pid_max = 0;           // 0: none asked
};

// What the registry knows of the parent, when one was named and found.
struct ParentView {
    std::string_view id;
    bool ended = false;                  // reaped, or being killed
    std::uint64_t pidns = 0;             // its pid namespace's inode
    std::string_view cgroup;             // its cgroup's path; "": it has none
};

// What the server knows of itself, fixed at start.
struct ServerFacts {
    ino_t own_pidns = 0;
    Isolation isolation;
    bool disallow_sharing_agent_pidns = false;
    bool per_namespace_pid_max = false;  // Linux 6.14
    std::string_view cgroup_root;        // "": no writable cgroup v2
    std::string_view no_cgroup_reason;   // why not, for the refusal
    std::string_view own_pidns_refusal;  // why no container may be in the server's own pid
                                         // namespace (rootless on the host's), "" if they may
};

// Which pid namespace a container's is made in (new) or joins (shared).
enum class PidnsBase : std::uint8_t {
    server, // the server's own
    parent, // the parent container's: the caller opens /proc/PID/ns/pid of its first process
    joined, // the one the launch passed by fd
};

struct Placement {
    PidnsBase base = PidnsBase::server;
    bool new_pid_namespace = true;
    std::string_view cgroup_parent;      // where its cgroup leaf goes; "": no cgroups here
};

// Places a launch, or says why not (each refusal names its cause). `parent` is nullptr when
// `request.parent_id` is empty or names no visible container.
Result<Placement> place(const PlacementRequest& request, const ParentView* parent, const ServerFacts& server);

} // namespace nsfork
