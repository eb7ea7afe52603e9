#include "launch.hpp"

#include "base/pidfd.hpp"
#include "base/unix_socket.hpp"
#include "launcher/plan.hpp"
#include "launcher/spawn.hpp"

#include <spdlog/spdlog.h>

#include <csignal>

namespace nsfork {

using Descriptor = boost::asio::posix::stream_descriptor;
using boost::system::error_code;

Result<std::shared_ptr<ContainerRecord>> launch_cold(boost::asio::io_context& io, LaunchSpec& spec,
                                                     std::optional<Cgroup> cgroup,
                                                     LaunchStatistics::Handler& timer) {
    // Until it is handed to the record, a failure's unwinding kills and removes the leaf.
    UniqueFd cgroup_dir;
    if (cgroup) {
        auto dir = cgroup->open_dir();
        if (!dir) return std::move(dir).error();
        cgroup_dir = std::move(*dir);
        spec.cgroup_fd = cgroup_dir.get();
    }
    // The command comes as a plan on a socket, as it does for a warm container; a command too
    // large for one datagram has its argv, env and cwd go through the shim's exec instead, its
    // settings and fds still in the plan (plan.hpp).
    timer.lap(LaunchPhase::clone_setup);
    auto plan = encode_cold_plan(spec);
    if (!plan) { // its settings are refused, which on_launch has checked before
        if (auto ok = check_command_settings(spec); !ok) return std::move(ok).error();
        return Error{Errc::internal, "no plan for the launch of '" + command_name(spec) + "'"};
    }
    timer.lap(LaunchPhase::plan);
    auto pair = seqpacket_pair();
    if (!pair) return Error{Errc::launch_failed, pair.error().message, pair.error().sys_errno};
    UniqueFd ours = std::move(pair->first), theirs = std::move(pair->second);
    spec.plan_fd = theirs.get();
    Result<Spawned> spawned = Error{};
    {
        const LaunchStatistics::Clone timing(timer.statistics()); // not the server's own work
        spawned = spawn(spec);
    }
    if (!spawned) return std::move(spawned).error();
    const pid_t pid = spawned->pid;
    theirs.reset();
    timer.lap(LaunchPhase::clone_setup);
    // Queued for the shim to read once it runs (waking it when it waits already); if it dies
    // first, its setup report says why.
    if (auto sent = send_plan(ours.get(), *plan, spec); !sent)
        spdlog::debug("launch of pid {}: {}", spawned->pid, sent.error().message);
    timer.lap(LaunchPhase::wake);
    auto c = std::make_shared<ContainerRecord>(Descriptor(io, spawned->pidfd.release()), Descriptor(io, ours.release()));
    c->setup_report = std::move(spawned->report);
    c->info.pid = pid;
    c->cgroup = std::move(cgroup);
    return c;
}

std::shared_ptr<WarmEntry> take_warm(WarmPool* pool, const Target& target, const LaunchSpec& spec,
                                     bool filesystem_isolation, LaunchStatistics::Handler& timer) {
    if (!pool || target.parent || target.pidns || !target.where.new_pid_namespace || !filesystem_isolation ||
        spec.pid_max)
        return nullptr;
    auto plan = encode_plan(spec);
    if (!plan) return nullptr; // too large for a datagram: the cold path passes it through the exec
    // A hold launch's runtime carries the root filesystem and bind sources in itself, so it may
    // take an entry whose mount table is older than the server's (pool.hpp).
    auto e = pool->take(spec.hold);
    if (!e) return nullptr;
    timer.lap(LaunchPhase::plan);
    auto sent = send_plan(e->plan.native_handle(), *plan, spec); // wakes the shim, waiting for it
    timer.lap(LaunchPhase::wake);
    if (!sent) {
        spdlog::warn("warm pool: pid {} did not take its plan: {}", e->pid, sent.error().message);
        // Killed and left to be reaped; its cgroup goes with the entry, once empty. The launch
        // takes the cold path.
        (void)signal_pidfd(e->pidfd.native_handle(), SIGKILL);
        e->pidfd.async_wait(Descriptor::wait_read, [e](error_code) {
            (void)reap(e->pidfd.native_handle());
            e->cgroup.reset(); // its destructor removes the leaf, empty now
        });
        return nullptr;
    }
    return e;
}

Result<void> exec_outcome(ContainerRecord& c) {
    return read_launch_outcome(c.report->native_handle(), c.setup_report.get(), c.command, c.cwd,
                               c.tty ? &c.terminal : nullptr);
}

} // namespace nsfork
