// A container's life after its launch: the exec report answers the Launch, the exit is reaped
// and announced, the cgroup drains, and a destroyed tree is forgotten once it settled.
#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "server/loop.hpp"

#include "base/pidfd.hpp"
#include "protocol/messages.hpp"
#include "protocol/replies.hpp"
#include "server/hold.hpp"

#include <spdlog/spdlog.h>

#include <csignal>

namespace nsfork {

using Descriptor = boost::asio::posix::stream_descriptor;
using boost::system::error_code;

namespace {

// Logs a transition the state machine refused: a bug, but not one to take the server down for.
void expect(bool legal, const ContainerRecord& c, const char* transition) {
    if (!legal) spdlog::error("container {}: {} refused in phase {}", c.info.id, transition, to_string(c.phase()));
}

} // namespace

// Writes `c`'s current description into the status table.
void Server::publish(const ContainerRecord& c) { table_->publish(c.info.slot, c.info); }

void Server::watch_report(const Record& c) {
    c->report->async_wait(Descriptor::wait_read, [this, c](error_code ec) {
        if (ec || !c->report) return;
        const std::uint64_t start = LaunchStatistics::now_ns();
        auto outcome = exec_outcome(*c);
        if (!outcome && outcome.error().sys_errno == EAGAIN) return watch_report(c); // spurious wake-up
        finish_launch(*c, std::move(outcome), start);
    });
}

// Answers the Launch once the init reported: exec succeeded, or why not.
void Server::finish_launch(ContainerRecord& c, Result<void> outcome, std::uint64_t start) {
    LaunchStatistics::Handler timer(statistics_, LaunchPhase::reply, start);
    statistics_.answered();
    const Waiter w = *c.launcher;
    c.launcher.reset();
    --launches_in_flight_;
    // The reply first (after the state it reports is written to the status table); the table's
    // sleepers are woken, the report channel closed and a refill scheduled after it, while the
    // client is on its way.
    struct After {
        Server& s;
        ContainerRecord& c;
        ~After() {
            s.table_->wake_readers();
            c.report.reset();
            c.setup_report.reset();
            c.terminal.reset(); // sent with the reply (or the launch failed): the client's alone
            c.device_program.reset(); // the same
            c.namespaces.clear();
            if (s.pool_) s.pool_->refill_soon(); // once the server is quiet (pool.cpp)
            s.spare_leaves_soon();
        }
    } after{*this, c};
    // A hold container's reply carries its cgroup leaf, for the client to fork its process into.
    UniqueFd leaf;
    if (outcome && c.info.held && c.cgroup) {
        auto dir = c.cgroup->open_dir();
        if (dir) leaf = std::move(*dir);
        else outcome = std::move(dir).error();
    }
    if (outcome && !c.kill_sent()) {
        flatbuffers::FlatBufferBuilder fbb(256);
        int fds[7] = {c.pidfd.native_handle()};
        std::size_t count = 1;
        if (c.terminal) fds[count++] = c.terminal.get();
        if (leaf) fds[count++] = leaf.get();
        if (c.device_program) fds[count++] = c.device_program.get();
        for (const UniqueFd& ns : c.namespaces) fds[count++] = ns.get(); // at most 3 (net, ipc, uts)
        timer.lap(LaunchPhase::reply);
        if (c.destroy_on_exit) c.destroyers.push_back(w); // answered again when it is gone
        if (c.exec_reported()) {
            c.info.state = c.wire_state();
            table_->publish(c.info.slot, c.info, StatusTableWriter::Wake::later); // seen before the reply
            timer.lap(LaunchPhase::table);
            write_launch_reply(fbb, w.seq, c.info, bool(c.terminal), bool(leaf), c.destroy_on_exit,
                               bool(c.device_program), c.namespaces.size());
        } else { // it exec'd and was reaped before its report was read: on_exit goes on from here
            ContainerInfo ran = c.info;
            ran.state = State::running;
            table_->publish(ran.slot, ran, StatusTableWriter::Wake::later);
            timer.lap(LaunchPhase::table);
            write_launch_reply(fbb, w.seq, ran, bool(c.terminal), bool(leaf), c.destroy_on_exit,
                               bool(c.device_program), c.namespaces.size());
        }
        timer.lap(LaunchPhase::reply);
        reply(w, fbb, std::span<const int>(fds, count)); // wakes the client
        timer.lap(LaunchPhase::wake);
        return;
    }
    Error e = outcome ? Error{} : std::move(outcome).error();
    if (c.kill_sent()) e = Error{Errc::launch_failed, "container '" + c.info.id + "' was destroyed while starting"};
    spdlog::debug("launch {} failed: {}", c.info.id, e.message);
    destroy(c); // killed first (a failed launch may leave its shim running), then discarded
    expect(c.launch_failed(), c, "launch_failed");
    reply_error(w, e);
}

void Server::watch_exit(const Record& c) {
    c->pidfd.async_wait(Descriptor::wait_read, [this, c](error_code ec) {
        if (ec) return;
        auto reaped = try_reap(c->pidfd.native_handle());
        if (!reaped) {
            spdlog::error("container {}: {}", c->info.id, reaped.error().message);
            return;
        }
        if (!*reaped) return watch_exit(c); // not a zombie yet
        on_exit(c, **reaped);
    });
}

void Server::on_exit(const Record& c, ExitStatus status) {
    --live_;
    last_activity_ns_ = LaunchStatistics::now_ns();
    set_up(*c);
    expect(c->reaped(), *c, "reaped");
    c->main.reset(); // a hold container's main process: its end matters no more
    // The first process is gone, so is every writer of the report pipe: the read cannot block.
    if (c->report) {
        auto outcome = exec_outcome(*c);
        if (!outcome && outcome.error().sys_errno == EAGAIN) // a writer outlives the init: should not be
            outcome = Error{Errc::launch_failed, "the container's init exited before it reported"};
        finish_launch(*c, std::move(outcome));
    }
    c->info.exit = status;
    c->info.state = c->wire_state();
    publish(*c);
    spdlog::debug("container {} ended: status {}", c->info.id, status.shell_code());
    for (const Waiter& w : std::exchange(c->waiters, {})) {
        flatbuffers::FlatBufferBuilder fbb(256);
        write_wait_reply(fbb, w.seq, c->info);
        reply(w, fbb);
    }
    // Nothing of a container outlives its first process: not what it left in its cgroup (a
    // shared namespace does not do that for us), not the containers nested in it.
    if (c->cgroup && !c->own_pidns) (void)c->cgroup->kill();
    for (const std::string& child : c->children)
        if (auto n = registry_.find(child)) registry_.kill(*n, kill_);
    if (c->destroy_on_exit) destroy(*c); // forgotten once it and its nest settled
    watch_emptied(c);
}

// Marks `c` drained once its cgroup has no process left, watching cgroup.events (POLLPRI).
void Server::watch_emptied(const Record& c) {
    if (c->cgroup && still_populated(c)) return; // called again when that changes
    expect(c->drained(), *c, "drained");
    c->events.reset();
    settle_up(c->info.id);
}

// Whether processes are left in `c`'s cgroup; if so, its cgroup.events is watched for the
// change. One that cannot be read counts as empty.
bool Server::still_populated(const Record& c) {
    if (!c->events) {
        // Empty already, mostly (a namespace's processes are gone once its init can be reaped).
        // Being destroyed, the leaf then goes now, with one rmdir and nothing read; one still
        // populated, or with sub-cgroups, refuses it (EBUSY) and is watched. An exited
        // container keeps its leaf (its statistics) until it is destroyed.
        if (c->destroying() && c->cgroup->remove_if_empty()) return false;
        auto fd = c->cgroup->open_events();
        if (!fd) {
            spdlog::error("container {}: {}", c->info.id, fd.error().message);
            return false;
        }
        // Empty: then nothing is watched.
        if (auto populated = c->cgroup->populated(fd->get()); !populated || !*populated) return false;
        c->events.emplace(io_, fd->release());
    }
    // Armed before the check below, so that a change in between is not missed.
    c->events->async_wait(Descriptor::wait_error, [this, c](error_code ec) {
        if (!ec && !c->is_drained()) watch_emptied(c);
    });
    auto populated = c->cgroup->populated(c->events->native_handle());
    return populated && *populated;
}

// Sends the kill: its own namespace, SIGKILL to pid 1 and the kernel does the rest; shared, the cgroup.
void Server::kill_one(ContainerRecord& c) {
    Result<void> ok = c.own_pidns || !c.cgroup ? signal_pidfd(c.pidfd.native_handle(), SIGKILL) : c.cgroup->kill();
    if (!ok) spdlog::warn("container {}: {}", c.info.id, ok.error().message);
}

// Kills `c` and everything nested in it; they are forgotten once all of them settled.
void Server::destroy(ContainerRecord& c) { registry_.request_destroy(c, kill_); }

void Server::settle_up(const std::string& id) {
    if (registry_.settle_up(id, forget_)) maybe_stop();
}

// What forgetting a container releases: its cgroup, its status table slot; its Destroys are answered.
void Server::forget_one(ContainerRecord& c) {
    last_activity_ns_ = LaunchStatistics::now_ns();
    if (c.cgroup) {
        if (auto ok = c.cgroup->remove(); !ok) spdlog::warn("container {}: {}", c.info.id, ok.error().message);
        else if (!c.named_cgroup_under.empty())
            remove_cgroup_parents(c.named_cgroup_under, std::string_view(c.cgroup->path()).substr(c.named_cgroup_under.size() + 1));
    }
    if (c.holder_cgroup)
        if (auto ok = c.holder_cgroup->remove(); !ok) spdlog::warn("container {}: {}", c.info.id, ok.error().message);
    c.info.state = c.wire_state();
    table_->release(c.info.slot);
    for (const Waiter& w : std::exchange(c.destroyers, {})) {
        flatbuffers::FlatBufferBuilder fbb(256);
        write_destroy_reply(fbb, w.seq, c.info);
        reply(w, fbb);
    }
}

} // namespace nsfork
