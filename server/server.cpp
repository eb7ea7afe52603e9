// The server: the container registry and its state machine, on one io_context.
//
// A container's life: starting (cloned, exec not yet reported) → running → exited (its first
// process reaped; status kept) → destroyed (forgotten). Destroy kills it and every container
// nested in it, and answers once all of them are reaped and their cgroups empty and removed.
#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "server.hpp"
#include "base/procfs.hpp"

#include "launcher/cgroup.hpp"
#include "base/pidfd.hpp"
#include "launcher/pidns.hpp"
#include "launcher/spawn.hpp"
#include "base/syscalls.hpp"
#include "launcher/plan.hpp"
#include "protocol/messages.hpp"
#include "protocol/replies.hpp"
#include "protocol/status_table.hpp"
#include "server/connection.hpp"
#include "server/pool.hpp"
#include "server/ids.hpp"
#include "server/request.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#ifndef NSFORK_INSTALLED_SHIM
#define NSFORK_INSTALLED_SHIM "/usr/local/bin/nsfork-shim"
#endif

namespace nsfork {

namespace asio = boost::asio;
using Descriptor = asio::posix::stream_descriptor;
using boost::system::error_code;

namespace {

// Who is waiting for an answer: a connection and the request's sequence number.
struct Waiter {
    std::uint64_t conn;
    std::uint32_t seq;
};

// One container: the server's record of it and the kernel objects it owns.
struct Container {
    Container(Descriptor&& first, Descriptor&& exec_report) : pidfd(std::move(first)), report(std::move(exec_report)) {}

    ContainerInfo info;
    std::string command;              // argv[0], for messages
    std::string cwd;                  // for messages
    Descriptor pidfd;                 // the first process's pidfd, watched for exit
    std::optional<Descriptor> report; // until the exec report was read (pipe or plan socket)
    UniqueFd setup_report;            // with a plan socket: the pipe for failures before the shim
    bool own_pidns = false;           // pid 1 of its own namespace: killing it kills them all
    std::optional<Cgroup> cgroup;     // its cgroup v2 leaf, if cgroups are available
    std::optional<Descriptor> events; // cgroup.events, while waiting for the leaf to empty
    std::vector<std::string> children; // ids of the containers nested in this one
    std::optional<Waiter> launcher;   // who waits for the Launch reply
    std::vector<Waiter> waiters;      // Wait requests
    std::vector<Waiter> destroyers;   // Destroy requests
    bool failed = false;              // launch failed: invisible, forgotten once settled
    bool kill_sent = false;
    bool destroy_requested = false;   // forgotten once settled
    bool reaped = false;
    bool emptied = false;             // reaped, and its cgroup (if any) has no process left
    std::uint64_t tied_to = 0;        // the connection whose end destroys it (0: none)
};

class Server final : public ConnectionOwner {
public:
    explicit Server(const ServerOptions& options) : opts_(options), signals_(io_), accept_timer_(io_) {}

    Result<void> start(UniqueFd initial);
    int run() {
        io_.run();
        return 0;
    }

    void handle(Connection& conn, Datagram& datagram) override;
    void connection_closed(std::uint64_t id) override;

private:
    Result<void> check_host();
    void setup_cgroups();
    Result<void> listen();
    void arm_accept();
    void accept_ready();
    std::string refuse_peer(int fd) const;
    void add_connection(UniqueFd fd);

    void on_hello(Connection& c, std::uint32_t seq);
    void on_launch(Connection& c, std::uint32_t seq, const wire::Launch& req, std::vector<UniqueFd>& fds);
    void on_wait(Connection& c, std::uint32_t seq, const wire::Wait& req);
    void on_kill(Connection& c, std::uint32_t seq, const wire::Kill& req);
    void on_destroy(Connection& c, std::uint32_t seq, const wire::Destroy& req);
    void on_list(Connection& c, std::uint32_t seq);
    void on_attach(Connection& c, std::uint32_t seq, const wire::Attach& req);
    void publish(const Container& c);

    struct Placement;
    std::string auto_id();
    std::string next_cgroup_name();
    Result<Placement> place(const wire::Launch& req, int join_fd);
    Result<std::shared_ptr<Container>> launch_cold(const Placement& placement, LaunchSpec& spec);
    std::shared_ptr<WarmEntry> take_warm(const Placement& placement, const LaunchSpec& spec);
    void watch_report(const std::shared_ptr<Container>& c);
    void watch_exit(const std::shared_ptr<Container>& c);
    void watch_emptied(const std::shared_ptr<Container>& c);
    void finish_launch(Container& c, Result<void> outcome);
    Result<void> exec_outcome(Container& c);
    void on_exit(const std::shared_ptr<Container>& c, ExitStatus status);
    void kill_container(Container& c);
    void request_destroy(Container& c);
    bool settled(const Container& c) const;
    void settle_up(const std::string& id);
    void forget(const std::string& id);

    std::shared_ptr<Container> find(std::string_view id) const;
    void reply(const Waiter& w, const flatbuffers::FlatBufferBuilder& fbb, std::span<const int> fds = {});
    void reply_error(const Waiter& w, const Error& e);
    void reply_info(const Waiter& w, wire::Reply type, const ContainerInfo& info, int pidfd = -1);

    void shutdown(const char* why);
    void maybe_stop();

    // One thread, and nothing posts from another: no locking in the scheduler or the reactor.
    asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
    ServerOptions opts_;
    std::string shim_;
    UniqueFd own_pidns_;
    ino_t own_pidns_ino_ = 0;
    std::optional<Cgroup> cgroup_root_;
    std::string no_cgroup_reason_;
    std::optional<StatusTableWriter> table_;
    std::optional<WarmPool> pool_;
    std::optional<Descriptor> listener_;
    asio::signal_set signals_;
    asio::steady_timer accept_timer_;
    bool accept_backoff_ = false;
    std::map<std::uint64_t, std::shared_ptr<Connection>> conns_;
    std::map<std::string, std::shared_ptr<Container>, std::less<>> containers_;
    std::uint64_t next_conn_ = 1;
    std::uint64_t next_auto_id_ = 1;
    const pid_t own_pid_ = ::getpid(); // the server is its own process from construction on
    const std::string auto_id_prefix_ = "nsfork-" + std::to_string(own_pid_) + "-";
    std::uint64_t next_cgroup_ = 1;
    std::size_t live_ = 0; // containers not yet reaped
    bool stopping_ = false;
    bool per_namespace_pid_max_ = false;
    std::size_t launches_in_flight_ = 0; // answered Launch requests pending their exec report
    // The server's own time per launch (nsfork-bench's "server time per launch excluding clone
    // and exec"): handler time of Launch requests and their exec reports, less clone3's.
    std::uint64_t launch_work_ns_ = 0, launches_answered_ = 0, clone_ns_ = 0;
    static std::uint64_t now_ns() {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count());
    }
    // Adds a handler's duration, less the clone3 time inside it, to launch_work_ns_.
    struct WorkTimer {
        explicit WorkTimer(Server& s) : server(s), start(now_ns()), clone_before(s.clone_ns_) {}
        ~WorkTimer() { server.launch_work_ns_ += now_ns() - start - (server.clone_ns_ - clone_before); }
        Server& server;
        std::uint64_t start, clone_before;
    };
};

Error unknown(std::string_view id) {
    return Error{Errc::unknown_container, fmt::format("no container with id '{}'", id)};
}

// ---- start-up ----

// Whether the running kernel is at least `major`.`minor`.
bool kernel_at_least(int major, int minor) {
    utsname u{};
    int have_major = 0, have_minor = 0;
    if (::uname(&u) < 0 || std::sscanf(u.release, "%d.%d", &have_major, &have_minor) != 2) return false;
    return have_major > major || (have_major == major && have_minor >= minor);
}

std::string kernel_too_old() {
    if (kernel_at_least(5, 14)) return {};
    utsname u{};
    ::uname(&u);
    return fmt::format("Linux {} is too old: nsfork needs 5.14 or newer (clone3 with CLONE_PIDFD "
                       "and CLONE_INTO_CGROUP, waitid(P_PIDFD), cgroup.kill)",
                       u.release);
}

Result<void> Server::check_host() {
    if (int n = procfs::thread_count(); n != 1)
        return Error{Errc::unavailable,
                     fmt::format("the nsfork server must be single-threaded, this process has {} "
                                 "threads: start it before creating any thread",
                                 n)};
    if (auto ok = check_policy(opts_.isolation, opts_.disallow_sharing_agent_pidns); !ok) return ok;
    if (::geteuid() != 0)
        return Error{Errc::unavailable,
                     "nsfork needs root (CAP_SYS_ADMIN) to create pid and mount namespaces"};
    if (std::string old = kernel_too_old(); !old.empty()) return Error{Errc::unavailable, old};
    // Before 6.14 pid_max is global: writing it from a container would change the host's.
    per_namespace_pid_max_ = kernel_at_least(6, 14);
    shim_ = opts_.shim_path.empty() ? default_shim_path() : opts_.shim_path;
    if (::access(shim_.c_str(), X_OK) < 0)
        return sys_error(Errc::unavailable, "cannot use nsfork-shim at " + shim_, errno);
    auto own = open_own_pid_namespace();
    if (!own) return std::move(own).error();
    own_pidns_ = std::move(*own);
    own_pidns_ino_ = namespace_inode(own_pidns_.get());
    // New fds must never land on 0, 1 or 2.
    for (int fd = 0; fd < 3; ++fd)
        if (::fcntl(fd, F_GETFD) < 0 && ::open("/dev/null", O_RDWR) != fd)
            return sys_error(Errc::internal, "cannot open /dev/null", errno);
    // Every container costs the server an fd or two: use all the fds we are allowed.
    if (rlimit files; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &files);
    }
    // An inherited SIG_IGN for SIGCHLD would make the kernel auto-reap containers.
    ::signal(SIGCHLD, SIG_DFL);
    // Logging to a closed pipe must not kill the server.
    ::signal(SIGPIPE, SIG_IGN);
    return {};
}

// Makes the server's cgroup root; without one, launches that need a cgroup are refused.
void Server::setup_cgroups() {
    Result<Cgroup> root = Error{};
    if (!opts_.cgroup_root.empty()) {
        ::mkdir(opts_.cgroup_root.c_str(), 0755); // an operator's path: kept at exit
        root = Cgroup::adopt(opts_.cgroup_root);
    } else {
        const std::string mount = procfs::cgroup2_mount();
        if (mount.empty()) root = Error{Errc::unavailable, "no cgroup2 file system is mounted"};
        else {
            std::string own = procfs::cgroup2_path();
            if (own == "/") own.clear();
            root = Cgroup::create(mount + own, fmt::format("nsfork-{}", ::getpid()));
        }
    }
    if (root) {
        spdlog::debug("cgroup root {}", root->path());
        cgroup_root_.emplace(std::move(*root));
        return;
    }
    no_cgroup_reason_ = root.error().message;
    spdlog::warn("no writable cgroup v2 ({}): launches that share a pid namespace will be refused",
                 no_cgroup_reason_);
}

Result<void> Server::listen() {
    const std::string& path = opts_.socket_path;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return Error{Errc::bad_request, "socket path too long: " + path};
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return Error{Errc::unavailable, path + " exists and is not a socket"};
        if (Client::connect(path)) return Error{Errc::unavailable, "a server already listens on " + path};
        ::unlink(path.c_str()); // stale: nobody answers
    }
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!sock) return sys_error(Errc::internal, "socket failed", errno);
    // The file is created 0600 from the start: no window in which another user could connect.
    const mode_t old_mask = ::umask(0177);
    const int rc = ::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    const int bind_errno = errno;
    ::umask(old_mask);
    if (rc < 0) return sys_error(Errc::unavailable, "cannot bind " + path, bind_errno);
    if (::listen(sock.get(), SOMAXCONN) < 0) return sys_error(Errc::internal, "listen failed", errno);
    listener_.emplace(io_, sock.release());
    arm_accept();
    spdlog::info("listening on {}", path);
    return {};
}

Result<void> Server::start(UniqueFd initial) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "nsfork", std::make_shared<spdlog::sinks::stderr_sink_st>()));
    spdlog::set_pattern("nsfork[%P] %L %v");
    spdlog::set_level(spdlog::level::from_str(opts_.log_level));

    auto fail = [&](Error e) -> Result<void> {
        spdlog::error("{}", e.message);
        if (initial) { // tell the embedding client why, on seq 0
            flatbuffers::FlatBufferBuilder fbb(256);
            write_error_reply(fbb, 0, e);
            (void)send_datagram(initial.get(), {fbb.GetBufferPointer(), fbb.GetSize()}, {});
        }
        return e;
    };
    if (opts_.log_level != "off" && spdlog::get_level() == spdlog::level::off)
        return fail(Error{Errc::bad_request, "unknown log level '" + opts_.log_level +
                                                 "' (trace, debug, info, warn, error, critical, off)"});
    if (auto ok = check_host(); !ok) return fail(std::move(ok).error());
    auto table = StatusTableWriter::create();
    if (!table) return fail(std::move(table).error());
    table_.emplace(std::move(*table));
    setup_cgroups();
    if (opts_.warm_pool > 0 && opts_.isolation.pid && opts_.isolation.filesystem) {
        pool_.emplace(io_,
                      WarmPool::Config{opts_.warm_pool, shim_, cgroup_root_ ? &*cgroup_root_ : nullptr,
                                       [this] { return launches_in_flight_ > 0; }, [this] { return next_cgroup_name(); }},
                      [this] { maybe_stop(); });
        pool_->start();
    }
    if (!opts_.socket_path.empty())
        if (auto ok = listen(); !ok) return fail(std::move(ok).error());
    if (initial) add_connection(std::move(initial));

    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.async_wait([this](error_code ec, int sig) {
        if (!ec) shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
    });
    spdlog::debug("server {} ready, shim {}", ::getpid(), shim_);
    return {};
}

void Server::arm_accept() {
    listener_->async_wait(Descriptor::wait_read, [this](error_code ec) {
        if (!ec && listener_) accept_ready();
    });
}

void Server::accept_ready() {
    for (;;) {
        UniqueFd fd(::accept4(listener_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN) break;
            // Out of fds (or memory): the pending connection stays readable, so waiting for
            // readiness again would spin. Try again a little later, and say so once.
            if (!accept_backoff_) spdlog::warn("accept4 failed: {}; retrying every 50 ms", std::strerror(errno));
            accept_backoff_ = true;
            accept_timer_.expires_after(std::chrono::milliseconds(50));
            accept_timer_.async_wait([this](error_code ec) {
                if (!ec && listener_) accept_ready();
            });
            return;
        }
        accept_backoff_ = false;
        if (auto refused = refuse_peer(fd.get()); !refused.empty()) {
            spdlog::warn("refused a connection: {}", refused);
            flatbuffers::FlatBufferBuilder fbb(256);
            write_error_reply(fbb, 0, Error{Errc::not_permitted, refused});
            (void)send_datagram(fd.get(), {fbb.GetBufferPointer(), fbb.GetSize()}, {});
            continue;
        }
        add_connection(std::move(fd));
    }
    arm_accept();
}

// Why a peer may not use this server ("" if it may): another uid than ours (or root), or a
// process inside one of our containers — root in a container sees the socket on the shared
// file system, and must not reach the server that contains it.
std::string Server::refuse_peer(int fd) const {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return "cannot read the peer's credentials";
    if (cred.uid != 0 && cred.uid != ::geteuid()) return fmt::format("uid {} may not use this nsfork server", cred.uid);
    // A peer in an ancestor namespace is invisible to us (pid 0): it is above the server, fine.
    // One we can see must be in our own namespace (not a container's below it) and outside our
    // containers' cgroups (a container that shares our namespace).
    if (cred.pid == 0) return {};
    const ino_t ns = procfs::pid_namespace_inode(cred.pid);
    if (ns != 0 && ns != own_pidns_ino_)
        return fmt::format("pid {} is inside a container of this server (another pid namespace)", cred.pid);
    if (cgroup_root_) {
        std::ifstream cgroup(fmt::format("/proc/{}/cgroup", cred.pid));
        const std::string mount = procfs::cgroup2_mount();
        const std::string root = cgroup_root_->path().substr(mount.size()) + "/";
        for (std::string line; std::getline(cgroup, line);)
            if (line.rfind("0::", 0) == 0 && line.compare(3, root.size(), root) == 0)
                return fmt::format("pid {} is inside a container of this server (its cgroup)", cred.pid);
    }
    return {};
}

void Server::add_connection(UniqueFd fd) {
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
    const std::uint64_t id = next_conn_++;
    auto conn = std::make_shared<Connection>(*this, id, fd.release(), io_);
    conns_.emplace(id, conn);
    spdlog::debug("connection {} opened", id);
    conn->start();
}

void Server::connection_closed(std::uint64_t id) {
    conns_.erase(id);
    spdlog::debug("connection {} closed", id);
    std::vector<std::string> tied;
    for (const auto& [cid, c] : containers_)
        if (c->tied_to == id) tied.push_back(cid);
    for (const std::string& cid : tied)
        if (auto it = containers_.find(cid); it != containers_.end()) {
            request_destroy(*it->second);
            settle_up(cid);
        }
    // A private server (no socket path) exists for its one client only.
    if (!listener_ && conns_.empty()) shutdown("last client disconnected");
}

// ---- requests ----

void Server::handle(Connection& conn, Datagram& d) {
    std::uint32_t seq = 0;
    auto opened = open_request(std::move(d), opts_.max_request_bytes, seq);
    const Waiter w{conn.id(), seq};
    if (!opened) return reply_error(w, opened.error());
    const wire::RequestMessage* msg = opened->message;
    std::vector<UniqueFd>& fds = opened->datagram.fds;
    // Only Launch takes fds; anything else carrying some is refused (they close with `opened`).
    if (msg->request_type() != wire::Request::Launch && !fds.empty())
        return reply_error(w, Error{Errc::bad_request, "only Launch requests may carry fds"});
    switch (msg->request_type()) {
    case wire::Request::Hello: return on_hello(conn, seq);
    case wire::Request::Launch: return on_launch(conn, seq, *msg->request_as_Launch(), fds);
    case wire::Request::Wait: return on_wait(conn, seq, *msg->request_as_Wait());
    case wire::Request::Kill: return on_kill(conn, seq, *msg->request_as_Kill());
    case wire::Request::Destroy: return on_destroy(conn, seq, *msg->request_as_Destroy());
    case wire::Request::List: return on_list(conn, seq);
    case wire::Request::Attach: return on_attach(conn, seq, *msg->request_as_Attach());
    default:
        return reply_error(w, Error{Errc::bad_request,
                                    fmt::format("unknown request kind {}",
                                                static_cast<int>(msg->request_type()))});
    }
}

void Server::on_hello(Connection& c, std::uint32_t seq) {
    const PoolStats pool = pool_ ? pool_->stats() : PoolStats{};
    ServerStatus status;
    status.pid = own_pid_;
    status.pool_size = pool.size;
    status.pool_ready = pool.ready;
    status.pool_warming = pool.warming;
    status.pool_served = pool.served;
    status.pool_discarded = pool.discarded;
    status.launch_work_ns = launch_work_ns_;
    status.launches = launches_answered_;
    flatbuffers::FlatBufferBuilder fbb(128);
    write_hello_reply(fbb, seq, status);
    const int table = table_->fd();
    c.send(fbb, std::span<const int>(&table, 1));
}

void Server::on_attach(Connection& conn, std::uint32_t seq, const wire::Attach& req) {
    const Waiter w{conn.id(), seq};
    auto c = find(req.id()->string_view());
    if (!c) return reply_error(w, unknown(req.id()->string_view()));
    if (c->launcher) return reply_error(w, Error{Errc::invalid_state, "container '" + c->info.id + "' is still starting"});
    reply_info(w, wire::Reply::AttachReply, c->info, c->pidfd.native_handle());
}

// Writes `c`'s current description into the status table.
void Server::publish(const Container& c) { table_->publish(c.info.slot, c.info); }

// A fresh cgroup leaf name. Leaves are named by the server, not after the container id, and the
// same way for cold and warm containers: a warm one's leaf is made before its id is known, and
// cgroup v2 cannot rename. (The id is in the registry and in List.)
std::string Server::next_cgroup_name() { return fmt::format("c{}", next_cgroup_++); }

// A fresh id for a container that asked for none.
std::string Server::auto_id() {
    for (;;) { // (no fmt here: on the launch path, cold in cache, its code costs microseconds)
        std::string id = auto_id_prefix_ + std::to_string(next_auto_id_++);
        if (!containers_.count(id)) return id;
    }
}

// Where a container goes: which pid namespace (new or shared, below which one) and under
// which cgroup. This is where the sharing rules and the operator's switch are enforced.
struct Server::Placement {
    std::shared_ptr<Container> parent;
    UniqueFd pidns;           // base namespace for spawn (-1: the server's)
    bool new_pid_namespace = true;
    std::string_view cgroup_parent; // where its cgroup leaf goes ("": no cgroups here); the
                                    // server's or the parent's path, which outlive the launch
};

Result<Server::Placement> Server::place(const wire::Launch& req, int join_fd) {
    Placement p;
    const std::string parent_id = str(req.parent());
    const bool share = req.share_pid_namespace();
    const std::string_view refused = "sharing the agent's pid namespace is disallowed "
                                     "(--disallow-sharing-agent-pid-namespace)";
    if (!parent_id.empty()) {
        p.parent = find(parent_id);
        if (!p.parent) return Error{Errc::unknown_container, fmt::format("no parent container '{}'", parent_id)};
        if (p.parent->reaped || p.parent->kill_sent)
            return Error{Errc::invalid_state, fmt::format("parent container '{}' has already ended", parent_id)};
    }
    if (join_fd >= 0) {
        if (p.parent || share)
            return Error{Errc::bad_request, "a launch that joins a pid namespace by fd takes no parent "
                                            "and no share_pid_namespace"};
        auto ns = resolve_pid_namespace(join_fd, own_pidns_.get());
        if (!ns) return std::move(ns).error();
        if (opts_.disallow_sharing_agent_pidns && namespace_inode(ns->get()) == own_pidns_ino_)
            return Error{Errc::not_permitted, std::string(refused) + ": the namespace passed by fd is the agent's"};
        p.pidns = std::move(*ns);
        p.new_pid_namespace = false;
    } else if (!opts_.isolation.pid) {
        p.new_pid_namespace = false; // everything shares the server's namespace
    } else if (p.parent) {
        // Safe by pid: the parent's first process is our child and not reaped (checked above).
        p.pidns.reset(::open(fmt::format("/proc/{}/ns/pid", p.parent->info.pid).c_str(), O_RDONLY | O_CLOEXEC));
        if (!p.pidns) return sys_error(Errc::internal, "cannot open the parent's pid namespace", errno);
        p.new_pid_namespace = !share;
        if (share && opts_.disallow_sharing_agent_pidns && p.parent->info.pidns == own_pidns_ino_)
            return Error{Errc::not_permitted,
                         std::string(refused) + fmt::format(": parent container '{}' shares it", p.parent->info.id)};
    } else if (share) {
        if (opts_.disallow_sharing_agent_pidns) return Error{Errc::not_permitted, std::string(refused)};
        p.new_pid_namespace = false;
    }
    if (req.pid_max()) {
        if (!p.new_pid_namespace)
            return Error{Errc::bad_request, "pid_max bounds a pid namespace of the container's own; this one shares one"};
        if (!per_namespace_pid_max_)
            return Error{Errc::unavailable, "pid_max needs Linux 6.14 or newer (a pid_max per pid namespace)"};
    }
    if (cgroup_root_) {
        p.cgroup_parent = p.parent && p.parent->cgroup ? p.parent->cgroup->path() : cgroup_root_->path();
    } else if (!p.new_pid_namespace) {
        return Error{Errc::unavailable,
                     "this container would share a pid namespace, so only its own cgroup could destroy "
                     "it, and no writable cgroup v2 was found: " + no_cgroup_reason_};
    }
    return p;
}

void Server::on_launch(Connection& conn, std::uint32_t seq, const wire::Launch& req,
                       std::vector<UniqueFd>& fds) {
    const WorkTimer timer(*this);
    const Waiter w{conn.id(), seq};
    if (stopping_) return reply_error(w, Error{Errc::unavailable, "the server is shutting down"});
    auto parsed = parse_launch(req, fds);
    if (!parsed) return reply_error(w, parsed.error());
    if (!parsed->id.empty() && containers_.count(parsed->id))
        return reply_error(w, Error{Errc::duplicate_id, "a container with id '" + parsed->id + "' already exists"});
    LaunchSpec* spec = &parsed->spec;
    spec->new_mount_namespace = opts_.isolation.filesystem;
    spec->mount_proc = opts_.isolation.filesystem;
    auto placement = place(req, parsed->join_fd);
    if (!placement) return reply_error(w, placement.error());
    spec->new_pid_namespace = placement->new_pid_namespace;
    spec->pidns_fd = placement->pidns.get();

    const auto slot = table_->acquire();
    if (!slot)
        return reply_error(w, Error{Errc::unavailable, fmt::format("the server holds {} containers, its "
                                                                   "limit", kStatusTableCapacity)});
    // A warm entry starts on its plan at once (take_warm sends it): what follows, its id
    // included, is bookkeeping, kept short, since it delays the shim whenever the plan's
    // wake-up put it on this CPU.
    std::shared_ptr<Container> c;
    if (auto warm = take_warm(*placement, *spec)) {
        c = std::make_shared<Container>(std::move(warm->pidfd), std::move(warm->plan));
        c->info.pid = warm->pid;
        c->info.pidns = warm->pidns;
        c->cgroup = std::move(warm->cgroup);
    } else {
        spec->init_path = shim_;
        auto cold = launch_cold(*placement, *spec);
        if (!cold) {
            table_->release(*slot);
            return reply_error(w, cold.error());
        }
        c = std::move(*cold);
        c->info.pidns = procfs::pid_namespace_inode(c->info.pid); // safe by pid: our child, not reaped
    }
    const std::string id = parsed->id.empty() ? auto_id() : std::move(parsed->id);
    ++live_;
    c->own_pidns = spec->new_pid_namespace;
    c->info.id = id;
    c->info.state = State::starting;
    c->command = spec->argv[0];
    c->cwd = spec->cwd;
    c->launcher = w;
    ++launches_in_flight_;
    c->info.slot = *slot;
    if (req.tie_to_connection()) c->tied_to = conn.id();
    if (placement->parent) {
        c->info.parent = placement->parent->info.id;
        placement->parent->children.push_back(id);
    }
    containers_.emplace(id, c);
    publish(*c);
    spdlog::debug("launch {}: pid {}, pidns {}{}, {}", id, c->info.pid, c->info.pidns,
                  c->own_pidns ? " (own)" : " (shared)", c->command);
    watch_report(c);
    watch_exit(c);
}

// The cold path: clone3 into new (or joined) namespaces, born into a new cgroup leaf.
Result<std::shared_ptr<Container>> Server::launch_cold(const Placement& placement, LaunchSpec& spec) {
    std::optional<Cgroup> cgroup;
    if (!placement.cgroup_parent.empty()) {
        auto made = Cgroup::create(std::string(placement.cgroup_parent), next_cgroup_name());
        if (!made) return std::move(made).error();
        cgroup.emplace(std::move(*made));
    }
    UniqueFd cgroup_dir;
    if (cgroup) {
        auto dir = cgroup->open_dir();
        if (!dir) {
            (void)cgroup->remove();
            return std::move(dir).error();
        }
        cgroup_dir = std::move(*dir);
        spec.cgroup_fd = cgroup_dir.get();
    }
    // The command comes as a plan on a socket, as it does for a warm container, unless it is
    // too large for one datagram: then through the shim's exec.
    auto plan = encode_plan(spec);
    UniqueFd ours, theirs;
    if (plan) {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
            if (cgroup) (void)cgroup->remove();
            return sys_error(Errc::launch_failed, "socketpair failed", errno);
        }
        ours.reset(sv[0]);
        theirs.reset(sv[1]);
        spec.plan_fd = theirs.get();
    }
    const std::uint64_t before_clone = now_ns();
    auto spawned = spawn(spec);
    clone_ns_ += now_ns() - before_clone; // not the server's own work: see launch_work_ns
    if (!spawned) {
        if (cgroup) (void)cgroup->remove();
        return std::move(spawned).error();
    }
    const pid_t pid = spawned->pid;
    std::shared_ptr<Container> c;
    if (plan) {
        theirs.reset();
        // Queued for the shim to read once it runs; if it dies first, its setup report says why.
        if (auto sent = send_plan(ours.get(), *plan, spec); !sent)
            spdlog::debug("launch of pid {}: {}", spawned->pid, sent.error().message);
        c = std::make_shared<Container>(Descriptor(io_, spawned->pidfd.release()), Descriptor(io_, ours.release()));
        c->setup_report = std::move(spawned->report);
    } else {
        c = std::make_shared<Container>(Descriptor(io_, spawned->pidfd.release()),
                                        Descriptor(io_, spawned->report.release()));
    }
    c->info.pid = pid;
    c->cgroup = std::move(cgroup);
    return c;
}

// The warm path, for a top-level container with a namespace of its own: a pool entry takes its
// name and gets its plan; it replies on the plan's socket once the command was exec'd.
std::shared_ptr<WarmEntry> Server::take_warm(const Placement& placement, const LaunchSpec& spec) {
    if (!pool_ || placement.parent || placement.pidns || !placement.new_pid_namespace ||
        !opts_.isolation.filesystem || spec.pid_max)
        return nullptr;
    auto plan = encode_plan(spec);
    if (!plan) return nullptr; // too large for a datagram: the classic cold path
    auto e = pool_->take();
    if (!e) return nullptr;
    // A failure leaves the entry to be reaped: cold path.
    auto bury = [this](const std::shared_ptr<WarmEntry>& dead) {
        (void)signal_pidfd(dead->pidfd.native_handle(), SIGKILL);
        dead->pidfd.async_wait(Descriptor::wait_read, [dead](error_code) {
            (void)reap(dead->pidfd.native_handle());
            if (dead->cgroup) (void)dead->cgroup->remove();
        });
    };
    if (auto sent = send_plan(e->plan.native_handle(), *plan, spec); !sent) {
        spdlog::warn("warm pool: pid {} did not take its plan: {}", e->pid, sent.error().message);
        bury(e);
        return nullptr;
    }
    return e;
}

void Server::watch_report(const std::shared_ptr<Container>& c) {
    c->report->async_wait(Descriptor::wait_read, [this, c](error_code ec) {
        if (ec || !c->report) return;
        auto outcome = exec_outcome(*c);
        if (!outcome && outcome.error().sys_errno == EAGAIN) return watch_report(c); // spurious wake-up
        finish_launch(*c, std::move(outcome));
    });
}

// The launch's outcome from its report channel. On a plan socket, EOF without a record means
// the shim died: the setup pipe, if any, says whether the child failed before even exec'ing it.
Result<void> Server::exec_outcome(Container& c) {
    auto outcome = read_exec_report(c.report->native_handle(), c.command, c.cwd);
    if (outcome || !c.setup_report || outcome.error().code != Errc::launch_failed || outcome.error().sys_errno)
        return outcome;
    auto setup = read_exec_report(c.setup_report.get(), c.command, c.cwd);
    return setup ? outcome : setup; // an OK there only meant "the shim is up"
}

// Answers the Launch once the init reported: exec succeeded, or why not.
void Server::finish_launch(Container& c, Result<void> outcome) {
    const WorkTimer timer(*this);
    ++launches_answered_;
    const Waiter w = *c.launcher;
    c.launcher.reset();
    --launches_in_flight_;
    // The reply first (after the state it reports is written to the status table); the table's
    // sleepers are woken, the report channel closed and a refill scheduled after it, while the
    // client is on its way.
    struct After {
        Server& s;
        Container& c;
        ~After() {
            s.table_->wake_readers();
            c.report.reset();
            c.setup_report.reset();
            if (s.pool_) s.pool_->refill_soon(); // once the server is quiet (pool.cpp)
        }
    } after{*this, c};
    if (outcome && !c.kill_sent) {
        c.info.state = State::running;
        table_->publish(c.info.slot, c.info, StatusTableWriter::Wake::later); // seen before the reply
        return reply_info(w, wire::Reply::LaunchReply, c.info, c.pidfd.native_handle());
    }
    Error e = outcome ? Error{} : std::move(outcome).error();
    if (c.kill_sent) e = Error{Errc::launch_failed, "container '" + c.info.id + "' was destroyed while starting"};
    spdlog::debug("launch {} failed: {}", c.info.id, e.message);
    c.failed = true;
    request_destroy(c);
    reply_error(w, e);
}

void Server::watch_exit(const std::shared_ptr<Container>& c) {
    c->pidfd.async_wait(Descriptor::wait_read, [this, c](error_code ec) {
        if (ec) return;
        auto reaped = try_reap(c->pidfd.native_handle());
        if (!reaped) {
            spdlog::error("container {}: {}", c->info.id, reaped.error().message);
            return;
        }
        if (!*reaped) return watch_exit(c); // not a zombie yet
        on_exit(c, **reaped);
    });
}

void Server::on_exit(const std::shared_ptr<Container>& c, ExitStatus status) {
    --live_;
    c->reaped = true;
    // The first process is gone, so is every writer of the report pipe: the read cannot block.
    if (c->report) {
        auto outcome = exec_outcome(*c);
        if (!outcome && outcome.error().sys_errno == EAGAIN) // a writer outlives the init: should not be
            outcome = Error{Errc::launch_failed, "the container's init exited before it reported"};
        finish_launch(*c, std::move(outcome));
    }
    c->info.exit = status;
    c->info.state = c->destroy_requested ? State::destroyed : State::exited;
    publish(*c);
    spdlog::debug("container {} ended: status {}", c->info.id, status.shell_code());
    for (const Waiter& w : std::exchange(c->waiters, {})) reply_info(w, wire::Reply::WaitReply, c->info);
    // Nothing of a container outlives its first process: not what it left in its cgroup (a
    // shared namespace does not do that for us), not the containers nested in it.
    if (c->cgroup && !c->own_pidns) (void)c->cgroup->kill();
    for (const std::string& child : c->children)
        if (auto n = find(child)) kill_container(*n);
    watch_emptied(c);
}

// Marks `c` emptied once its cgroup has no process left, watching cgroup.events (POLLPRI).
void Server::watch_emptied(const std::shared_ptr<Container>& c) {
    if (!c->cgroup) {
        c->emptied = true;
        return settle_up(c->info.id);
    }
    if (!c->events) {
        auto fd = c->cgroup->open_events();
        if (!fd) {
            spdlog::error("container {}: {}", c->info.id, fd.error().message);
            c->emptied = true;
            return settle_up(c->info.id);
        }
        c->events.emplace(io_, fd->release());
    }
    // Armed before the check below, so that a change in between is not missed.
    c->events->async_wait(Descriptor::wait_error, [this, c](error_code ec) {
        if (!ec && !c->emptied) watch_emptied(c);
    });
    auto populated = c->cgroup->populated();
    if (populated && *populated) return;
    c->emptied = true;
    c->events.reset();
    settle_up(c->info.id);
}

void Server::kill_container(Container& c) {
    if (c.reaped || c.kill_sent) return;
    c.kill_sent = true;
    // Its own namespace: SIGKILL to pid 1 and the kernel does the rest. Shared: the cgroup.
    Result<void> ok = c.own_pidns || !c.cgroup ? signal_pidfd(c.pidfd.native_handle(), SIGKILL) : c.cgroup->kill();
    if (!ok) spdlog::warn("container {}: {}", c.info.id, ok.error().message);
    for (const std::string& child : c.children)
        if (auto n = find(child)) kill_container(*n);
}

// Kills `c` and everything nested in it; they are forgotten once all of them settled.
void Server::request_destroy(Container& c) {
    c.destroy_requested = true;
    for (const std::string& child : c.children)
        if (auto it = containers_.find(child); it != containers_.end()) request_destroy(*it->second);
    kill_container(c);
}

bool Server::settled(const Container& c) const {
    if (!c.reaped || !c.emptied) return false;
    for (const std::string& child : c.children)
        if (auto it = containers_.find(child); it != containers_.end() && !settled(*it->second)) return false;
    return true;
}

// After `id` settled: the outermost ancestor being destroyed that is now settled is forgotten,
// with everything in it, and its Destroy answered.
void Server::settle_up(const std::string& id) {
    std::shared_ptr<Container> done;
    for (auto it = containers_.find(id); it != containers_.end(); it = containers_.find(it->second->info.parent)) {
        const auto& c = it->second;
        if (c->destroy_requested && settled(*c)) done = c;
        if (c->info.parent.empty()) break;
    }
    if (!done) return;
    if (!done->info.parent.empty())
        if (auto parent = containers_.find(done->info.parent); parent != containers_.end())
            std::erase(parent->second->children, done->info.id);
    forget(done->info.id);
    maybe_stop();
}

// Removes a settled container and what is nested in it, innermost first: cgroup leaves can
// only be removed bottom-up. Answers their Destroys.
void Server::forget(const std::string& id) {
    auto it = containers_.find(id);
    if (it == containers_.end()) return;
    std::shared_ptr<Container> c = it->second;
    for (const std::string& child : c->children) forget(child);
    if (c->cgroup)
        if (auto ok = c->cgroup->remove(); !ok) spdlog::warn("container {}: {}", id, ok.error().message);
    c->info.state = State::destroyed;
    table_->release(c->info.slot);
    for (const Waiter& w : std::exchange(c->destroyers, {})) reply_info(w, wire::Reply::DestroyReply, c->info);
    containers_.erase(it);
}

std::shared_ptr<Container> Server::find(std::string_view id) const {
    auto it = containers_.find(id);
    if (it == containers_.end() || it->second->failed) return nullptr;
    return it->second;
}

void Server::on_wait(Connection& conn, std::uint32_t seq, const wire::Wait& req) {
    const Waiter w{conn.id(), seq};
    auto c = find(req.id()->string_view());
    if (!c) return reply_error(w, unknown(req.id()->string_view()));
    if (c->reaped) return reply_info(w, wire::Reply::WaitReply, c->info);
    c->waiters.push_back(w);
}

void Server::on_kill(Connection& conn, std::uint32_t seq, const wire::Kill& req) {
    const Waiter w{conn.id(), seq};
    auto c = find(req.id()->string_view());
    if (!c) return reply_error(w, unknown(req.id()->string_view()));
    const int sig = req.signal();
    if (sig < 1 || sig > SIGRTMAX)
        return reply_error(w, Error{Errc::bad_request, fmt::format("signal {} is out of range 1..{}", sig, SIGRTMAX)});
    if (c->reaped)
        return reply_error(w, Error{Errc::invalid_state, "container '" + c->info.id + "' has already ended"});
    if (auto ok = signal_pidfd(c->pidfd.native_handle(), sig); !ok) return reply_error(w, ok.error());
    flatbuffers::FlatBufferBuilder fbb(64);
    write_kill_reply(fbb, seq);
    reply(w, fbb);
}

void Server::on_destroy(Connection& conn, std::uint32_t seq, const wire::Destroy& req) {
    const Waiter w{conn.id(), seq};
    auto c = find(req.id()->string_view());
    if (!c) return reply_error(w, unknown(req.id()->string_view()));
    c->destroyers.push_back(w);
    request_destroy(*c);
    settle_up(c->info.id); // answers at once if it had already ended
}

void Server::on_list(Connection& conn, std::uint32_t seq) {
    std::vector<const ContainerInfo*> infos;
    for (const auto& [id, c] : containers_)
        if (!c->failed) infos.push_back(&c->info);
    flatbuffers::FlatBufferBuilder fbb(1024);
    write_list_reply(fbb, seq, infos);
    reply({conn.id(), seq}, fbb);
}

// ---- replies ----

void Server::reply(const Waiter& w, const flatbuffers::FlatBufferBuilder& fbb, std::span<const int> fds) {
    auto it = conns_.find(w.conn);
    if (it != conns_.end()) it->second->send(fbb, fds);
}

void Server::reply_error(const Waiter& w, const Error& e) {
    flatbuffers::FlatBufferBuilder fbb(256);
    write_error_reply(fbb, w.seq, e);
    reply(w, fbb);
}

void Server::reply_info(const Waiter& w, wire::Reply type, const ContainerInfo& info, int pidfd) {
    flatbuffers::FlatBufferBuilder fbb(256);
    switch (type) {
    case wire::Reply::LaunchReply: write_launch_reply(fbb, w.seq, info); break;
    case wire::Reply::AttachReply: write_attach_reply(fbb, w.seq, info); break;
    case wire::Reply::WaitReply: write_wait_reply(fbb, w.seq, info); break;
    default: write_destroy_reply(fbb, w.seq, info); break;
    }
    if (pidfd >= 0) reply(w, fbb, std::span<const int>(&pidfd, 1));
    else reply(w, fbb);
}

// ---- shutdown ----

void Server::shutdown(const char* why) {
    if (stopping_) return;
    stopping_ = true;
    spdlog::info("shutting down ({}): destroying {} container(s)", why, containers_.size());
    if (listener_) {
        listener_.reset();
        ::unlink(opts_.socket_path.c_str());
    }
    signals_.cancel();
    if (pool_) pool_->stop();
    std::vector<std::string> top;
    for (const auto& [id, c] : containers_)
        if (c->info.parent.empty()) top.push_back(id);
    for (const std::string& id : top) {
        auto it = containers_.find(id);
        if (it == containers_.end()) continue;
        request_destroy(*it->second);
        settle_up(id);
    }
    maybe_stop();
}

// Stops the loop once shutting down and nothing is left.
void Server::maybe_stop() {
    if (!stopping_ || !containers_.empty() || (pool_ && !pool_->empty())) return;
    if (cgroup_root_)
        if (auto ok = cgroup_root_->remove(); !ok) spdlog::warn("{}", ok.error().message);
    io_.stop();
}

} // namespace

std::string default_shim_path() {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        std::string path(exe, static_cast<std::size_t>(n));
        path = path.substr(0, path.rfind('/') + 1) + "nsfork-shim";
        if (::access(path.c_str(), X_OK) == 0) return path;
    }
    return NSFORK_INSTALLED_SHIM;
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
