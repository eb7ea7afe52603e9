#include "pidfd.hpp"

#include "syscalls.hpp"

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

// The value of the "<key>:" line of a /proc text file, or -1.
long proc_field(const char* path, const char* key) {
    FILE* f = std::fopen(path, "re");
    if (!f) return -1;
    char line[256];
    long value = -1;
    const size_t len = std::strlen(key);
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, key, len) == 0 && line[len] == ':') {
            value = std::strtol(line + len + 1, nullptr, 10);
            break;
        }
    }
    std::fclose(f);
    return value;
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
    const std::string path = "/proc/self/fdinfo/" + std::to_string(pidfd);
    return static_cast<pid_t>(proc_field(path.c_str(), "Pid"));
}

ino_t pid_namespace_inode(pid_t pid) {
    const std::string path =
        (pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid)) + "/ns/pid";
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) return 0;
    return st.st_ino;
}

int thread_count() { return static_cast<int>(proc_field("/proc/self/status", "Threads")); }

} // namespace nsfork
