// Destroy baselines that find a container's processes by cgroup rather than by pid namespace:
// cgroup v2 cgroup.kill, the Mesos-style cgroup v1 freezer, and SIGKILL to each pid in turn.
// Each starts the forker (a command that prints "ready" once its processes exist) in a fresh
// cgroup of its own and times only the destroy; the cgroup is removed even on error.
#pragma once

#include "nsfork/error.hpp"
#include "process.hpp"

#include <cstdint>
#include <string>

namespace nsfork::bench {

// Makes uniquely named cgroup directories under `parent` and knows which hierarchy it is in.
class CgroupPlace {
public:
    CgroupPlace(std::string parent, bool v2) : parent_(std::move(parent)), v2_(v2) {}
    std::string next_name(); // "<parent>/nsfork-bench-<pid>-<n>"
    bool v2() const { return v2_; }

private:
    std::string parent_;
    bool v2_;
    unsigned next_ = 0;
};

// cgroup v2: write 1 to cgroup.kill, wait for "populated 0" (poll POLLPRI), rmdir.
Result<std::int64_t> cgroup_kill_destroy(const Command& forker, CgroupPlace& v2);

// Mesos' cgroup v1 freezer destroy: FROZEN (and wait until it is), SIGKILL each pid of
// cgroup.procs, THAWED, wait until cgroup.procs is empty, rmdir.
Result<std::int64_t> freezer_destroy(const Command& forker, CgroupPlace& v1_freezer);

// No namespace, no kernel help: read the pids (from a v2 cgroup, which is only used to find
// them), SIGKILL each, wait until the cgroup is unpopulated, rmdir.
Result<std::int64_t> kill_each_destroy(const Command& forker, CgroupPlace& v2);

} // namespace nsfork::bench
