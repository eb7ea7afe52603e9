// How a server comes to life: its start (checks, cgroup root, warm pool, socket), run_server for
// `nsfork serve`, and start_server_before_threads for agents that embed one.
#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "server/loop.hpp"

#include "base/pidfd.hpp"
#include "base/procfs.hpp"
#include "base/syscalls.hpp"
#include "base/unix_socket.hpp"
#include "base/userns.hpp"
#include "protocol/messages.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstring>

namespace nsfork {

using boost::system::error_code;

namespace {

// Tells the embedding client on `initial` why its server did not start, as the Error reply to
// its first request (seq 0 answers any).
void tell_initial(int initial, const Error& e) {
    flatbuffers::FlatBufferBuilder fbb(256);
    write_error_reply(fbb, 0, e);
    (void)send_datagram(initial, {fbb.GetBufferPointer(), fbb.GetSize()}, {});
}

} // namespace

Result<void> Server::start(UniqueFd initial) {
    UniqueFd activated(opts_.listen_fd); // ours from here on, whether we start or not
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "nsfork", std::make_shared<spdlog::sinks::stderr_sink_st>()));
    spdlog::set_pattern("nsfork[%P] %L %v");
    spdlog::set_level(spdlog::level::from_str(opts_.log_level));

    auto fail = [&](Error e) -> Result<void> {
        spdlog::error("{}", e.message);
        if (initial) tell_initial(initial.get(), e);
        return e;
    };
    if (opts_.log_level != "off" && spdlog::get_level() == spdlog::level::off)
        return fail(Error{Errc::bad_request, "unknown log level '" + opts_.log_level +
                                                 "' (trace, debug, info, warn, error, critical, off)"});
    auto host = check_host(opts_);
    if (!host) return fail(std::move(host).error());
    host_ = std::move(*host);
    auto table = StatusTableWriter::create();
    if (!table) return fail(std::move(table).error());
    table_.emplace(std::move(*table));
    // Without root, cgroups only inside a subtree delegated to our user; else none, and destroy
    // is by pid namespace (the kernel kills a namespace with its init).
    if (std::string why = cgroup_delegation_refusal(opts_.cgroup_root); !why.empty()) {
        // Normal without root (no delegation), worth a warning with it.
        spdlog::log(in_user_namespace() ? spdlog::level::info : spdlog::level::warn,
                    "no cgroups: {}; launches that share a pid namespace will be refused", why);
        cgroups_.no_cgroup_reason = std::move(why);
    } else {
        cgroups_ = setup_cgroup_root(opts_.cgroup_root);
    }
    const std::string root_path = cgroups_.root ? cgroups_.root->path() : std::string();
    device_programs_.emplace(root_path);
    facts_ = ServerFacts{.own_pidns = host_.own_pidns_ino,
                         .isolation = opts_.isolation,
                         .disallow_sharing_agent_pidns = opts_.disallow_sharing_agent_pidns,
                         .per_namespace_pid_max = host_.per_namespace_pid_max,
                         .cgroup_root = cgroups_.root ? std::string_view(cgroups_.root->path()) : std::string_view(),
                         .no_cgroup_reason = cgroups_.no_cgroup_reason,
                         .own_pidns_refusal = own_pid_namespace_refusal()};
    if (opts_.warm_pool > 0 && opts_.isolation.pid && opts_.isolation.filesystem) {
        pool_.emplace(io_,
                      WarmPool::Config{opts_.warm_pool, host_.shim, cgroups_.root ? &*cgroups_.root : nullptr,
                                       [this] { return launches_in_flight_ > 0 || holds_setting_up_ > 0; },
                                       [this] { return next_cgroup_name(); }},
                      [this] { maybe_stop(); });
        pool_->start();
    }
    // Before the socket listens: a SIGTERM sent once a client could connect (a service manager's
    // stop, a test's) must find the handler, not the default action, which would leave the
    // cgroup tree and the containers behind. Delivered from io_.run() on, as shutdown().
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.async_wait([this](error_code ec, int sig) {
        if (!ec) shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
    });
    if (activated || !opts_.socket_path.empty()) {
        listener_.emplace(io_, PeerPolicy(host_.own_pidns_ino, root_path),
                          [this](UniqueFd fd) { add_connection(std::move(fd)); });
        if (activated) listener_->adopt(std::move(activated), opts_.socket_path);
        else if (auto ok = listener_->listen(opts_.socket_path); !ok) return fail(std::move(ok).error());
    }
    if (initial) add_connection(std::move(initial));
    start_warm_runtimes();
    spare_leaves_soon();
    spdlog::debug("server {} ready, shim {}", ::getpid(), host_.shim);
    return {};
}

void Server::start_warm_runtimes() {
    if (!opts_.warm_runtimes || opts_.socket_path.empty()) return;
    char exe[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    const std::string self(exe, static_cast<std::size_t>(n));
    const std::string oci = self.substr(0, self.rfind('/') + 1) + "nsfork-oci";
    if (::access(oci.c_str(), X_OK) < 0) return spdlog::debug("no warm nsfork-oci runtimes: no {}", oci);
    posix_spawnattr_t attr;
    ::posix_spawnattr_init(&attr);
    sigset_t none, all;
    ::sigemptyset(&none);
    ::sigfillset(&all);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &all);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const char* argv[] = {oci.c_str(), "--nsfork-warm", opts_.socket_path.c_str(), nullptr};
    pid_t pid = -1;
    const int err = ::posix_spawn(&pid, oci.c_str(), nullptr, &attr, const_cast<char* const*>(argv), environ);
    ::posix_spawnattr_destroy(&attr);
    if (err) return spdlog::warn("no warm nsfork-oci runtimes: cannot start {}: {}", oci, std::strerror(err));
    // Our unreaped child: its pid is its own until we reap it.
    UniqueFd pidfd(sys::pidfd_open(pid, 0));
    if (!pidfd) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return spdlog::warn("no warm nsfork-oci runtimes: pidfd_open: {}", std::strerror(errno));
    }
    keeper_.emplace(io_, pidfd.release());
    keeper_->async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
        if (ec || !keeper_) return;
        (void)reap(keeper_->native_handle());
        keeper_.reset();
        spdlog::warn("the warm nsfork-oci runtimes ended: nsfork-oci runs without them");
    });
    spdlog::debug("warm nsfork-oci runtimes at {}.oci (keeper {})", opts_.socket_path, pid);
}

void Server::stop_warm_runtimes() {
    if (!keeper_) return;
    // Its socket first, so that no front connects to a runtime about to go.
    ::unlink((opts_.socket_path + ".oci").c_str());
    // It kills and reaps its forks, then exits. (Killed instead, it would leave them to whoever
    // inherits orphans, dying: PR_SET_PDEATHSIG.)
    // (Asio made the pidfd non-blocking: waitid would not wait.)
    const int pidfd = keeper_->native_handle();
    (void)signal_pidfd(pidfd, SIGTERM);
    pollfd ended{pidfd, POLLIN, 0};
    if (::poll(&ended, 1, 2000) != 1) (void)signal_pidfd(pidfd, SIGKILL);
    ended.revents = 0;
    (void)::poll(&ended, 1, -1);
    (void)reap(pidfd);
    keeper_.reset();
}

int run_server(const ServerOptions& options, UniqueFd initial_connection) {
    Server server(options);
    if (!server.start(std::move(initial_connection))) return 1;
    return server.run();
}

Result<Client> start_server_before_threads(const ServerOptions& options) {
    if (int n = procfs::thread_count(); n != 1)
        return Error{Errc::unavailable,
                     fmt::format("start_server_before_threads: this process has {} threads; the "
                                 "server can only be forked before any thread is started",
                                 n)};
    auto pair = seqpacket_pair();
    if (!pair) return std::move(pair).error();
    auto& [client_end, server_end] = *pair;
    const pid_t pid = ::fork();
    if (pid < 0) return sys_error(Errc::internal, "fork failed", errno);
    if (pid == 0) {
        client_end.reset();
        ::setsid(); // out of the caller's terminal: its Ctrl-C is for the caller to forward
        // A server with a socket outlives its agent, so that the agent can reconnect after a
        // crash: it is nobody's child to wait for (double fork).
        if (!options.socket_path.empty() && ::fork() != 0) ::_exit(0);
        // An agent without root gets a rootless server: root in a user namespace of its own,
        // which only this process enters (the agent's credentials stay as they are).
        if (auto entered = enter_user_namespace(); !entered) {
            tell_initial(server_end.get(), entered.error());
            ::_exit(1);
        }
        ::_exit(run_server(options, std::move(server_end)));
    }
    server_end.reset();
    if (!options.socket_path.empty()) {
        ::waitpid(pid, nullptr, 0);
        return Client(std::move(client_end));
    }
    UniqueFd pidfd(sys::pidfd_open(pid, 0));
    Client client(std::move(client_end));
    if (!pidfd) {
        Error e = sys_error(Errc::internal, "pidfd_open(server) failed", errno);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return e;
    }
    client.own_server(std::move(pidfd));
    return client;
}

} // namespace nsfork
