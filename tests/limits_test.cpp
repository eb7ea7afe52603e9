// Limits that keep one container from hurting the others: a bounded fork bomb, and pidfds that
// never reach a recycled pid.
#include "harness.hpp"
#include "base/pidfd.hpp"
#include "base/syscalls.hpp"

#include <catch2/catch.hpp>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>

using namespace nsfork;
using namespace nsfork::test;

namespace {

bool kernel_has_per_namespace_pid_max() {
    utsname u{};
    int major = 0, minor = 0;
    return ::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
           (major > 6 || (major == 6 && minor >= 14));
}

} // namespace

TEST_CASE("limits: a fork bomb stops at its own pid_max, harms no one, and destroy still completes") {
    require_root();
    if (!kernel_has_per_namespace_pid_max()) {
        WARN("skipped: a pid_max per pid namespace needs Linux 6.14");
        return;
    }
    ServerProcess server;
    Client client = server.connect();
    Pipe out;
    LaunchOptions bomb;
    bomb.id = "bomb";
    bomb.argv = {probe(), "forkbomb"};
    bomb.pid_max = 400;
    bomb.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(bomb);
    REQUIRE(ct);
    out.write.reset();
    const std::string made = read_line(out.read.get());
    REQUIRE(read_line(out.read.get()) == "ready");
    INFO(made);
    CHECK(made.find("(EAGAIN)") != std::string::npos);
    // Pids 1 (shim) and 2 (probe) are taken; the rest of 1..399 is all the bomb got.
    const auto inside = processes_in_pidns(ct->pidns_inode());
    CHECK(inside.size() <= 399);
    CHECK(inside.size() >= 300);
    // The server and other containers are unaffected.
    CHECK(client.hello());
    CHECK(run(client, {probe(), "exit", "8"}).status.code == 8);
    auto gone = client.destroy("bomb");
    REQUIRE(gone);
    CHECK(processes_in_pidns(ct->pidns_inode()).empty());
}

TEST_CASE("limits: pid_max is refused for a shared namespace, and a bad value names the stage") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    LaunchOptions o;
    o.argv = {probe(), "exit", "0"};
    o.pid_max = 400;
    o.share_pid_namespace = true;
    auto shared = client.launch(o);
    REQUIRE_FALSE(shared);
    CHECK(shared.error().message == "pid_max bounds a pid namespace of the container's own; this one shares one");
    if (kernel_has_per_namespace_pid_max()) {
        o.share_pid_namespace = false;
        o.pid_max = 5; // below the kernel's minimum
        auto low = client.launch(o);
        REQUIRE_FALSE(low);
        CHECK(low.error().message == "container setup failed while setting the pid namespace's pid_max: Invalid argument");
    }
}

TEST_CASE("limits: a pidfd never reaches a process that got its recycled pid") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Pipe out;
    LaunchOptions o;
    o.argv = {probe(), "sleep"};
    o.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    const pid_t old_pid = ct->pid();
    REQUIRE(client.destroy(ct->id())); // reaped: its pid is free again
    // Recycle that exact pid at once (clone3 set_tid), rather than hoping the kernel wraps.
    pid_t tid = old_pid;
    int new_pidfd = -1;
    sys::CloneArgs args;
    args.flags = sys::kClonePidfd;
    args.pidfd = reinterpret_cast<std::uintptr_t>(&new_pidfd);
    args.exit_signal = SIGCHLD;
    args.set_tid = reinterpret_cast<std::uintptr_t>(&tid);
    args.set_tid_size = 1;
    const pid_t child = sys::clone3(&args);
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    REQUIRE(child == old_pid);
    UniqueFd recycled(new_pidfd);
    // The old pidfd refers to the dead container's init, not to the new process.
    auto sent = signal_pidfd(ct->pidfd(), SIGKILL);
    CHECK_FALSE(sent);
    CHECK(sent.error().sys_errno == ESRCH);
    CHECK(alive(child));
    REQUIRE(signal_pidfd(recycled.get(), SIGKILL));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WTERMSIG(status) == SIGKILL);
}
