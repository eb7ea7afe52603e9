// The raw floor: what a pid namespace costs with nothing but system calls — clone3(NEWPID|
// NEWNS), private /, /proc mounted, exec the command as pid 1 (no init), exec seen as EOF on a
// close-on-exec pipe. Run from the tiny helper process (helper.hpp), never from a big one.
#pragma once

#include "nsfork/error.hpp"
#include "process.hpp"

#include <cstdint>

namespace nsfork::bench {

// ns from clone3 until the command's exec is seen; the child is reaped after, untimed.
Result<std::int64_t> raw_launch(const Command& cmd);

// ns from clone3 until the command exited and was reaped (exec checked on the way).
Result<std::int64_t> raw_launch_wait(const Command& cmd);

// ns for `count` launches-until-reaped with `parallel` of them in flight at any time (clone3s
// issued as slots free up, exits observed by polling the pidfds).
Result<std::int64_t> raw_churn(const Command& cmd, int count, int parallel);

// Namespace kill: starts `cmd` (a forker that prints "ready" once its processes exist) as pid 1
// of a new pid namespace, then times SIGKILL to pid 1 through its pidfd until pid 1 is reaped —
// which the kernel allows only after every process of the namespace is gone.
Result<std::int64_t> raw_namespace_kill(const Command& forker);

// Sleeps 20 ms between "ready" and a timed destroy, in every destroy variant alike. The kernel
// sends cgroup.events notifications at most once per 10 ms (CGROUP_FILE_NOTIFY_MIN_INTV): a
// destroy right after the processes started would wait out the "populated 1" notification's
// timer, a cost no real (longer-lived) container pays. Never weaken a baseline.
void settle_before_destroy();

// Reads one line from `fd` and checks it is "ready" (what nsfork-probe daemon prints).
Result<void> await_ready(int fd, const std::string& what);

} // namespace nsfork::bench
