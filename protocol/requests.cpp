#include "protocol/requests.hpp"

#include <cerrno>
#include <string>

namespace nsfork {

void write_hello(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, bool status_table, bool status) {
    finish_request(fbb, seq, wire::Request::Hello,
                   wire::CreateHello(fbb, kProtocolVersion, kMinProtocolVersion, status_table, status).Union());
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

Result<std::vector<int>> write_launch(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const LaunchOptions& o) {
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
    auto id = o.id.empty() ? 0 : fbb.CreateString(o.id);
    auto argv = fbb.CreateVectorOfStrings(o.argv);
    auto env = fbb.CreateVectorOfStrings(o.env);
    auto cwd = o.cwd.empty() ? 0 : fbb.CreateString(o.cwd);
    auto fd_roles = fbb.CreateVector(roles);
    auto parent = o.parent.empty() ? 0 : fbb.CreateString(o.parent);
    auto cgroup_name = o.cgroup_name.empty() ? 0 : fbb.CreateString(o.cgroup_name);
    auto device_program = o.device_program.empty() ? 0 : fbb.CreateVector(o.device_program);
    auto body = wire::CreateLaunch(fbb, id, argv, env, cwd, fd_roles, parent, o.share_pid_namespace,
                                   o.tie_to_connection, o.pid_max, o.tty, o.kill_group, o.signal_mask,
                                   o.ignored_signals, write_user(fbb, o), o.tty_rows, o.tty_cols, o.hold,
                                   cgroup_name, o.destroy_on_exit, device_program, o.new_namespaces);
    finish_request(fbb, seq, wire::Request::Launch, body.Union());
    return fds;
}

void write_wait(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id) {
    finish_request(fbb, seq, wire::Request::Wait, wire::CreateWait(fbb, fbb.CreateString(id)).Union());
}

void write_kill(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id, int signal, bool all) {
    finish_request(fbb, seq, wire::Request::Kill, wire::CreateKill(fbb, fbb.CreateString(id), signal, all).Union());
}

void write_destroy(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id) {
    finish_request(fbb, seq, wire::Request::Destroy, wire::CreateDestroy(fbb, fbb.CreateString(id)).Union());
}

void write_list(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq) {
    finish_request(fbb, seq, wire::Request::List, wire::CreateList(fbb).Union());
}

void write_attach(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id) {
    finish_request(fbb, seq, wire::Request::Attach, wire::CreateAttach(fbb, fbb.CreateString(id)).Union());
}

void write_adopt(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id) {
    finish_request(fbb, seq, wire::Request::Adopt, wire::CreateAdopt(fbb, fbb.CreateString(id)).Union());
}

namespace {

// The reply's body as the answer to a request of kind `T`: an Error reply's Error, or a
// protocol error naming `request` when the server answered with another kind.
template <class T>
Result<const T*> answer_as(const OpenedReply& reply, const char* request) {
    const wire::ReplyMessage& m = *reply.message;
    if (const wire::Error* e = m.reply_as_Error()) return read_error(*e);
    if (const T* body = m.reply_as<T>()) return body;
    return Error{Errc::protocol, std::string("server answered ") + request + " with another reply"};
}

} // namespace

Result<HelloAnswer> read_hello_reply(OpenedReply& reply) {
    auto r = answer_as<wire::HelloReply>(reply, "Hello");
    if (!r) return std::move(r).error();
    const std::uint32_t version = (*r)->version();
    if (version < kMinProtocolVersion || version > kProtocolVersion)
        return Error{Errc::protocol, "server chose protocol version " + std::to_string(version) + ", this client speaks " +
                                         std::to_string(kMinProtocolVersion) + ".." + std::to_string(kProtocolVersion)};
    HelloAnswer a;
    a.version = version;
    ServerStatus& s = a.status;
    s.pid = (*r)->server_pid();
    if (const wire::LaunchStatistics* st = (*r)->statistics()) {
        s.launch_work_ns = st->work_ns();
        s.launches = st->launches();
        if (const auto* phases = st->phase_ns())
            for (flatbuffers::uoffset_t i = 0; i < phases->size() && i < s.launch_phases.ns.size(); ++i)
                s.launch_phases.ns[i] = phases->Get(i);
    }
    if (const wire::PoolStatus* p = (*r)->pool()) {
        s.pool_size = p->size();
        s.pool_ready = p->ready();
        s.pool_warming = p->warming();
        s.pool_served = p->served();
        s.pool_discarded = p->discarded();
        s.namespaces_pending = p->namespaces_pending();
    }
    if (reply.datagram.fds.size() == 1) a.table = std::move(reply.datagram.fds[0]);
    return a;
}

Result<ServerStatus> keep_hello(OpenedReply& reply, std::uint32_t& version, std::optional<StatusTableReader>& table) {
    auto answer = read_hello_reply(reply);
    if (!answer) return std::move(answer).error();
    version = answer->version;
    if (!table && answer->table) {
        auto mapped = StatusTableReader::map(answer->table.get());
        if (!mapped) return std::move(mapped).error();
        table.emplace(std::move(*mapped));
    }
    return answer->status;
}

Result<Container> read_launch_reply(OpenedReply& reply, bool tty, bool hold) {
    auto r = answer_as<wire::LaunchReply>(reply, "Launch");
    if (!r) return std::move(r).error();
    // The pidfd, then a tty launch's master or a hold launch's cgroup leaf, as the reply declares.
    std::vector<UniqueFd>& got = reply.datagram.fds;
    const auto* roles = (*r)->fds();
    if (!roles || roles->size() != got.size())
        return Error{Errc::protocol, "Launch reply did not carry the fds it declares"};
    if (got.empty() || roles->Get(0) != wire::FdRole::Pidfd)
        return Error{Errc::protocol, "Launch reply did not carry a pidfd first"};
    UniqueFd terminal, cgroup;
    HoldExtras extras;
    for (std::size_t i = 1; i < got.size(); ++i) {
        const wire::FdRole role = roles->Get(static_cast<flatbuffers::uoffset_t>(i));
        if (role == wire::FdRole::Terminal && tty && !terminal) terminal = std::move(got[i]);
        else if (role == wire::FdRole::Cgroup && hold && !cgroup) cgroup = std::move(got[i]);
        else if (role == wire::FdRole::DeviceProgram && hold && !extras.device_program)
            extras.device_program = std::move(got[i]);
        else if (role == wire::FdRole::Namespace && hold && extras.namespaces.size() < 3)
            extras.namespaces.push_back(std::move(got[i]));
        else return Error{Errc::protocol, "Launch reply carried an fd this launch did not ask for"};
    }
    if (tty && !terminal) return Error{Errc::protocol, "Launch reply did not carry a pidfd and a terminal"};
    const std::uint32_t end_seq = (*r)->destroy_on_exit() ? reply.message->seq() : 0;
    return Container(read_info(*(*r)->container()), std::move(got[0]), std::move(terminal), std::move(cgroup), end_seq,
                     std::move(extras));
}

Result<ExitStatus> read_wait_reply(OpenedReply& reply) {
    auto r = answer_as<wire::WaitReply>(reply, "Wait");
    if (!r) return std::move(r).error();
    const ContainerInfo info = read_info(*(*r)->container());
    if (!info.exit) return Error{Errc::protocol, "Wait reply without an exit status"};
    return *info.exit;
}

Result<void> read_kill_reply(OpenedReply& reply) {
    auto r = answer_as<wire::KillReply>(reply, "Kill");
    if (!r) return std::move(r).error();
    return {};
}

Result<ContainerInfo> read_destroy_reply(OpenedReply& reply) {
    auto r = answer_as<wire::DestroyReply>(reply, "Destroy");
    if (!r) return std::move(r).error();
    return read_info(*(*r)->container());
}

Result<std::vector<ContainerInfo>> read_list_reply(OpenedReply& reply) {
    auto r = answer_as<wire::ListReply>(reply, "List");
    if (!r) return std::move(r).error();
    std::vector<ContainerInfo> out;
    if ((*r)->containers())
        for (const wire::ContainerInfo* c : *(*r)->containers()) out.push_back(read_info(*c));
    return out;
}

Result<Container> read_attach_reply(OpenedReply& reply) {
    auto r = answer_as<wire::AttachReply>(reply, "Attach");
    if (!r) return std::move(r).error();
    if (reply.datagram.fds.size() != 1)
        return Error{Errc::protocol, "Attach reply did not carry exactly one pidfd"};
    return Container(read_info(*(*r)->container()), std::move(reply.datagram.fds[0]));
}

Result<void> read_adopt_reply(OpenedReply& reply) {
    auto r = answer_as<wire::AdoptReply>(reply, "Adopt");
    if (!r) return std::move(r).error();
    return {};
}

namespace {

// The message a caller gets for a connection the server closed.
Error closed(Error e) {
    if (e.code == Errc::disconnected) e.message = "nsfork server closed the connection";
    return e;
}

} // namespace

Result<void> send_request(int sock, std::span<const std::uint8_t> bytes, std::uint32_t seq, std::span<const int> fds) {
    auto wrapped = wrap_if_large(bytes, seq, false);
    if (!wrapped) return std::move(wrapped).error();
    std::vector<int> all;
    if (wrapped->body) { // a large request goes as a sealed memfd, its own fds after it
        all.push_back(wrapped->body.get());
        all.insert(all.end(), fds.begin(), fds.end());
        bytes = wrapped->envelope;
        fds = all;
    }
    auto sent = send_datagram(sock, bytes, fds);
    if (!sent) return closed(std::move(sent).error());
    return {};
}

Result<OpenedReply> receive_reply(int sock) {
    auto got = recv_datagram(sock);
    // A peer that closed with our request unread resets us (ECONNRESET) even though its last
    // words (a seq-0 Error) are still queued: the next recvmsg returns them.
    if (!got && got.error().sys_errno == ECONNRESET) got = recv_datagram(sock);
    if (!got) return closed(std::move(got).error());
    auto opened = open_reply(std::move(*got), kMaxReplyBody);
    if (!opened) {
        Error e = std::move(opened).error();
        e.message = "bad reply from the server: " + e.message;
        return e;
    }
    return std::move(*opened);
}

std::optional<Error> server_refusal(const OpenedReply& reply) {
    if (reply.message->seq() != 0) return std::nullopt;
    if (const wire::Error* e = reply.message->reply_as_Error()) return read_error(*e);
    return std::nullopt;
}

} // namespace nsfork
