#include "server/signal_all.hpp"

#include "nsfork/fd.hpp"
#include "base/procfs.hpp"
#include "base/syscalls.hpp"
#include "launcher/cgroup.hpp"
#include "launcher/pidns.hpp"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string_view>
#include <vector>

namespace nsfork {

namespace {

// Signals `pid` unless it is spared, through a pidfd opened before `member` looks at it: if the
// process is still alive when signalled, it held the pid all along, so `member` saw it and not
// a successor. Returns 0, or the errno of a failure other than the process having exited.
int signal_if(pid_t pid, int sig, std::span<const pid_t> spare, const std::function<bool(pid_t)>& member) {
    if (std::find(spare.begin(), spare.end(), pid) != spare.end()) return 0;
    UniqueFd pidfd(sys::pidfd_open(pid, 0));
    if (!pidfd) return errno == ESRCH ? 0 : errno;
    if (!member(pid)) return 0;
    if (sys::pidfd_send_signal(pidfd.get(), sig) < 0 && errno != ESRCH) return errno;
    return 0;
}

// The numeric entries of the directory `dir` (/proc).
std::vector<pid_t> pids_in_dir(const char* dir) {
    std::vector<pid_t> out;
    DIR* d = ::opendir(dir);
    if (!d) return out;
    while (const dirent* e = ::readdir(d)) {
        char* end;
        const long n = std::strtol(e->d_name, &end, 10);
        if (*end == '\0' && n > 0) out.push_back(static_cast<pid_t>(n));
    }
    ::closedir(d);
    return out;
}

// The pids listed in a cgroup.procs file; none if it is gone.
std::vector<pid_t> pids_in_file(const std::string& path) {
    std::vector<pid_t> out;
    std::ifstream in(path);
    for (pid_t pid; in >> pid;) out.push_back(pid);
    return out;
}

// `cgroup` and its sub-cgroups, parents before children. A sub-cgroup removed meanwhile is
// simply not there.
void collect_cgroups(const std::string& cgroup, std::vector<std::string>& out) {
    out.push_back(cgroup);
    for (const std::string& name : sub_cgroup_names(cgroup)) collect_cgroups(cgroup + "/" + name, out);
}

} // namespace

Result<void> signal_cgroup_tree(const std::string& mount, const std::string& cgroup, int sig,
                                std::span<const pid_t> spare) {
    if (!cgroup.starts_with(mount + "/"))
        return Error{Errc::internal, "cgroup " + cgroup + " is not under the cgroup2 mount " + mount};
    // As /proc/PID/cgroup names it (relative to the mount), and what its sub-cgroups start with.
    const std::string self = cgroup.substr(mount.size());
    const std::string below = self + "/";
    auto member = [&](pid_t pid) {
        const std::string path = procfs::cgroup2_path(pid);
        return path == self || path.starts_with(below);
    };
    std::vector<std::string> cgroups;
    collect_cgroups(cgroup, cgroups);
    int first_error = 0;
    for (const std::string& dir : cgroups)
        for (pid_t pid : pids_in_file(dir + "/cgroup.procs"))
            if (int e = signal_if(pid, sig, spare, member); e && !first_error) first_error = e;
    if (first_error)
        return sys_error(Errc::internal, "cannot signal every process of cgroup " + cgroup, first_error);
    return {};
}

Result<void> signal_pid_namespace_tree(std::uint64_t pidns, int sig, std::span<const pid_t> spare) {
    auto member = [pidns](pid_t pid) {
        const std::string path = "/proc/" + std::to_string(pid) + "/ns/pid";
        const UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        return ns && pid_namespace_below(ns.get(), pidns) == 0;
    };
    int first_error = 0;
    for (pid_t pid : pids_in_dir("/proc"))
        if (int e = signal_if(pid, sig, spare, member); e && !first_error) first_error = e;
    if (first_error)
        return sys_error(Errc::internal, "cannot signal every process of pid namespace " + std::to_string(pidns),
                         first_error);
    return {};
}

} // namespace nsfork
