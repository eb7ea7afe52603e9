#include "framing.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace nsfork {

Result<void> send_datagram(int sock, std::span<const std::uint8_t> bytes, std::span<const int> fds) {
    if (fds.size() > kMaxFds) return Error{Errc::internal, "too many fds for one datagram"};
    if (sys::send_with_fds(sock, bytes.data(), bytes.size(), fds.data(), fds.size()) < 0) {
        const Errc code = (errno == EPIPE || errno == ECONNRESET) ? Errc::disconnected : Errc::internal;
        return sys_error(code, "sendmsg failed", errno);
    }
    return {};
}

Result<Datagram> recv_datagram(int sock) {
    Datagram d;
    // Received on the stack and copied out at its real size: a fresh kMaxDatagram vector per
    // datagram would cost more than the round trip itself.
    std::uint8_t buffer[kMaxDatagram];
    iovec iov{buffer, sizeof buffer};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        const Errc code = errno == ECONNRESET ? Errc::disconnected : Errc::internal;
        return sys_error(code, "recvmsg failed", errno);
    }
    // Take ownership of every fd first, so that no error path below leaks one.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            d.fds.emplace_back(fd);
        }
    }
    // recvmsg returns 0 both for a zero-length datagram and at end of stream; only the latter
    // comes with the peer's shutdown visible as POLLRDHUP.
    if (n == 0 && d.fds.empty() && !(msg.msg_flags & MSG_TRUNC)) {
        pollfd p{sock, POLLRDHUP, 0};
        if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)))
            return Error{Errc::disconnected, "peer closed the connection"};
    }
    if (msg.msg_flags & MSG_CTRUNC)
        return Error{Errc::protocol, "datagram carried more than " + std::to_string(kMaxFds) + " fds"};
    if (msg.msg_flags & MSG_TRUNC)
        return Error{Errc::protocol,
                     "datagram larger than " + std::to_string(kMaxDatagram / 1024) + " KiB"};
    d.bytes.assign(buffer, buffer + n);
    return d;
}

Result<std::pair<UniqueFd, UniqueFd>> seqpacket_pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return sys_error(Errc::internal, "socketpair failed", errno);
    return std::pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

} // namespace nsfork
