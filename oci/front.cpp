// nsfork-oci's front: the program the engines run as `nsfork-oci`. Static on musl, like
// bin/nsfork's front (cli/front.cpp): it starts in ~0.06 ms, where the full runtime
// (libexec/nsfork/nsfork-oci: C++ on glibc, the JSON and command-line libraries, libseccomp)
// pays glibc's start-up, ~1.1 ms on these VMs (CPU probes, each CPUID a VM exit), at every engine
// call.
//
// For the calls engines make on every container — `create` and `run`, which make one, `start`,
// `state`, `kill` and `delete` — it asks a warm runtime: one of the full program's processes
// kept started beside the node's server (oci/warm.cpp), listening at the server's socket path +
// ".oci". It hands over its command line, environment, working
// directory, umask and stdio, and does what only it can (front_wire.hpp): the container's
// process must be its child, since the engine that called it reaps that process, so it clones
// it from the plan the warm runtime built (the same child code, oci/child.cpp), reaps it, during
// a foreground `run` forwards its signals to it, and exits with the code it is told.
//
// Everything else it hands to the full program (execv: the same pid, argv and environment):
// every other verb (`exec` makes a process too, but rarely enough to pay the start-up), a command line it cannot read, no warm runtime listening, or a warm runtime
// that answers "fallback" (a caller it must not act for, config.json with hooks, ...), which it
// does before it has done anything.
#include "base/exit_codes.h"
#include "base/syscalls.hpp"
#include "launcher/clone.hpp"
#include "oci/child.hpp"
#include "oci/forwarded_signals.h"
#include "oci/front_wire.hpp"
#include "oci/defaults.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

using namespace nsfork;
using namespace nsfork::oci::front;

char** g_argv;

[[noreturn]] void hand_over() {
    char prefix[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", prefix, sizeof prefix - 1);
    prefix[n > 0 ? n : 0] = '\0';
    for (int cut = 0; cut < 2; ++cut) // the file's name, then bin/
        if (char* slash = ::strrchr(prefix, '/')) *slash = '\0';
    char full[PATH_MAX + 32];
    ::snprintf(full, sizeof full, "%s/libexec/nsfork/nsfork-oci", prefix);
    ::execv(full, g_argv);
    ::dprintf(2, "nsfork-oci: cannot execute %s: %s\n", full, ::strerror(errno));
    ::_exit(1);
}

[[noreturn]] void fail(const char* what, int err) {
    if (err) ::dprintf(2, "nsfork-oci: %s: %s\n", what, ::strerror(err));
    else ::dprintf(2, "nsfork-oci: %s\n", what);
    ::_exit(1);
}

// The server's socket as the full program finds it (oci/options.hpp), for the verbs a warm
// runtime serves; null for anything else.
// (The warm runtime parses the command line again, as the full program does, and answers
// fallback for anything it does not serve: this is only what the front needs to find it.)
const char* server_socket(int argc, char** argv) {
    const char* socket = ::getenv("NSFORK_SOCKET");
    if (!socket || !*socket) socket = oci::kDefaultServerSocket;
    for (int i = 1; i < argc; ++i)
        if (::strncmp(argv[i], "--preserve-fds", 14) == 0) return nullptr; // fds a request does not carry
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (a[0] != '-') {
            for (const char* verb : {"create", "run", "start", "state", "kill", "delete"})
                if (::strcmp(a, verb) == 0) return socket;
            return nullptr;
        }
        if (::strcmp(a, "--nsfork-socket") == 0 && i + 1 < argc) socket = argv[++i];
        else if (::strncmp(a, "--nsfork-socket=", 16) == 0) socket = a + 16;
        else if (::strcmp(a, "--root") == 0 || ::strcmp(a, "--log") == 0 || ::strcmp(a, "--log-format") == 0) ++i;
    }
    return nullptr;
}

int connect_warm(const char* socket) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (::strlen(socket) + sizeof kSocketSuffix > sizeof addr.sun_path) return -1;
    ::strcpy(addr.sun_path, socket);
    ::strcat(addr.sun_path, kSocketSuffix);
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// The request (front_wire.hpp), sent; false when it cannot be (the warm runtime is not asked).
bool send_request(int conn, int argc, char** argv, int self) {
    static char buf[kMaxRequest];
    RequestHeader h;
    std::size_t len = sizeof h;
    auto add = [&](const char* s) {
        const std::size_t n = ::strlen(s) + 1;
        if (len + n > sizeof buf) return false;
        ::memcpy(buf + len, s, n);
        len += n;
        return true;
    };
    for (int i = 0; i < argc; ++i)
        if (!add(argv[i])) return false;
    h.argc = static_cast<std::uint32_t>(argc);
    for (char** e = environ; *e; ++e, ++h.envc)
        if (!add(*e)) return false;
    h.umask = ::umask(0);
    ::umask(h.umask);
    ::memcpy(buf, &h, sizeof h);
    const int cwd = ::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0) return false;
    const int fds[5] = {self, cwd, 0, 1, 2};
    const bool sent = sys::send_with_fds(conn, buf, len, fds, 5) == static_cast<ssize_t>(len);
    ::close(cwd);
    return sent;
}

// The container's process, once cloned.
struct Child {
    int pidfd = -1;
    pid_t pid = -1;
};

// Descriptors the next clone's plan refers to.
struct Table {
    int* fds = nullptr;
    std::size_t count = 0, room = 0;
    void close_all() {
        for (std::size_t i = 0; i < count; ++i) ::close(fds[i]);
        count = 0;
    }
};

void answer(int conn, Kind kind, std::int32_t value, int fd = -1) {
    const oci::front::Answer m{kind, value};
    if (sys::send_with_fds(conn, &m, sizeof m, fd >= 0 ? &fd : nullptr, fd >= 0 ? 1 : 0) < 0)
        fail("the warm runtime went away", errno);
}

// Clones the child that follows the plan in `memfd`: answers with its pid or -errno, and its pidfd.
void clone_child(int conn, const CloneHeader& h, int memfd, Table& table, int self, Child& child) {
    char* bytes = static_cast<char*>(::aligned_alloc(alignof(std::max_align_t), (h.plan_size + 15) / 16 * 16 + 16));
    std::size_t got = 0;
    while (bytes && got < h.plan_size) {
        const ssize_t n = ::pread(memfd, bytes + got, h.plan_size - got, static_cast<off_t>(got));
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    oci::child::Plan* plan = nullptr;
    const auto index = [&](std::int32_t i) { return i >= 0 && static_cast<std::size_t>(i) < table.count ? table.fds[i] : -1; };
    const int pidns = index(h.pidns), cgroup = index(h.cgroup);
    if (!bytes || got != h.plan_size || !oci::front::decode_plan(bytes, h.plan_size, table.fds, table.count, &plan) || pidns < 0)
        fail("the warm runtime sent no plan the front can follow", EPROTO);
    plan->parent_pidfd = self;
    const int own = ::open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
    if (own < 0 || ::setns(pidns, CLONE_NEWPID) < 0) {
        const int err = errno;
        if (own >= 0) ::close(own);
        ::free(bytes);
        table.close_all();
        return answer(conn, Kind::cloned, -err);
    }
    int pidfd = -1;
    const CloneOptions o{.flags = CloneFlags::clear_sighand(), .cgroup_fd = cgroup, .pidfd = &pidfd};
    const pid_t pid = clone_process(o, [&] { oci::child::run(*plan); });
    const int clone_errno = errno;
    if (::setns(own, CLONE_NEWPID) < 0) ::abort(); // else every later child of ours would be born there
    if (h.foreground) { // as the full runtime blocks them (setup.hpp's CreateRequest::foreground)
        const sigset_t forwarded = nsfork_oci_forwarded_signals();
        ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    }
    ::close(own);
    ::free(bytes);
    table.close_all(); // the child has them: its report socket must close with its exec
    if (pid < 0) return answer(conn, Kind::cloned, -clone_errno);
    child.pidfd = pidfd;
    child.pid = pid;
    answer(conn, Kind::cloned, pid, pidfd);
}

std::int32_t reap(Child& child) {
    siginfo_t info{};
    int r;
    do r = sys::waitid_pidfd(child.pidfd, &info, WEXITED);
    while (r < 0 && errno == EINTR);
    ::close(child.pidfd);
    child.pidfd = -1;
    if (r < 0) return 0;
    return info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
}

// A foreground run: our signals go to the child until it ends, then its end to the runtime.
// They stay blocked after it: one that comes while the runtime deletes the container does not
// end us before we exit as the container did.
void forward(int conn, Child& child) {
    const sigset_t forwarded = nsfork_oci_forwarded_signals();
    ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    const int sigfd = ::signalfd(-1, &forwarded, SFD_CLOEXEC);
    if (sigfd < 0) fail("signalfd", errno);
    for (;;) {
        pollfd fds[3] = {{child.pidfd, POLLIN, 0}, {sigfd, POLLIN, 0}, {conn, POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            fail("poll", errno);
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo info{};
            if (::read(sigfd, &info, sizeof info) == sizeof info) (void)sys::pidfd_send_signal(child.pidfd, static_cast<int>(info.ssi_signo));
        }
        if (fds[2].revents) {
            Reap r{};
            const ssize_t n = ::recv(conn, &r, sizeof r, 0);
            if (n <= 0) fail("the warm runtime went away", n < 0 ? errno : 0);
            if (n == sizeof r && r.kind == Kind::reap && r.kill) (void)sys::pidfd_send_signal(child.pidfd, SIGKILL);
        }
        if (fds[0].revents & POLLIN) break;
    }
    const std::int32_t end = reap(child);
    ::close(sigfd);
    answer(conn, Kind::exited, end);
}

} // namespace

int main(int argc, char** argv) {
    g_argv = argv;
    const char* socket = server_socket(argc, argv);
    if (!socket) hand_over();
    const int conn = connect_warm(socket);
    if (conn < 0) hand_over();
    const int self = sys::pidfd_open(::getpid(), 0);
    if (self < 0 || !send_request(conn, argc, argv, self)) hand_over();

    Table table;
    Child child;
    bool answered = false;
    for (;;) {
        union {
            Kind kind;
            CloneHeader clone;
            Reap reap;
            oci::front::Answer result;
        } m{};
        int fds[kFdsPerMessage];
        std::size_t count = 0;
        int flags = 0;
        const ssize_t n = sys::recv_with_fds(conn, &m, sizeof m, fds, kFdsPerMessage, &count, &flags);
        if (n <= 0) {
            for (std::size_t i = 0; i < count; ++i) ::close(fds[i]);
            // Before its first message the warm runtime has made no process of ours, and the
            // state directory it may have made is the id's lock: the full program does it again
            // or says that the id is taken. (Reset: no fork accepted us, and the keeper closed
            // the socket, unable to make one.)
            if (!answered) {
                ::close(conn);
                hand_over();
            }
            fail("the warm runtime serving this command ended before its answer", n < 0 ? errno : 0);
        }
        answered = true;
        switch (m.kind) {
        case Kind::fallback:
            ::close(conn);
            hand_over();
        case Kind::fds:
            if (table.count + count > table.room) {
                table.room = table.count + count + 32;
                table.fds = static_cast<int*>(::realloc(table.fds, table.room * sizeof(int)));
                if (!table.fds) fail("out of memory", ENOMEM);
            }
            ::memcpy(table.fds + table.count, fds, count * sizeof(int));
            table.count += count;
            break;
        case Kind::clone:
            if (count != 1 || child.pidfd >= 0) fail("the warm runtime sent a clone the front cannot follow", EPROTO);
            clone_child(conn, m.clone, fds[0], table, self, child);
            ::close(fds[0]);
            break;
        case Kind::reap:
            if (child.pidfd < 0) fail("the warm runtime asked to reap no process", EPROTO);
            if (m.reap.kill) (void)sys::pidfd_send_signal(child.pidfd, SIGKILL);
            answer(conn, Kind::exited, reap(child));
            break;
        case Kind::wait:
            if (child.pidfd < 0) fail("the warm runtime asked to wait for no process", EPROTO);
            forward(conn, child);
            break;
        case Kind::exit: ::_exit(m.result.value);
        default: fail("the warm runtime sent a message the front does not know", EPROTO);
        }
    }
}
