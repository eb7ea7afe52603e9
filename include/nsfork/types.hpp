// The plain C++ types of the client API, free of flatbuffers.
#pragma once

#include "nsfork/export.hpp"
#include "nsfork/exit_status.hpp"

#include <sys/types.h>

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

// What a server says of itself (Hello).
struct ServerStatus {
    pid_t pid = -1;
    std::uint32_t pool_size = 0, pool_ready = 0, pool_warming = 0;
    std::uint64_t pool_served = 0, pool_discarded = 0;
    std::uint64_t launch_work_ns = 0, launches = 0; // the server's own time on answered launches
};

} // namespace nsfork
