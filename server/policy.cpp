#include "policy.hpp"

#include "nsfork/fd.hpp"
#include "base/procfs.hpp"
#include "base/userns.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nsfork {

namespace {

// Whether `cap` is in our effective set.
bool has_capability(unsigned cap) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    return ::syscall(SYS_capget, &header, data) == 0 && (data[cap / 32].effective & (1U << (cap % 32))) != 0;
}

// Whether our pid namespace belongs to our user namespace (then we are privileged in it).
bool own_pid_namespace_is_ours() {
    UniqueFd pidns(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    // EPERM: its owner is an ancestor of our user namespace, which we may not be handed.
    UniqueFd owner(pidns ? ::ioctl(pidns.get(), NS_GET_USERNS) : -1);
    struct stat theirs, ours;
    return owner && ::fstat(owner.get(), &theirs) == 0 && ::stat("/proc/self/ns/user", &ours) == 0 &&
           theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev;
}

// The deepest directory both absolute paths are in (or are).
std::string common_ancestor(const std::string& a, const std::string& b) {
    std::size_t end = 0; // the length of the common prefix that ends a path component
    for (std::size_t i = 0; i <= a.size() && i <= b.size(); ++i) {
        const bool a_ends = i == a.size() || a[i] == '/', b_ends = i == b.size() || b[i] == '/';
        if (a_ends && b_ends) end = i;
        if (i == a.size() || i == b.size() || a[i] != b[i]) break;
    }
    return end == 0 ? "/" : a.substr(0, end);
}

std::string without_trailing_slash(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path;
}

} // namespace

Result<Isolation> parse_isolation(std::string_view list) {
    Isolation iso{false, false};
    while (!list.empty()) {
        const auto comma = list.find(',');
        const std::string_view name = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        if (name == "filesystem/linux") iso.filesystem = true;
        else if (name == "namespaces/pid") iso.pid = true;
        else
            return Error{Errc::bad_request,
                         fmt::format("unknown isolator '{}' (known: filesystem/linux, namespaces/pid)", name)};
    }
    if (iso.pid && !iso.filesystem)
        return Error{Errc::bad_request,
                     "isolator namespaces/pid requires filesystem/linux (a private mount namespace for "
                     "the container's /proc)"};
    return iso;
}

Result<void> check_policy(const Isolation& isolation, bool disallow_sharing_agent_pidns) {
    if (disallow_sharing_agent_pidns && !isolation.pid)
        return Error{Errc::bad_request,
                     "--disallow-sharing-agent-pid-namespace needs the namespaces/pid isolator: without "
                     "it every container shares the agent's pid namespace"};
    return {};
}

Result<void> check_privilege(const Isolation& isolation) {
    // Capabilities count in our own user namespace, which owns the namespaces we make.
    if (!has_capability(CAP_SYS_ADMIN)) {
        if (in_user_namespace())
            return Error{Errc::unavailable,
                         fmt::format("nsfork needs CAP_SYS_ADMIN in its user namespace to create pid and mount "
                                     "namespaces, and this process (uid {} there) has none: run it as that "
                                     "namespace's root, or let nsfork make a user namespace of its own",
                                     ::geteuid())};
        if (::geteuid() == 0)
            return Error{Errc::unavailable,
                         "nsfork needs CAP_SYS_ADMIN to create pid and mount namespaces, and this root process "
                         "lacks it (as in a container started without it)"};
        return Error{Errc::unavailable,
                     "nsfork needs root, or a user namespace of its own, to create pid and mount namespaces: "
                     "`nsfork run` and `nsfork serve` make one for a user without root; a program that runs "
                     "the server itself calls enter_user_namespace() first"};
    }
    if (isolation.filesystem && !isolation.pid)
        if (std::string_view why = own_pid_namespace_refusal(); !why.empty())
            return Error{Errc::unavailable,
                         fmt::format("isolation without namespaces/pid would put every container in the server's "
                                     "pid namespace, and {}",
                                     why)};
    return {};
}

std::string_view own_pid_namespace_refusal() {
    if (own_pid_namespace_is_ours()) return {};
    return "nsfork runs without root here and its pid namespace is the host's, where it has no privilege: "
           "it could not mount the container's /proc, and the container would run among every user's "
           "processes";
}

std::string cgroup_delegation_refusal(const std::string& operator_root) {
    // Root in the initial user namespace may place containers anywhere; a missing or unwritable
    // root is then setup_cgroup_root's to report.
    if (!in_user_namespace() && ::geteuid() == 0) return {};
    const std::string mount = procfs::cgroup2_mount(), own_path = procfs::cgroup2_path();
    if (mount.empty() || own_path.empty()) return {}; // no cgroup2: setup_cgroup_root says so
    const std::string own = own_path == "/" ? mount : mount + own_path;
    const std::string root = operator_root.empty() ? own : without_trailing_slash(operator_root);
    const std::string ancestor = common_ancestor(own, root);
    if (::faccessat(AT_FDCWD, (ancestor + "/cgroup.procs").c_str(), W_OK, AT_EACCESS) == 0) return {};
    const int err = errno;
    if (ancestor != own)
        return fmt::format("--cgroup-root {} is outside this server's cgroup {}, and the server may not write "
                           "cgroup.procs of their common ancestor {} ({}), as placing containers there needs: "
                           "without root, run the server inside the cgroup v2 subtree delegated to its user",
                           root, own, ancestor, std::strerror(err));
    return fmt::format("the server may not write {}/cgroup.procs ({}), as placing containers below its cgroup "
                       "needs: without root, that is a cgroup v2 subtree delegated to its user, which the "
                       "server runs inside",
                       own, std::strerror(err));
}

bool may_leave_sched_idle() {
    if (!in_user_namespace() && has_capability(CAP_SYS_NICE)) return true;
    // can_nice(): a nice value n is allowed when 20 - n is within RLIMIT_NICE.
    rlimit nice{};
    errno = 0;
    const int own = ::getpriority(PRIO_PROCESS, 0);
    return errno == 0 && ::getrlimit(RLIMIT_NICE, &nice) == 0 &&
           (nice.rlim_cur == RLIM_INFINITY || static_cast<rlim_t>(20 - own) <= nice.rlim_cur);
}

} // namespace nsfork
