// The child path: what runs between clone3 and exec (and in a nested launch's intermediate).
// Built with -fno-exceptions: nothing here may allocate, throw or take a lock; errno is passed
// to fail() by the caller right after the call that failed, before anything can overwrite it.
#include "launcher/child.hpp"

#include "base/exit_codes.h"
#include "base/syscalls.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

namespace nsfork::child {

namespace {

// Moves `fd` above kScratchFd (close-on-exec); -1 opens /dev/null instead.
int lift(int fd, int report_fd, nsfork_stage stage) noexcept {
    const int lifted = fd >= 0 ? ::fcntl(fd, F_DUPFD_CLOEXEC, kScratchFd) : ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (lifted < 0) fail(report_fd, stage, errno);
    return lifted;
}

// Writes `value` to the new pid namespace's pid_max, through our own /proc (Linux 6.14+).
void set_pid_max(const char* value, int report) noexcept {
    const int f = ::open("/proc/sys/kernel/pid_max", O_WRONLY | O_CLOEXEC);
    if (f < 0) fail(report, NSFORK_STAGE_PID_MAX, errno);
    const size_t len = ::strlen(value);
    const ssize_t n = ::write(f, value, len);
    if (n < 0) fail(report, NSFORK_STAGE_PID_MAX, errno);
    if (static_cast<size_t>(n) != len) fail(report, NSFORK_STAGE_PID_MAX, EIO); // short: no errno
    ::close(f);
}

// Wires stdio to 0..2 and the init's fds to 3.. (the InitFd table), closes every other fd.
// Returns nothing: from here on the report pipe is kFirstInitFd.
void wire_fds(const ChildPlan& p) noexcept {
    int report = p.init_fds[0];
    int lifted[3 + kInitFdSlotCount];
    int last = 2;
    for (int i = 0; i < 3; ++i) lifted[i] = lift(p.stdio[i], report, NSFORK_STAGE_STDIO);
    for (int fd : p.init_fds) {
        if (fd < 0) break;
        lifted[++last] = lift(fd, report, NSFORK_STAGE_STDIO);
        if (last == kFirstInitFd) report = lifted[last]; // the report pipe itself may be moved
    }
    // dup2 clears close-on-exec on the target: exactly 0..last survive the exec.
    for (int target = 0; target <= last; ++target)
        if (::dup2(lifted[target], target) < 0) fail(report, NSFORK_STAGE_STDIO, errno);
    if (sys::close_range(static_cast<unsigned>(last) + 1, ~0U, 0) < 0)
        fail(kFirstInitFd, NSFORK_STAGE_CLOSE_FDS, errno);
}

} // namespace

void fail(int report_fd, nsfork_stage stage, int error) noexcept {
    const nsfork_exec_report r{stage, error, 0, 0};
    // A short or failed write leaves EOF-without-record, which the parent reports as a death.
    [[maybe_unused]] ssize_t n = ::write(report_fd, &r, sizeof r);
    ::_exit(NSFORK_EXIT_FAILED);
}

void run(const ChildPlan& p) noexcept {
    const int report = p.init_fds[0];
    // Born on the parent's CPU (OnThisCpu, launcher/clone.hpp); from here on anywhere it may run.
    // (A failure leaves it pinned, which costs speed only.)
    if (p.affinity) (void)::sched_setaffinity(0, sizeof *p.affinity, p.affinity);
    if (p.sched_idle) {
        const sched_param idle{};
        if (::sched_setscheduler(0, SCHED_IDLE, &idle) < 0) fail(report, NSFORK_STAGE_SCHED, errno);
    }
    // Signals stay blocked (the parent blocked them all before clone3): the init inherits the
    // full mask and unblocks only through its signalfd, so no signal is lost before it is ready.
    // Its own session, so that a terminal's job-control signals never reach the container. Or,
    // on the caller's terminal (nsfork run), the caller's session but a process group of its
    // own: a signal to the caller's group (^C, `kill %1`) then reaches the launcher alone, which
    // forwards it once, and not the init too, which would forward it a second time.
    if ((p.new_session ? ::setsid() : ::setpgid(0, 0)) < 0) fail(report, NSFORK_STAGE_SESSION, errno);
    // Die with the server. A parent that died before the prctl took effect would go unnoticed
    // (getppid() is 0 in a new pid namespace), so look at the parent's pidfd afterwards: readable
    // means it has exited. A shared-namespace init is not killed: it must live to kill its
    // cgroup, which the shim does when the server's pidfd turns readable.
    if (!p.watch_server && ::prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(report, NSFORK_STAGE_SESSION, errno);
    struct pollfd parent{p.parent_pidfd, POLLIN, 0};
    if (::poll(&parent, 1, 0) != 0) ::_exit(NSFORK_EXIT_FAILED);

    if (p.make_root_private && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
        fail(report, NSFORK_STAGE_MOUNT_PRIVATE, errno);
    if (p.mount_proc && ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
        fail(report, NSFORK_STAGE_MOUNT_PROC, errno);
    // Our own /proc shows our own namespace's pid_max: a fork bomb inside stops there.
    if (p.pid_max) set_pid_max(p.pid_max, report);

    wire_fds(p);
    if (p.cwd && ::chdir(p.cwd) < 0) fail(kFirstInitFd, NSFORK_STAGE_CWD, errno);
    ::execve(p.init_path, p.argv, p.envp);
    fail(kFirstInitFd, NSFORK_STAGE_EXEC_SHIM, errno);
}

pid_t spawn(const CloneOptions& o, std::span<std::byte> stack, const ChildPlan& p) noexcept {
    OnThisCpu pinned;
    ChildPlan pinned_plan = p;
    pinned_plan.affinity = pinned.restore(); // the child's first act
    return spawn_process(o, stack, [&] { run(pinned_plan); });
}

namespace {

// Sends `pidfd` on `sock` tagged `tag`; false if it could not.
bool send_pidfd(int sock, char tag, int pidfd) noexcept { return sys::send_with_fds(sock, &tag, 1, &pidfd, 1) == 1; }

// Clones the init into our pid_for_children as the launcher's child (clone3 rejects CLONE_PARENT
// with a non-zero exit signal), sends its pidfd, exits.
[[noreturn]] void clone_init(const ChildPlan& p, CloneFlags flags, int cgroup_fd, int sock) noexcept {
    int pidfd = -1;
    const CloneOptions o{.flags = flags | CloneFlags::parent(), .cgroup_fd = cgroup_fd, .exit_signal = 0, .pidfd = &pidfd};
    if (clone_process(o, [&] { run(p); }) < 0) fail(p.init_fds[0], NSFORK_STAGE_JOIN_PIDNS, errno);
    ::_exit(send_pidfd(sock, kInitPidfd, pidfd) ? 0 : NSFORK_EXIT_FAILED);
}

} // namespace

// setns(CLONE_NEWPID) changes only our pid_for_children, and clone3(CLONE_NEWPID) is refused
// while that differs from our active namespace: a joined namespace takes the init directly, a
// nested one needs a process active in its parent (KERNEL.md, "nested pid namespace with the
// server as parent").
void intermediate(const ChildPlan& p, CloneFlags flags, int cgroup_fd, int pidns_fd, int sock) noexcept {
    const int report = p.init_fds[0];
    if (::setns(pidns_fd, CLONE_NEWPID) < 0) fail(report, NSFORK_STAGE_JOIN_PIDNS, errno);
    if (!flags.has(CloneFlags::new_pid_namespace())) clone_init(p, flags, cgroup_fd, sock);
    int pidfd = -1;
    const CloneOptions o{.flags = CloneFlags::clear_sighand() | CloneFlags::parent(), .exit_signal = 0, .pidfd = &pidfd};
    if (clone_process(o, [&] { clone_init(p, flags, cgroup_fd, sock); }) < 0)
        fail(report, NSFORK_STAGE_JOIN_PIDNS, errno);
    ::_exit(send_pidfd(sock, kIntermediatePidfd, pidfd) ? 0 : NSFORK_EXIT_FAILED);
}

} // namespace nsfork::child
