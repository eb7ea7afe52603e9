// libFuzzer target: every step the server and the client take on bytes that came off the socket,
// up to the point where a request would touch the kernel.
//
//   requests: verify_request → (Launch) parse_launch with as many fds as the request declares
//             (a hold launch's and its cgroup_name included) → validate_id of the ids it names; open_request, with no fd and with a non-memfd
//             fd, for the Body path;
//   replies:  verify_reply → read_info / read_error / to_json of what it carries; open_reply.
//   both:     with their file identifier (NSFQ, NSFR), without one (protocol version 1), with
//             another: identify agrees with what verify_* and open_* accept; a Hello's version
//             negotiated within both ranges.
//
// Built with clang (-fsanitize=fuzzer,address,undefined) by tests/fuzz/build.sh; run it with
// `scripts/dev.sh fuzz [SECONDS]`. The seed corpus is tests/fuzz/corpus/ (make_corpus.cpp).
#include "cli/json.hpp"
#include "protocol/messages.hpp"
#include "server/ids.hpp"
#include "server/request.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

using namespace nsfork;

namespace {

// Defeats dead-code elimination of the reads below.
volatile std::size_t g_sink;

// kMaxFds descriptors on /dev/null, opened once: the server never receives more than that.
const std::vector<int>& dev_null_pool() {
    static const std::vector<int> pool = [] {
        std::vector<int> fds;
        for (std::size_t i = 0; i < kMaxFds; ++i) {
            const int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
            if (fd < 0) std::abort();
            fds.push_back(fd);
        }
        return fds;
    }();
    return pool;
}

// Feeds a string a client named to validate_id, as the server would before using it.
void check_id(const flatbuffers::String* s) {
    if (!s) return;
    auto ok = validate_id(s->string_view());
    g_sink = g_sink + (ok ? 1 : ok.error().message.size());
}

// What the server does with a verified Launch: parse_launch with exactly the fds the request
// declares (up to kMaxFds: a datagram with more never reaches it), borrowed from the pool.
void launch(const wire::Launch& req) {
    const std::size_t declared = req.fds() ? req.fds()->size() : 0;
    const std::size_t carried = declared < kMaxFds ? declared : kMaxFds;
    std::vector<UniqueFd> fds;
    for (std::size_t i = 0; i < carried; ++i) fds.emplace_back(dev_null_pool()[i]);
    auto parsed = parse_launch(req, fds);
    // The pool keeps its fds: released from `fds` however this function returns.
    struct Release {
        std::vector<UniqueFd>& fds;
        ~Release() {
            for (auto& fd : fds) (void)fd.release();
        }
    } release{fds};
    if (!parsed) {
        g_sink = g_sink + parsed.error().message.size();
        return;
    }
    const LaunchSpec& spec = parsed->spec;
    // A leaf name stays below the server's tree: relative, no empty, "." or ".." component. Only
    // a hold launch names one, and a hold launch carries no command setting at all.
    const std::string& name = parsed->cgroup_name;
    if (!name.empty()) {
        if (!spec.hold || name.size() > kMaxCgroupName || name.front() == '/' || name.back() == '/' ||
            name.find("//") != std::string::npos || name.find('\0') != std::string::npos)
            std::abort();
        for (std::size_t at = 0; at <= name.size();) {
            const std::size_t end = std::min(name.find('/', at), name.size());
            const std::string_view part = std::string_view(name).substr(at, end - at);
            if (part == "." || part == "..") std::abort();
            at = end + 1;
        }
    }
    if (spec.hold) {
        if (!spec.argv.empty() || !spec.env.empty() || spec.tty || spec.kill_group || spec.signal_mask ||
            spec.ignored_signals || spec.uid || spec.gid || spec.groups || !spec.extra_fds.empty() ||
            spec.stdio != std::array<int, 3>{-1, -1, -1})
            std::abort();
        if (parsed->join_fd != -1 && std::find_if(fds.begin(), fds.end(), [&](const UniqueFd& own) {
                                         return own.get() == parsed->join_fd;
                                     }) == fds.end())
            std::abort();
        return check_id(req.parent());
    }
    // Whatever parse_launch accepted must be safe to hand to exec: C strings, "K=V", a path.
    if (spec.argv.empty() || spec.argv[0].empty()) std::abort();
    for (const auto& a : spec.argv)
        if (a.find('\0') != std::string::npos) std::abort();
    for (const auto& e : spec.env)
        if (e.find('\0') != std::string::npos || e.empty() || e[0] == '=' || e.find('=') == std::string::npos)
            std::abort();
    if (spec.cwd.empty() || spec.cwd[0] != '/' || spec.cwd.find('\0') != std::string::npos) std::abort();
    if (!parsed->id.empty() && !validate_id(parsed->id)) std::abort();
    // Every fd it kept is one of the request's own.
    auto carried_fd = [&](int fd) {
        for (const auto& own : fds)
            if (own.get() == fd) return true;
        return false;
    };
    for (int fd : spec.stdio)
        if (fd != -1 && !carried_fd(fd)) std::abort();
    if (parsed->join_fd != -1 && !carried_fd(parsed->join_fd)) std::abort();
    if (spec.extra_fds.size() > kMaxExtraFds) std::abort();
    for (int fd : spec.extra_fds)
        if (!carried_fd(fd)) std::abort();
    // The command's process: no stdio beside a terminal, no signal the kernel or libc refuses,
    // no id that means "unchanged".
    if (spec.tty && (spec.stdio[0] != -1 || spec.stdio[1] != -1 || spec.stdio[2] != -1)) std::abort();
    constexpr std::uint64_t kRefused = 1ULL << (SIGKILL - 1) | 1ULL << (SIGSTOP - 1) | 1ULL << 31 | 1ULL << 32;
    if ((spec.signal_mask | spec.ignored_signals) & kRefused) std::abort();
    if ((spec.uid && *spec.uid == static_cast<uid_t>(-1)) || (spec.gid && *spec.gid == static_cast<gid_t>(-1)))
        std::abort();
    if (spec.groups) {
        if (spec.groups->size() > kMaxGroups) std::abort();
        for (gid_t g : *spec.groups)
            if (g == static_cast<gid_t>(-1)) std::abort();
    }
    check_id(req.parent());
}

// The server's answer to a Hello: a version both sides speak, or a refusal.
void hello(const wire::Hello& h) {
    auto v = negotiate_version(h);
    if (!v) {
        g_sink = g_sink + v.error().message.size();
        return;
    }
    const std::uint32_t min = h.min_version() ? h.min_version() : h.version();
    if (*v < kMinProtocolVersion || *v > kProtocolVersion || *v < min || *v > h.version()) std::abort();
}

void request(const wire::RequestMessage& m) {
    g_sink = g_sink + m.seq();
    switch (m.request_type()) {
    case wire::Request::Hello: return hello(*m.request_as_Hello());
    case wire::Request::Launch: return launch(*m.request_as_Launch());
    case wire::Request::Wait: return check_id(m.request_as_Wait()->id());
    case wire::Request::Kill:
        g_sink = g_sink + static_cast<std::size_t>(m.request_as_Kill()->signal()) + m.request_as_Kill()->all();
        return check_id(m.request_as_Kill()->id());
    case wire::Request::Destroy: return check_id(m.request_as_Destroy()->id());
    case wire::Request::Attach: return check_id(m.request_as_Attach()->id());
    case wire::Request::Adopt: return check_id(m.request_as_Adopt()->id());
    case wire::Request::Body: g_sink = g_sink + m.request_as_Body()->size(); return;
    default: return;
    }
}

// Reads a ContainerInfo as the client does, including its JSON form (the CLI's --json).
void info(const wire::ContainerInfo* c) {
    if (!c) return;
    g_sink = g_sink + cli::to_json(read_info(*c)).size();
}

void reply(const wire::ReplyMessage& m) {
    g_sink = g_sink + m.seq();
    switch (m.reply_type()) {
    case wire::Reply::HelloReply: g_sink = g_sink + m.reply_as_HelloReply()->version(); return;
    case wire::Reply::LaunchReply: return info(m.reply_as_LaunchReply()->container());
    case wire::Reply::WaitReply: return info(m.reply_as_WaitReply()->container());
    case wire::Reply::DestroyReply: return info(m.reply_as_DestroyReply()->container());
    case wire::Reply::AttachReply: return info(m.reply_as_AttachReply()->container());
    case wire::Reply::AdoptReply: return;
    case wire::Reply::ListReply:
        if (auto* cs = m.reply_as_ListReply()->containers())
            for (const wire::ContainerInfo* c : *cs) info(c);
        return;
    case wire::Reply::Error: g_sink = g_sink + read_error(*m.reply_as_Error()).message.size(); return;
    default: return;
    }
}

// A datagram of `bytes` with no fd, or with one non-memfd fd (a /dev/null from the pool).
Datagram datagram(std::span<const std::uint8_t> bytes, bool with_fd) {
    Datagram d;
    d.bytes.assign(bytes.begin(), bytes.end());
    if (with_fd) d.fds.emplace_back(::fcntl(dev_null_pool()[0], F_DUPFD_CLOEXEC, 3));
    return d;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);
    // Nothing with the other side's identifier, or another one, is ever taken.
    const Identified id = identify(bytes);
    if (const wire::RequestMessage* m = verify_request(bytes)) {
        if (id != Identified::request && id != Identified::none) std::abort();
        request(*m);
    }
    if (const wire::ReplyMessage* m = verify_reply(bytes)) {
        if (id != Identified::reply && id != Identified::none) std::abort();
        reply(*m);
    }
    for (bool with_fd : {false, true}) {
        std::uint32_t seq = 0;
        auto opened = open_request(datagram(bytes, with_fd), 1 << 20, seq);
        if (opened && (id == Identified::reply || id == Identified::other)) std::abort();
        if (opened && opened->message->request_type() == wire::Request::Launch) launch(*opened->message->request_as_Launch());
        auto r = open_reply(datagram(bytes, with_fd), 1 << 20);
        if (r && (id == Identified::request || id == Identified::other)) std::abort();
        if (r) reply(*r->message);
    }
    return 0;
}
