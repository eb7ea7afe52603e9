// The warm pool: pid + mount namespaces made ahead of time, /proc mounted, cgroup made, the
// shim already running as their pid 1 and waiting on a socket for a container's plan. A launch
// that takes one skips clone, mount and the shim's exec (KERNEL.md, "Init design and launch
// latency"). Included by the server's own files only (it pulls in Asio).
#pragma once

#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "launcher/cgroup.hpp"
#include "nsfork/fd.hpp"
#include "launcher/spawn.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

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
    bool ready = false;
    bool dead = false;        // discarded or died: never handed out
};

struct PoolStats {
    std::uint32_t size = 0, ready = 0, warming = 0;
    std::uint64_t served = 0, discarded = 0;
};

class WarmPool {
public:
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
    // the pool no longer watches it, and refills in the background.
    std::shared_ptr<WarmEntry> take();
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
    void check_mounts();
    std::size_t mount_table_hash();
    void discard(WarmEntry& e);
    void forget(const std::shared_ptr<WarmEntry>& e);

    boost::asio::io_context& io_;
    Config config_;
    std::function<void()> on_empty_;
    std::list<std::shared_ptr<WarmEntry>> entries_;
    std::optional<boost::asio::posix::stream_descriptor> mountinfo_;
    std::size_t mounts_ = 0;     // hash of our mount table, as last read
    bool mounts_dirty_ = false;  // it changed since: read it again before trusting mounts_
    boost::asio::steady_timer mounts_timer_;
    std::uint64_t served_ = 0, discarded_ = 0;
    static constexpr std::chrono::microseconds kQuiet{300};
    boost::asio::steady_timer quiet_; // refills wait for a quiet moment (refill_soon)
    std::chrono::steady_clock::time_point quiet_from_{}; // not before then
    bool quiet_armed_ = false;
    std::chrono::steady_clock::time_point paused_until_{};
    bool stopping_ = false;
};

} // namespace nsfork
