#include "cli/local.hpp"

#include "base/pidfd.hpp"
#include "base/procfs.hpp"
#include "launcher/pidns.hpp"
#include "launcher/plan.hpp"
#include "server/placement.hpp"
#include "server/policy.hpp"
#include "server/preflight.hpp"
#include "server/server.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <string>

namespace nsfork::cli {

namespace {

// nsfork-PID below our own cgroup v2, as a server names its root; or why there is none. Being
// born into it takes writing cgroup.procs of our own (without root: a delegated subtree).
Result<Cgroup> own_cgroup() {
    const std::string mount = procfs::cgroup2_mount();
    if (mount.empty()) return Error{Errc::unavailable, "no cgroup2 file system is mounted"};
    std::string own = procfs::cgroup2_path();
    own = own == "/" ? mount : mount + own;
    if (::faccessat(AT_FDCWD, (own + "/cgroup.procs").c_str(), W_OK, AT_EACCESS) < 0)
        return sys_error(Errc::unavailable, "cannot write " + own + "/cgroup.procs (not a cgroup delegated to us)", errno);
    return Cgroup::create(own, "nsfork-" + std::to_string(::getpid()));
}

} // namespace

Result<LocalContainer> LocalContainer::launch(LaunchSpec spec, const LocalPlacement& where) {
    LocalContainer c;
    // Placed by the server's own rules (server/placement.hpp), so that both paths refuse alike.
    auto own_ns = open_own_pid_namespace();
    if (!own_ns) return std::move(own_ns).error();
    PlacementRequest request;
    request.share_pid_namespace = where.share_pid_namespace;
    request.join_fd = where.join_fd >= 0;
    request.pid_max = spec.pid_max;
    UniqueFd joined;
    if (request.join_fd) {
        auto ns = resolve_pid_namespace(where.join_fd, own_ns->get());
        if (!ns) return std::move(ns).error();
        joined = std::move(*ns);
        request.joined_pidns = namespace_inode(joined.get());
    }
    auto cgroup = own_cgroup();
    ServerFacts facts;
    facts.own_pidns = namespace_inode(own_ns->get());
    facts.per_namespace_pid_max = spec.pid_max && per_namespace_pid_max();
    facts.own_pidns_refusal = own_pid_namespace_refusal();
    if (cgroup) facts.cgroup_root = cgroup->path();
    else facts.no_cgroup_reason = cgroup.error().message;
    auto placed = place(request, nullptr, facts);
    if (!placed) return std::move(placed).error();
    UniqueFd cgroup_dir;
    if (cgroup) {
        c.cgroup_.emplace(std::move(*cgroup));
        auto dir = c.cgroup_->open_dir();
        if (!dir) return std::move(dir).error();
        cgroup_dir = std::move(*dir);
    }

    spec.init_path = default_shim_path();
    spec.new_pid_namespace = placed->new_pid_namespace;
    spec.pidns_fd = joined.get();
    spec.cgroup_fd = cgroup_dir.get();
    auto launch = spawn_planned(spec);
    if (!launch) return std::move(launch).error();
    c.pidfd_ = std::move(launch->spawned.pidfd);
    c.pid_ = launch->spawned.pid;
    // From here on, a failure's unwinding (~LocalContainer) kills and reaps what was started.
    if (auto ok = read_launch_outcome(*launch, spec, &c.terminal_); !ok) return std::move(ok).error();
    c.channel_ = std::move(launch->channel);
    return c;
}

LocalContainer::~LocalContainer() {
    if (!pidfd_) return;
    if (!reaped_) {
        kill();
        (void)wait();
    }
}

std::uint64_t LocalContainer::pidns() const { return reaped_ ? 0 : procfs::pid_namespace_inode(pid_); }

void LocalContainer::kill() {
    if (!reaped_) (void)signal_pidfd(pidfd_.get(), SIGKILL);
    if (cgroup_) (void)cgroup_->kill();
}

Result<ExitStatus> LocalContainer::wait() {
    auto status = reap(pidfd_.get());
    reaped_ = true;
    // pid 1's death ended its namespace; a shared namespace's leftovers go with the cgroup.
    if (cgroup_) {
        auto gone = cgroup_->destroy();
        cgroup_.reset();
        if (!gone) return std::move(gone).error();
    }
    return status;
}

} // namespace nsfork::cli
