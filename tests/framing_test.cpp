// protocol/framing: datagrams with fds on SOCK_SEQPACKET.
#include "harness.hpp"
#include "protocol/framing.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/socket.h>


using namespace nsfork;
using namespace nsfork::test;

TEST_CASE("framing: bytes and fds arrive together, the fds close-on-exec") {
    auto pair = seqpacket_pair();
    REQUIRE(pair);
    Pipe p;
    const std::vector<std::uint8_t> bytes = {1, 2, 3};
    const int fds[] = {p.write.get()};
    REQUIRE(send_datagram(pair->first.get(), bytes, fds));
    auto d = recv_datagram(pair->second.get());
    REQUIRE(d);
    CHECK(d->bytes == bytes);
    REQUIRE(d->fds.size() == 1);
    CHECK((::fcntl(d->fds[0].get(), F_GETFD) & FD_CLOEXEC) != 0);
    REQUIRE(::write(d->fds[0].get(), "x", 1) == 1); // the same pipe
    char c;
    CHECK(::read(p.read.get(), &c, 1) == 1);
}

TEST_CASE("framing: too many fds is a protocol error and leaks none") {
    auto pair = seqpacket_pair();
    REQUIRE(pair);
    std::vector<int> many(kMaxFds + 4, pair->first.get());
    // Sent raw: send_datagram itself refuses more than kMaxFds.
    const std::uint8_t byte = 0;
    REQUIRE(testing::send_raw(pair->first.get(), {&byte, 1}, many) == 0);
    auto d = recv_datagram(pair->second.get());
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::protocol);
    CHECK(d.error().message == "datagram carried more than 16 fds");
}

TEST_CASE("framing: an oversized datagram is a protocol error, the next one still arrives") {
    auto pair = seqpacket_pair();
    REQUIRE(pair);
    int big = 1 << 20;
    ::setsockopt(pair->first.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    std::vector<std::uint8_t> huge(kMaxDatagram + 1, 7);
    REQUIRE(send_datagram(pair->first.get(), huge, {}));
    REQUIRE(send_datagram(pair->first.get(), std::vector<std::uint8_t>{9}, {}));
    auto d = recv_datagram(pair->second.get());
    REQUIRE_FALSE(d);
    CHECK(d.error().code == Errc::protocol);
    auto next = recv_datagram(pair->second.get());
    REQUIRE(next);
    CHECK(next->bytes == std::vector<std::uint8_t>{9});
}

TEST_CASE("framing: a zero-length datagram is not mistaken for end of stream") {
    auto pair = seqpacket_pair();
    REQUIRE(pair);
    REQUIRE(send_datagram(pair->first.get(), {}, {}));
    auto empty = recv_datagram(pair->second.get());
    REQUIRE(empty);
    CHECK(empty->bytes.empty());
    pair->first.reset();
    auto eof = recv_datagram(pair->second.get());
    REQUIRE_FALSE(eof);
    CHECK(eof.error().code == Errc::disconnected);
}
