// The warm pool: warm containers indistinguishable from cold ones, an agent's never with a stale
// mount table, never handed out dead. (Hold launches and stale entries: tests/oci/pool_engines_test.cpp.)
#include "harness.hpp"

#include <catch2/catch.hpp>

#include <sched.h>
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <optional>
#include <regex>

using namespace nsfork;
using namespace nsfork::test;

namespace {

// Polls the server's status until `ready` holds (bounded: the pool refills in milliseconds).
ServerStatus await_pool(Client& client, const std::function<bool(const ServerStatus&)>& ready) {
    std::optional<ServerStatus> last;
    const bool held = testing::eventually(
        [&] {
            auto s = client.status();
            REQUIRE(s);
            last = *s;
            return ready(*last);
        },
        std::chrono::seconds(10), std::chrono::milliseconds(5));
    REQUIRE(held);
    return *last;
}

// `probe view` in a container named "view", with what differs by server alone normalized.
std::string view_of(Client& client) {
    LaunchOptions o;
    o.id = "view";
    o.argv = {probe(), "view"};
    o.env = {kPath, "A=1"};
    o.cwd = "/tmp";
    Pipe out;
    o.stdio = {-1, out.write.get(), out.write.get()};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    std::string text = read_all(out.read.get());
    REQUIRE(client.wait("view"));
    REQUIRE(client.destroy("view"));
    // The server's pid and the leaf's number differ from server to server; the shape may not.
    text = std::regex_replace(text, std::regex("nsfork-[0-9]+"), "nsfork-N");
    return std::regex_replace(text, std::regex("/c[0-9]+\n"), "/cN\n");
}

// Runs a server in a mount namespace of its own (a private copy of ours): pool tests count
// discards and compare mount tables, which other tests mounting meanwhile must not disturb.
const std::vector<std::string> kPrivateMounts = {"/usr/bin/unshare", "--mount", "--propagation", "private", "--"};

// Runs a server in the mount namespace of process `pid`.
std::vector<std::string> mounts_of(pid_t pid) {
    return {"/usr/bin/nsenter", "-t", std::to_string(pid), "-m", "--"};
}

} // namespace

TEST_CASE("pool: a warm container is indistinguishable from a cold one, field by field") {
    require_root();
    ServerProcess warm_server({"--warm-pool", "2"}, kPrivateMounts);
    ServerProcess cold_server({"--warm-pool", "0"}, mounts_of(warm_server.pid())); // the same table
    Client warm = warm_server.connect();
    Client cold = cold_server.connect();
    await_pool(warm, [](const ServerStatus& s) { return s.pool_ready == 2; });
    const std::string warm_view = view_of(warm);
    const std::string cold_view = view_of(cold);
    CHECK(warm.status()->pool_served == 1); // it really came from the pool
    CHECK(cold.status()->pool_size == 0);
    // Line by line, for a readable failure.
    const auto w = lines(warm_view), c = lines(cold_view);
    REQUIRE(w.size() == c.size());
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(w[i] == c[i]);
    CHECK(warm_view.find("ps: 1 nsfork-shim") != std::string::npos);
    CHECK(warm_view.find("0::/nsfork-N/cN") != std::string::npos);
    CHECK(warm_view.find("cwd: /tmp\n") != std::string::npos);
    CHECK(warm_view.find("pid1.cwd: /\n") != std::string::npos); // pid 1 leaves the command's cwd
}

TEST_CASE("pool: a ready entry waits at the root, keeping no directory of the server's busy") {
    require_root();
    // Started in the tests' directory; no warm nsfork-oci runtimes: its children are its entries.
    ServerProcess server({"--warm-pool", "2", "--no-warm-runtimes"}, kPrivateMounts);
    Client client = server.connect();
    await_pool(client, [](const ServerStatus& s) { return s.pool_ready == 2; });
    auto cwd_of = [](pid_t pid) {
        char target[4096] = {};
        return ::readlink(("/proc/" + std::to_string(pid) + "/cwd").c_str(), target, sizeof target - 1) > 0
                   ? std::string(target) : std::string("?");
    };
    REQUIRE(cwd_of(server.pid()) != "/");
    const auto entries = testing::children_of(server.pid());
    REQUIRE(entries.size() == 2);
    for (pid_t pid : entries) CHECK(cwd_of(pid) == "/");
}

// A pool entry warms up at SCHED_IDLE (so that refilling never takes a CPU from a launch) and is
// given the server's scheduling once ready: a warm container runs as a cold one would, under a
// server with a policy and nice value of its own.
TEST_CASE("pool: a warm container is scheduled as a cold one, whatever the server's policy and nice value") {
    require_root();
    auto wrapped = [](std::vector<std::string> mounts) {
        std::vector<std::string> w = {"/usr/bin/nice", "-n", "5", "/usr/bin/chrt", "--batch", "0"};
        w.insert(w.end(), mounts.begin(), mounts.end());
        return w;
    };
    ServerProcess warm_server({"--warm-pool", "2"}, wrapped(kPrivateMounts));
    ServerProcess cold_server({"--warm-pool", "0"}, wrapped(mounts_of(warm_server.pid())));
    Client warm = warm_server.connect();
    Client cold = cold_server.connect();
    await_pool(warm, [](const ServerStatus& s) { return s.pool_ready == 2; });
    for (pid_t entry : testing::children_of(warm_server.pid())) {
        CHECK(::sched_getscheduler(entry) == SCHED_BATCH);
        errno = 0;
        CHECK(::getpriority(PRIO_PROCESS, static_cast<id_t>(entry)) == 5);
        CHECK(errno == 0);
    }
    const std::string warm_view = view_of(warm);
    const std::string cold_view = view_of(cold);
    CHECK(warm.status()->pool_served == 1);
    const std::string batch_nice_5 = "policy " + std::to_string(SCHED_BATCH) + " nice 5\n";
    CHECK(warm_view.find("self.sched: " + batch_nice_5) != std::string::npos);
    CHECK(warm_view.find("pid1.sched: " + batch_nice_5) != std::string::npos);
    CHECK(cold_view.find("self.sched: " + batch_nice_5) != std::string::npos);
    const auto w = lines(warm_view), c = lines(cold_view);
    REQUIRE(w.size() == c.size());
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(w[i] == c[i]);
}

// Mounts a tmpfs on `dir` in the mount namespace of the server `server` (it goes away with it).
void mount_in(const ServerProcess& server, const TempDir& dir) {
    auto mounted = run_process({"/usr/bin/nsenter", "-t", std::to_string(server.pid()), "-m", "--", "/usr/bin/mount",
                                "-t", "tmpfs", "nsfork-test", dir.path()});
    REQUIRE(mounted.exit_code == 0);
}

TEST_CASE("pool: after an agent launch, a change of the host's mount table replaces ready namespaces, new ones see it") {
    require_root();
    ServerProcess server({"--warm-pool", "2"}, kPrivateMounts);
    Client client = server.connect();
    await_pool(client, [](const ServerStatus& s) { return s.pool_ready == 2; });
    (void)view_of(client); // an agent's launch: the pool keeps agents' entries current from now on
    auto before = await_pool(client, [](const ServerStatus& s) { return s.pool_ready == 2; });
    CHECK(before.pool_served == 1);
    TempDir dir;
    mount_in(server, dir);
    auto after = await_pool(client, [&](const ServerStatus& s) {
        return s.pool_discarded >= before.pool_discarded + 2 && s.pool_ready == 2;
    });
    CHECK(after.pool_served == 1);
    const std::string view = view_of(client);
    CHECK(view.find("mount: " + dir.path() + " tmpfs") != std::string::npos);
    CHECK(client.status()->pool_served == 2);
}

// Entries that copied an older table still serve hold launches (tests/oci/pool_engines_test.cpp):
// a server that has run no agent launch keeps them, and the first agent launch, which cannot
// take them, discards them and goes cold.
TEST_CASE("pool: before any agent launch, a mount table change keeps the entries, and an agent launch discards them and sees it") {
    require_root();
    ServerProcess server({"--warm-pool", "2"}, kPrivateMounts);
    Client client = server.connect();
    auto before = await_pool(client, [](const ServerStatus& s) { return s.pool_ready == 2; });
    TempDir dir;
    mount_in(server, dir);
    // Kept: nothing is discarded while the table settles and well after (the change is seen
    // within a millisecond).
    auto kept = testing::settled([&] { return *client.status(); },
                                 [](const ServerStatus& a, const ServerStatus& b) {
                                     return a.pool_ready == b.pool_ready && a.pool_discarded == b.pool_discarded;
                                 });
    CHECK(kept.pool_ready == 2);
    CHECK(kept.pool_discarded == before.pool_discarded);
    const std::string view = view_of(client);
    CHECK(view.find("mount: " + dir.path() + " tmpfs") != std::string::npos);
    auto after = *client.status();
    CHECK(after.pool_served == 0); // both were stale: it went cold
    CHECK(after.pool_discarded == before.pool_discarded + 2);
    await_pool(client, [](const ServerStatus& s) { return s.pool_ready == 2; });
    CHECK(view_of(client).find("mount: " + dir.path() + " tmpfs") != std::string::npos);
    CHECK(client.status()->pool_served == 1); // the refilled ones are current
}

TEST_CASE("pool: an entry killed from outside is replaced, never handed out") {
    require_root();
    ServerProcess server({"--warm-pool", "2", "--no-warm-runtimes"}, kPrivateMounts); // children: its entries
    Client client = server.connect();
    await_pool(client, [](const ServerStatus& s) { return s.pool_ready == 2; });
    const auto entries = testing::children_of(server.pid());
    REQUIRE(entries.size() == 2);
    for (pid_t p : entries) REQUIRE(::kill(p, SIGKILL) == 0);
    auto s = await_pool(client, [](const ServerStatus& st) { return st.pool_discarded >= 2 && st.pool_ready == 2; });
    CHECK(s.pool_served == 0);
    for (pid_t p : testing::children_of(server.pid())) CHECK(std::find(entries.begin(), entries.end(), p) == entries.end());
    auto r = run(client, {probe(), "exit", "6"});
    CHECK(r.status.code == 6);
    CHECK(client.status()->pool_served == 1);
}

TEST_CASE("pool: its state shows in nsfork status --json") {
    require_root();
    ServerProcess server({"--warm-pool", "3"}, kPrivateMounts);
    Client client = server.connect();
    auto s = await_pool(client, [](const ServerStatus& st) { return st.pool_ready == 3; });
    auto out = run_process({bin("nsfork"), "status", "--socket", server.socket(), "--json"});
    CHECK(out.exit_code == 0);
    CHECK(out.out == R"({"server_pid":)" + std::to_string(server.pid()) +
                         R"(,"pool":{"size":3,"ready":3,"warming":0,"served":0,"discarded":)" +
                         std::to_string(s.pool_discarded) + "}}\n");
}

TEST_CASE("pool: launches the pool cannot serve take the cold path") {
    require_root();
    ServerProcess server({"--warm-pool", "1"}, kPrivateMounts);
    Client client = server.connect();
    await_pool(client, [](const ServerStatus& s) { return s.pool_ready == 1; });
    LaunchOptions parent;
    parent.id = "p";
    parent.argv = {probe(), "sleep"};
    Pipe out;
    parent.stdio = {-1, out.write.get(), -1};
    REQUIRE(client.launch(parent)); // served warm
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    CHECK(client.status()->pool_served == 1);
    // Nested and shared launches cannot use a ready top-level namespace.
    LaunchOptions nested;
    nested.argv = {probe(), "exit", "0"};
    nested.parent = "p";
    REQUIRE(client.launch(nested));
    nested.share_pid_namespace = true;
    REQUIRE(client.launch(nested));
    LaunchOptions shared;
    shared.argv = {probe(), "exit", "0"};
    shared.share_pid_namespace = true;
    auto top = client.launch(shared);
    REQUIRE(top);
    CHECK(client.status()->pool_served == 1);
    REQUIRE(client.wait(top->id()));
    REQUIRE(client.destroy(top->id()));
    REQUIRE(client.destroy("p"));
}

TEST_CASE("pool: the server accounts its own work per launch by phase, cold and warm") {
    require_root();
    ServerProcess warm_server({"--warm-pool", "1"});
    ServerProcess cold_server({"--warm-pool", "0"});
    Client warm = warm_server.connect();
    Client cold = cold_server.connect();
    await_pool(warm, [](const ServerStatus& s) { return s.pool_ready == 1; });
    for (Client* c : {&warm, &cold}) {
        LaunchOptions o;
        o.argv = {"/bin/true"};
        auto ct = c->launch(o);
        REQUIRE(ct);
        REQUIRE(c->wait(ct->id()));
        REQUIRE(c->destroy(ct->id()));
    }
    auto phase = [](const ServerStatus& s, LaunchPhase p) { return s.launch_phases[p]; };
    for (Client* c : {&warm, &cold}) {
        const ServerStatus s = *c->status();
        CHECK(s.launches == 1);
        std::uint64_t sum = 0;
        for (std::uint64_t ns : s.launch_phases.ns) sum += ns;
        CHECK(sum == s.launch_work_ns); // every nanosecond in exactly one phase
        // wake: the plan's and the reply's sends, where the kernel wakes the shim and us.
        for (LaunchPhase p : {LaunchPhase::parse, LaunchPhase::policy, LaunchPhase::plan, LaunchPhase::table,
                              LaunchPhase::record, LaunchPhase::reply, LaunchPhase::wake}) {
            INFO(to_string(p));
            CHECK(phase(s, p) > 0);
        }
    }
    const ServerStatus w = *warm.status(), c = *cold.status();
    CHECK(w.pool_served == 1);
    // The cold launch made its leaf and its clone3; the warm one had both done ahead.
    CHECK(phase(c, LaunchPhase::cgroup) > 0);
    CHECK(phase(c, LaunchPhase::clone_setup) > 0);
    CHECK(phase(w, LaunchPhase::cgroup) == 0);
    CHECK(phase(w, LaunchPhase::clone_setup) == 0);
}
