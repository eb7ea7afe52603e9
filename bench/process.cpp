#include "process.hpp"

#include "bench/clock.hpp"
#include "base/pidfd.hpp"
#include "base/syscalls.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <type_traits>

extern char** environ;

namespace nsfork::bench {

namespace {

std::vector<char*> pointers(const std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

// What the clone_exec child reads: plain pointers and fds, laid out before clone3.
struct ChildPlan {
    const char* path;
    char* const* argv;
    char* const* envp;
    int report_fd;
    int v1_procs_fd;
    int stdout_fd;
    bool mount_proc;
};
static_assert(std::is_trivially_destructible_v<ChildPlan>);

// Runs between clone3 and execve: system calls only, no allocation, no exceptions.
namespace child {

[[noreturn]] void fail(int report_fd) noexcept {
    const int error = errno;
    [[maybe_unused]] ssize_t n = ::write(report_fd, &error, sizeof error);
    ::_exit(127);
}

[[noreturn]] void exec(const ChildPlan& p) noexcept {
    // "0" is the writing process itself: the child is in the cgroup before it forks anything.
    if (p.v1_procs_fd >= 0 && ::write(p.v1_procs_fd, "0", 1) != 1) fail(p.report_fd);
    if (p.mount_proc) {
        // Private first, or the /proc mount would propagate to the host's mount namespace.
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) fail(p.report_fd);
        if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) fail(p.report_fd);
    }
    if (p.stdout_fd >= 0 && ::dup2(p.stdout_fd, STDOUT_FILENO) < 0) fail(p.report_fd);
    ::execve(p.path, p.argv, p.envp);
    fail(p.report_fd);
}

} // namespace child

struct Pipe {
    UniqueFd read, write;
};

Result<Pipe> cloexec_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) return sys_error(Errc::internal, "pipe2 failed", errno);
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Reads the report pipe to EOF: nothing means exec'd, an int is the child's errno.
Result<void> read_report(int fd, const Command& cmd) {
    int error = 0;
    ssize_t n;
    do n = ::read(fd, &error, sizeof error);
    while (n < 0 && errno == EINTR);
    if (n == 0) return {};
    if (n == sizeof error) return sys_error(Errc::exec_failed, "cannot start " + cmd.text(), error);
    return sys_error(Errc::internal, "reading the exec report of " + cmd.text(), n < 0 ? errno : EPROTO);
}

} // namespace

Command::Command(std::vector<std::string> argv, std::vector<std::string> env)
    : args_(std::move(argv)), env_(std::move(env)), argv_(pointers(args_)), envp_(pointers(env_)) {}

std::string Command::text() const {
    std::string out;
    for (const std::string& a : args_) out += (out.empty() ? "" : " ") + a;
    return out;
}

std::vector<std::string> inherited_env() {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    return env;
}

Result<Child> clone_exec(const Command& cmd, const CloneExecOptions& o) {
    auto pipe = cloexec_pipe();
    if (!pipe) return std::move(pipe).error();
    const ChildPlan plan{cmd.path(), cmd.argv(), cmd.envp(), pipe->write.get(), o.v1_procs_fd, o.stdout_fd,
                         o.mount_proc};
    int pidfd = -1;
    sys::CloneArgs args;
    args.flags = o.namespaces | sys::kClonePidfd;
    if (o.cgroup2_fd >= 0) {
        args.flags |= sys::kCloneIntoCgroup;
        args.cgroup = static_cast<std::uint64_t>(o.cgroup2_fd);
    }
    args.pidfd = reinterpret_cast<std::uintptr_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    const pid_t pid = sys::clone3(&args);
    if (pid == 0) child::exec(plan);
    if (pid < 0) return sys_error(Errc::launch_failed, "clone3 for " + cmd.text() + " failed", errno);
    return Child{UniqueFd(pidfd), pid, std::move(pipe->read)};
}

Result<void> await_exec(Child& c, const Command& cmd) {
    auto ok = read_report(c.report.get(), cmd);
    c.report.reset();
    return ok;
}

Result<void> expect_success(const ExitStatus& s, const std::string& what) {
    if (s.code == 0 && s.signal == 0) return {};
    return Error{Errc::launch_failed, what + (s.signal ? " was killed by signal " + std::to_string(s.signal)
                                                       : " exited with status " + std::to_string(s.code))};
}

Result<ExitStatus> wait_pid(pid_t pid) {
    int status = 0;
    pid_t r;
    do r = ::waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) return sys_error(Errc::internal, "waitpid failed", errno);
    return WIFSIGNALED(status) ? ExitStatus{0, WTERMSIG(status)} : ExitStatus{WEXITSTATUS(status), 0};
}

namespace {

// After a posix_spawn at `t0` that returned `rc`: ns until the command was reaped, or why not.
Result<std::int64_t> reaped_since(std::int64_t t0, int rc, pid_t pid, const Command& cmd) {
    if (rc != 0) return sys_error(Errc::exec_failed, "cannot start " + cmd.text(), rc);
    auto status = wait_pid(pid);
    const std::int64_t t1 = now_ns();
    if (!status) return std::move(status).error();
    if (auto ok = expect_success(*status, cmd.text()); !ok) return std::move(ok).error();
    return t1 - t0;
}

} // namespace

Result<std::int64_t> time_spawn_wait(const Command& cmd) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const std::int64_t t0 = now_ns();
    const int rc = ::posix_spawn(&pid, cmd.path(), &fa, nullptr, cmd.argv(), cmd.envp());
    posix_spawn_file_actions_destroy(&fa);
    return reaped_since(t0, rc, pid, cmd);
}

Result<std::int64_t> time_spawn_wait_on_terminal(const Command& cmd) {
    UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master || ::grantpt(master.get()) < 0 || ::unlockpt(master.get()) < 0)
        return sys_error(Errc::unavailable, "cannot make a pseudo-terminal", errno);
    char slave[64];
    if (::ptsname_r(master.get(), slave, sizeof slave) != 0) return sys_error(Errc::unavailable, "ptsname", errno);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, slave, O_RDWR, 0); // a session leader's first tty: its own
    posix_spawn_file_actions_adddup2(&fa, STDIN_FILENO, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, STDIN_FILENO, STDERR_FILENO);
    pid_t pid = -1;
    const std::int64_t t0 = now_ns();
    const int rc = ::posix_spawn(&pid, cmd.path(), &fa, &attr, cmd.argv(), cmd.envp());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return reaped_since(t0, rc, pid, cmd);
}

Result<std::int64_t> time_posix_spawn(const Command& cmd) {
    pid_t pid = -1;
    const std::int64_t t0 = now_ns();
    const int rc = ::posix_spawn(&pid, cmd.path(), nullptr, nullptr, cmd.argv(), cmd.envp());
    const std::int64_t t1 = now_ns();
    if (rc != 0) return sys_error(Errc::exec_failed, "cannot start " + cmd.text(), rc);
    auto status = wait_pid(pid);
    if (!status) return std::move(status).error();
    if (auto ok = expect_success(*status, cmd.text()); !ok) return std::move(ok).error();
    return t1 - t0;
}

Result<std::int64_t> time_fork_exec(const Command& cmd) {
    auto pipe = cloexec_pipe();
    if (!pipe) return std::move(pipe).error();
    const char* path = cmd.path();
    char* const* argv = cmd.argv();
    char* const* envp = cmd.envp();
    const int report = pipe->write.get();
    const std::int64_t t0 = now_ns();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execve(path, argv, envp);
        child::fail(report);
    }
    if (pid < 0) return sys_error(Errc::internal, "fork failed", errno);
    pipe->write.reset();
    auto exec = read_report(pipe->read.get(), cmd);
    const std::int64_t t1 = now_ns();
    auto status = wait_pid(pid);
    if (!exec) return std::move(exec).error();
    if (!status) return std::move(status).error();
    if (auto ok = expect_success(*status, cmd.text()); !ok) return std::move(ok).error();
    return t1 - t0;
}

} // namespace nsfork::bench
