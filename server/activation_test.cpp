#include "server/activation.hpp"

#include "base/unix_socket.hpp"
#include "testing/process.hpp"
#include "testing/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

using namespace nsfork;

namespace {

std::string error_of(const Result<ListenFds>& r) { return r ? std::string() : r.error().message; }

// A socket of `type`, bound to `path` (empty: to an abstract name of the kernel's choosing),
// listening when `listen`.
UniqueFd unix_socket(int type, const std::string& path, bool listen = true) {
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    if (!path.empty()) {
        auto addr = unix_address(path);
        REQUIRE(addr);
        socklen_t len = sizeof *addr;
        if (path[0] == '@') { // abstract: the name's length, no trailing NUL
            addr->sun_path[0] = '\0';
            len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
        }
        REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), len) == 0);
    } else if (listen) {
        const sockaddr_un autobind{.sun_family = AF_UNIX, .sun_path = {}};
        REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&autobind), sizeof(sa_family_t)) == 0);
    }
    if (listen) REQUIRE(::listen(fd.get(), 4) == 0);
    return fd;
}

// Runs take_activated_socket() in a child whose fds 3, 4, ... are `fds` (inheritable, as a
// service manager passes them) and whose LISTEN_PID names it (or its parent, unless `ours`),
// and says what came out: "path|name" or "error: message", then what it left behind: whether
// fd 3 is close-on-exec and non-blocking, and whether LISTEN_* are still set.
std::string take_in_child(const std::vector<int>& fds, const char* listen_fds, const char* names = nullptr,
                          bool ours = true) {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Out of the way first (fds 3.. may be among them), then in place, inheritable.
        std::vector<int> high;
        for (int fd : fds) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
        for (std::size_t i = 0; i < high.size(); ++i) ::dup2(high[i], kListenFdsStart + static_cast<int>(i));
        ::setenv("LISTEN_PID", std::to_string(ours ? ::getpid() : ::getppid()).c_str(), 1);
        ::setenv("LISTEN_FDS", listen_fds, 1);
        if (names) ::setenv("LISTEN_FDNAMES", names, 1);
        auto taken = take_activated_socket();
        std::string said = !taken ? "error: " + taken.error().message
                                  : *taken ? (*taken)->path + "|" + (*taken)->name : std::string("none");
        if (taken && *taken) (void)(*taken)->fd.release(); // still fd 3, looked at below
        said += (::fcntl(3, F_GETFD) & FD_CLOEXEC) ? " cloexec" : " inheritable";
        said += (::fcntl(3, F_GETFL) & O_NONBLOCK) ? " nonblocking" : " blocking";
        const bool left = std::getenv("LISTEN_PID") || std::getenv("LISTEN_FDS") || std::getenv("LISTEN_FDNAMES");
        said += left ? " env-kept" : " env-cleared";
        (void)!::write(out[1], said.data(), said.size());
        ::_exit(0);
    }
    ::close(out[1]);
    std::string said = testing::read_all(out[0]);
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(status == 0);
    return said;
}

} // namespace

TEST_CASE("activation: LISTEN_PID names who the fds are for, and fds for another process are none of ours") {
    CHECK(parse_listen_fds(nullptr, "1", nullptr, 42)->count == 0u);
    CHECK(parse_listen_fds("41", "1", nullptr, 42)->count == 0u);
    CHECK(parse_listen_fds("41", "garbage", "a:b:c", 42)->count == 0u); // not ours: not even read
    CHECK(parse_listen_fds("42", nullptr, nullptr, 42)->count == 0u);
    auto two = parse_listen_fds("42", "2", "web:admin", 42);
    REQUIRE(two);
    CHECK(two->count == 2u);
    CHECK(two->names == std::vector<std::string>{"web", "admin"});
    CHECK(parse_listen_fds("42", "1", nullptr, 42)->names.empty());
    CHECK(parse_listen_fds("42", "1", "", 42)->names == std::vector<std::string>{""});
}

TEST_CASE("activation: malformed LISTEN_* variables are refused, naming the variable") {
    for (const char* pid : {"", "x", "12x", "0", "-42", "99999999999"})
        CHECK(error_of(parse_listen_fds(pid, "1", nullptr, 42)) ==
              "socket activation: LISTEN_PID='" + std::string(pid) + "' is not a pid");
    for (const char* fds : {"", "x", "0", "-1", "1x", "2147483647"})
        CHECK(error_of(parse_listen_fds("42", fds, nullptr, 42)) ==
              "socket activation: LISTEN_FDS='" + std::string(fds) + "' is not a positive number of fds");
    CHECK(error_of(parse_listen_fds("42", "1", "a:b", 42)) ==
          "socket activation: LISTEN_FDNAMES='a:b' names 2 fd(s), LISTEN_FDS announces 1");
}

TEST_CASE("activation: a listening SOCK_SEQPACKET socket is taken, close-on-exec and non-blocking, LISTEN_* unset") {
    auto dir = testing::TempDir::create("activation");
    REQUIRE(dir);
    const std::string path = dir->path() + "/nsfork.sock";
    UniqueFd named = unix_socket(SOCK_SEQPACKET, path);
    CHECK(take_in_child({named.get()}, "1") == path + "| cloexec nonblocking env-cleared");
    CHECK(take_in_child({named.get()}, "1", "nsfork") == path + "|nsfork cloexec nonblocking env-cleared");
    const std::string abstract = "@nsfork-activation-test-" + std::to_string(::getpid());
    UniqueFd hidden = unix_socket(SOCK_SEQPACKET, abstract);
    CHECK(take_in_child({hidden.get()}, "1") == abstract + "| cloexec nonblocking env-cleared");
    UniqueFd autobound = unix_socket(SOCK_SEQPACKET, "");
    const std::string said = take_in_child({autobound.get()}, "1");
    CHECK(said.starts_with("@"));
    CHECK(said.ends_with("| cloexec nonblocking env-cleared"));
}

TEST_CASE("activation: another process's LISTEN_* are unset and its fds left alone") {
    UniqueFd sock = unix_socket(SOCK_SEQPACKET, "");
    CHECK(take_in_child({sock.get()}, "1", nullptr, false) == "none inheritable blocking env-cleared");
}

TEST_CASE("activation: anything but one listening AF_UNIX SOCK_SEQPACKET socket is refused, naming what it is") {
    const std::string tail = " cloexec blocking env-cleared";
    UniqueFd stream = unix_socket(SOCK_STREAM, "");
    CHECK(take_in_child({stream.get()}, "1") ==
          "error: socket activation: fd 3 is a SOCK_STREAM socket, not SOCK_SEQPACKET (ListenSequentialPacket=, not "
          "ListenStream= or ListenDatagram=; systemd-socket-activate --seqpacket)" + tail);
    UniqueFd datagram = unix_socket(SOCK_DGRAM, "", false);
    CHECK(take_in_child({datagram.get()}, "1", "dgram") ==
          "error: socket activation: fd 3 ('dgram') is a SOCK_DGRAM socket, not SOCK_SEQPACKET "
          "(ListenSequentialPacket=, not ListenStream= or ListenDatagram=; systemd-socket-activate --seqpacket)" + tail);
    UniqueFd idle = unix_socket(SOCK_SEQPACKET, "", false);
    CHECK(take_in_child({idle.get()}, "1") == "error: socket activation: fd 3 is a socket that does not listen" + tail);
    UniqueFd inet(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(inet);
    CHECK(take_in_child({inet.get()}, "1") ==
          "error: socket activation: fd 3 is an AF_INET socket, not AF_UNIX (a socket unit's "
          "ListenSequentialPacket= takes a path)" + tail);
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    CHECK(take_in_child({null.get()}, "1") ==
          "error: socket activation: fd 3 is a character device, not a socket" + tail);
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    UniqueFd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
    CHECK(take_in_child({pipe_read.get()}, "1") == "error: socket activation: fd 3 is a pipe, not a socket" + tail);
    UniqueFd a = unix_socket(SOCK_SEQPACKET, ""), b = unix_socket(SOCK_SEQPACKET, "");
    CHECK(take_in_child({a.get(), b.get()}, "2") ==
          "error: socket activation: 2 fds passed (LISTEN_FDS=2); nsfork serve takes exactly one listening socket" +
              tail);
}

TEST_CASE("activation: --socket agrees with the passed socket when it names the same file") {
    auto dir = testing::TempDir::create("activation");
    REQUIRE(dir);
    const std::string path = dir->path() + "/nsfork.sock";
    UniqueFd sock = unix_socket(SOCK_SEQPACKET, path);
    REQUIRE(::symlink(path.c_str(), (dir->path() + "/link").c_str()) == 0);
    CHECK(socket_disagreement(path, path).empty());
    CHECK(socket_disagreement(dir->path() + "/./nsfork.sock", path).empty());
    CHECK(socket_disagreement(dir->path() + "/link", path).empty());
    CHECK(socket_disagreement(dir->path() + "/other.sock", path) ==
          "--socket " + dir->path() + "/other.sock is not the socket the service manager passed (" + path +
              "); give the same path, or no --socket");
    CHECK(socket_disagreement("/x", "") ==
          "--socket /x is not the socket the service manager passed (an unnamed socket); give the same path, or no "
          "--socket");
    CHECK(socket_disagreement("@x", "@x").empty());
}
