#include "messages.hpp"

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

const wire::RequestMessage* verify_request(std::span<const std::uint8_t> bytes) {
    flatbuffers::Verifier v(bytes.data(), bytes.size());
    if (!v.VerifyBuffer<wire::RequestMessage>(nullptr)) return nullptr;
    return flatbuffers::GetRoot<wire::RequestMessage>(bytes.data());
}

const wire::ReplyMessage* verify_reply(std::span<const std::uint8_t> bytes) {
    flatbuffers::Verifier v(bytes.data(), bytes.size());
    if (!v.VerifyBuffer<wire::ReplyMessage>(nullptr)) return nullptr;
    return flatbuffers::GetRoot<wire::ReplyMessage>(bytes.data());
}

namespace {

template <class Root>
const Root* verify_as(std::span<const std::uint8_t> bytes) {
    flatbuffers::Verifier v(bytes.data(), bytes.size());
    return v.VerifyBuffer<Root>(nullptr) ? flatbuffers::GetRoot<Root>(bytes.data()) : nullptr;
}

// The union member that says "the real message is in a memfd".
const wire::Body* body_of(const wire::RequestMessage& m) { return m.request_as_Body(); }
const wire::Body* body_of(const wire::ReplyMessage& m) { return m.reply_as_Body(); }

template <class Root>
Result<Received<Root>> open(Datagram&& d, std::uint64_t max_body, std::uint32_t& seq) {
    Received<Root> r;
    r.datagram = std::move(d);
    const Root* outer = verify_as<Root>(r.datagram.bytes);
    seq = 0;
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
    if (reply) fbb.Finish(wire::CreateReplyMessage(fbb, seq, wire::Reply::Body, b));
    else fbb.Finish(wire::CreateRequestMessage(fbb, seq, wire::Request::Body, b));
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
    fbb.Finish(wire::CreateReplyMessage(fbb, seq, wire::Reply::Error, body.Union()));
}

Error read_error(const wire::Error& e) {
    return Error{static_cast<Errc>(e.code()), str(e.message()), e.sys_errno()};
}

} // namespace nsfork
