#include "launcher/pidns.hpp"

#include "base/pidfd.hpp"
#include "base/syscalls.hpp"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace nsfork {

Result<UniqueFd> open_own_pid_namespace() {
    UniqueFd fd(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    if (!fd) return sys_error(Errc::internal, "cannot open /proc/self/ns/pid", errno);
    return fd;
}

ino_t namespace_inode(int ns_fd) {
    struct stat st;
    return ::fstat(ns_fd, &st) == 0 ? st.st_ino : 0;
}

namespace {

// True if `fd` is a pidfd: its fdinfo carries a "Pid:" line.
bool is_pidfd(int fd) {
    char link[64], target[64] = {};
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = ::readlink(link, target, sizeof target - 1);
    return n > 0 && std::strcmp(target, "anon_inode:[pidfd]") == 0;
}

const char* namespace_kind(int type) {
    switch (type) {
    case CLONE_NEWNS: return "mount";
    case CLONE_NEWNET: return "network";
    case CLONE_NEWUTS: return "uts";
    case CLONE_NEWIPC: return "ipc";
    case CLONE_NEWUSER: return "user";
    case CLONE_NEWCGROUP: return "cgroup";
    case 0x00000080: return "time";
    default: return "unknown";
    }
}

// Whether `ns` is `own` or below it: NS_GET_PARENT walks up, and fails with EPERM once the parent
// would be outside the caller's own namespace — what setns() checks, without entering anything
// (a rootless server could enter a container's namespace but never come back to the host's).
Result<void> check_below(int ns, int own) {
    const int error = pid_namespace_below(ns, namespace_inode(own));
    if (error == 0) return {};
    if (error == EPERM)
        return Error{Errc::not_permitted, "the pid namespace is not the server's nor a descendant of it", EPERM};
    return sys_error(Errc::internal, "cannot find the pid namespace's parent", error);
}

// The pid namespace of the process behind `pidfd`, through /proc/PID: the pid is read from the
// pidfd, and the process checked alive after the open, so the pid cannot have named another.
Result<UniqueFd> namespace_of_pidfd(int pidfd) {
    const pid_t pid = pid_of_pidfd(pidfd);
    if (pid < 0) return Error{Errc::invalid_state, "the process behind the pidfd has exited", ESRCH};
    if (pid == 0) // not visible in our namespace: it lives outside it
        return Error{Errc::not_permitted, "the pid namespace is not the server's nor a descendant of it", EPERM};
    UniqueFd ns(::open(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    const int error = errno;
    if (sys::pidfd_send_signal(pidfd, 0) < 0 && errno == ESRCH)
        return Error{Errc::invalid_state, "the process behind the pidfd has exited", ESRCH};
    if (!ns) return sys_error(Errc::launch_failed, "cannot open the pid namespace of pid " + std::to_string(pid), error);
    return ns;
}

} // namespace

int pid_namespace_below(int ns, ino_t target) {
    UniqueFd at(::fcntl(ns, F_DUPFD_CLOEXEC, 3));
    if (!at) return errno;
    while (namespace_inode(at.get()) != target) {
        UniqueFd parent(::ioctl(at.get(), NS_GET_PARENT)); // close-on-exec from birth
        if (!parent) return errno;
        at = std::move(parent);
    }
    return 0;
}

Result<UniqueFd> resolve_pid_namespace(int fd, int own) {
    Result<UniqueFd> ns = Error{};
    if (is_pidfd(fd)) {
        ns = namespace_of_pidfd(fd);
    } else {
        const int type = ::ioctl(fd, NS_GET_NSTYPE);
        if (type < 0)
            return Error{Errc::bad_request, "the fd is neither a pid namespace (/proc/PID/ns/pid) nor a pidfd"};
        if (type != CLONE_NEWPID)
            return Error{Errc::bad_request,
                         std::string("the fd is a ") + namespace_kind(type) + " namespace, not a pid namespace"};
        ns = UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
        if (!*ns) return sys_error(Errc::internal, "cannot duplicate the namespace fd", errno);
    }
    if (!ns) return ns;
    if (auto below = check_below(ns->get(), own); !below) return std::move(below).error();
    return ns;
}

} // namespace nsfork
