// Building and reading wire messages: the only place that knows the flatbuffers schema.
#pragma once

#include "nsfork/error.hpp"
#include "protocol/body.hpp"
#include "protocol/framing.hpp"
#include "protocol/nsfork_generated.h"
#include "nsfork/types.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace nsfork {

// The protocol versions this build speaks, negotiated in Hello (PROTOCOL.md). Version 2 =
// version 1 + file identifiers; a connection that never says Hello speaks version 1.
inline constexpr std::uint32_t kProtocolVersion = 2;
inline constexpr std::uint32_t kMinProtocolVersion = 1;

// The file identifiers, bytes 4..7 of a finished message: every request carries
// kRequestIdentifier (the schema's file_identifier), every reply kReplyIdentifier — Body
// envelopes and the messages inside them too. A message with none (from a peer built before
// version 2) is accepted; one with another is refused.
inline constexpr char kRequestIdentifier[] = "NSFQ";
inline constexpr char kReplyIdentifier[] = "NSFR";

// Finishes a RequestMessage{seq, type, body} in `fbb`, with its identifier. Every request is
// finished here.
void finish_request(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, wire::Request type,
                    flatbuffers::Offset<void> body);
// Finishes a ReplyMessage{seq, type, body} in `fbb`, with its identifier. Every reply is finished
// here.
void finish_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, wire::Reply type,
                  flatbuffers::Offset<void> body);

// What bytes 4..7 of a message say it is. Without an identifier they are part of the root
// table's vtable or the padding before it, which a flatbuffers builder never makes four
// printable ASCII characters; `other` is four printable characters but neither of ours.
enum class Identified { request, reply, none, other };
Identified identify(std::span<const std::uint8_t> bytes);

// Most supplementary groups a Launch may give its command. The kernel takes up to NGROUPS_MAX
// (65536), but they travel to the shim in its one plan datagram (kMaxPlanBytes, beside argv and
// the environment) and the shim keeps them without allocating; users belong to a few dozen.
inline constexpr std::size_t kMaxGroups = 256;
// Most extra fds (FdRole Extra) a Launch may pass: whatever else it carries (three stdio fds, a
// pid namespace, a Body's memfd), they fit one datagram (kMaxFds) to the server and one plan
// datagram to the shim.
inline constexpr std::size_t kMaxExtraFds = kMaxFds - 5;

// The request in `bytes` after the flatbuffers Verifier accepted it, or nullptr; nullptr too
// for a message identified as anything but a request (one with no identifier passes).
const wire::RequestMessage* verify_request(std::span<const std::uint8_t> bytes);
// The reply in `bytes` after the flatbuffers Verifier accepted it, or nullptr; nullptr too for
// a message identified as anything but a reply (one with no identifier passes).
const wire::ReplyMessage* verify_reply(std::span<const std::uint8_t> bytes);

// A received message, verified, with its body mapped when it came in a memfd.
template <class Root>
struct Received {
    Datagram datagram;              // its fds are the message's own (a body's memfd removed)
    std::optional<MappedBody> body; // where `message` lives when it came as a Body
    const Root* message = nullptr;
};

// Verifies a request datagram; a Body is checked, mapped (at most `max_body` bytes) and
// verified in place, the envelope and the message inside each with a request's identifier or
// none. `seq` gets the sequence number to answer on, even on failure: a message refused for its
// identifier is read as either root type for it; 0 when the datagram is unreadable.
Result<Received<wire::RequestMessage>> open_request(Datagram&& d, std::uint64_t max_body, std::uint32_t& seq);
// The same for replies, on the client side.
Result<Received<wire::ReplyMessage>> open_reply(Datagram&& d, std::uint64_t max_body);

// What to send for a finished message of `bytes`: the bytes themselves, or — above kMaxInline —
// a Body envelope, whose memfd must go first among the datagram's fds.
struct Wire {
    std::vector<std::uint8_t> envelope; // empty: send `bytes` as they are
    UniqueFd body;
};
Result<Wire> wrap_if_large(std::span<const std::uint8_t> bytes, std::uint32_t seq, bool reply);

flatbuffers::Offset<wire::ContainerInfo> write_info(flatbuffers::FlatBufferBuilder& fbb,
                                                    const ContainerInfo& info);
ContainerInfo read_info(const wire::ContainerInfo& info);

// A finished ReplyMessage carrying `error`.
void write_error_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const Error& error);
Error read_error(const wire::Error& error);

// A flatbuffers string as a std::string ("" for a missing one).
inline std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

} // namespace nsfork
