// Internal to the launcher: the plan the child reads between clone3 and exec, the fd layout
// its init gets, and the child-side functions (launcher/child.cpp, built without exceptions).
#pragma once

#include "launcher/clone.hpp"

#include <sched.h>

#include <cstddef>
#include <span>
#include <type_traits>

extern "C" {
#include "launcher/exec_report.h"
}

namespace nsfork {

// The fds the init finds after stdio, in this order; a slot the launch does not use takes no
// number, so the ones used are contiguous from 3. The child puts them there (child::run) and
// PlanStorage names them on the shim's command line, both from this one table.
enum class InitFd : int { report, server_pidfd, cgroup_kill, plan };
struct InitFdSlot {
    InitFd role;
    const char* shim_option; // nsfork-shim's option that names it
};
inline constexpr InitFdSlot kInitFdSlots[] = {
    {InitFd::report, "--report-fd="},      // the exec report pipe (exec_report.h): always
    {InitFd::server_pidfd, "--server-fd="}, // a shared-namespace container's: the server's pidfd
    {InitFd::cgroup_kill, "--kill-fd="},   //   and its cgroup.kill, to destroy it if the server dies
    {InitFd::plan, "--plan="},             // the socket its plan comes on (shim_plan.h)
};
inline constexpr int kFirstInitFd = 3; // after stdin, stdout, stderr
// (sizeof, not std::size: <iterator> is more than the musl front (cli/front.cpp) can include.)
inline constexpr std::size_t kInitFdSlotCount = sizeof kInitFdSlots / sizeof kInitFdSlots[0];

// Which slots a launch uses.
struct InitFdUse {
    bool watch_server = false; // server_pidfd and cgroup_kill
    bool plan = false;

    constexpr bool uses(InitFd role) const {
        switch (role) {
        case InitFd::report: return true;
        case InitFd::server_pidfd:
        case InitFd::cgroup_kill: return watch_server;
        case InitFd::plan: return plan;
        }
        return false;
    }
    // The fd number `role` gets in the init, -1 when not used.
    constexpr int fd_of(InitFd role) const {
        int fd = kFirstInitFd;
        for (const InitFdSlot& slot : kInitFdSlots) {
            if (slot.role == role) return uses(role) ? fd : -1;
            if (uses(slot.role)) ++fd;
        }
        return -1;
    }
};
static_assert(InitFdUse{}.fd_of(InitFd::report) == 3);
static_assert(InitFdUse{.watch_server = false, .plan = true}.fd_of(InitFd::plan) == 4);
static_assert(InitFdUse{.watch_server = true, .plan = true}.fd_of(InitFd::plan) == 6);

// Fds are moved above this before being wired to their targets, so that no source is overwritten.
inline constexpr int kScratchFd = 10;
static_assert(kFirstInitFd + static_cast<int>(kInitFdSlotCount) <= kScratchFd);

// Everything the child reads, as plain pointers into storage the parent keeps alive.
struct ChildPlan {
    const char* init_path;
    char* const* argv;
    char* const* envp;
    const char* cwd;
    int stdio[3];
    // The fds for the init's slots from kFirstInitFd on, in kInitFdSlots order, used ones only
    // (init_fds[0] is the report pipe); -1 past the last.
    int init_fds[kInitFdSlotCount];
    int parent_pidfd;
    bool watch_server;        // no parent-death SIGKILL: the shim watches the server's pidfd
    bool make_root_private;
    bool mount_proc;
    const char* pid_max;      // decimal, written to the new namespace's pid_max; nullptr: none
    bool sched_idle;
    bool new_session;         // a session of its own; else a process group of its own
    const cpu_set_t* affinity = nullptr; // set first: the parent pinned itself, and so us, for the clone
};
static_assert(std::is_trivially_destructible_v<ChildPlan>);

// Code that runs between clone3 and exec: system calls only, no allocation, no exceptions.
namespace child {

// Writes the failing stage and `error` (the errno, captured by the caller right after the call
// that failed) on the report pipe, then _exits NSFORK_EXIT_FAILED.
[[noreturn]] void fail(int report_fd, nsfork_stage stage, int error) noexcept;

// Sets the child up as `p` says and execs the init; reports and exits on any failure.
[[noreturn]] void run(const ChildPlan& p) noexcept;

// What the intermediates of a launch into a pid namespace send on their socket: one byte, this
// tag, with a pidfd.
inline constexpr char kInitPidfd = 'c';         // the init's
inline constexpr char kIntermediatePidfd = 'i'; // the second intermediate's, to be reaped

// The intermediate of a launch into the pid namespace `pidns_fd` (joined, or with a new one
// nested below it): enters it for its children and clones the init there with `flags` (into
// `cgroup_fd`) as a child of the launcher (CLONE_PARENT), sends the init's pidfd on `sock`,
// exits. A new namespace can only be made from inside its parent: then a second intermediate,
// born there (also the launcher's child, its pidfd sent too), clones the init.
[[noreturn]] void intermediate(const ChildPlan& p, CloneFlags flags, int cgroup_fd, int pidns_fd, int sock) noexcept;

// Clones the process that runs `p` as spawn_process does (in our memory, on `stack`, we asleep
// until its exec), pinned to our CPU for the clone with the child restoring our affinity first
// (OnThisCpu). The server's spawn() and the front's `run` share it. Returns spawn_process's.
pid_t spawn(const CloneOptions& o, std::span<std::byte> stack, const ChildPlan& p) noexcept;

} // namespace child

} // namespace nsfork
