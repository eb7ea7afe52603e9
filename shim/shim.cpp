// nsfork-shim: pid 1 of a container's pid namespace. It starts the command, forwards it every
// signal, reaps every process that ends up its child, and exits with the command's status.
//
// C++ on C headers only, built by musl-gcc as a small static binary: the launcher execs it on
// every launch, and exec cost grows with the binary (KERNEL.md, "Init design").
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec_report.h"

extern char **environ;

namespace {

constexpr int kExitShimError = 125;
constexpr int kExitCannotExecute = 126;
constexpr int kExitNotFound = 127;

// Writes "nsfork-shim: " and the parts as one line in a single write, so it never interleaves.
void say(const char *a, const char *b = "", const char *c = "", const char *d = "") {
    char line[512];
    size_t n = 0;
    const char *parts[] = {"nsfork-shim: ", a, b, c, d};
    for (const char *part : parts) {
        for (; *part && n < sizeof line - 1; ++part) line[n++] = *part;
    }
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, n);
}

// Writes the launch's one report record; a no-op when there is no report fd.
void report(int fd, int32_t stage, int32_t error) {
    if (fd < 0) return;
    const nsfork_exec_report record{stage, error};
    if (write(fd, &record, sizeof record) < 0 && errno == EPIPE) {
        // The launcher is gone. The kernel queued a SIGPIPE on us, which the signalfd loop would
        // otherwise forward to the command and kill it with: consume it here.
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        const timespec now{};
        sigtimedwait(&pipe_only, nullptr, &now);
    }
}

// Reports a failure of the shim's own setup (errno is the cause) and exits 125.
[[noreturn]] void fail_setup(int report_fd, const char *what) {
    const int error = errno;
    report(report_fd, NSFORK_STAGE_SHIM_SETUP, error);
    say(what, ": ", strerror(error));
    _exit(kExitShimError);
}

// The fds the launcher may hand the shim; -1 when absent.
struct Fds {
    int report = -1; // the exec report pipe
    int server = -1; // the server's pidfd: readable once the server died
    int kill = -1;   // the container's cgroup.kill, written when the server died
};

// Parses "N" into *fd; false unless it is a plain small number.
bool parse_fd(const char *digits, int *fd) {
    int value = 0;
    for (const char *p = digits; *p; ++p) {
        if (*p < '0' || *p > '9' || value > 99999) return false;
        value = value * 10 + (*p - '0');
    }
    if (*digits == '\0') return false;
    *fd = value;
    return true;
}

// Parses "[--report-fd=N] [--server-fd=N --kill-fd=N] -- CMD [ARG...]"; returns CMD's index
// in argv, or 0 on bad usage.
int parse_args(int argc, char **argv, Fds *fds) {
    struct Option {
        const char *prefix;
        int *fd;
    } const options[] = {{"--report-fd=", &fds->report}, {"--server-fd=", &fds->server}, {"--kill-fd=", &fds->kill}};
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--") == 0) {
            const bool paired = (fds->server < 0) == (fds->kill < 0);
            return paired && i + 1 < argc ? i + 1 : 0;
        }
        bool known = false;
        for (const Option &o : options) {
            const size_t n = strlen(o.prefix);
            if (strncmp(argv[i], o.prefix, n) != 0) continue;
            if (!parse_fd(argv[i] + n, o.fd)) return 0;
            known = true;
        }
        if (!known) return 0;
    }
    return 0;
}

// Sets every signal's disposition to SIG_DFL, including the libc-internal 32..34.
void reset_dispositions() {
    // An inherited SIG_IGN (or SA_NOCLDWAIT) on SIGCHLD makes the kernel reap the command by
    // itself, losing its status. And glibc's posix_spawn leaves SIG_IGN on 32 and 33 in the
    // process it starts, which musl's sigaction cannot undo and POSIX_SPAWN_SETSIGDEF cannot
    // name: the command would inherit it. Hence the raw syscall: an all-zero kernel sigaction
    // is SIG_DFL with no flags on every architecture. KILL and STOP fail, harmlessly.
    const unsigned long zero[4] = {};
    for (int sig = 1; sig < _NSIG; ++sig) syscall(SYS_rt_sigaction, sig, zero, nullptr, _NSIG / 8);
}

// Starts the command with default dispositions and nothing blocked; returns 0 or the errno of
// its exec (musl's posix_spawn reports it back from the child). PATH comes from our environ,
// which is the container's.
int spawn_command(char **argv, pid_t *pid) {
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const int error = posix_spawnp(pid, argv[0], nullptr, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    return error;
}

// Reaps every exited child, orphans included; returns the command's exit code once it is among
// them (128+N for death by signal N), else -1.
int reap_children(pid_t command) {
    for (;;) {
        int status;
        const pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return -1; // 0: none exited yet; ECHILD: no child left
        if (pid == command) {
            return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        }
    }
}

} // namespace

int main(int argc, char **argv) {
    Fds fds;
    const int cmd = parse_args(argc, argv, &fds);
    // The command must hold none of these, or the launcher would not see EOF at exec.
    const struct {
        int fd;
        const char *bad;
    } given[] = {{fds.report, "bad --report-fd"}, {fds.server, "bad --server-fd"}, {fds.kill, "bad --kill-fd"}};
    for (const auto &g : given) {
        if (g.fd >= 0 && fcntl(g.fd, F_SETFD, FD_CLOEXEC) < 0) fail_setup(-1, g.bad);
    }
    const int report_fd = fds.report;
    if (cmd == 0) {
        report(report_fd, NSFORK_STAGE_SHIM_SETUP, EINVAL);
        say("usage: nsfork-shim [--report-fd=N] [--server-fd=N --kill-fd=N] -- CMD [ARG...]");
        return kExitShimError;
    }

    reset_dispositions();
    // Blocked before the signalfd exists so that nothing is lost in between. As pid 1, a blocked
    // signal is still queued, whereas an unblocked one without a handler would be dropped.
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, nullptr) < 0) fail_setup(report_fd, "cannot block signals");
    const int sfd = signalfd(-1, &all, SFD_CLOEXEC);
    if (sfd < 0) fail_setup(report_fd, "cannot create signalfd");
    // As pid 1 every orphan is ours anyway; this makes it so outside a namespace too (tests).
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) fail_setup(report_fd, "cannot become subreaper");

    pid_t command;
    if (const int error = spawn_command(argv + cmd, &command)) {
        // With a report fd the launcher tells its client why; saying it here too would print
        // the same failure twice on `nsfork run`'s terminal.
        if (report_fd >= 0) report(report_fd, NSFORK_STAGE_EXEC_COMMAND, error);
        else say("cannot execute '", argv[cmd], "': ", strerror(error));
        return error == ENOENT || error == ENOTDIR ? kExitNotFound : kExitCannotExecute;
    }
    report(report_fd, NSFORK_STAGE_OK, 0);
    if (report_fd >= 0) close(report_fd);

    // In a shared pid namespace our death would not end the container: if the server dies, we
    // kill the container's whole cgroup (us included). Polled, so a server that died before
    // we got here is seen at once.
    pollfd watch[2] = {{sfd, POLLIN, 0}, {fds.server, POLLIN, 0}};
    const nfds_t watched = fds.server >= 0 ? 2 : 1;
    for (;;) {
        if (poll(watch, watched, -1) < 0) fail_setup(-1, "cannot poll");
        if (watched == 2 && watch[1].revents) {
            if (write(fds.kill, "1", 1) != 1) kill(command, SIGKILL);
            watch[1].fd = -1; // once is enough; SIGCHLD ends us next
        }
        if (!(watch[0].revents & POLLIN)) continue;
        signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) != sizeof si) fail_setup(-1, "cannot read signalfd");
        if (si.ssi_signo == SIGCHLD) {
            if (const int code = reap_children(command); code >= 0) return code;
        } else {
            // Safe by pid: until we reap it, the command's pid cannot be reused. A zombie
            // command is killed without error; any error (ESRCH) is ignored all the same.
            kill(command, static_cast<int>(si.ssi_signo));
        }
    }
}
