// What the node's server decides for nsfork-oci's containers, and what an engine hands them: the
// host's pid namespace under the server's policy, namespaces from the warm pool, the resources
// of config.json where runc puts them, and a terminal through the console socket — each beside
// runc where runc does the same.
#include "tests/oci/bundle_support.hpp"

#include "base/unix_socket.hpp"
#include "testing/poll.hpp"

extern "C" {
#include "base/fdpass.h"
}

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace nsfork::test::oci;
using nsfork::test::TempDir;

namespace {


// runc spec's namespaces without the pid one: the container shares the host's (the server's).
void without_pid_namespace(Bundle& b) {
    Json& namespaces = b.config["linux"]["namespaces"];
    Json kept = Json::array();
    for (const Json& n : namespaces)
        if (n["type"] != "pid") kept.push_back(n);
    namespaces = kept;
}

std::string own_pid_namespace() { return fs::read_symlink("/proc/self/ns/pid").string(); }

// A listening console socket, as conmon and containerd's shim hand runtimes one: the runtime
// connects and sends the pty's master with SCM_RIGHTS.
class ConsoleSocket {
public:
    ConsoleSocket() {
        sock_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(sock_);
        const sockaddr_un addr = MUST(nsfork::unix_address(path()));
        REQUIRE(::bind(sock_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(sock_.get(), 1) == 0);
    }
    std::string path() const { return dir_.path() + "/console.sock"; }

    // The master the runtime sent (it connected during create: the connection waits in the
    // backlog until accepted).
    nsfork::UniqueFd master() {
        nsfork::UniqueFd conn(::accept4(sock_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        REQUIRE(conn);
        char byte[64];
        int fd = -1, flags = 0;
        std::size_t count = 0;
        const ssize_t n = nsfork_recv_with_fds(conn.get(), byte, sizeof byte, &fd, 1, &count, &flags);
        REQUIRE(n >= 0);
        REQUIRE(count == 1);
        return nsfork::UniqueFd(fd);
    }

private:
    TempDir dir_;
    nsfork::UniqueFd sock_;
};

// Reads `master` until what came holds `expected` (at most 10 s) and returns it all.
std::string read_until(int master, const std::string& expected) {
    std::string got;
    nsfork::testing::eventually([&] {
        pollfd p{master, POLLIN, 0};
        if (::poll(&p, 1, 100) == 1 && (p.revents & POLLIN)) {
            char buf[512];
            const ssize_t n = ::read(master, buf, sizeof buf);
            if (n > 0) got.append(buf, static_cast<std::size_t>(n));
        }
        return got.find(expected) != std::string::npos;
    });
    return got;
}

} // namespace

TEST_CASE("oci node: a config without a pid namespace runs in the host's, as under runc") {
    Suite s;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        Bundle b({"readlink", "/proc/self/ns/pid"});
        without_pid_namespace(b);
        const Outcome o = rt->run(b);
        CHECK(o.code == 0);
        CHECK(o.out == own_pid_namespace() + "\n");
    }
}

TEST_CASE("oci node: the host's pid namespace obeys --disallow-sharing-agent-pid-namespace, and a refused create leaves nothing") {
    Suite s; // the subreaper and runc's runtime; nsfork-oci goes to a server of its own here
    nsfork::test::ServerProcess strict({"--disallow-sharing-agent-pid-namespace"});
    Runtime rt("nsfork-oci", {nsfork::test::bin("nsfork-oci"), "--nsfork-socket", strict.socket()});
    Bundle b({"true"});
    without_pid_namespace(b);
    const Outcome o = rt.run(b);
    CHECK(o.code == 1);
    CHECK(o.err.find("pid namespace") != std::string::npos);
    CHECK(o.err.find("level=error") != std::string::npos);
    CHECK(fs::is_empty(rt.root()));
    auto client = strict.connect();
    CHECK(MUST(client.list()).empty());
    // A container of its own namespace is still welcome there.
    CHECK(rt.run(Bundle({"true"})).code == 0);
}

TEST_CASE("oci node: nsfork-oci's containers are served from the server's warm pool") {
    Suite s;
    auto client = s.server().connect();
    REQUIRE(nsfork::testing::eventually([&] { return MUST(client.status()).pool_ready > 0; }));
    const std::uint64_t served = MUST(client.status()).pool_served;
    const Outcome o = s.nsfork_oci().run(Bundle({"true"}));
    CHECK(o.code == 0);
    CHECK(MUST(client.status()).pool_served == served + 1);
}

TEST_CASE("oci node: linux.resources land in the cgroups at cgroupsPath, as runc places them, and go with the container") {
    Suite s;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        const std::string path = "/nsfork-oci-test-" + std::to_string(::getpid()) + "-" + rt->name();
        Bundle b({});
        b.shell("echo ready; sleep 60");
        b.config["linux"]["cgroupsPath"] = path;
        b.config["linux"]["resources"]["memory"] = {{"limit", 64 << 20}};
        b.config["linux"]["resources"]["pids"] = {{"limit", 32}};
        b.config["linux"]["resources"]["cpu"] = {{"shares", 512}};
        Capture out;
        const Created c = rt->started(b, out);
        wait_for_output(out, "ready\n");
        CHECK(read_file("/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes") == std::to_string(64 << 20) + "\n");
        CHECK(read_file("/sys/fs/cgroup/pids" + path + "/pids.max") == "32\n");
        CHECK(read_file("/sys/fs/cgroup/cpu" + path + "/cpu.shares") == "512\n");
        // The process is in them.
        const std::string procs = read_file("/sys/fs/cgroup/memory" + path + "/cgroup.procs");
        CHECK(procs.find(std::to_string(c.pid) + "\n") != std::string::npos);
        CHECK((*rt)({"delete", "--force", c.id}).code == 0);
        CHECK(nsfork::testing::eventually([&] {
            return !fs::exists("/sys/fs/cgroup/memory" + path) && !fs::exists("/sys/fs/cgroup/pids" + path) &&
                   !fs::exists("/sys/fs/cgroup/cpu" + path);
        }));
    }
}

TEST_CASE("oci node: process.terminal gives the console socket the master of a terminal of the container's own devpts") {
    Suite s;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        Bundle b({});
        b.shell("tty; stty size; read line; echo got $line");
        b.config["process"]["terminal"] = true;
        b.config["process"]["consoleSize"] = {{"height", 33}, {"width", 101}};
        ConsoleSocket console;
        Capture out;
        const std::string id = rt->new_id();
        b.write();
        TempDir pid_dir;
        const std::string pid_file = pid_dir.path() + "/pid";
        const Outcome created =
            (*rt)({"create", "--bundle", b.path(), "--pid-file", pid_file, "--console-socket", console.path(), id}, out);
        REQUIRE(created.code == 0);
        // Its stdio is the terminal, and it holds no copy of the runtime's stdio while it waits
        // for start: containerd's shim reads create's output to its end before it takes the master.
        const std::string fds = "/proc/" + read_file(pid_file) + "/fd";
        for (const auto& fd : fs::directory_iterator(fds)) {
            std::error_code ec;
            const std::string target = fs::read_symlink(fd.path(), ec).string();
            INFO(fd.path().string() << " -> " << target);
            CHECK(target.find("oci-std") == std::string::npos);
        }
        nsfork::UniqueFd master = console.master();
        rt->start(id);
        const std::string seen = read_until(master.get(), "33 101");
        CHECK(seen.find("/dev/pts/0") != std::string::npos);
        CHECK(seen.find("33 101") != std::string::npos);
        REQUIRE(::write(master.get(), "hello\n", 6) == 6);
        CHECK(read_until(master.get(), "got hello").find("got hello") != std::string::npos);
        CHECK(nsfork::testing::eventually([&] { return rt->status(id) == "stopped"; }));
        CHECK((*rt)({"delete", id}).code == 0);
    }
}
