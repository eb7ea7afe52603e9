#include "nsfork/client.hpp"

#include "base/pidfd.hpp"
#include "base/unix_socket.hpp"
#include "protocol/messages.hpp"
#include "protocol/requests.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <flatbuffers/flatbuffers.h>

#include <cerrno>
#include <utility>

namespace nsfork {

// A verified reply, and the datagram (or mapped body) it lives in.
struct Client::Reply : OpenedReply {};

namespace detail {

Result<UniqueFd> connect_socket(const std::string& path) {
    auto addr = unix_address(path);
    if (!addr) return std::move(addr).error();
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!sock) return sys_error(Errc::internal, "socket failed", errno);
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) < 0)
        return sys_error(Errc::disconnected, "cannot connect to nsfork server at " + path, errno);
    return sock;
}

} // namespace detail

Result<Client> Client::connect(const std::string& socket_path) {
    auto sock = detail::connect_socket(socket_path);
    if (!sock) return std::move(sock).error();
    return Client(std::move(*sock));
}

Client::Client(UniqueFd socket) : sock_(std::move(socket)) {}
Client::Client(Client&& other) noexcept = default;

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
        version_ = other.version_;
        early_ = std::move(other.early_);
        fbb_ = std::move(other.fbb_);
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

Result<void> Client::send(const flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::span<const int> fds) {
    if (!sock_) return Error{Errc::disconnected, "client is not connected"};
    auto sent = send_request(sock_.get(), {fbb.GetBufferPointer(), fbb.GetSize()}, seq, fds);
    // A server that refused us said why (on seq 0) before it closed: prefer its word.
    if (!sent && sent.error().code == Errc::disconnected)
        if (auto said = receive_reply(sock_.get()))
            if (auto refusal = server_refusal(*said)) return *refusal;
    return sent;
}

// The builder every request is written with, cleared: kept at its size, so that a request
// allocates nothing, unless the last one was large (a Launch of a big environment).
flatbuffers::FlatBufferBuilder& Client::builder() {
    constexpr std::size_t kKeep = 64 * 1024;
    if (!fbb_ || fbb_->GetSize() > kKeep) fbb_ = std::make_unique<flatbuffers::FlatBufferBuilder>(512);
    else fbb_->Clear();
    return *fbb_;
}

// The reply on `seq`; those on other seqs that come first are kept for their callers (the
// Wait of send_wait, a destroy_on_exit's DestroyReply). Only they are allocated.
Result<Client::Reply> Client::receive(std::uint32_t seq) {
    for (;;) {
        if (auto early = early_.find(seq); early != early_.end()) {
            Reply reply = std::move(*early->second);
            early_.erase(early);
            return reply;
        }
        auto got = receive_reply(sock_.get());
        if (!got) return std::move(got).error();
        if (auto refusal = server_refusal(*got)) return *refusal;
        const std::uint32_t got_seq = got->message->seq();
        if (got_seq == seq) return Reply{std::move(*got)};
        early_.emplace(got_seq, std::make_shared<Reply>(Reply{std::move(*got)}));
    }
}

// Sends the request finished in `fbb` on `seq` with `fds`, and reads its reply with `read`.
template <class Read>
auto Client::call(const flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::span<const int> fds, Read read) {
    using Answer = decltype(read(std::declval<Reply&>()));
    if (auto sent = send(fbb, seq, fds); !sent) return Answer(std::move(sent).error());
    auto reply = receive(seq);
    if (!reply) return Answer(std::move(reply).error());
    return read(*reply);
}

// A Hello; without `status` the server leaves its pool and statistics out of the reply.
Result<ServerStatus> Client::say_hello(bool status) {
    auto& fbb = builder();
    const std::uint32_t seq = next_seq_++;
    write_hello(fbb, seq, !table_, status);
    return call(fbb, seq, {}, [this](Reply& r) { return keep_hello(r, version_, table_); });
}

Result<pid_t> Client::hello() {
    auto s = say_hello(false); // the pid is all it returns
    if (!s) return std::move(s).error();
    return s->pid;
}

Result<ServerStatus> Client::status() { return say_hello(true); }

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

Result<std::uint32_t> Client::send_launch(const LaunchOptions& o) {
    auto& fbb = builder();
    const std::uint32_t seq = next_seq_++;
    auto fds = write_launch(fbb, seq, o);
    if (!fds) return std::move(fds).error();
    if (auto sent = send(fbb, seq, *fds); !sent) return std::move(sent).error();
    return seq;
}

Result<Container> Client::receive_launch(std::uint32_t seq, const LaunchOptions& o) {
    auto reply = receive(seq);
    if (!reply) return std::move(reply).error();
    return read_launch_reply(*reply, o.tty, o.hold);
}

Result<Container> Client::launch(const LaunchOptions& o) {
    auto seq = send_launch(o);
    if (!seq) return std::move(seq).error();
    return receive_launch(*seq, o);
}

Result<Container> Client::attach(const std::string& id) {
    auto& fbb = builder();
    const std::uint32_t seq = next_seq_++;
    write_attach(fbb, seq, id);
    return call(fbb, seq, {}, read_attach_reply);
}

Result<void> Client::adopt(const std::string& id, int pidfd) {
    auto& fbb = builder();
    const std::uint32_t seq = next_seq_++;
    write_adopt(fbb, seq, id);
    const int fds[] = {pidfd};
    return call(fbb, seq, fds, read_adopt_reply);
}

Result<std::uint32_t> Client::send_wait(const std::string& id) {
    auto& fbb = builder();
    const std::uint32_t seq = next_seq_++;
    write_wait(fbb, seq, id);
    if (auto sent = send(fbb, seq, {}); !sent) return std::move(sent).error();
    return seq;
}

Result<ExitStatus> Client::receive_wait(std::uint32_t seq) {
    auto reply = receive(seq);
    if (!reply) return std::move(reply).error();
    return read_wait_reply(*reply);
}

Result<ExitStatus> Client::wait(const std::string& id) {
    auto seq = send_wait(id);
    if (!seq) return std::move(seq).error();
    return receive_wait(*seq);
}

Result<void> Client::kill(const std::string& id, int signal, bool all) {
    auto& fbb = builder();
    const std::uint32_t seq = next_seq_++;
    write_kill(fbb, seq, id, signal, all);
    return call(fbb, seq, {}, read_kill_reply);
}

Result<ContainerInfo> Client::destroy(const std::string& id) {
    auto& fbb = builder();
    const std::uint32_t seq = next_seq_++;
    write_destroy(fbb, seq, id);
    return call(fbb, seq, {}, read_destroy_reply);
}

Result<ContainerInfo> Client::ended(const Container& c) {
    if (c.end_seq()) {
        auto reply = receive(c.end_seq());
        if (!reply) return std::move(reply).error();
        return read_destroy_reply(*reply);
    }
    if (auto status = wait(c.id()); !status) return std::move(status).error();
    return destroy(c.id());
}

Result<std::vector<ContainerInfo>> Client::list() {
    auto& fbb = builder();
    const std::uint32_t seq = next_seq_++;
    write_list(fbb, seq);
    return call(fbb, seq, {}, read_list_reply);
}

} // namespace nsfork
