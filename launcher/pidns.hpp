// Pid namespaces as fds: checking what an fd is, where it sits, and entering it for children.
#pragma once

#include "base/error.hpp"
#include "base/fd.hpp"

#include <sys/types.h>

namespace nsfork {

// An fd to the calling process's own (active) pid namespace.
Result<UniqueFd> open_own_pid_namespace();

// The inode naming the namespace behind a namespace fd, 0 if it cannot be read.
ino_t namespace_inode(int ns_fd);

// What a caller may hand us as "a pid namespace to join": a pid namespace fd (/proc/PID/ns/pid)
// or a pidfd. Returns a pid namespace fd in both cases. Errors, each its own message: not a
// namespace or pidfd, a namespace of another type, a process that has exited, a namespace
// outside `own` (the caller's active namespace, which must be it or an ancestor).
// Only from a single-threaded process: it briefly enters the namespace for children.
Result<UniqueFd> resolve_pid_namespace(int fd, int own);

// Enters `target` for future children (setns(CLONE_NEWPID) changes only pid_for_children) and
// goes back to `own` on destruction. Only from a single-threaded process.
class PidNamespaceForChildren {
public:
    static Result<PidNamespaceForChildren> enter(int target, int own);
    PidNamespaceForChildren(PidNamespaceForChildren&& o) noexcept : own_(o.own_) { o.own_ = -1; }
    PidNamespaceForChildren(const PidNamespaceForChildren&) = delete;
    ~PidNamespaceForChildren();

private:
    explicit PidNamespaceForChildren(int own) : own_(own) {}
    int own_;
};

} // namespace nsfork
