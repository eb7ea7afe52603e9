// Operations on pidfds: signal, reap, and what the kernel says about the process behind one.
#pragma once

#include "error.hpp"
#include "exit_status.hpp"

#include <sys/types.h>

#include <optional>

namespace nsfork {

// Sends `sig` through the pidfd: never reaches a recycled pid.
Result<void> signal_pidfd(int pidfd, int sig);

// Reaps the child behind `pidfd` if it has exited; nullopt while it runs. Only the parent may
// call it (others get ECHILD, returned as an Error).
Result<std::optional<ExitStatus>> try_reap(int pidfd);

// Blocks until the child behind `pidfd` exits, and reaps it.
Result<ExitStatus> reap(int pidfd);

// The host pid behind a pidfd (the "Pid:" line of its fdinfo); -1 once reaped.
pid_t pid_of_pidfd(int pidfd);

// Inode of the pid namespace of process `pid` ("self" for pid 0); 0 when it cannot be read.
// Only race-free for a pid the caller has not reaped yet, or for itself.
ino_t pid_namespace_inode(pid_t pid);

// Threads of the calling process, from /proc/self/status; -1 when unreadable.
int thread_count();

} // namespace nsfork
