// The server's loop: connections and the request handlers, on one io_context. What happens to a
// container after its launch is in lifecycle.cpp; the server's start in embedding.cpp.
#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "server/loop.hpp"

#include "base/pidfd.hpp"
#include "base/procfs.hpp"
#include "launcher/pidns.hpp"
#include "protocol/messages.hpp"
#include "protocol/replies.hpp"
#include "server/hold.hpp"
#include "server/request.hpp"
#include "server/signal_all.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <csignal>

namespace nsfork {

namespace asio = boost::asio;
using Descriptor = asio::posix::stream_descriptor;
using boost::system::error_code;

namespace {

Error unknown(std::string_view id) {
    return Error{Errc::unknown_container, fmt::format("no container with id '{}'", id)};
}

} // namespace

// ---- connections ----

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
    for (const auto& [cid, c] : registry_.all())
        if (c->tied_to == id) tied.push_back(cid);
    for (const std::string& cid : tied)
        if (auto it = registry_.all().find(cid); it != registry_.all().end()) {
            destroy(*it->second);
            settle_up(cid);
        }
    // A private server (no socket path) exists for its one client only.
    if (!listener_ && conns_.empty()) shutdown("last client disconnected");
}

// ---- requests ----

void Server::handle(Connection& conn, Datagram& d) {
    const std::uint64_t start = LaunchStatistics::now_ns(); // a Launch's parse phase starts here
    last_activity_ns_ = start;
    std::uint32_t seq = 0;
    auto opened = open_request(std::move(d), opts_.max_request_bytes, seq);
    const Waiter w{conn.id(), seq};
    if (!opened) return reply_error(w, opened.error());
    const wire::RequestMessage* msg = opened->message;
    std::vector<UniqueFd>& fds = opened->datagram.fds;
    // Only Launch and Adopt take fds; anything else carrying some is refused (they close with
    // `opened`).
    const bool takes_fds = msg->request_type() == wire::Request::Launch || msg->request_type() == wire::Request::Adopt;
    if (!takes_fds && !fds.empty())
        return reply_error(w, Error{Errc::bad_request, "only Launch and Adopt requests may carry fds"});
    switch (msg->request_type()) {
    case wire::Request::Hello: {
        const wire::Hello& hello = *msg->request_as_Hello();
        auto version = negotiate_version(hello);
        if (!version) return reply_error(w, version.error()); // the connection keeps its version
        conn.set_version(*version);
        return on_hello(conn, seq, hello.status_table(), hello.status());
    }
    case wire::Request::Launch: {
        LaunchStatistics::Handler timer(statistics_, LaunchPhase::record, start);
        return on_launch(conn, seq, *msg->request_as_Launch(), fds, timer);
    }
    case wire::Request::Wait: return on_wait(conn, seq, *msg->request_as_Wait());
    case wire::Request::Kill: return on_kill(conn, seq, *msg->request_as_Kill());
    case wire::Request::Destroy: return on_destroy(conn, seq, *msg->request_as_Destroy());
    case wire::Request::List: return on_list(conn, seq);
    case wire::Request::Attach: return on_attach(conn, seq, *msg->request_as_Attach());
    case wire::Request::Adopt: return on_adopt(conn, seq, *msg->request_as_Adopt(), fds);
    default:
        return reply_error(w, Error{Errc::bad_request,
                                    fmt::format("unknown request kind {}",
                                                static_cast<int>(msg->request_type()))});
    }
}

void Server::on_hello(Connection& c, std::uint32_t seq, bool with_table, bool with_status) {
    ServerStatus status;
    status.pid = own_pid_;
    if (with_status) fill_status(status);
    // One builder for every Hello reply, kept at its size: a Hello allocates nothing.
    hello_fbb_.Clear();
    write_hello_reply(hello_fbb_, seq, status, c.version(), with_table, with_status);
    const int table = table_->fd();
    c.send(hello_fbb_, std::span<const int>(&table, with_table ? 1 : 0));
}

void Server::fill_status(ServerStatus& status) const {
    const PoolStats pool = pool_ ? pool_->stats() : PoolStats{};
    status.pool_size = pool.size;
    status.pool_ready = pool.ready;
    status.pool_warming = pool.warming;
    status.pool_served = pool.served;
    status.pool_discarded = pool.discarded;
    status.namespaces_pending = static_cast<std::uint32_t>(spare_namespaces_.pending());
    status.launch_work_ns = statistics_.work_ns();
    status.launches = statistics_.launches();
    status.launch_phases = statistics_.phases();
}

void Server::on_attach(Connection& conn, std::uint32_t seq, const wire::Attach& req) {
    const Waiter w{conn.id(), seq};
    auto c = registry_.find(req.id()->string_view());
    if (!c) return reply_error(w, unknown(req.id()->string_view()));
    if (c->launcher) return reply_error(w, Error{Errc::invalid_state, "container '" + c->info.id + "' is still starting"});
    flatbuffers::FlatBufferBuilder fbb(256);
    write_attach_reply(fbb, seq, c->info);
    const int pidfd = c->pidfd.native_handle();
    reply(w, fbb, std::span<const int>(&pidfd, 1));
}

void Server::on_wait(Connection& conn, std::uint32_t seq, const wire::Wait& req) {
    const Waiter w{conn.id(), seq};
    auto c = registry_.find(req.id()->string_view());
    if (!c) return reply_error(w, unknown(req.id()->string_view()));
    if (!c->has_ended()) return c->waiters.push_back(w);
    flatbuffers::FlatBufferBuilder fbb(256);
    write_wait_reply(fbb, seq, c->info);
    reply(w, fbb);
}

void Server::on_kill(Connection& conn, std::uint32_t seq, const wire::Kill& req) {
    const Waiter w{conn.id(), seq};
    auto c = registry_.find(req.id()->string_view());
    if (!c) return reply_error(w, unknown(req.id()->string_view()));
    const int sig = req.signal();
    if (sig < 1 || sig > SIGRTMAX)
        return reply_error(w, Error{Errc::bad_request, fmt::format("signal {} is out of range 1..{}", sig, SIGRTMAX)});
    if (c->has_ended())
        return reply_error(w, Error{Errc::invalid_state, "container '" + c->info.id + "' has already ended"});
    // An adopted hold container's signal is its main process's: the holder would drop it.
    const int target = c->main ? c->main->native_handle() : c->pidfd.native_handle();
    if (auto ok = req.all() ? signal_all(*c, sig) : signal_pidfd(target, sig); !ok)
        return reply_error(w, ok.error());
    flatbuffers::FlatBufferBuilder fbb(64);
    write_kill_reply(fbb, seq);
    reply(w, fbb);
}

// The unreaped inits of `c` and of the containers nested in it (host pids, stable: our children).
void Server::inits_of(const ContainerRecord& c, std::vector<pid_t>& out) const {
    if (!c.has_ended()) out.push_back(c.info.pid);
    for (const std::string& child : c.children)
        if (auto n = registry_.find(child)) inits_of(*n, out);
}

// Kill{all}: `sig` to every process of `c` and of the containers nested in it, but their inits
// (nsfork-shim forwards what it gets to its command, which would get it twice; each init ends
// with its command). SIGKILL has atomic ways, which also reach what forks meanwhile.
Result<void> Server::signal_all(ContainerRecord& c, int sig) {
    if (c.cgroup) {
        if (sig == SIGKILL) return c.cgroup->kill();
        std::vector<pid_t> inits;
        inits_of(c, inits);
        return signal_cgroup_tree(procfs::cgroup2_mount(), c.cgroup->path(), sig, inits);
    }
    // Placement refuses such a launch (only a cgroup could destroy it); never signal a whole
    // shared namespace, the server's own perhaps, in its place.
    if (!c.own_pidns)
        return Error{Errc::unavailable, "container '" + c.info.id + "' shares a pid namespace and has no cgroup: "
                                                                     "its processes cannot be told from others'"};
    if (sig == SIGKILL) return signal_pidfd(c.pidfd.native_handle(), SIGKILL); // pid 1: the namespace dies
    std::vector<pid_t> inits;
    inits_of(c, inits);
    return signal_pid_namespace_tree(c.info.pidns, sig, inits);
}

void Server::on_destroy(Connection& conn, std::uint32_t seq, const wire::Destroy& req) {
    const Waiter w{conn.id(), seq};
    auto c = registry_.find(req.id()->string_view());
    if (!c) return reply_error(w, unknown(req.id()->string_view()));
    c->destroyers.push_back(w);
    destroy(*c);
    settle_up(c->info.id); // answers at once if it had already ended
}

void Server::on_list(Connection& conn, std::uint32_t seq) {
    std::vector<const ContainerInfo*> infos;
    for (const auto& [id, c] : registry_.all())
        if (c->visible()) infos.push_back(&c->info);
    flatbuffers::FlatBufferBuilder fbb(1024);
    write_list_reply(fbb, seq, infos);
    reply({conn.id(), seq}, fbb);
}

// ---- launch ----

// A fresh cgroup leaf name. Leaves are named by the server, not after the container id, and the
// same way for cold and warm containers: a warm one's leaf is made before its id is known, and
// cgroup v2 cannot rename. (The id is in the registry and in List.)
std::string Server::next_cgroup_name() { return fmt::format("c{}", next_cgroup_++); }

// A fresh leaf below `parent`: a spare made ahead when `parent` is the root, else made now.
Result<Cgroup> Server::new_leaf(const std::string& parent) {
    if (spare_leaves_.empty() || !cgroups_.root || parent != cgroups_.root->path())
        return Cgroup::create(parent, next_cgroup_name());
    Cgroup leaf = std::move(spare_leaves_.back());
    spare_leaves_.pop_back();
    return leaf;
}

// Makes the spare leaves once no launch is in flight for WarmPool::kQuiet, as the pool refills.
// A failure is left to the next cold launch, which makes its leaf itself and says why.
void Server::spare_leaves_soon() {
    spare_namespaces_soon();
    if (spare_armed_ || stopping_ || !cgroups_.root || spare_leaves_.size() >= kSpareLeaves) return;
    spare_armed_ = true;
    spare_timer_.expires_after(WarmPool::kQuiet);
    spare_timer_.async_wait([this](error_code ec) {
        spare_armed_ = false;
        if (ec || stopping_) return;
        if (launches_in_flight_ > 0) return spare_leaves_soon();
        while (spare_leaves_.size() < kSpareLeaves) {
            auto made = Cgroup::create(cgroups_.root->path(), next_cgroup_name());
            if (!made) return spdlog::debug("no spare cgroup leaf: {}", made.error().message);
            spare_leaves_.push_back(std::move(*made));
        }
    });
}

// Makes the namespaces hold launches asked for once the server has been idle (no request, no
// container ending: last_activity_ns_) for kNamespaceIdle, one at a time (a network namespace takes ~0.5 ms of the kernel's time,
// and contends for its locks with a container being set up, mounting sysfs and proc: measured,
// making them right after a launch slowed that container's set-up by more than they saved).
// Not while a hold container's runtime is setting up its process (launched, not yet adopted).
// A server that is never idle makes none: its hold launches' processes unshare as before.
void Server::spare_namespaces_soon(std::chrono::nanoseconds delay) {
    if (namespaces_armed_ || stopping_ || !spare_namespaces_.wanted()) return;
    namespaces_armed_ = true;
    namespaces_timer_.expires_after(delay);
    namespaces_timer_.async_wait([this](error_code ec) {
        namespaces_armed_ = false;
        if (ec || stopping_) return;
        const auto idle = std::chrono::nanoseconds(LaunchStatistics::now_ns() - last_activity_ns_);
        if (idle < kNamespaceIdle) return spare_namespaces_soon(kNamespaceIdle - idle);
        if (launches_in_flight_ > 0 || holds_setting_up_ > 0) return; // set_up() and finish_launch ask again
        if (spare_namespaces_.make_one()) spare_namespaces_soon(std::chrono::nanoseconds(0));
    });
}

// A hold container's runtime is done setting up its process (adopted), or the container ended:
// what waited for that may go on.
void Server::set_up(ContainerRecord& c) {
    if (!c.setting_up) return;
    c.setting_up = false;
    if (--holds_setting_up_ > 0) return;
    if (pool_) pool_->refill_soon();
    spare_namespaces_soon();
}

// A fresh id for a container that asked for none.
std::string Server::auto_id() {
    for (;;) { // (no fmt here: on the launch path, cold in cache, its code costs microseconds)
        std::string id = auto_id_prefix_ + std::to_string(next_auto_id_++);
        if (!registry_.contains(id)) return id;
    }
}

// Where the launch goes (placement.hpp), with the namespace fds it needs opened. A hold launch
// that joins the pid namespace of one of our containers is nested in it, sharing its namespace
// (a pod: `ctr run --with-ns pid:/proc/PID/ns/pid` with PID a process of the first container),
// so that the registry, destroy and list know them as one tree.
Result<Target> Server::target(const wire::Launch& req, int join_fd, bool hold) {
    PlacementRequest request;
    request.parent_id = req.parent() ? req.parent()->string_view() : std::string_view{};
    request.share_pid_namespace = req.share_pid_namespace();
    request.join_fd = join_fd >= 0;
    request.pid_max = req.pid_max();
    Target t;
    // The joined namespace is resolved first, unless place() refuses the join for its parent or
    // sharing anyway (that refusal comes before any complaint about the fd).
    if (request.join_fd && request.parent_id.empty() && !request.share_pid_namespace) {
        auto ns = resolve_pid_namespace(join_fd, host_.own_pidns.get());
        if (!ns) return std::move(ns).error();
        request.joined_pidns = namespace_inode(ns->get());
        if (Record owner = hold ? pidns_owner(*request.joined_pidns) : nullptr) {
            request.parent_id = owner->info.id;
            request.share_pid_namespace = true;
            request.join_fd = false;
            request.joined_pidns.reset();
        } else {
            t.pidns = std::move(*ns);
        }
    }
    ParentView parent;
    if (!request.parent_id.empty() && (t.parent = registry_.find(request.parent_id))) {
        parent.id = t.parent->info.id;
        parent.ended = t.parent->has_ended() || t.parent->kill_sent();
        parent.pidns = t.parent->info.pidns;
        if (t.parent->cgroup) parent.cgroup = t.parent->cgroup->path();
    }
    auto where = place(request, t.parent ? &parent : nullptr, facts_);
    if (!where) return std::move(where).error();
    t.where = *where;
    if (t.where.base == PidnsBase::parent) {
        // Safe by pid: the parent's first process is our child and not reaped (place() checked).
        t.pidns.reset(::open(fmt::format("/proc/{}/ns/pid", t.parent->info.pid).c_str(), O_RDONLY | O_CLOEXEC));
        if (!t.pidns) return sys_error(Errc::internal, "cannot open the parent's pid namespace", errno);
    }
    return t;
}

void Server::on_launch(Connection& conn, std::uint32_t seq, const wire::Launch& req,
                       std::vector<UniqueFd>& fds, LaunchStatistics::Handler& timer) {
    const Waiter w{conn.id(), seq};
    if (stopping_) return reply_error(w, Error{Errc::unavailable, "the server is shutting down"});
    auto parsed = parse_launch(req, fds);
    if (!parsed) return reply_error(w, parsed.error());
    if (!parsed->id.empty() && registry_.contains(parsed->id))
        return reply_error(w, Error{Errc::duplicate_id, "a container with id '" + parsed->id + "' already exists"});
    timer.lap(LaunchPhase::parse);
    LaunchSpec* spec = &parsed->spec;
    const std::string& cgroup_name = parsed->cgroup_name;
    if (spec->tty && !opts_.isolation.filesystem)
        return reply_error(w, Error{Errc::bad_request, "a tty needs the filesystem/linux isolator (devpts is mounted in "
                                                       "the container's own mount namespace), which this server runs "
                                                       "without"});
    // The init makes a session of its own: a server's child cannot join a client's session, nor
    // take its terminal's foreground (a client wanting a terminal asks for a tty).
    spec->new_session = true;
    spec->foreground = false;
    spec->new_mount_namespace = opts_.isolation.filesystem;
    spec->mount_proc = opts_.isolation.filesystem;
    // Refused here, before a warm entry or a cgroup leaf is spent on it.
    if (auto ok = check_command_settings(*spec); !ok) return reply_error(w, ok.error());
    if (auto ok = check_init_privilege(*spec); !ok) return reply_error(w, ok.error());
    // A hold launch's device program, loaded (or found loaded): a refused one spends nothing.
    UniqueFd device_program;
    if (!parsed->device_program.empty()) {
        auto program = device_programs_->get(parsed->device_program);
        if (!program) return reply_error(w, program.error());
        device_program.reset(::fcntl(*program, F_DUPFD_CLOEXEC, 0));
        if (!device_program) return reply_error(w, sys_error(Errc::internal, "dup of the device program", errno));
    }
    auto t = target(req, parsed->join_fd, spec->hold);
    if (!t) return reply_error(w, t.error());
    if (!cgroup_name.empty() && t->where.cgroup_parent.empty())
        return reply_error(w, Error{Errc::unavailable, "cgroup_name '" + cgroup_name + "': this server places no "
                                                       "container in cgroups (no writable cgroup v2)"});
    spec->new_pid_namespace = t->where.new_pid_namespace;
    spec->pidns_fd = t->pidns.get();
    timer.lap(LaunchPhase::policy);

    const auto slot = table_->acquire();
    if (!slot)
        return reply_error(w, Error{Errc::unavailable, fmt::format("the server holds {} containers, its "
                                                                   "limit", kStatusTableCapacity)});
    timer.lap(LaunchPhase::table);
    // A leaf the launch names is made first, so that its failure spends no warm entry.
    const std::string parent_dir(t->where.cgroup_parent);
    std::optional<Cgroup> named;
    if (!cgroup_name.empty()) {
        auto made = create_named_cgroup(parent_dir, cgroup_name);
        if (!made) {
            table_->release(*slot);
            return reply_error(w, made.error());
        }
        named.emplace(std::move(*made));
        timer.lap(LaunchPhase::cgroup);
    }
    // A warm entry starts on its plan at once (take_warm sends it): what follows, its id
    // included, is bookkeeping, kept short, since it delays the shim whenever the plan's
    // wake-up put it on this CPU.
    Record c;
    auto warm = take_warm(pool_ ? &*pool_ : nullptr, *t, *spec, opts_.isolation.filesystem, timer);
    timer.lap(LaunchPhase::plan);
    if (warm) {
        c = std::make_shared<ContainerRecord>(std::move(warm->pidfd), std::move(warm->plan));
        c->info.pid = warm->pid;
        c->info.pidns = warm->pidns;
        c->cgroup = std::move(warm->cgroup);
        if (named) { // the holder stays in the entry's leaf; the container's processes are born into the named one
            c->holder_cgroup = std::move(c->cgroup);
            c->cgroup = std::move(named);
        }
    } else {
        spec->init_path = host_.shim;
        std::optional<Cgroup> leaf = std::move(named);
        Result<Record> cold = Error{};
        if (!leaf && !parent_dir.empty()) {
            if (auto made = new_leaf(parent_dir)) leaf.emplace(std::move(*made));
            else cold = std::move(made).error();
            timer.lap(LaunchPhase::cgroup);
        }
        if (leaf || parent_dir.empty()) cold = launch_cold(io_, *spec, std::move(leaf), timer);
        if (!cold) {
            if (!cgroup_name.empty()) remove_cgroup_parents(parent_dir, cgroup_name); // the leaf went with launch_cold
            table_->release(*slot);
            return reply_error(w, cold.error());
        }
        c = std::move(*cold);
        c->info.pidns = procfs::pid_namespace_inode(c->info.pid, c->pidfd.native_handle());
        timer.lap(LaunchPhase::clone_setup);
    }
    if (!cgroup_name.empty()) c->named_cgroup_under = parent_dir;
    c->device_program = std::move(device_program);
    if (parsed->new_namespaces) c->namespaces = spare_namespaces_.take(parsed->new_namespaces);
    ++live_;
    c->own_pidns = spec->new_pid_namespace;
    c->info.id = parsed->id.empty() ? auto_id() : std::move(parsed->id);
    c->info.state = c->wire_state();
    c->command = spec->hold ? "nsfork-shim" : spec->argv[0];
    c->info.held = spec->hold;
    if (spec->hold) {
        c->setting_up = true;
        ++holds_setting_up_;
        set_up_timer_.expires_after(kSetUpGrace);
        set_up_timer_.async_wait([this](error_code ec) {
            if (ec || stopping_) return;
            for (const auto& [id, r] : registry_.all()) set_up(*r);
        });
    }
    if (c->cgroup) c->info.cgroup = c->cgroup->path();
    c->cwd = spec->cwd;
    c->tty = spec->tty;
    c->launcher = w;
    ++launches_in_flight_;
    c->info.slot = *slot;
    // A hold container is tied until adopted: a runtime killed half-way leaves nothing behind.
    if (req.tie_to_connection() || spec->hold) c->tied_to = conn.id();
    c->destroy_on_exit = req.destroy_on_exit();
    if (t->parent) {
        c->info.parent = t->parent->info.id;
        t->parent->children.push_back(c->info.id);
    }
    registry_.add(c);
    timer.lap(LaunchPhase::record);
    publish(*c);
    timer.lap(LaunchPhase::table);
    spdlog::debug("launch {}: pid {}, pidns {}{}, {}", c->info.id, c->info.pid, c->info.pidns,
                  c->own_pidns ? " (own)" : " (shared)", c->command);
    watch_report(c);
    watch_exit(c);
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

// ---- shutdown ----

void Server::shutdown(const char* why) {
    if (stopping_) return;
    stopping_ = true;
    spdlog::info("shutting down ({}): destroying {} container(s)", why, registry_.size());
    if (listener_) listener_->close();
    stop_warm_runtimes();
    signals_.cancel();
    spare_timer_.cancel();
    namespaces_timer_.cancel();
    set_up_timer_.cancel();
    spare_leaves_.clear(); // removed, empty
    spare_namespaces_.stop();
    device_programs_->stop();
    if (pool_) pool_->stop();
    std::vector<std::string> top;
    for (const auto& [id, c] : registry_.all())
        if (c->info.parent.empty()) top.push_back(id);
    for (const std::string& id : top) {
        auto it = registry_.all().find(id);
        if (it == registry_.all().end()) continue;
        destroy(*it->second);
        settle_up(id);
    }
    maybe_stop();
}

// Stops the loop once shutting down and nothing is left.
void Server::maybe_stop() {
    if (!stopping_ || !registry_.empty() || (pool_ && !pool_->empty())) return;
    if (cgroups_.root)
        if (auto ok = cgroups_.root->remove(); !ok) spdlog::warn("{}", ok.error().message);
    io_.stop();
}

} // namespace nsfork
