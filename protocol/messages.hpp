// Building and reading wire messages: the only place that knows the flatbuffers schema.
#pragma once

#include "launcher/error.hpp"
#include "protocol/nsfork_generated.h"
#include "protocol/types.hpp"

#include <cstdint>
#include <span>

namespace nsfork {

inline constexpr std::uint32_t kProtocolVersion = 1;

// The request in `bytes` after the flatbuffers Verifier accepted it, or nullptr.
const wire::RequestMessage* verify_request(std::span<const std::uint8_t> bytes);
// The reply in `bytes` after the flatbuffers Verifier accepted it, or nullptr.
const wire::ReplyMessage* verify_reply(std::span<const std::uint8_t> bytes);

flatbuffers::Offset<wire::ContainerInfo> write_info(flatbuffers::FlatBufferBuilder& fbb,
                                                    const ContainerInfo& info);
ContainerInfo read_info(const wire::ContainerInfo& info);

// A finished ReplyMessage carrying `error`.
void write_error_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const Error& error);
Error read_error(const wire::Error& error);

// A flatbuffers string as a std::string ("" for a missing one).
inline std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

} // namespace nsfork
