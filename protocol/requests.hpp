// The requests a client sends, each written as a finished RequestMessage into a caller's
// builder, and the reading of their replies: the client's half of the wire, as replies.hpp is
// the server's. Shared by the blocking Client and the AsyncSession, so that each request is
// encoded and each reply decoded in one place. No I/O here but sending and receiving one
// datagram.
#pragma once

#include "nsfork/client.hpp"
#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/types.hpp"
#include "protocol/messages.hpp"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace nsfork {

// A verified reply, and the datagram (or mapped body) it lives in.
using OpenedReply = Received<wire::ReplyMessage>;

// Replies larger than this are refused: a server has no reason to send more.
inline constexpr std::uint64_t kMaxReplyBody = 1ULL << 30;

// Hello offering the versions [kMinProtocolVersion, kProtocolVersion].
// Hello; `status_table`: whether the reply is to carry the status table (a client that mapped
// it already asks for none).
void write_hello(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, bool status_table = true, bool status = true);
// Launch of `options`; returns the fds to send with it, in the order its fds list declares
// (stdio, the pid namespace to join, extra fds). Refuses options no server would take.
Result<std::vector<int>> write_launch(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq,
                                      const LaunchOptions& options);
void write_wait(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id);
void write_kill(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id, int signal, bool all);
void write_destroy(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id);
void write_list(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq);
void write_attach(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id);
// Adopt; its one fd is the main process's pidfd.
void write_adopt(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::string_view id);

// What a HelloReply says: the version negotiated, the server's status, its status table.
struct HelloAnswer {
    std::uint32_t version = 0;
    ServerStatus status;
    UniqueFd table; // absent from a server without one
};

// Each read_*_reply turns the reply to its request into the caller's result: an Error reply
// into the Error it carries, a reply of another kind (or missing what it must carry) into
// Errc::protocol. The reply's fds are taken.
Result<HelloAnswer> read_hello_reply(OpenedReply& reply);
// What a connection keeps of a Hello `reply`, for the blocking Client and the AsyncSession alike:
// the version negotiated into `version`, and the status table mapped into `table` the first time.
// Returns what the server says of itself.
Result<ServerStatus> keep_hello(OpenedReply& reply, std::uint32_t& version, std::optional<StatusTableReader>& table);
// `tty`, `hold`: what the launch asked for, which says what fds may come beside the pidfd (its
// terminal's master, its cgroup leaf).
Result<Container> read_launch_reply(OpenedReply& reply, bool tty, bool hold);
Result<ExitStatus> read_wait_reply(OpenedReply& reply);
Result<void> read_kill_reply(OpenedReply& reply);
Result<ContainerInfo> read_destroy_reply(OpenedReply& reply);
Result<std::vector<ContainerInfo>> read_list_reply(OpenedReply& reply);
Result<Container> read_attach_reply(OpenedReply& reply);
Result<void> read_adopt_reply(OpenedReply& reply);

// Sends the finished request of `bytes` on `sock` with `fds` — a large one as a sealed body.
// A closed connection is Errc::disconnected ("nsfork server closed the connection"); a full
// non-blocking socket, Errc::internal with sys_errno EAGAIN (nothing was sent).
Result<void> send_request(int sock, std::span<const std::uint8_t> bytes, std::uint32_t seq, std::span<const int> fds);
// Receives and opens one reply from `sock`. Errors as recv_datagram's (EAGAIN on an empty
// non-blocking socket), the closed connection and an unreadable reply named for the caller.
Result<OpenedReply> receive_reply(int sock);
// The server's own word on seq 0, sent when it cannot serve this connection at all (a failed
// start, a refused peer) just before it closes: its Error, or nullopt for another reply.
std::optional<Error> server_refusal(const OpenedReply& reply);

} // namespace nsfork
