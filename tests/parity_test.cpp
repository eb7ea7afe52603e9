// Mesos namespaces/pid parity: isolation flags, nested containers, sharing rules, joining by fd,
// cgroup-based destroy — each against a real `nsfork serve`.
#include "harness.hpp"
#include "base/procfs.hpp"
#include "launcher/cgroup.hpp"
#include "base/pidfd.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <csignal>
#include <fstream>
#include <sstream>

using namespace nsfork;
using namespace nsfork::test;

namespace {

// Launches `argv` detached from our stdio (stdout on a pipe it reads the first line of, when
// `ready` is set, so that the test knows the command is up).
Container start(Client& client, std::vector<std::string> argv, std::string id = {}, std::string parent = {},
                bool share = false, bool ready = true) {
    Pipe out;
    LaunchOptions o;
    o.id = std::move(id);
    o.argv = std::move(argv);
    o.env = {kPath};
    o.parent = std::move(parent);
    o.share_pid_namespace = share;
    o.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    if (ready) REQUIRE(read_line(out.read.get()) == "ready");
    return std::move(*ct);
}

Error launch_error(Client& client, LaunchOptions o) {
    if (o.argv.empty()) o.argv = {probe(), "exit", "0"};
    auto ct = client.launch(o);
    REQUIRE_FALSE(ct);
    return ct.error();
}

// Output and status of a command run nested in `parent`.
RunResult run_nested(Client& client, const std::string& parent, bool share, std::vector<std::string> argv) {
    Pipe out;
    LaunchOptions o;
    o.argv = std::move(argv);
    o.env = {kPath};
    o.parent = parent;
    o.share_pid_namespace = share;
    o.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    RunResult r;
    r.out = read_all(out.read.get());
    r.status = *client.wait(ct->id());
    r.info = *client.destroy(ct->id());
    return r;
}

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

} // namespace

TEST_CASE("parity: --isolation refuses namespaces/pid without filesystem/linux, and unknown names") {
    require_root();
    TempDir dir;
    auto pid_only = run_process({bin("nsfork"), "serve", "--socket", dir.path() + "/s", "--isolation", "namespaces/pid"});
    CHECK(pid_only.exit_code == 125);
    CHECK(pid_only.err.find("namespaces/pid requires filesystem/linux") != std::string::npos);
    auto unknown = run_process({bin("nsfork"), "serve", "--socket", dir.path() + "/s", "--isolation", "filesystem/linux,network/cni"});
    CHECK(unknown.exit_code == 125);
    CHECK(unknown.err == "nsfork: unknown isolator 'network/cni' (known: filesystem/linux, namespaces/pid)\n");
    auto contradiction = run_process({bin("nsfork"), "serve", "--socket", dir.path() + "/s", "--isolation",
                                      "filesystem/linux", "--disallow-sharing-agent-pid-namespace"});
    CHECK(contradiction.exit_code == 1);
    CHECK(contradiction.err.find("--disallow-sharing-agent-pid-namespace needs the namespaces/pid isolator") != std::string::npos);
}

TEST_CASE("parity: without namespaces/pid every container shares the server's pid namespace") {
    require_root();
    for (const char* isolation : {"filesystem/linux", ""}) {
        INFO("--isolation '" << isolation << "'");
        ServerProcess server({"--isolation", isolation});
        Client client = server.connect();
        auto r = run(client, {probe(), "pidns"});
        CHECK(std::stoull(r.out) == procfs::pid_namespace_inode(server.pid()));
        CHECK(r.info.pidns == procfs::pid_namespace_inode(server.pid()));
        // Destroyed through its cgroup: a setsid daemon that left the shim behind dies too.
        Container ct = start(client, {probe(), "daemon", "10"});
        const std::string leaf = cgroup_of(ct.pid());
        REQUIRE_FALSE(leaf.empty());
        const std::vector<pid_t> pids = cgroup_procs(leaf);
        CHECK(pids.size() == 13); // shim, probe, daemon and its 10 children
        auto gone = client.destroy(ct.id());
        REQUIRE(gone);
        CHECK(gone->state == State::destroyed);
        // The reply comes once the cgroup is empty: each process is past cgroup_exit() then, but
        // may still be running the rest of its exit for a moment before it is a zombie (seen
        // once, under CI's load).
        for (pid_t p : pids) CHECK(testing::eventually([p] { return !alive(p); }, std::chrono::seconds(2)));
        CHECK_FALSE(exists(leaf));
    }
}

TEST_CASE("parity: a nested container's namespace is a child of its parent's, its init the server's child") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container parent = start(client, {probe(), "sleep"}, "parent");
    Container child = start(client, {probe(), "sleep"}, "child", "parent");
    CHECK(child.info().parent == "parent");
    CHECK(child.pidns_inode() != parent.pidns_inode());
    CHECK(parent.pidns_inode() != procfs::pid_namespace_inode(0));

    UniqueFd ns(::open(("/proc/" + std::to_string(child.pid()) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(ns);
    UniqueFd up(::ioctl(ns.get(), NS_GET_PARENT));
    REQUIRE(up);
    struct stat st;
    REQUIRE(::fstat(up.get(), &st) == 0);
    CHECK(st.st_ino == parent.pidns_inode());

    // Its init is the server's own child, three levels deep: host, parent, own.
    std::ifstream status("/proc/" + std::to_string(child.pid()) + "/status");
    std::string line, ppid, nspid;
    while (std::getline(status, line)) {
        if (line.rfind("PPid:", 0) == 0) ppid = line.substr(5);
        if (line.rfind("NSpid:", 0) == 0) nspid = line.substr(6);
    }
    CHECK(std::stoi(ppid) == server.pid());
    std::istringstream levels(nspid);
    std::vector<int> pids;
    for (int p; levels >> p;) pids.push_back(p);
    REQUIRE(pids.size() == 3);
    CHECK(pids[0] == child.pid());
    CHECK(pids[2] == 1);
    REQUIRE(client.destroy("parent"));
}

TEST_CASE("parity: ps in a nested container shows only its own processes, sharing shows the parent's") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container parent = start(client, {probe(), "sleep"}, "p");
    auto own = run_nested(client, "p", false, {"ps", "-e", "-o", "pid=,comm="});
    auto rows = lines(own.out);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].find("1 nsfork-shim") != std::string::npos);
    CHECK(rows[1].find("2 ps") != std::string::npos);

    auto shared = run_nested(client, "p", true, {"ps", "-e", "-o", "pid=,comm="});
    rows = lines(shared.out);
    REQUIRE(rows.size() == 4); // the parent's shim and probe, then its own shim and ps
    CHECK(rows[0].find("1 nsfork-shim") != std::string::npos);
    CHECK(rows[1].find("2 nsfork-probe") != std::string::npos);
    CHECK(rows[3].find("ps") != std::string::npos);
    REQUIRE(client.destroy("p"));
}

TEST_CASE("parity: pidns inodes: nested differs from its parent's unless shared, a top-level share is the server's") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container parent = start(client, {probe(), "sleep"}, "p");
    auto own = run_nested(client, "p", false, {probe(), "pidns"});
    auto shared = run_nested(client, "p", true, {probe(), "pidns"});
    CHECK(own.info.pidns != parent.pidns_inode());
    CHECK(std::stoull(own.out) == own.info.pidns);
    CHECK(shared.info.pidns == parent.pidns_inode());
    CHECK(std::stoull(shared.out) == parent.pidns_inode());
    CHECK(shared.info.parent == "p");

    Pipe out;
    LaunchOptions o;
    o.argv = {probe(), "pidns"};
    o.share_pid_namespace = true;
    o.stdio = {-1, out.write.get(), -1};
    auto top = client.launch(o);
    REQUIRE(top);
    out.write.reset();
    CHECK(std::stoull(read_all(out.read.get())) == procfs::pid_namespace_inode(server.pid()));
    CHECK(top->pidns_inode() == procfs::pid_namespace_inode(server.pid()));
    REQUIRE(client.wait(top->id()));
    REQUIRE(client.destroy(top->id()));
    REQUIRE(client.destroy("p"));
}

TEST_CASE("parity: a nested container's exit 42 reaches wait, twice") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container parent = start(client, {probe(), "sleep"}, "p");
    for (bool share : {false, true}) {
        LaunchOptions o;
        o.id = share ? "shared" : "own";
        o.argv = {"sh", "-c", "exit 42"};
        o.env = {kPath};
        o.parent = "p";
        o.share_pid_namespace = share;
        REQUIRE(client.launch(o));
        CHECK(*client.wait(o.id) == ExitStatus{42, 0});
        CHECK(*client.wait(o.id) == ExitStatus{42, 0});
    }
    REQUIRE(client.destroy("p"));
}

TEST_CASE("parity: SIGTERM to a parent reaches its command, its nested containers are killed") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container parent = start(client, {probe(), "sleep"}, "p");
    Container own = start(client, {probe(), "sleep"}, "own", "p");
    Container shared = start(client, {probe(), "sleep"}, "shared", "p", true);
    REQUIRE(client.kill("p", SIGTERM));
    CHECK(client.wait("p")->shell_code() == 128 + SIGTERM); // the command was terminated by it
    CHECK(*client.wait("own") == ExitStatus{0, SIGKILL});
    CHECK(*client.wait("shared") == ExitStatus{0, SIGKILL});
    auto listed = client.list();
    REQUIRE(listed);
    for (const ContainerInfo& c : *listed) CHECK(c.state == State::exited);
    CHECK(processes_in_pidns(own.pidns_inode()).empty());
    CHECK(processes_in_pidns(parent.pidns_inode()).empty());
    REQUIRE(client.destroy("p"));
    CHECK(client.list()->empty()); // nested ones went with their parent
}

TEST_CASE("parity: destroying a parent destroys its nested containers and their cgroups") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container parent = start(client, {probe(), "daemon", "5"}, "p");
    Container own = start(client, {probe(), "daemon", "5"}, "own", "p");
    Container shared = start(client, {probe(), "daemon", "5"}, "shared", "p", true);
    Container grandchild = start(client, {probe(), "sleep"}, "grandchild", "own");
    const std::string parent_leaf = cgroup_of(parent.pid());
    // Leaves nest as the containers do (their names are the server's, not the ids).
    const std::string own_leaf = cgroup_of(own.pid());
    CHECK(own_leaf.substr(0, own_leaf.rfind('/')) == parent_leaf);
    CHECK(cgroup_of(shared.pid()).substr(0, cgroup_of(shared.pid()).rfind('/')) == parent_leaf);
    const std::string grandchild_leaf = cgroup_of(grandchild.pid());
    CHECK(grandchild_leaf.substr(0, grandchild_leaf.rfind('/')) == own_leaf);
    auto gone = client.destroy("p");
    REQUIRE(gone);
    CHECK(gone->exit == ExitStatus{0, SIGKILL});
    for (const Container* c : {&parent, &own, &grandchild}) CHECK(processes_in_pidns(c->pidns_inode()).empty());
    CHECK_FALSE(exists(parent_leaf));
    CHECK(client.wait("own").error().code == Errc::unknown_container);
    CHECK(client.list()->empty());
}

TEST_CASE("parity: an unknown or ended parent is a clear error") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    LaunchOptions o;
    o.parent = "nobody";
    CHECK(launch_error(client, o).message == "no parent container 'nobody'");
    LaunchOptions done;
    done.id = "done";
    done.argv = {probe(), "exit", "0"};
    REQUIRE(client.launch(done));
    REQUIRE(client.wait("done"));
    o.parent = "done";
    Error e = launch_error(client, o);
    CHECK(e.code == Errc::invalid_state);
    CHECK(e.message == "parent container 'done' has already ended");
    REQUIRE(client.destroy("done"));
}

TEST_CASE("parity: --disallow-sharing-agent-pid-namespace refuses every route to it, and serves the rest") {
    require_root();
    ServerProcess server({"--disallow-sharing-agent-pid-namespace"});
    Client client = server.connect();
    const std::string refused = "sharing the agent's pid namespace is disallowed (--disallow-sharing-agent-pid-namespace)";

    LaunchOptions share;
    share.share_pid_namespace = true;
    Error e = launch_error(client, share);
    CHECK(e.code == Errc::not_permitted);
    CHECK(e.message == refused);

    // The same namespace by fd, named by path or by pidfd: refused the same way.
    UniqueFd agent_ns(::open(("/proc/" + std::to_string(server.pid()) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(agent_ns);
    LaunchOptions by_fd;
    by_fd.join_pidns_fd = agent_ns.get();
    CHECK(launch_error(client, by_fd).message == refused + ": the namespace passed by fd is the agent's");
    UniqueFd server_pidfd(::syscall(SYS_pidfd_open, server.pid(), 0));
    REQUIRE(server_pidfd);
    by_fd.join_pidns_fd = server_pidfd.get();
    CHECK(launch_error(client, by_fd).message == refused + ": the namespace passed by fd is the agent's");

    // Everything else still launches: own namespaces, nested, nested sharing a non-agent parent.
    Container parent = start(client, {probe(), "sleep"}, "p");
    CHECK(run_nested(client, "p", false, {probe(), "exit", "0"}).status.code == 0);
    CHECK(run_nested(client, "p", true, {probe(), "exit", "0"}).status.code == 0);
    REQUIRE(client.destroy("p"));
}

TEST_CASE("parity: joining a pid namespace by fd or pidfd, and the errors of each wrong fd") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container target = start(client, {probe(), "sleep"}, "target");
    auto join = [&](int fd) {
        Pipe out;
        LaunchOptions o;
        o.argv = {probe(), "pidns"};
        o.join_pidns_fd = fd;
        o.stdio = {-1, out.write.get(), -1};
        auto ct = client.launch(o);
        REQUIRE(ct);
        out.write.reset();
        const std::string ns = read_all(out.read.get());
        REQUIRE(client.wait(ct->id()));
        REQUIRE(client.destroy(ct->id()));
        return std::stoull(ns);
    };
    UniqueFd ns(::open(("/proc/" + std::to_string(target.pid()) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(ns);
    CHECK(join(ns.get()) == target.pidns_inode());
    CHECK(join(target.pidfd()) == target.pidns_inode());

    LaunchOptions o;
    UniqueFd net(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    o.join_pidns_fd = net.get();
    CHECK(launch_error(client, o).message == "the fd is a network namespace, not a pid namespace");
    UniqueFd file(::open("/etc/hostname", O_RDONLY | O_CLOEXEC));
    o.join_pidns_fd = file.get();
    CHECK(launch_error(client, o).message == "the fd is neither a pid namespace (/proc/PID/ns/pid) nor a pidfd");

    LaunchOptions quick;
    quick.id = "quick";
    quick.argv = {probe(), "exit", "0"};
    auto ended = client.launch(quick);
    REQUIRE(ended);
    REQUIRE(client.wait("quick"));
    REQUIRE(client.destroy("quick")); // reaped: the pidfd now names no process
    o.join_pidns_fd = ended->pidfd();
    Error e = launch_error(client, o);
    CHECK(e.code == Errc::invalid_state);
    CHECK(e.message == "the process behind the pidfd has exited");

    // A namespace whose init is gone cannot take new processes.
    UniqueFd dead_ns(::open(("/proc/" + std::to_string(target.pid()) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(client.destroy("target"));
    o.join_pidns_fd = dead_ns.get();
    CHECK(launch_error(client, o).message == "the pid namespace has no init any more (it exited)");
}

TEST_CASE("parity: a namespace outside the server's is refused") {
    require_root();
    // A second server running inside a container: our own namespace is outside of its.
    ServerProcess outer;
    Client outer_client = outer.connect();
    TempDir dir;
    const std::string inner_socket = dir.path() + "/inner.sock";
    Pipe log;
    LaunchOptions o;
    o.id = "inner-server";
    o.argv = {bin("nsfork"), "serve", "--socket", inner_socket, "--log-level", "info"};
    o.env = {kPath};
    o.stdio = {-1, -1, log.write.get()};
    REQUIRE(outer_client.launch(o));
    log.write.reset();
    REQUIRE(read_line(log.read.get()).find("listening on") != std::string::npos);

    auto inner = Client::connect(inner_socket);
    REQUIRE(inner);
    UniqueFd ours(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    LaunchOptions join;
    join.argv = {probe(), "exit", "0"};
    join.join_pidns_fd = ours.get();
    auto refused = inner->launch(join);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::not_permitted);
    CHECK(refused.error().message == "the pid namespace is not the server's nor a descendant of it");
    // ... and it keeps serving.
    auto r = run(*inner, {probe(), "exit", "5"});
    CHECK(r.status.code == 5);

    // A clean stop, so that the inner server removes its own cgroups first.
    REQUIRE(outer_client.kill("inner-server", SIGTERM));
    CHECK(outer_client.wait("inner-server")->code == 0);
    REQUIRE(outer_client.destroy("inner-server"));
}

TEST_CASE("parity: a shared container leaves nothing behind when its command exits") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Pipe out;
    LaunchOptions o;
    o.id = "leaver";
    // The daemon escapes the command (setsid, double fork); the command then exits.
    o.argv = {"sh", "-c", probe() + " daemon 3 & read line; exit 7"};
    o.env = {kPath};
    o.share_pid_namespace = true;
    Pipe in;
    o.stdio = {in.read.get(), out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    in.read.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    const std::string leaf = cgroup_of(ct->pid());
    const std::vector<pid_t> pids = cgroup_procs(leaf);
    CHECK(pids.size() >= 6);
    REQUIRE(::write(in.write.get(), "\n", 1) == 1);
    CHECK(*client.wait("leaver") == ExitStatus{7, 0});
    REQUIRE(client.destroy("leaver"));
    for (pid_t p : pids) CHECK_FALSE(alive(p));
    CHECK_FALSE(exists(leaf));
}

TEST_CASE("parity: without a writable cgroup v2, launches that need one are refused, others run") {
    require_root();
    ServerProcess server({"--cgroup-root", "/nonexistent-nsfork/x"});
    Client client = server.connect();
    LaunchOptions share;
    share.share_pid_namespace = true;
    Error e = launch_error(client, share);
    CHECK(e.code == Errc::unavailable);
    CHECK(e.message.find("no writable cgroup v2 was found: cannot open cgroup /nonexistent-nsfork/x") != std::string::npos);
    CHECK(run(client, {probe(), "exit", "3"}).status.code == 3);
}
