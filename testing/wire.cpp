#include "testing/wire.hpp"

#include "base/unix_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace nsfork::testing {

Bytes bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
    return Bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

Bytes request(std::uint32_t seq, std::uint8_t type, flatbuffers::FlatBufferBuilder& fbb, flatbuffers::Offset<void> body,
              const char* identifier) {
    fbb.Finish(wire::CreateRequestMessage(fbb, seq, static_cast<wire::Request>(type), body), identifier);
    return bytes_of(fbb);
}

Bytes hello(std::uint32_t seq, std::uint32_t version, std::uint32_t min_version, const char* identifier) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Hello), fbb,
                   wire::CreateHello(fbb, version, min_version).Union(), identifier);
}

Bytes launch_request(std::uint32_t seq, const LaunchFields& f) {
    flatbuffers::FlatBufferBuilder fbb;
    auto id = f.id ? fbb.CreateString(*f.id) : 0;
    auto argv = f.argv ? fbb.CreateVectorOfStrings(*f.argv) : 0;
    auto env = fbb.CreateVectorOfStrings(f.env);
    auto cwd = f.cwd ? fbb.CreateString(*f.cwd) : 0;
    auto roles = fbb.CreateVector(f.roles);
    auto parent = f.parent ? fbb.CreateString(*f.parent) : 0;
    flatbuffers::Offset<wire::User> user = 0;
    if (f.uid || f.gid || f.groups) {
        auto groups = f.groups ? fbb.CreateVector(*f.groups) : 0;
        wire::UserBuilder b(fbb);
        if (f.uid) b.add_uid(*f.uid);
        if (f.gid) b.add_gid(*f.gid);
        if (f.groups) b.add_groups(groups);
        user = b.Finish();
    }
    const auto start = fbb.StartTable();
    if (f.id) fbb.AddOffset(wire::Launch::VT_ID, id);
    if (f.argv) fbb.AddOffset(wire::Launch::VT_ARGV, argv);
    fbb.AddOffset(wire::Launch::VT_ENV, env);
    if (f.cwd) fbb.AddOffset(wire::Launch::VT_CWD, cwd);
    fbb.AddOffset(wire::Launch::VT_FDS, roles);
    if (f.parent) fbb.AddOffset(wire::Launch::VT_PARENT, parent);
    fbb.AddElement<std::uint8_t>(wire::Launch::VT_SHARE_PID_NAMESPACE, f.share_pid_namespace, 0);
    fbb.AddElement<std::uint8_t>(wire::Launch::VT_TIE_TO_CONNECTION, f.tie_to_connection, 0);
    fbb.AddElement<std::uint8_t>(wire::Launch::VT_DESTROY_ON_EXIT, f.destroy_on_exit, 0);
    fbb.AddElement<std::uint8_t>(wire::Launch::VT_TTY, f.tty, 0);
    fbb.AddElement<std::uint8_t>(wire::Launch::VT_KILL_GROUP, f.kill_group, 0);
    fbb.AddElement<std::uint64_t>(wire::Launch::VT_SIGNAL_MASK, f.signal_mask, 0);
    fbb.AddElement<std::uint64_t>(wire::Launch::VT_IGNORED_SIGNALS, f.ignored_signals, 0);
    if (!user.IsNull()) fbb.AddOffset(wire::Launch::VT_USER, user);
    const flatbuffers::Offset<void> body(fbb.EndTable(start));
    return request(seq, static_cast<std::uint8_t>(wire::Request::Launch), fbb, body);
}

Bytes wait_request(std::uint32_t seq, const std::string& id) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Wait), fbb,
                   wire::CreateWait(fbb, fbb.CreateString(id)).Union());
}

Bytes kill_request(std::uint32_t seq, const std::string& id, int signal, bool all) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Kill), fbb,
                   wire::CreateKill(fbb, fbb.CreateString(id), signal, all).Union());
}

Bytes destroy_request(std::uint32_t seq, const std::string& id) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Destroy), fbb,
                   wire::CreateDestroy(fbb, fbb.CreateString(id)).Union());
}

Bytes without_id(std::uint32_t seq, wire::Request type) {
    flatbuffers::FlatBufferBuilder fbb;
    const flatbuffers::Offset<void> body(fbb.EndTable(fbb.StartTable()));
    return request(seq, static_cast<std::uint8_t>(type), fbb, body);
}

Bytes body_envelope(std::uint32_t seq, std::uint64_t size) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Body), fbb, wire::CreateBody(fbb, size).Union());
}

Result<RawConnection> RawConnection::connect(const std::string& socket_path) {
    auto addr = unix_address(socket_path);
    if (!addr) return std::move(addr).error();
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!sock) return sys_error(Errc::internal, "socket", errno);
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
        return sys_error(Errc::unavailable, "cannot connect to " + socket_path, errno);
    return RawConnection(std::move(sock));
}

// Its own sendmsg, not sys::send_with_fds: it must be able to send more fds than the protocol allows.
int send_raw(int sock, std::span<const std::uint8_t> bytes, std::span<const int> fds, int flags) {
    iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    if (!fds.empty()) {
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return ::sendmsg(sock, &msg, MSG_NOSIGNAL | flags) < 0 ? errno : 0;
}

Result<Datagram> RawConnection::receive(std::chrono::milliseconds timeout) {
    pollfd p{sock_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1)
        return Error{Errc::unavailable, "no datagram within " + std::to_string(timeout.count()) + " ms"};
    return recv_datagram(sock_.get());
}

} // namespace nsfork::testing
