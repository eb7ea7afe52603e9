// launcher/spawn: the child plan, clone3 into new namespaces, the exec report — without a server.
#include "harness.hpp"
#include "base/procfs.hpp"
#include "base/pidfd.hpp"
#include "launcher/clone.hpp"
#include "launcher/spawn.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sched.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <cstddef>

using namespace nsfork;
using namespace nsfork::test;

namespace {

LaunchSpec probe_spec(std::vector<std::string> args, int out_fd) {
    LaunchSpec spec;
    spec.init_path = NSFORK_SHIM_PATH;
    spec.argv = {probe()};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = {kPath};
    spec.stdio = {-1, out_fd, out_fd};
    return spec;
}

// Spawns, checks the exec report, collects stdout and the exit status.
std::pair<std::string, ExitStatus> spawn_and_collect(const LaunchSpec& spec, Pipe& out) {
    auto s = spawn(spec);
    REQUIRE(s);
    out.write.reset();
    auto report = read_exec_report(s->report.get(), spec.argv[0], spec.cwd);
    CHECK(report);
    std::string text = read_all(out.read.get());
    auto status = reap(s->pidfd.get());
    REQUIRE(status);
    return {text, *status};
}

} // namespace

TEST_CASE("spawn: the init is pid 1 of a new pid namespace and the command its child") {
    require_root();
    Pipe out;
    auto spec = probe_spec({"ppid"}, out.write.get());
    auto [text, status] = spawn_and_collect(spec, out);
    CHECK(status == ExitStatus{0, 0});
    CHECK(text == "1\n"); // the command's parent is the shim, pid 1
}

TEST_CASE("spawn: the pid namespace differs from the caller's") {
    require_root();
    Pipe out;
    auto spec = probe_spec({"pidns"}, out.write.get());
    auto [text, status] = spawn_and_collect(spec, out);
    CHECK(std::stoull(text) != procfs::pid_namespace_inode(0));
}

TEST_CASE("spawn: /proc inside shows only the container") {
    require_root();
    Pipe out;
    auto spec = probe_spec({"ps"}, out.write.get());
    auto [text, status] = spawn_and_collect(spec, out);
    CHECK(lines(text) == std::vector<std::string>{"1", "2"}); // the shim and the probe
}

TEST_CASE("spawn: the container holds only fds 0, 1 and 2") {
    require_root();
    // An fd the caller holds without close-on-exec must not reach the container either.
    UniqueFd leaky(::open("/dev/null", O_RDONLY));
    REQUIRE(leaky);
    Pipe out;
    auto spec = probe_spec({"fds"}, out.write.get());
    auto [text, status] = spawn_and_collect(spec, out);
    CHECK(lines(text) == std::vector<std::string>{"0", "1", "2"});
}

TEST_CASE("spawn: the container may run on every CPU we may, though it is cloned on ours, and we are unpinned after") {
    require_root();
    cpu_set_t ours;
    REQUIRE(::sched_getaffinity(0, sizeof ours, &ours) == 0);
    auto allowed = [](const std::string& status) {
        const auto at = status.find("Cpus_allowed_list:");
        return at == std::string::npos ? std::string() : status.substr(at, status.find('\n', at) - at);
    };
    const std::string expected = allowed(read_all(UniqueFd(::open("/proc/self/status", O_RDONLY | O_CLOEXEC)).get()));
    REQUIRE_FALSE(expected.empty());
    Pipe out;
    LaunchSpec spec;
    spec.init_path = NSFORK_SHIM_PATH;
    spec.argv = {"/bin/cat", "/proc/self/status"};
    spec.env = {kPath};
    spec.stdio = {-1, out.write.get(), -1};
    auto [text, status] = spawn_and_collect(spec, out);
    CHECK(status == ExitStatus{0, 0});
    CHECK(allowed(text) == expected);
    cpu_set_t after;
    REQUIRE(::sched_getaffinity(0, sizeof after, &after) == 0);
    CHECK(CPU_EQUAL(&after, &ours));
}

TEST_CASE("spawn: environment, argv and cwd are exactly the plan's") {
    require_root();
    Pipe out;
    auto spec = probe_spec({"env"}, out.write.get());
    spec.env = {"A=1", "B=two words", kPath};
    auto [text, status] = spawn_and_collect(spec, out);
    CHECK(lines(text) == std::vector<std::string>{"A=1", "B=two words", kPath});

    Pipe out2;
    auto spec2 = probe_spec({"cwd"}, out2.write.get());
    spec2.cwd = "/tmp";
    CHECK(spawn_and_collect(spec2, out2).first == "/tmp\n");
}

TEST_CASE("spawn: failures are reported with their stage and errno") {
    require_root();
    SECTION("command not found") {
        Pipe out;
        auto spec = probe_spec({}, out.write.get());
        spec.argv = {"/nonexistent/cmd"};
        auto s = spawn(spec);
        REQUIRE(s);
        out.write.reset();
        auto report = read_exec_report(s->report.get(), spec.argv[0], spec.cwd);
        REQUIRE_FALSE(report);
        CHECK(report.error().code == Errc::exec_failed);
        CHECK(report.error().sys_errno == ENOENT);
        CHECK(report.error().message == "cannot execute '/nonexistent/cmd': No such file or directory");
        CHECK(reap(s->pidfd.get())->code == 127);
    }
    SECTION("missing working directory") {
        Pipe out;
        auto spec = probe_spec({"pid"}, out.write.get());
        spec.cwd = "/nonexistent-dir";
        auto s = spawn(spec);
        REQUIRE(s);
        auto report = read_exec_report(s->report.get(), spec.argv[0], spec.cwd);
        REQUIRE_FALSE(report);
        CHECK(report.error().code == Errc::launch_failed);
        CHECK(report.error().message == "cannot change to working directory '/nonexistent-dir': No such file or directory");
        CHECK(reap(s->pidfd.get())->code == 125);
    }
    SECTION("init cannot be executed") {
        auto spec = probe_spec({"pid"}, -1);
        spec.init_path = "/nonexistent/nsfork-shim";
        auto s = spawn(spec);
        REQUIRE(s);
        auto report = read_exec_report(s->report.get(), spec.argv[0], spec.cwd);
        REQUIRE_FALSE(report);
        CHECK(report.error().code == Errc::launch_failed);
        CHECK(report.error().message.find("executing nsfork-shim") != std::string::npos);
        CHECK(reap(s->pidfd.get())->code == 125);
    }
    SECTION("empty argv is refused before cloning") {
        auto spec = probe_spec({}, -1);
        spec.argv.clear();
        auto s = spawn(spec);
        REQUIRE_FALSE(s);
        CHECK(s.error().code == Errc::bad_request);
    }
}

TEST_CASE("spawn: the pidfd refers to the init, and reports its exit") {
    require_root();
    Pipe out;
    auto spec = probe_spec({"exit", "7"}, out.write.get());
    auto s = spawn(spec);
    REQUIRE(s);
    CHECK(pid_of_pidfd(s->pidfd.get()) == s->pid);
    out.write.reset();
    REQUIRE(read_exec_report(s->report.get(), spec.argv[0], spec.cwd));
    CHECK(reap(s->pidfd.get())->code == 7);
    CHECK(pid_of_pidfd(s->pidfd.get()) == -1); // reaped
}

TEST_CASE("spawn: into a given pid namespace, joined or nested below it, the init is still our child") {
    require_root();
    // The launcher never enters the namespace itself (a rootless server could not come back):
    // intermediates do, and are reaped before spawn() returns.
    Pipe out;
    auto spec = probe_spec({"sleep"}, out.write.get());
    auto target = spawn(spec);
    REQUIRE(target);
    REQUIRE(read_exec_report(target->report.get(), spec.argv[0], spec.cwd));
    REQUIRE(read_line(out.read.get()) == "ready");
    const std::string ns_path = "/proc/" + std::to_string(target->pid) + "/ns/pid";
    UniqueFd target_ns(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(target_ns);
    struct stat target_st;
    REQUIRE(::fstat(target_ns.get(), &target_st) == 0);

    auto joined_spec = probe_spec({"sleep"}, out.write.get());
    joined_spec.pidns_fd = target_ns.get();
    joined_spec.new_pid_namespace = false;
    auto joined = spawn(joined_spec);
    REQUIRE(joined);
    REQUIRE(read_exec_report(joined->report.get(), joined_spec.argv[0], joined_spec.cwd));
    CHECK(procfs::pid_namespace_inode(joined->pid) == target_st.st_ino);

    auto nested_spec = probe_spec({"sleep"}, out.write.get());
    nested_spec.pidns_fd = target_ns.get();
    auto nested = spawn(nested_spec);
    REQUIRE(nested);
    REQUIRE(read_exec_report(nested->report.get(), nested_spec.argv[0], nested_spec.cwd));
    UniqueFd nested_ns(::open(("/proc/" + std::to_string(nested->pid) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(nested_ns);
    UniqueFd parent(::ioctl(nested_ns.get(), NS_GET_PARENT));
    struct stat parent_st;
    REQUIRE(::fstat(parent.get(), &parent_st) == 0);
    CHECK(parent_st.st_ino == target_st.st_ino);

    // Our children are the three inits: the intermediates are gone, reaped.
    auto children = testing::children_of(::getpid());
    std::sort(children.begin(), children.end());
    std::vector<pid_t> inits{target->pid, joined->pid, nested->pid};
    std::sort(inits.begin(), inits.end());
    CHECK(children == inits);
    // Our own pid namespace for children is still ours.
    struct stat own, for_children;
    REQUIRE(::stat("/proc/self/ns/pid", &own) == 0);
    REQUIRE(::stat("/proc/self/ns/pid_for_children", &for_children) == 0);
    CHECK(own.st_ino == for_children.st_ino);

    for (auto* s : {&*nested, &*joined, &*target}) {
        (void)signal_pidfd(s->pidfd.get(), SIGKILL);
        (void)reap(s->pidfd.get());
    }
}

TEST_CASE("spawn: a nested plan launch with an empty argv whose intermediate fails reports the failure") {
    require_root();
    // Nested: a new pid namespace below a given one (ours). The cgroup fd is a directory that is
    // no cgroup, so the intermediate's clone3 (CLONE_INTO_CGROUP) fails and it sends no pidfd.
    // The command comes later in a plan, so argv is empty: naming it must not read argv[0]
    // (it did, out of bounds: a crash under UBSan).
    UniqueFd own_pidns(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    REQUIRE(own_pidns);
    UniqueFd not_a_cgroup(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(not_a_cgroup);
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd ours(sv[0]), theirs(sv[1]);
    auto spec = probe_spec({}, -1);
    spec.argv.clear();
    spec.pidns_fd = own_pidns.get();
    spec.cgroup_fd = not_a_cgroup.get();
    spec.plan_fd = theirs.get();
    auto s = spawn(spec);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == Errc::launch_failed);
    CHECK(s.error().message.find("joining the pid namespace") != std::string::npos);
    CHECK(s.error().sys_errno != 0);
}

TEST_CASE("spawn: a command's name in messages is argv[0], or the init's path before a plan names one") {
    LaunchSpec spec;
    spec.init_path = "/usr/libexec/nsfork-shim";
    CHECK(command_name(spec) == "/usr/libexec/nsfork-shim");
    spec.argv = {"sh", "-c", "true"};
    CHECK(command_name(spec) == "sh");
}

namespace {
volatile int g_written_by_child = 0; // spawn_process's child writes here, in our memory
} // namespace

TEST_CASE("spawn: spawn_process runs the child in our memory on its own stack, and returns once it has exec'd") {
    // No namespaces: this is about the clone itself, and needs no privilege.
    g_written_by_child = 0;
    alignas(16) std::byte stack[16 * 1024];
    int pidfd = -1;
    const char* argv[] = {"/bin/sh", "-c", "exit 7", nullptr};
    timespec start{}, end{};
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    const pid_t pid = spawn_process({.flags = CloneFlags::clear_sighand(), .pidfd = &pidfd}, stack, [&] {
        const timespec pause{0, 100'000'000}; // we sleep meanwhile: the clone returns after the exec
        ::nanosleep(&pause, nullptr);
        g_written_by_child = 42;
        ::execv(argv[0], const_cast<char* const*>(argv));
        ::_exit(99);
    });
    ::clock_gettime(CLOCK_MONOTONIC, &end);
    REQUIRE(pid > 0);
    UniqueFd owned(pidfd);
    CHECK(pid_of_pidfd(pidfd) == pid);
    const auto waited_ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1'000'000;
#if NSFORK_SHARED_MEMORY_CLONE
    CHECK(waited_ms >= 100);         // we slept until its exec
    CHECK(g_written_by_child == 42); // the same memory, not a copy
#else
    (void)waited_ms;                // this build clones fork-like (sanitizers, not x86-64): no wait,
    CHECK(g_written_by_child == 0); // and a copy
#endif
    auto status = reap(pidfd);
    REQUIRE(status);
    CHECK(*status == ExitStatus{7, 0});

    // A clone3 that fails returns -1 with its errno (a cgroup fd that is not a directory).
    const UniqueFd not_a_cgroup(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    errno = 0;
    CHECK(spawn_process({.flags = CloneFlags::clear_sighand(), .cgroup_fd = not_a_cgroup.get()}, stack,
                        [] { ::_exit(0); }) == -1);
    CHECK(errno != 0);
}
