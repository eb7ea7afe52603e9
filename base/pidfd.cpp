#include "base/pidfd.hpp"

#include "base/procfs.hpp"
#include "base/syscalls.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

namespace nsfork {

namespace {

ExitStatus status_of(const siginfo_t& info) {
    if (info.si_code == CLD_EXITED) return ExitStatus{info.si_status, 0};
    return ExitStatus{0, info.si_status}; // CLD_KILLED or CLD_DUMPED
}

} // namespace

Result<void> signal_pidfd(int pidfd, int sig) {
    if (sys::pidfd_send_signal(pidfd, sig) < 0)
        return sys_error(Errc::internal, "pidfd_send_signal(" + std::to_string(sig) + ") failed",
                         errno);
    return {};
}

Result<std::optional<ExitStatus>> try_reap(int pidfd) {
    siginfo_t info{};
    if (sys::waitid_pidfd(pidfd, &info, WEXITED | WNOHANG | __WALL) < 0)
        return sys_error(Errc::internal, "waitid(P_PIDFD) failed", errno);
    if (info.si_pid == 0) return std::optional<ExitStatus>{};
    return std::optional<ExitStatus>{status_of(info)};
}

Result<ExitStatus> reap(int pidfd) {
    siginfo_t info{};
    int rc;
    do rc = sys::waitid_pidfd(pidfd, &info, WEXITED | __WALL); // __WALL: children with exit_signal 0 too
    while (rc < 0 && errno == EINTR);
    if (rc < 0) return sys_error(Errc::internal, "waitid(P_PIDFD) failed", errno);
    return status_of(info);
}

pid_t pid_of_pidfd(int pidfd) {
    return static_cast<pid_t>(procfs::field("/proc/self/fdinfo/" + std::to_string(pidfd), "Pid"));
}

} // namespace nsfork
