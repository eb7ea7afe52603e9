// Hostile input against a real `nsfork serve` that the one-datagram table of badinput_test.cpp
// cannot express: a reply that is answered, containers that must exist first, a Body-sized
// answer, and connections that behave badly (half-closed, closed early, thousands of them, a
// client that never reads).
#include "badinput.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <thread>

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
using namespace std::chrono_literals;

// ==== answers that are not a plain refusal ====

TEST_CASE("bad input: an unidentified HelloReply ReplyMessage sent as a request is taken for a Hello") {
    require_root();
    Fixture f;
    // Without a file identifier (a peer of the previous schema) the server cannot tell them apart:
    // RequestMessage and ReplyMessage have the same shape, and HelloReply (1) lines up with Hello
    // (1), its version with Hello's. Harmless (a Hello changes nothing); documented here. With the
    // identifier NSFR it is refused (badinput_test.cpp).
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateReplyMessage(fbb, 13, wire::Reply::HelloReply, wire::CreateHelloReply(fbb, 1).Union()));
    auto got = f.ask(bytes_of(fbb));
    const wire::ReplyMessage* m = reply_in(got);
    CHECK(m->seq() == 13);
    REQUIRE(m->reply_as_HelloReply());
    CHECK(m->reply_as_HelloReply()->version() == 1);
    f.check_still_serving();
}

namespace {

// The version a Hello offering [min_version, version] gets on `f`'s raw connection, which must be
// answered with a HelloReply and the status table.
std::uint32_t negotiated(Fixture& f, std::uint32_t version, std::uint32_t min_version = 0,
                         const char* identifier = kRequestIdentifier) {
    const std::uint32_t seq = f.raw.next_seq();
    auto got = f.ask(hello(seq, version, min_version, identifier));
    const wire::ReplyMessage* m = reply_in(got);
    CHECK(m->seq() == seq);
    if (const wire::Error* e = m->reply_as_Error()) FAIL("Hello refused: " << str(e->message()));
    const wire::HelloReply* r = m->reply_as_HelloReply();
    REQUIRE(r);
    CHECK(got->fds.size() == 1);
    return r->version();
}

} // namespace

TEST_CASE("bad input: after a Hello of an unsupported version the connection negotiates again") {
    require_root();
    Fixture f;
    check_error(f.ask(hello(90, 7, 5)), 90, Errc::protocol, "protocol versions 5..7 not supported: this server speaks 1..2");
    // The same connection: the highest version both speak, whatever was refused before.
    CHECK(negotiated(f, 9, 1) == 2);
    CHECK(negotiated(f, 1) == 1);
    CHECK(negotiated(f, 2, 1) == 2);
    CHECK(negotiated(f, 2, 0, nullptr) == 2); // a Hello without an identifier is read as well
    f.check_still_serving();
}

// ==== missing required fields (the Verifier refuses them: seq 0) ====

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

TEST_CASE("bad input: wait for an id of 220 KiB") {
    require_root();
    Fixture f;
    // Too large for a datagram: it goes as a Body, and so does the answer, which quotes the id.
    const Bytes inner = wait_request(70, std::string(220 * 1024, 'x'));
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
    for (int i = 0; i < 1000; ++i) conns.push_back(raw_connection(f.server.socket()));
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
    RawConnection hog = raw_connection(f.server.socket());
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
