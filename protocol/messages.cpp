#include "messages.hpp"

#include <algorithm>

namespace nsfork {

static_assert(static_cast<int>(wire::ErrorCode::InvalidState) == static_cast<int>(Errc::invalid_state));
static_assert(static_cast<int>(wire::State::Destroyed) == static_cast<int>(State::destroyed));

std::string_view to_string(State s) {
    switch (s) {
    case State::starting: return "starting";
    case State::running: return "running";
    case State::exited: return "exited";
    case State::destroyed: return "destroyed";
    }
    return "unknown";
}

std::string_view to_string(LaunchPhase p) {
    switch (p) {
    case LaunchPhase::parse: return "parse";
    case LaunchPhase::policy: return "policy";
    case LaunchPhase::cgroup: return "cgroup";
    case LaunchPhase::clone_setup: return "clone3 setup";
    case LaunchPhase::plan: return "plan";
    case LaunchPhase::table: return "status table";
    case LaunchPhase::record: return "registry";
    case LaunchPhase::reply: return "reply";
    case LaunchPhase::wake: return "wake-ups in sends";
    case LaunchPhase::count: break;
    }
    return "unknown";
}

void finish_request(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, wire::Request type,
                    flatbuffers::Offset<void> body) {
    fbb.Finish(wire::CreateRequestMessage(fbb, seq, type, body), kRequestIdentifier);
}

void finish_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, wire::Reply type,
                  flatbuffers::Offset<void> body) {
    fbb.Finish(wire::CreateReplyMessage(fbb, seq, type, body), kReplyIdentifier);
}

Identified identify(std::span<const std::uint8_t> bytes) {
    constexpr std::size_t at = sizeof(flatbuffers::uoffset_t);
    if (bytes.size() < at + flatbuffers::kFileIdentifierLength) return Identified::none;
    const auto id = bytes.subspan(at, flatbuffers::kFileIdentifierLength);
    if (std::equal(id.begin(), id.end(), kRequestIdentifier)) return Identified::request;
    if (std::equal(id.begin(), id.end(), kReplyIdentifier)) return Identified::reply;
    // An unidentified message's bytes 4..7 hold padding (zeros) or the root table's vtable, whose
    // first field (its own size, < 256 bytes) has a zero high byte; or, when the root table shares
    // a vtable placed after it, its negative offset to it (high byte 0xff).
    const bool printable = std::all_of(id.begin(), id.end(), [](std::uint8_t c) { return c >= 0x20 && c <= 0x7e; });
    return printable ? Identified::other : Identified::none;
}

namespace {

// Why `bytes` cannot be a request (`want` request) or a reply; "" when its identifier is right or
// absent.
std::string identifier_refusal(std::span<const std::uint8_t> bytes, Identified want) {
    const Identified got = identify(bytes);
    if (got == want || got == Identified::none) return {};
    if (got == Identified::reply) return std::string("a reply (") + kReplyIdentifier + ") sent as a request";
    if (got == Identified::request) return std::string("a request (") + kRequestIdentifier + ") sent as a reply";
    const auto id = bytes.subspan(sizeof(flatbuffers::uoffset_t), flatbuffers::kFileIdentifierLength);
    const bool request = want == Identified::request;
    return "unknown file identifier '" + std::string(id.begin(), id.end()) + "' (an nsfork " +
           (request ? "request" : "reply") + " carries " + (request ? kRequestIdentifier : kReplyIdentifier) + ")";
}

template <class Root>
const Root* verify_as(std::span<const std::uint8_t> bytes) {
    flatbuffers::Verifier v(bytes.data(), bytes.size());
    return v.VerifyBuffer<Root>(nullptr) ? flatbuffers::GetRoot<Root>(bytes.data()) : nullptr;
}

template <class Root> constexpr Identified kIdentified = Identified::request;
template <> constexpr Identified kIdentified<wire::ReplyMessage> = Identified::reply;

// `bytes` verified as a `Root` whose identifier is right or absent, or nullptr.
template <class Root>
const Root* verify_identified(std::span<const std::uint8_t> bytes) {
    return identifier_refusal(bytes, kIdentified<Root>).empty() ? verify_as<Root>(bytes) : nullptr;
}

// The seq of a message refused for its identifier, read as whichever root type verifies (both
// have seq first); 0 when neither does.
std::uint32_t seq_of_misidentified(std::span<const std::uint8_t> bytes) {
    if (const auto* m = verify_as<wire::RequestMessage>(bytes)) return m->seq();
    if (const auto* m = verify_as<wire::ReplyMessage>(bytes)) return m->seq();
    return 0;
}

} // namespace

const wire::RequestMessage* verify_request(std::span<const std::uint8_t> bytes) {
    return verify_identified<wire::RequestMessage>(bytes);
}

const wire::ReplyMessage* verify_reply(std::span<const std::uint8_t> bytes) {
    return verify_identified<wire::ReplyMessage>(bytes);
}

namespace {

// The union member that says "the real message is in a memfd".
const wire::Body* body_of(const wire::RequestMessage& m) { return m.request_as_Body(); }
const wire::Body* body_of(const wire::ReplyMessage& m) { return m.reply_as_Body(); }

template <class Root>
Result<Received<Root>> open(Datagram&& d, std::uint64_t max_body, std::uint32_t& seq) {
    Received<Root> r;
    r.datagram = std::move(d);
    seq = 0;
    if (auto refused = identifier_refusal(r.datagram.bytes, kIdentified<Root>); !refused.empty()) {
        seq = seq_of_misidentified(r.datagram.bytes);
        return Error{Errc::protocol, std::move(refused)};
    }
    const Root* outer = verify_as<Root>(r.datagram.bytes);
    if (!outer) return Error{Errc::protocol, "message does not verify as an nsfork message"};
    seq = outer->seq();
    const wire::Body* body = body_of(*outer);
    if (!body) {
        r.message = outer;
        return r;
    }
    if (r.datagram.fds.empty()) return Error{Errc::bad_request, "a Body message carries no memfd"};
    auto mapped = MappedBody::map(r.datagram.fds.front().get(), body->size(), max_body);
    if (!mapped) return std::move(mapped).error();
    r.datagram.fds.erase(r.datagram.fds.begin()); // mapped: the fd is no longer needed
    r.body.emplace(std::move(*mapped));
    if (auto refused = identifier_refusal(r.body->bytes(), kIdentified<Root>); !refused.empty())
        return Error{Errc::protocol, "message body: " + refused};
    const Root* inner = verify_as<Root>(r.body->bytes());
    if (!inner) return Error{Errc::protocol, "message body does not verify as an nsfork message"};
    if (body_of(*inner)) return Error{Errc::protocol, "a message body holds another Body"};
    if (inner->seq() != seq) return Error{Errc::protocol, "message body's seq differs from its envelope's"};
    r.message = inner;
    return r;
}

} // namespace

Result<Received<wire::RequestMessage>> open_request(Datagram&& d, std::uint64_t max_body, std::uint32_t& seq) {
    return open<wire::RequestMessage>(std::move(d), max_body, seq);
}

Result<Received<wire::ReplyMessage>> open_reply(Datagram&& d, std::uint64_t max_body) {
    std::uint32_t seq;
    return open<wire::ReplyMessage>(std::move(d), max_body, seq);
}

Result<Wire> wrap_if_large(std::span<const std::uint8_t> bytes, std::uint32_t seq, bool reply) {
    Wire w;
    if (bytes.size() <= kMaxInline) return w;
    auto body = make_sealed_body(bytes);
    if (!body) return std::move(body).error();
    w.body = std::move(*body);
    flatbuffers::FlatBufferBuilder fbb(64);
    auto b = wire::CreateBody(fbb, bytes.size()).Union();
    if (reply) finish_reply(fbb, seq, wire::Reply::Body, b);
    else finish_request(fbb, seq, wire::Request::Body, b);
    w.envelope.assign(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
    return w;
}

flatbuffers::Offset<wire::ContainerInfo> write_info(flatbuffers::FlatBufferBuilder& fbb,
                                                    const ContainerInfo& info) {
    auto id = fbb.CreateString(info.id);
    auto parent = info.parent.empty() ? 0 : fbb.CreateString(info.parent);
    auto cgroup = info.cgroup.empty() ? 0 : fbb.CreateString(info.cgroup);
    wire::ExitStatus status(info.exit ? info.exit->code : 0, info.exit ? info.exit->signal : 0);
    wire::ContainerInfoBuilder b(fbb);
    b.add_id(id);
    if (!info.parent.empty()) b.add_parent(parent);
    b.add_pid(info.pid);
    b.add_pidns(info.pidns);
    b.add_state(static_cast<wire::State>(info.state));
    if (info.exit) b.add_exit_status(&status);
    b.add_slot(info.slot);
    b.add_held(info.held);
    if (!info.cgroup.empty()) b.add_cgroup(cgroup);
    return b.Finish();
}

ContainerInfo read_info(const wire::ContainerInfo& w) {
    ContainerInfo info;
    info.id = str(w.id());
    info.parent = str(w.parent());
    info.pid = w.pid();
    info.pidns = w.pidns();
    info.state = static_cast<State>(w.state());
    if (const wire::ExitStatus* s = w.exit_status()) info.exit = ExitStatus{s->code(), s->signal()};
    info.slot = w.slot();
    info.held = w.held();
    info.cgroup = str(w.cgroup());
    return info;
}

void write_error_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const Error& error) {
    auto message = fbb.CreateString(error.message);
    auto body = wire::CreateError(fbb, static_cast<wire::ErrorCode>(error.code), message,
                                  error.sys_errno);
    finish_reply(fbb, seq, wire::Reply::Error, body.Union());
}

Error read_error(const wire::Error& e) {
    return Error{static_cast<Errc>(e.code()), str(e.message()), e.sys_errno()};
}

} // namespace nsfork
