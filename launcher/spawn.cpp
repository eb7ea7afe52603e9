#include "spawn.hpp"

#include "syscalls.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <poll.h>
#include <sys/prctl.h>
#include <csignal>
#include <cerrno>
#include <cstring>
#include <type_traits>

namespace nsfork {

namespace {

// Everything the child reads, as plain pointers into storage the parent keeps alive.
struct ChildPlan {
    const char* init_path;
    char* const* argv;
    char* const* envp;
    const char* cwd;
    int stdio[3];
    int report_fd;
    int parent_pidfd;
    bool make_root_private;
    bool mount_proc;
};
static_assert(std::is_trivially_destructible_v<ChildPlan>);

// The fd at which the init finds its report pipe: right after stdio.
constexpr int kReportFd = 3;
// Fds are moved above this before being wired to 0..3, so that no source is overwritten.
constexpr int kScratchFd = 10;

// Owns the strings and pointer arrays a ChildPlan points into.
class PlanStorage {
public:
    explicit PlanStorage(const LaunchSpec& spec) {
        args_ = {spec.init_path, "--report-fd=" + std::to_string(kReportFd), "--"};
        args_.insert(args_.end(), spec.argv.begin(), spec.argv.end());
        argv_ = pointers(args_);
        envp_ = pointers(spec.env);
    }

    ChildPlan plan(const LaunchSpec& spec, int report_fd, int parent_pidfd) const {
        return ChildPlan{
            .init_path = spec.init_path.c_str(),
            .argv = argv_.data(),
            .envp = envp_.data(),
            .cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
            .stdio = {spec.stdio[0], spec.stdio[1], spec.stdio[2]},
            .report_fd = report_fd,
            .parent_pidfd = parent_pidfd,
            .make_root_private = spec.new_mount_namespace,
            .mount_proc = spec.mount_proc && spec.new_mount_namespace,
        };
    }

private:
    static std::vector<char*> pointers(const std::vector<std::string>& strings) {
        std::vector<char*> out;
        out.reserve(strings.size() + 1);
        for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
        out.push_back(nullptr);
        return out;
    }

    std::vector<std::string> args_;
    std::vector<char*> argv_;
    std::vector<char*> envp_;
};

// Code that runs between clone3 and exec: system calls only, no allocation, no exceptions.
namespace child {

[[noreturn]] void fail(int report_fd, nsfork_stage stage) noexcept {
    const nsfork_exec_report r{stage, errno};
    // A short or failed write leaves EOF-without-record, which the parent reports as a death.
    [[maybe_unused]] ssize_t n = ::write(report_fd, &r, sizeof r);
    ::_exit(125);
}

// Moves `fd` above kScratchFd (close-on-exec); -1 opens /dev/null instead.
int lift(int fd, int report_fd, nsfork_stage stage) noexcept {
    int lifted = fd >= 0 ? ::fcntl(fd, F_DUPFD_CLOEXEC, kScratchFd)
                         : ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (lifted < 0) fail(report_fd, stage);
    return lifted;
}

[[noreturn]] void run(const ChildPlan& p) noexcept {
    int report = p.report_fd;
    // Signals stay blocked (the parent blocked them all before clone3): the init inherits the
    // full mask and unblocks only through its signalfd, so no signal is lost before it is ready.
    // Its own session, so that a terminal's job-control signals never reach the container.
    if (::setsid() < 0) fail(report, NSFORK_STAGE_SESSION);
    // Die with the server. A parent that died before the prctl took effect would go unnoticed
    // (getppid() is 0 in a new pid namespace), so look at the parent's pidfd afterwards: readable
    // means it has exited.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(report, NSFORK_STAGE_SESSION);
    struct pollfd parent{p.parent_pidfd, POLLIN, 0};
    if (::poll(&parent, 1, 0) != 0) ::_exit(125);

    if (p.make_root_private && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
        fail(report, NSFORK_STAGE_MOUNT_PRIVATE);
    if (p.mount_proc &&
        ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
        fail(report, NSFORK_STAGE_MOUNT_PROC);

    int lifted[4];
    for (int i = 0; i < 3; ++i) lifted[i] = lift(p.stdio[i], report, NSFORK_STAGE_STDIO);
    lifted[kReportFd] = lift(report, report, NSFORK_STAGE_STDIO);
    report = lifted[kReportFd];
    // dup2 clears close-on-exec on the target: exactly 0..3 survive the exec.
    for (int target = 0; target <= kReportFd; ++target)
        if (::dup2(lifted[target], target) < 0) fail(report, NSFORK_STAGE_STDIO);
    report = kReportFd;
    if (sys::close_range(kReportFd + 1, ~0U, 0) < 0) fail(report, NSFORK_STAGE_CLOSE_FDS);

    if (p.cwd && ::chdir(p.cwd) < 0) fail(report, NSFORK_STAGE_CWD);
    ::execve(p.init_path, p.argv, p.envp);
    fail(report, NSFORK_STAGE_EXEC_SHIM);
}

} // namespace child

// Blocks every signal for the lifetime of the object, so the child is born with a full mask.
class AllSignalsBlocked {
public:
    AllSignalsBlocked() noexcept {
        sigset_t all;
        ::sigfillset(&all);
        ::sigprocmask(SIG_SETMASK, &all, &saved_);
    }
    ~AllSignalsBlocked() { ::sigprocmask(SIG_SETMASK, &saved_, nullptr); }

private:
    sigset_t saved_;
};

const char* stage_name(int stage) {
    switch (stage) {
    case NSFORK_STAGE_SIGNALS: return "resetting signals";
    case NSFORK_STAGE_SESSION: return "creating a session";
    case NSFORK_STAGE_MOUNT_PRIVATE: return "making / private in the new mount namespace";
    case NSFORK_STAGE_MOUNT_PROC: return "mounting /proc";
    case NSFORK_STAGE_STDIO: return "wiring stdio";
    case NSFORK_STAGE_CLOSE_FDS: return "closing inherited fds";
    case NSFORK_STAGE_CWD: return "changing to the working directory";
    case NSFORK_STAGE_EXEC_SHIM: return "executing nsfork-shim";
    case NSFORK_STAGE_SHIM_SETUP: return "setting up nsfork-shim";
    case NSFORK_STAGE_EXEC_COMMAND: return "executing the command";
    case NSFORK_STAGE_JOIN_PIDNS: return "joining the pid namespace";
    case NSFORK_STAGE_CGROUP: return "placing in the cgroup";
    default: return "unknown stage";
    }
}

} // namespace

Error sys_error(Errc code, std::string what, int err) {
    what += ": ";
    what += std::strerror(err);
    return Error{code, std::move(what), err};
}

Result<Spawned> spawn(const LaunchSpec& spec) {
    if (spec.argv.empty() || spec.argv[0].empty())
        return Error{Errc::bad_request, "empty command (argv is empty)"};
    if (spec.init_path.empty()) return Error{Errc::internal, "no init (nsfork-shim) configured"};

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
        return sys_error(Errc::launch_failed, "cannot create the report pipe", errno);
    UniqueFd report_read(pipe_fds[0]);
    UniqueFd report_write(pipe_fds[1]);

    // A pidfd to ourselves, for the child's parent-death check (see child::run).
    UniqueFd self(sys::pidfd_open(::getpid(), 0));
    if (!self) return sys_error(Errc::launch_failed, "pidfd_open(self) failed", errno);

    PlanStorage storage(spec);
    const ChildPlan plan = storage.plan(spec, report_write.get(), self.get());

    int pidfd = -1;
    sys::CloneArgs args;
    args.flags = sys::kClonePidfd | sys::kCloneClearSighand;
    if (spec.new_pid_namespace) args.flags |= sys::kCloneNewPid;
    if (spec.new_mount_namespace) args.flags |= sys::kCloneNewNs;
    if (spec.cgroup_fd >= 0) {
        args.flags |= sys::kCloneIntoCgroup;
        args.cgroup = static_cast<std::uint64_t>(spec.cgroup_fd);
    }
    args.pidfd = reinterpret_cast<std::uintptr_t>(&pidfd);
    args.exit_signal = SIGCHLD;

    pid_t pid;
    {
        AllSignalsBlocked blocked;
        pid = sys::clone3(&args);
        if (pid == 0) child::run(plan);
    }
    if (pid < 0) return sys_error(Errc::launch_failed, "clone3 failed", errno);
    return Spawned{UniqueFd(pidfd), pid, std::move(report_read)};
}

Error exec_report_error(const nsfork_exec_report& report, const std::string& command,
                        const std::string& cwd) {
    if (report.stage == NSFORK_STAGE_EXEC_COMMAND)
        return sys_error(Errc::exec_failed, "cannot execute '" + command + "'", report.error);
    if (report.stage == NSFORK_STAGE_CWD)
        return sys_error(Errc::launch_failed, "cannot change to working directory '" + cwd + "'",
                         report.error);
    return sys_error(Errc::launch_failed, std::string("container setup failed while ") +
                                              stage_name(report.stage),
                     report.error);
}

Result<void> read_exec_report(int report_fd, const std::string& command, const std::string& cwd) {
    nsfork_exec_report report{};
    ssize_t n;
    do n = ::read(report_fd, &report, sizeof report);
    while (n < 0 && errno == EINTR);
    if (n < 0) return sys_error(Errc::internal, "cannot read the exec report", errno);
    if (n == 0)
        return Error{Errc::launch_failed,
                     "the container's init died before it could exec '" + command + "'"};
    if (n != sizeof report) return Error{Errc::internal, "short exec report"};
    if (report.stage == NSFORK_STAGE_OK) return {};
    return exec_report_error(report, command, cwd);
}

} // namespace nsfork
