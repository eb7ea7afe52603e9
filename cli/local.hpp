// A container of `nsfork run`'s own, without a server: the command line is single-threaded, so
// it clones the container itself through the launcher, with the guarantees of a server's
// launch — nsfork-shim as pid 1, a cgroup leaf where a cgroup v2 is writable (nsfork-PID below
// our own cgroup, as a server's root is named, so a killed run's leaf is cleaned like a dead
// server's), destroyed by killing pid 1 (the kernel ends its namespace) and the cgroup.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/fd.hpp"
#include "launcher/cgroup.hpp"
#include "launcher/spawn.hpp"

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace nsfork::cli {

// Where the container's pid namespace comes from.
struct LocalPlacement {
    bool share_pid_namespace = false; // ours (what a private server's was)
    int join_fd = -1;                 // a pid namespace (or pidfd) to join; -1: none
};

class LocalContainer {
public:
    // Clones the shim as `where` says, hands it its plan, and returns once the command was
    // exec'd (or the error that kept it from running: nothing of it is left then). `spec`'s
    // argv, env, cwd, stdio and command fields are the caller's; the rest is filled here.
    static Result<LocalContainer> launch(LaunchSpec spec, const LocalPlacement& where);

    LocalContainer(LocalContainer&&) noexcept = default;
    LocalContainer& operator=(LocalContainer&&) = delete;
    LocalContainer(const LocalContainer&) = delete;
    // Destroys what is left (a no-op once reaped) and removes the cgroup.
    ~LocalContainer();

    pid_t pid() const { return pid_; }
    // Readable once pid 1 exited; signals sent to it reach the command (the shim forwards them).
    int pidfd() const { return pidfd_.get(); }
    // The shim's job-control channel (launcher/job_control.h; with LaunchSpec::foreground).
    int job_channel() const { return channel_.get(); }
    // The master of the container's terminal (LaunchSpec::tty), handed over once.
    UniqueFd take_terminal() { return std::move(terminal_); }
    // The inode of the container's pid namespace (0 once reaped).
    std::uint64_t pidns() const;

    // Reaps pid 1 (blocking until it exits) and ends the container: whatever is left in its
    // cgroup is killed and the cgroup removed. Its status.
    Result<ExitStatus> wait();
    // Kills pid 1 (the kernel then kills its namespace) and everything in the cgroup.
    void kill();

private:
    LocalContainer() = default;

    std::optional<Cgroup> cgroup_;
    UniqueFd pidfd_;
    pid_t pid_ = -1;
    bool reaped_ = false;
    UniqueFd channel_;  // the plan socket, once the exec report came on it: job control
    UniqueFd terminal_;
};

} // namespace nsfork::cli
