// launcher/cgroup: leaves under a test-owned subtree of the real cgroup2 hierarchy.
#include "harness.hpp"
#include "base/procfs.hpp"
#include "launcher/cgroup.hpp"
#include "server/stale_cgroups.hpp"

#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

using namespace nsfork;
using namespace nsfork::test;

namespace {

// A test-owned cgroup under the test process's own, created by the caller's Cgroup::create.
std::string test_parent() {
    std::string own = procfs::cgroup2_path();
    if (own == "/") own.clear();
    return procfs::cgroup2_mount() + own;
}

// Forks a child that moves itself into `dir` and waits there, still alive when this returns.
pid_t park_process_in(const std::string& dir) {
    Pipe ready;
    const pid_t child = ::fork();
    if (child == 0) {
        const std::string pid = std::to_string(::getpid());
        FILE* procs = std::fopen((dir + "/cgroup.procs").c_str(), "we");
        if (!procs || std::fputs(pid.c_str(), procs) < 0 || std::fclose(procs) != 0) ::_exit(1);
        [[maybe_unused]] auto n = ::write(ready.write.get(), "x", 1);
        for (;;) ::pause();
    }
    ready.write.reset();
    char c;
    if (child < 0 || ::read(ready.read.get(), &c, 1) != 1) return -1;
    return child;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Reaps `child` if it dies within 5 s and returns its wait status; else SIGKILLs and reaps it
// (so that a failing test leaves nothing behind) and returns -1.
int reap_within_5s(pid_t child) {
    int status = 0;
    for (int i = 0; i < 500; ++i) {
        if (::waitpid(child, &status, WNOHANG) == child) return status;
        ::usleep(10'000);
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    return -1;
}

// A container command that makes sub-cgroups under its own leaf and moves processes into them,
// as a container that manages its own cgroups does (runc's "delete with subcgroups"): one in
// sub/, one in sub/deeper/ inside a pid namespace of its own. Prints its leaf once both moved
// (or exits 1 if they do not within 10 s: the test then fails, not hangs).
const char* kMakesSubCgroups = R"sh(
d="$CG$(sed -n 's/^0:://p' /proc/self/cgroup)"
mkdir "$d/sub" "$d/sub/deeper" || exit 1
sh -c 'echo 0 > "$1/cgroup.procs" && exec sleep 1000' sh "$d/sub" &
unshare -pf sh -c 'echo 0 > "$1/cgroup.procs" && exec sleep 1000' sh "$d/sub/deeper" &
i=0
until grep -q . "$d/sub/cgroup.procs" && grep -q . "$d/sub/deeper/cgroup.procs"; do
    i=$((i + 1)) && [ $i -lt 1000 ] || exit 1
    sleep 0.01
done
echo "$d"
exec sleep 1000
)sh";

// Launches kMakesSubCgroups as `id`; returns its leaf's path once its processes sit in the sub-cgroups.
std::string launch_with_sub_cgroups(Client& client, const std::string& id) {
    Pipe out;
    LaunchOptions o;
    o.id = id;
    o.argv = {"sh", "-c", kMakesSubCgroups};
    o.env = {kPath, "CG=" + procfs::cgroup2_mount()};
    o.stdio = {-1, out.write.get(), 2};
    REQUIRE(client.launch(o));
    out.write.reset();
    const std::string leaf = read_line(out.read.get());
    REQUIRE_FALSE(leaf.empty());
    REQUIRE_FALSE(cgroup_procs(leaf + "/sub").empty());
    REQUIRE_FALSE(cgroup_procs(leaf + "/sub/deeper").empty());
    return leaf;
}

// A wrapper for ServerProcess that starts the server in the cgroup `dir`, so that its tree is
// made there (and the dead trees it looks at are the ones there: no other test's), with its
// log appended to `log` ("": the test's stderr).
std::vector<std::string> in_cgroup(const std::string& dir, const std::string& log = {}) {
    std::string script = "echo $$ > '" + dir + "/cgroup.procs' && exec \"$@\"";
    if (!log.empty()) script += " 2>>'" + log + "'";
    return {"/bin/sh", "-c", script, "sh"};
}

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream text;
    text << f.rdbuf();
    return text.str();
}

// The tree a server makes in `dir` (its own cgroup), as in_cgroup() puts it there.
std::string tree_in(const std::string& dir, pid_t server) { return dir + "/nsfork-" + std::to_string(server); }

} // namespace

TEST_CASE("cgroup: going out of scope kills a nested sub-cgroup's live process and removes the tree") {
    require_root();
    auto root = Cgroup::create(test_parent(), "nsfork-test-scope-" + std::to_string(::getpid()));
    REQUIRE(root);
    std::string leaf_path, nested;
    pid_t child = -1;
    {
        auto leaf = Cgroup::create(root->path(), "leaf");
        REQUIRE(leaf);
        leaf_path = leaf->path();
        // A sub-cgroup made behind the object's back, as a container with delegation would.
        nested = leaf_path + "/made-inside";
        REQUIRE(::mkdir(nested.c_str(), 0755) == 0);
        child = park_process_in(nested);
        REQUIRE(child > 0);
        REQUIRE(*leaf->populated());
    }
    const int status = reap_within_5s(child);
    REQUIRE(status != -1);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK_FALSE(exists(nested));
    CHECK_FALSE(exists(leaf_path));
    if (exists(nested)) ::rmdir(nested.c_str());
    if (exists(leaf_path)) ::rmdir(leaf_path.c_str());
    CHECK(root->remove());
}

TEST_CASE("cgroup: remove() takes the sub-cgroups with it, and EBUSY while a process is left") {
    require_root();
    auto leaf = Cgroup::create(test_parent(), "nsfork-test-remove-" + std::to_string(::getpid()));
    REQUIRE(leaf);
    const std::string deep = leaf->path() + "/a/b";
    REQUIRE(::mkdir((leaf->path() + "/a").c_str(), 0755) == 0);
    REQUIRE(::mkdir(deep.c_str(), 0755) == 0);
    const pid_t child = park_process_in(deep);
    REQUIRE(child > 0);
    auto busy = leaf->remove();
    CHECK_FALSE(busy);
    CHECK(exists(deep));
    CHECK(leaf->owned());
    REQUIRE(leaf->kill());
    REQUIRE(::waitpid(child, nullptr, 0) == child);
    CHECK(leaf->remove());
    CHECK_FALSE(exists(leaf->path()));
    CHECK_FALSE(leaf->owned());
}

TEST_CASE("cgroup: remove_if_empty() is one rmdir: refused while a process or a sub-cgroup is left, done once neither is") {
    require_root();
    auto leaf = Cgroup::create(test_parent(), "nsfork-test-remove-if-empty-" + std::to_string(::getpid()));
    REQUIRE(leaf);
    const pid_t child = park_process_in(leaf->path());
    REQUIRE(child > 0);
    CHECK_FALSE(leaf->remove_if_empty());
    CHECK(leaf->owned());
    REQUIRE(leaf->kill());
    REQUIRE(::waitpid(child, nullptr, 0) == child);
    const std::string sub = leaf->path() + "/sub";
    REQUIRE(::mkdir(sub.c_str(), 0755) == 0);
    CHECK_FALSE(leaf->remove_if_empty()); // its subtree is remove()'s to list
    CHECK(exists(sub));
    REQUIRE(::rmdir(sub.c_str()) == 0);
    CHECK(leaf->remove_if_empty());
    CHECK_FALSE(exists(leaf->path()));
    CHECK_FALSE(leaf->owned());
    CHECK_FALSE(leaf->remove_if_empty()); // no longer ours: nothing done
    // An empty directory it did not make (an operator's root): never removed.
    const std::string theirs = test_parent() + "/nsfork-test-not-ours-" + std::to_string(::getpid());
    REQUIRE(::mkdir(theirs.c_str(), 0755) == 0);
    auto adopted = Cgroup::adopt(theirs);
    REQUIRE(adopted);
    CHECK_FALSE(adopted->remove_if_empty());
    CHECK(exists(theirs));
    CHECK(::rmdir(theirs.c_str()) == 0);
}

TEST_CASE("cgroup: an adopted or released cgroup is left alone when it goes out of scope") {
    require_root();
    auto made = Cgroup::create(test_parent(), "nsfork-test-left-" + std::to_string(::getpid()));
    REQUIRE(made);
    const std::string path = made->path();
    const pid_t child = park_process_in(path);
    REQUIRE(child > 0);
    {
        auto adopted = Cgroup::adopt(path);
        REQUIRE(adopted);
        CHECK_FALSE(adopted->owned());
    }
    CHECK(exists(path));
    CHECK(alive(child));
    {
        Cgroup moved = std::move(*made);
        CHECK_FALSE(made->owned()); // moved-from: its destruction does nothing either
        CHECK(moved.release() == path);
        CHECK(moved.path().empty());
    }
    CHECK(exists(path));
    CHECK(alive(child));
    // The test owns it now.
    REQUIRE(::kill(child, SIGKILL) == 0);
    REQUIRE(::waitpid(child, nullptr, 0) == child);
    CHECK(::rmdir(path.c_str()) == 0);
}

TEST_CASE("cgroup: create, populate, kill, watch it empty, remove") {
    require_root();
    const std::string mount = procfs::cgroup2_mount();
    REQUIRE_FALSE(mount.empty());
    std::string own = procfs::cgroup2_path();
    if (own == "/") own.clear();
    auto root = Cgroup::create(mount + own, "nsfork-test-" + std::to_string(::getpid()));
    REQUIRE(root);
    auto leaf = Cgroup::create(root->path(), "leaf");
    REQUIRE(leaf);
    CHECK(*leaf->populated() == false);

    // A child that moves itself into the leaf, forks a grandchild, and waits.
    Pipe ready;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        const std::string pid = std::to_string(::getpid());
        FILE* procs = std::fopen((leaf->path() + "/cgroup.procs").c_str(), "we");
        if (!procs || std::fputs(pid.c_str(), procs) < 0 || std::fclose(procs) != 0) ::_exit(1);
        if (::fork() == 0) ::pause();
        [[maybe_unused]] auto n = ::write(ready.write.get(), "x", 1);
        ::pause();
        ::_exit(0);
    }
    ready.write.reset();
    char c;
    REQUIRE(::read(ready.read.get(), &c, 1) == 1);
    CHECK(*leaf->populated() == true);
    CHECK_FALSE(leaf->remove()); // EBUSY while populated

    auto events = leaf->open_events();
    REQUIRE(events);
    REQUIRE(leaf->kill());
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WTERMSIG(status) == SIGKILL);
    // The grandchild (reparented elsewhere) dies too; "populated 0" is signalled with POLLPRI.
    while (*leaf->populated()) {
        pollfd p{events->get(), POLLPRI, 0};
        REQUIRE(::poll(&p, 1, 10000) == 1);
        char buf[256];
        REQUIRE(::pread(events->get(), buf, sizeof buf, 0) > 0);
    }
    CHECK(leaf->remove());
    CHECK(root->remove());
}

TEST_CASE("cgroup: the cgroup2 mount is found from mountinfo") {
    const std::string mount = procfs::cgroup2_mount();
    REQUIRE_FALSE(mount.empty());
    CHECK(std::ifstream(mount + "/cgroup.controllers").good());
}

TEST_CASE("cgroup: destroying a container that made sub-cgroups (a process in each, one in a nested pid namespace) removes its whole tree, and the server's at exit") {
    require_root();
    std::string leaf, root;
    {
        ServerProcess server;
        root = testing::default_cgroup_root(server.pid());
        Client client = server.connect();
        leaf = launch_with_sub_cgroups(client, "subcg");
        REQUIRE(leaf.starts_with(root + "/"));
        auto gone = client.destroy("subcg");
        REQUIRE(gone);
        CHECK_FALSE(exists(leaf + "/sub/deeper"));
        CHECK_FALSE(exists(leaf + "/sub"));
        CHECK_FALSE(exists(leaf));
        CHECK(server.stop() == ExitStatus{0, 0});
    }
    CHECK_FALSE(exists(root));
}

TEST_CASE("cgroup: an exited container keeps its leaf and what it counted until it is destroyed, and then the leaf goes") {
    require_root();
    ServerProcess server({"--warm-pool", "0"});
    Client client = server.connect();
    LaunchOptions o;
    o.id = "kept";
    o.argv = {"/bin/true"};
    auto ct = client.launch(o);
    REQUIRE(ct);
    const std::string leaf = ct->info().cgroup;
    REQUIRE_FALSE(leaf.empty());
    auto status = client.wait("kept");
    REQUIRE(status);
    CHECK(*status == ExitStatus{0, 0});
    // Exited, not destroyed: its leaf is still there to be read.
    CHECK(exists(leaf));
    std::ifstream stat(leaf + "/cgroup.stat");
    CHECK(stat.good());
    auto gone = client.destroy("kept");
    REQUIRE(gone);
    CHECK_FALSE(exists(leaf));
    CHECK(server.stop() == ExitStatus{0, 0});
}

TEST_CASE("cgroup: a cold launch takes an empty leaf the server made ahead, never a used one, and the spares go at exit") {
    require_root();
    std::string root;
    {
        ServerProcess server({"--warm-pool", "0"});
        root = testing::default_cgroup_root(server.pid());
        Client client = server.connect();
        std::vector<std::string> spares;
        REQUIRE(testing::eventually([&] { return (spares = sub_cgroup_names(root)).size() == 2; }, std::chrono::seconds(10)));
        LaunchOptions o;
        o.id = "ct";
        o.argv = {probe(), "sleep", "100"};
        auto ct = client.launch(o);
        REQUIRE(ct);
        const std::string leaf = ct->info().cgroup;
        CHECK(std::find(spares.begin(), spares.end(), leaf.substr(leaf.rfind('/') + 1)) != spares.end());
        // The container alone in it: its shim and its command.
        std::ifstream procs(leaf + "/cgroup.procs");
        std::vector<std::string> pids;
        for (std::string line; std::getline(procs, line);) pids.push_back(line);
        CHECK(pids.size() == 2);
        CHECK(std::find(pids.begin(), pids.end(), std::to_string(ct->pid())) != pids.end());
        // Another is made once the server is quiet; the used leaf goes with its container.
        CHECK(testing::eventually([&] { return sub_cgroup_names(root).size() == 3; }, std::chrono::seconds(10)));
        REQUIRE(client.destroy("ct"));
        CHECK_FALSE(exists(leaf));
        const auto left = sub_cgroup_names(root);
        CHECK(left.size() == 2);
        CHECK(std::find(left.begin(), left.end(), leaf.substr(leaf.rfind('/') + 1)) == left.end());
        CHECK(server.stop() == ExitStatus{0, 0});
    }
    CHECK_FALSE(exists(root));
}

TEST_CASE("cgroup: a starting server removes the tree of a SIGKILLed server, sub-cgroups and a process left in it included, and says so") {
    require_root();
    auto dir = Cgroup::create(test_parent(), "nsfork-test-dead-" + std::to_string(::getpid()));
    REQUIRE(dir);
    TempDir logs;
    const std::string log = logs.path() + "/server.log";
    std::string dead_tree;
    pid_t left = -1, dead = -1;
    {
        ServerProcess server({}, in_cgroup(dir->path()));
        dead = server.pid();
        dead_tree = tree_in(dir->path(), dead);
        Client client = server.connect();
        const std::string leaf = launch_with_sub_cgroups(client, "orphan");
        REQUIRE(leaf.starts_with(dead_tree + "/"));
        // A process in the tree that the containers' shims do not kill when their server dies.
        REQUIRE(::mkdir((dead_tree + "/left").c_str(), 0755) == 0);
        left = park_process_in(dead_tree + "/left");
        REQUIRE(left > 0);
        REQUIRE(::kill(server.pid(), SIGKILL) == 0);
        CHECK(server.stop() == ExitStatus{0, SIGKILL}); // reaps it
    }
    // What nothing removed before: the tree stays once its server is gone.
    CHECK(exists(dead_tree + "/left"));

    ServerProcess next({"--log-level", "info"}, in_cgroup(dir->path(), log));
    CHECK_FALSE(exists(dead_tree));
    const int status = reap_within_5s(left);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK_THAT(read_file(log), Catch::Contains("removed the cgroup tree of dead server " + std::to_string(dead) +
                                               ": " + dead_tree + " (its processes killed)"));
    const pid_t next_pid = next.pid(); // (stop() forgets it)
    CHECK(exists(tree_in(dir->path(), next_pid)));
    CHECK(next.stop() == ExitStatus{0, 0});
    CHECK_FALSE(exists(tree_in(dir->path(), next_pid)));
}

TEST_CASE("cgroup: a starting server leaves a live server's tree alone, and judges unmarked and foreign trees by their owner") {
    require_root();
    auto dir = Cgroup::create(test_parent(), "nsfork-test-live-" + std::to_string(::getpid()));
    REQUIRE(dir);
    TempDir logs;
    const std::string log = logs.path() + "/server.log";
    ServerProcess live({}, in_cgroup(dir->path()));
    const std::string live_tree = tree_in(dir->path(), live.pid());
    Client client = live.connect();
    const std::string leaf = launch_with_sub_cgroups(client, "busy");

    // Trees the live server did not make, each left or removed by who its owner is.
    auto make_tree = [&](pid_t pid, const std::string& mark) {
        const std::string path = tree_in(dir->path(), pid);
        REQUIRE(::mkdir(path.c_str(), 0755) == 0);
        if (!mark.empty()) REQUIRE(::setxattr(path.c_str(), kServerMarkXattr, mark.data(), mark.size(), 0) == 0);
        return path;
    };
    const auto own_ns = static_cast<std::uint64_t>(procfs::pid_namespace_inode(0));
    // Our pid, marked with another start: the pid was reused, its server is dead.
    const std::string reused = make_tree(::getpid(), format_mark({own_ns, 1}));
    // A pid of another pid namespace (none has it here): not ours to judge.
    const std::string foreign = make_tree(999'999'999, format_mark({own_ns + 1, 1}));
    // Unmarked (an older server's), its pid a process that started before it: live.
    const pid_t older = park_process_in(dir->path());
    REQUIRE(older > 0);
    const std::string unmarked = make_tree(older, "");

    ServerProcess next({"--log-level", "info"}, in_cgroup(dir->path(), log));
    CHECK(exists(leaf + "/sub/deeper"));
    CHECK_FALSE(cgroup_procs(leaf + "/sub").empty());
    CHECK_FALSE(cgroup_procs(leaf + "/sub/deeper").empty());
    CHECK(exists(foreign));
    CHECK(exists(unmarked));
    CHECK_FALSE(exists(reused));
    const std::string said = read_file(log);
    CHECK_THAT(said, !Catch::Contains("dead server " + std::to_string(live.pid())));
    CHECK_THAT(said, Catch::Contains("removed the cgroup tree of dead server " + std::to_string(::getpid())));

    // The live server goes on as before.
    REQUIRE(client.destroy("busy"));
    CHECK_FALSE(exists(leaf));
    CHECK(live.stop() == ExitStatus{0, 0});
    CHECK_FALSE(exists(live_tree));
    CHECK(next.stop() == ExitStatus{0, 0});
    REQUIRE(::kill(older, SIGKILL) == 0);
    REQUIRE(::waitpid(older, nullptr, 0) == older);
    CHECK(::rmdir(unmarked.c_str()) == 0);
    CHECK(::rmdir(foreign.c_str()) == 0);
}

TEST_CASE("cgroup: with --cgroup-root, a server's tree is its own below it, and the next server on that root removes a SIGKILLed one's and launches") {
    require_root();
    auto root = Cgroup::create(test_parent(), "nsfork-test-root-" + std::to_string(::getpid()));
    REQUIRE(root);
    TempDir logs;
    const std::string log = logs.path() + "/server.log";
    std::string dead_tree;
    pid_t dead = -1;
    {
        ServerProcess server({"--cgroup-root", root->path()});
        dead = server.pid();
        dead_tree = root->path() + "/nsfork-" + std::to_string(dead);
        Client client = server.connect();
        const std::string leaf = launch_with_sub_cgroups(client, "orphan");
        CHECK(leaf.starts_with(dead_tree + "/"));
        REQUIRE(::kill(server.pid(), SIGKILL) == 0);
        CHECK(server.stop() == ExitStatus{0, SIGKILL});
    }
    CHECK(exists(dead_tree));

    // Its leaves (c1, c2, ...) would have been in the way of the next server's.
    ServerProcess next({"--cgroup-root", root->path(), "--log-level", "info"}, in_cgroup(test_parent(), log));
    CHECK_FALSE(exists(dead_tree));
    CHECK_THAT(read_file(log), Catch::Contains("removed the cgroup tree of dead server " + std::to_string(dead)));
    Client client = next.connect();
    const RunResult r = run(client, {"sh", "-c", "sed -n 's/^0:://p' /proc/self/cgroup"});
    CHECK(r.status == ExitStatus{0, 0});
    const pid_t next_pid = next.pid(); // (stop() forgets it)
    CHECK_THAT(r.out, Catch::StartsWith(root->path().substr(procfs::cgroup2_mount().size()) + "/nsfork-" +
                                        std::to_string(next_pid) + "/c"));
    CHECK(next.stop() == ExitStatus{0, 0});
    CHECK_FALSE(exists(root->path() + "/nsfork-" + std::to_string(next_pid)));
    CHECK(exists(root->path())); // the operator's
}
