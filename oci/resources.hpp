// linux.cgroupsPath and linux.resources: the cgroups a container's processes join beside the
// cgroup v2 leaf the server made (which holds them for destroy: cgroup.kill), and the limits
// written into them. On a unified (v2) host the limits go into the v2 leaf itself, for the
// controllers it has; on a hybrid host (cgroup v1 controllers, as on these machines) into one
// directory per v1 controller a limit needs (memory, cpu, cpuset, pids, devices), at cgroupsPath
// in that hierarchy, as runc places them. A limit no reachable controller can apply is refused,
// naming its field.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "oci/spec.hpp"

#include <string>
#include <vector>

namespace nsfork::oci {

// Whose own cgroups a relative cgroupsPath is below: the runtime's caller. A warm runtime
// (front_link.hpp) is not its caller's child, and says whose they are here; 0: our own.
void set_caller_cgroups(pid_t caller);

class ControllerCgroups {
public:
    // Makes the cgroups for `resources` (none when it asks for nothing) at `cgroups_path` (a
    // relative or absolute path; "" is an error), and writes the limits. `v2_leaf` is the
    // server's leaf for the container (a directory fd, -1 without one); `device_program`, the
    // program for resources.devices loaded already (device_filter_for's, -1: load it here).
    static Result<ControllerCgroups> create(const Resources& resources, const std::string& cgroups_path,
                                            int v2_leaf, int device_program = -1);
    // The ones create() made for `cgroups_path`, found again by a later nsfork-oci call (delete,
    // exec, update); none when it made none.
    // A relative cgroups_path is resolved against the caller's own cgroups, as runc does: a
    // later call from elsewhere should rather keep paths() (in its state) and use from_paths().
    static ControllerCgroups find(const std::string& cgroups_path);
    // The ones whose paths() a state file kept.
    static ControllerCgroups from_paths(std::vector<std::string> paths);

    // Their cgroup.procs files, opened for writing: the container's process writes "0" to each
    // before exec (setup.hpp), and so does an exec'd one.
    Result<std::vector<UniqueFd>> open_procs() const;
    // Every directory's path, for state and tests.
    const std::vector<std::string>& paths() const { return dirs_; }
    // Removes them once no process is left in them (EBUSY otherwise); idempotent. Parents that
    // create() made for a path like /docker/ID stay, shared with other containers (as runc).
    Result<void> remove() const;

private:
    std::vector<std::string> dirs_;
};

} // namespace nsfork::oci
