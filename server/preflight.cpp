#include "preflight.hpp"

#include "base/procfs.hpp"
#include "launcher/pidns.hpp"
#include "server/stale_cgroups.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#ifndef NSFORK_INSTALLED_SHIM
#define NSFORK_INSTALLED_SHIM "/usr/local/libexec/nsfork/nsfork-shim"
#endif
#ifndef NSFORK_SHIM_FROM_BINDIR
#define NSFORK_SHIM_FROM_BINDIR "../libexec/nsfork/nsfork-shim"
#endif

namespace nsfork {

namespace {

// Whether the running kernel is at least `major`.`minor`.
bool kernel_at_least(int major, int minor) {
    utsname u{};
    int have_major = 0, have_minor = 0;
    if (::uname(&u) < 0 || std::sscanf(u.release, "%d.%d", &have_major, &have_minor) != 2) return false;
    return have_major > major || (have_major == major && have_minor >= minor);
}

// Why this kernel cannot run nsfork, or "".
std::string kernel_too_old() {
    if (kernel_at_least(5, 14)) return {};
    utsname u{};
    ::uname(&u);
    return fmt::format("Linux {} is too old: nsfork needs 5.14 or newer (clone3 with CLONE_PIDFD "
                       "and CLONE_INTO_CGROUP, waitid(P_PIDFD), cgroup.kill)",
                       u.release);
}

} // namespace

// Beside the executable (the build tree: nsfork, nsfork-bench and the tests sit with nsfork-shim),
// then where an install put it relative to the executable (bin/../libexec/nsfork: a tree installed
// under any prefix, or moved, finds its own shim), then the configured install path.
std::string default_shim_path() {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        const std::string path(exe, static_cast<std::size_t>(n));
        const std::string dir = path.substr(0, path.rfind('/') + 1);
        // /proc/self/exe has no symlinks left: "bin/.." can go lexically.
        const std::string installed = std::filesystem::path(dir + NSFORK_SHIM_FROM_BINDIR).lexically_normal();
        for (const std::string& candidate : {dir + "nsfork-shim", installed})
            if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return NSFORK_INSTALLED_SHIM;
}

bool per_namespace_pid_max() { return kernel_at_least(6, 14); }

Result<HostFacts> check_host(const ServerOptions& opts) {
    if (int n = procfs::thread_count(); n != 1)
        return Error{Errc::unavailable,
                     fmt::format("the nsfork server must be single-threaded, this process has {} "
                                 "threads: start it before creating any thread",
                                 n)};
    if (auto ok = check_policy(opts.isolation, opts.disallow_sharing_agent_pidns); !ok) return std::move(ok).error();
    // Root, or root in a user namespace of its own (rootless): what creating namespaces needs.
    if (auto ok = check_privilege(opts.isolation); !ok) return std::move(ok).error();
    if (std::string old = kernel_too_old(); !old.empty()) return Error{Errc::unavailable, old};
    HostFacts facts;
    facts.per_namespace_pid_max = per_namespace_pid_max();
    facts.shim = opts.shim_path.empty() ? default_shim_path() : opts.shim_path;
    if (::access(facts.shim.c_str(), X_OK) < 0)
        return sys_error(Errc::unavailable, "cannot use nsfork-shim at " + facts.shim, errno);
    auto own = open_own_pid_namespace();
    if (!own) return std::move(own).error();
    facts.own_pidns = std::move(*own);
    facts.own_pidns_ino = namespace_inode(facts.own_pidns.get());
    // New fds must never land on 0, 1 or 2.
    for (int fd = 0; fd < 3; ++fd)
        if (::fcntl(fd, F_GETFD) < 0 && ::open("/dev/null", O_RDWR) != fd)
            return sys_error(Errc::internal, "cannot open /dev/null", errno);
    // Every container costs the server an fd or two: use all the fds we are allowed.
    if (rlimit files; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &files);
    }
    // An inherited SIG_IGN for SIGCHLD would make the kernel auto-reap containers.
    ::signal(SIGCHLD, SIG_DFL);
    // Logging to a closed pipe must not kill the server.
    ::signal(SIGPIPE, SIG_IGN);
    return facts;
}

CgroupRoot setup_cgroup_root(const std::string& operator_root) {
    // Our tree, nsfork-PID, goes under the operator's root (made if missing, kept at exit) or
    // else under our own cgroup. A tree of our own even under an operator's root: what a killed
    // server leaves there is then told from what a live one uses, and removed.
    Result<Cgroup> root = Error{};
    std::string parent;
    if (!operator_root.empty()) {
        ::mkdir(operator_root.c_str(), 0755);
        if (auto adopted = Cgroup::adopt(operator_root)) parent = operator_root;
        else root = std::move(adopted).error();
    } else if (const std::string mount = procfs::cgroup2_mount(); mount.empty()) {
        root = Error{Errc::unavailable, "no cgroup2 file system is mounted"};
    } else {
        const std::string own = procfs::cgroup2_path();
        parent = own == "/" ? mount : mount + own;
    }
    if (!parent.empty()) {
        // First: a dead server that had our pid may have left nsfork-<our pid>.
        remove_dead_server_trees(parent);
        root = Cgroup::create(parent, fmt::format("nsfork-{}", ::getpid()));
        if (root) mark_server_tree(root->path());
    }
    CgroupRoot out;
    if (root) {
        spdlog::debug("cgroup root {}", root->path());
        out.root.emplace(std::move(*root));
        return out;
    }
    out.no_cgroup_reason = root.error().message;
    spdlog::warn("no writable cgroup v2 ({}): launches that share a pid namespace will be refused",
                 out.no_cgroup_reason);
    return out;
}

} // namespace nsfork
