#include "launcher/spawn.hpp"

#include "base/pidfd.hpp"
#include "base/syscalls.hpp"
#include "base/unix_socket.hpp"
#include "launcher/child.hpp"
#include "launcher/plan.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <sched.h>
#include <optional>
#include <string>

extern "C" {
#include "launcher/shim_plan.h"
}

namespace nsfork {

namespace {

// Owns the strings and pointer arrays a ChildPlan points into.
class PlanStorage {
public:
    PlanStorage(const LaunchSpec& spec, bool watch_server)
        : use_{.watch_server = watch_server, .plan = spec.plan_fd >= 0},
          // A command too large for a plan comes through the exec, beside a settings-only plan.
          command_in_exec_(!use_.plan || (!spec.argv.empty() && !command_fits_plan(spec))) {
        args_ = {spec.init_path};
        for (const InitFdSlot& slot : kInitFdSlots)
            if (use_.uses(slot.role)) args_.push_back(slot.shim_option + std::to_string(use_.fd_of(slot.role)));
        if (command_in_exec_) {
            args_.push_back("--");
            args_.insert(args_.end(), spec.argv.begin(), spec.argv.end());
            envp_ = pointers(spec.env);
        } else { // argv, env and cwd come in the plan
            envp_ = pointers({});
        }
        argv_ = pointers(args_);
        if (spec.pid_max) pid_max_ = std::to_string(spec.pid_max);
    }

    ChildPlan plan(const LaunchSpec& spec, int report_fd, int parent_pidfd, int kill_fd) const {
        ChildPlan p{
            .init_path = spec.init_path.c_str(),
            .argv = argv_.data(),
            .envp = envp_.data(),
            // With a plan, the shim starts at the root (shim_plan.h), not in the server's cwd.
            .cwd = !command_in_exec_ ? "/" : spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
            .stdio = {spec.stdio[0], spec.stdio[1], spec.stdio[2]},
            .init_fds = {},
            .parent_pidfd = parent_pidfd,
            .watch_server = use_.watch_server,
            .make_root_private = spec.new_mount_namespace,
            .mount_proc = spec.mount_proc && spec.new_mount_namespace,
            .pid_max = pid_max_.empty() ? nullptr : pid_max_.c_str(),
            .sched_idle = spec.sched_idle,
            .new_session = spec.new_session,
        };
        // In the table's order, so that the child's fd kFirstInitFd+i is what args_ named it.
        std::size_t next = 0;
        for (const InitFdSlot& slot : kInitFdSlots) {
            if (!use_.uses(slot.role)) continue;
            switch (slot.role) {
            case InitFd::report: p.init_fds[next++] = report_fd; break;
            case InitFd::server_pidfd: p.init_fds[next++] = parent_pidfd; break;
            case InitFd::cgroup_kill: p.init_fds[next++] = kill_fd; break;
            case InitFd::plan: p.init_fds[next++] = spec.plan_fd; break;
            }
        }
        for (; next < kInitFdSlotCount; ++next) p.init_fds[next] = -1;
        return p;
    }

private:
    static std::vector<char*> pointers(const std::vector<std::string>& strings) {
        std::vector<char*> out;
        out.reserve(strings.size() + 1);
        for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
        out.push_back(nullptr);
        return out;
    }

    InitFdUse use_;
    bool command_in_exec_; // argv, env and cwd through the exec (else in the plan)
    std::vector<std::string> args_;
    std::string pid_max_;
    std::vector<char*> argv_;
    std::vector<char*> envp_;
};

// child::run's stack under spawn_process: its deepest frames hold a few fds and a report.
constexpr std::size_t kChildStackSize = 32 * 1024;

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
    case NSFORK_STAGE_USER: return "switching the command's user";
    case NSFORK_STAGE_TERMINAL: return "setting up the command's terminal";
    case NSFORK_STAGE_COMMAND_FDS: return "passing the command's extra fds";
    case NSFORK_STAGE_COMMAND_SIGNALS: return "setting the command's blocked and ignored signals";
    default: return "unknown stage";
    }
}

// The first of the command's settings that only a plan carries, or nullptr: a launch without a
// plan socket cannot have them.
const char* needs_plan(const LaunchSpec& spec) {
    if (spec.foreground) return "the terminal's foreground";
    if (spec.tty) return "a terminal";
    if (spec.kill_group) return "signals to the command's process group";
    if (spec.signal_mask) return "a blocked signal mask";
    if (spec.ignored_signals) return "ignored signals";
    if (spec.uid || spec.gid || spec.groups) return "a user switch";
    if (!spec.extra_fds.empty()) return "extra fds";
    if (spec.hold) return "a holding init";
    return nullptr;
}

// "user 1000:100", "user 1000", "group 100", or the supplementary groups alone.
std::string switched_to(const nsfork_exec_report& report) {
    if (report.uid == NSFORK_NO_ID && report.gid == NSFORK_NO_ID) return "the supplementary groups";
    if (report.uid == NSFORK_NO_ID) return "group " + std::to_string(report.gid);
    std::string user = "user " + std::to_string(report.uid);
    if (report.gid != NSFORK_NO_ID) user += ":" + std::to_string(report.gid);
    return user;
}

// Receives the pidfds the intermediates send (child::intermediate): the init's, returned (empty
// if they failed first), and with a new pid namespace the second intermediate's, reaped here.
UniqueFd receive_pidfds(int sock, bool new_pid_namespace) {
    UniqueFd init, second;
    while (!init || (new_pid_namespace && !second)) {
        char tag;
        int fd = -1;
        std::size_t count = 0;
        int flags = 0;
        const ssize_t n = sys::recv_with_fds(sock, &tag, 1, &fd, 1, &count, &flags);
        UniqueFd got(count == 1 ? fd : -1);
        if (n != 1 || !got) break; // EOF: they failed, and said why on the report pipe
        (tag == child::kInitPidfd ? init : second) = std::move(got);
    }
    if (second) (void)reap(second.get()); // it exits once it sent the init's
    return init;
}

// Whether a hold spec asks for nothing but holding: every command setting at its default.
bool hold_fits(const LaunchSpec& spec) {
    const bool no_stdio = spec.stdio[0] < 0 && spec.stdio[1] < 0 && spec.stdio[2] < 0;
    return spec.argv.empty() && spec.env.empty() && no_stdio && spec.extra_fds.empty() && !spec.tty &&
           !spec.foreground && !spec.kill_group && !spec.signal_mask && !spec.ignored_signals && !spec.uid &&
           !spec.gid && !spec.groups;
}

// The Error for an intermediate's report: the namespace refused us, or is dead.
Error join_error(Error e, bool nested) {
    if (e.sys_errno == ENOMEM) // Linux refuses to fork into a pid namespace whose init has exited
        return Error{Errc::invalid_state,
                     nested ? "the parent pid namespace has no init any more (it exited)"
                            : "the pid namespace has no init any more (it exited)",
                     ENOMEM};
    if (e.sys_errno == EINVAL && e.message.find("joining the pid namespace") != std::string::npos)
        return Error{Errc::not_permitted, "the pid namespace is not the server's nor a descendant of it", EINVAL};
    return e;
}

} // namespace

Result<void> check_command_settings(const LaunchSpec& spec) {
    if (spec.extra_fds.size() > NSFORK_PLAN_MAX_EXTRA_FDS)
        return Error{Errc::bad_request, "too many extra fds: " + std::to_string(spec.extra_fds.size()) +
                                            " (at most " + std::to_string(NSFORK_PLAN_MAX_EXTRA_FDS) + ")"};
    for (int fd : spec.extra_fds)
        if (fd < 0) return Error{Errc::bad_request, "bad extra fd " + std::to_string(fd)};
    // (uid_t)-1 means "unchanged" to the kernel's set*id calls, and is refused by setuid itself.
    if (spec.uid == static_cast<uid_t>(-1) || spec.gid == static_cast<gid_t>(-1))
        return Error{Errc::bad_request, "bad user or group id 4294967295"};
    if (spec.tty && !spec.new_mount_namespace)
        return Error{Errc::bad_request,
                     "a terminal of the container's own needs a mount namespace of its own (its devpts is mounted there)"};
    if (spec.tty && spec.foreground)
        return Error{Errc::bad_request,
                     "a terminal of the container's own and the caller's terminal's foreground exclude each other"};
    if (spec.foreground && spec.new_session)
        return Error{Errc::bad_request, "the caller's terminal's foreground needs the caller's session"};
    if (spec.hold && !hold_fits(spec))
        return Error{Errc::bad_request, "a holding init runs no command: no argv, environment, stdio, extra fds, "
                                        "terminal, user or signal settings"};
    return {};
}

Result<void> check_init_privilege(const LaunchSpec& spec) {
    const uid_t euid = ::geteuid();
    if (euid == 0) return {};
    const char* what = spec.tty ? "a terminal of the container's own (pid 1 mounts its devpts)"
                       : spec.uid || spec.gid || spec.groups ? "another user or groups for the command"
                                                            : nullptr;
    if (!what) return {};
    return Error{Errc::not_permitted, std::string(what) + " needs pid 1 to hold capabilities, and it runs as uid " +
                                          std::to_string(euid) +
                                          ", which has none after exec (a user namespace mapping you to yourself: "
                                          "--map-current-user)"};
}

Result<Spawned> spawn(const LaunchSpec& spec) {
    if (spec.plan_fd < 0 && (spec.argv.empty() || spec.argv[0].empty()))
        return Error{Errc::bad_request, "empty command (argv is empty)"};
    if (spec.init_path.empty()) return Error{Errc::internal, "no init (nsfork-shim) configured"};
    if (auto checked = check_command_settings(spec); !checked) return std::move(checked).error();
    if (auto privileged = check_init_privilege(spec); !privileged) return std::move(privileged).error();
    if (const char* setting = spec.plan_fd < 0 ? needs_plan(spec) : nullptr)
        return Error{Errc::bad_request, std::string("cannot launch with ") + setting +
                                            ": no plan socket to carry it (launcher/plan.hpp, encode_cold_plan)"};

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

    CloneFlags flags = CloneFlags::clear_sighand();
    if (spec.new_pid_namespace) flags |= CloneFlags::new_pid_namespace();
    if (spec.new_mount_namespace) flags |= CloneFlags::new_mount_namespace();

    if (spec.pidns_fd < 0) {
        int pidfd = -1;
        pid_t pid;
        {
            AllSignalsBlocked blocked;
            const CloneOptions o{.flags = flags, .cgroup_fd = spec.cgroup_fd, .pidfd = &pidfd};
            if (spec.awaited) {
                // Its stack while it runs in our memory: it has exec'd (or died) by the time
                // spawn_process returns (child::run never waits for us).
                alignas(16) std::byte stack[kChildStackSize];
                pid = child::spawn(o, stack, plan);
            } else {
                pid = clone_process(o, [&] { child::run(plan); });
            }
        }
        if (pid < 0) return sys_error(Errc::launch_failed, "clone3 failed", errno);
        return Spawned{UniqueFd(pidfd), pid, std::move(report_read)};
    }

    // Into a namespace other than ours (nested below it, or joined): an intermediate enters it
    // and clones the init there, as a child of ours (see child::intermediate). We never enter it
    // ourselves: a server in a user namespace of its own (rootless) could not come back to its
    // own pid namespace, which the initial user namespace owns.
    auto socks = seqpacket_pair();
    if (!socks) return Error{Errc::launch_failed, socks.error().message, socks.error().sys_errno};
    auto& pair = *socks;
    int intermediate_pidfd = -1;
    pid_t intermediate;
    {
        AllSignalsBlocked blocked;
        intermediate = clone_process({.flags = CloneFlags::clear_sighand(), .pidfd = &intermediate_pidfd}, [&] {
            child::intermediate(plan, flags, spec.cgroup_fd, spec.pidns_fd, pair.second.get());
        });
    }
    if (intermediate < 0) return sys_error(Errc::launch_failed, "clone3 failed", errno);
    UniqueFd intermediate_fd(intermediate_pidfd);
    pair.second.reset();
    report_write.reset(); // from here on the report pipe's writers are the intermediates' and the init's
    UniqueFd pidfd = receive_pidfds(pair.first.get(), spec.new_pid_namespace);
    (void)reap(intermediate_fd.get());
    if (!pidfd) {
        auto report = read_exec_report(report_read.get(), command_name(spec), spec.cwd);
        if (report) return Error{Errc::internal, "the intermediate of a launch into a pid namespace sent no pidfd"};
        return join_error(std::move(report).error(), spec.new_pid_namespace);
    }
    const pid_t pid = pid_of_pidfd(pidfd.get());
    return Spawned{std::move(pidfd), pid, std::move(report_read)};
}

std::string command_name(const LaunchSpec& spec) {
    // With a plan the command may come later (a warm pool entry has none yet): until then the
    // process to be exec'd is the init.
    return spec.argv.empty() ? spec.init_path : spec.argv[0];
}

Error exec_report_error(const nsfork_exec_report& report, const std::string& command,
                        const std::string& cwd) {
    if (report.stage == NSFORK_STAGE_EXEC_COMMAND)
        return sys_error(Errc::exec_failed, "cannot execute '" + command + "'", report.error);
    if (report.stage == NSFORK_STAGE_CWD)
        return sys_error(Errc::launch_failed, "cannot change to working directory '" + cwd + "'",
                         report.error);
    if (report.stage == NSFORK_STAGE_USER)
        return sys_error(Errc::launch_failed, "cannot switch to " + switched_to(report), report.error);
    return sys_error(Errc::launch_failed, std::string("container setup failed while ") +
                                              stage_name(report.stage),
                     report.error);
}

Result<void> read_exec_report(int report_fd, const std::string& command, const std::string& cwd,
                              UniqueFd* terminal) {
    nsfork_exec_report report{};
    ssize_t n;
    int fd = -1;
    std::size_t count = 0;
    int flags = 0;
    if (terminal) {
        n = sys::recv_with_fds(report_fd, &report, sizeof report, &fd, 1, &count, &flags);
    } else {
        do n = ::read(report_fd, &report, sizeof report);
        while (n < 0 && errno == EINTR);
    }
    const int error = errno;
    if (terminal) terminal->reset(count == 1 ? fd : -1);
    // On a plan socket, a shim that died with its plan unread resets the connection: gone all the same.
    if (n < 0 && error == ECONNRESET) n = 0;
    if (n < 0) return sys_error(Errc::internal, "cannot read the exec report", error);
    if (n == 0)
        return Error{Errc::launch_failed,
                     "the container's init died before it could exec '" + command + "'"};
    if (n != sizeof report) return Error{Errc::internal, "short exec report"};
    if (report.stage != NSFORK_STAGE_OK) return exec_report_error(report, command, cwd);
    if (terminal && (!*terminal || (flags & MSG_CTRUNC)))
        return Error{Errc::internal, "the exec report came without the container's terminal"};
    return {};
}

} // namespace nsfork
