#include "launcher/spawn.hpp"

#include "base/pidfd.hpp"
#include "base/syscalls.hpp"
#include "base/unix_socket.hpp"
#include "launcher/pidns.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <csignal>
#include <cerrno>
#include <cstring>
#include <optional>
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
    int passed[3];            // further fds for the init, from 4 on (see kReportFd); -1: none
    bool watch_server;        // no parent-death SIGKILL: the shim watches passed[0] instead
    bool make_root_private;
    bool mount_proc;
    const char* pid_max;      // decimal, written to the new namespace's pid_max; nullptr: none
    bool sched_idle;
};
static_assert(std::is_trivially_destructible_v<ChildPlan>);

// Where the init finds its fds: the report pipe right after stdio; then either, for a container
// that shares a namespace (so no SIGKILL of pid 1 ends it), the server's pidfd and its
// cgroup.kill, with which the shim destroys the container if the server dies; then the socket
// its plan comes on (plan.hpp), if it does.
constexpr int kReportFd = 3;
constexpr int kServerFd = 4;
constexpr int kKillFd = 5;
// Fds are moved above this before being wired to 0..3, so that no source is overwritten.
constexpr int kScratchFd = 10;

// Owns the strings and pointer arrays a ChildPlan points into.
class PlanStorage {
public:
    PlanStorage(const LaunchSpec& spec, bool watch_server) {
        args_ = {spec.init_path, "--report-fd=" + std::to_string(kReportFd)};
        if (watch_server) {
            args_.push_back("--server-fd=" + std::to_string(kServerFd));
            args_.push_back("--kill-fd=" + std::to_string(kKillFd));
        }
        if (spec.plan_fd >= 0) { // argv, env and cwd come in the plan
            const int plan_fd = watch_server ? kKillFd + 1 : kReportFd + 1;
            args_.push_back("--plan=" + std::to_string(plan_fd));
            envp_ = pointers({});
        } else {
            args_.push_back("--");
            args_.insert(args_.end(), spec.argv.begin(), spec.argv.end());
            envp_ = pointers(spec.env);
        }
        argv_ = pointers(args_);
        if (spec.pid_max) pid_max_ = std::to_string(spec.pid_max);
    }

    ChildPlan plan(const LaunchSpec& spec, int report_fd, int parent_pidfd, int kill_fd) const {
        const bool watch = kill_fd >= 0;
        return ChildPlan{
            .init_path = spec.init_path.c_str(),
            .argv = argv_.data(),
            .envp = envp_.data(),
            // With a plan, the shim starts at the root (shim_plan.h), not in the server's cwd.
            .cwd = spec.plan_fd >= 0 ? "/" : spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
            .stdio = {spec.stdio[0], spec.stdio[1], spec.stdio[2]},
            .report_fd = report_fd,
            .parent_pidfd = parent_pidfd,
            .passed = {watch ? parent_pidfd : spec.plan_fd, watch ? kill_fd : -1, watch ? spec.plan_fd : -1},
            .watch_server = watch,
            .make_root_private = spec.new_mount_namespace,
            .mount_proc = spec.mount_proc && spec.new_mount_namespace,
            .pid_max = pid_max_.empty() ? nullptr : pid_max_.c_str(),
            .sched_idle = spec.sched_idle,
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
    std::string pid_max_;
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
    if (p.sched_idle) {
        const sched_param idle{};
        if (::sched_setscheduler(0, SCHED_IDLE, &idle) < 0) fail(report, NSFORK_STAGE_SCHED);
    }
    // Signals stay blocked (the parent blocked them all before clone3): the init inherits the
    // full mask and unblocks only through its signalfd, so no signal is lost before it is ready.
    // Its own session, so that a terminal's job-control signals never reach the container.
    if (::setsid() < 0) fail(report, NSFORK_STAGE_SESSION);
    // Die with the server. A parent that died before the prctl took effect would go unnoticed
    // (getppid() is 0 in a new pid namespace), so look at the parent's pidfd afterwards: readable
    // means it has exited. A shared-namespace init is not killed: it must live to kill its
    // cgroup, which the shim does when the server's pidfd turns readable.
    if (!p.watch_server && ::prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(report, NSFORK_STAGE_SESSION);
    struct pollfd parent{p.parent_pidfd, POLLIN, 0};
    if (::poll(&parent, 1, 0) != 0) ::_exit(125);

    if (p.make_root_private && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
        fail(report, NSFORK_STAGE_MOUNT_PRIVATE);
    if (p.mount_proc &&
        ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
        fail(report, NSFORK_STAGE_MOUNT_PROC);
    // Our own /proc shows our own namespace's pid_max (Linux 6.14+): a fork bomb inside stops there.
    if (p.pid_max) {
        const int f = ::open("/proc/sys/kernel/pid_max", O_WRONLY | O_CLOEXEC);
        const size_t len = ::strlen(p.pid_max);
        if (f < 0 || ::write(f, p.pid_max, len) != static_cast<ssize_t>(len)) fail(report, NSFORK_STAGE_PID_MAX);
        ::close(f);
    }

    int lifted[kReportFd + 4];
    int last = kReportFd;
    for (int i = 0; i < 3; ++i) lifted[i] = lift(p.stdio[i], report, NSFORK_STAGE_STDIO);
    lifted[kReportFd] = lift(report, report, NSFORK_STAGE_STDIO);
    report = lifted[kReportFd];
    for (int fd : p.passed)
        if (fd >= 0) lifted[++last] = lift(fd, report, NSFORK_STAGE_STDIO);
    // dup2 clears close-on-exec on the target: exactly 0..last survive the exec.
    for (int target = 0; target <= last; ++target)
        if (::dup2(lifted[target], target) < 0) fail(report, NSFORK_STAGE_STDIO);
    report = kReportFd;
    if (sys::close_range(static_cast<unsigned>(last) + 1, ~0U, 0) < 0) fail(report, NSFORK_STAGE_CLOSE_FDS);

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
    case NSFORK_STAGE_PID_MAX: return "setting the pid namespace's pid_max";
    case NSFORK_STAGE_SCHED: return "setting its scheduling policy";
    default: return "unknown stage";
    }
}

} // namespace

namespace {

// clone3 with a pidfd; the child runs `child_main` (which never returns).
template <class ChildMain>
pid_t clone_with_pidfd(std::uint64_t flags, int cgroup_fd, int exit_signal, int* pidfd, ChildMain&& child_main) {
    sys::CloneArgs args;
    args.flags = flags | sys::kClonePidfd;
    if (cgroup_fd >= 0) {
        args.flags |= sys::kCloneIntoCgroup;
        args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
    }
    args.pidfd = reinterpret_cast<std::uintptr_t>(pidfd);
    args.exit_signal = static_cast<std::uint64_t>(exit_signal);
    const pid_t pid = sys::clone3(&args);
    if (pid == 0) child_main();
    return pid;
}

namespace child {

// The intermediate of a nested launch. Its active pid namespace is the parent container's, so
// the namespace it clones is a child of that one; CLONE_PARENT makes the new init the server's
// own child (KERNEL.md, "nested pid namespace with the server as parent"). It hands the init's
// pidfd to the server on `sock` and exits.
[[noreturn]] void intermediate(const ChildPlan& p, std::uint64_t flags, int cgroup_fd, int sock) noexcept {
    int pidfd = -1;
    // clone3 rejects CLONE_PARENT with a non-zero exit signal.
    const pid_t pid = clone_with_pidfd(flags | sys::kCloneParent, cgroup_fd, 0, &pidfd, [&] { run(p); });
    if (pid < 0) fail(p.report_fd, NSFORK_STAGE_JOIN_PIDNS);
    const char byte = 0;
    ::_exit(sys::send_with_fds(sock, &byte, 1, &pidfd, 1) == 1 ? 0 : 125);
}

} // namespace child

// Receives the one fd the intermediate sends; EOF (it failed) gives -1.
UniqueFd receive_pidfd(int sock) {
    char byte;
    int fd = -1;
    std::size_t count = 0;
    int flags = 0;
    const ssize_t n = sys::recv_with_fds(sock, &byte, 1, &fd, 1, &count, &flags);
    UniqueFd pidfd(count == 1 ? fd : -1);
    return n == 1 ? std::move(pidfd) : UniqueFd();
}

} // namespace

Result<Spawned> spawn(const LaunchSpec& spec) {
    if (spec.plan_fd < 0 && (spec.argv.empty() || spec.argv[0].empty()))
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

    // A container without its own namespace is destroyed through its cgroup, by the shim if
    // the server dies first.
    UniqueFd kill;
    if (!spec.new_pid_namespace && spec.cgroup_fd >= 0) {
        kill.reset(::openat(spec.cgroup_fd, "cgroup.kill", O_WRONLY | O_CLOEXEC));
        if (!kill) return sys_error(Errc::launch_failed, "cannot open cgroup.kill", errno);
    }
    PlanStorage storage(spec, bool(kill));
    const ChildPlan plan = storage.plan(spec, report_write.get(), self.get(), kill.get());

    std::uint64_t flags = sys::kCloneClearSighand;
    if (spec.new_pid_namespace) flags |= sys::kCloneNewPid;
    if (spec.new_mount_namespace) flags |= sys::kCloneNewNs;

    // A namespace other than ours: future children go there until `entered` is destroyed.
    UniqueFd own;
    std::optional<PidNamespaceForChildren> entered;
    if (spec.pidns_fd >= 0) {
        auto opened = open_own_pid_namespace();
        if (!opened) return std::move(opened).error();
        own = std::move(*opened);
        auto e = PidNamespaceForChildren::enter(spec.pidns_fd, own.get());
        if (!e) return std::move(e).error();
        entered.emplace(std::move(*e));
    }
    const bool nested = spec.pidns_fd >= 0 && spec.new_pid_namespace;

    if (!nested) {
        int pidfd = -1;
        pid_t pid;
        {
            AllSignalsBlocked blocked;
            pid = clone_with_pidfd(flags, spec.cgroup_fd, SIGCHLD, &pidfd, [&] { child::run(plan); });
        }
        if (pid < 0) {
            // Linux refuses to fork into a pid namespace whose init has exited.
            if (errno == ENOMEM && spec.pidns_fd >= 0)
                return Error{Errc::invalid_state, "the pid namespace has no init any more (it exited)", ENOMEM};
            return sys_error(Errc::launch_failed, "clone3 failed", errno);
        }
        return Spawned{UniqueFd(pidfd), pid, std::move(report_read)};
    }

    // clone3(CLONE_NEWPID) is refused while pid_for_children differs from our active namespace:
    // an intermediate inside the parent namespace makes the new one (see child::intermediate).
    auto socks = seqpacket_pair();
    if (!socks) return Error{Errc::launch_failed, socks.error().message, socks.error().sys_errno};
    auto& pair = *socks;
    int intermediate_pidfd = -1;
    pid_t intermediate;
    {
        AllSignalsBlocked blocked;
        intermediate = clone_with_pidfd(sys::kCloneClearSighand, -1, SIGCHLD, &intermediate_pidfd, [&] {
            child::intermediate(plan, flags, spec.cgroup_fd, pair.second.get());
        });
    }
    entered.reset();
    if (intermediate < 0) {
        if (errno == ENOMEM)
            return Error{Errc::invalid_state, "the parent pid namespace has no init any more (it exited)", ENOMEM};
        return sys_error(Errc::launch_failed, "clone3 failed", errno);
    }
    UniqueFd intermediate_fd(intermediate_pidfd);
    pair.second.reset();
    report_write.reset(); // from here on the report pipe's writers are the new init's alone
    UniqueFd pidfd = receive_pidfd(pair.first.get());
    (void)reap(intermediate_fd.get());
    if (!pidfd) {
        auto report = read_exec_report(report_read.get(), spec.argv[0], spec.cwd);
        return report ? Error{Errc::internal, "the intermediate of a nested launch sent no pidfd"}
                      : std::move(report).error();
    }
    const pid_t pid = pid_of_pidfd(pidfd.get());
    return Spawned{std::move(pidfd), pid, std::move(report_read)};
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
    // On a plan socket, a shim that died with its plan unread resets the connection: gone all the same.
    if (n < 0 && errno == ECONNRESET) n = 0;
    if (n < 0) return sys_error(Errc::internal, "cannot read the exec report", errno);
    if (n == 0)
        return Error{Errc::launch_failed,
                     "the container's init died before it could exec '" + command + "'"};
    if (n != sizeof report) return Error{Errc::internal, "short exec report"};
    if (report.stage == NSFORK_STAGE_OK) return {};
    return exec_report_error(report, command, cwd);
}

} // namespace nsfork
