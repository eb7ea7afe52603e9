// Raw system calls glibc 2.36 does not wrap, and the constants it lacks — all in one place.
// Every function here is async-signal-safe: the child path may call them.
#pragma once

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

extern "C" {
#include "base/fdpass.h"
}

namespace nsfork::sys {

// clone3 flags above 32 bits and the ones <sched.h> may not define (Linux 5.2-5.7).
inline constexpr std::uint64_t kClonePidfd = 0x00001000ULL;
inline constexpr std::uint64_t kCloneParent = 0x00008000ULL;
inline constexpr std::uint64_t kCloneNewNs = 0x00020000ULL;
inline constexpr std::uint64_t kCloneNewPid = 0x20000000ULL;
inline constexpr std::uint64_t kCloneClearSighand = 0x100000000ULL;
inline constexpr std::uint64_t kCloneIntoCgroup = 0x200000000ULL;

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

// struct clone_args as of Linux 5.7 (CLONE_INTO_CGROUP); declared here so that <linux/sched.h>
// and glibc's <sched.h> need not be mixed.
struct CloneArgs {
    std::uint64_t flags = 0;
    std::uint64_t pidfd = 0; // pointer to int
    std::uint64_t child_tid = 0;
    std::uint64_t parent_tid = 0;
    std::uint64_t exit_signal = 0;
    std::uint64_t stack = 0;
    std::uint64_t stack_size = 0;
    std::uint64_t tls = 0;
    std::uint64_t set_tid = 0;
    std::uint64_t set_tid_size = 0;
    std::uint64_t cgroup = 0;
};

// clone3(2). Without CLONE_VM the child runs on a copy of the caller's stack, like fork(); it
// must then make only system calls (glibc's cached tid is stale, atfork handlers did not run).
inline pid_t clone3(CloneArgs* args) noexcept {
    return static_cast<pid_t>(::syscall(SYS_clone3, args, sizeof(CloneArgs)));
}

// waitid(P_PIDFD, …) through the raw syscall: glibc's waitid() may reject the P_PIDFD idtype.
inline int waitid_pidfd(int pidfd, siginfo_t* info, int options) noexcept {
    return static_cast<int>(::syscall(SYS_waitid, P_PIDFD, pidfd, info, options, nullptr));
}

inline int pidfd_send_signal(int pidfd, int sig) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

inline int pidfd_open(pid_t pid, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags));
}

inline int close_range(unsigned first, unsigned last, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_close_range, first, last, flags));
}

// struct sched_attr (SCHED_ATTR_SIZE_VER1); <linux/sched/types.h> clashes with glibc's <sched.h>.
struct SchedAttr {
    std::uint32_t size = sizeof(SchedAttr);
    std::uint32_t policy = 0;
    std::uint64_t flags = 0;
    std::int32_t nice = 0;
    std::uint32_t priority = 0;
    std::uint64_t runtime = 0, deadline = 0, period = 0;
    std::uint32_t util_min = 0, util_max = 0;
};
inline constexpr std::uint64_t kSchedFlagResetOnFork = 0x01;

inline int sched_getattr(pid_t pid, SchedAttr* attr) noexcept {
    return static_cast<int>(::syscall(SYS_sched_getattr, pid, attr, sizeof(SchedAttr), 0));
}

inline int sched_setattr(pid_t pid, const SchedAttr* attr) noexcept {
    return static_cast<int>(::syscall(SYS_sched_setattr, pid, attr, 0));
}

// Fd passing (base/fdpass.h), the one implementation, async-signal-safe.
inline ssize_t send_with_fds(int sock, const void* data, std::size_t len, const int* fds, std::size_t count) noexcept {
    return nsfork_send_with_fds(sock, data, len, fds, count);
}
inline ssize_t recv_with_fds(int sock, void* data, std::size_t len, int* fds, std::size_t max, std::size_t* count,
                             int* flags) noexcept {
    return nsfork_recv_with_fds(sock, data, len, fds, max, count, flags);
}

} // namespace nsfork::sys
