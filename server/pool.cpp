#include "pool.hpp"
#include "base/procfs.hpp"

#include "base/pidfd.hpp"
#include "base/syscalls.hpp"
#include "base/unix_socket.hpp"
#include "protocol/framing.hpp"
#include "server/policy.hpp"

#include <fcntl.h>
#include <poll.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <sched.h>

namespace nsfork {

using Descriptor = boost::asio::posix::stream_descriptor;
using boost::system::error_code;

namespace {

// Gives our child `pid` the scheduling a child of ours inherits at clone: our policy, priority
// and nice value, unless we reset on fork (sched(7)): then no real-time policy, no negative nice
// value, and the flag itself is not inherited.
Result<void> inherit_scheduling(pid_t pid) {
    sys::SchedAttr attr;
    if (sys::sched_getattr(0, &attr) < 0) return sys_error(Errc::internal, "sched_getattr failed", errno);
    if (attr.flags & sys::kSchedFlagResetOnFork) {
        if (attr.policy != SCHED_OTHER && attr.policy != SCHED_BATCH && attr.policy != SCHED_IDLE) {
            attr.policy = SCHED_OTHER;
            attr.priority = 0;
        }
        attr.nice = std::max(attr.nice, 0);
    }
    attr.flags = 0; // utilization clamps are left as inherited
    // sched_getattr reports a fair task's time slice as its runtime; set back, it would become a
    // custom slice (Linux 6.12+), which no cold container has.
    attr.runtime = attr.deadline = attr.period = 0;
    attr.size = sizeof attr;
    if (sys::sched_setattr(pid, &attr) < 0)
        return sys_error(Errc::internal, "cannot give it the server's scheduling (sched_setattr)", errno);
    return {};
}

} // namespace

WarmPool::WarmPool(boost::asio::io_context& io, Config config, std::function<void()> on_empty)
    : io_(io), config_(std::move(config)), on_empty_(std::move(on_empty)), mounts_timer_(io), stale_timer_(io), quiet_(io) {}

void WarmPool::start() {
    if (config_.size == 0) return;
    watch_mounts();
    refill_soon();
}

// A ready entry copied the host's mount table when it was made; one whose copy differs from the
// table now would show an agent launch a stale view (pool.hpp). Changes are signalled (POLLPRI
// on /proc/self/mountinfo); the table is then compared by content, not by event: a tool that
// mounts and unmounts at once (runc does, for its own binary) leaves the table as it was, and
// the ready entries current.
void WarmPool::watch_mounts() {
    if (!mountinfo_) {
        const int fd = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            spdlog::warn("warm pool: cannot watch /proc/self/mountinfo ({}); pool disabled", std::strerror(errno));
            config_.size = 0;
            return;
        }
        mountinfo_.emplace(io_, fd);
        mounts_probe_ = UniqueFd(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
        mounts_ = mount_table_hash();
    }
    mountinfo_->async_wait(Descriptor::wait_error, [this](error_code ec) {
        if (ec || stopping_) return;
        mounts_dirty_ = true;
        // Coalesce a burst of changes; a launch meanwhile compares the table itself (take()).
        mounts_timer_.expires_after(std::chrono::milliseconds(1));
        mounts_timer_.async_wait([this](error_code timer_ec) {
            if (!timer_ec && !stopping_) mounts_changed();
        });
        watch_mounts();
    });
}

std::size_t WarmPool::mount_table_hash() {
    std::string table;
    char buf[8192];
    for (off_t off = 0;;) {
        const ssize_t n = ::pread(mountinfo_->native_handle(), buf, sizeof buf, off);
        if (n <= 0) break;
        table.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
    return std::hash<std::string>{}(table);
}

// Whether the table changed since the probe was last polled (each poll consumes the change).
bool WarmPool::probe_changed() {
    if (!mounts_probe_) return true;
    pollfd probe{mounts_probe_.get(), POLLPRI, 0};
    return ::poll(&probe, 1, 0) > 0 && (probe.revents & (POLLPRI | POLLERR));
}

// Reads the table again if it changed since it was last read, and notes which entries that
// made stale (or current again: a table can change back).
void WarmPool::read_mounts() {
    if (!mounts_dirty_) return;
    mounts_dirty_ = false;
    // The probe's change is consumed before the read, not after it, so that a change during the
    // read shows on it again. Left unconsumed, it would make the next agent launch read the
    // table again although the watcher's read already saw the change.
    (void)probe_changed();
    mounts_ = mount_table_hash();
    const auto now = std::chrono::steady_clock::now();
    for (auto& e : entries_) {
        if (e->mounts == mounts_) e->stale_since = {};
        else if (e->stale_since == std::chrono::steady_clock::time_point{}) e->stale_since = now;
    }
}

// Discards the entries stale since `since` or before (as read last), to be refilled; how many.
std::size_t WarmPool::discard_stale(std::chrono::steady_clock::time_point since) {
    std::size_t stale = 0;
    for (auto& e : entries_)
        if (!e->dead && e->stale_since != std::chrono::steady_clock::time_point{} && e->stale_since <= since) {
            discard(*e);
            ++stale;
        }
    if (stale) {
        spdlog::debug("warm pool: {} entr{} with a stale mount table discarded", stale, stale == 1 ? "y" : "ies");
        refill_soon();
    }
    return stale;
}

// The mount table changed a moment ago (a burst of changes coalesced). On a node whose last
// launch was an agent's, the stale entries are replaced now, so that the next agent launch
// finds current ones. Otherwise they stay: on an
// engine's node the engine mounts each container's root filesystem on the host, and replacing
// the pool at every launch served nothing and kept a CPU busy re-warming; the next hold launch
// takes one as it is. Either way a stale entry goes within kStaleLimit.
void WarmPool::mounts_changed() {
    read_mounts();
    if (agents_) discard_stale(std::chrono::steady_clock::time_point::max());
    arm_stale_timer();
}

// Fires when the longest-stale entry reaches kStaleLimit: it is replaced then, whatever the
// launches, so that no file system the host has unmounted is kept alive by a waiting namespace
// for long. Costs at most one refill per entry per kStaleLimit, on a node whose table keeps
// changing with no launch to take the entries.
void WarmPool::arm_stale_timer() {
    if (stale_armed_ || stopping_) return;
    std::optional<std::chrono::steady_clock::time_point> first;
    for (const auto& e : entries_)
        if (!e->dead && e->stale_since != std::chrono::steady_clock::time_point{})
            first = first ? std::min(*first, e->stale_since) : e->stale_since;
    if (!first) return;
    stale_armed_ = true;
    stale_timer_.expires_at(*first + kStaleLimit);
    stale_timer_.async_wait([this](error_code ec) {
        stale_armed_ = false;
        if (ec || stopping_) return;
        read_mounts();
        discard_stale(std::chrono::steady_clock::now() - kStaleLimit);
        arm_stale_timer();
    });
}

// A hold launch prefers a stale entry: on a node that serves both kinds, the current ones are
// left for agent launches, which cannot take the others. It reads no mount table (an entry
// counts as stale by the table as last read), so the launch path costs what it did.
std::shared_ptr<WarmEntry> WarmPool::take(bool hold) {
    agents_ = !hold;
    if (!hold) {
        // Never hand an agent a namespace whose mount table is not ours now; the stale ones
        // could serve only hold launches, and make room for current ones. A change the
        // watcher has not handled yet shows on the probe (POLLPRI), at the cost of one poll().
        if (probe_changed()) mounts_dirty_ = true;
        read_mounts();
        discard_stale(std::chrono::steady_clock::time_point::max());
    }
    auto chosen = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        const auto& e = *it;
        if (!e->ready || e->dead) continue;
        if (chosen == entries_.end()) chosen = it;
        if (!hold || e->stale_since != std::chrono::steady_clock::time_point{}) {
            chosen = it;
            break;
        }
    }
    if (chosen == entries_.end()) return nullptr;
    std::shared_ptr<WarmEntry> taken = *chosen;
    entries_.erase(chosen);
    error_code ignored;
    taken->pidfd.cancel(ignored); // our death watch ends; the container's begins
    ++served_;
    return taken; // refilled once the launch it serves has been answered
}

PoolStats WarmPool::stats() const {
    PoolStats s;
    s.size = config_.size;
    for (const auto& e : entries_) {
        if (e->dead) continue;
        if (e->ready) ++s.ready;
        else ++s.warming;
    }
    s.served = served_;
    s.discarded = discarded_;
    return s;
}

// Refills one entry at a time, once the server has been quiet a moment: no launch in flight and
// none answered for kQuiet. A launch just answered still has its client to wake and its command
// to start, on a machine of few cores; a refill's clone3 runs in the kernel, where (without full
// preemption) nothing takes its CPU until it is done. The entry then sets itself up (mounts,
// the shim's exec) at SCHED_IDLE, on CPU time no launch wants. A burst of launches defers
// refilling (they take the cold path once the pool is empty) and cannot make the server fork
// without bound.
void WarmPool::refill_soon() {
    if (stopping_ || config_.size == 0) return;
    refill_after(std::chrono::steady_clock::now() + kQuiet); // pushes back a refill already waiting
}

// A refill not before `when`, nor before a time already set. The timer, once armed, is only
// re-armed when it fires early: no timer syscall per launch.
void WarmPool::refill_after(std::chrono::steady_clock::time_point when) {
    quiet_from_ = std::max(quiet_from_, when);
    if (!quiet_armed_) arm_quiet(quiet_from_);
}

void WarmPool::arm_quiet(std::chrono::steady_clock::time_point when) {
    quiet_armed_ = true;
    quiet_.expires_at(when);
    quiet_.async_wait([this](error_code ec) {
        quiet_armed_ = false;
        if (ec || stopping_) return;
        if (std::chrono::steady_clock::now() < quiet_from_) return arm_quiet(quiet_from_);
        refill();
    });
}

// After a failure (an entry that would not warm up), refills wait a second: a broken shim or
// cgroup must not turn the server into a fork loop.
void WarmPool::pause_refills() { paused_until_ = std::chrono::steady_clock::now() + std::chrono::seconds(1); }

void WarmPool::refill() {
    if (stopping_ || (config_.busy && config_.busy())) return; // the last launch to finish calls again
    std::uint32_t live = 0, warming = 0;
    for (const auto& e : entries_) {
        if (e->dead) continue;
        ++live;
        warming += !e->ready;
    }
    if (live >= config_.size || warming > 0) return;
    if (std::chrono::steady_clock::now() < paused_until_) return refill_after(paused_until_);

    std::optional<Cgroup> cgroup;
    if (config_.cgroup_root) {
        // Named as a cold container's leaf would be, so that it needs no move (cgroup v2 cannot
        // rename, and a move waits for an RCU grace period: milliseconds) when it is handed out.
        auto made = Cgroup::create(config_.cgroup_root->path(), config_.cgroup_name());
        if (!made) {
            spdlog::warn("warm pool: {}", made.error().message);
            return;
        }
        cgroup.emplace(std::move(*made));
    }
    // On a failure below, the leaf goes with `cgroup` (Cgroup's destructor removes it).
    auto pair = seqpacket_pair();
    if (!pair) {
        spdlog::warn("warm pool: {}", pair.error().message);
        return;
    }
    auto& [ours, theirs] = *pair;
    // The table it will copy, read before the clone: a change after this read marks the pool
    // dirty, and the entry is compared again before it is handed out to an agent launch (one
    // that copied the new table after all counts as stale then: only a needless discard).
    read_mounts();
    const std::size_t mounts = mounts_;
    UniqueFd cgroup_dir;
    if (cgroup) {
        auto dir = cgroup->open_dir();
        if (!dir) {
            spdlog::warn("warm pool: {}", dir.error().message);
            return;
        }
        cgroup_dir = std::move(*dir);
    }
    LaunchSpec spec;
    spec.init_path = config_.shim;
    spec.plan_fd = theirs.get();
    spec.cgroup_fd = cgroup_dir.get();
    spec.awaited = false;
    // Until ready (watch_ready), unless the server could not give it its own policy back then
    // (without root: no CAP_SYS_NICE, RLIMIT_NICE 0), which would discard every entry.
    static const bool may_leave_idle = may_leave_sched_idle(); // fixed for the server's life
    spec.sched_idle = may_leave_idle;
    auto spawned = spawn(spec);
    if (!spawned) {
        spdlog::warn("warm pool: {}", spawned.error().message);
        return;
    }
    const pid_t pid = spawned->pid;
    auto e = std::make_shared<WarmEntry>(io_, std::move(*spawned), std::move(ours));
    e->cgroup = std::move(cgroup);
    e->mounts = mounts;
    entries_.push_back(e);
    spdlog::debug("warm pool: warming pid {}", pid);
    watch_ready(e);
    watch_death(e);
}

void WarmPool::watch_ready(const std::shared_ptr<WarmEntry>& e) {
    e->report.async_wait(Descriptor::wait_read, [this, e](error_code ec) {
        if (ec || e->dead) return;
        auto ok = read_exec_report(e->report.native_handle(), "nsfork-shim", "/");
        if (!ok && ok.error().sys_errno == EAGAIN) return watch_ready(e); // spurious wake-up
        error_code ignored;
        e->report.close(ignored);
        if (ok) ok = inherit_scheduling(e->pid); // from SCHED_IDLE to what a cold container gets
        if (!ok) {
            spdlog::warn("warm pool: pid {} failed to warm up: {}", e->pid, ok.error().message);
            pause_refills();
            discard(*e);
            return;
        }
        // Read now, off the launch path: what a launch needs from the entry besides its plan.
        e->pidns = procfs::pid_namespace_inode(e->pid, e->pidfd.native_handle());
        e->plan.non_blocking(true, ignored);
        e->ready = true;
        const PoolStats s = stats();
        spdlog::debug("warm pool: pid {} ready ({} ready, {} served, {} discarded)", e->pid, s.ready, s.served, s.discarded);
        // The next one, if the pool is still short: a full pool arms no timer (each a VM exit here).
        if (s.ready + s.warming < config_.size) refill_soon();
    });
}

// An entry that dies while waiting (killed from outside, or discarded) is reaped and replaced.
void WarmPool::watch_death(const std::shared_ptr<WarmEntry>& e) {
    e->pidfd.async_wait(Descriptor::wait_read, [this, e](error_code ec) {
        if (ec) return; // cancelled: taken by a launch
        auto reaped = try_reap(e->pidfd.native_handle());
        if (reaped && !*reaped) return watch_death(e);
        if (!e->dead) {
            spdlog::debug("warm pool: pid {} died while waiting", e->pid);
            e->dead = true;
            ++discarded_;
        }
        forget(e);
        refill_soon();
    });
}

void WarmPool::discard(WarmEntry& e) {
    if (e.dead) return;
    e.dead = true;
    ++discarded_;
    (void)signal_pidfd(e.pidfd.native_handle(), SIGKILL); // reaped by watch_death
}

void WarmPool::forget(const std::shared_ptr<WarmEntry>& e) {
    if (e->cgroup)
        if (auto ok = e->cgroup->remove(); !ok) spdlog::warn("warm pool: {}", ok.error().message);
    entries_.remove(e);
    if (stopping_ && entries_.empty() && on_empty_) on_empty_();
}

void WarmPool::stop() {
    stopping_ = true;
    if (mountinfo_) {
        error_code ignored;
        mountinfo_->close(ignored);
        mounts_timer_.cancel();
        stale_timer_.cancel();
    }
    quiet_.cancel();
    for (auto& e : entries_) discard(*e);
    if (entries_.empty() && on_empty_) on_empty_();
}

} // namespace nsfork
