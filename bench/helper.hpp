// The helper: a tiny single-threaded process, forked at the top of main() before anything
// grows, that runs every baseline that must not be charged for a big parent — the raw floor,
// posix_spawn, the CLI tools, the destroy baselines. The bench asks over a SOCK_SEQPACKET pair;
// the helper times the work itself, so the request's round trip is never in a figure.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nsfork::bench {

enum class HelperOp : std::int32_t {
    ping,              // answers at once: the floor of a request/reply round trip
    spawn_wait,        // posix_spawn the command and reap it (the command inherits our env)
    spawn_wait_on_terminal, // the same on a new pty, its controlling terminal
    posix_spawn,       // time until posix_spawn returned
    raw_launch,        // raw floor, until exec seen
    raw_launch_wait,   // raw floor, until reaped
    raw_churn,         // `count` raw launches, `parallel` in flight
    raw_namespace_kill,
    cgroup_kill,
    freezer,
    kill_each,
};

// Which hierarchy a cgroup baseline can use here, or why it cannot run.
struct HelperFacts {
    std::string cgroup2_dir, cgroup2_missing;
    std::string freezer_dir, freezer_missing;
};

class Helper {
public:
    // Forks the helper. Call it before any thread exists, while this process is still small.
    static Result<Helper> start();
    Helper(Helper&& o) noexcept
        : sock_(std::move(o.sock_)), pid_(std::exchange(o.pid_, -1)), facts_(std::move(o.facts_)) {}
    Helper& operator=(Helper&&) = delete;
    // Closes the connection; the helper removes its cgroups, exits, and is reaped.
    ~Helper();

    // Runs one operation; returns the ns it measured.
    Result<std::int64_t> run(HelperOp op, const std::vector<std::string>& argv = {}, int count = 0,
                             int parallel = 0);
    // A bare round trip with the helper, timed here (the floor for the ipc scenario).
    Result<std::int64_t> ping();
    const HelperFacts& facts() const { return facts_; }
    pid_t pid() const { return pid_; }

private:
    Helper(UniqueFd sock, pid_t pid, HelperFacts facts)
        : sock_(std::move(sock)), pid_(pid), facts_(std::move(facts)) {}
    UniqueFd sock_;
    pid_t pid_ = -1;
    HelperFacts facts_;
};

} // namespace nsfork::bench
