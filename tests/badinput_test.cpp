// Hostile input against a real `nsfork serve`: every case sends one bad datagram (built by hand
// with FlatBufferBuilder and sent with raw sendmsg, so that no check of the client library stands
// in the way), asserts the exact answer — an Error reply's code and message, or what the server
// does with the connection — and then checks that the server goes on serving: the same
// connection (where it survives) and a fresh one each launch and wait a container, and the
// server's fds and children are back where they were.
#include "harness.hpp"
#include "base/pidfd.hpp"
#include "base/syscalls.hpp"
#include "protocol/messages.hpp"

#include <catch2/catch.hpp>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

using namespace nsfork;
using namespace nsfork::test;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

namespace {

// ---- raw wire access ----

// A connection to the server that sends whatever bytes and fds a test makes.
class RawConnection {
public:
    explicit RawConnection(const std::string& socket_path) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(socket_path.size() < sizeof addr.sun_path);
        std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
        sock_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        REQUIRE(sock_);
        REQUIRE(::connect(sock_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }

    int fd() const { return sock_.get(); }
    void close() { sock_.reset(); }
    std::uint32_t next_seq() { return seq_++; }

    // Sends one datagram with `fds` in SCM_RIGHTS; returns 0 or the errno of sendmsg.
    int send(const Bytes& bytes, std::span<const int> fds = {}, int flags = 0) {
        iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
        if (!fds.empty()) {
            msg.msg_control = control.data();
            msg.msg_controllen = control.size();
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
        }
        return ::sendmsg(sock_.get(), &msg, MSG_NOSIGNAL | flags) < 0 ? errno : 0;
    }

    // The next datagram from the server; Errc::disconnected once it closed, Errc::unavailable
    // if nothing came within `timeout`.
    Result<Datagram> receive(std::chrono::milliseconds timeout = 10s) {
        pollfd p{sock_.get(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1)
            return Error{Errc::unavailable, "no datagram within " + std::to_string(timeout.count()) + " ms"};
        return recv_datagram(sock_.get());
    }

private:
    UniqueFd sock_;
    std::uint32_t seq_ = 1;
};

// The bytes of a finished builder.
Bytes bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
    return Bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

// A RequestMessage of any union type (even one the schema does not know) over `body`.
Bytes request(std::uint32_t seq, std::uint8_t type, flatbuffers::FlatBufferBuilder& fbb,
              flatbuffers::Offset<void> body) {
    fbb.Finish(wire::CreateRequestMessage(fbb, seq, static_cast<wire::Request>(type), body));
    return bytes_of(fbb);
}

Bytes hello(std::uint32_t seq) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Hello),
                   fbb, wire::CreateHello(fbb, kProtocolVersion).Union());
}

// The fields of a Launch; an unset optional is left out of the message.
struct LaunchFields {
    std::optional<std::string> id;
    std::optional<std::vector<std::string>> argv = std::vector<std::string>{"/bin/true"};
    std::vector<std::string> env{kPath};
    std::optional<std::string> cwd;
    std::vector<std::uint8_t> roles; // FdRole values, unchecked
    std::optional<std::string> parent;
    bool share_pid_namespace = false;
};

// A Launch request; built field by field so that even a missing required argv can be sent.
Bytes launch_request(std::uint32_t seq, const LaunchFields& f) {
    flatbuffers::FlatBufferBuilder fbb;
    auto id = f.id ? fbb.CreateString(*f.id) : 0;
    auto argv = f.argv ? fbb.CreateVectorOfStrings(*f.argv) : 0;
    auto env = fbb.CreateVectorOfStrings(f.env);
    auto cwd = f.cwd ? fbb.CreateString(*f.cwd) : 0;
    auto roles = fbb.CreateVector(f.roles);
    auto parent = f.parent ? fbb.CreateString(*f.parent) : 0;
    const auto start = fbb.StartTable();
    if (f.id) fbb.AddOffset(wire::Launch::VT_ID, id);
    if (f.argv) fbb.AddOffset(wire::Launch::VT_ARGV, argv);
    fbb.AddOffset(wire::Launch::VT_ENV, env);
    if (f.cwd) fbb.AddOffset(wire::Launch::VT_CWD, cwd);
    fbb.AddOffset(wire::Launch::VT_FDS, roles);
    if (f.parent) fbb.AddOffset(wire::Launch::VT_PARENT, parent);
    fbb.AddElement<std::uint8_t>(wire::Launch::VT_SHARE_PID_NAMESPACE, f.share_pid_namespace, 0);
    const flatbuffers::Offset<void> body(fbb.EndTable(start));
    return request(seq, static_cast<std::uint8_t>(wire::Request::Launch), fbb, body);
}

Bytes wait_for(std::uint32_t seq, const std::string& id) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Wait), fbb,
                   wire::CreateWait(fbb, fbb.CreateString(id)).Union());
}

Bytes kill_request(std::uint32_t seq, const std::string& id, int signal) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Kill), fbb,
                   wire::CreateKill(fbb, fbb.CreateString(id), signal).Union());
}

Bytes destroy_request(std::uint32_t seq, const std::string& id) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Destroy), fbb,
                   wire::CreateDestroy(fbb, fbb.CreateString(id)).Union());
}

// A Wait, Kill or Destroy table with no id (required by the schema), in a RequestMessage.
Bytes without_id(std::uint32_t seq, wire::Request type) {
    flatbuffers::FlatBufferBuilder fbb;
    const flatbuffers::Offset<void> body(fbb.EndTable(fbb.StartTable()));
    return request(seq, static_cast<std::uint8_t>(type), fbb, body);
}

// A Body envelope on `seq` that says the real message is the first `size` bytes of the memfd
// sent as the datagram's first fd.
Bytes body_envelope(std::uint32_t seq, std::uint64_t size) {
    flatbuffers::FlatBufferBuilder fbb;
    return request(seq, static_cast<std::uint8_t>(wire::Request::Body), fbb, wire::CreateBody(fbb, size).Union());
}

// A memfd holding `bytes`, with `seals` added.
UniqueFd memfd_with(const Bytes& bytes, int seals) {
    UniqueFd fd(::memfd_create("badinput-body", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    REQUIRE(fd);
    REQUIRE(::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    if (seals) REQUIRE(::fcntl(fd.get(), F_ADD_SEALS, seals) == 0);
    return fd;
}

// Reads the 32-bit little-endian word at `at`.
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

// ---- the server's side ----

// Entries of a /proc directory listing.
std::size_t count_entries(const std::string& dir) {
    std::size_t n = 0;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
}

std::size_t fd_count(pid_t pid) { return count_entries("/proc/" + std::to_string(pid) + "/fd"); }

// How many direct children the server has: containers not yet reaped, and its warm pool.
std::size_t child_count(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::size_t n = 0;
    for (pid_t child; f >> child;) ++n;
    return n;
}

// The server's fds and children at rest.
struct Footprint {
    std::size_t fds = 0, children = 0;
    bool operator==(const Footprint&) const = default;
};

// The server's footprint once it stopped changing (it closes a refused datagram's fds just
// after it replied, and refills its warm pool after a launch): the same for 200 ms, or after 5 s
// the last one seen.
Footprint settled_footprint(pid_t pid) {
    Footprint last{fd_count(pid), child_count(pid)};
    int stable = 0;
    for (int i = 0; i < 250 && stable < 10; ++i) {
        std::this_thread::sleep_for(20ms);
        const Footprint now{fd_count(pid), child_count(pid)};
        stable = now == last ? stable + 1 : 0;
        last = now;
    }
    return last;
}

UniqueFd dev_null() {
    UniqueFd fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    REQUIRE(fd);
    return fd;
}

// ---- checking replies ----

// The verified reply in `got`, which must be a datagram.
const wire::ReplyMessage* reply_in(const Result<Datagram>& got) {
    REQUIRE(got);
    const wire::ReplyMessage* m = verify_reply(got->bytes);
    REQUIRE(m);
    return m;
}

// Checks that `got` is an Error reply on `seq` with `code` and exactly `message`.
void check_error(const Result<Datagram>& got, std::uint32_t seq, Errc code, const std::string& message) {
    if (!got) FAIL("expected an Error reply, got: " << got.error().message);
    const wire::ReplyMessage* m = reply_in(got);
    CHECK(m->seq() == seq);
    const wire::Error* e = m->reply_as_Error();
    REQUIRE(e);
    CHECK(static_cast<int>(e->code()) == static_cast<int>(code));
    CHECK(str(e->message()) == message);
    CHECK(got->fds.empty());
}

// A server, a raw connection to it, and the server's fd count with that connection open.
struct Fixture {
    ServerProcess server;
    RawConnection raw{server.socket()};
    Footprint baseline;

    Fixture() {
        // One launch first: the connection is accepted (its fd counted) and the warm pool, if
        // any, has been used and refilled before the baseline.
        raw_round_trip();
        baseline = settled_footprint(server.pid());
    }

    // Lets the raw connection send datagrams larger than the default send buffer (~208 KiB).
    void force_send_buffer() {
        const int size = 4 << 20;
        REQUIRE(::setsockopt(raw.fd(), SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) == 0);
    }

    // Sends `bytes` (with `fds`) on the raw connection and returns the next datagram.
    Result<Datagram> ask(const Bytes& bytes, std::span<const int> fds = {}) {
        REQUIRE(raw.send(bytes, fds) == 0);
        return raw.receive();
    }

    // Launches /bin/true over the raw connection, waits for it and destroys it.
    void raw_round_trip() {
        LaunchFields f;
        f.id = "after-bad-input";
        auto launched = ask(launch_request(raw.next_seq(), f));
        const wire::LaunchReply* l = reply_in(launched)->reply_as_LaunchReply();
        REQUIRE(l);
        CHECK(launched->fds.size() == 1);
        auto waited = ask(wait_for(raw.next_seq(), "after-bad-input"));
        const wire::WaitReply* w = reply_in(waited)->reply_as_WaitReply();
        REQUIRE(w);
        CHECK(read_info(*w->container()).exit == ExitStatus{0, 0});
        CHECK(reply_in(ask(destroy_request(raw.next_seq(), "after-bad-input")))->reply_as_DestroyReply());
    }

    // The server goes on serving: the raw connection (unless it was dropped) and a new client
    // each launch and wait a container; then the server holds as many fds and children as
    // before (one fd fewer if the raw connection was dropped).
    void check_still_serving(bool raw_alive = true) {
        if (raw_alive) raw_round_trip();
        {
            Client client = server.connect();
            LaunchOptions o;
            o.argv = {"/bin/true"};
            o.env = {kPath};
            auto ct = client.launch(o);
            REQUIRE(ct);
            auto status = client.wait(ct->id());
            REQUIRE(status);
            CHECK(*status == ExitStatus{0, 0});
            REQUIRE(client.destroy(ct->id()));
        }
        if (!raw_alive) raw.close();
        const Footprint now = settled_footprint(server.pid());
        CHECK(now.fds == baseline.fds - (raw_alive ? 0 : 1));
        CHECK(now.children == baseline.children);
    }
};

// Launches `argv` with `id` through the client library; the caller destroys it.
Container launch_with(Client& client, const std::string& id, std::vector<std::string> argv) {
    LaunchOptions o;
    o.id = id;
    o.argv = std::move(argv);
    o.env = {kPath};
    auto ct = client.launch(o);
    REQUIRE(ct);
    return std::move(*ct);
}

const std::string kDoesNotVerify = "message does not verify as an nsfork message";

} // namespace

// ==== framing: datagrams that are not requests (answered on seq 0, connection kept) ====

TEST_CASE("bad input: random bytes") {
    require_root();
    Fixture f;
    std::mt19937 rng(7);
    Bytes junk(200);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    REQUIRE_FALSE(verify_request(junk));
    check_error(f.ask(junk), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: zero-length datagram") {
    require_root();
    Fixture f;
    // recvmsg returns 0 for it just as at end of stream: the server must not take it for a close.
    check_error(f.ask({}), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: truncated Launch request") {
    require_root();
    Fixture f;
    Bytes whole = launch_request(5, LaunchFields{});
    Bytes half(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(whole.size() / 2));
    check_error(f.ask(half), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: datagram larger than the largest the server reads") {
    require_root();
    Fixture f;
    f.force_send_buffer();
    Bytes big(kMaxDatagram + 4096, 0x41);
    check_error(f.ask(big), 0, Errc::protocol,
                "datagram larger than " + std::to_string(kMaxDatagram / 1024) + " KiB");
    f.check_still_serving();
}

TEST_CASE("bad input: garbage of exactly the largest datagram size") {
    require_root();
    Fixture f;
    f.force_send_buffer();
    Bytes junk(kMaxDatagram); // fits the server's buffer exactly: read whole, then refused
    std::mt19937 rng(256);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    REQUIRE_FALSE(verify_request(junk));
    check_error(f.ask(junk), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: 17 fds on one datagram") {
    require_root();
    Fixture f;
    UniqueFd null = dev_null();
    std::vector<int> fds(kMaxFds + 1, null.get());
    // A valid Hello underneath: it must not be answered, the datagram as a whole is refused.
    check_error(f.ask(hello(9), fds), 0, Errc::protocol, "datagram carried more than 16 fds");
    f.check_still_serving(); // includes: every fd that did arrive was closed
}

TEST_CASE("bad input: root offset past the end of the buffer") {
    require_root();
    Fixture f;
    Bytes b = launch_request(5, LaunchFields{});
    set_word(b, 0, static_cast<std::uint32_t>(b.size() + 64));
    check_error(f.ask(b), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: root table whose vtable offset points outside the buffer") {
    require_root();
    Fixture f;
    Bytes b = launch_request(5, LaunchFields{});
    set_word(b, word_at(b, 0), 0x80001000u); // soffset: vtable = table - soffset
    check_error(f.ask(b), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: argv string whose length runs past the end") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.argv = std::vector<std::string>{"/bin/echo", "MARKER-MARKER"};
    Bytes b = launch_request(5, fields);
    const std::string marker = "MARKER-MARKER";
    set_word(b, find_bytes(b, Bytes(marker.begin(), marker.end())) - 4, 0x7ffffff0u);
    check_error(f.ask(b), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: fd role vector whose length runs past the end") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.roles = {0, 1, 2};
    Bytes b = launch_request(5, fields);
    set_word(b, find_bytes(b, Bytes{3, 0, 0, 0, 0, 1, 2}), 0x00fffff0u);
    check_error(f.ask(b), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: a bare Hello table as the root, not a RequestMessage") {
    require_root();
    Fixture f;
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateHello(fbb, kProtocolVersion));
    check_error(f.ask(bytes_of(fbb)), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: an Error ReplyMessage sent as a request") {
    require_root();
    Fixture f;
    // The schema has no file_identifier, and RequestMessage and ReplyMessage have the same
    // shape, so a reply is read as a request of the reply's union type. Error (7) is Body (7)
    // among requests, whose ulong field does not line up with Error's: the Verifier refuses it.
    flatbuffers::FlatBufferBuilder fbb;
    write_error_reply(fbb, 12, Error{Errc::internal, "not a request"});
    check_error(f.ask(bytes_of(fbb)), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: a HelloReply ReplyMessage sent as a request is taken for a Hello") {
    require_root();
    Fixture f;
    // Same shape as above, and HelloReply (1) lines up with Hello (1): with no file_identifier
    // the server cannot tell them apart. Harmless (a Hello changes nothing); documented here.
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateReplyMessage(fbb, 13, wire::Reply::HelloReply,
                                        wire::CreateHelloReply(fbb, 99, 1).Union()));
    auto got = f.ask(bytes_of(fbb));
    const wire::ReplyMessage* m = reply_in(got);
    CHECK(m->seq() == 13);
    REQUIRE(m->reply_as_HelloReply());
    CHECK(m->reply_as_HelloReply()->version() == kProtocolVersion);
    f.check_still_serving();
}

// ==== missing required fields (the Verifier refuses them: seq 0) ====

TEST_CASE("bad input: Launch without argv") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.argv.reset();
    check_error(f.ask(launch_request(5, fields)), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: Wait without id") {
    require_root();
    Fixture f;
    check_error(f.ask(without_id(5, wire::Request::Wait)), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: Kill without id") {
    require_root();
    Fixture f;
    check_error(f.ask(without_id(5, wire::Request::Kill)), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: Destroy without id") {
    require_root();
    Fixture f;
    check_error(f.ask(without_id(5, wire::Request::Destroy)), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

TEST_CASE("bad input: RequestMessage without a request body") {
    require_root();
    Fixture f;
    flatbuffers::FlatBufferBuilder fbb;
    const auto start = fbb.StartTable();
    fbb.AddElement<std::uint32_t>(wire::RequestMessage::VT_SEQ, 5, 0);
    fbb.AddElement<std::uint8_t>(wire::RequestMessage::VT_REQUEST_TYPE,
                                 static_cast<std::uint8_t>(wire::Request::Hello), 0);
    fbb.Finish(flatbuffers::Offset<wire::RequestMessage>(fbb.EndTable(start)));
    check_error(f.ask(bytes_of(fbb)), 0, Errc::protocol, kDoesNotVerify);
    f.check_still_serving();
}

// ==== union kinds the server does not know (the Verifier lets them through) ====

TEST_CASE("bad input: request kind one past the last") {
    require_root();
    Fixture f;
    const int kind = static_cast<int>(wire::Request::MAX) + 1;
    flatbuffers::FlatBufferBuilder fbb;
    auto b = request(21, static_cast<std::uint8_t>(kind), fbb, wire::CreateHello(fbb, 1).Union());
    check_error(f.ask(b), 21, Errc::bad_request, "unknown request kind " + std::to_string(kind));
    f.check_still_serving();
}

TEST_CASE("bad input: request kind 255") {
    require_root();
    Fixture f;
    flatbuffers::FlatBufferBuilder fbb;
    auto b = request(22, 255, fbb, wire::CreateHello(fbb, 1).Union());
    check_error(f.ask(b), 22, Errc::bad_request, "unknown request kind 255");
    f.check_still_serving();
}

TEST_CASE("bad input: request kind NONE with a body") {
    require_root();
    Fixture f;
    flatbuffers::FlatBufferBuilder fbb;
    auto b = request(23, 0, fbb, wire::CreateHello(fbb, 1).Union());
    check_error(f.ask(b), 23, Errc::bad_request, "unknown request kind 0");
    f.check_still_serving();
}

// ==== message bodies in a memfd (DESIGN.md, "Zero-copy bodies") ====

TEST_CASE("bad input: a Body without its memfd") {
    require_root();
    Fixture f;
    check_error(f.ask(body_envelope(24, 100)), 24, Errc::bad_request, "a Body message carries no memfd");
    f.check_still_serving();
}

TEST_CASE("bad input: a Body whose memfd is not sealed") {
    require_root();
    Fixture f;
    const Bytes inner = hello(25);
    UniqueFd body = memfd_with(inner, 0);
    const int fds[] = {body.get()};
    check_error(f.ask(body_envelope(25, inner.size()), fds), 25, Errc::bad_request,
                "message body memfd is not sealed (it needs F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW "
                "and F_SEAL_SEAL)");
    f.check_still_serving();
}

TEST_CASE("bad input: a Body sealed against writes but not against shrinking") {
    require_root();
    Fixture f;
    // Without F_SEAL_SHRINK the sender could truncate it under the server's mapping: SIGBUS.
    const Bytes inner = hello(26);
    UniqueFd body = memfd_with(inner, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SEAL);
    const int fds[] = {body.get()};
    check_error(f.ask(body_envelope(26, inner.size()), fds), 26, Errc::bad_request,
                "message body memfd is not sealed (it needs F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW "
                "and F_SEAL_SEAL)");
    f.check_still_serving();
}

TEST_CASE("bad input: a Body fd that is not a memfd") {
    require_root();
    Fixture f;
    UniqueFd null = dev_null();
    const int fds[] = {null.get()};
    check_error(f.ask(body_envelope(27, 100), fds), 27, Errc::bad_request, "message body fd is not a sealable memfd");
    f.check_still_serving();
}

TEST_CASE("bad input: a Body of size 0") {
    require_root();
    Fixture f;
    UniqueFd body = memfd_with(hello(28), kBodySeals);
    const int fds[] = {body.get()};
    check_error(f.ask(body_envelope(28, 0), fds), 28, Errc::bad_request, "message body of size 0");
    f.check_still_serving();
}

TEST_CASE("bad input: a Body declaring more than its memfd holds") {
    require_root();
    Fixture f;
    const Bytes inner = hello(29);
    UniqueFd body = memfd_with(inner, kBodySeals);
    const int fds[] = {body.get()};
    check_error(f.ask(body_envelope(29, 4096), fds), 29, Errc::bad_request,
                "message body is truncated: 4096 bytes declared, the memfd holds " + std::to_string(inner.size()));
    f.check_still_serving();
}

TEST_CASE("bad input: a Body declaring a terabyte") {
    require_root();
    Fixture f;
    UniqueFd body = memfd_with(hello(30), kBodySeals);
    const int fds[] = {body.get()};
    check_error(f.ask(body_envelope(30, 1ULL << 40), fds), 30, Errc::bad_request,
                "message body of 1099511627776 bytes exceeds the limit of 67108864 bytes");
    f.check_still_serving();
}

TEST_CASE("bad input: a Body whose content does not verify") {
    require_root();
    Fixture f;
    Bytes junk(512);
    std::mt19937 rng(31);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    UniqueFd body = memfd_with(junk, kBodySeals);
    const int fds[] = {body.get()};
    check_error(f.ask(body_envelope(31, junk.size()), fds), 31, Errc::protocol,
                "message body does not verify as an nsfork message");
    f.check_still_serving();
}

TEST_CASE("bad input: a Body holding another Body") {
    require_root();
    Fixture f;
    const Bytes inner = body_envelope(32, 64);
    UniqueFd body = memfd_with(inner, kBodySeals);
    const int fds[] = {body.get()};
    check_error(f.ask(body_envelope(32, inner.size()), fds), 32, Errc::protocol,
                "a message body holds another Body");
    f.check_still_serving();
}

TEST_CASE("bad input: a Body whose message has another seq") {
    require_root();
    Fixture f;
    const Bytes inner = hello(99);
    UniqueFd body = memfd_with(inner, kBodySeals);
    const int fds[] = {body.get()};
    check_error(f.ask(body_envelope(33, inner.size()), fds), 33, Errc::protocol,
                "message body's seq differs from its envelope's");
    f.check_still_serving();
}

// ==== fds that do not match the request ====

TEST_CASE("bad input: more fds than the Launch declares") {
    require_root();
    Fixture f;
    UniqueFd null = dev_null();
    const int fds[] = {null.get()};
    check_error(f.ask(launch_request(30, LaunchFields{}), fds), 30, Errc::bad_request,
                "request declares 0 fds but carries 1");
    f.check_still_serving();
}

TEST_CASE("bad input: fewer fds than the Launch declares") {
    require_root();
    Fixture f;
    UniqueFd null = dev_null();
    LaunchFields fields;
    fields.roles = {1, 2};
    const int fds[] = {null.get()};
    check_error(f.ask(launch_request(31, fields), fds), 31, Errc::bad_request, "request declares 2 fds but carries 1");
    f.check_still_serving();
}

TEST_CASE("bad input: an fd on a Hello") {
    require_root();
    Fixture f;
    UniqueFd null = dev_null();
    const int fds[] = {null.get()};
    check_error(f.ask(hello(32), fds), 32, Errc::bad_request, "only Launch requests may carry fds");
    f.check_still_serving();
}

TEST_CASE("bad input: an fd on a Destroy refuses it without destroying") {
    require_root();
    Fixture f;
    {
        // Closed before the check below, which counts the server's fds.
        Client client = f.server.connect();
        Container victim = launch_with(client, "victim", {probe(), "sleep"});
        UniqueFd null = dev_null();
        const int fds[] = {null.get()};
        check_error(f.ask(destroy_request(33, "victim"), fds), 33, Errc::bad_request, "only Launch requests may carry fds");
        CHECK(alive(victim.pid()));
        REQUIRE(client.destroy("victim"));
    }
    f.check_still_serving();
}

TEST_CASE("bad input: a regular file where a pid namespace fd is expected") {
    require_root();
    Fixture f;
    TempDir dir;
    UniqueFd file(::open((dir.path() + "/not-a-namespace").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    REQUIRE(file);
    LaunchFields fields;
    fields.roles = {static_cast<std::uint8_t>(wire::FdRole::PidNamespace)};
    const int fds[] = {file.get()};
    check_error(f.ask(launch_request(34, fields), fds), 34, Errc::bad_request,
                "the fd is neither a pid namespace (/proc/PID/ns/pid) nor a pidfd");
    f.check_still_serving();
}

TEST_CASE("bad input: a network namespace where a pid namespace fd is expected") {
    require_root();
    Fixture f;
    UniqueFd net(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    REQUIRE(net);
    LaunchFields fields;
    fields.roles = {static_cast<std::uint8_t>(wire::FdRole::PidNamespace)};
    const int fds[] = {net.get()};
    check_error(f.ask(launch_request(35, fields), fds), 35, Errc::bad_request,
                "the fd is a network namespace, not a pid namespace");
    f.check_still_serving();
}

TEST_CASE("bad input: a pidfd of a process that has exited") {
    require_root();
    Fixture f;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    UniqueFd pidfd(sys::pidfd_open(child, 0)); // a zombie until reaped below: the pid is ours
    REQUIRE(pidfd);
    REQUIRE(::waitpid(child, nullptr, 0) == child);
    LaunchFields fields;
    fields.roles = {static_cast<std::uint8_t>(wire::FdRole::Pidfd)};
    const int fds[] = {pidfd.get()};
    check_error(f.ask(launch_request(36, fields), fds), 36, Errc::invalid_state,
                "the process behind the pidfd has exited");
    f.check_still_serving();
}

TEST_CASE("bad input: an fd role no Launch takes") {
    require_root();
    Fixture f;
    UniqueFd null = dev_null();
    LaunchFields fields;
    fields.roles = {9};
    const int fds[] = {null.get()};
    check_error(f.ask(launch_request(37, fields), fds), 37, Errc::bad_request,
                "fd 0 has role 9, which a Launch cannot take");
    f.check_still_serving();
}

TEST_CASE("bad input: two fds for stdin") {
    require_root();
    Fixture f;
    UniqueFd a = dev_null(), b = dev_null();
    LaunchFields fields;
    fields.roles = {0, 0};
    const int fds[] = {a.get(), b.get()};
    check_error(f.ask(launch_request(38, fields), fds), 38, Errc::bad_request, "two fds for stdio slot 0");
    f.check_still_serving();
}

TEST_CASE("bad input: two pid namespaces to join") {
    require_root();
    Fixture f;
    UniqueFd a(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC)), b(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    REQUIRE(a);
    REQUIRE(b);
    LaunchFields fields;
    fields.roles = {static_cast<std::uint8_t>(wire::FdRole::PidNamespace), static_cast<std::uint8_t>(wire::FdRole::Pidfd)};
    const int fds[] = {a.get(), b.get()};
    check_error(f.ask(launch_request(39, fields), fds), 39, Errc::bad_request, "two pid namespaces to join");
    f.check_still_serving();
}

TEST_CASE("bad input: a pid namespace fd together with share_pid_namespace") {
    require_root();
    Fixture f;
    UniqueFd ns(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    REQUIRE(ns);
    LaunchFields fields;
    fields.roles = {static_cast<std::uint8_t>(wire::FdRole::PidNamespace)};
    fields.share_pid_namespace = true;
    const int fds[] = {ns.get()};
    check_error(f.ask(launch_request(40, fields), fds), 40, Errc::bad_request,
                "a launch that joins a pid namespace by fd takes no parent and no share_pid_namespace");
    f.check_still_serving();
}

TEST_CASE("bad input: a socket as stdin is fine") {
    require_root();
    Fixture f;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd ours(sv[0]), theirs(sv[1]);
    Pipe out;
    {
        // Closed before the check below, which counts the server's fds.
        Client client = f.server.connect();
        LaunchOptions o;
        o.argv = {"cat"};
        o.env = {kPath};
        o.stdio = {theirs.get(), out.write.get(), -1};
        auto ct = client.launch(o);
        REQUIRE(ct);
        theirs.reset();
        out.write.reset();
        const std::string text = "through a socket\n";
        REQUIRE(::write(ours.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        REQUIRE(::shutdown(ours.get(), SHUT_WR) == 0);
        CHECK(read_all(out.read.get()) == text);
        auto status = client.wait(ct->id());
        REQUIRE(status);
        CHECK(*status == ExitStatus{0, 0});
        REQUIRE(client.destroy(ct->id()));
    }
    f.check_still_serving();
}

// ==== argv, environment, cwd ====

TEST_CASE("bad input: empty argv") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.argv = std::vector<std::string>{};
    check_error(f.ask(launch_request(41, fields)), 41, Errc::bad_request, "argv is empty: no command to run");
    f.check_still_serving();
}

TEST_CASE("bad input: argv[0] empty") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.argv = std::vector<std::string>{"", "x"};
    check_error(f.ask(launch_request(42, fields)), 42, Errc::bad_request, "argv[0] is empty: no command to run");
    f.check_still_serving();
}

TEST_CASE("bad input: NUL inside an argv entry") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.argv = std::vector<std::string>{"/bin/echo", std::string("a\0b", 3)};
    check_error(f.ask(launch_request(43, fields)), 43, Errc::bad_request, "argv[1] contains a NUL byte");
    f.check_still_serving();
}

TEST_CASE("bad input: NUL inside an environment entry") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.env = {kPath, std::string("A=b\0c", 5)};
    check_error(f.ask(launch_request(44, fields)), 44, Errc::bad_request, "environment entry 1 contains a NUL byte");
    f.check_still_serving();
}

TEST_CASE("bad input: NUL inside cwd") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.cwd = std::string("/tmp\0/x", 7);
    check_error(f.ask(launch_request(45, fields)), 45, Errc::bad_request, "cwd contains a NUL byte");
    f.check_still_serving();
}

TEST_CASE("bad input: a command that does not exist") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.argv = std::vector<std::string>{"nsfork-no-such-command"};
    check_error(f.ask(launch_request(46, fields)), 46, Errc::exec_failed,
                "cannot execute 'nsfork-no-such-command': No such file or directory");
    f.check_still_serving();
}

TEST_CASE("bad input: a command that is a directory") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.argv = std::vector<std::string>{"/tmp"};
    check_error(f.ask(launch_request(47, fields)), 47, Errc::exec_failed, "cannot execute '/tmp': Permission denied");
    f.check_still_serving();
}

TEST_CASE("bad input: a cwd that does not exist") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.cwd = "/nsfork-no-such-dir";
    check_error(f.ask(launch_request(48, fields)), 48, Errc::launch_failed,
                "cannot change to working directory '/nsfork-no-such-dir': No such file or directory");
    f.check_still_serving();
}

TEST_CASE("bad input: a cwd that is a file") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.cwd = "/etc/passwd";
    check_error(f.ask(launch_request(49, fields)), 49, Errc::launch_failed,
                "cannot change to working directory '/etc/passwd': Not a directory");
    f.check_still_serving();
}

TEST_CASE("bad input: a relative cwd") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.cwd = "tmp";
    check_error(f.ask(launch_request(50, fields)), 50, Errc::bad_request, "cwd 'tmp' is not an absolute path");
    f.check_still_serving();
}

TEST_CASE("bad input: an empty cwd") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.cwd = "";
    check_error(f.ask(launch_request(51, fields)), 51, Errc::bad_request, "cwd '' is not an absolute path");
    f.check_still_serving();
}

TEST_CASE("bad input: an environment entry without '='") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.env = {kPath, "NO_EQUALS_SIGN"};
    check_error(f.ask(launch_request(52, fields)), 52, Errc::bad_request,
                "environment entry 1 ('NO_EQUALS_SIGN') is not of the form NAME=VALUE");
    f.check_still_serving();
}

TEST_CASE("bad input: an environment entry starting with '='") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.env = {"=value", kPath};
    check_error(f.ask(launch_request(53, fields)), 53, Errc::bad_request,
                "environment entry 0 ('=value') is not of the form NAME=VALUE");
    f.check_still_serving();
}

TEST_CASE("bad input: an empty environment entry") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.env = {kPath, ""};
    check_error(f.ask(launch_request(54, fields)), 54, Errc::bad_request,
                "environment entry 1 ('') is not of the form NAME=VALUE");
    f.check_still_serving();
}

// ==== ids and the registry ====

TEST_CASE("bad input: a duplicate container id") {
    require_root();
    Fixture f;
    {
        // Closed before the check below, which counts the server's fds.
        Client client = f.server.connect();
        Container first = launch_with(client, "dup", {probe(), "sleep"});
        LaunchFields fields;
        fields.id = "dup";
        check_error(f.ask(launch_request(60, fields)), 60, Errc::duplicate_id, "a container with id 'dup' already exists");
        CHECK(alive(first.pid())); // the first one is untouched
        REQUIRE(client.destroy("dup"));
    }
    f.check_still_serving();
}

TEST_CASE("bad input: an id containing '/'") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.id = "../escape/cgroup";
    check_error(f.ask(launch_request(61, fields)), 61, Errc::invalid_id,
                "container id contains byte 0x2f; allowed are letters, digits, '_', '-' and '.'");
    f.check_still_serving();
}

TEST_CASE("bad input: the id '..'") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.id = "..";
    check_error(f.ask(launch_request(62, fields)), 62, Errc::invalid_id, "container id '..' is not allowed");
    f.check_still_serving();
}

TEST_CASE("bad input: an id containing NUL") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.id = std::string("ok\0bad", 6);
    check_error(f.ask(launch_request(63, fields)), 63, Errc::invalid_id,
                "container id contains byte 0x00; allowed are letters, digits, '_', '-' and '.'");
    f.check_still_serving();
}

TEST_CASE("bad input: a 4 KiB id") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.id = std::string(4096, 'a');
    check_error(f.ask(launch_request(64, fields)), 64, Errc::invalid_id, "container id is 4096 bytes long, the limit is 128");
    f.check_still_serving();
}

TEST_CASE("bad input: an unknown parent") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.parent = "nobody";
    check_error(f.ask(launch_request(65, fields)), 65, Errc::unknown_container, "no parent container 'nobody'");
    f.check_still_serving();
}

TEST_CASE("bad input: a parent that has already ended") {
    require_root();
    Fixture f;
    {
        // Closed before the check below, which counts the server's fds.
        Client client = f.server.connect();
        launch_with(client, "ended", {"/bin/true"});
        REQUIRE(client.wait("ended"));
        LaunchFields fields;
        fields.parent = "ended";
        check_error(f.ask(launch_request(66, fields)), 66, Errc::invalid_state, "parent container 'ended' has already ended");
        REQUIRE(client.destroy("ended"));
    }
    f.check_still_serving();
}

TEST_CASE("bad input: wait for an unknown id") {
    require_root();
    Fixture f;
    check_error(f.ask(wait_for(67, "nobody")), 67, Errc::unknown_container, "no container with id 'nobody'");
    f.check_still_serving();
}

TEST_CASE("bad input: kill of an unknown id") {
    require_root();
    Fixture f;
    check_error(f.ask(kill_request(68, "nobody", SIGTERM)), 68, Errc::unknown_container, "no container with id 'nobody'");
    f.check_still_serving();
}

TEST_CASE("bad input: destroy of an unknown id") {
    require_root();
    Fixture f;
    check_error(f.ask(destroy_request(69, "nobody")), 69, Errc::unknown_container, "no container with id 'nobody'");
    f.check_still_serving();
}

TEST_CASE("bad input: wait for an id of 220 KiB") {
    require_root();
    Fixture f;
    // Too large for a datagram: it goes as a Body, and so does the answer, which quotes the id.
    const Bytes inner = wait_for(70, std::string(220 * 1024, 'x'));
    UniqueFd body = memfd_with(inner, kBodySeals);
    const int fds[] = {body.get()};
    auto got = f.ask(body_envelope(70, inner.size()), fds);
    REQUIRE(got);
    auto reply = open_reply(std::move(*got), 64 << 20);
    REQUIRE(reply);
    CHECK(reply->message->seq() == 70);
    const wire::Error* e = reply->message->reply_as_Error();
    REQUIRE(e);
    CHECK(static_cast<int>(e->code()) == static_cast<int>(Errc::unknown_container));
    CHECK(str(e->message()).starts_with("no container with id 'xxxx"));
    f.check_still_serving();
}

// ==== signals ====

// Kills container "target" (running probe sleep) with `signal` over the raw connection and checks
// the refusal; the container keeps running.
void check_signal_refused(int signal) {
    Fixture f;
    {
        // Closed before the check below, which counts the server's fds.
        Client client = f.server.connect();
        Container target = launch_with(client, "target", {probe(), "sleep"});
        check_error(f.ask(kill_request(71, "target", signal)), 71, Errc::bad_request,
                    "signal " + std::to_string(signal) + " is out of range 1.." + std::to_string(SIGRTMAX));
        CHECK(alive(target.pid()));
        REQUIRE(client.destroy("target"));
    }
    f.check_still_serving();
}

TEST_CASE("bad input: signal 0") {
    require_root();
    check_signal_refused(0);
}

TEST_CASE("bad input: signal -1") {
    require_root();
    check_signal_refused(-1);
}

TEST_CASE("bad input: signal 65") {
    require_root();
    check_signal_refused(65);
}

// ==== connections that behave badly ====

TEST_CASE("bad input: Hello and then shutdown(SHUT_WR)") {
    require_root();
    Fixture f;
    REQUIRE(f.raw.send(hello(80)) == 0);
    REQUIRE(::shutdown(f.raw.fd(), SHUT_WR) == 0);
    // A synchronous reply is written before the server reads the end of stream: delivered.
    auto got = f.raw.receive();
    CHECK(reply_in(got)->seq() == 80);
    CHECK(reply_in(got)->reply_as_HelloReply());
    // A half-close is not a close: the server keeps the connection for replies until we hang up.
    pollfd p{f.raw.fd(), POLLIN, 0};
    CHECK(::poll(&p, 1, 200) == 0);
    f.check_still_serving(false);
}

TEST_CASE("bad input: Launch and then shutdown(SHUT_WR)") {
    // A client that half-closes after its last request (shutdown(SHUT_WR): "nothing more to
    // say, still listening") still gets the Launch reply and its pidfd.
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.id = "half-closed";
    REQUIRE(f.raw.send(launch_request(81, fields)) == 0);
    REQUIRE(::shutdown(f.raw.fd(), SHUT_WR) == 0);
    auto got = f.raw.receive();
    {
        // Whatever happened to the reply, the container must be found and destroyed.
        Client client = f.server.connect();
        (void)client.wait("half-closed");
        (void)client.destroy("half-closed");
    }
    REQUIRE(got);
    CHECK(reply_in(got)->seq() == 81);
    CHECK(reply_in(got)->reply_as_LaunchReply());
    f.check_still_serving(false);
}

TEST_CASE("bad input: a client that closes with its Launch unanswered") {
    require_root();
    Fixture f;
    LaunchFields fields;
    fields.id = "orphaned";
    fields.argv = std::vector<std::string>{probe(), "sleep"};
    REQUIRE(f.raw.send(launch_request(82, fields)) == 0);
    f.raw.close();
    // The connection is dropped; the container outlives it (as every container outlives the
    // connection that launched it) and another client can find and destroy it.
    {
        // Closed before the check below, which counts the server's fds.
        Client client = f.server.connect();
        std::optional<ContainerInfo> seen;
        for (int i = 0; i < 500 && !seen; ++i) {
            auto listed = client.list();
            REQUIRE(listed);
            for (const auto& c : *listed)
                if (c.id == "orphaned" && c.state == State::running) seen = c;
            if (!seen) std::this_thread::sleep_for(10ms);
        }
        REQUIRE(seen);
        CHECK(alive(seen->pid));
        REQUIRE(client.destroy("orphaned"));
    }
    f.check_still_serving(false);
}

// Sets this process's RLIMIT_NOFILE soft limit to `soft` (within the hard limit) for its
// lifetime; a server started meanwhile inherits it.
class FdLimit {
public:
    explicit FdLimit(rlim_t soft) {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0);
        REQUIRE(soft <= saved_.rlim_max);
        rlimit changed = saved_;
        changed.rlim_cur = soft;
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &changed) == 0);
    }
    ~FdLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }

private:
    rlimit saved_{};
};

TEST_CASE("bad input: 1,000 concurrent connections") {
    require_root();
    FdLimit limit(4096); // before the server starts: it inherits the limit
    Fixture f;
    std::vector<RawConnection> conns;
    conns.reserve(1000);
    for (int i = 0; i < 1000; ++i) conns.emplace_back(f.server.socket());
    for (auto& c : conns) REQUIRE(c.send(hello(c.next_seq())) == 0);
    int answered = 0;
    for (auto& c : conns) {
        auto got = c.receive();
        if (got && verify_reply(got->bytes) && verify_reply(got->bytes)->reply_as_HelloReply()) ++answered;
    }
    CHECK(answered == 1000);
    CHECK(settled_footprint(f.server.pid()).fds == f.baseline.fds + 1000);
    conns.clear();
    f.check_still_serving();
}

// A client sends Hellos and never reads the replies, until the server drops it; meanwhile
// another client is served promptly. Then the server serves as before.
void check_hog_is_dropped(Fixture& f) {
    RawConnection hog(f.server.socket());
    REQUIRE(::fcntl(hog.fd(), F_SETFL, O_NONBLOCK) == 0);
    bool dropped = false;
    std::chrono::steady_clock::duration slowest{};
    {
        Client other = f.server.connect();
        const Bytes request = hello(1);
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        for (int sent = 0; sent < 50000 && !dropped && std::chrono::steady_clock::now() < deadline;) {
            const int err = hog.send(request);
            if (err == EPIPE || err == ECONNRESET) {
                dropped = true;
            } else if (err == EAGAIN) {
                std::this_thread::sleep_for(1ms); // the server is behind; let it read
            } else {
                REQUIRE(err == 0);
                if (++sent % 500 != 0) continue;
                // Everyone else is served promptly meanwhile.
                const auto start = std::chrono::steady_clock::now();
                auto answer = other.hello();
                if (!answer) FAIL("another client was refused while the hog ran: " << answer.error().message);
                slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
            }
        }
    }
    CHECK(slowest < 1s);
    // The server's policy: a client with thousands of replies unread is disconnected.
    CHECK(dropped);
    hog.close();
    f.check_still_serving();
}

TEST_CASE("bad input: a client that never reads its replies") {
    require_root();
    Fixture f;
    check_hog_is_dropped(f);
}

TEST_CASE("bad input: a client that never reads its replies, against a server with 1,024 fds") {
    // Each HelloReply carries the status table's fd: a client that never reads must not take
    // one server fd per queued reply (the server drops it at 64 queued fds).
    require_root();
    std::optional<Fixture> f;
    {
        FdLimit limit(1024);
        f.emplace();
    }
    check_hog_is_dropped(*f);
}
