// The plain C++ types of the client API, free of flatbuffers.
#pragma once

#include "nsfork/export.hpp"
#include "nsfork/exit_status.hpp"

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nsfork {

enum class State : std::uint8_t { starting = 0, running = 1, exited = 2, destroyed = 3 };

NSFORK_API std::string_view to_string(State s);

struct ContainerInfo {
    std::string id;
    std::string parent;
    pid_t pid = -1;                  // host pid of the init (the server's namespace)
    std::uint64_t pidns = 0;         // pid namespace inode
    State state = State::starting;
    std::optional<ExitStatus> exit;  // set once it ended
    std::uint32_t slot = 0;          // its entry in the server's status table
    bool held = false;               // a hold container (LaunchOptions::hold): pid is the holder's
    std::string cgroup;              // its cgroup v2 leaf's path; "" without one
};

// The phases of the server's own work on a launch (statistics, for nsfork-bench).
enum class LaunchPhase : std::uint8_t {
    parse,       // the request read, verified and unpacked
    policy,      // its settings checked and where it goes decided (placement)
    cgroup,      // its cgroup leaf made (cold) or named
    clone_setup, // a cold launch's clone3 prepared and followed up (clone3 itself excluded)
    plan,        // the command's plan encoded and sent to the shim
    table,       // its status table entry taken and written
    record,      // the registry, the id, the watches
    reply,       // the exec report read, the reply built (and sent, but for its wake-up)
    wake,        // inside the sends that wake another process: the plan's (a waiting shim) and the
                 // reply's (the client). The kernel's work, as clone3's is, kept apart to be seen.
    count
};
NSFORK_API std::string_view to_string(LaunchPhase p);

// Nanoseconds spent in each phase, summed over the launches answered.
struct LaunchPhases {
    std::array<std::uint64_t, static_cast<std::size_t>(LaunchPhase::count)> ns{};
    std::uint64_t operator[](LaunchPhase p) const { return ns[static_cast<std::size_t>(p)]; }
};

// What a server says of itself (Hello).
struct ServerStatus {
    pid_t pid = -1;
    std::uint32_t pool_size = 0, pool_ready = 0, pool_warming = 0;
    std::uint64_t pool_served = 0, pool_discarded = 0;
    std::uint32_t namespaces_pending = 0;            // hold launches' namespaces not yet made ahead
    std::uint64_t launch_work_ns = 0, launches = 0; // the server's own time on answered launches
    LaunchPhases launch_phases;                      // launch_work_ns, by phase
};

} // namespace nsfork
