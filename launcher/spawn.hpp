// Spawning a container's first process: clone3 into new namespaces, then exec the init.
//
// Two phases (invariant 3 of DESIGN.md): the parent turns a LaunchSpec into a ChildPlan — every
// string, array and fd the child needs, laid out beforehand — and the child only reads that plan
// and makes system calls until it execs.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "launcher/exec_report.h"
}

namespace nsfork {

// What to start and how. The fds are borrowed: spawn() does not close them.
struct LaunchSpec {
    std::string init_path;              // executed first (nsfork-shim); gets argv after "--"
    std::vector<std::string> argv;      // the command; argv[0] is looked up in the env's PATH
    std::vector<std::string> env;       // exactly the command's environment, "K=V" each
    std::string cwd = "/";              // working directory inside the container
    std::array<int, 3> stdio{-1, -1, -1}; // fds for 0, 1, 2; -1 means /dev/null
    bool new_pid_namespace = true;     // false: share the namespace named by pidns_fd
    int pidns_fd = -1;                  // base pid namespace (ours or below), -1: ours. With
                                        // new_pid_namespace the new one is made its child.
    bool new_mount_namespace = true;    // required to mount /proc without touching the host
    // Someone waits for this process (a launch): it is cloned in our memory, and we sleep until
    // it has exec'd (spawn_process). Not awaited (a warm pool entry, made ahead): cloned
    // fork-like, which keeps us busy for the clone alone and so answers others sooner.
    bool awaited = true;
    bool mount_proc = true;             // mount a fresh /proc (needs new_mount_namespace)
    int cgroup_fd = -1;                 // cgroup v2 directory to be born into, -1: the caller's
    std::uint32_t pid_max = 0;          // with a new pid namespace: its own pid_max (Linux 6.14+),
                                        // which bounds its processes; 0: the kernel's default
    int plan_fd = -1;                   // the init gets argv, env and cwd as a plan on this
                                        // socket (plan.hpp) instead of through its exec, and the
                                        // command's settings below; a command too large for a
                                        // plan still comes through the exec (encode_cold_plan)
    bool hold = false;                  // the init runs no command: it holds the namespaces
                                        // (and cgroup) for a process a runtime forks into them
                                        // later, reaping what is reparented to it, until killed
                                        // (NSFORK_PLAN_HOLD; needs plan_fd; no command settings)
    bool sched_idle = false;            // the child sets itself up at SCHED_IDLE, and stays so
                                        // until the caller gives it a policy (warm pool entries)

    // The command's process (travel in the plan; the shim applies them to the command only).
    bool new_session = true;            // the init makes a session of its own (every server
                                        // launch); false: it stays in the caller's session, so
                                        // the command can use the caller's terminal (nsfork run),
                                        // in a process group of its own (so that the caller's
                                        // group signals reach the command once, forwarded by the
                                        // launcher, not a second time through the init)
    bool foreground = false;            // with !new_session: the command's process group takes
                                        // the terminal's foreground while it runs (job control)
    bool tty = false;                   // a pseudo-terminal of the container's own (devpts
                                        // mounted inside): the command's stdio and controlling
                                        // terminal; its master comes back with the exec report
    std::uint16_t tty_rows = 0;         // with tty: its window size from the start (the caller's
    std::uint16_t tty_cols = 0;         // terminal's), before the command can read it; 0: unset
    bool kill_group = false;            // forwarded signals go to the command's process group
    std::uint64_t signal_mask = 0;      // the command's blocked signals (bit N-1: signal N)
    std::uint64_t ignored_signals = 0;  // signals the command starts with SIG_IGN (bit N-1)
    std::optional<uid_t> uid;           // run the command as this user (and group) ...
    std::optional<gid_t> gid;
    std::optional<std::vector<gid_t>> groups; // ... with these supplementary groups (empty: none;
                                        // nullopt: none when uid or gid is set, as runc does, so
                                        // that a switch never keeps the server's groups)
    std::vector<int> extra_fds;         // the command's fds 3, 4, ... (runc's --preserve-fds);
                                        // borrowed like stdio. An env entry LISTEN_PID=... is
                                        // rewritten to the command's pid as seen inside
};

// A started first process. Its exec outcome arrives on `report` (see read_exec_report).
struct Spawned {
    UniqueFd pidfd;
    pid_t pid = -1;     // in the caller's pid namespace; stable until the caller reaps it
    UniqueFd report;    // read end of the close-on-exec report pipe
};

// Clones the container's first process. Returns as soon as clone3 did; the child sets itself up
// and execs the init while the caller goes on. Only from a single-threaded process.
Result<Spawned> spawn(const LaunchSpec& spec);

// The name error messages give the command: argv[0], or the init's path when argv is empty
// (a launch whose command comes later, in a plan).
std::string command_name(const LaunchSpec& spec);

// Refuses (Errc::bad_request, naming why) settings of the command's process that cannot go
// together: more extra fds than a plan carries (NSFORK_PLAN_MAX_EXTRA_FDS) or a negative one,
// uid or gid (id_t)-1 (the kernel's "unchanged"), a
// terminal of its own without a mount namespace of its own (devpts is mounted there) or with
// the caller's foreground, the caller's foreground in a session of its own. spawn() and
// send_plan() check it; a server can call it when it parses a request.
Result<void> check_command_settings(const LaunchSpec& spec);

// Whether the init, exec'd with our effective uid, can apply the settings that need privilege
// inside the container (mounting its devpts for a tty, switching to another user): not when
// that uid is not root (a user namespace that maps the caller to itself, --map-current-user),
// as exec drops every capability then. spawn() checks it; a server calls it per request.
Result<void> check_init_privilege(const LaunchSpec& spec);

// Reads the one report record from `report_fd` (blocking unless the fd is non-blocking; on a
// non-blocking fd with nothing yet, returns Errc::internal with sys_errno EAGAIN). Success means
// the command was exec'd. `command` and `cwd` are named in error messages.
// With `terminal` (only for a launch with spec.tty, reading its plan socket) the OK record's fd,
// the master of the container's pseudo-terminal, goes there; one missing is an error. Without,
// the read is a plain read(2), as cheap as before terminals existed.
Result<void> read_exec_report(int report_fd, const std::string& command, const std::string& cwd,
                              UniqueFd* terminal = nullptr);

// The Error for a report record that is not NSFORK_STAGE_OK.
Error exec_report_error(const nsfork_exec_report& report, const std::string& command,
                        const std::string& cwd);

} // namespace nsfork
