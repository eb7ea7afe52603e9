#include "nsfork/client.hpp"

#include "base/pidfd.hpp"
#include "base/unix_socket.hpp"
#include "protocol/messages.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace nsfork {

// A verified reply, and the datagram (or mapped body) it lives in.
struct Client::Reply : Received<wire::ReplyMessage> {};

// Replies larger than this are refused: a server has no reason to send more.
constexpr std::uint64_t kMaxReplyBody = 1ULL << 30;

Result<Client> Client::connect(const std::string& socket_path) {
    auto addr = unix_address(socket_path);
    if (!addr) return std::move(addr).error();
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!sock) return sys_error(Errc::internal, "socket failed", errno);
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) < 0)
        return sys_error(Errc::disconnected, "cannot connect to nsfork server at " + socket_path,
                         errno);
    return Client(std::move(sock));
}

Client& Client::operator=(Client&& other) noexcept {
    if (this != &other) {
        close_and_reap_server();
        sock_ = std::move(other.sock_);
        server_pidfd_ = std::move(other.server_pidfd_);
        // The status table belongs to the connection: the old server's must not outlive it.
        table_.reset();
        if (other.table_) table_.emplace(std::move(*other.table_));
        other.table_.reset();
        next_seq_ = other.next_seq_;
        early_ = std::move(other.early_);
    }
    return *this;
}

Client::~Client() { close_and_reap_server(); }

void Client::close_and_reap_server() {
    sock_.reset();
    if (server_pidfd_) {
        (void)reap(server_pidfd_.get());
        server_pidfd_.reset();
    }
}

Result<std::uint32_t> Client::send(flatbuffers::FlatBufferBuilder& fbb, std::span<const int> fds) {
    if (!sock_) return Error{Errc::disconnected, "client is not connected"};
    const std::uint32_t seq = next_seq_;
    std::span<const std::uint8_t> bytes{fbb.GetBufferPointer(), fbb.GetSize()};
    auto wrapped = wrap_if_large(bytes, seq, false);
    if (!wrapped) return std::move(wrapped).error();
    std::vector<int> all;
    if (wrapped->body) { // a large request goes as a sealed memfd, its own fds after it
        all.push_back(wrapped->body.get());
        all.insert(all.end(), fds.begin(), fds.end());
        bytes = wrapped->envelope;
        fds = all;
    }
    auto sent = send_datagram(sock_.get(), bytes, fds);
    if (!sent) {
        // A server that refused us said why (on seq 0) before it closed: prefer its word.
        if (sent.error().code == Errc::disconnected)
            if (auto said = recv_datagram(sock_.get()))
                if (auto opened = open_reply(std::move(*said), kMaxReplyBody); opened && opened->message->seq() == 0)
                    if (const wire::Error* e = opened->message->reply_as_Error()) return read_error(*e);
        Error e = std::move(sent).error();
        if (e.code == Errc::disconnected) e.message = "nsfork server closed the connection";
        return e;
    }
    return next_seq_++;
}

// The reply to a request as its caller gets it: an Error reply becomes the Error it carries,
// whether it came at once or early (kept while another request was answered).
Result<std::shared_ptr<Client::Reply>> Client::answer(std::shared_ptr<Reply> reply) {
    if (const wire::Error* e = reply->message->reply_as_Error()) return read_error(*e);
    return reply;
}

Result<std::shared_ptr<Client::Reply>> Client::receive(std::uint32_t seq) {
    for (;;) {
        if (auto early = early_.find(seq); early != early_.end()) {
            auto reply = std::move(early->second);
            early_.erase(early);
            return answer(std::move(reply));
        }
        auto got = recv_datagram(sock_.get());
        // A peer that closed with our request unread resets us (ECONNRESET) even though its
        // last words (a seq-0 Error) are still queued: the next recvmsg returns them.
        if (!got && got.error().sys_errno == ECONNRESET) got = recv_datagram(sock_.get());
        if (!got) {
            Error e = std::move(got).error();
            if (e.code == Errc::disconnected) e.message = "nsfork server closed the connection";
            return e;
        }
        auto opened = open_reply(std::move(*got), kMaxReplyBody);
        if (!opened) {
            Error e = std::move(opened).error();
            e.message = "bad reply from the server: " + e.message;
            return e;
        }
        auto reply = std::make_shared<Reply>(Reply{std::move(*opened)});
        const wire::ReplyMessage* message = reply->message;
        // seq 0 is the server's own word, sent when it cannot serve at all (e.g. a failed start).
        if (message->seq() == 0)
            if (const wire::Error* e = message->reply_as_Error()) return read_error(*e);
        if (message->seq() == seq) return answer(std::move(reply));
        early_.emplace(message->seq(), std::move(reply));
    }
}

template <class Build>
Result<std::shared_ptr<Client::Reply>> Client::call(Build&& build, std::span<const int> fds) {
    flatbuffers::FlatBufferBuilder fbb(512);
    const std::uint32_t seq = next_seq_;
    auto [type, body] = build(fbb);
    fbb.Finish(wire::CreateRequestMessage(fbb, seq, type, body));
    auto sent = send(fbb, fds);
    if (!sent) return std::move(sent).error();
    return receive(seq);
}

Result<pid_t> Client::hello() {
    auto s = status();
    if (!s) return std::move(s).error();
    return s->pid;
}

Result<ServerStatus> Client::status() {
    auto reply = call([](auto& fbb) {
        return std::pair{wire::Request::Hello, wire::CreateHello(fbb, kProtocolVersion).Union()};
    });
    if (!reply) return std::move(reply).error();
    const wire::HelloReply* r = (*reply)->message->reply_as_HelloReply();
    if (!r) return Error{Errc::protocol, "server answered Hello with another reply"};
    if (r->version() != kProtocolVersion)
        return Error{Errc::protocol, "server speaks protocol version " + std::to_string(r->version()) +
                                         ", this client " + std::to_string(kProtocolVersion)};
    if (!table_ && (*reply)->datagram.fds.size() == 1) {
        auto table = StatusTableReader::map((*reply)->datagram.fds[0].get());
        if (!table) return std::move(table).error();
        table_.emplace(std::move(*table));
    }
    ServerStatus s;
    s.pid = r->server_pid();
    if (const wire::LaunchStatistics* st = r->statistics()) {
        s.launch_work_ns = st->work_ns();
        s.launches = st->launches();
    }
    if (const wire::PoolStatus* p = r->pool()) {
        s.pool_size = p->size();
        s.pool_ready = p->ready();
        s.pool_warming = p->warming();
        s.pool_served = p->served();
        s.pool_discarded = p->discarded();
    }
    return s;
}

Result<const StatusTableReader*> Client::status_table() {
    if (!table_) {
        if (auto ok = hello(); !ok) return std::move(ok).error();
        if (!table_) return Error{Errc::unavailable, "the server offers no status table"};
    }
    return &*table_;
}

std::optional<StatusSnapshot> Client::peek(const ContainerInfo& info) {
    if (!table_ && !status_table()) return std::nullopt;
    auto snapshot = table_->read(info.slot);
    if (!snapshot || snapshot->id != info.id) return std::nullopt;
    return snapshot;
}

Result<Container> Client::attach(const std::string& id) {
    auto reply = call([&](auto& fbb) {
        auto body = wire::CreateAttach(fbb, fbb.CreateString(id));
        return std::pair{wire::Request::Attach, body.Union()};
    });
    if (!reply) return std::move(reply).error();
    const wire::AttachReply* r = (*reply)->message->reply_as_AttachReply();
    if (!r) return Error{Errc::protocol, "server answered Attach with another reply"};
    if ((*reply)->datagram.fds.size() != 1)
        return Error{Errc::protocol, "Attach reply did not carry exactly one pidfd"};
    return Container(read_info(*r->container()), std::move((*reply)->datagram.fds[0]));
}

namespace {

// The Launch's User table, when the options name a user, group or groups.
flatbuffers::Offset<wire::User> write_user(flatbuffers::FlatBufferBuilder& fbb, const LaunchOptions& o) {
    if (!o.uid && !o.gid && !o.groups) return 0;
    auto groups = o.groups ? fbb.CreateVector(*o.groups) : 0;
    wire::UserBuilder b(fbb);
    if (o.uid) b.add_uid(*o.uid);
    if (o.gid) b.add_gid(*o.gid);
    if (o.groups) b.add_groups(groups);
    return b.Finish();
}

} // namespace

Result<Container> Client::launch(const LaunchOptions& o) {
    if (o.extra_fds.size() > kMaxExtraFds)
        return Error{Errc::bad_request, "more than " + std::to_string(kMaxExtraFds) + " extra fds"};
    std::vector<int> fds;
    std::vector<wire::FdRole> roles;
    auto pass = [&](int fd, wire::FdRole role) {
        fds.push_back(fd);
        roles.push_back(role);
    };
    for (int i = 0; i < 3; ++i)
        if (o.stdio[i] >= 0) pass(o.stdio[i], static_cast<wire::FdRole>(i)); // Stdin/Stdout/Stderr are 0/1/2
    if (o.join_pidns_fd >= 0) pass(o.join_pidns_fd, wire::FdRole::PidNamespace);
    for (int fd : o.extra_fds) pass(fd, wire::FdRole::Extra); // in order: the command's 3, 4, ...
    auto reply = call(
        [&](auto& fbb) {
            auto id = o.id.empty() ? 0 : fbb.CreateString(o.id);
            auto argv = fbb.CreateVectorOfStrings(o.argv);
            auto env = fbb.CreateVectorOfStrings(o.env);
            auto cwd = o.cwd.empty() ? 0 : fbb.CreateString(o.cwd);
            auto fd_roles = fbb.CreateVector(roles);
            auto parent = o.parent.empty() ? 0 : fbb.CreateString(o.parent);
            auto cgroup_name = o.cgroup_name.empty() ? 0 : fbb.CreateString(o.cgroup_name);
            auto body = wire::CreateLaunch(fbb, id, argv, env, cwd, fd_roles, parent, o.share_pid_namespace,
                                           o.tie_to_connection, o.pid_max, o.tty, o.kill_group, o.signal_mask,
                                           o.ignored_signals, write_user(fbb, o), o.tty_rows, o.tty_cols,
                                           o.hold, cgroup_name);
            return std::pair{wire::Request::Launch, body.Union()};
        },
        fds);
    if (!reply) return std::move(reply).error();
    const wire::LaunchReply* r = (*reply)->message->reply_as_LaunchReply();
    if (!r) return Error{Errc::protocol, "server answered Launch with another reply"};
    // The pidfd, then a tty launch's master or a hold launch's cgroup leaf, as the reply declares.
    std::vector<UniqueFd>& got = (*reply)->datagram.fds;
    const auto* roles_got = r->fds();
    if (!roles_got || roles_got->size() != got.size())
        return Error{Errc::protocol, "Launch reply did not carry the fds it declares"};
    if (got.empty() || roles_got->Get(0) != wire::FdRole::Pidfd)
        return Error{Errc::protocol, "Launch reply did not carry a pidfd first"};
    UniqueFd terminal, cgroup;
    for (std::size_t i = 1; i < got.size(); ++i) {
        const wire::FdRole role = roles_got->Get(static_cast<flatbuffers::uoffset_t>(i));
        if (role == wire::FdRole::Terminal && o.tty && !terminal) terminal = std::move(got[i]);
        else if (role == wire::FdRole::Cgroup && o.hold && !cgroup) cgroup = std::move(got[i]);
        else return Error{Errc::protocol, "Launch reply carried an fd this launch did not ask for"};
    }
    if (o.tty && !terminal) return Error{Errc::protocol, "Launch reply did not carry a pidfd and a terminal"};
    return Container(read_info(*r->container()), std::move(got[0]), std::move(terminal), std::move(cgroup));
}

Result<void> Client::adopt(const std::string& id, int pidfd) {
    const int fds[] = {pidfd};
    auto reply = call(
        [&](auto& fbb) {
            auto body = wire::CreateAdopt(fbb, fbb.CreateString(id));
            return std::pair{wire::Request::Adopt, body.Union()};
        },
        fds);
    if (!reply) return std::move(reply).error();
    if (!(*reply)->message->reply_as_AdoptReply())
        return Error{Errc::protocol, "server answered Adopt with another reply"};
    return {};
}

Result<std::uint32_t> Client::send_wait(const std::string& id) {
    flatbuffers::FlatBufferBuilder fbb(128);
    const std::uint32_t seq = next_seq_;
    auto body = wire::CreateWait(fbb, fbb.CreateString(id));
    fbb.Finish(wire::CreateRequestMessage(fbb, seq, wire::Request::Wait, body.Union()));
    return send(fbb);
}

Result<ExitStatus> Client::receive_wait(std::uint32_t seq) {
    auto reply = receive(seq);
    if (!reply) return std::move(reply).error();
    const wire::WaitReply* r = (*reply)->message->reply_as_WaitReply();
    if (!r) return Error{Errc::protocol, "server answered Wait with another reply"};
    const ContainerInfo info = read_info(*r->container());
    if (!info.exit) return Error{Errc::protocol, "Wait reply without an exit status"};
    return *info.exit;
}

Result<ExitStatus> Client::wait(const std::string& id) {
    auto seq = send_wait(id);
    if (!seq) return std::move(seq).error();
    return receive_wait(*seq);
}

Result<void> Client::kill(const std::string& id, int signal, bool all) {
    auto reply = call([&](auto& fbb) {
        auto body = wire::CreateKill(fbb, fbb.CreateString(id), signal, all);
        return std::pair{wire::Request::Kill, body.Union()};
    });
    if (!reply) return std::move(reply).error();
    if (!(*reply)->message->reply_as_KillReply())
        return Error{Errc::protocol, "server answered Kill with another reply"};
    return {};
}

Result<ContainerInfo> Client::destroy(const std::string& id) {
    auto reply = call([&](auto& fbb) {
        auto body = wire::CreateDestroy(fbb, fbb.CreateString(id));
        return std::pair{wire::Request::Destroy, body.Union()};
    });
    if (!reply) return std::move(reply).error();
    const wire::DestroyReply* r = (*reply)->message->reply_as_DestroyReply();
    if (!r) return Error{Errc::protocol, "server answered Destroy with another reply"};
    return read_info(*r->container());
}

Result<std::vector<ContainerInfo>> Client::list() {
    auto reply = call([](auto& fbb) {
        return std::pair{wire::Request::List, wire::CreateList(fbb).Union()};
    });
    if (!reply) return std::move(reply).error();
    const wire::ListReply* r = (*reply)->message->reply_as_ListReply();
    if (!r) return Error{Errc::protocol, "server answered List with another reply"};
    std::vector<ContainerInfo> out;
    if (r->containers())
        for (const wire::ContainerInfo* c : *r->containers()) out.push_back(read_info(*c));
    return out;
}

} // namespace nsfork
