#include "protocol/framing.hpp"

#include "base/syscalls.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace nsfork {

namespace {

// EAGAIN on a non-blocking socket is the common case, not a failure: no strerror (a locale
// lookup under a lock) and no allocation (the message fits the string's own buffer).
Error would_block() { return Error{Errc::internal, "would block", EAGAIN}; }

} // namespace

Result<void> send_datagram(int sock, std::span<const std::uint8_t> bytes, std::span<const int> fds) {
    if (fds.size() > kMaxFds) return Error{Errc::internal, "too many fds for one datagram"};
    if (sys::send_with_fds(sock, bytes.data(), bytes.size(), fds.data(), fds.size()) < 0) {
        if (errno == EAGAIN) return would_block();
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
    int fds[kMaxFds];
    std::size_t count = 0;
    int flags = 0;
    const ssize_t n = sys::recv_with_fds(sock, buffer, sizeof buffer, fds, kMaxFds, &count, &flags);
    // Owned at once, so that no error path below leaks one.
    for (std::size_t i = 0; i < count; ++i) d.fds.emplace_back(fds[i]);
    if (n < 0) {
        if (errno == EAGAIN) return would_block(); // once per wake-up of the server's read loop
        const Errc code = errno == ECONNRESET ? Errc::disconnected : Errc::internal;
        return sys_error(code, "recvmsg failed", errno);
    }
    // recvmsg returns 0 both for a zero-length datagram and at end of stream; only the latter
    // comes with the peer's shutdown visible as POLLRDHUP.
    if (n == 0 && d.fds.empty() && !(flags & MSG_TRUNC)) {
        pollfd p{sock, POLLRDHUP, 0};
        if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)))
            return Error{Errc::disconnected, "peer closed the connection"};
    }
    // The kernel cuts the fds short when they do not fit (more than kMaxFds came) and when it
    // cannot install one of them here (we are out of fds): only the first fills every slot.
    if ((flags & MSG_CTRUNC) && count == kMaxFds)
        return Error{Errc::protocol, "datagram carried more than " + std::to_string(kMaxFds) + " fds"};
    if (flags & MSG_CTRUNC)
        return Error{Errc::unavailable, "a datagram's fds could not all be received: this process is out of fds",
                     EMFILE};
    if (flags & MSG_TRUNC)
        return Error{Errc::protocol,
                     "datagram larger than " + std::to_string(kMaxDatagram / 1024) + " KiB"};
    d.bytes.assign(buffer, buffer + n);
    return d;
}

} // namespace nsfork
