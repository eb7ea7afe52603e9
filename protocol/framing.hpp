// Datagram framing on AF_UNIX SOCK_SEQPACKET: one message per datagram, fds in SCM_RIGHTS.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "base/limits.hpp"
#include "base/unix_socket.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace nsfork {

// Most fds one datagram may carry (base/limits.hpp); more is a protocol error (MSG_CTRUNC).
inline constexpr std::size_t kMaxFds = kMaxPassedFds;

struct Datagram {
    std::vector<std::uint8_t> bytes;
    std::vector<UniqueFd> fds; // received close-on-exec
};

// Sends one datagram with `fds` attached. Errors carry errno; EAGAIN on a non-blocking socket
// means "try again when writable". Never raises SIGPIPE.
Result<void> send_datagram(int sock, std::span<const std::uint8_t> bytes, std::span<const int> fds);

// Receives one datagram. Peer closed: Errc::disconnected. Nothing there on a non-blocking
// socket: Errc::internal with sys_errno EAGAIN. A datagram over kMaxDatagram or with more than
// kMaxFds fds: Errc::protocol (and every fd that did arrive is closed).
Result<Datagram> recv_datagram(int sock);

} // namespace nsfork
