#include "cgroup_destroy.hpp"

#include "cgroups.hpp"
#include "clock.hpp"
#include "base/pidfd.hpp"
#include "raw_floor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>

namespace nsfork::bench {

namespace {

// A forker started inside a fresh cgroup, its processes all there and ready.
struct Placed {
    CgroupDir cgroup;
    Child forker;
    UniqueFd ready; // the forker's stdout; its processes keep it open until they die
};

Result<Placed> start_in_cgroup(const Command& forker, CgroupPlace& place) {
    auto dir = CgroupDir::create(place.next_name(), place.v2());
    if (!dir) return std::move(dir).error();
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return sys_error(Errc::internal, "pipe2 failed", errno);
    UniqueFd ready_read(p[0]), ready_write(p[1]);
    UniqueFd v1_procs;
    CloneExecOptions o;
    o.stdout_fd = ready_write.get();
    if (place.v2()) {
        o.cgroup2_fd = dir->fd();
    } else {
        v1_procs.reset(::open((dir->path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
        if (!v1_procs) return sys_error(Errc::internal, "cannot open " + dir->path() + "/cgroup.procs", errno);
        o.v1_procs_fd = v1_procs.get();
    }
    auto child = clone_exec(forker, o);
    if (!child) return std::move(child).error();
    Placed placed{std::move(*dir), std::move(*child), std::move(ready_read)};
    if (auto ok = await_exec(placed.forker, forker); !ok) return std::move(ok).error();
    if (auto ok = await_ready(placed.ready.get(), forker.text()); !ok) return std::move(ok).error();
    settle_before_destroy();
    return placed;
}

Result<void> kill_listed(const std::string& procs_path) {
    auto pids = read_pids(procs_path);
    if (!pids) return std::move(pids).error();
    for (pid_t pid : *pids)
        if (::kill(pid, SIGKILL) < 0 && errno != ESRCH) return sys_error(Errc::internal, "kill failed", errno);
    return {};
}

// Waits until a v1 freezer.state reads `state` (FREEZING turns into FROZEN asynchronously).
Result<void> wait_freezer_state(const std::string& dir, const std::string& state) {
    for (;;) {
        UniqueFd fd(::open((dir + "/freezer.state").c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) return sys_error(Errc::internal, "cannot open " + dir + "/freezer.state", errno);
        char buf[32] = {};
        if (::read(fd.get(), buf, sizeof buf - 1) < 0) return sys_error(Errc::internal, "reading freezer.state", errno);
        if (std::string(buf).rfind(state, 0) == 0) return {};
        const timespec ts{0, 50'000};
        ::nanosleep(&ts, nullptr);
    }
}

// After the destroy: the processes are gone; reap the forker and the orphans that came to us.
void reap_leftovers(Placed& p) {
    (void)reap(p.forker.pidfd.get());
    reap_all_children();
}

} // namespace

std::string CgroupPlace::next_name() {
    return parent_ + "/nsfork-bench-" + std::to_string(::getpid()) + "-" + std::to_string(next_++);
}

Result<std::int64_t> cgroup_kill_destroy(const Command& forker, CgroupPlace& v2) {
    auto placed = start_in_cgroup(forker, v2);
    if (!placed) return std::move(placed).error();
    const std::string dir = placed->cgroup.path();
    UniqueFd events(::open((dir + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
    if (!events) return sys_error(Errc::internal, "cannot open " + dir + "/cgroup.events", errno);

    const std::int64_t t0 = now_ns();
    auto killed = write_file(dir + "/cgroup.kill", "1");
    Result<void> gone = killed ? wait_unpopulated(events.get()) : std::move(killed);
    Result<void> removed = gone ? placed->cgroup.remove() : std::move(gone);
    const std::int64_t t1 = now_ns();
    reap_leftovers(*placed);
    if (!removed) return std::move(removed).error();
    return t1 - t0;
}

Result<std::int64_t> freezer_destroy(const Command& forker, CgroupPlace& v1_freezer) {
    auto placed = start_in_cgroup(forker, v1_freezer);
    if (!placed) return std::move(placed).error();
    const std::string dir = placed->cgroup.path();

    const std::int64_t t0 = now_ns();
    Result<void> ok = write_file(dir + "/freezer.state", "FROZEN");
    if (ok) ok = wait_freezer_state(dir, "FROZEN");
    if (ok) ok = kill_listed(dir + "/cgroup.procs");
    if (ok) ok = write_file(dir + "/freezer.state", "THAWED");
    if (ok) ok = wait_v1_empty(dir + "/cgroup.procs");
    if (ok) ok = placed->cgroup.remove();
    const std::int64_t t1 = now_ns();
    reap_leftovers(*placed);
    if (!ok) return std::move(ok).error();
    return t1 - t0;
}

Result<std::int64_t> kill_each_destroy(const Command& forker, CgroupPlace& v2) {
    auto placed = start_in_cgroup(forker, v2);
    if (!placed) return std::move(placed).error();
    const std::string dir = placed->cgroup.path();
    UniqueFd events(::open((dir + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
    if (!events) return sys_error(Errc::internal, "cannot open " + dir + "/cgroup.events", errno);

    const std::int64_t t0 = now_ns();
    Result<void> ok = kill_listed(dir + "/cgroup.procs");
    if (ok) ok = wait_unpopulated(events.get());
    if (ok) ok = placed->cgroup.remove();
    const std::int64_t t1 = now_ns();
    reap_leftovers(*placed);
    if (!ok) return std::move(ok).error();
    return t1 - t0;
}

} // namespace nsfork::bench
