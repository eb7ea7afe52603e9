// The asynchronous client's core (AsyncSession) without an event loop: the test plays the loop
// (on_readable / on_writable) and the server, at the other end of a socketpair, with the
// protocol's own encoders.
#include "nsfork/detail/async_session.hpp"
#include "protocol/framing.hpp"
#include "protocol/messages.hpp"
#include "protocol/replies.hpp"
#include "base/unix_socket.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace nsfork;
using nsfork::detail::AsyncSession;
using nsfork::detail::Completion;
using nsfork::detail::CompletionPtr;

namespace {

// Keeps the result an operation completed with (`into` must outlive the session's use of it).
template <class T>
class Keep final : public Completion<T> {
public:
    explicit Keep(std::optional<Result<T>>& into) : into_(into) {}
    void complete(Result<T> result) override {
        REQUIRE_FALSE(into_.has_value()); // exactly once
        into_.emplace(std::move(result));
    }

private:
    std::optional<Result<T>>& into_;
};

template <class T>
CompletionPtr<T> keep(std::optional<Result<T>>& into) {
    return std::make_unique<Keep<T>>(into);
}

struct Connected {
    UniqueFd client_end; // the session's socket, which stays the caller's
    UniqueFd server;
    std::unique_ptr<AsyncSession> session;
};

Connected connected() {
    auto pair = seqpacket_pair();
    REQUIRE(pair);
    Connected c{std::move(pair->first), std::move(pair->second), nullptr};
    c.session = std::make_unique<AsyncSession>(c.client_end.get());
    return c;
}

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

// The next request the session sent: its seq, type and fds.
struct Taken {
    std::uint32_t seq;
    wire::Request type;
    std::vector<UniqueFd> fds;
};
Taken take(int server) {
    REQUIRE(readable(server));
    auto got = recv_datagram(server);
    REQUIRE(got);
    const wire::RequestMessage* m = verify_request(got->bytes);
    REQUIRE(m);
    return {m->seq(), m->request_type(), std::move(got->fds)};
}

void send_reply(int server, const flatbuffers::FlatBufferBuilder& fbb) {
    REQUIRE(send_datagram(server, {fbb.GetBufferPointer(), fbb.GetSize()}, {}));
}

void answer_wait(int server, std::uint32_t seq, int code) {
    ContainerInfo info;
    info.id = "c" + std::to_string(seq); // (not a bare literal: GCC 12 -Wrestrict misfires on it under ASan)
    info.state = State::exited;
    info.exit = ExitStatus{code, 0};
    flatbuffers::FlatBufferBuilder fbb;
    write_wait_reply(fbb, seq, info);
    send_reply(server, fbb);
}

void answer_error(int server, std::uint32_t seq, const Error& e) {
    flatbuffers::FlatBufferBuilder fbb;
    write_error_reply(fbb, seq, e);
    send_reply(server, fbb);
}

} // namespace

TEST_CASE("async session: replies in any order complete the requests of their seq") {
    auto c = connected();
    std::optional<Result<ExitStatus>> a, b;
    c.session->wait("a", keep(a));
    c.session->wait("b", keep(b));
    CHECK(c.session->in_flight() == 2);
    CHECK(c.session->wants_read());
    CHECK_FALSE(c.session->wants_write());
    const Taken first = take(c.server.get()), second = take(c.server.get());
    CHECK(first.type == wire::Request::Wait);
    CHECK(first.seq != second.seq);

    answer_wait(c.server.get(), second.seq, 2);
    c.session->on_readable();
    CHECK_FALSE(a);
    REQUIRE(b);
    REQUIRE(*b);
    CHECK(**b == ExitStatus{2, 0});
    answer_wait(c.server.get(), first.seq, 1);
    c.session->on_readable();
    REQUIRE(a);
    REQUIRE(*a);
    CHECK(**a == ExitStatus{1, 0});
    CHECK(c.session->in_flight() == 0);
    CHECK_FALSE(c.session->wants_read()); // nothing due: an event loop may stop waiting
}

TEST_CASE("async session: an error reply completes its own request only, as a value") {
    std::optional<Result<void>> killed;
    std::optional<Result<ExitStatus>> waited; // still pending when the session goes: declared before it
    auto c = connected();
    c.session->kill("x", SIGKILL, false, keep(killed));
    c.session->wait("y", keep(waited));
    const Taken kill = take(c.server.get());
    answer_error(c.server.get(), kill.seq, Error{Errc::unknown_container, "no container 'x'", ENOENT});
    c.session->on_readable();
    REQUIRE(killed);
    REQUIRE_FALSE(*killed);
    CHECK(killed->error().code == Errc::unknown_container);
    CHECK(killed->error().message == "no container 'x'");
    CHECK(killed->error().sys_errno == ENOENT);
    CHECK_FALSE(waited);
    CHECK(c.session->in_flight() == 1);
}

TEST_CASE("async session: requests a full socket refuses are queued, copies of their fds kept, and sent in order once it drains") {
    std::vector<std::optional<Result<ExitStatus>>> waits(200); // pending when the session goes
    std::optional<Result<Container>> launched;
    auto c = connected();
    // A small send buffer fills after a few datagrams the server does not read.
    const int small = 4096;
    REQUIRE(::setsockopt(c.client_end.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    for (auto& w : waits) c.session->wait("w", keep(w));
    REQUIRE(c.session->wants_write());
    // A launch behind them, whose stdout the caller closes at once: the queue keeps its copy.
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    UniqueFd read_end(fds[0]);
    {
        UniqueFd write_end(fds[1]);
        LaunchOptions o;
        o.argv = {"/bin/true"};
        o.stdio = {-1, write_end.get(), -1};
        c.session->launch(o, keep(launched));
    }
    CHECK(c.session->in_flight() == 201);

    std::vector<std::uint32_t> seqs;
    std::optional<Taken> launch;
    while (seqs.size() < 200 || !launch) {
        while (readable(c.server.get())) {
            Taken t = take(c.server.get());
            if (t.type == wire::Request::Launch) launch.emplace(std::move(t));
            else seqs.push_back(t.seq);
        }
        REQUIRE(c.session->wants_write() == (seqs.size() < 200 || !launch));
        c.session->on_writable();
    }
    CHECK_FALSE(c.session->wants_write());
    for (std::size_t i = 1; i < seqs.size(); ++i) CHECK(seqs[i] == seqs[i - 1] + 1); // in order
    REQUIRE(launch->fds.size() == 1);
    REQUIRE(::write(launch->fds[0].get(), "q", 1) == 1);
    char ch = 0;
    CHECK(::read(read_end.get(), &ch, 1) == 1);
    CHECK(ch == 'q');
    for (auto& w : waits) CHECK_FALSE(w);
}

TEST_CASE("async session: the server closing completes every pending request, and every later one, disconnected") {
    auto c = connected();
    std::optional<Result<ExitStatus>> a, b;
    c.session->wait("a", keep(a));
    c.session->wait("b", keep(b));
    const Taken first = take(c.server.get());
    answer_wait(c.server.get(), first.seq, 3); // answered before the close: still counts
    c.server.reset();
    c.session->on_readable();
    CHECK(c.session->closed());
    REQUIRE(a);
    REQUIRE(*a);
    CHECK(**a == ExitStatus{3, 0});
    REQUIRE(b);
    REQUIRE_FALSE(*b);
    CHECK(b->error().code == Errc::disconnected);
    CHECK(b->error().message == "nsfork server closed the connection");
    CHECK_FALSE(c.session->wants_read());

    std::optional<Result<std::vector<ContainerInfo>>> later;
    c.session->list(keep(later));
    REQUIRE(later);
    REQUIRE_FALSE(*later);
    CHECK(later->error().code == Errc::disconnected);
}

TEST_CASE("async session: the server's word on seq 0 is every pending request's error") {
    auto c = connected();
    std::optional<Result<ExitStatus>> a, b;
    c.session->wait("a", keep(a));
    c.session->wait("b", keep(b));
    answer_error(c.server.get(), 0, Error{Errc::not_permitted, "uid 1000 may not connect"});
    c.server.reset();
    c.session->on_readable();
    for (auto* r : {&a, &b}) {
        REQUIRE(*r);
        REQUIRE_FALSE(**r);
        CHECK((*r)->error().code == Errc::not_permitted);
        CHECK((*r)->error().message == "uid 1000 may not connect");
    }
}

TEST_CASE("async session: a request refused before sending completes at once, the others go on") {
    auto c = connected();
    std::optional<Result<Container>> launched;
    LaunchOptions o;
    o.argv = {"/bin/true"};
    o.extra_fds.assign(kMaxExtraFds + 1, c.server.get());
    c.session->launch(o, keep(launched));
    REQUIRE(launched);
    REQUIRE_FALSE(*launched);
    CHECK(launched->error().code == Errc::bad_request);
    CHECK_FALSE(readable(c.server.get()));
    CHECK(c.session->in_flight() == 0);
}

TEST_CASE("async session: destroyed with requests pending, it completes them cancelled") {
    auto c = connected();
    std::optional<Result<ExitStatus>> a;
    std::optional<Result<ContainerInfo>> d;
    c.session->wait("a", keep(a));
    c.session->destroy("a", keep(d));
    c.session.reset();
    for (const Error* e : {&a->error(), &d->error()}) {
        CHECK(e->code == Errc::disconnected);
        CHECK(e->message == "cancelled: the AsyncClient was destroyed");
    }
    CHECK(::fcntl(c.client_end.get(), F_GETFD) >= 0); // the socket stays the caller's
}

TEST_CASE("async session: hello offers 1..2, negotiates the version the server chose, and maps no table it was not given") {
    auto c = connected();
    CHECK(c.session->protocol_version() == 1);
    std::optional<Result<ServerStatus>> status;
    c.session->hello(keep(status));
    const Taken h = take(c.server.get());
    CHECK(h.type == wire::Request::Hello);
    ServerStatus s;
    s.pid = 99;
    flatbuffers::FlatBufferBuilder fbb;
    write_hello_reply(fbb, h.seq, s, 2);
    send_reply(c.server.get(), fbb);
    c.session->on_readable();
    REQUIRE(status);
    REQUIRE(*status);
    CHECK((*status)->pid == 99);
    CHECK(c.session->protocol_version() == 2);
    CHECK(c.session->status_table() == nullptr);
}

TEST_CASE("async session: a request sent after the server closed completes disconnected") {
    auto c = connected();
    c.server.reset();
    std::optional<Result<ExitStatus>> waited;
    c.session->wait("a", keep(waited));
    REQUIRE(waited);
    REQUIRE_FALSE(*waited);
    CHECK(waited->error().code == Errc::disconnected);
    CHECK(waited->error().message == "nsfork server closed the connection");
    CHECK(c.session->closed());
}
