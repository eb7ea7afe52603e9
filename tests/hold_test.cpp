// Hold containers, the runtime-born way (DESIGN.md, "Two ways a container's process is born"):
// the server makes the namespaces and the cgroup leaf with a holding pid 1, the test plays the
// runtime — it forks a process into them as nsfork-oci does — and adopts it.
#include "harness.hpp"

#include "base/device_program.hpp"
#include "base/pidfd.hpp"
#include "base/procfs.hpp"
#include "base/syscalls.hpp"
#include "launcher/cgroup.hpp"
#include "launcher/clone.hpp"
#include "protocol/messages.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>

using namespace nsfork;
using namespace nsfork::test;

namespace {

// A process the test forked into a hold container: our child, as the runtime's would be.
struct Forked {
    UniqueFd pidfd;
    pid_t pid = -1;

    // Reaps it (blocking) and returns how it ended.
    ExitStatus reap_now() { return MUST(reap(pidfd.get())); }
};

// Forks `argv` into `ct` as a runtime does: its pid namespace through the holder's pidfd (so it
// is pid 2 or later there), born into the leaf (CLONE_INTO_CGROUP), then the holder's mount
// namespace (its /proc is the container's). Its stdout is `out` (-1: /dev/null).
Forked fork_into(const Container& ct, const std::vector<std::string>& argv, int out = -1) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    UniqueFd own(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    REQUIRE(own);
    UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (out < 0) out = null.get();
    REQUIRE(::setns(ct.pidfd(), CLONE_NEWPID) == 0);
    int pidfd = -1;
    const int holder = ct.pidfd();
    const pid_t pid = clone_process(CloneOptions{.flags = {}, .cgroup_fd = ct.cgroup(), .exit_signal = SIGCHLD, .pidfd = &pidfd}, [&] {
        if (::setns(holder, CLONE_NEWNS) < 0) ::_exit(120);
        if (::dup2(out, STDOUT_FILENO) < 0) ::_exit(121);
        ::execv(args[0], args.data());
        ::_exit(122);
    });
    const int error = errno;
    REQUIRE(::setns(own.get(), CLONE_NEWPID) == 0); // our children are born in our namespace again
    INFO("clone3: " << std::strerror(error));
    REQUIRE(pid > 0);
    return {UniqueFd(pidfd), pid};
}

// Forks `argv` (a probe verb that says "ready") into `ct`, waits until it is ready, and adopts it
// as the container's main process.
Forked start_main(Client& client, const Container& ct, const std::vector<std::string>& argv) {
    Pipe ready;
    Forked main = fork_into(ct, argv, ready.write.get());
    ready.write.reset();
    CHECK(read_line(ready.read.get()) == "ready");
    MUST(client.adopt(ct.id(), main.pidfd.get()));
    return main;
}

// Hold launch options, with what `set` changes.
LaunchOptions held(const std::function<void(LaunchOptions&)>& set = {}) {
    LaunchOptions o;
    o.hold = true;
    if (set) set(o);
    return o;
}

// A hold launch of `id` through `client`, with what `set` changes, which must succeed.
Container hold(Client& client, const std::string& id = {}, const std::function<void(LaunchOptions&)>& set = {}) {
    LaunchOptions o = held(set);
    o.id = id;
    return MUST(client.launch(o));
}

// Destroys `id` while reaping `ours`, the processes the test forked into it, which die with it:
// their namespace's holder finishes exiting only once they are reaped (KERNEL.md), as an engine
// reaps a runtime's. Client::destroy would wait for the holder first, so the Destroy goes raw.
void destroy_reaping(const ServerProcess& server, const std::string& id, std::initializer_list<Forked*> ours) {
    testing::RawConnection conn = raw_connection(server.socket());
    REQUIRE(conn.send(testing::destroy_request(conn.next_seq(), id)) == 0);
    for (Forked* f : ours) CHECK(f->reap_now().signal == SIGKILL);
    auto opened = MUST(open_reply(MUST(conn.receive()), 1 << 20));
    const wire::DestroyReply* r = opened.message->reply_as_DestroyReply();
    REQUIRE(r);
    CHECK(read_info(*r->container()).state == State::destroyed);
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Whether `id` is still among the server's containers.
bool listed(Client& client, const std::string& id) {
    auto all = MUST(client.list());
    return std::any_of(all.begin(), all.end(), [&](const ContainerInfo& c) { return c.id == id; });
}

} // namespace

TEST_CASE("hold: a hold launch hands over the holder's pidfd and its cgroup leaf, and a process forked into them is pid 2 and sees the holder and itself alone") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = hold(client, "held");
    CHECK(ct.info().held);
    CHECK(ct.info().state == State::running);
    REQUIRE(ct.cgroup() >= 0);
    REQUIRE_FALSE(ct.info().cgroup.empty());
    CHECK(testing::cgroup_of(ct.pid()) == ct.info().cgroup); // the holder is in its leaf
    CHECK((::fcntl(ct.cgroup(), F_GETFD) & FD_CLOEXEC) != 0);

    Pipe out;
    Forked ps = fork_into(ct, {probe(), "ps"}, out.write.get());
    out.write.reset();
    CHECK(lines(read_all(out.read.get())) == std::vector<std::string>{"1", "2"});
    CHECK(ps.reap_now().shell_code() == 0);

    Pipe ready;
    Forked sleeper = fork_into(ct, {probe(), "sleep"}, ready.write.get());
    CHECK(read_line(ready.read.get()) == "ready");
    CHECK(testing::cgroup_of(sleeper.pid) == ct.info().cgroup);
    auto listed_info = MUST(client.list());
    REQUIRE(listed_info.size() == 1);
    CHECK(listed_info[0].held);
    CHECK(listed_info[0].cgroup == ct.info().cgroup);
    destroy_reaping(server, "held", {&sleeper}); // the namespace died with its holder
}

TEST_CASE("hold: once adopted, the main process's end ends the container and what it left behind, and Kill reaches the main process") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = hold(client, "adopted");
    Forked main = start_main(client, ct, {probe(), "daemon", "2"}); // leaves a daemon of 3 behind
    CHECK(testing::processes_in_pidns(ct.pidns_inode()).size() == 5); // holder, main, daemon and its 2

    MUST(client.kill("adopted", SIGTERM)); // the main process's, not the holder's (which drops it)
    CHECK(main.reap_now().signal == SIGTERM);
    const ExitStatus status = MUST(client.wait("adopted"));
    CHECK(status.signal == SIGKILL); // the holder's: the server killed it when the main process ended
    CHECK(testing::eventually([&] { return testing::processes_in_pidns(ct.pidns_inode()).empty(); }));
    auto info = MUST(client.destroy("adopted"));
    CHECK(info.exit->signal == SIGKILL);
    CHECK_FALSE(exists(ct.info().cgroup));
}

TEST_CASE("hold: a hold container not yet adopted goes with the connection that launched it, an adopted one outlives it") {
    require_root();
    ServerProcess server;
    Client watcher = server.connect();
    Forked orphan, kept;
    std::string leaf;
    {
        Client runtime = server.connect();
        Container unadopted = hold(runtime, "unadopted");
        Container adopted = hold(runtime, "kept");
        leaf = unadopted.info().cgroup;
        orphan = fork_into(unadopted, {probe(), "sleep"}, -1);
        kept = fork_into(adopted, {probe(), "sleep"}, -1);
        MUST(runtime.adopt("kept", kept.pidfd.get()));
    } // the runtime's connection closes
    CHECK(orphan.reap_now().signal == SIGKILL);
    CHECK(testing::eventually([&] { return !listed(watcher, "unadopted"); }));
    CHECK_FALSE(exists(leaf));
    CHECK(listed(watcher, "kept"));
    CHECK(alive(kept.pid));
    destroy_reaping(server, "kept", {&kept});
}

TEST_CASE("hold: a Launch sent ahead is answered when asked for, another request's reply read in between") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    LaunchOptions o = held();
    o.id = "ahead";
    const std::uint32_t launch = MUST(client.send_launch(o));
    // Asked after the Launch, answered after it: the client keeps the Launch's reply meanwhile.
    CHECK(listed(client, "ahead"));
    Container ct = MUST(client.receive_launch(launch, o));
    CHECK(ct.info().held);
    REQUIRE(ct.cgroup() >= 0);
    Pipe ready;
    Forked main = fork_into(ct, {probe(), "sleep"}, ready.write.get());
    ready.write.reset();
    CHECK(read_line(ready.read.get()) == "ready");
    MUST(client.adopt("ahead", main.pidfd.get()));
    // Adopted: a Kill is its main process's.
    MUST(client.kill("ahead", SIGTERM));
    CHECK(main.reap_now().signal == SIGTERM);
    CHECK(MUST(client.wait("ahead")).signal == SIGKILL);
    MUST(client.destroy("ahead"));
}

TEST_CASE("hold: destroy kills every process of a hold container and removes its leaf") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = hold(client, "doomed");
    Forked main = start_main(client, ct, {probe(), "daemon", "1"});
    destroy_reaping(server, "doomed", {&main});
    CHECK(testing::eventually([&] { return testing::processes_in_pidns(ct.pidns_inode()).empty(); }));
    CHECK_FALSE(exists(ct.info().cgroup));
    CHECK_FALSE(listed(client, "doomed"));
}

TEST_CASE("hold: --disallow-sharing-agent-pid-namespace refuses a top-level hold that would share the server's namespace") {
    require_root();
    ServerProcess server({"--disallow-sharing-agent-pid-namespace"});
    Client client = server.connect();
    auto shared = client.launch(held([](LaunchOptions& o) { o.share_pid_namespace = true; }));
    REQUIRE_FALSE(shared);
    CHECK(shared.error().code == Errc::not_permitted);
    CHECK_THAT(shared.error().message, Catch::Contains("--disallow-sharing-agent-pid-namespace"));
    UniqueFd servers(::open(("/proc/" + std::to_string(server.pid()) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(servers);
    auto joined = client.launch(held([&](LaunchOptions& o) { o.join_pidns_fd = servers.get(); }));
    REQUIRE_FALSE(joined);
    CHECK(joined.error().code == Errc::not_permitted);
    CHECK(MUST(client.list()).empty());
    Container own = hold(client); // its own namespace is allowed
    MUST(client.destroy(own.id()));
}

TEST_CASE("hold: a hold launch that joins a container's pid namespace by path is nested in it and shares it, as a pod") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container pause = hold(client, "pause");
    Forked pause_main = start_main(client, pause, {probe(), "sleep"});
    // ctr run --with-ns pid:/proc/PID/ns/pid, PID a process of the first container.
    UniqueFd ns(::open(("/proc/" + std::to_string(pause_main.pid) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(ns);
    Container app = hold(client, "app", [&](LaunchOptions& o) { o.join_pidns_fd = ns.get(); });
    CHECK(app.info().parent == "pause");
    CHECK(app.pidns_inode() == pause.pidns_inode());
    CHECK_THAT(app.info().cgroup, Catch::StartsWith(pause.info().cgroup + "/")); // its tree holds the pod's
    Pipe seen;
    Forked ps = fork_into(app, {probe(), "ps"}, seen.write.get());
    seen.write.reset();
    const auto pids = lines(read_all(seen.read.get()));
    CHECK(pids.size() == 4); // both holders, pause's main process and this one
    CHECK(ps.reap_now().shell_code() == 0);
    auto all = MUST(client.list());
    REQUIRE(all.size() == 2);
    destroy_reaping(server, "pause", {&pause_main}); // the pod: the nested one goes with it
    CHECK(MUST(client.list()).empty());
}

TEST_CASE("hold: a hold launch with a cgroup_name gets that leaf below the server's tree, parents made and removed") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = hold(client, "named", [](LaunchOptions& o) { o.cgroup_name = "pod-a/ctr-1"; });
    CHECK_THAT(ct.info().cgroup, Catch::EndsWith("/pod-a/ctr-1"));
    CHECK_THAT(ct.info().cgroup, Catch::StartsWith(testing::default_cgroup_root(server.pid()) + "/"));
    Forked main = start_main(client, ct, {probe(), "sleep"});
    CHECK(testing::cgroup_of(main.pid) == ct.info().cgroup);
    Container sibling = hold(client, "sibling", [](LaunchOptions& o) { o.cgroup_name = "pod-a/ctr-2"; });
    const std::string pod = ct.info().cgroup.substr(0, ct.info().cgroup.rfind('/'));
    auto taken = client.launch(held([](LaunchOptions& o) { o.cgroup_name = "pod-a/ctr-1"; }));
    REQUIRE_FALSE(taken); // a leaf is one container's
    CHECK_THAT(taken.error().message, Catch::Contains("File exists"));
    destroy_reaping(server, "named", {&main});
    CHECK_FALSE(exists(ct.info().cgroup));
    CHECK(exists(pod)); // still the sibling's parent
    MUST(client.destroy("sibling"));
    CHECK_FALSE(exists(pod));
}

TEST_CASE("hold: with the warm pool on, hold launches are served from it") {
    require_root();
    // A mount namespace of its own: other tests mounting meanwhile would discard its entries.
    ServerProcess server({"--warm-pool", "2"}, {"/usr/bin/unshare", "--mount", "--propagation", "private", "--"});
    Client client = server.connect();
    REQUIRE(testing::eventually([&] { return MUST(client.status()).pool_ready == 2; }));
    Container ct = hold(client);
    CHECK(MUST(client.status()).pool_served == 1);
    REQUIRE(ct.cgroup() >= 0);
    Pipe out;
    Forked ps = fork_into(ct, {probe(), "ps"}, out.write.get());
    out.write.reset();
    CHECK(lines(read_all(out.read.get())) == std::vector<std::string>{"1", "2"});
    CHECK(ps.reap_now().shell_code() == 0);
    MUST(client.destroy(ct.id()));

    // A leaf of its own name too: the holder stays in the entry's, its process is born in it.
    REQUIRE(testing::eventually([&] { return MUST(client.status()).pool_ready == 2; }));
    Container named = hold(client, "named", [](LaunchOptions& o) { o.cgroup_name = "pod/ctr"; });
    CHECK(MUST(client.status()).pool_served == 2);
    CHECK_THAT(named.info().cgroup, Catch::EndsWith("/pod/ctr"));
    Forked main = start_main(client, named, {probe(), "sleep"});
    CHECK(testing::cgroup_of(main.pid) == named.info().cgroup);
    const std::string holder_leaf = testing::cgroup_of(named.pid());
    destroy_reaping(server, "named", {&main});
    CHECK_FALSE(exists(named.info().cgroup));
    CHECK_FALSE(exists(holder_leaf));
}

TEST_CASE("hold: bad hold launches and adoptions are refused naming why, and the server goes on with nothing left behind") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    const std::string tree = testing::default_cgroup_root(server.pid());
    auto refused = [&](const std::function<void(LaunchOptions&)>& set, Errc code, const std::string& message) {
        auto r = client.launch(held(set));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == code);
        CHECK(r.error().message == message);
    };
    refused([](LaunchOptions& o) { o.argv = {"/bin/true"}; }, Errc::bad_request, "a hold launch runs no command of the server's: it takes no argv");
    refused([](LaunchOptions& o) { o.tty = true; }, Errc::bad_request, "a hold launch runs no command of the server's: it takes no tty");
    refused([](LaunchOptions& o) { o.uid = 1000; }, Errc::bad_request, "a hold launch runs no command of the server's: it takes no user");
    Pipe p;
    refused([&](LaunchOptions& o) { o.stdio = {-1, p.write.get(), -1}; }, Errc::bad_request,
            "a hold launch runs no command of the server's: it takes no stdio fds");
    refused([](LaunchOptions& o) { o.cgroup_name = "a/../b"; }, Errc::bad_request, "cgroup_name 'a/../b' has a '..' component");
    refused([](LaunchOptions& o) { o.cgroup_name = "/abs"; }, Errc::bad_request,
            "cgroup_name '/abs' is absolute: it names a path below the server's container tree");
    LaunchOptions named_plain;
    named_plain.argv = {"/bin/true"};
    named_plain.cgroup_name = "x";
    auto plain = client.launch(named_plain);
    REQUIRE_FALSE(plain);
    CHECK(plain.error().message == "cgroup_name names a hold launch's leaf; this launch is not one");

    Container ct = hold(client, "ct");
    auto unknown = client.adopt("nobody", ct.pidfd());
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().code == Errc::unknown_container);
    UniqueFd ours(sys::pidfd_open(::getpid(), 0));
    REQUIRE(ours);
    auto outside = client.adopt("ct", ours.get());
    REQUIRE_FALSE(outside);
    CHECK(outside.error().code == Errc::not_permitted);
    CHECK(outside.error().message == "process " + std::to_string(::getpid()) +
                                         " is not in container 'ct': neither in its pid namespace nor in its cgroup");
    auto holder = client.adopt("ct", ct.pidfd());
    REQUIRE_FALSE(holder);
    CHECK_THAT(holder.error().message, Catch::StartsWith("the pidfd Adopt carries is the holder's"));
    auto not_pidfd = client.adopt("ct", p.read.get());
    REQUIRE_FALSE(not_pidfd);
    CHECK(not_pidfd.error().message == "the fd Adopt carries is not a pidfd of a live process");

    Forked main = fork_into(ct, {probe(), "sleep"}, -1);
    MUST(client.adopt("ct", main.pidfd.get()));
    auto twice = client.adopt("ct", main.pidfd.get());
    REQUIRE_FALSE(twice);
    CHECK(twice.error().code == Errc::invalid_state);
    CHECK(twice.error().message == "container 'ct' has adopted its main process already");
    LaunchOptions true_command;
    true_command.argv = {"/bin/true"};
    auto served = client.launch(true_command);
    REQUIRE(served);
    auto not_held = client.adopt(served->id(), main.pidfd.get());
    REQUIRE_FALSE(not_held);
    CHECK(not_held.error().message == "container '" + served->id() + "' is not a hold container: its command is the server's");
    MUST(client.wait(served->id()));
    MUST(client.destroy(served->id()));
    destroy_reaping(server, "ct", {&main});
    CHECK(MUST(client.list()).empty());
    // No leaf left behind by the refused launches (a warm pool's own leaves aside).
    for (const std::string& leaf : sub_cgroup_names(tree)) CHECK_THAT(leaf, Catch::Matches("c[0-9]+"));
}

TEST_CASE("hold: nsfork list shows a hold container as held, with its cgroup leaf") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = hold(client, "shown");
    auto json = run_process({bin("nsfork"), "list", "--socket", server.socket(), "--json"});
    CHECK(json.exit_code == 0);
    CHECK_THAT(json.out, Catch::Contains(R"("id":"shown")") && Catch::Contains(R"("held":true)") &&
                             Catch::Contains(R"("cgroup":")" + ct.info().cgroup + "\""));
    auto text = run_process({bin("nsfork"), "list", "--socket", server.socket()});
    CHECK(text.exit_code == 0);
    const auto rows = lines(text.out);
    REQUIRE(rows.size() == 2);
    CHECK_THAT(rows[0], Catch::EndsWith("HELD CGROUP"));
    CHECK_THAT(rows[1], Catch::StartsWith("shown") && Catch::EndsWith(" yes  " + ct.info().cgroup));
    MUST(client.destroy("shown"));
}

TEST_CASE("hold: a hold container sharing the server's pid namespace adopts a process of its cgroup, and ends with it through the cgroup") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = hold(client, "shared", [](LaunchOptions& o) { o.share_pid_namespace = true; });
    CHECK(ct.pidns_inode() == procfs::pid_namespace_inode(server.pid()));
    // Without a namespace of its own, membership is the cgroup's: this process shares the
    // namespace, not the leaf.
    UniqueFd ours(sys::pidfd_open(::getpid(), 0));
    auto refused = client.adopt("shared", ours.get());
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message == "process " + std::to_string(::getpid()) + " is not in container 'shared': not in its cgroup " +
                                         ct.info().cgroup + " (the container shares its pid namespace)");
    Forked main = start_main(client, ct, {probe(), "daemon", "1"});
    Forked other = fork_into(ct, {probe(), "sleep"});
    CHECK(testing::eventually([&] { return testing::cgroup_procs(ct.info().cgroup).size() == 5; })); // the holder,
    // main, the daemon and its child, the other
    CHECK(::kill(main.pid, SIGKILL) == 0);
    CHECK(main.reap_now().signal == SIGKILL);
    CHECK(other.reap_now().signal == SIGKILL); // the cgroup was killed
    CHECK(MUST(client.wait("shared")).signal == SIGKILL);
    CHECK(testing::eventually([&] { return testing::cgroup_procs(ct.info().cgroup).empty(); }));
    MUST(client.destroy("shared"));
    CHECK_FALSE(exists(ct.info().cgroup));
}

namespace {

// A two-instruction cgroup device program: r0 = verdict; exit.
std::vector<std::uint8_t> device_program(int verdict) {
    const bpf_insn program[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = verdict},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
    };
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(program);
    return {bytes, bytes + sizeof program};
}

bpf_prog_info program_info(int fd) {
    bpf_prog_info info{};
    bpf_attr attr{};
    attr.info.bpf_fd = static_cast<std::uint32_t>(fd);
    attr.info.info_len = sizeof info;
    attr.info.info = reinterpret_cast<std::uintptr_t>(&info);
    REQUIRE(::syscall(SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof attr) == 0);
    return info;
}

// The ids of the device programs attached to the cgroup directory `path`.
std::vector<std::uint32_t> attached_device_programs(const std::string& path) {
    UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(dir);
    std::uint32_t ids[8] = {};
    bpf_attr attr{};
    attr.query.target_fd = static_cast<std::uint32_t>(dir.get());
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = reinterpret_cast<std::uintptr_t>(ids);
    attr.query.prog_cnt = 8;
    REQUIRE(::syscall(SYS_bpf, BPF_PROG_QUERY, &attr, sizeof attr) == 0);
    return {ids, ids + attr.query.prog_cnt};
}

// The namespace the link `path` (/proc/PID/ns/net, or an fd's) names: "net:[4026531840]".
std::string ns_link(const std::string& path) {
    char buf[64];
    const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    REQUIRE(n > 0);
    return std::string(buf, static_cast<std::size_t>(n));
}
std::string ns_link(int fd) { return ns_link("/proc/self/fd/" + std::to_string(fd)); }

// The namespaces among the server's open fds, by their links.
std::vector<std::string> namespaces_held(pid_t server) {
    std::vector<std::string> out;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(server) + "/fd")) {
        char buf[64];
        const ssize_t n = ::readlink(entry.path().c_str(), buf, sizeof buf);
        const std::string link = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
        if (link.starts_with("net:[") || link.starts_with("ipc:[") || link.starts_with("uts:[")) out.push_back(link);
    }
    return out;
}

// Waits until the server has made every namespace hold launches asked for. Slowly: each Hello
// is a request, and the server makes them only after 2 ms without one.
bool namespaces_made(Client& client) {
    return testing::eventually([&] { return MUST(client.status()).namespaces_pending == 0; }, std::chrono::seconds(20),
                               std::chrono::milliseconds(25));
}

} // namespace

TEST_CASE("hold: a device program is loaded once for the same instructions and handed over to attach, and a refused one is an error naming why") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    const std::string tree = testing::default_cgroup_root(server.pid());
    Container allow = hold(client, "allow", [](LaunchOptions& o) { o.device_program = device_program(1); });
    REQUIRE(allow.device_program() >= 0);
    CHECK((::fcntl(allow.device_program(), F_GETFD) & FD_CLOEXEC) != 0);
    const bpf_prog_info first = program_info(allow.device_program());
    CHECK(first.type == BPF_PROG_TYPE_CGROUP_DEVICE);
    Container again = hold(client, "again", [](LaunchOptions& o) { o.device_program = device_program(1); });
    CHECK(program_info(again.device_program()).id == first.id); // the same bytes: loaded once
    Container deny = hold(client, "deny", [](LaunchOptions& o) { o.device_program = device_program(0); });
    CHECK(program_info(deny.device_program()).id != first.id);
    Container none = hold(client, "none");
    CHECK(none.device_program() == -1);
    // The first one loaded keeps the kernel's device-program key on, attached to an empty
    // cgroup of the server's own.
    CHECK(attached_device_programs(tree + "/c0") == std::vector<std::uint32_t>{first.id});
    CHECK(testing::cgroup_procs(tree + "/c0").empty());

    // What it hands over works: attached to the leaf, it decides for the processes born there.
    REQUIRE(attach_device_program(allow.cgroup(), allow.device_program()));
    REQUIRE(attach_device_program(deny.cgroup(), deny.device_program()));
    Forked opens = fork_into(allow, {"/bin/sh", "-c", ": < /dev/null"});
    CHECK(opens.reap_now().shell_code() == 0);
    Forked refused = fork_into(deny, {"/bin/sh", "-c", ": < /dev/null"});
    CHECK(refused.reap_now().shell_code() != 0);

    auto refuse = [&](const std::function<void(LaunchOptions&)>& set, const std::string& message) {
        auto r = client.launch(held(set));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::bad_request);
        CHECK_THAT(r.error().message, Catch::StartsWith(message));
    };
    // r0 never set: the verifier's reason comes back.
    refuse([](LaunchOptions& o) {
        o.device_program = device_program(1);
        o.device_program.erase(o.device_program.begin(), o.device_program.begin() + 8);
    }, "the kernel refused the device program: R0 !read_ok");
    refuse([](LaunchOptions& o) { o.device_program = std::vector<std::uint8_t>(7, 0); },
           "device_program has 7 bytes: not a whole number of 8-byte instructions");
    refuse([](LaunchOptions& o) { o.device_program = std::vector<std::uint8_t>(8 * 4097, 0); },
           "device_program has 4097 instructions, more than 4096");
    refuse([](LaunchOptions& o) { o.new_namespaces = CLONE_NEWNET | CLONE_NEWPID; },
           "new_namespaces 0x60000000 has flags other than CLONE_NEWNET, CLONE_NEWIPC and CLONE_NEWUTS: 0x20000000");
    LaunchOptions plain;
    plain.argv = {"/bin/true"};
    plain.device_program = device_program(1);
    auto not_held = client.launch(plain);
    REQUIRE_FALSE(not_held);
    CHECK(not_held.error().message == "device_program is a hold launch's; this launch is not one");
    plain.device_program.clear();
    plain.new_namespaces = CLONE_NEWNET;
    not_held = client.launch(plain);
    REQUIRE_FALSE(not_held);
    CHECK(not_held.error().message == "new_namespaces is a hold launch's; this launch is not one");

    for (const char* id : {"allow", "again", "deny", "none"}) MUST(client.destroy(id));
    CHECK(MUST(client.list()).empty());
    for (const std::string& leaf : sub_cgroup_names(tree)) CHECK_THAT(leaf, Catch::Matches("c[0-9]+"));
}

TEST_CASE("hold: network, IPC and UTS namespaces asked for are made ahead while the server is idle, each handed out once") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    const std::string own = "/proc/" + std::to_string(server.pid()) + "/ns/";
    const std::vector<std::string> before{ns_link(own + "net"), ns_link(own + "ipc"), ns_link(own + "uts")};
    constexpr std::uint32_t kAll = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    // The first launch asking finds none: its process makes them, as it would without the server.
    Container first = hold(client, "first", [](LaunchOptions& o) { o.new_namespaces = kAll; });
    CHECK(first.namespaces().empty());
    CHECK(MUST(client.status()).namespaces_pending == 2 * 3);
    // None while a hold container is between its launch and its Adopt: its runtime is setting
    // up its process, and making them would slow that.
    ::usleep(100'000);
    CHECK(MUST(client.status()).namespaces_pending == 2 * 3);
    MUST(client.destroy("first"));
    REQUIRE(namespaces_made(client));
    const std::vector<std::string> spares = namespaces_held(server.pid());
    CHECK(spares.size() == 2 * 3 + 3); // two of each, and its own three to return to

    Container ct = hold(client, "ct", [](LaunchOptions& o) { o.new_namespaces = kAll; });
    REQUIRE(ct.namespaces().size() == 3);
    const int types[] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS};
    std::vector<std::string> handed;
    for (std::size_t i = 0; i < 3; ++i) {
        const int fd = ct.namespaces()[i].get();
        CHECK(::ioctl(fd, NS_GET_NSTYPE) == types[i]);
        CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        handed.push_back(ns_link(fd));
        CHECK(std::find(spares.begin(), spares.end(), handed.back()) != spares.end()); // one of the spares
        CHECK(handed.back() != before[i]);                                             // not the server's
    }
    // Handed out, the server no longer holds them (it closes its copies right after the reply);
    // the next launch gets others.
    CHECK(testing::eventually([&] {
        const std::vector<std::string> left = namespaces_held(server.pid());
        return std::none_of(handed.begin(), handed.end(),
                            [&](const std::string& link) { return std::find(left.begin(), left.end(), link) != left.end(); });
    }));
    Container net_only = hold(client, "net", [](LaunchOptions& o) { o.new_namespaces = CLONE_NEWNET; });
    REQUIRE(net_only.namespaces().size() == 1);
    CHECK(::ioctl(net_only.namespaces()[0].get(), NS_GET_NSTYPE) == CLONE_NEWNET);
    CHECK(ns_link(net_only.namespaces()[0].get()) != handed[0]);

    // A process of the container joins them, as nsfork-oci's does instead of unsharing.
    Pipe out;
    {
        const int net = ct.namespaces()[0].get();
        UniqueFd own_net(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
        REQUIRE(::setns(net, CLONE_NEWNET) == 0);
        Forked in = fork_into(ct, {"/bin/sh", "-c", "readlink /proc/self/ns/net"}, out.write.get());
        REQUIRE(::setns(own_net.get(), CLONE_NEWNET) == 0);
        out.write.reset();
        CHECK(in.reap_now().shell_code() == 0);
    }
    CHECK(read_all(out.read.get()) == handed[0] + "\n");

    // The server's own namespaces never changed, and it keeps no more than its spares.
    CHECK(std::vector<std::string>{ns_link(own + "net"), ns_link(own + "ipc"), ns_link(own + "uts")} == before);
    for (const char* id : {"ct", "net"}) MUST(client.destroy(id));
    REQUIRE(namespaces_made(client));
    CHECK(namespaces_held(server.pid()).size() == 2 * 3 + 3);
}
