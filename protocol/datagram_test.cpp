// Datagram framing and message bodies over a socketpair, no server: fds travel with a datagram,
// a datagram over the limit or with too many fds is refused (and its fds closed), and a body is
// only mapped when it is a sealed memfd that holds what it declares.
#include "protocol/body.hpp"
#include "protocol/framing.hpp"

#include "base/unix_socket.hpp"
#include "testing/process.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

using namespace nsfork;

namespace {

struct Pair {
    UniqueFd a, b;
    Pair() {
        auto p = seqpacket_pair();
        REQUIRE(p);
        a = std::move(p->first);
        b = std::move(p->second);
    }
};

} // namespace

TEST_CASE("framing: a datagram and its fds arrive together, close-on-exec") {
    Pair p;
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(null);
    const std::vector<std::uint8_t> bytes{1, 2, 3, 4};
    const int fds[] = {null.get(), null.get()};
    REQUIRE(send_datagram(p.a.get(), bytes, fds));
    auto got = recv_datagram(p.b.get());
    REQUIRE(got);
    CHECK(got->bytes == bytes);
    REQUIRE(got->fds.size() == 2);
    for (const auto& fd : got->fds) CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("framing: an empty datagram is not taken for the peer's close") {
    Pair p;
    REQUIRE(send_datagram(p.a.get(), {}, {}));
    auto got = recv_datagram(p.b.get());
    REQUIRE(got);
    CHECK(got->bytes.empty());
    p.a.reset();
    auto closed = recv_datagram(p.b.get());
    REQUIRE_FALSE(closed);
    CHECK(closed.error().code == Errc::disconnected);
}

TEST_CASE("framing: a datagram over the largest size is refused") {
    Pair p;
    const int size = 4 << 20;
    ::setsockopt(p.a.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    ::setsockopt(p.b.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    const std::vector<std::uint8_t> big(kMaxDatagram + 1, 0x41);
    REQUIRE(::send(p.a.get(), big.data(), big.size(), 0) == static_cast<ssize_t>(big.size()));
    auto got = recv_datagram(p.b.get());
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::protocol);
}

TEST_CASE("framing: a datagram with more fds than allowed is refused and its fds closed") {
    Pair p;
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(null);
    const std::size_t before = testing::fd_count(::getpid());
    // By hand: sys::send_with_fds refuses to send more than the protocol allows.
    std::vector<int> fds(kMaxFds + 1, null.get());
    char control[CMSG_SPACE(sizeof(int) * (kMaxFds + 1))] = {};
    std::uint8_t byte = 7;
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    REQUIRE(::sendmsg(p.a.get(), &msg, 0) == 1);
    auto got = recv_datagram(p.b.get());
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::protocol);
    CHECK(testing::fd_count(::getpid()) == before); // every fd that did arrive was closed
}

TEST_CASE("body: a sealed body maps and reads back") {
    const std::vector<std::uint8_t> bytes(100000, 0x5a);
    auto fd = make_sealed_body(bytes);
    REQUIRE(fd);
    auto body = MappedBody::map(fd->get(), bytes.size(), 1 << 20);
    REQUIRE(body);
    CHECK(std::vector<std::uint8_t>(body->bytes().begin(), body->bytes().end()) == bytes);
}

TEST_CASE("body: an unsealed memfd, a short one, a size over the cap and size 0 are refused") {
    const std::vector<std::uint8_t> bytes(64, 1);
    UniqueFd unsealed(::memfd_create("body", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    REQUIRE(unsealed);
    REQUIRE(::write(unsealed.get(), bytes.data(), bytes.size()) == 64);
    CHECK_FALSE(MappedBody::map(unsealed.get(), 64, 1024));
    auto sealed = make_sealed_body(bytes);
    REQUIRE(sealed);
    CHECK_FALSE(MappedBody::map(sealed->get(), 65, 1024)); // declares more than it holds
    CHECK_FALSE(MappedBody::map(sealed->get(), 64, 63));   // over the cap
    CHECK_FALSE(MappedBody::map(sealed->get(), 0, 1024));
    CHECK(MappedBody::map(sealed->get(), 32, 1024)); // a prefix is fine
}

TEST_CASE("body: a file that is not a memfd is refused") {
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(null);
    CHECK_FALSE(MappedBody::map(null.get(), 1, 1024));
}
