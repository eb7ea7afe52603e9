#include "messages.hpp"

#include <fmt/format.h>

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

namespace {

// JSON string literal for `s`.
std::string quote(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) out += fmt::format("\\u{:04x}", c);
            else out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

} // namespace

std::string to_json(const ContainerInfo& info) {
    std::string exit = "null";
    if (info.exit)
        exit = fmt::format(R"({{"code":{},"signal":{},"status":{}}})", info.exit->code,
                           info.exit->signal, info.exit->shell_code());
    return fmt::format(R"({{"id":{},"parent":{},"pid":{},"pidns":{},"state":{},"exit_status":{}}})",
                       quote(info.id), info.parent.empty() ? "null" : quote(info.parent), info.pid,
                       info.pidns, quote(to_string(info.state)), exit);
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

flatbuffers::Offset<wire::ContainerInfo> write_info(flatbuffers::FlatBufferBuilder& fbb,
                                                    const ContainerInfo& info) {
    auto id = fbb.CreateString(info.id);
    auto parent = info.parent.empty() ? 0 : fbb.CreateString(info.parent);
    wire::ExitStatus status(info.exit ? info.exit->code : 0, info.exit ? info.exit->signal : 0);
    wire::ContainerInfoBuilder b(fbb);
    b.add_id(id);
    if (!info.parent.empty()) b.add_parent(parent);
    b.add_pid(info.pid);
    b.add_pidns(info.pidns);
    b.add_state(static_cast<wire::State>(info.state));
    if (info.exit) b.add_exit_status(&status);
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
