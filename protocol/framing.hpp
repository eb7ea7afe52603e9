// Datagram framing on AF_UNIX SOCK_SEQPACKET: one message per datagram, fds in SCM_RIGHTS.
#pragma once

#include "launcher/error.hpp"
#include "launcher/fd.hpp"
#include "launcher/syscalls.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace nsfork {

// Largest datagram either side accepts. Larger messages travel as a Body in a sealed memfd
// (protocol/body.hpp), so this only bounds the envelope and small messages.
inline constexpr std::size_t kMaxDatagram = 64 * 1024;
// Most fds one datagram may carry; more is a protocol error (MSG_CTRUNC).
inline constexpr std::size_t kMaxFds = sys::kMaxPassedFds;

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

// Creates a connected SOCK_SEQPACKET pair, both ends close-on-exec.
Result<std::pair<UniqueFd, UniqueFd>> seqpacket_pair();

} // namespace nsfork
