// The runtime's side of making a container's process: build the plan (setup_plan.cpp), clone
// the child into the container's pid namespace (setns(CLONE_NEWPID) changes only where our
// children are born; ours is restored at once) and cgroup, then follow its reports.
#include "oci/setup.hpp"

#include "base/pidfd.hpp"
#include "base/syscalls.hpp"
#include "launcher/clone.hpp"
#include "oci/child.hpp"
#include "oci/forwarded_signals.h"
#include "oci/front_link.hpp"
#include "oci/setup_plan.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

namespace nsfork::oci {

namespace {

// Kills and reaps the child of a failed setup, and returns `error`.
Error abandon(ContainerProcess& p, Error error) {
    if (front::Link* front = front::link()) {
        (void)front->reap(true);
        return error;
    }
    (void)signal_pidfd(p.pidfd.get(), SIGKILL);
    (void)reap(p.pidfd.get());
    return error;
}

// The end of a child that ended by itself.
Result<ExitStatus> reap_ended(ContainerProcess& p) {
    if (front::Link* front = front::link()) return front->reap(false);
    return reap(p.pidfd.get());
}

// A command not found, in runc's words, which engines match: podman and conmon turn "executable
// file not found in $PATH" and "permission denied" into exit codes 127 and 126.
Error not_found(const std::string& what, int err) {
    const char* why = err == ENOENT ? "executable file not found in $PATH" : err == EACCES ? "permission denied" : nullptr;
    if (!why) return sys_error(Errc::exec_failed, what, err);
    return Error{Errc::exec_failed, what + ": " + why, err};
}

// Clones the child that follows `plan` as our child, pid_for_children set to that of
// `pidns_pidfd`'s process for the clone only, into `cgroup_leaf` when given. A warm runtime's
// child is its front's (front_link.hpp), cloned there.
Result<ContainerProcess> clone_child(SetupPlan& plan, int pidns_pidfd, int cgroup_leaf, int report, int self, bool foreground) {
    if (front::Link* front = front::link()) {
        plan.plan().report = report;
        auto cloned = front->clone(plan.plan(), pidns_pidfd, cgroup_leaf, foreground);
        if (!cloned) return std::move(cloned).error();
        return ContainerProcess{std::move(cloned->first), cloned->second, {}, {}};
    }
    UniqueFd own(::open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC));
    if (!own) return sys_error(Errc::internal, "open /proc/self/ns/pid_for_children", errno);
    if (::setns(pidns_pidfd, CLONE_NEWPID) < 0) return sys_error(Errc::launch_failed, "join the container's pid namespace", errno);
    plan.plan().report = report;
    plan.plan().parent_pidfd = self;
    int pidfd = -1;
    const CloneOptions o{.flags = CloneFlags::clear_sighand(), .cgroup_fd = cgroup_leaf, .pidfd = &pidfd};
    const pid_t pid = clone_process(o, [&] { child::run(plan.plan()); });
    const int clone_errno = errno;
    // Our own again: a failure here would leave every later child of ours in the container.
    if (::setns(own.get(), CLONE_NEWPID) < 0) ::abort();
    if (foreground) {
        const sigset_t forwarded = nsfork_oci_forwarded_signals();
        ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    }
    if (pid < 0) return sys_error(Errc::launch_failed, cgroup_leaf >= 0 ? "clone3 into the container's cgroup" : "clone3", clone_errno);
    return ContainerProcess{UniqueFd(pidfd), pid, {}, {}};
}

// Follows the child's reports until it is ready (create) or has exec'd (exec: the report socket
// closes on exec). A failed step becomes an error naming it.
Result<ContainerProcess> follow(SetupPlan& plan, int pidns_pidfd, int cgroup_leaf, bool until_ready, bool foreground,
                                const std::function<Result<void>(pid_t)>* create_runtime,
                                const std::function<Result<void>(pid_t)>* resumed) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return sys_error(Errc::internal, "socketpair", errno);
    UniqueFd ours(pair[0]), theirs(pair[1]);
    UniqueFd self(front::link() ? -1 : sys::pidfd_open(::getpid(), 0));
    if (!front::link() && !self) return sys_error(Errc::internal, "pidfd_open of the runtime", errno);
    auto cloned = clone_child(plan, pidns_pidfd, cgroup_leaf, theirs.get(), self.get(), foreground);
    if (!cloned) return cloned;
    ContainerProcess p = std::move(*cloned);
    theirs.reset();
    // Without a hooks step it goes on from the clone at once.
    if (!(create_runtime && *create_runtime) && resumed && *resumed)
        if (auto ok = (*resumed)(p.pid); !ok) return abandon(p, std::move(ok).error());
    for (;;) {
        child::Report r{};
        ssize_t n;
        do n = ::recv(ours.get(), &r, sizeof r, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) return abandon(p, sys_error(Errc::internal, "read the container process's report", errno));
        if (n == 0) {
            if (!until_ready) return p; // exec'd
            auto status = reap_ended(p);
            std::string how;
            if (status) how = status->signal ? " (signal " + std::to_string(status->signal) + ")" : " (exit code " + std::to_string(status->code) + ")";
            return Error{Errc::launch_failed, "the container's process died during its setup" + how};
        }
        if (n != sizeof r) return abandon(p, Error{Errc::internal, "short report from the container's process"});
        switch (r.kind) {
        case child::ReportKind::failed: {
            const std::size_t step = r.step < plan.plan().count ? r.step : 0;
            const child::Op op = plan.plan().steps[step].op;
            if (op == child::Op::find_executable) return abandon(p, not_found(plan.describe(step), r.error));
            return abandon(p, sys_error(op == child::Op::exec ? Errc::exec_failed : Errc::launch_failed, plan.describe(step), r.error));
        }
        case child::ReportKind::hooks: {
            if (create_runtime && *create_runtime)
                if (auto ok = (*create_runtime)(p.pid); !ok) return abandon(p, std::move(ok).error());
            if (::send(ours.get(), &child::kGo, 1, MSG_NOSIGNAL) < 0)
                return abandon(p, sys_error(Errc::launch_failed, "resume the container's process after the hooks", errno));
            if (resumed && *resumed)
                if (auto ok = (*resumed)(p.pid); !ok) return abandon(p, std::move(ok).error());
            break;
        }
        case child::ReportKind::ready:
            if (until_ready) {
                // Without an exec fifo it waits on this socket for start_process().
                const child::Plan& steps = plan.plan();
                if (steps.count >= 2 && steps.steps[steps.count - 2].op == child::Op::await_start) {
                    p.start = std::move(ours);
                    p.exec_step = plan.describe(steps.count - 1);
                }
                return p;
            }
            [[fallthrough]];
        default: return abandon(p, Error{Errc::internal, "unexpected report from the container's process"});
        }
    }
}

} // namespace

Result<ContainerProcess> create_process(const CreateRequest& request) {
    if (!request.spec || request.holder_pidfd < 0) return Error{Errc::bad_request, "create_process: no spec or no holder"};
    auto plan = plan_create(request);
    if (!plan) return std::move(plan).error();
    return follow(**plan, request.holder_pidfd, request.cgroup_leaf, true, request.foreground, &request.create_runtime,
                  &request.resumed);
}

Result<void> start_process(ContainerProcess& p) {
    if (!p.start) return Error{Errc::internal, "start_process: the process waits on an exec fifo"};
    UniqueFd start = std::move(p.start);
    if (::send(start.get(), &child::kGo, 1, MSG_NOSIGNAL) < 0)
        return sys_error(Errc::invalid_state, "the container's process ended before start", errno);
    // Its end of the socket closes on exec; a failed exec is reported on it first.
    child::Report r{};
    ssize_t n;
    do n = ::recv(start.get(), &r, sizeof r, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0) return {};
    if (n == sizeof r && r.kind == child::ReportKind::failed) return sys_error(Errc::exec_failed, p.exec_step, r.error);
    if (n < 0) return sys_error(Errc::internal, "read the container process's report", errno);
    return Error{Errc::internal, "unexpected report from the container's process"};
}

Result<ContainerProcess> exec_process(const ExecRequest& request) {
    if (!request.spec || !request.process || request.target_pidfd < 0)
        return Error{Errc::bad_request, "exec_process: no spec, process or target"};
    // The container's root, which its mount namespace's root is not after --no-pivot.
    const pid_t target = pid_of_pidfd(request.target_pidfd);
    if (target < 0) return Error{Errc::invalid_state, "the container's process has exited"};
    UniqueFd root(::open(("/proc/" + std::to_string(target) + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) return sys_error(Errc::invalid_state, "open the root of the container's process " + std::to_string(target), errno);
    if (pid_of_pidfd(request.target_pidfd) != target) return Error{Errc::invalid_state, "the container's process has exited"};
    auto plan = plan_exec(request, std::move(root));
    if (!plan) return std::move(plan).error();
    return follow(**plan, request.target_pidfd, request.cgroup_leaf, false, false, nullptr, nullptr);
}

} // namespace nsfork::oci
