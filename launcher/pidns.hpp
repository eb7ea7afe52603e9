// Pid namespaces as fds: checking what an fd is and where it sits.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <sys/types.h>

namespace nsfork {

// An fd to the calling process's own (active) pid namespace.
Result<UniqueFd> open_own_pid_namespace();

// The inode naming the namespace behind a namespace fd, 0 if it cannot be read.
ino_t namespace_inode(int ns_fd);

// 0 when the pid namespace `ns` is the one of inode `target` or below it, else an errno: EPERM
// when it is not (NS_GET_PARENT walks up, and fails so past the caller's own namespace), another
// when the walk failed. Enters nothing.
int pid_namespace_below(int ns, ino_t target);

// What a caller may hand us as "a pid namespace to join": a pid namespace fd (/proc/PID/ns/pid)
// or a pidfd. Returns a pid namespace fd in both cases. Errors, each its own message: not a
// namespace or pidfd, a namespace of another type, a process that has exited, a namespace
// outside `own` (the caller's active namespace, which must be it or an ancestor). Enters
// nothing: a rootless caller may enter a container's namespace but not come back to its own.
Result<UniqueFd> resolve_pid_namespace(int fd, int own);

} // namespace nsfork
