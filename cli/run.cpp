// `nsfork run`: launch a command, forward signals, relay its terminal, exit with its status.
//
// Without --socket no server is involved: the command line clones the container itself
// (cli/local.hpp) and the command runs in the caller's session, on the caller's terminal, in
// the foreground while it runs. With --socket a server launches it, in a session of its own.
#include "base/pidfd.hpp"
#include "base/userns.hpp"
#include "cli/forwarded_signals.h"
#include "cli/json.hpp"
#include "cli/local.hpp"
#include "cli/terminal.hpp"
#include "cli/users.hpp"
#include "cli/verbs.hpp"
#include "launcher/job_control.hpp"
#include "nsfork/client.hpp"
#include "server/ids.hpp"

#include <fmt/format.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <optional>

extern char** environ;

namespace nsfork::cli {

namespace {

// Signals `run` passes on to the container instead of dying of them.
constexpr int kForwarded[] = {NSFORK_FORWARDED_SIGNALS};

// With --die-with-parent, what the kernel sends us when our parent dies: one of the forwarded
// signals, so it arrives on the signalfd, where getppid() tells it from one sent by hand.
constexpr int kParentDeathSignal = SIGTERM;

// What the caller's process gives its children that nsfork run passes on to the command, read
// before nsfork changes its own: blocked and ignored signals (bit N-1: signal N).
struct Inherited {
    std::uint64_t signal_mask = 0, ignored_signals = 0;
};

Inherited inherited_signals() {
    Inherited in;
    nsfork_inherited_signals(&in.signal_mask, &in.ignored_signals);
    return in;
}

// Socket activation (sd_listen_fds(3)): how many fds from 3 on our LISTEN_* variables pass us;
// 0 when they name another process (stale: removed from `env`, or the shim's rewrite of
// LISTEN_PID would make them look meant for the command).
unsigned socket_activation(std::vector<std::string>& env) {
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    if (!pid) return 0;
    if (fds && std::to_string(::getpid()) == pid) return static_cast<unsigned>(std::strtoul(fds, nullptr, 10));
    std::erase_if(env, [](const std::string& e) {
        return e.starts_with("LISTEN_PID=") || e.starts_with("LISTEN_FDS=") || e.starts_with("LISTEN_FDNAMES=");
    });
    return 0;
}

// Our fds 3..3+count-1, each checked open (`why` names the option that asked for it).
Result<std::vector<int>> passed_fds(unsigned count, const std::string& why) {
    std::vector<int> fds;
    for (int fd = 3; fd < 3 + static_cast<int>(count); ++fd) {
        if (::fcntl(fd, F_GETFD) < 0)
            return Error{Errc::bad_request, fmt::format("{}: fd {} is not open", why, fd), EBADF};
        fds.push_back(fd);
    }
    return fds;
}

// Our stdin or stdout if it is a terminal, the one whose window size the command's follows.
int our_terminal() {
    if (::isatty(0)) return 0;
    if (::isatty(1)) return 1;
    return -1;
}

// What to launch, from the options, the caller's environment, working directory and signals.
Result<LaunchOptions> launch_options(const RunOptions& o, const Inherited& in) {
    LaunchOptions lo;
    lo.id = o.id;
    lo.argv = o.command;
    std::vector<std::string> inherited;
    for (char** e = environ; *e; ++e) inherited.emplace_back(*e);
    const unsigned listen = socket_activation(inherited);
    lo.env = container_env(o, inherited);
    // Checked before anything of ours is opened: an fd of nsfork's must never pass for one.
    auto fds = o.preserve_fds >= listen ? passed_fds(o.preserve_fds, fmt::format("--preserve-fds {}", o.preserve_fds))
                                        : passed_fds(listen, fmt::format("LISTEN_FDS={}", listen));
    if (!fds) return std::move(fds).error();
    lo.extra_fds = std::move(*fds);
    if (!o.cwd.empty()) lo.cwd = o.cwd;
    else if (char* here = ::getcwd(nullptr, 0)) {
        lo.cwd = here;
        std::free(here);
    }
    // A detached container must not hold our stdout: `id=$(nsfork run --detach …)` would hang.
    if (!o.detach && !o.tty) lo.stdio = {0, 1, 2};
    if (o.pid_max) lo.pid_max = *o.pid_max;
    lo.parent = o.parent;
    lo.share_pid_namespace = o.share_pidns;
    lo.tty = o.tty;
    winsize size{}; // the container's terminal starts with our window size, followed from then on
    if (const int ours = our_terminal(); o.tty && ours >= 0 && ::ioctl(ours, TIOCGWINSZ, &size) == 0) {
        lo.tty_rows = size.ws_row;
        lo.tty_cols = size.ws_col;
    }
    lo.kill_group = o.kill_group;
    lo.signal_mask = in.signal_mask;
    lo.ignored_signals = in.ignored_signals;
    auto who = resolve_identity(o.user, o.groups);
    if (!who) return std::move(who).error();
    lo.uid = who->uid;
    lo.gid = who->gid;
    lo.groups = std::move(who->groups);
    return lo;
}

// Forwarded signals are blocked and read from a signalfd, so that none is lost between launch
// and wait. Without the signalfd a signal would reach nobody: the run does not start rather
// than run deaf.
Result<UniqueFd> forwarded_signals() {
    sigset_t forwarded;
    ::sigemptyset(&forwarded);
    for (int sig : kForwarded) ::sigaddset(&forwarded, sig);
    ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    UniqueFd fd(::signalfd(-1, &forwarded, SFD_CLOEXEC));
    if (!fd) return sys_error(Errc::internal, "cannot forward signals: signalfd failed", errno);
    return fd;
}

// --die-with-parent: the kernel signals us when the parent we saw dies. Refused when it did
// already (we were reparented before the request took).
Result<void> watch_parent(pid_t parent) {
    if (::prctl(PR_SET_PDEATHSIG, kParentDeathSignal) < 0)
        return sys_error(Errc::internal, "--die-with-parent: prctl(PR_SET_PDEATHSIG) failed", errno);
    if (::getppid() != parent) return Error{Errc::invalid_state, "--die-with-parent: our parent has died already"};
    return {};
}


// What ended the wait.
enum class Ended { container, parent_died };

// The wait for a container's end: signals forwarded, job control with the shim, the relay of
// its terminal.
struct Watch {
    int end_fd = -1;             // readable once the container ended
    int sigfd = -1;
    int job_fd = -1;             // the shim's job-control channel, -1: none
    ForegroundTerminal* terminal = nullptr;
    Relay* relay = nullptr;
    int window_from = -1;        // with the relay: our terminal
    pid_t parent = 0;            // --die-with-parent: the parent we saw
    int init_pidfd = -1;         // forwarded signals go there: the shim passes them on

    bool stopped = false;        // we stopped with the command, not yet continued

    Result<Ended> run();
    std::optional<Ended> on_signal(int sig);
    void on_job_event();
};

Result<Ended> Watch::run() {
    for (;;) {
        pollfd fds[5];
        int n = 0;
        fds[n++] = {end_fd, POLLIN, 0};
        fds[n++] = {sigfd, POLLIN, 0};
        const int job = job_fd >= 0 ? n : -1;
        if (job_fd >= 0) fds[n++] = {job_fd, POLLIN, 0};
        const int relayed = n;
        if (relay) n += relay->poll_set(fds + n);
        if (::poll(fds, static_cast<nfds_t>(n), -1) < 0) {
            if (errno == EINTR) continue; // SIGCONT after a stop, for one
            return sys_error(Errc::internal, "poll failed", errno);
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si;
            if (::read(sigfd, &si, sizeof si) == sizeof si)
                if (auto ended = on_signal(static_cast<int>(si.ssi_signo))) return *ended;
        }
        if (job >= 0 && fds[job].revents) on_job_event();
        if (relay) relay->handle(fds + relayed, n - relayed);
        if (fds[0].revents) {
            if (relay) relay->drain();
            return Ended::container;
        }
    }
}

std::optional<Ended> Watch::on_signal(int sig) {
    if (parent && sig == kParentDeathSignal && ::getppid() != parent) return Ended::parent_died;
    if (sig == SIGWINCH && relay) { // the kernel tells the command, from the master's new size
        copy_window_size(window_from, relay->master());
        return std::nullopt;
    }
    if (sig == SIGCONT && stopped && job_fd >= 0) {
        // `fg` gave us the terminal: the shim gives the command the foreground again; after
        // `bg` the command goes on in the background, as we do.
        stopped = false;
        const bool fg = terminal && terminal->ours();
        if (send_job_event(job_fd, fg ? NSFORK_JOB_CONTINUE : NSFORK_JOB_CONTINUE_BACKGROUND)) {
            if (fg) terminal->given();
            return std::nullopt;
        }
    }
    (void)signal_pidfd(init_pidfd, sig);
    return std::nullopt;
}

// The command stopped (^Z, SIGTTIN...): the shell sees its job stop when we do. We take the
// terminal back first, as the shell expects its job's group to hold it.
void Watch::on_job_event() {
    auto ev = receive_job_event(job_fd);
    if (!ev || !*ev) {
        job_fd = -1; // the shim is gone (its exit comes on end_fd)
        return;
    }
    if ((*ev)->kind != NSFORK_JOB_STOPPED) return;
    if (terminal) terminal->take_back();
    stopped = true;
    nsfork_stop_self((*ev)->signal); // launcher/job_control.h
}

// How a run ended: its status, and the container as --json prints it.
struct Outcome {
    ExitStatus status;
    ContainerInfo info;
    bool detached = false;
};

// -t: the container's terminal relayed to ours, ours in raw mode (restored when this goes).
struct Relayed {
    std::optional<RawMode> raw;
    std::optional<Relay> relay;
    int window_from = -1;

    Result<void> start(UniqueFd master) {
        if (!master) return Error{Errc::internal, "the launch of a terminal (-t) handed back no terminal"};
        window_from = our_terminal();
        copy_window_size(window_from, master.get());
        if (::isatty(0)) {
            auto mode = RawMode::enter(0);
            if (!mode) return std::move(mode).error();
            raw.emplace(std::move(*mode));
        }
        relay.emplace(0, 1, std::move(master));
        return {};
    }
};

// Without --socket: the container is ours, cloned here.
Result<Outcome> run_local(const RunOptions& o, LaunchOptions lo, int sigfd, pid_t parent) {
    LaunchSpec spec;
    spec.argv = std::move(lo.argv);
    spec.env = std::move(lo.env);
    spec.cwd = lo.cwd.empty() ? "/" : lo.cwd;
    spec.stdio = lo.stdio;
    spec.pid_max = lo.pid_max;
    spec.tty = lo.tty;
    spec.tty_rows = lo.tty_rows;
    spec.tty_cols = lo.tty_cols;
    spec.kill_group = lo.kill_group;
    spec.signal_mask = lo.signal_mask;
    spec.ignored_signals = lo.ignored_signals;
    spec.uid = lo.uid;
    spec.gid = lo.gid;
    spec.groups = std::move(lo.groups);
    spec.extra_fds = std::move(lo.extra_fds);
    // The caller's session (its terminal, its job control) unless asked otherwise; a terminal of
    // its own (-t) comes with a session of its own.
    spec.new_session = o.new_session || o.tty;
    ForegroundTerminal terminal = spec.new_session ? ForegroundTerminal() : ForegroundTerminal::of_caller();
    spec.foreground = bool(terminal);

    UniqueFd join;
    LocalPlacement where{.share_pid_namespace = o.share_pidns};
    if (!o.join_pidns.empty()) {
        join.reset(::open(o.join_pidns.c_str(), O_RDONLY | O_CLOEXEC));
        if (!join && (errno == EACCES || errno == EPERM) && in_user_namespace())
            return Error{Errc::not_permitted,
                         "cannot join " + o.join_pidns + " without a server: without root each nsfork run has a user "
                         "namespace of its own, with no privilege over another's; launch both through one "
                         "`nsfork serve` (--socket)", errno};
        if (!join) return sys_error(Errc::bad_request, "cannot open " + o.join_pidns, errno);
        where.join_fd = join.get();
    }
    // SIGCHLD ignored (inherited so) would have the kernel reap the shim before we could.
    ::signal(SIGCHLD, SIG_DFL);
    if (spec.foreground) terminal.given(); // from its launch on, until it stops or ends
    auto ct = LocalContainer::launch(std::move(spec), where);
    if (!ct) return std::move(ct).error();

    Outcome out;
    out.info.id = o.id.empty() ? fmt::format("nsfork-{}-1", ::getpid()) : o.id;
    out.info.pid = ct->pid();
    if (o.json) out.info.pidns = ct->pidns();
    Relayed relayed;
    if (o.tty)
        if (auto ok = relayed.start(ct->take_terminal()); !ok) return std::move(ok).error();
    Watch watch{.end_fd = ct->pidfd(),
                .sigfd = sigfd,
                .job_fd = terminal ? ct->job_channel() : -1,
                .terminal = &terminal,
                .relay = relayed.relay ? &*relayed.relay : nullptr,
                .window_from = relayed.window_from,
                .parent = parent,
                .init_pidfd = ct->pidfd()};
    auto ended = watch.run();
    if (!ended) return std::move(ended).error();
    if (*ended == Ended::parent_died) ct->kill();
    auto status = ct->wait();
    if (!status) return std::move(status).error();
    out.status = *status;
    out.info.state = State::exited;
    out.info.exit = *status;
    return out;
}

// With --socket: a server launches it (in a session of its own: a server's children cannot
// join ours).
Result<Outcome> run_on_server(const RunOptions& o, LaunchOptions lo, Client& client, int sigfd, pid_t parent) {
    UniqueFd join;
    if (!o.join_pidns.empty()) {
        join.reset(::open(o.join_pidns.c_str(), O_RDONLY | O_CLOEXEC));
        if (!join) return sys_error(Errc::bad_request, "cannot open " + o.join_pidns, errno);
        lo.join_pidns_fd = join.get();
    }
    // Our death, SIGKILL included, closes the connection: the server then destroys it.
    lo.tie_to_connection = o.die_with_parent;
    lo.destroy_on_exit = !o.detach; // one request: the server says when it is gone
    auto ct = client.launch(lo);
    if (!ct) return std::move(ct).error();
    Outcome out;
    out.info = ct->info();
    if (o.detach) {
        out.detached = true;
        return out;
    }
    Relayed relayed;
    if (o.tty)
        if (auto ok = relayed.start(ct->release_terminal()); !ok) return std::move(ok).error();
    // From a server that does not destroy it at its end: a Wait now, a Destroy after.
    Result<std::uint32_t> seq = 0u;
    if (!ct->end_seq()) seq = client.send_wait(ct->id());
    if (!seq) return std::move(seq).error();
    Watch watch{.end_fd = client.native_handle(),
                .sigfd = sigfd,
                .relay = relayed.relay ? &*relayed.relay : nullptr,
                .window_from = relayed.window_from,
                .parent = parent,
                .init_pidfd = ct->pidfd()};
    auto ended = watch.run();
    if (!ended) return std::move(ended).error();
    if (*ended == Ended::parent_died) {
        auto gone = client.destroy(ct->id());
        if (!gone) return std::move(gone).error();
        out.info = *gone;
        out.status = gone->exit.value_or(ExitStatus{0, SIGKILL});
        return out;
    }
    if (ct->end_seq()) {
        auto gone = client.ended(*ct);
        if (!gone) return std::move(gone).error();
        if (!gone->exit) return Error{Errc::protocol, "the server's last word on container '" + ct->id() + "' has no exit status"};
        out.info = *gone;
        out.status = *gone->exit;
        return out;
    }
    auto status = client.receive_wait(*seq);
    if (!status) return std::move(status).error();
    out.status = *status;
    // Forgotten on the server: it was ours alone.
    auto gone = client.destroy(ct->id());
    if (gone) out.info = *gone;
    else out.info.exit = *status;
    return out;
}

} // namespace

int run(const RunOptions& o) {
    const Inherited inherited = inherited_signals(); // before we change ours
    const pid_t parent = o.die_with_parent ? ::getppid() : 0;
    if (!o.id.empty())
        if (auto ok = validate_id(o.id); !ok) return fail(ok.error());
    auto lo = launch_options(o, inherited);
    if (!lo) return fail(lo.error());
    // Our own signals now: none of the command's business (it got the caller's above).
    ::signal(SIGPIPE, SIG_IGN); // a relay whose reader went away is told by EPIPE

    Result<Outcome> out = Error{};
    if (o.socket.empty()) {
        // Rootless: a user namespace of our own first, in which we may make the others.
        if (auto ok = enter_user_namespace(o.map_current_user ? UserMapping::current_user : UserMapping::root); !ok)
            return fail(ok.error());
        auto sigfd = forwarded_signals();
        if (!sigfd) return fail(sigfd.error());
        if (parent)
            if (auto ok = watch_parent(parent); !ok) return fail(ok.error());
        out = run_local(o, std::move(*lo), sigfd->get(), parent);
    } else {
        auto client = Client::connect(o.socket);
        if (!client) return fail(client.error());
        auto sigfd = forwarded_signals();
        if (!sigfd) return fail(sigfd.error());
        if (parent)
            if (auto ok = watch_parent(parent); !ok) return fail(ok.error());
        out = run_on_server(o, std::move(*lo), *client, sigfd->get(), parent);
    }
    // Only now, with the terminal ours again and out of raw mode, do we say anything.
    if (!out) return fail(out.error());
    if (o.json) fmt::print("{}\n", to_json(out->info));
    else if (out->detached) fmt::print("{}\n", out->info.id);
    return out->detached ? 0 : out->status.shell_code();
}

} // namespace nsfork::cli
