// nsfork-oci's front and its warm runtimes (oci/front.cpp, oci/warm.hpp): create, run, start,
// state, kill and delete served by a runtime the server keeps started, the container's process
// the front's child as an engine needs it; everything a warm runtime must not do for its caller done by the full program; the
// front killed at any point of a create leaving nothing once deleted; the runtimes going with
// the server.
#include "tests/oci/bundle_support.hpp"

#include "testing/poll.hpp"
#include "testing/process.hpp"

#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace nsfork::test::oci;
using nsfork::test::bin;
using nsfork::testing::eventually;

// How many commands a warm runtime served, from a --debug --log file.
std::size_t served_warm(const std::string& log) {
    std::size_t n = 0;
    for (const std::string& line : nsfork::testing::lines(read_file(log)))
        n += line.find("served by warm runtime") != std::string::npos;
    return n;
}

// The keeper of a server's warm runtimes: its child running `nsfork-oci --nsfork-warm`, once
// started (the server starts it once it listens); -1 when none is.
pid_t keeper_now(pid_t server) {
    for (pid_t pid : nsfork::testing::children_of(server))
        if (read_file("/proc/" + std::to_string(pid) + "/cmdline").find("--nsfork-warm") != std::string::npos) return pid;
    return -1;
}
pid_t keeper_of(pid_t server) {
    pid_t keeper = -1;
    (void)eventually([&] { return (keeper = keeper_now(server)) > 0; });
    return keeper;
}

// Waits until the server's warm runtimes listen, two forks waiting: before, the front runs the
// full program (a test that checks it does not would pass for nothing).
void await_warm(const nsfork::test::ServerProcess& server) {
    const pid_t keeper = keeper_of(server.pid());
    REQUIRE(keeper > 0);
    REQUIRE(eventually([&] {
        return std::filesystem::exists(server.socket() + ".oci") && nsfork::testing::children_of(keeper).size() == 2;
    }));
}

pid_t parent_of(pid_t pid) {
    for (const std::string& line : nsfork::testing::lines(read_file("/proc/" + std::to_string(pid) + "/status")))
        if (line.rfind("PPid:", 0) == 0) return std::stoi(line.substr(5));
    return -1;
}

// Whether `pid` is a process that has not ended (a zombie has).
bool alive(pid_t pid) {
    for (const std::string& line : nsfork::testing::lines(read_file("/proc/" + std::to_string(pid) + "/status")))
        if (line.rfind("State:", 0) == 0) return line.find('Z') == std::string::npos;
    return false;
}

// Waits for a runtime this test spawned; its exit code, 128+N for signal N.
int reap_runtime(pid_t pid) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string exe_of(pid_t pid) {
    std::error_code ec;
    return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
}

} // namespace

TEST_CASE("nsfork-oci: create, run, start, state, kill and delete are served by a warm runtime beside the server, the process the front's child") {
    Suite s;
    nsfork::test::TempDir tmp;
    const std::string log = tmp.path() + "/log";
    Runtime rt("nsfork-oci", {bin("nsfork-oci"), "--nsfork-socket", s.server().socket(), "--debug", "--log", log});

    // The server's child keeps them, listening beside its socket, for root alone.
    const pid_t keeper = keeper_of(s.server().pid());
    REQUIRE(keeper > 0);
    struct stat sock{};
    REQUIRE(eventually([&] { return ::stat((s.server().socket() + ".oci").c_str(), &sock) == 0; }));
    CHECK(S_ISSOCK(sock.st_mode));
    CHECK((sock.st_mode & 0777) == 0700);
    CHECK(eventually([&] { return nsfork::testing::children_of(keeper).size() == 2; }));

    // run: the process is the front's child, and the front the static program: the full one was
    // not exec'd. The front forwards a signal to it, and exits as it ended.
    Bundle sleeper({"sleep", "60"});
    sleeper.write();
    const std::string pid_file = tmp.path() + "/pid";
    Capture output;
    const pid_t front = rt.spawn({"run", "--bundle", sleeper.path(), "--pid-file", pid_file, rt.new_id()}, output);
    REQUIRE(eventually([&] { return !read_file(pid_file).empty(); }));
    const pid_t process = std::stoi(read_file(pid_file));
    CHECK(parent_of(process) == front);
    CHECK(exe_of(front) == std::filesystem::canonical(bin("nsfork-oci")).string());
    REQUIRE(::kill(front, SIGTERM) == 0);
    CHECK(reap_runtime(front) == 128 + SIGTERM);
    CHECK(served_warm(log) == 1);

    // create, start, state, kill, delete: each served too; the created process outlives the
    // front that made it.
    Bundle sleeps({"sleep", "60"});
    Capture quiet;
    const Created c = rt.create(sleeps, quiet);
    CHECK(served_warm(log) == 2);
    rt.start(c.id);
    CHECK(served_warm(log) == 3);
    CHECK(rt.status(c.id) == "running");
    CHECK(served_warm(log) == 4);
    CHECK(rt({"kill", c.id, "KILL"}).code == 0);
    CHECK(wait_exit(c.pid) == 128 + SIGKILL);
    CHECK(rt.status(c.id) == "stopped");
    CHECK(rt({"delete", c.id}).code == 0);
    CHECK(served_warm(log) == 7);
    // An error, said as the full program says it: on the caller's stderr, exit status 1.
    const Outcome nope = rt({"state", "nope"});
    CHECK(nope.code == 1);
    CHECK(nope.err == "container nope does not exist\n");
    CHECK(served_warm(log) == 8);
}

TEST_CASE("nsfork-oci: a warm runtime acts in its caller's working directory, umask and environment") {
    Suite s;
    nsfork::test::TempDir tmp;
    await_warm(s.server());
    Bundle b({"true"});
    b.write();
    std::filesystem::create_directory_symlink(b.path(), tmp.path() + "/bundle");
    // The socket from the environment, the bundle, pid file and log relative to the directory.
    Runtime rt("nsfork-oci", {"/bin/sh", "-c",
                              "cd \"$0\" && umask 077 && socket=$1 front=$2 && shift 2 && "
                              "exec env NSFORK_SOCKET=\"$socket\" \"$front\" --debug --log log \"$@\"",
                              tmp.path(), s.server().socket(), bin("nsfork-oci")});
    const std::string id = rt.new_id();
    const Outcome o = rt({"run", "--bundle", "bundle", "--pid-file", "pid", id});
    INFO(o.err);
    CHECK(o.code == 0);
    CHECK(served_warm(tmp.path() + "/log") == 1);
    struct stat pid{};
    REQUIRE(::stat((tmp.path() + "/pid").c_str(), &pid) == 0);
    CHECK((pid.st_mode & 077) == 0);
}

TEST_CASE("nsfork-oci: a server in a mount namespace of its own (systemd's ProtectSystem=) has its warm runtimes act in the caller's") {
    Suite s;
    nsfork::test::ServerProcess own({}, {"/usr/bin/unshare", "--mount", "--propagation", "private", "--"});
    // A bundle on a file system mounted after the server started: not in the server's view.
    nsfork::test::TempDir mnt;
    REQUIRE(::mount("tmpfs", mnt.path().c_str(), "tmpfs", 0, "mode=755") == 0);
    struct Unmount {
        std::string path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{mnt.path()};
    Bundle b({"sh", "-c", "exit 5"});
    b.write();
    const std::string bundle = mnt.path() + "/bundle";
    std::filesystem::copy(b.path(), bundle);
    nsfork::test::TempDir tmp;
    const std::string log = tmp.path() + "/log";
    Runtime rt("nsfork-oci", {bin("nsfork-oci"), "--nsfork-socket", own.socket(), "--debug", "--log", log});
    await_warm(own);
    const Outcome o = rt({"run", "--bundle", bundle, rt.new_id()});
    INFO(o.err);
    CHECK(o.code == 5);
    CHECK(served_warm(log) == 1);
}

TEST_CASE("nsfork-oci: what a warm runtime must not do for its caller, the full program does") {
    Suite s;
    nsfork::test::TempDir tmp;
    const std::string log = tmp.path() + "/log";
    const std::vector<std::string> flags = {bin("nsfork-oci"), "--nsfork-socket", s.server().socket(), "--debug", "--log", log};
    Runtime rt("nsfork-oci", flags);
    await_warm(s.server());

    SECTION("hooks: they would be the warm runtime's children, in the server's cgroup") {
        // create, start and delete each find hooks: config.json's, then the state's.
        Bundle b({"true"});
        const std::string started = tmp.path() + "/poststart-ran", stopped = tmp.path() + "/poststop-ran";
        b.config["hooks"]["poststart"] = Json::array({{{"path", "/bin/sh"}, {"args", {"sh", "-c", "echo ran > " + started}}}});
        b.config["hooks"]["poststop"] = Json::array({{{"path", "/bin/sh"}, {"args", {"sh", "-c", "echo ran > " + stopped}}}});
        Capture output;
        const Created c = rt.create(b, output);
        rt.start(c.id);
        CHECK(wait_exit(c.pid) == 0);
        CHECK(rt({"delete", c.id}).code == 0);
        CHECK(read_file(started) == "ran\n");
        CHECK(read_file(stopped) == "ran\n");
    }
    SECTION("--preserve-fds: descriptors a request does not carry") {
        Bundle b({"true"});
        b.write();
        CHECK(rt({"run", "--preserve-fds", "0", "--bundle", b.path(), rt.new_id()}).code == 0);
    }
    SECTION("a caller with fewer powers than the runtime: a smaller capability bounding set") {
        std::vector<std::string> limited = {find_program("setpriv"), "--bounding-set", "-net_raw"};
        limited.insert(limited.end(), flags.begin(), flags.end());
        Runtime weaker("nsfork-oci", limited);
        Bundle b({"sh", "-c", "grep CapBnd /proc/self/status"});
        const Outcome o = weaker.run(b);
        CHECK(o.code == 0);
        // Without CAP_NET_RAW (bit 13) whatever config.json asks: the full program's process
        // descends from the caller.
        REQUIRE(o.out.size() > 8);
        CHECK((std::stoull(o.out.substr(o.out.find(':') + 1), nullptr, 16) & (1ULL << 13)) == 0);
    }
    CHECK(served_warm(log) == 0);
}

TEST_CASE("nsfork-oci: a server run with --no-warm-runtimes keeps none, and the front runs the full program") {
    Suite s;
    nsfork::test::ServerProcess bare({"--no-warm-runtimes"});
    CHECK_FALSE(eventually([&] { return keeper_now(bare.pid()) > 0; }, std::chrono::milliseconds(300)));
    CHECK_FALSE(std::filesystem::exists(bare.socket() + ".oci"));
    nsfork::test::TempDir tmp;
    const std::string log = tmp.path() + "/log";
    Runtime rt("nsfork-oci", {bin("nsfork-oci"), "--nsfork-socket", bare.socket(), "--debug", "--log", log});
    Bundle b({"sh", "-c", "exit 3"});
    CHECK(rt.run(b).code == 3);
    CHECK(served_warm(log) == 0);
}

TEST_CASE("nsfork-oci: the front SIGKILLed at any point of a create leaves nothing once deleted") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    await_warm(s.server());
    Bundle b({"true"});
    b.write();
    std::mt19937 random(Catch::rngSeed());
    for (int i = 0; i < 20; ++i) {
        const std::string id = rt.new_id();
        Capture output;
        const pid_t front = rt.spawn({"create", "--bundle", b.path(), id}, output);
        ::usleep(static_cast<useconds_t>(random() % 6000));
        ::kill(front, SIGKILL);
        (void)reap_runtime(front);
        INFO("killed after the front's start, round " << i);
        CHECK(rt({"delete", "--force", id}).code == 0);
        // Unlike a runtime killed in its create, the warm runtime serving it goes on until it
        // next needs the front (the clone at the latest), then undoes all it made: the state
        // directory may be made after the delete, and goes by itself.
        CHECK(eventually([&] { return !std::filesystem::exists(rt.root() + "/" + id); }));
    }
    // No container of the server's is left: each went with its warm runtime's connection, or
    // with the delete.
    nsfork::Client client = s.server().connect();
    CHECK(eventually([&] { return client.list()->empty(); }));
    // And the next create is served as ever.
    Bundle ok({"true"});
    CHECK(rt.run(ok).code == 0);
}

TEST_CASE("nsfork-oci: the warm runtimes end with the server, and their socket goes") {
    nsfork::test::require_root();
    std::optional<nsfork::test::ServerProcess> server(std::in_place);
    const pid_t keeper = keeper_of(server->pid());
    REQUIRE(keeper > 0);
    REQUIRE(eventually([&] { return nsfork::testing::children_of(keeper).size() == 2; }));
    std::vector<pid_t> warm = nsfork::testing::children_of(keeper);
    warm.push_back(keeper);
    const std::string socket = server->socket() + ".oci";
    CHECK(server->stop() == nsfork::ExitStatus{0, 0});
    server.reset();
    CHECK_FALSE(std::filesystem::exists(socket));
    CHECK(eventually([&] { return std::none_of(warm.begin(), warm.end(), alive); }));
}
