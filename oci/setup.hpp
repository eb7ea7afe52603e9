// Making a container's process, the runtime-born way (DESIGN.md, ENGINES.md): the server made the
// pid + mount namespaces with a holding nsfork-shim as pid 1 and a cgroup leaf; the runtime
// (nsfork-oci, single-threaded) forks the container's process into them — a child of the
// runtime, so that the engine's subreaper (conmon, containerd's shim) sees its exit — and the
// process sets itself up as config.json says: namespaces, root filesystem, mounts, devices,
// pivot_root, masked and read-only paths, hostname, sysctl, rlimits, user, capabilities,
// no_new_privs, seccomp. It then waits on the exec fifo until `start`.
//
// Everything the child needs is built in the parent first (paths, flags, the seccomp program,
// opened namespace and mount-tree fds); between fork and exec the child only makes system calls
// (DESIGN.md invariant 3). A failure travels back as {step, errno} and becomes an error naming
// the config.json field that asked for the step: "mounts[4] (/sys): mount sysfs: Operation not
// permitted".
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "oci/spec.hpp"

#include <sys/types.h>

#include <array>
#include <functional>
#include <vector>

namespace nsfork::oci {

// The process's stdio and what else it inherits.
struct ProcessIo {
    std::array<int, 3> stdio{0, 1, 2};   // the runtime's own by default (engines pass pipes)
    std::vector<int> preserved;          // become its fds 3, 4, ... (--preserve-fds)
    int console_socket = -1;             // with process.terminal: the master of a pty from the
                                         // container's own devpts goes here (SCM_RIGHTS)
};

struct CreateRequest {
    const Spec* spec = nullptr;
    int holder_pidfd = -1;               // the namespace holder the server made
    int cgroup_leaf = -1;                // its cgroup v2 leaf (a directory fd), -1: none
    std::vector<int> cgroup_procs;       // cgroup.procs of further cgroups to join (resources.hpp)
    int exec_fifo = -1;                  // an O_PATH fd of the exec fifo: the process opens it
                                         // for writing (blocking until `start` reads it) and then execs;
                                         // -1: it waits for start_process() instead (run)
    bool no_pivot = false;               // --no-pivot: MS_MOVE + chroot instead of pivot_root
    bool foreground = false;             // a foreground run: the signals it forwards are blocked in
                                         // the runtime from the clone on (the process born without
                                         // the mask), so that none sent meanwhile ends the runtime
    std::vector<int> made_namespaces;    // fresh namespaces the server made ahead (net, ipc, uts):
                                         // joined where config.json asks for a new one of their type
    ProcessIo io;
    // Runs in the runtime when the process has its namespaces and mounts but has not yet pivoted
    // (runtime-spec's prestart and createRuntime hooks); its error fails the create. Unset: the
    // process does not stop there.
    std::function<Result<void>(pid_t pid)> create_runtime;
    // Runs in the runtime once the process went on from the hooks (to its pivot_root, masked
    // paths and capabilities, ~0.5 ms), or right after the clone without hooks: the runtime's
    // own work that needs neither overlaps with the process's set-up. Its error fails the create.
    std::function<Result<void>(pid_t pid)> resumed;
};

struct ContainerProcess {
    UniqueFd pidfd;
    pid_t pid = -1;                      // in the runtime's pid namespace
    UniqueFd start;                      // without an exec fifo: its report socket, where it waits
    std::string exec_step;               //   for start_process(), and what its exec step is called
};

// Forks the container's process and returns once it is set up and waiting on the exec fifo (or
// for start_process()), or the failure of the step that failed (the process is then killed and
// reaped).
Result<ContainerProcess> create_process(const CreateRequest& request);

// Starts a process created without an exec fifo and returns once it exec'd: run's start, which
// needs no file (`state` calls such a process running from its create on: no other process can
// start it). Its exec's failure is returned; the process then ends.
Result<void> start_process(ContainerProcess& p);

struct ExecRequest {
    const Spec* spec = nullptr;          // the container's config (its seccomp, mount namespace, ...)
    const Process* process = nullptr;    // what to run (exec --process, or built from the args)
    int target_pidfd = -1;               // the container's process: its namespaces are joined
    int cgroup_leaf = -1;
    std::vector<int> cgroup_procs;
    ProcessIo io;
};

// Starts another process in a running container (runc exec) and returns once it exec'd.
Result<ContainerProcess> exec_process(const ExecRequest& request);

} // namespace nsfork::oci
