// clone3 for a child process that runs on a copy of the caller (fork-like), typed so that it
// cannot be misused: only the flags below exist, so CLONE_VM, CLONE_THREAD, CLONE_FILES and
// CLONE_SIGHAND (a child sharing our memory, fd table or handlers) cannot be asked for.
#pragma once

#include "base/exit_codes.h"
#include "base/syscalls.hpp"

#include <sched.h>
#include <sys/types.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>

namespace nsfork {

// A set of the clone3 flags a process-creating child may take.
class CloneFlags {
public:
    constexpr CloneFlags() = default;
    static constexpr CloneFlags new_pid_namespace() { return CloneFlags(sys::kCloneNewPid); }
    static constexpr CloneFlags new_mount_namespace() { return CloneFlags(sys::kCloneNewNs); }
    static constexpr CloneFlags new_network_namespace() { return CloneFlags(CLONE_NEWNET); }
    static constexpr CloneFlags new_uts_namespace() { return CloneFlags(CLONE_NEWUTS); }
    static constexpr CloneFlags new_ipc_namespace() { return CloneFlags(CLONE_NEWIPC); }
    static constexpr CloneFlags new_cgroup_namespace() { return CloneFlags(CLONE_NEWCGROUP); }
    // The child's parent is our parent (and it must be given exit signal 0).
    static constexpr CloneFlags parent() { return CloneFlags(sys::kCloneParent); }
    // Handlers reset to SIG_DFL in the child (Linux 5.5), so none of ours can run there.
    static constexpr CloneFlags clear_sighand() { return CloneFlags(sys::kCloneClearSighand); }

    constexpr CloneFlags operator|(CloneFlags o) const { return CloneFlags(bits_ | o.bits_); }
    constexpr CloneFlags& operator|=(CloneFlags o) {
        bits_ |= o.bits_;
        return *this;
    }
    constexpr bool has(CloneFlags o) const { return (bits_ & o.bits_) == o.bits_; }
    constexpr std::uint64_t bits() const { return bits_; }

private:
    constexpr explicit CloneFlags(std::uint64_t bits) : bits_(bits) {}
    std::uint64_t bits_ = 0;
};

struct CloneOptions {
    CloneFlags flags;
    int cgroup_fd = -1;       // cgroup v2 directory to be born into (CLONE_INTO_CGROUP); -1: ours
    int exit_signal = SIGCHLD; // 0 with CloneFlags::parent()
    int* pidfd = nullptr;     // receives a pidfd of the child (CLONE_PIDFD); nullptr: none
};

// clone3; in the child, runs `child_main` (which should not return: if it does, the child
// _exits with NSFORK_EXIT_FAILED). Returns the child's pid, or -1 with errno. The child runs on
// a copy of our memory like after fork(): only system calls there (glibc's cached tid is stale,
// atfork handlers did not run, another thread may have held a lock). Only from a process whose
// other threads hold no lock the child needs — in practice, single-threaded.
template <class ChildMain>
pid_t clone_process(const CloneOptions& o, ChildMain&& child_main) noexcept {
    sys::CloneArgs args;
    args.flags = o.flags.bits();
    if (o.pidfd) {
        args.flags |= sys::kClonePidfd;
        args.pidfd = reinterpret_cast<std::uintptr_t>(o.pidfd);
    }
    if (o.cgroup_fd >= 0) {
        args.flags |= sys::kCloneIntoCgroup;
        args.cgroup = static_cast<std::uint64_t>(o.cgroup_fd);
    }
    args.exit_signal = static_cast<std::uint64_t>(o.exit_signal);
    const pid_t pid = sys::clone3(&args);
    if (pid == 0) {
        child_main();
        ::_exit(NSFORK_EXIT_FAILED);
    }
    return pid;
}

} // namespace nsfork
