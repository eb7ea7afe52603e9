// The listener's peer check: who may connect, judged by the process that connected, not by a
// pid that may have been given to another process since.
#include "server/listener.hpp"

#include "base/procfs.hpp"

#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

using namespace nsfork;

namespace {

// A listening socket of our own, in the abstract namespace (nothing to clean up).
struct TestListener {
    UniqueFd sock;
    sockaddr_un addr{};
    socklen_t len = 0;
    TestListener() {
        sock.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        REQUIRE(sock);
        addr.sun_family = AF_UNIX;
        const std::string name = "nsfork-listener-test-" + std::to_string(::getpid());
        std::memcpy(addr.sun_path + 1, name.data(), name.size());
        len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
        REQUIRE(::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0);
        REQUIRE(::listen(sock.get(), 8) == 0);
    }
    int connect() const {
        const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) < 0) {
            ::close(fd);
            return -1;
        }
        return fd;
    }
    UniqueFd accept() const { return UniqueFd(::accept4(sock.get(), nullptr, nullptr, SOCK_CLOEXEC)); }
};

} // namespace

TEST_CASE("listener: a live peer of our pid namespace may connect, one gone (reaped) before its check is refused, "
          "naming why") {
    const PeerPolicy policy(procfs::pid_namespace_inode(::getpid()), "");
    TestListener l;

    UniqueFd own(l.connect());
    REQUIRE(own);
    UniqueFd accepted = l.accept();
    REQUIRE(accepted);
    CHECK(policy.refuse(accepted.get()).empty());

    // The peer connects and is gone before the server looks: its pid is free for any process,
    // so nothing read by that pid may vouch for it.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) _exit(l.connect() >= 0 ? 0 : 1);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    UniqueFd orphan = l.accept();
    REQUIRE(orphan);
    const std::string why = policy.refuse(orphan.get());
    CHECK(why == "pid " + std::to_string(child) + " is gone: it cannot be checked");
}
