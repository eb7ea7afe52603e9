// Hostile input against a real `nsfork serve`, one case list and one runner: every case sends one
// bad datagram (built by hand and sent with raw sendmsg, so that no check of the client library
// stands in the way), asserts the exact Error reply (code and message, on the request's seq or,
// for a datagram that is not a request, on seq 0), and then checks that the server goes on
// serving: the same connection and a fresh one each launch and wait a container, and the
// server's fds and children are back where they were. Each case is its own Catch2 test (and so
// its own ctest process). The cases that need more than one datagram and an answer are in
// badinput_connections_test.cpp.
#include "badinput.hpp"
#include "base/syscalls.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <functional>
#include <optional>
#include <random>

using namespace nsfork;
using namespace nsfork::test;
using namespace nsfork::test::badinput;
using nsfork::testing::body_envelope;
using nsfork::testing::bytes_of;
using nsfork::testing::destroy_request;
using nsfork::testing::hello;
using nsfork::testing::kill_request;
using nsfork::testing::launch_request;
using nsfork::testing::LaunchFields;
using nsfork::testing::RawConnection;
using nsfork::testing::request;
using nsfork::testing::wait_request;
using nsfork::testing::without_id;

namespace {

// What a case sends: the datagram's bytes and fds (`owned` keeps them open until the answer).
struct Sent {
    Bytes bytes;
    std::vector<UniqueFd> owned;
    std::vector<int> fds;
};

// `bytes` carrying `fds`, which it keeps open.
template <class... Fds>
Sent with_fds(Bytes bytes, Fds&&... fds) {
    Sent s{std::move(bytes), {}, {}};
    (s.owned.push_back(std::forward<Fds>(fds)), ...);
    for (const auto& fd : s.owned) s.fds.push_back(fd.get());
    return s;
}

struct Case {
    const char* name;
    Errc code;
    std::string message;
    std::function<Sent(std::uint32_t seq)> build;
    // The datagram is not a request the server could read a seq from: it answers on seq 0.
    bool on_seq_zero = false;
    // A `probe sleep` container with this id runs while the case is sent, and must still run after.
    const char* running = nullptr;
    // The datagram is larger than the default socket send buffer.
    bool large = false;
    // The server's arguments beyond the suite's own.
    std::vector<std::string> server_args = {};
};

constexpr std::uint32_t kSeq = 5;

Bytes random_bytes(std::size_t size, unsigned seed) {
    Bytes junk(size);
    std::mt19937 rng(seed);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    REQUIRE_FALSE(verify_request(junk));
    return junk;
}

std::uint32_t word_at(const Bytes& b, std::size_t at) {
    std::uint32_t v;
    std::memcpy(&v, b.data() + at, sizeof v);
    return v;
}

void set_word(Bytes& b, std::size_t at, std::uint32_t v) { std::memcpy(b.data() + at, &v, sizeof v); }

// Offset of the first occurrence of `needle` in `b`.
std::size_t find_bytes(const Bytes& b, const Bytes& needle) {
    auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
    REQUIRE(it != b.end());
    return static_cast<std::size_t>(it - b.begin());
}

// A Launch of /bin/true with `change` applied to its fields.
Sent launch(std::uint32_t seq, const std::function<void(LaunchFields&)>& change) {
    LaunchFields f;
    change(f);
    return {launch_request(seq, f), {}, {}};
}

// A Launch of /bin/true declaring `roles`, carrying `fds`.
template <class... Fds>
Sent launch_with_roles(std::uint32_t seq, std::vector<std::uint8_t> roles, Fds&&... fds) {
    LaunchFields f;
    f.roles = std::move(roles);
    return with_fds(launch_request(seq, f), std::forward<Fds>(fds)...);
}

UniqueFd open_fd(const char* path, int flags) {
    UniqueFd fd(::open(path, flags | O_CLOEXEC, 0600));
    REQUIRE(fd);
    return fd;
}

// A Body envelope on `seq` over a memfd holding `inner` sealed with `seals`, declaring `size`.
Sent body(std::uint32_t seq, const Bytes& inner, int seals, std::uint64_t size) {
    return with_fds(body_envelope(seq, size), memfd_with(inner, seals));
}

constexpr auto kPidNamespace = static_cast<std::uint8_t>(wire::FdRole::PidNamespace);
constexpr auto kPidfd = static_cast<std::uint8_t>(wire::FdRole::Pidfd);
const std::string kNotSealed = "message body memfd is not sealed (it needs F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW "
                               "and F_SEAL_SEAL)";
const std::string kBadIdByte = "; allowed are letters, digits, '_', '-' and '.'";

std::vector<Case> framing_cases() {
    return {
        {.name = "bad input: random bytes", .code = Errc::protocol, .message = kDoesNotVerify,
         .build = [](std::uint32_t) { return Sent{random_bytes(200, 7), {}, {}}; }, .on_seq_zero = true},
        // recvmsg returns 0 for it just as at end of stream: the server must not take it for a close.
        {.name = "bad input: zero-length datagram", .code = Errc::protocol, .message = kDoesNotVerify,
         .build = [](std::uint32_t) { return Sent{}; }, .on_seq_zero = true},
        {.name = "bad input: truncated Launch request", .code = Errc::protocol, .message = kDoesNotVerify,
         .build = [](std::uint32_t seq) {
             Bytes whole = launch_request(seq, LaunchFields{});
             return Sent{Bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(whole.size() / 2)), {}, {}};
         }, .on_seq_zero = true},
        {.name = "bad input: datagram larger than the largest the server reads", .code = Errc::protocol,
         .message = "datagram larger than " + std::to_string(kMaxDatagram / 1024) + " KiB",
         .build = [](std::uint32_t) { return Sent{Bytes(kMaxDatagram + 4096, 0x41), {}, {}}; },
         .on_seq_zero = true, .large = true},
        // Fits the server's buffer exactly: read whole, then refused.
        {.name = "bad input: garbage of exactly the largest datagram size", .code = Errc::protocol,
         .message = kDoesNotVerify, .build = [](std::uint32_t) { return Sent{random_bytes(kMaxDatagram, 256), {}, {}}; },
         .on_seq_zero = true, .large = true},
        // A valid Hello underneath: it must not be answered, the datagram as a whole is refused; the
        // check after it includes that every fd that did arrive was closed.
        {.name = "bad input: 17 fds on one datagram", .code = Errc::protocol,
         .message = "datagram carried more than 16 fds", .build = [](std::uint32_t seq) {
             Sent s = with_fds(hello(seq), dev_null());
             s.fds.assign(kMaxFds + 1, s.fds[0]);
             return s;
         }, .on_seq_zero = true},
        {.name = "bad input: root offset past the end of the buffer", .code = Errc::protocol, .message = kDoesNotVerify,
         .build = [](std::uint32_t seq) {
             Bytes b = launch_request(seq, LaunchFields{});
             set_word(b, 0, static_cast<std::uint32_t>(b.size() + 64));
             return Sent{b, {}, {}};
         }, .on_seq_zero = true},
        {.name = "bad input: root table whose vtable offset points outside the buffer", .code = Errc::protocol,
         .message = kDoesNotVerify, .build = [](std::uint32_t seq) {
             Bytes b = launch_request(seq, LaunchFields{});
             set_word(b, word_at(b, 0), 0x80001000u); // soffset: vtable = table - soffset
             return Sent{b, {}, {}};
         }, .on_seq_zero = true},
        {.name = "bad input: argv string whose length runs past the end", .code = Errc::protocol,
         .message = kDoesNotVerify, .build = [](std::uint32_t seq) {
             const std::string marker = "MARKER-MARKER";
             LaunchFields f;
             f.argv = std::vector<std::string>{"/bin/echo", marker};
             Bytes b = launch_request(seq, f);
             set_word(b, find_bytes(b, Bytes(marker.begin(), marker.end())) - 4, 0x7ffffff0u);
             return Sent{b, {}, {}};
         }, .on_seq_zero = true},
        {.name = "bad input: fd role vector whose length runs past the end", .code = Errc::protocol,
         .message = kDoesNotVerify, .build = [](std::uint32_t seq) {
             LaunchFields f;
             f.roles = {0, 1, 2};
             Bytes b = launch_request(seq, f);
             set_word(b, find_bytes(b, Bytes{3, 0, 0, 0, 0, 1, 2}), 0x00fffff0u);
             return Sent{b, {}, {}};
         }, .on_seq_zero = true},
        {.name = "bad input: a bare Hello table as the root, not a RequestMessage", .code = Errc::protocol,
         .message = kDoesNotVerify, .build = [](std::uint32_t) {
             flatbuffers::FlatBufferBuilder fbb;
             fbb.Finish(wire::CreateHello(fbb, kProtocolVersion));
             return Sent{bytes_of(fbb), {}, {}};
         }, .on_seq_zero = true},
        // Without an identifier (a peer of the previous schema), a reply is read as a request of
        // the reply's union type (RequestMessage and ReplyMessage have the same shape). Error (7) is
        // Body (7) among requests, whose ulong field does not line up with Error's: the Verifier
        // refuses it.
        {.name = "bad input: an unidentified Error ReplyMessage sent as a request", .code = Errc::protocol,
         .message = kDoesNotVerify, .build = [](std::uint32_t seq) {
             flatbuffers::FlatBufferBuilder fbb;
             auto e = wire::CreateError(fbb, wire::ErrorCode::Internal, fbb.CreateString("not a request"));
             fbb.Finish(wire::CreateReplyMessage(fbb, seq, wire::Reply::Error, e.Union()));
             return Sent{bytes_of(fbb), {}, {}};
         }, .on_seq_zero = true},
    };
}

// File identifiers and Hello's version negotiation (PROTOCOL.md): refused on the request's seq,
// read for it whichever root type verifies.
std::vector<Case> identifier_and_version_cases() {
    return {
        {.name = "bad input: an Error ReplyMessage sent as a request", .code = Errc::protocol,
         .message = "a reply (NSFR) sent as a request", .build = [](std::uint32_t seq) {
             flatbuffers::FlatBufferBuilder fbb;
             write_error_reply(fbb, seq, Error{Errc::internal, "not a request"});
             return Sent{bytes_of(fbb), {}, {}};
         }},
        {.name = "bad input: a request with an unknown file identifier", .code = Errc::protocol,
         .message = "unknown file identifier 'ABCD' (an nsfork request carries NSFQ)",
         .build = [](std::uint32_t seq) { return Sent{hello(seq, kProtocolVersion, 0, "ABCD"), {}, {}}; }},
        {.name = "bad input: garbage with a file identifier", .code = Errc::protocol,
         .message = "unknown file identifier 'JUNK' (an nsfork request carries NSFQ)", .build = [](std::uint32_t) {
             Bytes b = random_bytes(200, 11);
             std::memcpy(b.data() + 4, "JUNK", 4);
             return Sent{b, {}, {}};
         }, .on_seq_zero = true},
        {.name = "bad input: a Body whose message is a reply", .code = Errc::protocol,
         .message = "message body: a reply (NSFR) sent as a request", .build = [](std::uint32_t seq) {
             flatbuffers::FlatBufferBuilder fbb;
             write_error_reply(fbb, seq, Error{Errc::internal, "not a request"});
             return body(seq, bytes_of(fbb), kBodySeals, fbb.GetSize());
         }},
        {.name = "bad input: a Hello of a version above the server's", .code = Errc::protocol,
         .message = "protocol version 3 not supported: this server speaks 1..2",
         .build = [](std::uint32_t seq) { return Sent{hello(seq, 3), {}, {}}; }},
        {.name = "bad input: a Hello of versions all above the server's", .code = Errc::protocol,
         .message = "protocol versions 3..9 not supported: this server speaks 1..2",
         .build = [](std::uint32_t seq) { return Sent{hello(seq, 9, 3), {}, {}}; }},
        {.name = "bad input: a Hello of version 0", .code = Errc::protocol,
         .message = "protocol version 0 not supported: this server speaks 1..2",
         .build = [](std::uint32_t seq) { return Sent{hello(seq, 0), {}, {}}; }},
        {.name = "bad input: a Hello whose min_version is above its version", .code = Errc::protocol,
         .message = "Hello's min_version 2 is above its version 1",
         .build = [](std::uint32_t seq) { return Sent{hello(seq, 1, 2), {}, {}}; }},
    };
}

// Missing required fields: the Verifier refuses them (seq 0).
std::vector<Case> missing_field_cases() {
    return {
        {.name = "bad input: Launch without argv", .code = Errc::protocol, .message = kDoesNotVerify,
         .build = [](std::uint32_t seq) { return launch(seq, [](LaunchFields& f) { f.argv.reset(); }); },
         .on_seq_zero = true},
        {.name = "bad input: Wait without id", .code = Errc::protocol, .message = kDoesNotVerify,
         .build = [](std::uint32_t seq) { return Sent{without_id(seq, wire::Request::Wait), {}, {}}; },
         .on_seq_zero = true},
        {.name = "bad input: Kill without id", .code = Errc::protocol, .message = kDoesNotVerify,
         .build = [](std::uint32_t seq) { return Sent{without_id(seq, wire::Request::Kill), {}, {}}; },
         .on_seq_zero = true},
        {.name = "bad input: Destroy without id", .code = Errc::protocol, .message = kDoesNotVerify,
         .build = [](std::uint32_t seq) { return Sent{without_id(seq, wire::Request::Destroy), {}, {}}; },
         .on_seq_zero = true},
        {.name = "bad input: RequestMessage without a request body", .code = Errc::protocol,
         .message = kDoesNotVerify, .build = [](std::uint32_t seq) {
             flatbuffers::FlatBufferBuilder fbb;
             const auto start = fbb.StartTable();
             fbb.AddElement<std::uint32_t>(wire::RequestMessage::VT_SEQ, seq, 0);
             fbb.AddElement<std::uint8_t>(wire::RequestMessage::VT_REQUEST_TYPE,
                                          static_cast<std::uint8_t>(wire::Request::Hello), 0);
             fbb.Finish(flatbuffers::Offset<wire::RequestMessage>(fbb.EndTable(start)));
             return Sent{bytes_of(fbb), {}, {}};
         }, .on_seq_zero = true},
    };
}

// A request of union kind `kind` over a Hello body.
Sent of_kind(std::uint32_t seq, std::uint8_t kind) {
    flatbuffers::FlatBufferBuilder fbb;
    return Sent{request(seq, kind, fbb, wire::CreateHello(fbb, 1).Union()), {}, {}};
}

// Union kinds the server does not know (the Verifier lets them through), and bodies in a memfd
// (DESIGN.md, "Zero-copy bodies").
std::vector<Case> kind_and_body_cases() {
    constexpr int kPastLast = static_cast<int>(wire::Request::MAX) + 1;
    const std::size_t hello_size = hello(kSeq).size();
    return {
        {.name = "bad input: request kind one past the last", .code = Errc::bad_request,
         .message = "unknown request kind " + std::to_string(kPastLast),
         .build = [](std::uint32_t seq) { return of_kind(seq, kPastLast); }},
        {.name = "bad input: request kind 255", .code = Errc::bad_request, .message = "unknown request kind 255",
         .build = [](std::uint32_t seq) { return of_kind(seq, 255); }},
        {.name = "bad input: request kind NONE with a body", .code = Errc::bad_request,
         .message = "unknown request kind 0", .build = [](std::uint32_t seq) { return of_kind(seq, 0); }},
        {.name = "bad input: a Body without its memfd", .code = Errc::bad_request,
         .message = "a Body message carries no memfd",
         .build = [](std::uint32_t seq) { return Sent{body_envelope(seq, 100), {}, {}}; }},
        {.name = "bad input: a Body whose memfd is not sealed", .code = Errc::bad_request, .message = kNotSealed,
         .build = [hello_size](std::uint32_t seq) { return body(seq, hello(seq), 0, hello_size); }},
        // Without F_SEAL_SHRINK the sender could truncate it under the server's mapping: SIGBUS.
        {.name = "bad input: a Body sealed against writes but not against shrinking", .code = Errc::bad_request,
         .message = kNotSealed, .build = [hello_size](std::uint32_t seq) {
             return body(seq, hello(seq), F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SEAL, hello_size);
         }},
        {.name = "bad input: a Body fd that is not a memfd", .code = Errc::bad_request,
         .message = "message body fd is not a sealable memfd",
         .build = [](std::uint32_t seq) { return with_fds(body_envelope(seq, 100), dev_null()); }},
        {.name = "bad input: a Body of size 0", .code = Errc::bad_request, .message = "message body of size 0",
         .build = [](std::uint32_t seq) { return body(seq, hello(seq), kBodySeals, 0); }},
        {.name = "bad input: a Body declaring more than its memfd holds", .code = Errc::bad_request,
         .message = "message body is truncated: 4096 bytes declared, the memfd holds " + std::to_string(hello_size),
         .build = [](std::uint32_t seq) { return body(seq, hello(seq), kBodySeals, 4096); }},
        {.name = "bad input: a Body declaring a terabyte", .code = Errc::bad_request,
         .message = "message body of 1099511627776 bytes exceeds the limit of 67108864 bytes",
         .build = [](std::uint32_t seq) { return body(seq, hello(seq), kBodySeals, 1ULL << 40); }},
        {.name = "bad input: a Body whose content does not verify", .code = Errc::protocol,
         .message = "message body does not verify as an nsfork message",
         .build = [](std::uint32_t seq) { return body(seq, random_bytes(512, 31), kBodySeals, 512); }},
        {.name = "bad input: a Body holding another Body", .code = Errc::protocol,
         .message = "a message body holds another Body", .build = [](std::uint32_t seq) {
             const Bytes inner = body_envelope(seq, 64);
             return body(seq, inner, kBodySeals, inner.size());
         }},
        {.name = "bad input: a Body whose message has another seq", .code = Errc::protocol,
         .message = "message body's seq differs from its envelope's", .build = [](std::uint32_t seq) {
             const Bytes inner = hello(seq + 1);
             return body(seq, inner, kBodySeals, inner.size());
         }},
    };
}

// fds that do not match the request.
std::vector<Case> fd_cases() {
    return {
        {.name = "bad input: more fds than the Launch declares", .code = Errc::bad_request,
         .message = "request declares 0 fds but carries 1",
         .build = [](std::uint32_t seq) { return launch_with_roles(seq, {}, dev_null()); }},
        {.name = "bad input: fewer fds than the Launch declares", .code = Errc::bad_request,
         .message = "request declares 2 fds but carries 1",
         .build = [](std::uint32_t seq) { return launch_with_roles(seq, {1, 2}, dev_null()); }},
        {.name = "bad input: an fd on a Hello", .code = Errc::bad_request, .message = "only Launch and Adopt requests may carry fds",
         .build = [](std::uint32_t seq) { return with_fds(hello(seq), dev_null()); }},
        {.name = "bad input: an fd on a Destroy refuses it without destroying", .code = Errc::bad_request,
         .message = "only Launch and Adopt requests may carry fds",
         .build = [](std::uint32_t seq) { return with_fds(destroy_request(seq, "victim"), dev_null()); },
         .running = "victim"},
        // Its directory goes at once; the open fd stays a regular file.
        {.name = "bad input: a regular file where a pid namespace fd is expected", .code = Errc::bad_request,
         .message = "the fd is neither a pid namespace (/proc/PID/ns/pid) nor a pidfd", .build = [](std::uint32_t seq) {
             TempDir dir;
             return launch_with_roles(seq, {kPidNamespace},
                                      open_fd((dir.path() + "/not-a-namespace").c_str(), O_RDWR | O_CREAT));
         }},
        {.name = "bad input: a network namespace where a pid namespace fd is expected", .code = Errc::bad_request,
         .message = "the fd is a network namespace, not a pid namespace", .build = [](std::uint32_t seq) {
             return launch_with_roles(seq, {kPidNamespace}, open_fd("/proc/self/ns/net", O_RDONLY));
         }},
        {.name = "bad input: a pidfd of a process that has exited", .code = Errc::invalid_state,
         .message = "the process behind the pidfd has exited", .build = [](std::uint32_t seq) {
             const pid_t child = ::fork();
             REQUIRE(child >= 0);
             if (child == 0) ::_exit(0);
             UniqueFd pidfd(sys::pidfd_open(child, 0)); // a zombie until reaped below: the pid is ours
             REQUIRE(pidfd);
             REQUIRE(::waitpid(child, nullptr, 0) == child);
             return launch_with_roles(seq, {kPidfd}, std::move(pidfd));
         }},
        {.name = "bad input: an fd role no Launch takes", .code = Errc::bad_request,
         .message = "fd 0 has role 9, which a Launch cannot take",
         .build = [](std::uint32_t seq) { return launch_with_roles(seq, {9}, dev_null()); }},
        {.name = "bad input: two fds for stdin", .code = Errc::bad_request, .message = "two fds for stdio slot 0",
         .build = [](std::uint32_t seq) { return launch_with_roles(seq, {0, 0}, dev_null(), dev_null()); }},
        {.name = "bad input: two pid namespaces to join", .code = Errc::bad_request,
         .message = "two pid namespaces to join", .build = [](std::uint32_t seq) {
             return launch_with_roles(seq, {kPidNamespace, kPidfd}, open_fd("/proc/self/ns/pid", O_RDONLY),
                                      open_fd("/proc/self/ns/pid", O_RDONLY));
         }},
        {.name = "bad input: a pid namespace fd together with share_pid_namespace", .code = Errc::bad_request,
         .message = "a launch that joins a pid namespace by fd takes no parent and no share_pid_namespace",
         .build = [](std::uint32_t seq) {
             LaunchFields f;
             f.roles = {kPidNamespace};
             f.share_pid_namespace = true;
             return with_fds(launch_request(seq, f), open_fd("/proc/self/ns/pid", O_RDONLY));
         }},
    };
}

// A Launch of /bin/true refused with `code` and `message` after `change`.
Case launch_case(const char* name, Errc code, std::string message, std::function<void(LaunchFields&)> change) {
    return {.name = name, .code = code, .message = std::move(message),
            .build = [change = std::move(change)](std::uint32_t seq) { return launch(seq, change); }};
}

// argv, environment, cwd.
std::vector<Case> command_cases() {
    using V = std::vector<std::string>;
    return {
        launch_case("bad input: empty argv", Errc::bad_request, "argv is empty: no command to run",
                    [](LaunchFields& f) { f.argv = V{}; }),
        launch_case("bad input: argv[0] empty", Errc::bad_request, "argv[0] is empty: no command to run",
                    [](LaunchFields& f) { f.argv = V{"", "x"}; }),
        launch_case("bad input: NUL inside an argv entry", Errc::bad_request, "argv[1] contains a NUL byte",
                    [](LaunchFields& f) { f.argv = V{"/bin/echo", std::string("a\0b", 3)}; }),
        launch_case("bad input: NUL inside an environment entry", Errc::bad_request,
                    "environment entry 1 contains a NUL byte",
                    [](LaunchFields& f) { f.env = {kPath, std::string("A=b\0c", 5)}; }),
        launch_case("bad input: NUL inside cwd", Errc::bad_request, "cwd contains a NUL byte",
                    [](LaunchFields& f) { f.cwd = std::string("/tmp\0/x", 7); }),
        launch_case("bad input: a command that does not exist", Errc::exec_failed,
                    "cannot execute 'nsfork-no-such-command': No such file or directory",
                    [](LaunchFields& f) { f.argv = V{"nsfork-no-such-command"}; }),
        launch_case("bad input: a command that is a directory", Errc::exec_failed,
                    "cannot execute '/tmp': Permission denied", [](LaunchFields& f) { f.argv = V{"/tmp"}; }),
        launch_case("bad input: a cwd that does not exist", Errc::launch_failed,
                    "cannot change to working directory '/nsfork-no-such-dir': No such file or directory",
                    [](LaunchFields& f) { f.cwd = "/nsfork-no-such-dir"; }),
        launch_case("bad input: a cwd that is a file", Errc::launch_failed,
                    "cannot change to working directory '/etc/passwd': Not a directory",
                    [](LaunchFields& f) { f.cwd = "/etc/passwd"; }),
        launch_case("bad input: a relative cwd", Errc::bad_request, "cwd 'tmp' is not an absolute path",
                    [](LaunchFields& f) { f.cwd = "tmp"; }),
        launch_case("bad input: an empty cwd", Errc::bad_request, "cwd '' is not an absolute path",
                    [](LaunchFields& f) { f.cwd = ""; }),
        launch_case("bad input: an environment entry without '='", Errc::bad_request,
                    "environment entry 1 ('NO_EQUALS_SIGN') is not of the form NAME=VALUE",
                    [](LaunchFields& f) { f.env = {kPath, "NO_EQUALS_SIGN"}; }),
        launch_case("bad input: an environment entry starting with '='", Errc::bad_request,
                    "environment entry 0 ('=value') is not of the form NAME=VALUE",
                    [](LaunchFields& f) { f.env = {"=value", kPath}; }),
        launch_case("bad input: an empty environment entry", Errc::bad_request,
                    "environment entry 1 ('') is not of the form NAME=VALUE",
                    [](LaunchFields& f) { f.env = {kPath, ""}; }),
    };
}

// A Kill of the running container "target" with `signal`, refused; the container keeps running.
Case signal_case(const char* name, int signal) {
    return {.name = name, .code = Errc::bad_request,
            .message = "signal " + std::to_string(signal) + " is out of range 1.." + std::to_string(SIGRTMAX),
            .build = [signal](std::uint32_t seq) { return Sent{kill_request(seq, "target", signal), {}, {}}; },
            .running = "target"};
}

// Ids and the registry, and signals.
std::vector<Case> id_and_signal_cases() {
    return {
        // The first one is untouched.
        {.name = "bad input: a duplicate container id", .code = Errc::duplicate_id,
         .message = "a container with id 'dup' already exists",
         .build = [](std::uint32_t seq) { return launch(seq, [](LaunchFields& f) { f.id = "dup"; }); },
         .running = "dup"},
        launch_case("bad input: an id containing '/'", Errc::invalid_id, "container id contains byte 0x2f" + kBadIdByte,
                    [](LaunchFields& f) { f.id = "../escape/cgroup"; }),
        launch_case("bad input: the id '..'", Errc::invalid_id, "container id '..' is not allowed",
                    [](LaunchFields& f) { f.id = ".."; }),
        launch_case("bad input: an id containing NUL", Errc::invalid_id, "container id contains byte 0x00" + kBadIdByte,
                    [](LaunchFields& f) { f.id = std::string("ok\0bad", 6); }),
        launch_case("bad input: a 4 KiB id", Errc::invalid_id, "container id is 4096 bytes long, the limit is 128",
                    [](LaunchFields& f) { f.id = std::string(4096, 'a'); }),
        launch_case("bad input: an unknown parent", Errc::unknown_container, "no parent container 'nobody'",
                    [](LaunchFields& f) { f.parent = "nobody"; }),
        {.name = "bad input: wait for an unknown id", .code = Errc::unknown_container,
         .message = "no container with id 'nobody'",
         .build = [](std::uint32_t seq) { return Sent{wait_request(seq, "nobody"), {}, {}}; }},
        {.name = "bad input: kill of an unknown id", .code = Errc::unknown_container,
         .message = "no container with id 'nobody'",
         .build = [](std::uint32_t seq) { return Sent{kill_request(seq, "nobody", SIGTERM), {}, {}}; }},
        {.name = "bad input: destroy of an unknown id", .code = Errc::unknown_container,
         .message = "no container with id 'nobody'",
         .build = [](std::uint32_t seq) { return Sent{destroy_request(seq, "nobody"), {}, {}}; }},
        signal_case("bad input: signal 0", 0),
        signal_case("bad input: signal -1", -1),
        signal_case("bad input: signal 65", 65),
    };
}

constexpr auto kExtra = static_cast<std::uint8_t>(wire::FdRole::Extra);

// Bit N-1 of a signal set: signal N.
constexpr std::uint64_t bit(int sig) { return 1ULL << (sig - 1); }

// The command's process: terminal, signals, user, extra fds; and Kill with `all`.
std::vector<Case> command_process_cases() {
    using U = std::vector<std::uint32_t>;
    return {
        {.name = "bad input: more extra fds than a Launch may pass", .code = Errc::bad_request,
         .message = "more than " + std::to_string(kMaxExtraFds) + " extra fds", .build = [](std::uint32_t seq) {
             Sent s = launch_with_roles(seq, std::vector<std::uint8_t>(kMaxExtraFds + 1, kExtra), dev_null());
             s.fds.assign(kMaxExtraFds + 1, s.fds[0]);
             return s;
         }},
        {.name = "bad input: a terminal's fd role on a Launch", .code = Errc::bad_request,
         .message = "fd 0 has role 8, which a Launch cannot take", .build = [](std::uint32_t seq) {
             return launch_with_roles(seq, {static_cast<std::uint8_t>(wire::FdRole::Terminal)}, dev_null());
         }},
        {.name = "bad input: stdio fds on a tty launch", .code = Errc::bad_request,
         .message = "a tty launch takes no stdio fds: its stdio is the terminal", .build = [](std::uint32_t seq) {
             LaunchFields f;
             f.tty = true;
             f.roles = {1};
             return with_fds(launch_request(seq, f), dev_null());
         }},
        // devpts is mounted in the container's own mount namespace, which this server does not make.
        {.name = "bad input: a tty from a server without filesystem isolation", .code = Errc::bad_request,
         .message = "a tty needs the filesystem/linux isolator (devpts is mounted in the container's own mount "
                    "namespace), which this server runs without",
         .build = [](std::uint32_t seq) { return launch(seq, [](LaunchFields& f) { f.tty = true; }); },
         .server_args = {"--isolation", ""}},
        launch_case("bad input: SIGKILL in the blocked signals", Errc::bad_request,
                    "signal_mask: signal 9 (SIGKILL) cannot be blocked",
                    [](LaunchFields& f) { f.signal_mask = bit(SIGHUP) | bit(SIGKILL); }),
        launch_case("bad input: SIGSTOP in the ignored signals", Errc::bad_request,
                    "ignored_signals: signal 19 (SIGSTOP) cannot be ignored",
                    [](LaunchFields& f) { f.ignored_signals = bit(SIGSTOP); }),
        launch_case("bad input: a signal the C library keeps for itself in the blocked signals", Errc::bad_request,
                    "signal_mask: signal 33 is reserved by the C library",
                    [](LaunchFields& f) { f.signal_mask = bit(33); }),
        launch_case("bad input: uid -1", Errc::bad_request, "user.uid 4294967295 ((uid_t)-1) is not a user id",
                    [](LaunchFields& f) { f.uid = 0xffffffffu; }),
        launch_case("bad input: gid -1", Errc::bad_request, "user.gid 4294967295 ((gid_t)-1) is not a group id",
                    [](LaunchFields& f) { f.gid = 0xffffffffu; }),
        launch_case("bad input: a supplementary group -1", Errc::bad_request,
                    "user.groups[1] 4294967295 ((gid_t)-1) is not a group id",
                    [](LaunchFields& f) { f.groups = U{100, 0xffffffffu}; }),
        launch_case("bad input: more supplementary groups than a Launch may give", Errc::bad_request,
                    "user.groups has " + std::to_string(kMaxGroups + 1) + " entries, at most " +
                        std::to_string(kMaxGroups),
                    [](LaunchFields& f) { f.groups = U(kMaxGroups + 1, 100); }),
        {.name = "bad input: kill all with signal 0", .code = Errc::bad_request,
         .message = "signal 0 is out of range 1.." + std::to_string(SIGRTMAX),
         .build = [](std::uint32_t seq) { return Sent{kill_request(seq, "target", 0, true), {}, {}}; },
         .running = "target"},
        {.name = "bad input: kill all of an unknown id", .code = Errc::unknown_container,
         .message = "no container with id 'nobody'",
         .build = [](std::uint32_t seq) { return Sent{kill_request(seq, "nobody", SIGTERM, true), {}, {}}; }},
    };
}

// Every case, in one list.
const std::vector<Case>& cases() {
    static const std::vector<Case> all = [] {
        std::vector<Case> out;
        for (auto part : {framing_cases, identifier_and_version_cases, missing_field_cases, kind_and_body_cases,
                          fd_cases, command_cases, id_and_signal_cases, command_process_cases})
            for (auto& c : part()) out.push_back(std::move(c));
        return out;
    }();
    return all;
}

// The runner: sends the case's datagram, checks the exact answer, then that the server serves on.
void run(const Case& c) {
    require_root();
    Fixture f(c.server_args);
    if (c.large) f.force_send_buffer();
    {
        // Closed before the check below, which counts the server's fds.
        std::optional<Client> client;
        std::optional<Container> running;
        if (c.running) {
            client.emplace(f.server.connect());
            running.emplace(launch_with(*client, c.running, {probe(), "sleep"}));
        }
        const Sent sent = c.build(kSeq);
        check_error(f.ask(sent.bytes, sent.fds), c.on_seq_zero ? 0 : kSeq, c.code, c.message);
        if (running) {
            CHECK(alive(running->pid()));
            REQUIRE(client->destroy(c.running));
        }
    }
    f.check_still_serving();
}

// Runs case `index` of the list as a Catch2 test of the case's name.
class CaseInvoker final : public Catch::ITestInvoker {
public:
    explicit CaseInvoker(std::size_t index) : index_(index) {}
    void invoke() const override { run(cases()[index_]); }

private:
    std::size_t index_;
};

// One test per case, so that ctest runs (and names) each in its own process.
[[maybe_unused]] const bool registered = [] {
    for (std::size_t i = 0; i < cases().size(); ++i)
        Catch::AutoReg(new CaseInvoker(i), CATCH_INTERNAL_LINEINFO, Catch::StringRef(),
                       Catch::NameAndTags{cases()[i].name});
    return true;
}();

} // namespace
