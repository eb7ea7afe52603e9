// The client's reply matching, against a fake server on the other end of a socketpair that
// speaks with the protocol's own encoders. Every reply is written before the client reads, so the
// fake server needs no thread: a seqpacket socket holds the datagrams until asked for.
#include "nsfork/client.hpp"
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
    CHECK(launched.error().message == "Launch reply did not carry the fds it declares");
}

namespace {

// The Launch request the client sent, with its fds.
Datagram take_launch(int server) {
    REQUIRE(pending(server));
    auto got = recv_datagram(server);
    REQUIRE(got);
    const wire::RequestMessage* m = verify_request(got->bytes);
    REQUIRE(m);
    REQUIRE(m->request_as_Launch());
    return std::move(*got);
}

} // namespace

TEST_CASE("client: a launch sends the command's settings, its user and its extra fds after stdio") {
    auto [client, server] = connected();
    auto [read_end, write_end] = make_pipe();
    ContainerInfo info;
    info.id = "web";
    info.state = State::running;
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 1, info);
    const int pidfd[] = {read_end.get()};
    answer(server.get(), fbb, pidfd); // queued before the client asks: it reads it after sending

    LaunchOptions o;
    o.argv = {"/bin/true"};
    o.stdio = {-1, write_end.get(), -1};
    o.extra_fds = {read_end.get(), write_end.get()};
    o.kill_group = true;
    o.signal_mask = 1ULL << (SIGHUP - 1);
    o.ignored_signals = 1ULL << (SIGPIPE - 1);
    o.uid = 1000;
    o.groups = std::vector<gid_t>{};
    REQUIRE(client.launch(o));

    Datagram sent = take_launch(server.get());
    const wire::Launch* l = verify_request(sent.bytes)->request_as_Launch();
    REQUIRE(l->fds());
    CHECK(std::vector<wire::FdRole>(l->fds()->begin(), l->fds()->end()) ==
          std::vector<wire::FdRole>{wire::FdRole::Stdout, wire::FdRole::Extra, wire::FdRole::Extra});
    REQUIRE(sent.fds.size() == 3);
    // The second extra fd is the pipe's write end: what goes in comes out of the read end.
    REQUIRE(::write(sent.fds[2].get(), "y", 1) == 1);
    char c = 0;
    CHECK(::read(read_end.get(), &c, 1) == 1);
    CHECK(c == 'y');
    CHECK_FALSE(l->tty());
    CHECK(l->kill_group());
    CHECK(l->signal_mask() == o.signal_mask);
    CHECK(l->ignored_signals() == o.ignored_signals);
    REQUIRE(l->user());
    CHECK(l->user()->uid() == 1000u);
    CHECK_FALSE(l->user()->gid().has_value());
    REQUIRE(l->user()->groups());
    CHECK(l->user()->groups()->size() == 0);
}

TEST_CASE("client: a launch naming no user sends no User table") {
    auto [client, server] = connected();
    flatbuffers::FlatBufferBuilder fbb;
    write_error_reply(fbb, 1, Error{Errc::bad_request, "whatever"});
    answer(server.get(), fbb);
    LaunchOptions o;
    o.argv = {"/bin/true"};
    CHECK_FALSE(client.launch(o));
    Datagram sent = take_launch(server.get());
    CHECK(verify_request(sent.bytes)->request_as_Launch()->user() == nullptr);
}

TEST_CASE("client: more extra fds than a Launch carries are refused before sending") {
    auto [client, server] = connected();
    LaunchOptions o;
    o.argv = {"/bin/true"};
    o.extra_fds.assign(kMaxExtraFds + 1, server.get());
    auto launched = client.launch(o);
    REQUIRE_FALSE(launched);
    CHECK(launched.error().code == Errc::bad_request);
    CHECK(launched.error().message == "more than 11 extra fds");
    CHECK_FALSE(pending(server.get()));
}

TEST_CASE("client: a tty launch's reply brings the terminal's master with the pidfd") {
    auto [client, server] = connected();
    auto [pid_read, pid_write] = make_pipe();
    auto [term_read, term_write] = make_pipe(); // stands in for the master
    ContainerInfo info;
    info.id = "sh";
    info.state = State::running;
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 1, info, true);
    const int fds[] = {pid_read.get(), term_read.get()};
    answer(server.get(), fbb, fds);

    LaunchOptions o;
    o.argv = {"/bin/sh"};
    o.tty = true;
    auto launched = client.launch(o);
    REQUIRE(launched);
    CHECK(take_launch(server.get()).fds.empty());
    REQUIRE(::write(term_write.get(), "t", 1) == 1);
    char c = 0;
    CHECK(::read(launched->terminal(), &c, 1) == 1);
    CHECK(c == 't');
    CHECK((::fcntl(launched->terminal(), F_GETFD) & FD_CLOEXEC) != 0);
    UniqueFd master = launched->release_terminal();
    CHECK(master);
    CHECK(launched->terminal() == -1);
}

TEST_CASE("client: a tty launch's reply without the terminal is a protocol error, and a plain one has none") {
    auto [client, server] = connected();
    auto [pid_read, pid_write] = make_pipe();
    ContainerInfo info;
    info.id = "sh";
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 1, info);
    const int fds[] = {pid_read.get()};
    answer(server.get(), fbb, fds);
    LaunchOptions o;
    o.argv = {"/bin/sh"};
    o.tty = true;
    auto launched = client.launch(o);
    REQUIRE_FALSE(launched);
    CHECK(launched.error().code == Errc::protocol);
    CHECK(launched.error().message == "Launch reply did not carry a pidfd and a terminal");

    flatbuffers::FlatBufferBuilder second;
    write_launch_reply(second, 2, info);
    answer(server.get(), second, fds);
    o.tty = false;
    auto plain = client.launch(o);
    REQUIRE(plain);
    CHECK(plain->terminal() == -1);
}

TEST_CASE("client: kill with all says so in the request, and kill without it does not") {
    auto [client, server] = connected();
    answer_kill(server.get(), 1);
    answer_kill(server.get(), 2);
    REQUIRE(client.kill("a", SIGTERM, true));
    REQUIRE(client.kill("a", SIGTERM));
    for (bool all : {true, false}) {
        auto got = recv_datagram(server.get());
        REQUIRE(got);
        const wire::Kill* k = verify_request(got->bytes)->request_as_Kill();
        REQUIRE(k);
        CHECK(k->signal() == SIGTERM);
        CHECK(k->all() == all);
    }
}

TEST_CASE("client: a hold launch sends hold and its cgroup name, and its reply brings the cgroup leaf") {
    auto [client, server] = connected();
    auto [pid_read, pid_write] = make_pipe();
    auto [cg_read, cg_write] = make_pipe(); // stands in for the leaf's directory fd
    ContainerInfo info;
    info.id = "held";
    info.state = State::running;
    info.held = true;
    info.cgroup = "/sys/fs/cgroup/unified/nsfork-1/pod/held";
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 1, info, false, true);
    const int fds[] = {pid_read.get(), cg_read.get()};
    answer(server.get(), fbb, fds);

    LaunchOptions o;
    o.hold = true;
    o.cgroup_name = "pod/held";
    auto launched = client.launch(o);
    REQUIRE(launched);
    Datagram sent = take_launch(server.get());
    const wire::Launch* l = verify_request(sent.bytes)->request_as_Launch();
    CHECK(l->hold());
    CHECK(str(l->cgroup_name()) == "pod/held");
    REQUIRE(l->argv());
    CHECK(l->argv()->size() == 0);
    CHECK(launched->info().held);
    CHECK(launched->info().cgroup == info.cgroup);
    REQUIRE(::write(cg_write.get(), "g", 1) == 1);
    char c = 0;
    CHECK(::read(launched->cgroup(), &c, 1) == 1);
    CHECK(c == 'g');
    UniqueFd leaf = launched->release_cgroup();
    CHECK(leaf);
    CHECK(launched->cgroup() == -1);
}

TEST_CASE("client: a reply's fd the launch did not ask for is a protocol error") {
    auto [client, server] = connected();
    auto [pid_read, pid_write] = make_pipe();
    ContainerInfo info;
    info.id = "web";
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 1, info, false, true); // a cgroup leaf for a launch that is not held
    const int fds[] = {pid_read.get(), pid_write.get()};
    answer(server.get(), fbb, fds);
    LaunchOptions o;
    o.argv = {"/bin/true"};
    auto launched = client.launch(o);
    REQUIRE_FALSE(launched);
    CHECK(launched.error().code == Errc::protocol);
    CHECK(launched.error().message == "Launch reply carried an fd this launch did not ask for");
}

TEST_CASE("client: adopt sends the id and the main process's pidfd") {
    auto [client, server] = connected();
    auto [read_end, write_end] = make_pipe(); // stands in for the pidfd
    flatbuffers::FlatBufferBuilder fbb;
    write_adopt_reply(fbb, 1);
    answer(server.get(), fbb);
    REQUIRE(client.adopt("held", write_end.get()));
    REQUIRE(pending(server.get()));
    auto got = recv_datagram(server.get());
    REQUIRE(got);
    const wire::Adopt* a = verify_request(got->bytes)->request_as_Adopt();
    REQUIRE(a);
    CHECK(str(a->id()) == "held");
    REQUIRE(got->fds.size() == 1);
    REQUIRE(::write(got->fds[0].get(), "p", 1) == 1);
    char c = 0;
    CHECK(::read(read_end.get(), &c, 1) == 1);
    CHECK(c == 'p');
}

namespace {

// A HelloReply on `seq` choosing `version`, without a status table.
void answer_hello(int server, std::uint32_t seq, std::uint32_t version) {
    ServerStatus status;
    status.pid = 77;
    flatbuffers::FlatBufferBuilder fbb;
    write_hello_reply(fbb, seq, status, version);
    answer(server, fbb);
}

} // namespace

TEST_CASE("client: hello offers versions 1 to 2 in a request carrying the request identifier") {
    auto [client, server] = connected();
    answer_hello(server.get(), 1, kProtocolVersion);
    CHECK(client.protocol_version() == 1); // what a connection that never said Hello speaks
    auto pid = client.hello();
    REQUIRE(pid);
    CHECK(*pid == 77);
    CHECK(client.protocol_version() == kProtocolVersion);
    auto got = recv_datagram(server.get());
    REQUIRE(got);
    CHECK(identify(got->bytes) == Identified::request);
    const wire::Hello* h = verify_request(got->bytes)->request_as_Hello();
    REQUIRE(h);
    CHECK(h->version() == 2u);
    CHECK(h->min_version() == 1u);
}

TEST_CASE("client: a server choosing version 1 is spoken to in version 1, one choosing outside 1..2 is refused") {
    auto [client, server] = connected();
    answer_hello(server.get(), 1, 1);
    REQUIRE(client.hello());
    CHECK(client.protocol_version() == 1);

    answer_hello(server.get(), 2, 3);
    auto refused = client.hello();
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::protocol);
    CHECK(refused.error().message == "server chose protocol version 3, this client speaks 1..2");
    CHECK(client.protocol_version() == 1);
}
