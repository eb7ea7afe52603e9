#include "oci/warm.hpp"

#include "base/pidfd.hpp"
#include "base/syscalls.hpp"
#include "nsfork/fd.hpp"
#include "oci/front_link.hpp"
#include "oci/front_wire.hpp"
#include "oci/options.hpp"
#include "oci/resources.hpp"
#include "oci/spec.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <map>
#include <string_view>

namespace nsfork::oci::warm {

namespace {

std::string g_served;
std::optional<Client> g_server; // a fork's connection to it, made before its front came

// What a process is and may do, as far as a warm runtime's acting for it goes: its pid, user
// and cgroup namespaces (the links of /proc/PID/ns), and the lines of /proc/PID/status that say
// what it may do (user and group ids, capabilities, no_new_privs, seccomp). Its mount namespace
// and root are not in it: the warm runtime takes the caller's mount namespace on (a server run
// by systemd with ProtectSystem= has one of its own), and then checks that the caller's root is
// that namespace's.
struct Identity {
    std::string namespaces, powers;
    bool operator==(const Identity&) const = default;
};

std::optional<Identity> identity_of(const std::string& proc) {
    Identity id;
    for (const char* ns : {"/ns/pid", "/ns/user", "/ns/cgroup"}) {
        char link[64];
        const ssize_t n = ::readlink((proc + ns).c_str(), link, sizeof link);
        if (n <= 0) return std::nullopt;
        id.namespaces.append(link, static_cast<std::size_t>(n)).push_back(' ');
    }
    UniqueFd status(::open((proc + "/status").c_str(), O_RDONLY | O_CLOEXEC));
    char text[4096];
    const ssize_t n = status ? ::read(status.get(), text, sizeof text - 1) : -1;
    if (n <= 0) return std::nullopt;
    std::string_view rest(text, static_cast<std::size_t>(n));
    while (!rest.empty()) {
        const std::string_view line = rest.substr(0, rest.find('\n'));
        rest.remove_prefix(std::min(rest.size(), line.size() + 1));
        for (std::string_view key : {"Uid:", "Gid:", "CapPrm:", "CapEff:", "CapBnd:", "NoNewPrivs:", "Seccomp:"})
            if (line.substr(0, key.size()) == key) id.powers.append(line).push_back('\n');
    }
    return id;
}

std::optional<Identity> g_ours; // the keeper's, read once

bool same_file(const std::string& a, const std::string& b) {
    struct stat sa{}, sb{};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// Takes on the surroundings of the process behind `pidfd` (the peer of our connection, `pid`)
// where what we would do for it is then what its own full program would do (see warm.hpp): its
// mount namespace, whose root must be its root. False, with nothing taken on but possibly that
// namespace, where not.
bool become_like(pid_t pid, int pidfd) {
    // The pid is the kernel's (SO_PEERCRED); the pidfd, the process's own, says at the end that
    // it did not exit meanwhile, so that what /proc said under that pid was said of it.
    if (!g_ours || pid <= 0) return false;
    const std::string proc = "/proc/" + std::to_string(pid);
    const auto theirs = identity_of(proc);
    if (!theirs || *theirs != *g_ours) return false;
    if (!same_file(proc + "/ns/mnt", "/proc/self/ns/mnt") && ::setns(pidfd, CLONE_NEWNS) < 0) return false;
    return same_file(proc + "/root", "/") && pid_of_pidfd(pidfd) == pid;
}

// What a warm runtime does for its first front, done ahead on a made-up one, in the fork and
// off anyone's path: the code and the heap the command line's and config.json's parses touch
// are then its own (a fork shares its parent's pages until it writes them), not faulted in
// while a caller waits.
void rehearse() {
    (void)parse_command_line({"nsfork-oci", "--root", "/nonexistent", "run", "--bundle", "/nonexistent", "rehearsal"}, nullptr);
    (void)parse_config(R"({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"args": ["/bin/true"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
                    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true},
        "hostname": "rehearsal",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}],
                  "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
                  "resources": {"devices": [{"allow": false, "access": "rwm"}]}}})",
                       "/nonexistent");
}

// One front's command, from its Request to the answer it exits with.
// What a fork tells its keeper, through a pipe (a record is written at once: < PIPE_BUF).
struct Event {
    pid_t pid;
    char what; // 'a': it accepted a front; 'e': it is done with it
};

void tell(int keeper, char what) {
    const Event e{::getpid(), what};
    (void)!::write(keeper, &e, sizeof e);
}

int serve(int listener, int keeper, Command command) {
    int accepted;
    do accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    while (accepted < 0 && errno == EINTR);
    ::close(listener);
    tell(keeper, 'a');
    if (accepted < 0) return 1;
    UniqueFd conn(accepted);

    static char buf[front::kMaxRequest + 1];
    int got[5];
    std::size_t count = 0;
    int flags = 0;
    const ssize_t n = sys::recv_with_fds(conn.get(), buf, sizeof buf - 1, got, 5, &count, &flags);
    UniqueFd fds[5];
    for (std::size_t i = 0; i < count; ++i) fds[i].reset(got[i]);
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) cred.pid = 0;
    front::Link link(std::move(conn), cred.pid);

    front::RequestHeader h;
    if (n < static_cast<ssize_t>(sizeof h) || count != 5 || (flags & (MSG_TRUNC | MSG_CTRUNC))) {
        link.fallback();
        return 0;
    }
    std::memcpy(&h, buf, sizeof h);
    buf[n] = '\0';
    std::vector<std::string> argv, env;
    for (std::size_t at = sizeof h, i = 0; at < static_cast<std::size_t>(n) && i < std::size_t{h.argc} + h.envc; ++i) {
        const std::size_t l = std::strlen(buf + at);
        (i < h.argc ? argv : env).emplace_back(buf + at, l);
        at += l + 1;
    }
    if (h.kind != front::Kind::request || h.version != front::kVersion || argv.size() != h.argc || env.size() != h.envc ||
        argv.empty() || !become_like(cred.pid, fds[0].get())) {
        link.fallback();
        return 0;
    }

    // The rest of the caller's surroundings, as its own full program would have had them.
    ::clearenv();
    for (const std::string& e : env) ::putenv(::strdup(e.c_str()));
    ::tzset(); // TZ may differ
    if (::fchdir(fds[1].get()) < 0) {
        link.fallback();
        return 0;
    }
    ::umask(static_cast<mode_t>(h.umask));
    for (int fd = 0; fd < 3; ++fd) ::dup2(fds[2 + fd].get(), fd);
    set_caller_cgroups(cred.pid);

    front::set_link(&link);
    const int code = command(argv);
    front::set_link(nullptr);
    std::fflush(nullptr);
    if (code == kFallback || link.fallback_wanted()) link.fallback();
    else link.exit(code);
    tell(keeper, 'e');
    return 0;
}

// The keeper: forks that wait in accept(), kWarm of them where it can. A fork that accepts is
// replaced at once only when none is left waiting; otherwise once it is done with its front, so
// that the next one's rehearsal does not run beside a create. A fork that cannot be made while
// none waits closes the socket: the fronts queued on it see their connection reset and run the
// full program, as they do where nothing listens.
class Keeper {
public:
    Keeper(UniqueFd listener, std::string path, Command command)
        : listener_(std::move(listener)), path_(std::move(path)), command_(command) {}

    int run() {
        int pipe[2];
        if (::pipe2(pipe, O_CLOEXEC) < 0) return 1;
        events_.reset(pipe[0]);
        events_in_.reset(pipe[1]);
        sigset_t set;
        ::sigemptyset(&set);
        for (int sig : {SIGCHLD, SIGTERM, SIGINT}) ::sigaddset(&set, sig);
        ::sigprocmask(SIG_BLOCK, &set, &mask_);
        signals_.reset(::signalfd(-1, &set, SFD_CLOEXEC));
        if (!signals_) return 1;
        top_up();
        for (;;) {
            pollfd fds[2] = {{events_.get(), POLLIN, 0}, {signals_.get(), POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return 1;
            }
            if (fds[0].revents & POLLIN) {
                Event e{};
                if (::read(events_.get(), &e, sizeof e) == sizeof e && forks_.count(e.pid)) {
                    if (e.what == 'a') forks_[e.pid] = false;
                    if (e.what == 'a' ? waiting() == 0 : waiting() < kWarm) top_up(1);
                }
            }
            if (fds[1].revents & POLLIN) {
                signalfd_siginfo info{};
                if (::read(signals_.get(), &info, sizeof info) != sizeof info) continue;
                for (pid_t pid; (pid = ::waitpid(-1, nullptr, WNOHANG)) > 0;) forks_.erase(pid);
                if (info.ssi_signo != SIGCHLD) return stop();
                if (waiting() == 0) top_up(1); // one that waited died
            }
        }
    }

private:
    std::size_t waiting() const {
        std::size_t n = 0;
        for (const auto& [pid, idle] : forks_) n += idle;
        return n;
    }

    void top_up(std::size_t most = kWarm) {
        for (std::size_t made = 0; listener_ && waiting() < kWarm && made < most; ++made)
            if (!fork_one()) {
                if (waiting() > 0) return;
                std::fprintf(stderr, "nsfork-oci: no warm runtimes from now on: cannot fork one: %s\n", std::strerror(errno));
                ::unlink(path_.c_str());
                listener_.reset();
            }
    }

    bool fork_one() {
        const pid_t keeper = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) return false;
        if (pid > 0) {
            forks_[pid] = true;
            return true;
        }
        signals_.reset();
        events_.reset();
        ::sigprocmask(SIG_SETMASK, &mask_, nullptr);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != keeper) ::_exit(0);
        rehearse();
        // Connected ahead too: the server's accept is then not on the create's path either.
        if (auto server = Client::connect(g_served)) g_server.emplace(std::move(*server));
        const int code = serve(listener_.release(), events_in_.get(), command_);
        std::fflush(nullptr);
        ::_exit(code);
    }

    // Asked to stop (the server's own stop): the forks go first, reaped, so that none is left to
    // whoever would inherit it.
    int stop() {
        ::unlink(path_.c_str());
        for (const auto& [pid, idle] : forks_) ::kill(pid, SIGKILL);
        for (const auto& [pid, idle] : forks_) ::waitpid(pid, nullptr, 0);
        return 0;
    }

    UniqueFd listener_;
    std::string path_;
    Command command_;
    UniqueFd events_, events_in_, signals_;
    sigset_t mask_{};
    std::map<pid_t, bool> forks_; // unreaped, and whether each still waits for a front
};

} // namespace

const std::string& served_socket() { return g_served; }

std::optional<Client> take_server_connection(const std::string& socket) {
    std::optional<Client> made;
    if (g_server && socket == g_served) made.swap(g_server);
    return made;
}

int keep(const std::string& server_socket, Command command) {
    g_served = server_socket;
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) return 1; // the server is gone already
    const std::string path = server_socket + front::kSocketSuffix;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        std::fprintf(stderr, "nsfork-oci: no warm runtimes: the socket path %s is too long\n", path.c_str());
        return 1;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    ::unlink(path.c_str());
    const mode_t umask = ::umask(077);
    const bool bound = listener && ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::umask(umask);
    if (!bound || ::listen(listener.get(), 64) < 0) {
        std::fprintf(stderr, "nsfork-oci: no warm runtimes: cannot listen at %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    ::tzset(); // what every fork would otherwise read: /etc/localtime
    g_ours = identity_of("/proc/self");
    return Keeper(std::move(listener), path, command).run();
}

} // namespace nsfork::oci::warm
