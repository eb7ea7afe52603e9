// nsfork-shim: pid 1 of a container's pid namespace. It starts the command, forwards it every
// signal but those of kNeverForwarded, reaps every process that ends up its child, and exits
// with the command's status. main() reads top to bottom: arguments, block signals, signalfd,
// (receive the plan, set up its terminal,) spawn the command, then supervise() until the
// command is reaped. With a hold plan it runs no command and only holds the namespaces, as pid
// 1, for a process a runtime forks into them (hold()), until it is killed.
//
// C++ on C headers only, built by musl-gcc as a small static binary: the launcher execs it on
// every launch, and exec cost grows with the binary (KERNEL.md, "Init design").
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
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
#include "launcher/job_control.h"
#include "launcher/shim_plan.h"

static_assert(sizeof(gid_t) == sizeof(uint32_t), "the plan's groups are passed to setgroups as they are");

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

// Decimal text of a small non-negative number, for messages (no stdio: says one write each).
const char *decimal(unsigned value, char (&buf)[16]) {
    char *p = buf + sizeof buf;
    *--p = '\0';
    do *--p = char('0' + value % 10);
    while ((value /= 10) && p > buf);
    return p;
}

// Writes the launch's one report record, with `pass_fd` as SCM_RIGHTS when given (then `fd` is
// the plan socket); a no-op when there is no report fd.
void report(int fd, const nsfork_exec_report &record, int pass_fd = -1) {
    if (fd < 0) return;
    const ssize_t n = pass_fd >= 0 ? nsfork_send_with_fds(fd, &record, sizeof record, &pass_fd, 1)
                                   : write(fd, &record, sizeof record);
    if (n < 0 && errno == EPIPE) {
        // The launcher is gone. The kernel queued a SIGPIPE on us, which the signalfd loop would
        // otherwise forward to the command and kill it with: consume it here.
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        const timespec now{};
        sigtimedwait(&pipe_only, nullptr, &now);
    }
}

void report(int fd, int32_t stage, int32_t error) { report(fd, {stage, error, 0, 0}); }

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

// Parses "[--report-fd=N] [--server-fd=N --kill-fd=N] [--plan=N] [-- CMD [ARG...]]" with a
// command, a plan or both (a command too large for its plan: shim_plan.h); returns CMD's index in
// argv (argc without one), or 0 on bad usage.
int parse_args(int argc, char **argv, Fds *fds) {
    struct Option {
        const char *prefix;
        int *fd;
    } const options[] = {{"--report-fd=", &fds->report}, {"--server-fd=", &fds->server},
                         {"--kill-fd=", &fds->kill}, {"--plan=", &fds->plan}};
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

// How the command's process is set up besides its argv and env: the plan's settings, and what
// the shim prepared for them. Without a plan, all defaults.
struct CommandSetup {
    nsfork_plan settings{};          // flags, signals, uid, gid, ngroups and extra_fds of the plan
    const uint32_t *groups = nullptr; // settings.ngroups of them
    int extra_fds[NSFORK_PLAN_MAX_EXTRA_FDS] = {}; // settings.extra_fds, at kExtraFdsFloor or above
    int terminal = -1;               // the caller's terminal (NSFORK_PLAN_FOREGROUND), if any
    int pty_master = -1;             // the container's pseudo-terminal (NSFORK_PLAN_TTY) ...
    int pty_slave = -1;              // ... and the command's side of it

    bool has(uint32_t flag) const { return settings.flags & flag; }
};

// Where the extra fds wait in the shim: above every target (3 .. 3 + NSFORK_PLAN_MAX_EXTRA_FDS - 1),
// so that wiring them to 3, 4, ... never overwrites one not yet wired. Our own fds there are
// overwritten in the command only, which needs none of them by then.
constexpr int kExtraFdsFloor = 3 + NSFORK_PLAN_MAX_EXTRA_FDS;

// Raw system calls for the vfork child: musl's setuid, setgid and setgroups synchronise every
// thread of the process (__synccall), which a vfork child sharing our memory must not do.
long sys_setgroups(size_t n, const uint32_t *groups) { return syscall(SYS_setgroups, n, groups); }
long sys_setgid(uint32_t gid) { return syscall(SYS_setgid, gid); }
long sys_setuid(uint32_t uid) { return syscall(SYS_setuid, uid); }

// The command's process group, and its terminal: a session of its own on the container's
// pseudo-terminal, or the caller's terminal's foreground. Our signals are all blocked here, so
// tcsetpgrp from a background group works (SIGTTOU cannot stop us).
int32_t take_terminal(const CommandSetup &s) {
    if (s.pty_slave >= 0) {
        if (setsid() < 0) return NSFORK_STAGE_SESSION;
        for (int target = 0; target < 3; ++target)
            if (dup2(s.pty_slave, target) < 0) return NSFORK_STAGE_TERMINAL;
        return ioctl(0, TIOCSCTTY, 0) < 0 ? NSFORK_STAGE_TERMINAL : NSFORK_STAGE_OK;
    }
    // Its own group, as tini and catatonit give it: a signal the command sends its group
    // (`kill -USR1 0`) reaches that group only, never us, who would forward it a second time.
    if (setpgid(0, 0) < 0) return NSFORK_STAGE_SESSION;
    if (s.terminal >= 0) {
        const pid_t group = getpid();
        if (ioctl(s.terminal, TIOCSPGRP, &group) < 0 && errno != ENOTTY && errno != ENXIO)
            return NSFORK_STAGE_TERMINAL; // ENOTTY, ENXIO: no terminal after all, carry on
    }
    return NSFORK_STAGE_OK;
}

// The command's fds 3, 4, ...: dup2 clears their close-on-exec; every other fd of ours has it.
int32_t wire_extra_fds(const CommandSetup &s) {
    for (uint32_t i = 0; i < s.settings.extra_fds; ++i)
        if (dup2(s.extra_fds[i], int(3 + i)) < 0) return NSFORK_STAGE_COMMAND_FDS;
    return NSFORK_STAGE_OK;
}

// Groups, then gid, then uid: each step needs the privilege the next one drops. A switch of
// user or group without a list of groups drops ours (runc does the same): the command must
// not keep the server's supplementary groups under another identity.
int32_t switch_user(const CommandSetup &s) {
    const bool switching = s.has(NSFORK_PLAN_UID) || s.has(NSFORK_PLAN_GID);
    if (s.has(NSFORK_PLAN_GROUPS) ? sys_setgroups(s.settings.ngroups, s.groups) < 0
                                  : switching && sys_setgroups(0, nullptr) < 0)
        return NSFORK_STAGE_USER;
    if (s.has(NSFORK_PLAN_GID) && sys_setgid(s.settings.gid) < 0) return NSFORK_STAGE_USER;
    if (s.has(NSFORK_PLAN_UID) && sys_setuid(s.settings.uid) < 0) return NSFORK_STAGE_USER;
    return NSFORK_STAGE_OK;
}

// Socket activation (sd_listen_fds): LISTEN_PID must name the process that holds the fds, as
// seen from inside, which only the command's own getpid() knows. Other entries pass as given.
void rewrite_listen_pid() {
    static const char prefix[] = "LISTEN_PID=";
    static char entry[sizeof prefix + 16];
    for (char **e = environ; *e; ++e) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0) continue;
        char digits[16];
        const char *pid = decimal(unsigned(getpid()), digits);
        memcpy(entry, prefix, sizeof prefix - 1);
        memcpy(entry + sizeof prefix - 1, pid, strlen(pid) + 1);
        *e = entry;
    }
}

// The signals the command starts with: `ignored_signals` at SIG_IGN (all others are the default:
// ours are, see reset_dispositions), `signal_mask` blocked. KILL and STOP cannot be either: their
// bits are skipped, or left to the kernel, which drops them from a mask.
int32_t set_signals(const CommandSetup &s) {
    const unsigned long ignore[4] = {(unsigned long)SIG_IGN}; // a kernel sigaction: handler first
    for (int sig = 1; sig <= 64; ++sig) {
        if (!(s.settings.ignored_signals >> (sig - 1) & 1) || sig == SIGKILL || sig == SIGSTOP) continue;
        if (syscall(SYS_rt_sigaction, sig, ignore, nullptr, _NSIG / 8) < 0) return NSFORK_STAGE_COMMAND_SIGNALS;
    }
    const uint64_t mask = s.settings.signal_mask; // the kernel's sigset: bit N-1 is signal N
    return syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, nullptr, sizeof mask) < 0 ? NSFORK_STAGE_COMMAND_SIGNALS
                                                                                     : NSFORK_STAGE_OK;
}

// What the command's exec, or its setup before, ended with.
struct Outcome {
    int32_t stage = NSFORK_STAGE_OK;
    int error = 0;
};

// Starts the command set up as `s` says; returns the failing stage and its errno, or OK. vfork:
// the child borrows our memory until it execs, leaves its failure there if it fails, and we
// resume once it exec'd or exited — no pipe, no extra system call. So the child makes system
// calls only. Its dispositions are already the defaults: ours are (reset_dispositions), and a
// signalfd installs no handler, so nothing of ours can run in it. PATH comes from our environ,
// which is the container's.
Outcome spawn_command(char **argv, const CommandSetup &s, pid_t *pid) {
    static volatile int32_t failed_stage;
    static volatile int failed_error;
    failed_stage = NSFORK_STAGE_OK;
    const pid_t child = vfork();
    if (child == 0) {
        int32_t stage = take_terminal(s);
        if (stage == NSFORK_STAGE_OK) stage = wire_extra_fds(s);
        if (stage == NSFORK_STAGE_OK) stage = switch_user(s);
        if (stage == NSFORK_STAGE_OK) {
            rewrite_listen_pid();
            stage = set_signals(s); // last: from here on, signals reach it as they will the command
        }
        if (stage == NSFORK_STAGE_OK) {
            execvp(argv[0], argv);
            stage = NSFORK_STAGE_EXEC_COMMAND;
        }
        failed_error = errno;
        failed_stage = stage;
        _exit(NSFORK_EXIT_FAILED);
    }
    if (child < 0) return {NSFORK_STAGE_EXEC_COMMAND, errno};
    if (failed_stage != NSFORK_STAGE_OK) {
        waitpid(child, nullptr, 0);
        return {failed_stage, failed_error};
    }
    *pid = child;
    return {};
}

char g_plan[NSFORK_PLAN_MAX] __attribute__((aligned(8))); // the parser reads its groups in place
char *g_pointers[NSFORK_PLAN_MAX_POINTERS(NSFORK_PLAN_MAX)];

// Waits for the plan on `sock`, wires the stdio fds it carries to their slots among 0, 1 and 2
// (the others stay our /dev/null), and keeps the extra fds that follow, moved to
// kExtraFdsFloor and above, in `setup`. Returns false when the server went away (closed the
// socket) or sent something malformed; no fd that came is left open then.
bool receive_plan(int sock, nsfork_parsed_plan *plan, CommandSetup *setup) {
    int fds[3 + NSFORK_PLAN_MAX_EXTRA_FDS];
    size_t count = 0;
    int flags = 0;
    const ssize_t n = nsfork_recv_with_fds(sock, g_plan, sizeof g_plan, fds, sizeof fds / sizeof *fds, &count, &flags);
    bool ok = n > 0 && !(flags & (MSG_TRUNC | MSG_CTRUNC)) &&
              nsfork_parse_plan(g_plan, size_t(n), g_pointers, sizeof g_pointers / sizeof *g_pointers, plan) == 0;
    size_t next_fd = 0;
    for (int slot = 0; ok && slot < 3; ++slot) {
        if (!(plan->header.stdio & (1u << slot))) continue;
        if (next_fd == count) ok = false;
        else if (dup2(fds[next_fd++], slot) < 0) ok = false; // dup2 clears close-on-exec on 0..2
    }
    for (uint32_t i = 0; ok && i < plan->header.extra_fds; ++i) {
        if (next_fd == count) ok = false;
        else if ((setup->extra_fds[i] = fcntl(fds[next_fd++], F_DUPFD_CLOEXEC, kExtraFdsFloor)) < 0) ok = false;
    }
    if (next_fd != count) ok = false;
    for (size_t i = 0; i < count; ++i)
        if (fds[i] > 2) close(fds[i]);
    if (!ok) return false; // we exit next, which closes the extra fds moved so far
    setup->settings = plan->header;
    setup->groups = plan->groups;
    return true;
}

// A pseudo-terminal of the container's own (as runc and podman make one): a new devpts instance
// on /dev/pts in our mount namespace, so that the command's `tty` and /dev/tty name it there,
// and its master and slave. Returns false with errno.
bool open_pty(CommandSetup *s) {
    if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0)
        return false;
    s->pty_master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s->pty_master < 0) return false;
    int unlock = 0;
    if (ioctl(s->pty_master, TIOCSPTLCK, &unlock) < 0) return false;
    s->pty_slave = ioctl(s->pty_master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s->pty_slave < 0) return false;
    // The caller's window size from the start: the command may read it before the launcher
    // has the master to set it.
    const winsize size{s->settings.tty_rows, s->settings.tty_cols, 0, 0};
    return (size.ws_row == 0 && size.ws_col == 0) || ioctl(s->pty_master, TIOCSWINSZ, &size) == 0;
}

// The caller's terminal, whose foreground the command takes: our controlling terminal, else
// stdin if it is a terminal. -1 when there is none (carry on without).
int open_caller_terminal() {
    const int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty >= 0) return tty;
    return isatty(STDIN_FILENO) ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3) : -1;
}

// The command, as supervise() signals and watches it.
struct Command {
    pid_t pid;
    bool group;       // forwarded signals go to its process group (its pgid is its pid)
    int channel;      // the job-control channel (job_control.h), or -1
    int terminal;     // the caller's terminal, with a channel

    pid_t target() const { return group ? -pid : pid; }
};

// Tells the launcher that the command stopped. Never blocks pid 1: a launcher that does not
// read misses the news, it does not hang the container.
void report_stop(const Command &c, int sig) {
    const nsfork_job_event event{NSFORK_JOB_STOPPED, sig};
    (void)!send(c.channel, &event, sizeof event, MSG_DONTWAIT | MSG_NOSIGNAL);
}

// Reaps every exited child, orphans included; returns the command's exit code once it is among
// them (128+N for death by signal N), else -1. With a job-control channel, a stop of the command
// is reported there.
int reap_children(const Command &c) {
    const int options = WNOHANG | (c.channel >= 0 ? WUNTRACED : 0);
    for (;;) {
        int status;
        const pid_t pid = waitpid(-1, &status, options);
        if (pid <= 0) return -1; // 0: none exited yet; ECHILD: no child left
        if (pid != c.pid) continue;
        if (WIFSTOPPED(status)) report_stop(c, WSTOPSIG(status));
        else return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    }
}

// Signals never forwarded to the command. SIGCHLD is ours: it drives the reaping. SIGKILL and
// SIGSTOP never reach a signalfd (they cannot be caught); listed to say so. SIGTTIN and SIGTTOU
// are the kernel's notice of background I/O on a controlling terminal, and the command's own
// I/O brings them to its own group, not to us: one reaching us was sent by hand, or is about
// our own writes to a terminal (we block it, so the write goes ahead), and would only tell the
// command something false. SIGTSTP is forwarded: a terminal's ^Z goes to the command's group
// directly, so one reaching us was asked for (`nsfork kill -TSTP`), and a command with a
// handler (a shell, an editor) acts on it; without one the kernel discards it when the
// command's process group is orphaned (a container in a session of its own).
constexpr int kNeverForwarded[] = {SIGCHLD, SIGKILL, SIGSTOP, SIGTTIN, SIGTTOU};

bool never_forwarded(int sig) {
    for (int s : kNeverForwarded)
        if (s == sig) return true;
    return false;
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

// Forwards `sig` to the command (or its group). Safe by pid: until we reap it, its pid cannot
// be reused; a zombie command takes a signal without error. ESRCH cannot happen then, and if it
// does the command is gone all the same: only other errors are said.
void forward(const Command &c, int sig) {
    if (kill(c.target(), sig) == 0 || errno == ESRCH) return;
    char buf[16];
    say_limited("cannot forward signal ", decimal(unsigned(sig), buf), strerror(errno));
}

// Acts on one record from the launcher: continues the command's group, in the terminal's
// foreground unless asked for the background. Returns false once the channel is closed.
bool on_job_event(const Command &c) {
    nsfork_job_event event;
    const ssize_t n = recv(c.channel, &event, sizeof event, MSG_DONTWAIT);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) return false; // the launcher closed it (and its death kills us anyway)
    if (n != sizeof event) return true;
    if (event.kind == NSFORK_JOB_CONTINUE && c.terminal >= 0) {
        const pid_t group = c.pid;
        if (ioctl(c.terminal, TIOCSPGRP, &group) < 0) say_limited("job control: ", "tcsetpgrp", strerror(errno));
    }
    if (event.kind == NSFORK_JOB_CONTINUE || event.kind == NSFORK_JOB_CONTINUE_BACKGROUND) kill(-c.pid, SIGCONT);
    return true;
}

// The supervision loop: reaps on SIGCHLD, forwards the other signals, with a job-control
// channel continues the command when the launcher says, and in a shared pid namespace kills the
// container's cgroup if the server dies. Exits with the command's status once it is reaped,
// and for no other reason.
[[noreturn]] void supervise(const Command &c, int sfd, const Fds &fds) {
    // In a shared pid namespace our death would not end the container: if the server dies, we
    // kill the container's whole cgroup (us included). Polled, so a server that died before
    // we got here is seen at once. Absent fds are -1, which poll skips.
    pollfd watch[3] = {{sfd, POLLIN, 0}, {fds.server, POLLIN, 0}, {c.channel, POLLIN, 0}};
    for (;;) {
        if (poll(watch, 3, -1) < 0) {
            transient_failure("poll", errno);
            continue;
        }
        if (watch[1].revents) {
            if (write(fds.kill, "1", 1) != 1) kill(c.pid, SIGKILL);
            watch[1].fd = -1; // once is enough; SIGCHLD ends us next
        }
        if (watch[2].revents && !on_job_event(c)) watch[2].fd = -1;
        if (!(watch[0].revents & POLLIN)) continue;
        signalfd_siginfo si;
        const ssize_t n = read(sfd, &si, sizeof si);
        if (n != ssize_t(sizeof si)) {
            transient_failure("read of the signalfd", n < 0 ? errno : EIO);
            continue;
        }
        const int sig = int(si.ssi_signo);
        if (sig == SIGCHLD) {
            if (const int code = reap_children(c); code >= 0) _exit(code);
        } else if (!never_forwarded(sig)) {
            forward(c, sig);
        }
    }
}

// Reaps every exited child, without a command to watch for: as pid 1 of a holding namespace,
// whatever the kernel reparents to us.
void reap_orphans() {
    int status;
    while (waitpid(-1, &status, WNOHANG) > 0) {
    }
}

// Holds the namespaces for a process a runtime forks into them later (NSFORK_PLAN_HOLD): no
// command, so nothing to forward to and no exit of our own. A signal sent to us is dropped (the
// server sends a hold container's signals to its main process); SIGKILL from the server ends us,
// and with us the namespace. In a shared pid namespace, as supervise() does, the server's death
// kills the container's cgroup, us included.
[[noreturn]] void hold(int sfd, const Fds &fds) {
    pollfd watch[2] = {{sfd, POLLIN, 0}, {fds.server, POLLIN, 0}};
    for (;;) {
        if (poll(watch, 2, -1) < 0) {
            transient_failure("poll", errno);
            continue;
        }
        if (watch[1].revents) {
            if (write(fds.kill, "1", 1) != 1) _exit(NSFORK_EXIT_FAILED); // nothing of ours to kill else
            watch[1].fd = -1;
        }
        if (!(watch[0].revents & POLLIN)) continue;
        signalfd_siginfo si;
        const ssize_t n = read(sfd, &si, sizeof si);
        if (n != ssize_t(sizeof si)) transient_failure("read of the signalfd", n < 0 ? errno : EIO);
        else if (si.ssi_signo == SIGCHLD) reap_orphans();
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
        say("usage: nsfork-shim [--report-fd=N] [--server-fd=N --kill-fd=N] [--plan=N] [-- CMD [ARG...]]");
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
    CommandSetup setup;
    bool at_root = false; // whether we are at "/" already
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
        if (!receive_plan(fds.plan, &plan, &setup)) _exit(NSFORK_EXIT_FAILED); // discarded by the server
        report_fd = fds.plan; // the launch's outcome goes back on the plan's socket
        // A settings-only plan goes with a command of our own, a full one or a hold without.
        const bool holding = setup.has(NSFORK_PLAN_HOLD);
        if ((plan.header.argc == 0 && !holding) != (cmd < argc)) {
            errno = EINVAL;
            fail_setup(report_fd, "a plan whose command does not match the arguments");
        }
        // Signals that arrived while we were a pool entry are not the command's.
        for (pollfd p{sfd, POLLIN, 0}; poll(&p, 1, 0) == 1;) {
            signalfd_siginfo stale;
            if (read(sfd, &stale, sizeof stale) != sizeof stale) break;
        }
        if (holding) {
            report(report_fd, NSFORK_STAGE_OK, 0);
            close(report_fd);
            hold(sfd, fds);
        }
        if (plan.header.argc > 0) {
            at_root = strcmp(plan.cwd, "/") == 0;
            if (!at_root && chdir(plan.cwd) < 0) { // we start at "/" (shim_plan.h)
                report(report_fd, NSFORK_STAGE_CWD, errno);
                _exit(NSFORK_EXIT_FAILED);
            }
            environ = plan.envp; // execvp, after spawn_command's vfork, looks PATH up in our environ
            command_argv = plan.argv;
        }
        if (setup.has(NSFORK_PLAN_TTY) && !open_pty(&setup)) {
            report(report_fd, NSFORK_STAGE_TERMINAL, errno);
            _exit(NSFORK_EXIT_FAILED);
        }
        if (setup.has(NSFORK_PLAN_FOREGROUND)) setup.terminal = open_caller_terminal();
    }

    pid_t command;
    if (const Outcome failed = spawn_command(command_argv, setup, &command); failed.stage != NSFORK_STAGE_OK) {
        // With a report fd the launcher tells its client why; saying it here too would print
        // the same failure twice on `nsfork run`'s terminal.
        const bool user = failed.stage == NSFORK_STAGE_USER;
        const nsfork_exec_report record{
            failed.stage, failed.error,
            user && setup.has(NSFORK_PLAN_UID) ? setup.settings.uid : (user ? NSFORK_NO_ID : 0),
            user && setup.has(NSFORK_PLAN_GID) ? setup.settings.gid : (user ? NSFORK_NO_ID : 0)};
        if (report_fd >= 0) report(report_fd, record);
        else if (failed.stage == NSFORK_STAGE_EXEC_COMMAND) say("cannot execute '", command_argv[0], "': ", strerror(failed.error));
        else say("cannot set up '", command_argv[0], "': ", strerror(failed.error));
        if (failed.stage != NSFORK_STAGE_EXEC_COMMAND) return NSFORK_EXIT_FAILED;
        return failed.error == ENOENT || failed.error == ENOTDIR ? NSFORK_EXIT_NOT_FOUND : NSFORK_EXIT_CANNOT_EXECUTE;
    }
    // The extra fds are the command's alone: a socket-activated service or a pipe's reader must
    // not find us holding them.
    for (uint32_t i = 0; i < setup.settings.extra_fds; ++i) close(setup.extra_fds[i]);
    // The command keeps its working directory; we leave it, so that it is never kept busy by
    // us (an unmount there would fail with EBUSY), as catatonit does.
    if (!at_root) (void)!chdir("/");
    // The master of the container's terminal goes to the launcher with the OK; without our
    // copies, it sees EIO and HUP once the command's side is closed.
    report(report_fd, {NSFORK_STAGE_OK, 0, 0, 0}, setup.pty_master);
    if (setup.pty_master >= 0) close(setup.pty_master);
    if (setup.pty_slave >= 0) close(setup.pty_slave);
    // With the caller's terminal, the plan's socket stays: it is the job-control channel.
    const bool job_control = setup.has(NSFORK_PLAN_FOREGROUND) && report_fd >= 0;
    if (report_fd >= 0 && !job_control) close(report_fd);
    const Command c{command, setup.has(NSFORK_PLAN_KILL_GROUP), job_control ? report_fd : -1, setup.terminal};
    supervise(c, sfd, fds);
}
