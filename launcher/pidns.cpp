#include "launcher/pidns.hpp"

#include "base/syscalls.hpp"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
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

Result<PidNamespaceForChildren> PidNamespaceForChildren::enter(int target, int own) {
    if (::setns(target, CLONE_NEWPID) < 0) {
        const int err = errno;
        if (err == EINVAL)
            return Error{Errc::not_permitted,
                         "the pid namespace is not the server's nor a descendant of it", err};
        if (err == ESRCH) return Error{Errc::invalid_state, "the process behind the pidfd has exited", err};
        return sys_error(Errc::launch_failed, "cannot enter the pid namespace", err);
    }
    return PidNamespaceForChildren(own);
}

PidNamespaceForChildren::~PidNamespaceForChildren() {
    // Cannot fail for the namespace we came from; if it did, every later clone would go astray.
    if (own_ >= 0 && ::setns(own_, CLONE_NEWPID) < 0) std::abort();
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

} // namespace

Result<UniqueFd> resolve_pid_namespace(int fd, int own) {
    UniqueFd ns;
    if (is_pidfd(fd)) {
        // setns() takes a pidfd (5.8+) and checks that the process lives and that its namespace
        // is ours or below; pid_for_children then names that namespace.
        auto entered = PidNamespaceForChildren::enter(fd, own);
        if (!entered) return std::move(entered).error();
        ns.reset(::open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC));
        if (!ns) return sys_error(Errc::internal, "cannot open /proc/self/ns/pid_for_children", errno);
        return ns;
    }
    const int type = ::ioctl(fd, NS_GET_NSTYPE);
    if (type < 0)
        return Error{Errc::bad_request, "the fd is neither a pid namespace (/proc/PID/ns/pid) nor a pidfd"};
    if (type != CLONE_NEWPID)
        return Error{Errc::bad_request,
                     std::string("the fd is a ") + namespace_kind(type) + " namespace, not a pid namespace"};
    // setns() refuses what is not ours or below: the check the kernel makes is the one we want.
    auto entered = PidNamespaceForChildren::enter(fd, own);
    if (!entered) return std::move(entered).error();
    ns.reset(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    if (!ns) return sys_error(Errc::internal, "cannot duplicate the namespace fd", errno);
    return ns;
}

} // namespace nsfork
