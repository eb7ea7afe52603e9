// nsfork-shim: pid 1 of a container's pid namespace. It starts the command, forwards it every
// signal but those of kNeverForwarded, reaps every process that ends up its child, and exits
// with the command's status. main() reads top to bottom: arguments, block signals, signalfd,
// (receive the plan,) spawn the command, then supervise() until the command is reaped.
//
// C++ on C headers only, built by musl-gcc as a small static binary: the launcher execs it on
// every launch, and exec cost grows with the binary (KERNEL.md, "Init design").
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/exit_codes.h"
#include "base/fdpass.h"
#include "launcher/exec_report.h"
#include "launcher/shim_plan.h"

extern char **environ;

namespace {

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

// Reports a failure of the shim's own setup (errno is the cause) and exits NSFORK_EXIT_FAILED.
[[noreturn]] void fail_setup(int report_fd, const char *what) {
    const int error = errno;
    report(report_fd, NSFORK_STAGE_SHIM_SETUP, error);
    say(what, ": ", strerror(error));
    _exit(NSFORK_EXIT_FAILED);
}

// The fds the launcher may hand the shim; -1 when absent.
struct Fds {
    int report = -1; // the exec report pipe
    int server = -1; // the server's pidfd: readable once the server died
    int kill = -1;   // the container's cgroup.kill, written when the server died
    int plan = -1;   // a socket on which the shim waits for its plan (shim_plan.h)
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

// Parses "[--report-fd=N] [--server-fd=N --kill-fd=N] (-- CMD [ARG...] | --plan=N)"; returns
// CMD's index in argv (argc with --plan), or 0 on bad usage.
int parse_args(int argc, char **argv, Fds *fds) {
    struct Option {
        const char *prefix;
        int *fd;
    } const options[] = {{"--report-fd=", &fds->report}, {"--server-fd=", &fds->server},
                         {"--kill-fd=", &fds->kill}, {"--plan=", &fds->plan}};
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--") == 0) {
            const bool paired = (fds->server < 0) == (fds->kill < 0);
            return paired && fds->plan < 0 && i + 1 < argc ? i + 1 : 0;
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
    const bool paired = (fds->server < 0) == (fds->kill < 0);
    return paired && fds->plan >= 0 ? argc : 0; // its command comes in its plan
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

// Starts the command with nothing blocked; returns 0 or the errno of its exec. vfork: the
// child borrows our memory until it execs, leaves its exec's errno there if that fails, and we
// resume once it exec'd or exited — no pipe, no extra system call. Its dispositions are already
// the defaults: ours are (reset_dispositions), and a signalfd installs no handler, so nothing of
// ours can run in it. PATH comes from our environ, which is the container's.
int spawn_command(char **argv, pid_t *pid) {
    static volatile int exec_error;
    exec_error = 0;
    sigset_t none;
    sigemptyset(&none);
    const pid_t child = vfork();
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &none, nullptr);
        execvp(argv[0], argv);
        exec_error = errno;
        _exit(NSFORK_EXIT_NOT_FOUND);
    }
    if (child < 0) return errno;
    if (const int error = exec_error) {
        waitpid(child, nullptr, 0);
        return error;
    }
    *pid = child;
    return 0;
}

char g_plan[NSFORK_PLAN_MAX];
char *g_pointers[NSFORK_PLAN_MAX_POINTERS(NSFORK_PLAN_MAX)];

// Waits for the plan on `sock` and wires the stdio fds it carries to their slots among 0, 1
// and 2 (the others stay our /dev/null). Returns false when the server went away (closed the
// socket) or sent something malformed.
bool receive_plan(int sock, nsfork_parsed_plan *plan) {
    int stdio[3];
    size_t count = 0;
    int flags = 0;
    const ssize_t n = nsfork_recv_with_fds(sock, g_plan, sizeof g_plan, stdio, 3, &count, &flags);
    bool ok = n > 0 && !(flags & (MSG_TRUNC | MSG_CTRUNC)) &&
              nsfork_parse_plan(g_plan, size_t(n), g_pointers, sizeof g_pointers / sizeof *g_pointers, plan) == 0;
    size_t next_fd = 0;
    for (int slot = 0; ok && slot < 3; ++slot) {
        if (!(plan->stdio & (1u << slot))) continue;
        if (next_fd == count) ok = false;
        else if (dup2(stdio[next_fd++], slot) < 0) ok = false; // dup2 clears close-on-exec on 0..2
    }
    if (next_fd != count) ok = false;
    for (size_t i = 0; i < count; ++i)
        if (stdio[i] > 2) close(stdio[i]);
    return ok;
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

// Signals never forwarded to the command. SIGCHLD is ours: it drives the reaping. SIGKILL and
// SIGSTOP never reach a signalfd (they cannot be caught); listed to say so. SIGTTIN and SIGTTOU
// are the kernel's notice of background I/O on a controlling terminal, which a container (its
// own session, no terminal of ours) has none of: one reaching us was sent by hand and would
// only tell the command something false. SIGTSTP is forwarded: the container has no terminal
// to send ^Z, so one reaching us was asked for (`nsfork kill -TSTP`), and a command with a
// handler (a shell, an editor) acts on it; without one the kernel discards it anyway, as the
// command's process group is orphaned.
constexpr int kNeverForwarded[] = {SIGCHLD, SIGKILL, SIGSTOP, SIGTTIN, SIGTTOU};

bool never_forwarded(int sig) {
    for (int s : kNeverForwarded)
        if (s == sig) return true;
    return false;
}

// Decimal text of a small non-negative number, for messages (no stdio: says one write each).
const char *decimal(unsigned value, char (&buf)[16]) {
    char *p = buf + sizeof buf;
    *--p = '\0';
    do *--p = char('0' + value % 10);
    while ((value /= 10) && p > buf);
    return p;
}

// Says a line about a failure in the supervision loop, at most once a second: a persistent
// error must not flood the container's stderr.
void say_limited(const char *a, const char *b, const char *c) {
    static timespec last{};
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (last.tv_sec != 0 && now.tv_sec - last.tv_sec < 1) return;
    last = now;
    say(a, b, ": ", c);
}

// Once the command runs, pid 1 is no longer allowed to bail (catatonit): our exit would kill
// the whole container. A failed call is said (EINTR and EAGAIN are not failures) and retried,
// after a pause so that an error that persists does not spin a CPU.
void transient_failure(const char *what, int error) {
    if (error == EINTR || error == EAGAIN) return;
    say_limited("supervision: ", what, strerror(error));
    const timespec pause{0, 10 * 1000 * 1000};
    nanosleep(&pause, nullptr);
}

// Forwards `sig` to the command. Safe by pid: until we reap it, its pid cannot be reused; a
// zombie command takes a signal without error. ESRCH cannot happen then, and if it does the
// command is gone all the same: only other errors are said.
void forward(pid_t command, int sig) {
    if (kill(command, sig) == 0 || errno == ESRCH) return;
    char buf[16];
    say_limited("cannot forward signal ", decimal(unsigned(sig), buf), strerror(errno));
}

// The supervision loop: reaps on SIGCHLD, forwards the other signals, and in a shared pid
// namespace kills the container's cgroup if the server dies. Exits with the command's status
// once it is reaped, and for no other reason.
[[noreturn]] void supervise(pid_t command, int sfd, const Fds &fds) {
    // In a shared pid namespace our death would not end the container: if the server dies, we
    // kill the container's whole cgroup (us included). Polled, so a server that died before
    // we got here is seen at once.
    pollfd watch[2] = {{sfd, POLLIN, 0}, {fds.server, POLLIN, 0}};
    const nfds_t watched = fds.server >= 0 ? 2 : 1;
    for (;;) {
        if (poll(watch, watched, -1) < 0) {
            transient_failure("poll", errno);
            continue;
        }
        if (watched == 2 && watch[1].revents) {
            if (write(fds.kill, "1", 1) != 1) kill(command, SIGKILL);
            watch[1].fd = -1; // once is enough; SIGCHLD ends us next
        }
        if (!(watch[0].revents & POLLIN)) continue;
        signalfd_siginfo si;
        const ssize_t n = read(sfd, &si, sizeof si);
        if (n != ssize_t(sizeof si)) {
            transient_failure("read of the signalfd", n < 0 ? errno : EIO);
            continue;
        }
        const int sig = int(si.ssi_signo);
        if (sig == SIGCHLD) {
            if (const int code = reap_children(command); code >= 0) _exit(code);
        } else if (!never_forwarded(sig)) {
            forward(command, sig);
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
    } given[] = {{fds.report, "bad --report-fd"}, {fds.server, "bad --server-fd"},
                 {fds.kill, "bad --kill-fd"}, {fds.plan, "bad --plan"}};
    for (const auto &g : given) {
        if (g.fd >= 0 && fcntl(g.fd, F_SETFD, FD_CLOEXEC) < 0) fail_setup(-1, g.bad);
    }
    int report_fd = fds.report;
    if (cmd == 0) {
        report(report_fd, NSFORK_STAGE_SHIM_SETUP, EINVAL);
        say("usage: nsfork-shim [--report-fd=N] [--server-fd=N --kill-fd=N] (-- CMD [ARG...] | --plan=N)");
        return NSFORK_EXIT_FAILED;
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

    char **command_argv = argv + cmd;
    if (fds.plan >= 0) {
        // The first page of each buffer a usual plan fills, faulted in now: a page fault in the
        // plan's recvmsg would cost the launch microseconds.
        static_cast<volatile char *>(g_plan)[0] = 0;
        static_cast<char *volatile *>(g_pointers)[0] = nullptr;
        // Namespaces, /proc and cgroup are ready; say so (a warm pool entry is ready from here),
        // then wait for the container's plan: sent at once on a cold start, at launch when warm.
        report(report_fd, NSFORK_STAGE_OK, 0);
        if (report_fd >= 0) close(report_fd);
        nsfork_parsed_plan plan{};
        if (!receive_plan(fds.plan, &plan)) _exit(NSFORK_EXIT_FAILED); // discarded by the server
        report_fd = fds.plan; // the launch's outcome goes back on the plan's socket
        // Signals that arrived while we were a pool entry are not the command's.
        for (pollfd p{sfd, POLLIN, 0}; poll(&p, 1, 0) == 1;) {
            signalfd_siginfo stale;
            if (read(sfd, &stale, sizeof stale) != sizeof stale) break;
        }
        if (strcmp(plan.cwd, "/") != 0 && chdir(plan.cwd) < 0) { // we start at "/" (shim_plan.h)
            report(report_fd, NSFORK_STAGE_CWD, errno);
            _exit(NSFORK_EXIT_FAILED);
        }
        environ = plan.envp; // execvp, after spawn_command's vfork, looks PATH up in our environ
        command_argv = plan.argv;
    }

    pid_t command;
    if (const int error = spawn_command(command_argv, &command)) {
        // With a report fd the launcher tells its client why; saying it here too would print
        // the same failure twice on `nsfork run`'s terminal.
        if (report_fd >= 0) report(report_fd, NSFORK_STAGE_EXEC_COMMAND, error);
        else say("cannot execute '", command_argv[0], "': ", strerror(error));
        return error == ENOENT || error == ENOTDIR ? NSFORK_EXIT_NOT_FOUND : NSFORK_EXIT_CANNOT_EXECUTE;
    }
    report(report_fd, NSFORK_STAGE_OK, 0);
    if (report_fd >= 0) close(report_fd);
    supervise(command, sfd, fds);
}
