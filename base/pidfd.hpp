// Operations on pidfds: signal, reap, and what the kernel says about the process behind one.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"

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

} // namespace nsfork
