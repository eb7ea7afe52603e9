// `nsfork run`: launch on a private or a shared server, forward signals, exit with the status.
#include "base/exit_codes.h"
#include "base/pidfd.hpp"
#include "cli/json.hpp"
#include "cli/verbs.hpp"
#include "protocol/client.hpp"
#include "server/server.hpp"

#include <fmt/format.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <optional>

extern char** environ;

namespace nsfork::cli {

namespace {

// Signals `run` passes on to the container instead of dying of them.
constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT};

// Waits for the container's end, forwarding signals to its init (which forwards them to the
// command) through the pidfd the launch handed us.
Result<ExitStatus> wait_forwarding(Client& client, const Container& ct, int sigfd) {
    auto seq = client.send_wait(ct.id());
    if (!seq) return std::move(seq).error();
    for (;;) {
        pollfd fds[2] = {{client.native_handle(), POLLIN, 0}, {sigfd, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return sys_error(Errc::internal, "poll failed", errno);
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si;
            if (::read(sigfd, &si, sizeof si) == sizeof si)
                (void)signal_pidfd(ct.pidfd(), static_cast<int>(si.ssi_signo));
        }
        if (fds[0].revents) return client.receive_wait(*seq);
    }
}

// A private server (forked now, while we have one thread) or a connection to a running one.
Result<Client> server_for(const RunOptions& o) {
    if (!o.socket.empty()) return Client::connect(o.socket);
    ServerOptions so;
    so.log_level = "warn";
    so.warm_pool = 0; // one launch: warming a namespace ahead would only cost
    return start_server_before_threads(so); // we have one thread: this is main()
}

// What to launch, from the options and our own environment and working directory.
LaunchOptions launch_options(const RunOptions& o) {
    LaunchOptions lo;
    lo.id = o.id;
    lo.argv = o.command;
    std::vector<std::string> inherited;
    for (char** e = environ; *e; ++e) inherited.emplace_back(*e);
    lo.env = container_env(o, inherited);
    if (!o.cwd.empty()) lo.cwd = o.cwd;
    else if (char* here = ::getcwd(nullptr, 0)) {
        lo.cwd = here;
        std::free(here);
    }
    // A detached container must not hold our stdout: `id=$(nsfork run --detach …)` would hang.
    if (!o.detach) lo.stdio = {0, 1, 2};
    if (o.pid_max) lo.pid_max = *o.pid_max;
    lo.parent = o.parent;
    lo.share_pid_namespace = o.share_pidns;
    return lo;
}

} // namespace

int run(const RunOptions& o) {
    auto client = server_for(o);
    if (!client) return fail(client.error());

    // Forwarded signals are blocked (after the private server was forked, which must not inherit
    // the mask) and read from a signalfd, so none is lost between launch and wait. Without the
    // signalfd a signal would reach nobody: the run does not start rather than run deaf.
    sigset_t forwarded;
    ::sigemptyset(&forwarded);
    for (int sig : kForwarded) ::sigaddset(&forwarded, sig);
    ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    UniqueFd sigfd(::signalfd(-1, &forwarded, SFD_CLOEXEC));
    if (!sigfd) return fail(sys_error(Errc::internal, "cannot forward signals: signalfd failed", errno));

    LaunchOptions lo = launch_options(o);
    UniqueFd join;
    if (!o.join_pidns.empty()) {
        join.reset(::open(o.join_pidns.c_str(), O_RDONLY | O_CLOEXEC));
        if (!join) return fail(sys_error(Errc::bad_request, "cannot open " + o.join_pidns, errno));
        lo.join_pidns_fd = join.get();
    }
    auto ct = client->launch(lo);
    if (!ct) return fail(ct.error());

    if (o.detach) {
        if (o.json) fmt::print("{}\n", to_json(ct->info()));
        else fmt::print("{}\n", ct->id());
        return 0;
    }
    auto status = wait_forwarding(*client, *ct, sigfd.get());
    if (!status) return fail(status.error());
    if (!o.socket.empty()) { // forget it on a shared server; a private one ends with us anyway
        auto gone = client->destroy(ct->id());
        if (gone && o.json) fmt::print("{}\n", to_json(*gone));
    } else if (o.json) {
        ContainerInfo info = ct->info();
        info.state = State::exited;
        info.exit = *status;
        fmt::print("{}\n", to_json(info));
    }
    return status->shell_code();
}

} // namespace nsfork::cli
