// nsfork's front: the program a user runs as `nsfork`.
//
// The full program (libexec/nsfork/nsfork: C++ on glibc, CLI11, the client library, the server)
// takes ~2.5 ms to start on these VMs, more than the container it launches: dynamic linking,
// libstdc++'s start-up and glibc's CPU probes (each CPUID a VM exit). This front is static on
// musl, like nsfork-shim, and starts in ~0.1 ms.
//
// It carries out the commonest commands itself:
// - `nsfork run -- CMD [ARG...]`: the steps of cli/local.cpp with the launcher's own child code
//   (launcher/child.cpp). On the caller's terminal, as the shell's foreground job, the command
//   takes the terminal's foreground, with job control across the container's boundary as
//   cli/run.cpp's Watch does it (launcher/job_control.h). Without root, a user namespace
//   first, in which we are root (base/userns.cpp's mapping). A cgroup leaf nsfork-PID below our
//   own cgroup v2 (without root, only in a cgroup delegated to us: else none, as the full program
//   does); clone3 into new pid and mount namespaces, born into it;
//   nsfork-shim as pid 1, given the command in its plan (shim_plan.h) with our stdio,
//   environment, working directory and blocked and ignored signals; our signals forwarded to
//   it; its exit status ours; the leaf killed and removed.
// - `nsfork run --socket S -- CMD [ARG...]`: what cli/run.cpp's run_on_server does, in the wire
//   protocol's own bytes (cli/front_wire.hpp): one Launch with the same settings and
//   destroy_on_exit, our signals forwarded to the pidfd it hands back until the server's
//   DestroyReply says the container is gone (from an older server: Wait, then Destroy).
//
// Everything else it hands to the full program (execv: the same pid, argv and environment): any
// other verb or option, --help, socket activation, a command too large for one datagram, a user
// namespace it cannot make. So does any failure before the command was exec'd, once what it
// started is gone: nothing of the command has run, and the full program does it all again and
// says what went wrong in the words it always has (without root, from inside the user namespace
// made by then, in which it is root).
#include "base/exit_codes.h"
#include "base/syscalls.hpp"
#include "cli/forwarded_signals.h"
#include "cli/front_wire.hpp"
#include "nsfork/exit_status.hpp"
#include "launcher/child.hpp"

extern "C" {
#include "launcher/job_control.h"
#include "launcher/shim_plan.h"
}

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

namespace {

using namespace nsfork;

constexpr int kForwarded[] = {NSFORK_FORWARDED_SIGNALS};
constexpr int kDestroyTimeoutMs = 2000; // as Cgroup::kDestroyTimeout

// Where the full program and the shim are: libexec/nsfork/ of the prefix we are in (bin/..), as
// installed wherever the prefix was moved and as in the build tree.
char g_prefix[PATH_MAX]; // with its trailing '/'

void find_prefix() {
    const ssize_t n = ::readlink("/proc/self/exe", g_prefix, sizeof g_prefix - 1);
    if (n <= 0) return;
    g_prefix[n] = '\0';
    for (int cut = 0; cut < 2; ++cut) // the file's name, then bin/
        if (char* slash = ::strrchr(g_prefix, '/')) *slash = '\0';
    ::strcat(g_prefix, "/");
}

[[noreturn]] void hand_over(char** argv) {
    char full[PATH_MAX + 32];
    ::snprintf(full, sizeof full, "%slibexec/nsfork/nsfork", g_prefix);
    ::execv(full, argv);
    ::dprintf(2, "nsfork: cannot execute %s: %s\n", full, ::strerror(errno));
    ::_exit(NSFORK_EXIT_FAILED);
}

// Which command lines and callers are the front's to serve (see the top of the file).
enum class Mode { hand_over, local, server };

Mode mode_of(int argc, char** argv) {
    if (argc < 4 || ::strcmp(argv[1], "run") != 0 || ::getenv("LISTEN_PID")) return Mode::hand_over;
    for (int fd = 0; fd < 3; ++fd)
        if (::fcntl(fd, F_GETFD) < 0) return Mode::hand_over;
    if (argc >= 6 && ::strcmp(argv[2], "--socket") == 0 && argv[3][0] && ::strcmp(argv[4], "--") == 0 && argv[5][0])
        return Mode::server;
    if (::strcmp(argv[2], "--") != 0 || argv[3][0] == '\0') return Mode::hand_over;
    return Mode::local;
}

// The caller's terminal while our process group is its foreground (we are the shell's foreground
// job), as cli/terminal.hpp's ForegroundTerminal: the command takes the foreground (the shim
// gives it, and gives it again on NSFORK_JOB_CONTINUE); we take it back when the command stops
// and at the end, so that the shell gets its terminal back from the group it gave it to.
struct Terminal {
    int tty = -1;                // -1: no terminal, or we are a background job
    bool command_has_it = false;

    void open_if_foreground() {
        tty = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (tty >= 0 && ::tcgetpgrp(tty) != ::getpgrp()) {
            ::close(tty);
            tty = -1;
        }
    }
    bool ours() const { return tty >= 0 && ::tcgetpgrp(tty) == ::getpgrp(); }
    // We are a background group when the command has it: SIGTTOU, which would stop us for the
    // tcsetpgrp, is blocked meanwhile.
    void take_back() {
        if (!command_has_it) return;
        command_has_it = false;
        sigset_t ttou, saved;
        ::sigemptyset(&ttou);
        ::sigaddset(&ttou, SIGTTOU);
        ::sigprocmask(SIG_BLOCK, &ttou, &saved);
        (void)::tcsetpgrp(tty, ::getpgrp());
        ::sigprocmask(SIG_SETMASK, &saved, nullptr);
    }
};

Terminal g_terminal;

// A whole small file (a /proc one) into `buf`, NUL-terminated; false if it does not fit.
bool read_file(const char* path, char* buf, size_t size) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t len = 0;
    ssize_t n;
    while ((n = ::read(fd, buf + len, size - 1 - len)) > 0) len += static_cast<size_t>(n);
    ::close(fd);
    buf[len] = '\0';
    return n == 0 && len < size - 1;
}

// Writes `text` to a /proc/self file in one write(2), as the kernel requires of the id maps.
bool write_proc(const char* path, const char* text) {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const size_t len = ::strlen(text);
    const bool ok = ::write(fd, text, len) == static_cast<ssize_t>(len);
    ::close(fd);
    return ok;
}

// Without root: a user namespace of our own in which we are root, as base/userns.cpp makes it
// for the full program. False, with nothing changed, where the full program had better try and
// say why (the unshare refused: a limit, a setting, a seccomp filter; a process not dumpable,
// whose maps could not be written; Ubuntu's AppArmor, which would take the namespace's
// capabilities); false after the unshare only if a map cannot be written, which the kernel
// allows a dumpable process for its own ids.
bool enter_user_namespace() {
    const uid_t uid = ::geteuid();
    const gid_t gid = ::getegid();
    if (::prctl(PR_GET_DUMPABLE) != 1) return false;
    char setting[8];
    if (read_file("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", setting, sizeof setting) && setting[0] == '1')
        return false;
    if (::unshare(CLONE_NEWUSER) < 0) return false;
    char map[64];
    ::snprintf(map, sizeof map, "0 %u 1\n", static_cast<unsigned>(uid));
    if (!write_proc("/proc/self/uid_map", map) || !write_proc("/proc/self/setgroups", "deny")) return false;
    ::snprintf(map, sizeof map, "0 %u 1\n", static_cast<unsigned>(gid));
    return write_proc("/proc/self/gid_map", map);
}

char g_text[1 << 20]; // mountinfo or cgroup, read in turn; untouched pages cost nothing

// Our own cgroup v2 directory into `out` (the first cgroup2 mount, as procfs::cgroup2_mount,
// and our path in it), if we may create cgroups there.
bool own_cgroup(char* out, size_t size) {
    if (!read_file("/proc/self/mountinfo", g_text, sizeof g_text)) return false;
    char mount[PATH_MAX] = "";
    for (char* line = g_text; *line && !mount[0];) {
        char* eol = ::strchr(line, '\n');
        if (eol) *eol = '\0';
        // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [FIELDS...] - FSTYPE SOURCE SUPER
        const char* sep = ::strstr(line, " - cgroup2 ");
        char point[PATH_MAX];
        if (sep && ::sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1 && !::strchr(point, '\\'))
            ::strcpy(mount, point); // (an escaped name is left to the full program)
        line = eol ? eol + 1 : line + ::strlen(line);
    }
    if (!mount[0] || !read_file("/proc/self/cgroup", g_text, sizeof g_text)) return false;
    const char* own = ::strncmp(g_text, "0::", 3) == 0 ? g_text : ::strstr(g_text, "\n0::");
    if (!own) return false;
    own += own == g_text ? 3 : 4;
    int len = static_cast<int>(::strcspn(own, "\n"));
    if (len == 1 && own[0] == '/') len = 0; // our cgroup is the root
    const int n = ::snprintf(out, size, "%s%.*s", mount, len, own);
    if (n < 0 || static_cast<size_t>(n) >= size - 32) return false;
    char procs[PATH_MAX + 16];
    ::snprintf(procs, sizeof procs, "%s/cgroup.procs", out);
    return ::faccessat(AT_FDCWD, procs, W_OK, AT_EACCESS) == 0;
}

// rmdir of `path`'s sub-cgroups, deepest first, then of `path` (Cgroup::remove's order).
bool remove_tree(const char* path) {
    if (DIR* dir = ::opendir(path)) {
        while (const dirent* e = ::readdir(dir)) {
            if (e->d_type != DT_DIR || ::strcmp(e->d_name, ".") == 0 || ::strcmp(e->d_name, "..") == 0) continue;
            char sub[PATH_MAX];
            ::snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (!remove_tree(sub) && errno != ENOENT) {
                ::closedir(dir);
                return false;
            }
        }
        ::closedir(dir);
    }
    return ::rmdir(path) == 0;
}

// Whether cgroup.events (open as `events`) says "populated 1"; -1 if unreadable.
int populated(int events) {
    char buf[256];
    const ssize_t n = ::pread(events, buf, sizeof buf - 1, 0);
    if (n < 0) return -1;
    buf[n] = '\0';
    const char* p = ::strstr(buf, "populated ");
    return p ? p[10] == '1' : -1;
}

// Cgroup::destroy: cgroup.kill once, wait until nothing is left in the subtree, remove it.
// Says why on stderr when it cannot.
bool destroy_cgroup(const char* path) {
    char file[PATH_MAX + 16];
    ::snprintf(file, sizeof file, "%s/cgroup.events", path);
    const int events = ::open(file, O_RDONLY | O_CLOEXEC);
    if (events < 0) {
        ::dprintf(2, "nsfork: cannot open %s: %s\n", file, ::strerror(errno));
        return false;
    }
    bool killed = false, ok = true;
    timespec start;
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        const int busy = populated(events);
        if (busy <= 0) {
            ok = busy == 0;
            if (!ok) ::dprintf(2, "nsfork: cannot read %s\n", file);
            break;
        }
        if (!killed) {
            char kill_file[PATH_MAX + 16];
            ::snprintf(kill_file, sizeof kill_file, "%s/cgroup.kill", path);
            if (const int kill = ::open(kill_file, O_WRONLY | O_CLOEXEC); kill >= 0) {
                (void)!::write(kill, "1", 1);
                ::close(kill);
            }
            killed = true;
            continue;
        }
        timespec now;
        ::clock_gettime(CLOCK_MONOTONIC, &now);
        const long left = kDestroyTimeoutMs - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0) {
            ::dprintf(2, "nsfork: cgroup %s still has processes after cgroup.kill\n", path);
            ok = false;
            break;
        }
        pollfd p{events, POLLPRI, 0};
        ::poll(&p, 1, static_cast<int>(left));
    }
    ::close(events);
    if (ok && !remove_tree(path)) {
        ::dprintf(2, "nsfork: cannot remove cgroup %s: %s\n", path, ::strerror(errno));
        ok = false;
    }
    return ok;
}

// The plan of `argv` in our environment and working directory (shim_plan.h), into `buf`; its
// size, or 0 when it does not fit one datagram.
alignas(8) char g_plan[NSFORK_PLAN_MAX];

size_t encode_plan(char** argv, const char* cwd, uint64_t signal_mask, uint64_t ignored) {
    nsfork_plan header{};
    header.magic = NSFORK_PLAN_MAGIC;
    if (g_terminal.tty >= 0) header.flags = NSFORK_PLAN_FOREGROUND;
    header.stdio = 7; // 0, 1 and 2 come with it
    header.signal_mask = signal_mask;
    header.ignored_signals = ignored;
    size_t at = sizeof header;
    auto add = [&](const char* s) {
        const size_t n = ::strlen(s) + 1;
        if (at + n > sizeof g_plan) return false;
        ::memcpy(g_plan + at, s, n);
        at += n;
        return true;
    };
    for (char** a = argv; *a; ++a, ++header.argc)
        if (!add(*a)) return 0;
    for (char** e = environ; *e; ++e, ++header.envc)
        if (!add(*e)) return 0;
    if (!add(cwd)) return 0;
    header.size = static_cast<uint32_t>(at - sizeof header);
    ::memcpy(g_plan, &header, sizeof header);
    return at;
}

// A launch under way, undone on failure before the command ran.
struct Launch {
    char cgroup[PATH_MAX + 32] = "";
    int cgroup_dir = -1;
    int pidfd = -1;
    int channel = -1; // the plan socket: the command's exec report comes back on it, and then
                      // job events, when the command has our terminal's foreground

    // Kills and reaps pid 1, removes the leaf: as if nothing had been started.
    void undo() {
        if (pidfd >= 0) {
            (void)sys::pidfd_send_signal(pidfd, SIGKILL);
            siginfo_t info;
            while (sys::waitid_pidfd(pidfd, &info, WEXITED) < 0 && errno == EINTR) {
            }
            ::close(pidfd);
        }
        if (channel >= 0) ::close(channel);
        if (cgroup_dir >= 0) ::close(cgroup_dir);
        if (cgroup[0]) (void)destroy_cgroup(cgroup);
    }
};

// Starts the command (true once it was exec'd). Without root (`rootless`) a cgroup we may not
// write is no reason to give up: the container then has no leaf, as with the full program.
bool start(Launch& l, char** command, uint64_t signal_mask, uint64_t ignored, bool rootless) {
    char cwd[PATH_MAX];
    if (!::getcwd(cwd, sizeof cwd)) return false;
    const size_t plan_size = encode_plan(command, cwd, signal_mask, ignored);
    if (!plan_size) return false;

    char shim[PATH_MAX + 32]; // where the full program finds it (server/preflight.cpp)
    ::snprintf(shim, sizeof shim, "%slibexec/nsfork/nsfork-shim", g_prefix);
    if (::access(shim, X_OK) < 0) return false;

    char own[PATH_MAX];
    if (own_cgroup(own, sizeof own)) {
        ::snprintf(l.cgroup, sizeof l.cgroup, "%s/nsfork-%d", own, static_cast<int>(::getpid()));
        if (::mkdir(l.cgroup, 0755) < 0) {
            l.cgroup[0] = '\0';
            return false;
        }
        l.cgroup_dir = ::open(l.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (l.cgroup_dir < 0) return false;
    } else if (!rootless) {
        return false;
    }

    int plan[2], report[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, plan) < 0) return false;
    l.channel = plan[0];
    if (::pipe2(report, O_CLOEXEC) < 0) {
        ::close(plan[1]);
        return false;
    }
    const int self = sys::pidfd_open(::getpid(), 0); // the child's parent-death check

    // The shim's command line names its fds as the launcher's table lays them out.
    constexpr InitFdUse use{.watch_server = false, .plan = true};
    char options[kInitFdSlotCount][32];
    char* shim_argv[kInitFdSlotCount + 2] = {shim};
    size_t argc = 1;
    for (const InitFdSlot& slot : kInitFdSlots)
        if (use.uses(slot.role)) {
            ::snprintf(options[argc - 1], sizeof options[0], "%s%d", slot.shim_option, use.fd_of(slot.role));
            shim_argv[argc] = options[argc - 1];
            ++argc;
        }
    char* no_env[] = {nullptr};
    const ChildPlan p{
        .init_path = shim,
        .argv = shim_argv,
        .envp = no_env,
        .cwd = "/", // the shim starts at the root; the command's directory is in its plan
        .stdio = {0, 1, 2},
        .init_fds = {report[1], plan[1], -1, -1},
        .parent_pidfd = self,
        .watch_server = false,
        .make_root_private = true,
        .mount_proc = true,
        .pid_max = nullptr,
        .sched_idle = false,
        .new_session = false, // our session, a process group of its own
    };
    static_assert(kInitFdSlotCount == 4 && InitFdUse{.plan = true}.fd_of(InitFd::plan) == 4);
    pid_t pid;
    {
        sigset_t all, saved; // the child is born with every signal blocked (spawn's AllSignalsBlocked)
        ::sigfillset(&all);
        ::sigprocmask(SIG_SETMASK, &all, &saved);
        const CloneFlags flags =
            CloneFlags::clear_sighand() | CloneFlags::new_pid_namespace() | CloneFlags::new_mount_namespace();
        alignas(16) static std::byte stack[32 * 1024]; // the child's, until it has exec'd
        g_terminal.command_has_it = g_terminal.tty >= 0; // from its launch on, until it stops or ends
        pid = child::spawn({.flags = flags, .cgroup_fd = l.cgroup_dir, .pidfd = &l.pidfd}, stack, p); // as spawn() does
        ::sigprocmask(SIG_SETMASK, &saved, nullptr);
    }
    ::close(plan[1]);
    ::close(report[1]);
    if (self >= 0) ::close(self);
    nsfork_exec_report r{};
    ssize_t n = -1;
    if (pid >= 0) {
        const int stdio[3] = {0, 1, 2};
        (void)sys::send_with_fds(l.channel, g_plan, plan_size, stdio, 3);
        do n = ::read(l.channel, &r, sizeof r);
        while (n < 0 && errno == EINTR);
    }
    // Open until now, as spawn()'s is: the shim's OK on it (it is up) must not meet a closed
    // pipe, which the shim takes for a launcher gone. Why a shim died the full program will say.
    ::close(report[0]);
    return n == sizeof r && r.stage == NSFORK_STAGE_OK;
}

// --socket: a connection to the server, and the one request in flight on it. (Its fds are
// close-on-exec: a hand-over leaves none behind.)
struct Session {
    int sock = -1;
    int pidfd = -1; // the container's init, once launched
    char id[256] = "";
    bool destroyed_on_exit = false; // the server answers the Launch again when the container is gone
    alignas(8) uint8_t buf[NSFORK_MAX_DATAGRAM];
    bool connect(const char* path) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (::strlen(path) >= sizeof addr.sun_path) return false;
        ::strcpy(addr.sun_path, path);
        sock = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        return sock >= 0 && ::connect(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    }
    bool send(const front_wire::Writer& w, const int* fds, size_t count) {
        return w.ok() && sys::send_with_fds(sock, buf, w.size(), fds, count) == static_cast<ssize_t>(w.size());
    }
    bool send_by_id(uint32_t seq, uint8_t type) {
        front_wire::Writer w(buf, sizeof buf);
        w.start_request(seq, type);
        w.by_id(id);
        return send(w, nullptr, 0);
    }
    // The next reply; its fds (a LaunchReply's) into `fds`. 0 bytes: the server closed.
    ssize_t receive(int* fds, size_t* count) {
        int flags = 0;
        *count = 0;
        return sys::recv_with_fds(sock, buf, sizeof buf, fds, NSFORK_MAX_PASSED_FDS, count, &flags);
    }
};

Session g_session; // (its buffer is a whole datagram: not on the stack)

// Launches `command` on the server (true once it was exec'd: the LaunchReply came).
bool launch_on_server(Session& s, const char* socket, char** command, uint64_t signal_mask, uint64_t ignored) {
    char cwd[PATH_MAX];
    if (!::getcwd(cwd, sizeof cwd) || !s.connect(socket)) return false;
    front_wire::Writer w(s.buf, sizeof s.buf);
    w.start_request(1, front_wire::kLaunch);
    w.launch(command, environ, cwd, signal_mask, ignored, true); // one request for the whole run
    const int stdio[3] = {0, 1, 2};
    if (!s.send(w, stdio, 3)) return false;
    int fds[NSFORK_MAX_PASSED_FDS];
    size_t count;
    const ssize_t n = s.receive(fds, &count);
    bool pidfd_first = false;
    const front_wire::Reply reply(s.buf, n > 0 ? static_cast<size_t>(n) : 0);
    const bool launched = reply.seq() == 1 && reply.launched(s.id, sizeof s.id, &pidfd_first, &s.destroyed_on_exit) &&
                          pidfd_first && count >= 1;
    for (size_t i = launched ? 1 : 0; i < count; ++i) ::close(fds[i]);
    if (launched) s.pidfd = fds[0];
    return launched;
}

// After the launch: signals forwarded until the container is gone, which the server says unasked
// (destroy_on_exit); from a server before that, until a Wait is answered, then Destroy. Our exit
// code.
int watch_on_server(Session& s, int sigfd) {
    const uint32_t end_seq = s.destroyed_on_exit ? 1 : 2;
    if (!s.destroyed_on_exit && !s.send_by_id(2, front_wire::kWait)) {
        ::dprintf(2, "nsfork: cannot send a request to the server: %s\n", ::strerror(errno));
        return NSFORK_EXIT_FAILED;
    }
    int32_t code = 0, signal = 0;
    for (;;) {
        pollfd fds[2] = {{s.sock, POLLIN, 0}, {sigfd, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return NSFORK_EXIT_FAILED;
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si;
            if (::read(sigfd, &si, sizeof si) == sizeof si)
                (void)sys::pidfd_send_signal(s.pidfd, static_cast<int>(si.ssi_signo));
        }
        if (!fds[0].revents) continue;
        int extra[NSFORK_MAX_PASSED_FDS];
        size_t count;
        const ssize_t n = s.receive(extra, &count);
        for (size_t i = 0; i < count; ++i) ::close(extra[i]);
        if (n <= 0) {
            ::dprintf(2, "nsfork: the server closed the connection before container '%s' ended\n", s.id);
            return NSFORK_EXIT_FAILED;
        }
        const front_wire::Reply reply(s.buf, static_cast<size_t>(n));
        char message[1024];
        if (reply.seq() == end_seq && reply.exited(&code, &signal)) break;
        if (reply.error(message, sizeof message)) {
            ::dprintf(2, "nsfork: %s\n", message);
            return NSFORK_EXIT_FAILED;
        }
    }
    // Forgotten on the server: it was ours alone (its answer changes nothing of ours).
    if (!s.destroyed_on_exit && s.send_by_id(3, front_wire::kDestroy)) {
        int extra[NSFORK_MAX_PASSED_FDS];
        size_t count;
        (void)s.receive(extra, &count);
        for (size_t i = 0; i < count; ++i) ::close(extra[i]);
    }
    return ExitStatus{code, signal}.shell_code();
}

// Our signals while a command runs: the forwarded ones blocked and read from a signalfd (none
// lost between launch and wait), SIGPIPE ignored (a closed reader is told by EPIPE), SIGCHLD at
// its default (ignored, the kernel would reap pid 1 for us); put back before a hand-over.
struct OwnSignals {
    sigset_t saved_mask;
    struct sigaction pipe_was, chld_was;
    int fd = -1;

    OwnSignals() {
        sigset_t forwarded;
        ::sigemptyset(&forwarded);
        for (int sig : kForwarded) ::sigaddset(&forwarded, sig);
        ::sigprocmask(SIG_BLOCK, &forwarded, &saved_mask);
        struct sigaction ignore {}, deflt {};
        ignore.sa_handler = SIG_IGN;
        deflt.sa_handler = SIG_DFL;
        ::sigaction(SIGPIPE, &ignore, &pipe_was);
        ::sigaction(SIGCHLD, &deflt, &chld_was);
        fd = ::signalfd(-1, &forwarded, SFD_CLOEXEC);
    }
    void restore() {
        if (fd >= 0) ::close(fd);
        ::sigaction(SIGPIPE, &pipe_was, nullptr);
        ::sigaction(SIGCHLD, &chld_was, nullptr);
        ::sigprocmask(SIG_SETMASK, &saved_mask, nullptr);
    }
};

// With job control (the command has our terminal's foreground): the shim says on the channel when
// the command stopped; we take the terminal back and stop too, so that the shell sees its job
// stop. Continued (`fg` or `bg`), we tell the shim, which continues the command, in the
// foreground again after `fg`. False once the shim is gone (its end comes on the pidfd).
bool on_job_event(int channel, bool* stopped) {
    nsfork_job_event event{};
    ssize_t n;
    do n = ::recv(channel, &event, sizeof event, 0);
    while (n < 0 && errno == EINTR);
    if (n != sizeof event) return false; // 0 or ECONNRESET: the shim is gone; a short record: as good as gone
    if (event.kind == NSFORK_JOB_STOPPED) {
        g_terminal.take_back();
        *stopped = true;
        nsfork_stop_self(event.signal);
    }
    return true;
}

// A SIGCONT after the command stopped us is ours to pass on as a job event; true if it was.
bool on_continued(int channel, bool* stopped) {
    if (!*stopped || channel < 0) return false;
    *stopped = false;
    const bool fg = g_terminal.ours();
    const nsfork_job_event event{fg ? NSFORK_JOB_CONTINUE : NSFORK_JOB_CONTINUE_BACKGROUND, 0};
    if (::send(channel, &event, sizeof event, MSG_NOSIGNAL) != sizeof event) return false;
    if (fg) g_terminal.command_has_it = true;
    return true;
}

// Without a server, after the launch: signals forwarded to pid 1 (the shim passes them on to the
// command), and job events with it on a terminal, until it ends; its status, once the leaf is
// gone, is our exit code.
int watch_local(Launch& l, int sigfd) {
    int channel = l.channel;
    if (g_terminal.tty < 0) {
        ::close(channel);
        channel = -1;
    }
    l.channel = -1;
    if (l.cgroup_dir >= 0) ::close(l.cgroup_dir);
    bool stopped = false;
    for (;;) {
        pollfd fds[3] = {{l.pidfd, POLLIN, 0}, {sigfd, POLLIN, 0}, {channel, POLLIN, 0}};
        if (::poll(fds, channel >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR) continue; // SIGCONT after a stop, for one
            break;
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si;
            if (::read(sigfd, &si, sizeof si) == sizeof si) {
                const int sig = static_cast<int>(si.ssi_signo);
                if (!(sig == SIGCONT && on_continued(channel, &stopped))) (void)sys::pidfd_send_signal(l.pidfd, sig);
            }
        }
        if (channel >= 0 && fds[2].revents && !on_job_event(channel, &stopped)) {
            ::close(channel);
            channel = -1;
        }
        if (fds[0].revents) break;
    }
    if (channel >= 0) ::close(channel);
    g_terminal.take_back();
    siginfo_t info{};
    while (sys::waitid_pidfd(l.pidfd, &info, WEXITED) < 0 && errno == EINTR) {
    }
    // pid 1's death ended the namespace; the leaf goes with whatever is still dying in it.
    if (l.cgroup[0] && !destroy_cgroup(l.cgroup)) return NSFORK_EXIT_FAILED;
    return info.si_code == CLD_EXITED ? info.si_status : ExitStatus{0, info.si_status}.shell_code();
}

} // namespace

int main(int argc, char** argv) {
    find_prefix();
    const Mode mode = mode_of(argc, argv);
    if (mode == Mode::hand_over) hand_over(argv);
    uint64_t signal_mask, ignored;
    nsfork_inherited_signals(&signal_mask, &ignored); // before we change ours
    OwnSignals own;
    if (mode == Mode::local) {
        // Without root, a user namespace first. (Entered, a failure later hands the run over
        // from inside it: the full program, root there, does the same without a second one.)
        const bool rootless = ::geteuid() != 0;
        if (rootless && !enter_user_namespace()) {
            own.restore();
            hand_over(argv);
        }
        g_terminal.open_if_foreground();
        Launch l;
        if (own.fd >= 0 && start(l, argv + 3, signal_mask, ignored, rootless)) return watch_local(l, own.fd);
        l.undo();
        g_terminal.take_back();
    } else {
        if (own.fd >= 0 && launch_on_server(g_session, argv[3], argv + 5, signal_mask, ignored))
            return watch_on_server(g_session, own.fd);
    }
    own.restore();
    hand_over(argv);
}
