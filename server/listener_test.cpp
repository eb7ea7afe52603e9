// The listener's peer check: who may connect. (A peer inside a container is refused end to end:
// hardening_test.cpp, "a process inside cannot use the server's socket".)
#include "server/listener.hpp"

#include "base/procfs.hpp"
#include "base/unix_socket.hpp"
#include "nsfork/client.hpp"
#include "testing/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

using namespace nsfork;

namespace {

// A listening socket of our own, in a directory removed with it.
struct TestListener {
    testing::TempDir dir = testing::TempDir::create("listener").value();
    std::string path = dir.path() + "/s.sock";
    UniqueFd sock{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
    TestListener() {
        REQUIRE(sock);
        auto addr = unix_address(path);
        REQUIRE(addr);
        REQUIRE(::bind(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0);
        REQUIRE(::listen(sock.get(), 8) == 0);
    }
    bool connect(UniqueFd& into) const {
        auto fd = detail::connect_socket(path);
        if (fd) into = std::move(*fd);
        return bool(fd);
    }
    UniqueFd accept() const { return UniqueFd(::accept4(sock.get(), nullptr, nullptr, SOCK_CLOEXEC)); }
};

} // namespace

TEST_CASE("listener: a live peer of our pid namespace may connect, and so may one gone before its check (its "
          "request is still served)") {
    const PeerPolicy policy(procfs::pid_namespace_inode(::getpid()), "");
    TestListener l;

    UniqueFd own;
    REQUIRE(l.connect(own));
    UniqueFd accepted = l.accept();
    REQUIRE(accepted);
    CHECK(policy.refuse(accepted.get()).empty());

    // A client that sends its request and dies before the server accepts: its pid has no
    // process left to read, and it is judged as before its pidfd was taken (hardening_test.cpp:
    // "a client SIGKILLed with its Launch in flight", whose launch completes).
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        UniqueFd fd;
        _exit(l.connect(fd) ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    UniqueFd orphan = l.accept();
    REQUIRE(orphan);
    CHECK(policy.refuse(orphan.get()).empty());
}
