// The warm pool: pid + mount namespaces made ahead of time, /proc mounted, cgroup made, the
// shim already running as their pid 1 and waiting on a socket for a container's plan. A launch
// that takes one skips clone, mount and the shim's exec (KERNEL.md, "Init design and launch
// latency"). Included by the server's own files only (it pulls in Asio).
//
// Each entry copied the server's mount table when it was made. Whether a copy that differs from
// the table now may serve depends on the launch:
// - an agent launch (a command of the server's) runs with the server's view of the file system,
//   so it takes only an entry whose copy is current;
// - a hold launch (nsfork-oci's) needs nothing of the copy but /tmp (where the root is staged)
//   and /dev (a device node it may not make is bound from there): the runtime carries the root
//   filesystem and every bind source in as detached mounts (open_tree in its own mount
//   namespace, oci/setup_plan.cpp) and pivots away from the rest. It takes any entry.
// podman and Docker mount each container's root filesystem on the host just before `create`;
// so on an engine's node every entry is stale for agents, and still good for the engine.
#pragma once

#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "launcher/cgroup.hpp"
#include "nsfork/fd.hpp"
#include "launcher/spawn.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

namespace nsfork {

// One ready (or warming) namespace.
struct WarmEntry {
    WarmEntry(boost::asio::io_context& io, Spawned&& s, UniqueFd plan_socket)
        : pidfd(io, s.pidfd.release()), report(io, s.report.release()), plan(io, plan_socket.release()), pid(s.pid) {}

    boost::asio::posix::stream_descriptor pidfd;  // its pid 1, the shim
    boost::asio::posix::stream_descriptor report; // ready once the shim reports
    boost::asio::posix::stream_descriptor plan;   // where its plan goes, and its exec report returns
    pid_t pid;
    ino_t pidns = 0;          // its pid namespace (read when ready: not on the launch path)
    std::optional<Cgroup> cgroup;
    std::size_t mounts = 0;   // hash of the mount table it copied
    // When it was first seen to have copied another table than the server's (stale for agent
    // launches), or {} if it has not.
    std::chrono::steady_clock::time_point stale_since{};
    bool ready = false;
    bool dead = false;        // discarded or died: never handed out
};

struct PoolStats {
    std::uint32_t size = 0, ready = 0, warming = 0;
    std::uint64_t served = 0, discarded = 0;
};

class WarmPool {
public:
    // How long the server must have had no launch in flight before it refills (refill_soon).
    static constexpr std::chrono::microseconds kQuiet{300};
    struct Config {
        std::uint32_t size = 0;         // ready namespaces to keep; 0: no pool
        std::string shim;
        const Cgroup* cgroup_root = nullptr;
        std::function<bool()> busy;     // launches in flight: refilling waits until there are none
        std::function<std::string()> cgroup_name; // a fresh leaf name, as a cold container gets
    };
    // `on_empty` runs when, after stop(), the last entry has been reaped.
    WarmPool(boost::asio::io_context& io, Config config, std::function<void()> on_empty);

    void start();
    // Refills once the server is quiet (call it whenever a launch completes).
    void refill_soon();
    // A ready entry, or nullptr (the launch then takes the cold path). The caller owns it now:
    // the pool no longer watches it, and refills in the background. A hold launch (`hold`)
    // takes any ready entry, one with a stale mount table first; an agent launch only one whose
    // mount table is the server's now, and discards the stale ones (they are refilled).
    std::shared_ptr<WarmEntry> take(bool hold);
    PoolStats stats() const;
    // Kills every entry; on_empty runs once all are reaped.
    void stop();
    bool empty() const { return entries_.empty(); }

private:
    void refill();
    void pause_refills();
    void refill_after(std::chrono::steady_clock::time_point when);
    void arm_quiet(std::chrono::steady_clock::time_point when);
    void watch_ready(const std::shared_ptr<WarmEntry>& e);
    void watch_death(const std::shared_ptr<WarmEntry>& e);
    void watch_mounts();
    void mounts_changed();
    void read_mounts();
    bool probe_changed();
    std::size_t mount_table_hash();
    std::size_t discard_stale(std::chrono::steady_clock::time_point older_than);
    void arm_stale_timer();
    void discard(WarmEntry& e);
    void forget(const std::shared_ptr<WarmEntry>& e);

    boost::asio::io_context& io_;
    Config config_;
    std::function<void()> on_empty_;
    std::list<std::shared_ptr<WarmEntry>> entries_;
    std::optional<boost::asio::posix::stream_descriptor> mountinfo_;
    // A second open of mountinfo, polled (not watched) by an agent's take() and by every read
    // of the table: each open file keeps its own last-seen event, and the watched one's may
    // already be consumed by the reactor while its handler still waits in the queue behind the
    // launch request.
    UniqueFd mounts_probe_;
    std::size_t mounts_ = 0;     // hash of our mount table, as last read
    bool mounts_dirty_ = false;  // it changed since: read it again before trusting mounts_
    boost::asio::steady_timer mounts_timer_;
    // Whether the last launch the pool served (or could not serve) was an agent launch: then a
    // change of the mount table replaces stale entries at once, as the next launch is likely an
    // agent's too. After a hold launch (and before any launch) stale entries stay, for engines.
    bool agents_ = false;
    // A stale entry is replaced at the latest this long after it went stale, launches or not:
    // a ready namespace keeps a private copy of every mount the host had when it was made, and
    // would keep a file system the host has unmounted since alive (a device busy) for as long
    // as it waits.
    static constexpr std::chrono::seconds kStaleLimit{60};
    boost::asio::steady_timer stale_timer_;
    bool stale_armed_ = false;
    std::uint64_t served_ = 0, discarded_ = 0;
    boost::asio::steady_timer quiet_; // refills wait for a quiet moment (refill_soon)
    std::chrono::steady_clock::time_point quiet_from_{}; // not before then
    bool quiet_armed_ = false;
    std::chrono::steady_clock::time_point paused_until_{};
    bool stopping_ = false;
};

} // namespace nsfork
