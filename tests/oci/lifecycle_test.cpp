// nsfork-oci's own verbs as an engine drives them, over a real `nsfork serve`: the lifecycle and
// its state, run in both argument orders, exec, ps, pause/resume, kill --all, delete in every
// state, its errors (unknown id, no server, bad bundles — after which nothing is left), and the
// faults: the runtime killed half-way through create, the server restarted under a container.
#include "tests/oci/bundle_support.hpp"

#include "base/procfs.hpp"
#include "base/syscalls.hpp"
#include "testing/poll.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>

namespace fs = std::filesystem;
using namespace nsfork::test::oci;
using nsfork::test::TempDir;

namespace {


// The ids nsfork-oci keeps state for under its --root.
std::vector<std::string> state_dirs(Runtime& rt) {
    std::vector<std::string> ids;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(rt.root(), ec)) ids.push_back(entry.path().filename().string());
    return ids;
}

// The containers the server holds.
std::size_t server_containers(Suite& s) {
    auto client = s.server().connect();
    return MUST(client.list()).size();
}

// Waits until the server holds no container (it forgets one once its namespace ended).
void server_holds_none(Suite& s) {
    CHECK(nsfork::testing::eventually([&] { return server_containers(s) == 0; }));
}

// The cgroups the server made for nsfork-oci's containers (below oci/ in its tree; beside it are
// its warm pool's).
std::vector<std::string> server_cgroups(Suite& s) {
    std::vector<std::string> dirs;
    std::error_code ec;
    const std::string root = nsfork::testing::default_cgroup_root(s.server().pid()) + "/oci";
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_directory()) dirs.push_back(it->path().string());
    return dirs;
}

// The cgroups of any hierarchy (v1 controllers, v2) named `id`.
std::vector<std::string> cgroups_named(const std::string& id) {
    std::vector<std::string> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator("/sys/fs/cgroup", ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_directory(ec) && it->path().filename() == id) found.push_back(it->path().string());
    return found;
}

// Checks a failed create of `id` left nothing: no state, no server container, no cgroup.
void nothing_left(Suite& s, Runtime& rt, const std::string& id) {
    CHECK(state_dirs(rt) == std::vector<std::string>{});
    server_holds_none(s);
    CHECK(nsfork::testing::eventually([&] { return server_cgroups(s).empty(); }));
    CHECK(cgroups_named(id) == std::vector<std::string>{});
}

// The namespace links of /proc/self/ns/ (or /proc/PID/ns/) for net, ipc and uts, a line each.
std::string read_ns_links(const std::string& dir) {
    std::string out;
    for (const char* n : {"net", "ipc", "uts"}) {
        std::error_code ec;
        out += fs::read_symlink(dir + n, ec).string() + "\n";
    }
    return out;
}

// The network, IPC and UTS namespaces among the open fds of `pid`, by their links.
std::vector<std::string> server_namespaces(pid_t pid) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        const std::string link = fs::read_symlink(entry.path(), ec).string();
        if (link.starts_with("net:[") || link.starts_with("ipc:[") || link.starts_with("uts:[")) out.push_back(link);
    }
    return out;
}

// `ps --format json ID`'s pids.
std::vector<pid_t> ps_pids(Runtime& rt, const std::string& id) {
    Outcome o = rt({"ps", "--format", "json", id});
    INFO(o.err);
    REQUIRE(o.code == 0);
    return Json::parse(o.out).get<std::vector<pid_t>>();
}

// The host's frozen flag of the cgroup v2 leaf `pid` lives in.
bool frozen(pid_t pid) {
    const std::string events = read_file(nsfork::testing::cgroup_of(pid) + "/cgroup.events");
    return events.find("frozen 1") != std::string::npos;
}

// Reaps `pid` (this process is its subreaper) in the background, as an engine's shim does while
// something other than a runtime command (which the fixture reaps around) ends the container: the namespace's pid 1 finishes dying only once every process of it was
// reaped (zap_pid_ns_processes), and delete returns once it did. The exit code in the shell
// convention, -1 if it still ran after 30 s.
std::future<int> reap_meanwhile(pid_t pid) {
    return std::async(std::launch::async, [pid] {
        nsfork::UniqueFd pidfd(nsfork::sys::pidfd_open(pid, 0));
        pollfd p{pidfd.get(), POLLIN, 0};
        int ready;
        while ((ready = ::poll(&p, 1, 30'000)) < 0 && errno == EINTR) {}
        int status = 0;
        if (ready != 1 || ::waitpid(pid, &status, 0) != pid) return -1;
        return nsfork::testing::shell_code(status);
    });
}

// `delete ARGS...` of a container whose processes `pids` still run; each must die of SIGKILL.
// The fixture reaps them while the delete runs, as an engine's shim does (a reaper of our own
// beside it would race it for their statuses).
void delete_live(Runtime& rt, std::vector<std::string> args, const std::vector<pid_t>& pids) {
    args.insert(args.begin(), "delete");
    Outcome deleted = rt(args);
    INFO(deleted.err);
    CHECK(deleted.code == 0);
    for (pid_t pid : pids) CHECK(wait_exit(pid) == 128 + SIGKILL);
}

} // namespace

TEST_CASE("nsfork-oci: create, state created, start, running, kill, stopped, delete") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    Capture out;
    const Created c = rt.create(b, out);
    Json st = rt.state(c.id);
    CHECK(st["status"] == "created");
    CHECK(st["id"] == c.id);
    CHECK(st["pid"] == c.pid);
    CHECK(st["bundle"] == b.path());
    CHECK(st["ociVersion"].is_string());
    CHECK(nsfork::test::alive(c.pid));
    // The server holds its namespaces: one container, adopted (no longer tied to create's connection).
    CHECK(server_containers(s) == 1);
    rt.start(c.id);
    CHECK(rt.status(c.id) == "running");
    Outcome killed = rt({"kill", c.id, "TERM"});
    CHECK(killed.code == 0);
    CHECK(wait_exit(c.pid) == 128 + SIGTERM);
    CHECK(rt.status(c.id) == "stopped");
    CHECK(rt.state(c.id)["pid"] == 0);
    Outcome deleted = rt({"delete", c.id});
    INFO(deleted.err);
    CHECK(deleted.code == 0);
    CHECK(state_dirs(rt).empty());
    server_holds_none(s);
}

TEST_CASE("nsfork-oci: run with the bundle before or after the id exits with the process's status") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle three({"sh", "-c", "exit 3"});
    three.write();
    Outcome before = rt({"run", "-b", three.path(), rt.new_id()});
    INFO(before.err);
    CHECK(before.code == 3);
    Bundle zero({"sh", "-c", "echo hello"});
    zero.write();
    Outcome after = rt({"run", rt.new_id(), "--bundle", zero.path()});
    INFO(after.err);
    CHECK(after.code == 0);
    CHECK(after.out == "hello\n");
    Bundle killed({"sh", "-c", "kill -KILL $$"});
    killed.write();
    CHECK(rt({"run", "-b", killed.path(), rt.new_id()}).code == 128 + SIGKILL);
    // Each run deleted its container.
    CHECK(state_dirs(rt).empty());
    server_holds_none(s);
}

TEST_CASE("nsfork-oci: run --detach returns once the process runs, and it is killed and deleted later") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    b.write();
    const std::string id = rt.new_id();
    TempDir tmp;
    const std::string pid_file = tmp.path() + "/pid";
    Outcome o = rt({"run", "--detach", "--pid-file", pid_file, "-b", b.path(), id});
    INFO(o.err);
    REQUIRE(o.code == 0);
    const pid_t pid = std::stoi(read_file(pid_file));
    CHECK(rt.status(id) == "running");
    CHECK(rt({"kill", id, "KILL"}).code == 0);
    CHECK(wait_exit(pid) == 128 + SIGKILL);
    CHECK(rt({"delete", id}).code == 0);
    CHECK(state_dirs(rt).empty());
}

TEST_CASE("nsfork-oci: the pid file holds bare digits, the container's process's pid") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    b.write();
    TempDir tmp;
    const std::string pid_file = tmp.path() + "/pid";
    const std::string id = rt.new_id();
    Outcome o = rt({"create", "--bundle", b.path(), "--pid-file", pid_file, id});
    INFO(o.err);
    REQUIRE(o.code == 0);
    const std::string text = read_file(pid_file);
    REQUIRE_FALSE(text.empty());
    CHECK(std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; }));
    CHECK(rt.state(id)["pid"] == std::stoi(text));
    delete_live(rt, {id}, {std::stoi(text)}); // created: deleted without --force, as runc
}

TEST_CASE("nsfork-oci: a create that fails once the server adopted its process (the pid file unwritable) leaves nothing") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    b.write();
    const std::string id = rt.new_id();
    Outcome o = rt({"create", "--bundle", b.path(), "--pid-file", "/nonexistent-dir/pid", id});
    INFO(o.err);
    CHECK(o.code == 1);
    CHECK(o.err.find("/nonexistent-dir/pid") != std::string::npos);
    // The adopted container no longer ended with the runtime's connection: it was destroyed.
    nothing_left(s, rt, id);
}

TEST_CASE("nsfork-oci: creates of one id at once: one makes it, the others say it exists, and nothing of theirs is left") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    b.write();
    const std::string id = rt.new_id();
    TempDir tmp;
    constexpr int kRuntimes = 8;
    std::vector<pid_t> runtimes;
    std::vector<std::unique_ptr<Capture>> captures;
    for (int i = 0; i < kRuntimes; ++i) {
        captures.push_back(std::make_unique<Capture>());
        runtimes.push_back(
            rt.spawn({"create", "--bundle", b.path(), "--pid-file", tmp.path() + "/pid" + std::to_string(i), id}, *captures.back()));
    }
    int made = 0;
    for (int i = 0; i < kRuntimes; ++i) {
        int status = 0;
        REQUIRE(::waitpid(runtimes[i], &status, 0) == runtimes[i]);
        REQUIRE(WIFEXITED(status));
        INFO(captures[i]->err());
        if (WEXITSTATUS(status) == 0) {
            ++made;
        } else {
            CHECK(WEXITSTATUS(status) == 1);
            CHECK(captures[i]->err().find("container with id " + id + " already exists") != std::string::npos);
        }
    }
    CHECK(made == 1);
    CHECK(state_dirs(rt) == std::vector<std::string>{id});
    // The losers' server containers (any launched before their mkdir lost) ended with their connections.
    CHECK(nsfork::testing::eventually([&] { return server_containers(s) == 1; }));
    CHECK(rt.status(id) == "created");
    const pid_t pid = rt.state(id)["pid"];
    delete_live(rt, {id}, {pid});
    nothing_left(s, rt, id);
}

TEST_CASE("nsfork-oci: the device rules hold without a v1 devices cgroup: a node they do not allow cannot be opened") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    // /dev/loop-control (c 10:237), which runc spec's rules do not allow, bound in from the host.
    REQUIRE(fs::exists("/dev/loop-control"));
    Bundle b({});
    b.shell("(: < /dev/loop-control) && echo opened; echo discarded > /dev/null && echo null ok; "
            "grep :devices: /proc/self/cgroup || echo no v1 devices");
    b.config["mounts"].push_back({{"destination", "/dev/loop-control"}, {"type", "bind"},
                                  {"source", "/dev/loop-control"}, {"options", {"bind"}}});
    const Outcome o = rt.run(b);
    INFO(o.err);
    CHECK(o.code == 0);
    CHECK(o.err.find("can't open /dev/loop-control: Operation not permitted") != std::string::npos);
    // Born into the server's v2 leaf, whose eBPF filter applies the rules: no migration into a v1
    // devices cgroup (a write that waits for an RCU grace period), so the root one.
    CHECK(o.out.starts_with("null ok\n"));
    const std::string devices = o.out.substr(std::min(o.out.size(), std::string("null ok\n").size()));
    CHECK((devices == "no v1 devices\n" || devices.ends_with(":devices:/\n")));
    server_holds_none(s);
}

TEST_CASE("nsfork-oci: exec runs in the running container and exits with its status") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    Capture out;
    const Created c = rt.started(b, out);
    Outcome echo = rt({"exec", c.id, "sh", "-c", "echo $$ in $(hostname)"});
    INFO(echo.err);
    CHECK(echo.code == 0);
    CHECK_FALSE(echo.out.empty());
    CHECK(rt({"exec", c.id, "sh", "-c", "exit 5"}).code == 5);
    // It sees the container's pid namespace: the holder is pid 1, the process pid 2.
    Outcome ps = rt({"exec", c.id, "cat", "/proc/2/cmdline"});
    CHECK(ps.out.find("sleep") != std::string::npos);
    CHECK(rt({"exec", "no-such-container", "true"}).err.find("does not exist") != std::string::npos);
    delete_live(rt, {"--force", c.id}, {c.pid});
}

TEST_CASE("nsfork-oci: ps --format json lists the container's processes by host pid") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    Capture out;
    const Created c = rt.started(b, out);
    CHECK(ps_pids(rt, c.id) == std::vector<pid_t>{c.pid});
    TempDir tmp;
    Outcome exec = rt({"exec", "--detach", "--pid-file", tmp.path() + "/pid", c.id, "sleep", "100"});
    INFO(exec.err);
    REQUIRE(exec.code == 0);
    const pid_t second = std::stoi(read_file(tmp.path() + "/pid"));
    std::vector<pid_t> expected{c.pid, second};
    std::sort(expected.begin(), expected.end());
    CHECK(ps_pids(rt, c.id) == expected);
    Outcome table = rt({"ps", c.id});
    CHECK(table.out.find(std::to_string(second)) != std::string::npos);
    delete_live(rt, {"--force", c.id}, {c.pid, second});
}

TEST_CASE("nsfork-oci: pause freezes the container's cgroup, state says paused, resume thaws it") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    Capture out;
    const Created c = rt.started(b, out);
    Outcome paused = rt({"pause", c.id});
    INFO(paused.err);
    REQUIRE(paused.code == 0);
    CHECK(rt.status(c.id) == "paused");
    CHECK(frozen(c.pid));
    CHECK(rt({"pause", c.id}).code == 1);
    CHECK(rt({"delete", c.id}).err.find("that is not stopped: paused") != std::string::npos);
    CHECK(rt({"resume", c.id}).code == 0);
    CHECK(rt.status(c.id) == "running");
    CHECK_FALSE(frozen(c.pid));
    CHECK(rt({"resume", c.id}).err.find("not paused") != std::string::npos);
    // A paused container is deleted with --force all the same.
    REQUIRE(rt({"pause", c.id}).code == 0);
    delete_live(rt, {"--force", c.id}, {c.pid});
}

TEST_CASE("nsfork-oci: kill --all reaches every process of the container") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sh", "-c", "sleep 100 & sleep 100 & wait"});
    Capture out;
    const Created c = rt.started(b, out);
    std::vector<pid_t> pids;
    CHECK(nsfork::testing::eventually([&] { return (pids = ps_pids(rt, c.id)).size() == 3; }));
    Outcome killed = rt({"kill", "--all", c.id, "KILL"});
    INFO(killed.err);
    CHECK(killed.code == 0);
    CHECK(wait_exit(c.pid) == 128 + SIGKILL);
    for (pid_t pid : pids) CHECK(nsfork::testing::eventually([&] { return !nsfork::test::alive(pid); }));
    CHECK(rt.status(c.id) == "stopped");
    CHECK(rt({"kill", c.id, "KILL"}).err.find("container not running") != std::string::npos);
    CHECK(rt({"delete", c.id}).code == 0);
}

TEST_CASE("nsfork-oci: delete refuses a running container without --force, as runc words it, and deletes once") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    Capture out;
    const Created c = rt.started(b, out);
    Outcome refused = rt({"delete", c.id});
    CHECK(refused.code == 1);
    CHECK(refused.err.find("cannot delete container " + c.id + " that is not stopped: running") != std::string::npos);
    CHECK(nsfork::test::alive(c.pid));
    delete_live(rt, {"--force", c.id}, {c.pid});
    Outcome twice = rt({"delete", c.id});
    CHECK(twice.code == 1);
    CHECK(twice.err.find("container " + c.id + " does not exist") != std::string::npos);
    // --force of what is gone is no error (runc's, which engines rely on when cleaning up).
    CHECK(rt({"delete", "--force", c.id}).code == 0);
    CHECK(state_dirs(rt).empty());
    server_holds_none(s);
    CHECK(nsfork::testing::eventually([&] { return server_cgroups(s).empty(); }));
}

TEST_CASE("nsfork-oci: state, kill and start of an unknown id say it does not exist") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    for (std::vector<std::string> args : {std::vector<std::string>{"state", "nope"},
                                          {"kill", "nope", "KILL"},
                                          {"start", "nope"},
                                          {"ps", "nope"},
                                          {"pause", "nope"}}) {
        Outcome o = rt(args);
        INFO(args[0]);
        CHECK(o.code == 1);
        CHECK(o.err.find("container nope does not exist") != std::string::npos);
    }
}

TEST_CASE("nsfork-oci: with no server on its socket, create says which socket and how to start one") {
    Suite s;
    TempDir tmp;
    const std::string socket = tmp.path() + "/nsfork.sock";
    Runtime rt("nsfork-oci", {nsfork::test::bin("nsfork-oci"), "--nsfork-socket", socket});
    Bundle b({"true"});
    Capture out;
    const Created c = rt.try_create(b, out);
    CHECK(c.outcome.code == 1);
    CHECK(c.outcome.err.find("cannot reach the nsfork server at " + socket + ": no such file or directory") !=
          std::string::npos);
    CHECK(c.outcome.err.find("nsfork serve --socket " + socket) != std::string::npos);
    CHECK(state_dirs(rt).empty());
}

TEST_CASE("nsfork-oci: --log-format json writes errors to --log as JSON lines") {
    Suite s;
    TempDir tmp;
    const std::string log = tmp.path() + "/log.json";
    Runtime rt("nsfork-oci", {nsfork::test::bin("nsfork-oci"), "--nsfork-socket", s.server().socket(), "--log", log,
                              "--log-format", "json"});
    Outcome o = rt({"state", "nope"});
    CHECK(o.code == 1);
    CHECK(o.err == "container nope does not exist\n");
    const auto lines = nsfork::testing::lines(read_file(log));
    REQUIRE(lines.size() == 1);
    const Json line = Json::parse(lines[0]);
    CHECK(line["level"] == "error");
    CHECK(line["msg"] == "container nope does not exist");
    CHECK(line["time"].is_string());
}

TEST_CASE("nsfork-oci: a bad bundle is refused with one error line and leaves nothing behind") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    struct Bad {
        const char* what;
        std::function<void(Bundle&)> edit;
        const char* error; // a part of the message
    };
    const Bad cases[] = {
        {"missing rootfs", [](Bundle& b) { b.config["root"]["path"] = "/nonexistent-rootfs"; }, "nonexistent-rootfs"},
        {"malformed JSON", [](Bundle& b) { b.raw_config = "{\"ociVersion\": "; }, "config.json"},
        {"unknown namespace type",
         [](Bundle& b) { b.config["linux"]["namespaces"].push_back({{"type", "bogus"}}); },
         "bogus"},
        {"an unsupported field",
         [](Bundle& b) {
             b.config["linux"]["namespaces"].push_back({{"type", "user"}});
             b.config["linux"]["uidMappings"] = Json::array({{{"containerID", 0}, {"hostID", 1000}, {"size", 1}}});
         },
         "user"},
    };
    for (const Bad& bad : cases) {
        INFO(bad.what);
        Bundle b({"true"});
        bad.edit(b);
        Capture out;
        const Created c = rt.try_create(b, out);
        INFO(c.outcome.err);
        CHECK(c.outcome.code == 1);
        CHECK(nsfork::testing::lines(c.outcome.err).size() == 1);
        CHECK(c.outcome.err.find(bad.error) != std::string::npos);
        nothing_left(s, rt, c.id);
    }
}

TEST_CASE("nsfork-oci: SIGKILLed during create, it leaves no server container, and delete --force cleans the rest") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    TempDir tmp;
    const std::string marker = tmp.path() + "/hook-pid";
    // A prestart hook that says it runs and then waits: the runtime is then between forking the
    // process into the namespaces and writing the state.
    Bundle b({"sleep", "100"});
    b.config["hooks"]["prestart"] = Json::array(
        {{{"path", "/bin/sh"}, {"args", {"sh", "-c", "echo $$ > " + marker + ".tmp && mv " + marker + ".tmp " + marker + " && exec sleep 100"}}}});
    b.write();
    const std::string id = rt.new_id();
    Capture capture;
    const pid_t runtime = rt.spawn({"create", "--bundle", b.path(), id}, capture);
    REQUIRE(nsfork::testing::eventually([&] { return fs::exists(marker); }));
    CHECK(server_containers(s) == 1);
    const pid_t hook = std::stoi(read_file(marker));
    ::kill(runtime, SIGKILL);
    int status;
    REQUIRE(::waitpid(runtime, &status, 0) == runtime);
    // The hook was the runtime's child: an orphan of ours now, not the container's.
    ::kill(hook, SIGKILL);
    // Its connection closed before adopt: the server ends the namespaces and forgets them, once
    // the container's process, an orphan of ours too, was reaped (as an engine's shim would).
    CHECK(nsfork::testing::eventually([&] {
        for (pid_t child : nsfork::testing::children_of(::getpid()))
            if (child != s.server().pid()) ::waitpid(child, nullptr, WNOHANG);
        return server_containers(s) == 0;
    }));
    CHECK(rt({"state", id}).err.find("does not exist") != std::string::npos);
    CHECK(rt({"delete", "--force", id}).code == 0);
    nothing_left(s, rt, id);
}

TEST_CASE("nsfork-oci: the server restarted under a running container: state says stopped, delete cleans up") {
    Suite s;
    TempDir tmp;
    const std::string socket = tmp.path() + "/nsfork.sock";
    auto serve = [&] {
        const pid_t pid = MUST(nsfork::testing::spawn(
            {nsfork::test::bin("nsfork"), "serve", "--socket", socket, "--log-level", "warn"}));
        REQUIRE(nsfork::testing::eventually([&] { return bool(nsfork::Client::connect(socket)); }));
        return pid;
    };
    auto stop = [](pid_t pid) {
        ::kill(pid, SIGTERM);
        int status;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
    };
    Runtime rt("nsfork-oci", {nsfork::test::bin("nsfork-oci"), "--nsfork-socket", socket});
    pid_t server = serve();
    Bundle b({"sleep", "100"});
    Capture out;
    const Created c = rt.started(b, out);
    auto reaped = reap_meanwhile(c.pid);
    stop(server); // it ends its containers as it goes
    CHECK(reaped.get() == 128 + SIGKILL);
    CHECK(rt.status(c.id) == "stopped");
    server = serve();
    Outcome deleted = rt({"delete", c.id});
    INFO(deleted.err);
    CHECK(deleted.code == 0);
    CHECK(state_dirs(rt).empty());
    CHECK(MUST(MUST(nsfork::Client::connect(socket)).list()).empty());
    stop(server);
}

TEST_CASE("nsfork-oci: hooks get the container's state on stdin at each point of its life") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    TempDir tmp;
    Bundle b({"sleep", "100"});
    for (const char* kind : {"prestart", "createRuntime", "poststart", "poststop"})
        b.config["hooks"][kind] = Json::array({{{"path", "/bin/sh"},
                                                {"args", {"sh", "-c", "cat > " + tmp.path() + "/" + kind}},
                                                {"env", {"PATH=/usr/bin:/bin"}}}});
    b.config["annotations"] = {{"org.example.hooked", "yes"}};
    Capture out;
    const Created c = rt.started(b, out);
    auto state_of = [&](const char* kind) {
        INFO(kind);
        const std::string text = read_file(tmp.path() + "/" + kind);
        REQUIRE_FALSE(text.empty());
        return Json::parse(text);
    };
    for (const char* kind : {"prestart", "createRuntime"}) {
        const Json st = state_of(kind);
        CHECK(st["status"] == "creating");
        CHECK(st["id"] == c.id);
        CHECK(st["pid"] == c.pid);
        CHECK(st["bundle"] == b.path());
        CHECK(st["annotations"]["org.example.hooked"] == "yes");
    }
    CHECK(state_of("poststart")["status"] == "running");
    CHECK_FALSE(fs::exists(tmp.path() + "/poststop"));
    delete_live(rt, {"--force", c.id}, {c.pid});
    const Json stopped = state_of("poststop");
    CHECK(stopped["status"] == "stopped");
    CHECK(stopped["id"] == c.id);
}

TEST_CASE("nsfork-oci: a container whose config joins another's pid namespace by path is nested in it") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle outer({"sleep", "100"});
    Capture out;
    const Created a = rt.started(outer, out);
    Bundle inner({"sleep", "100"});
    for (Json& ns : inner.config["linux"]["namespaces"])
        if (ns["type"] == "pid") ns["path"] = "/proc/" + std::to_string(a.pid) + "/ns/pid";
    const Created b = rt.started(inner, out);
    CHECK(fs::read_symlink("/proc/" + std::to_string(b.pid) + "/ns/pid") ==
          fs::read_symlink("/proc/" + std::to_string(a.pid) + "/ns/pid"));
    auto client = s.server().connect();
    const auto containers = MUST(client.list());
    const auto nested = std::find_if(containers.begin(), containers.end(),
                                     [&](const nsfork::ContainerInfo& info) { return info.parent == a.id; });
    CHECK(nested != containers.end());
    // The outer one's namespace ends both.
    delete_live(rt, {"--force", a.id}, {a.pid, b.pid});
    CHECK(rt.status(b.id) == "stopped");
    CHECK(rt({"delete", b.id}).code == 0);
    CHECK(state_dirs(rt).empty());
    server_holds_none(s);
}

TEST_CASE("nsfork-oci: features says what it supports, as runc 1.2's JSON") {
    Suite s;
    Outcome o = s.nsfork_oci()({"features"});
    REQUIRE(o.code == 0);
    const Json f = Json::parse(o.out);
    CHECK(f["ociVersionMin"] == "1.0.0");
    CHECK(f["hooks"] == Json({"prestart", "createRuntime", "poststart", "poststop"}));
    CHECK(f["linux"]["namespaces"] == Json({"cgroup", "ipc", "mount", "network", "pid", "uts"}));
    CHECK(f["linux"]["seccomp"]["enabled"] == true);
    CHECK(std::find(f["mountOptions"].begin(), f["mountOptions"].end(), "rbind") != f["mountOptions"].end());
    Outcome v = s.nsfork_oci()({"--version"});
    CHECK(v.out.find("nsfork-oci version") != std::string::npos);
}

TEST_CASE("nsfork-oci: run in the foreground makes no exec fifo, forwards a signal to the container's process and exits with its death") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    Bundle b({"sleep", "100"});
    b.write();
    const std::string id = rt.new_id();
    Capture capture;
    const pid_t runtime = rt.spawn({"run", "-b", b.path(), id}, capture);
    REQUIRE(nsfork::testing::eventually([&] {
        Outcome o = rt({"state", id});
        return o.code == 0 && Json::parse(o.out)["status"] == "running";
    }));
    // run starts its process itself, over their socket: no exec fifo (create's) was made.
    CHECK(std::filesystem::exists(rt.root() + "/" + id + "/state.json"));
    CHECK_FALSE(std::filesystem::exists(rt.root() + "/" + id + "/exec.fifo"));
    ::kill(runtime, SIGTERM);
    int status = 0;
    REQUIRE(::waitpid(runtime, &status, 0) == runtime);
    INFO(capture.err());
    CHECK(nsfork::testing::shell_code(status) == 128 + SIGTERM);
    // It deleted the container on its way out.
    CHECK(rt({"state", id}).err.find("does not exist") != std::string::npos);
    server_holds_none(s);
}

TEST_CASE("nsfork-oci: new network, IPC and UTS namespaces are the server's, made ahead once it had them, and each container gets its own") {
    Suite s;
    Runtime& rt = s.nsfork_oci();
    nsfork::Client client = s.server().connect();
    const std::string host = read_ns_links("/proc/self/ns/");
    Bundle b({"sleep", "100"});
    Capture out;
    // The first asks the server for them and finds none: its process unshares its own.
    const Created first = rt.started(b, out);
    const std::string firsts = read_ns_links("/proc/" + std::to_string(first.pid) + "/ns/");
    // Once the server made them (while idle; each Hello is a request, so polled slowly), the next
    // container's are among those it held. Two alive at once have different ones (inode numbers
    // are reused once a namespace is gone, so only live ones are compared).
    REQUIRE(nsfork::testing::eventually([&] { return MUST(client.status()).namespaces_pending == 0; },
                                        std::chrono::seconds(20), std::chrono::milliseconds(25)));
    const std::vector<std::string> spares = server_namespaces(s.server().pid());
    const Created second = rt.started(b, out);
    const Created third = rt.started(b, out);
    const std::string seconds = read_ns_links("/proc/" + std::to_string(second.pid) + "/ns/");
    const std::string thirds = read_ns_links("/proc/" + std::to_string(third.pid) + "/ns/");
    for (const std::string& link : nsfork::testing::lines(seconds))
        CHECK(std::find(spares.begin(), spares.end(), link) != spares.end());
    const std::vector<std::string> all[] = {nsfork::testing::lines(host), nsfork::testing::lines(firsts),
                                            nsfork::testing::lines(seconds), nsfork::testing::lines(thirds)};
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = i + 1; j < 4; ++j)
            for (std::size_t k = 0; k < 3; ++k) CHECK(all[i][k] != all[j][k]);
    delete_live(rt, {"--force", first.id}, {first.pid});
    delete_live(rt, {"--force", second.id}, {second.pid});
    delete_live(rt, {"--force", third.id}, {third.pid});
    server_holds_none(s);
}
