// The client's reply matching, against a fake server on the other end of a socketpair that
// speaks with the protocol's own encoders. Every reply is written before the client reads, so the
// fake server needs no thread: a seqpacket socket holds the datagrams until asked for.
#include "protocol/client.hpp"
#include "protocol/framing.hpp"
#include "protocol/messages.hpp"
#include "protocol/replies.hpp"
#include "base/unix_socket.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <utility>
#include <vector>

using namespace nsfork;

namespace {

// A client connected to a fake server's end of a socketpair.
struct Connected {
    Client client;
    UniqueFd server;
};

Connected connected() {
    auto pair = seqpacket_pair();
    REQUIRE(pair);
    return {Client(std::move(pair->first)), std::move(pair->second)};
}

// Whether `fd` has a datagram waiting, without blocking.
bool pending(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

// Takes the request the client sent (it must have sent one), checks its type, returns its seq.
std::uint32_t take_request(int server, wire::Request type) {
    REQUIRE(pending(server));
    auto got = recv_datagram(server);
    REQUIRE(got);
    const wire::RequestMessage* m = verify_request(got->bytes);
    REQUIRE(m);
    CHECK(m->request_type() == type);
    return m->seq();
}

// Sends the finished reply in `fbb` (with `fds`) to the client.
void answer(int server, const flatbuffers::FlatBufferBuilder& fbb, std::span<const int> fds = {}) {
    REQUIRE(send_datagram(server, {fbb.GetBufferPointer(), fbb.GetSize()}, fds));
}

// A WaitReply on `seq` for a container that exited with `code`.
void answer_wait(int server, std::uint32_t seq, int code) {
    ContainerInfo info;
    info.id = "c" + std::to_string(seq);
    info.state = State::exited;
    info.exit = ExitStatus{code, 0};
    flatbuffers::FlatBufferBuilder fbb;
    write_wait_reply(fbb, seq, info);
    answer(server, fbb);
}

// A KillReply on `seq`.
void answer_kill(int server, std::uint32_t seq) {
    flatbuffers::FlatBufferBuilder fbb;
    write_kill_reply(fbb, seq);
    answer(server, fbb);
}

// An Error reply on `seq`.
void answer_error(int server, std::uint32_t seq, const Error& error) {
    flatbuffers::FlatBufferBuilder fbb;
    write_error_reply(fbb, seq, error);
    answer(server, fbb);
}

// A close-on-exec pipe.
std::pair<UniqueFd, UniqueFd> make_pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

} // namespace

TEST_CASE("client: replies arriving out of order are each matched to the request of their seq") {
    auto [client, server] = connected();
    auto first = client.send_wait("a");
    auto second = client.send_wait("b");
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(*first != *second);
    CHECK(take_request(server.get(), wire::Request::Wait) == *first);
    CHECK(take_request(server.get(), wire::Request::Wait) == *second);

    answer_wait(server.get(), *second, 2);
    answer_wait(server.get(), *first, 1);
    auto got_first = client.receive_wait(*first);
    REQUIRE(got_first);
    CHECK(*got_first == ExitStatus{1, 0});
    // The second reply was read on the way to the first: it is kept, not left on the socket.
    CHECK_FALSE(pending(client.native_handle()));
    auto got_second = client.receive_wait(*second);
    REQUIRE(got_second);
    CHECK(*got_second == ExitStatus{2, 0});
}

TEST_CASE("client: an early reply for another seq is kept until that request asks for it") {
    auto [client, server] = connected();
    auto waiting = client.send_wait("a");
    REQUIRE(waiting);
    CHECK(take_request(server.get(), wire::Request::Wait) == *waiting);
    // The Wait's reply comes before the Kill's, while the client waits for the Kill.
    answer_wait(server.get(), *waiting, 7);
    answer_kill(server.get(), *waiting + 1);
    REQUIRE(client.kill("b", SIGTERM));
    CHECK(take_request(server.get(), wire::Request::Kill) == *waiting + 1);
    CHECK_FALSE(pending(client.native_handle()));
    auto status = client.receive_wait(*waiting);
    REQUIRE(status);
    CHECK(*status == ExitStatus{7, 0});
}

TEST_CASE("client: an error reply becomes an Error with the server's code, message and errno") {
    auto [client, server] = connected();
    answer_error(server.get(), 1, Error{Errc::unknown_container, "no container 'x'", ENOENT});
    auto killed = client.kill("x", SIGKILL);
    REQUIRE_FALSE(killed);
    CHECK(killed.error().code == Errc::unknown_container);
    CHECK(killed.error().message == "no container 'x'");
    CHECK(killed.error().sys_errno == ENOENT);
}

// An early Error reply used to skip the Error check a fresh one gets: receive_wait said "server
// answered Wait with another reply" instead of the server's code and message.
TEST_CASE("client: an error reply for another seq is kept for that request, not given to the current one") {
    auto [client, server] = connected();
    auto waiting = client.send_wait("a");
    REQUIRE(waiting);
    answer_error(server.get(), *waiting, Error{Errc::invalid_state, "container 'a' was destroyed"});
    answer_kill(server.get(), *waiting + 1);
    CHECK(client.kill("b", SIGTERM));
    auto status = client.receive_wait(*waiting);
    REQUIRE_FALSE(status);
    CHECK(status.error().code == Errc::invalid_state);
    CHECK(status.error().message == "container 'a' was destroyed");
}

TEST_CASE("client: an error on seq 0 is the server's word to whatever request is waiting") {
    auto [client, server] = connected();
    answer_error(server.get(), 0, Error{Errc::not_permitted, "uid 1000 may not connect"});
    auto status = client.wait("a");
    REQUIRE_FALSE(status);
    CHECK(status.error().code == Errc::not_permitted);
    CHECK(status.error().message == "uid 1000 may not connect");
}

TEST_CASE("client: a reply of the wrong type for the request is a protocol error") {
    auto [client, server] = connected();
    answer_kill(server.get(), 1);
    auto status = client.wait("a");
    REQUIRE_FALSE(status);
    CHECK(status.error().code == Errc::protocol);
    CHECK(status.error().message == "server answered Wait with another reply");

    answer_wait(server.get(), 2, 0);
    LaunchOptions o;
    o.argv = {"/bin/true"};
    auto launched = client.launch(o);
    REQUIRE_FALSE(launched);
    CHECK(launched.error().code == Errc::protocol);
    CHECK(launched.error().message == "server answered Launch with another reply");
}

TEST_CASE("client: the server closing the connection is disconnected, for a waiting and for a new request") {
    auto [client, server] = connected();
    auto waiting = client.send_wait("a");
    REQUIRE(waiting);
    take_request(server.get(), wire::Request::Wait);
    server.reset();
    auto status = client.receive_wait(*waiting);
    REQUIRE_FALSE(status);
    CHECK(status.error().code == Errc::disconnected);
    CHECK(status.error().message == "nsfork server closed the connection");

    auto killed = client.kill("a", SIGTERM);
    REQUIRE_FALSE(killed);
    CHECK(killed.error().code == Errc::disconnected);
    CHECK(killed.error().message == "nsfork server closed the connection");
}

TEST_CASE("client: the pidfd attached to a launch reply arrives with the container") {
    auto [client, server] = connected();
    auto [read_end, write_end] = make_pipe(); // stands in for a pidfd: the client only receives it
    ContainerInfo info;
    info.id = "web";
    info.pid = 4242;
    info.pidns = 4026531836ULL;
    info.state = State::running;
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 1, info);
    const int fds[] = {read_end.get()};
    answer(server.get(), fbb, fds);
    read_end.reset();

    LaunchOptions o;
    o.id = "web";
    o.argv = {"/bin/true"};
    auto launched = client.launch(o);
    REQUIRE(launched);
    CHECK(take_request(server.get(), wire::Request::Launch) == 1);
    CHECK(launched->id() == "web");
    CHECK(launched->pid() == 4242);
    CHECK(launched->pidns_inode() == 4026531836ULL);
    // The fd received is the pipe's read end: what goes in the write end comes out of it.
    REQUIRE(::write(write_end.get(), "x", 1) == 1);
    char c = 0;
    CHECK(::read(launched->pidfd(), &c, 1) == 1);
    CHECK(c == 'x');
    CHECK((::fcntl(launched->pidfd(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("client: a launch reply without its pidfd is a protocol error") {
    auto [client, server] = connected();
    ContainerInfo info;
    info.id = "web";
    info.state = State::running;
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 1, info);
    answer(server.get(), fbb);
    LaunchOptions o;
    o.argv = {"/bin/true"};
    auto launched = client.launch(o);
    REQUIRE_FALSE(launched);
    CHECK(launched.error().code == Errc::protocol);
    CHECK(launched.error().message == "Launch reply did not carry exactly one pidfd");
}
