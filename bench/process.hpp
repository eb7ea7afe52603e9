// Starting processes the ways the baselines do: raw clone3 (optionally into new namespaces or a
// cgroup), posix_spawn, fork+exec. Each timing function measures only what its name says and
// cleans up (reaps) after the clock stopped.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/fd.hpp"

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nsfork::bench {

// The environment every container-ish baseline gets; nsfork launches get the same.
inline const std::string kPathEnv = "PATH=/usr/local/bin:/usr/bin:/bin";

// A command ready for execve: owned strings and the pointer arrays, built once, before any
// fork, so that a child can exec it without allocating.
class Command {
public:
    explicit Command(std::vector<std::string> argv, std::vector<std::string> env = {kPathEnv});
    Command(const Command&) = delete;
    Command& operator=(const Command&) = delete;

    const char* path() const { return args_[0].c_str(); }
    char* const* argv() const { return argv_.data(); }
    char* const* envp() const { return envp_.data(); }
    const std::vector<std::string>& args() const { return args_; }
    std::string text() const; // "a b c", for messages

private:
    std::vector<std::string> args_, env_;
    std::vector<char*> argv_, envp_;
};

// The environment of this process, as a list for Command.
std::vector<std::string> inherited_env();

// How clone_exec places the child.
struct CloneExecOptions {
    std::uint64_t namespaces = 0; // e.g. sys::kCloneNewPid | sys::kCloneNewNs
    bool mount_proc = false;      // make / private, mount /proc (needs a new mount namespace)
    int cgroup2_fd = -1;          // CLONE_INTO_CGROUP this cgroup v2 directory; -1: ours
    int v1_procs_fd = -1;         // a cgroup v1 cgroup.procs the child joins (writes "0") first
    int stdout_fd = -1;           // the child's stdout; -1: ours
};

// A child of clone_exec. `report` is the read end of its close-on-exec pipe: EOF once it exec'd,
// or one int (the errno) if it failed before.
struct Child {
    UniqueFd pidfd;
    pid_t pid = -1;
    UniqueFd report;
};

// clone3 + (namespace setup) + execve. Returns once clone3 did; between clone and exec the
// child makes system calls only. Only from a single-threaded process.
Result<Child> clone_exec(const Command& cmd, const CloneExecOptions& options);

// Blocks until the child exec'd (EOF on its report pipe) or says why it could not.
Result<void> await_exec(Child& child, const Command& cmd);

// An Error unless `status` is a clean exit 0.
Result<void> expect_success(const ExitStatus& status, const std::string& what);

// posix_spawn + waitpid of `cmd`, stdin and stdout on /dev/null, stderr kept; ns from before
// posix_spawn until reaped. A non-zero exit is an Error.
Result<std::int64_t> time_spawn_wait(const Command& cmd);

// The same on a terminal, as a person runs a command from an interactive shell: a new
// pseudo-terminal whose slave is the command's stdin, stdout and stderr and its controlling
// terminal (posix_spawn's setsid, then the slave opened), so that the command's group is the
// terminal's foreground. The master is ours, and closed once it was reaped.
Result<std::int64_t> time_spawn_wait_on_terminal(const Command& cmd);

// ns until posix_spawn returned (glibc returns after the child exec'd); reaps after.
Result<std::int64_t> time_posix_spawn(const Command& cmd);

// ns from fork() until the child's exec is seen (EOF on a close-on-exec pipe); reaps after.
// Safe in a multi-threaded process: the child only calls execve, write and _exit.
Result<std::int64_t> time_fork_exec(const Command& cmd);

// Reaps a child by pid, retrying on EINTR.
Result<ExitStatus> wait_pid(pid_t pid);

} // namespace nsfork::bench
