// Processes seen from outside: starting programs with their output captured, and reading what
// /proc says about a process (liveness, fds, children, cgroup, pid namespace).
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nsfork::testing {

// posix_spawn of `argv` (argv[0] is a path) with this process's environment, and `out_fd` and
// `err_fd` as its stdout and stderr (-1: inherited). The caller reaps it.
Result<pid_t> spawn(const std::vector<std::string>& argv, int out_fd = -1, int err_fd = -1);

// Every pid spawn() started in this process, in order: the suite's leak check looks for the
// cgroup trees of servers among them (nsfork-<pid>) after the tests.
std::vector<pid_t> spawned();

// The shell convention for a waitpid status: the exit code, or 128+N when killed by signal N.
int shell_code(int wstatus);

// Runs a program (not in a container) to its end with stdout and stderr captured.
struct ProcessResult {
    int exit_code = -1; // shell convention
    std::string out, err;
};
Result<ProcessResult> run_process(const std::vector<std::string>& argv);

// Reads `fd` to EOF.
std::string read_all(int fd);
// Reads one line (without '\n') from `fd`, byte by byte so nothing past it is consumed.
std::string read_line(int fd);
// Splits on '\n', dropping empty lines.
std::vector<std::string> lines(const std::string& text);

// Whether `pid` is a live process (a zombie is not: it is dead, waiting for its reaper).
bool alive(pid_t pid);
// How many fds `pid` has open.
std::size_t fd_count(pid_t pid);
// The direct children of `pid` (its main thread's), from /proc/PID/task/PID/children.
std::vector<pid_t> children_of(pid_t pid);
// Pids (host view) of the live processes whose pid namespace has inode `pidns`.
std::vector<pid_t> processes_in_pidns(std::uint64_t pidns);
// An fd of `pid`'s pid namespace: while it is held the namespace is not freed, so its inode
// number is not handed to another test's new namespace (the kernel reuses the lowest free one),
// which processes_in_pidns would take for this one. A pidfd of a process in it does the same.
UniqueFd hold_pid_namespace(pid_t pid);
// The cgroup v2 directory of a live process (from /proc/PID/cgroup and the cgroup2 mount).
std::string cgroup_of(pid_t pid);
// The pids listed in a cgroup directory's cgroup.procs.
std::vector<pid_t> cgroup_procs(const std::string& dir);
// The cgroup root a server makes by default: nsfork-<server> below this process's own cgroup.
std::string default_cgroup_root(pid_t server);

} // namespace nsfork::testing
