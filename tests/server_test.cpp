// The server, as a real `nsfork serve` process, through the client library.
#include "harness.hpp"
#include "base/procfs.hpp"
#include "base/pidfd.hpp"
#include "base/syscalls.hpp"
#include "protocol/framing.hpp"
#include "protocol/messages.hpp"

#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdlib>

#include <chrono>
#include <thread>

using namespace nsfork;
using namespace nsfork::test;

TEST_CASE("server: ps inside shows only the container, the shim as pid 1") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    auto r = run(client, {"ps", "-e", "-o", "pid=,comm="});
    CHECK(r.status == ExitStatus{0, 0});
    auto rows = lines(r.out);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].find("1 nsfork-shim") != std::string::npos);
    CHECK(rows[1].find("2 ps") != std::string::npos);
}

TEST_CASE("server: the container's pid namespace differs from the host's and is reported") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    auto r = run(client, {probe(), "pidns"});
    CHECK(std::stoull(r.out) != procfs::pid_namespace_inode(0));
    CHECK(std::stoull(r.out) == r.info.pidns);
}

TEST_CASE("server: a process inside cannot signal a host process") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    // The server's own pid, and ours: neither exists from inside.
    auto r = run(client, {probe(), "can-signal", std::to_string(server.pid())});
    CHECK(r.out == "ESRCH\n");
    auto mine = run(client, {probe(), "can-signal", std::to_string(::getpid())});
    CHECK(mine.out == "ESRCH\n");
}

TEST_CASE("server: the pidfd handed to the client refers to the container's init") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Pipe out;
    LaunchOptions o;
    o.argv = {probe(), "sleep"};
    o.env = {kPath};
    o.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    CHECK(read_line(out.read.get()) == "ready");
    CHECK(pid_of_pidfd(ct->pidfd()) == ct->pid());
    CHECK(procfs::pid_namespace_inode(ct->pid()) == ct->pidns_inode());
    // The init is a child of the server: the client cannot wait for it, only poll and signal.
    siginfo_t info{};
    CHECK(sys::waitid_pidfd(ct->pidfd(), &info, WEXITED | WNOHANG) == -1);
    CHECK(errno == ECHILD);
    // Signalling through the pidfd reaches the init, which forwards to the command.
    REQUIRE(signal_pidfd(ct->pidfd(), SIGTERM));
    pollfd p{ct->pidfd(), POLLIN, 0};
    CHECK(::poll(&p, 1, 10000) == 1);
    auto status = client.wait(ct->id());
    REQUIRE(status);
    CHECK(status->shell_code() == 128 + SIGTERM); // the shim exits 128+N for its command

    REQUIRE(client.destroy(ct->id()));
}

TEST_CASE("server: destroy leaves no process of the namespace alive, daemons included") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Pipe out;
    LaunchOptions o;
    o.argv = {probe(), "daemon", "100"};
    o.env = {kPath};
    o.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    // shim + probe + setsid daemon + its 100 children
    CHECK(processes_in_pidns(ct->pidns_inode()).size() == 103);
    auto gone = client.destroy(ct->id());
    REQUIRE(gone);
    CHECK(gone->state == State::destroyed);
    CHECK(gone->exit == ExitStatus{0, SIGKILL});
    CHECK(processes_in_pidns(ct->pidns_inode()).empty());
    // The pidfd we hold now reports the init gone.
    pollfd p{ct->pidfd(), POLLIN, 0};
    CHECK(::poll(&p, 1, 0) == 1);
    // Destroyed containers are forgotten.
    auto again = client.wait(ct->id());
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::unknown_container);
}

TEST_CASE("server: the server's own environment never reaches a container") {
    require_root();
    ::setenv("NSFORK_SERVER_SECRET", "leak", 1); // the server process inherits this
    ServerProcess server;
    ::unsetenv("NSFORK_SERVER_SECRET");
    Client client = server.connect();
    auto r = run(client, {probe(), "env"}, {"ONLY=this", kPath});
    CHECK(lines(r.out) == std::vector<std::string>{"ONLY=this", kPath});
    auto empty = run(client, {probe(), "env"}, {"X=1"});
    CHECK(lines(empty.out) == std::vector<std::string>{"X=1"});
}

TEST_CASE("server: wait returns the same status every time until destroyed") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    LaunchOptions o;
    o.id = "job-1";
    o.argv = {probe(), "exit", "42"};
    auto ct = client.launch(o);
    REQUIRE(ct);
    CHECK(ct->id() == "job-1");
    for (int i = 0; i < 3; ++i) {
        auto status = client.wait("job-1");
        REQUIRE(status);
        CHECK(*status == ExitStatus{42, 0});
    }
    auto listed = client.list();
    REQUIRE(listed);
    REQUIRE(listed->size() == 1);
    CHECK((*listed)[0].state == State::exited);
    CHECK((*listed)[0].exit == ExitStatus{42, 0});
    // Destroy of an ended container returns its status.
    auto gone = client.destroy("job-1");
    REQUIRE(gone);
    CHECK(gone->exit == ExitStatus{42, 0});
    CHECK(client.list()->empty());
}

TEST_CASE("server: kill forwards the signal through the shim to the command") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Pipe out;
    LaunchOptions o;
    o.argv = {probe(), "trap", std::to_string(SIGUSR1)};
    o.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    REQUIRE(client.kill(ct->id(), SIGUSR1));
    CHECK(client.wait(ct->id())->code == 100 + SIGUSR1);
    auto late = client.kill(ct->id(), SIGUSR1);
    REQUIRE_FALSE(late);
    CHECK(late.error().code == Errc::invalid_state);
    REQUIRE(client.destroy(ct->id()));
}

TEST_CASE("server: states move from running to exited, and list shows them") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Pipe out;
    LaunchOptions o;
    o.id = "sleeper";
    o.argv = {probe(), "sleep"};
    o.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    CHECK(ct->info().state == State::running);
    auto listed = client.list();
    REQUIRE(listed);
    REQUIRE(listed->size() == 1);
    CHECK((*listed)[0].id == "sleeper");
    CHECK((*listed)[0].state == State::running);
    CHECK((*listed)[0].pid == ct->pid());
    CHECK_FALSE((*listed)[0].exit);
    REQUIRE(client.kill("sleeper", SIGKILL));
    CHECK(client.wait("sleeper")->shell_code() == 128 + SIGKILL);
    CHECK(client.list()->at(0).state == State::exited);
    REQUIRE(client.destroy("sleeper"));
}

TEST_CASE("server: bad requests get an error naming the cause, and the server goes on") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    auto launch_error = [&](LaunchOptions o) {
        auto ct = client.launch(o);
        REQUIRE_FALSE(ct);
        return ct.error();
    };
    LaunchOptions ok;
    ok.argv = {probe(), "exit", "0"};

    SECTION("empty argv") {
        LaunchOptions o;
        CHECK(launch_error(o).message == "argv is empty: no command to run");
    }
    SECTION("command not found") {
        LaunchOptions o;
        o.argv = {"no-such-command"};
        o.env = {kPath};
        Error e = launch_error(o);
        CHECK(e.code == Errc::exec_failed);
        CHECK(e.sys_errno == ENOENT);
        CHECK(e.message == "cannot execute 'no-such-command': No such file or directory");
        CHECK(client.list()->empty()); // a failed launch leaves nothing behind
    }
    SECTION("missing cwd") {
        LaunchOptions o = ok;
        o.cwd = "/does/not/exist";
        CHECK(launch_error(o).message == "cannot change to working directory '/does/not/exist': No such file or directory");
    }
    SECTION("relative cwd") {
        LaunchOptions o = ok;
        o.cwd = "tmp";
        CHECK(launch_error(o).message == "cwd 'tmp' is not an absolute path");
    }
    SECTION("environment entry without '='") {
        LaunchOptions o = ok;
        o.env = {"GOOD=1", "BAD"};
        CHECK(launch_error(o).message == "environment entry 1 ('BAD') is not of the form NAME=VALUE");
    }
    SECTION("invalid ids") {
        for (const std::string& id : std::vector<std::string>{"a/b", "..", std::string("a\0b", 3), std::string(4096, 'x')}) {
            LaunchOptions o = ok;
            o.id = id;
            CHECK(launch_error(o).code == Errc::invalid_id);
        }
    }
    SECTION("duplicate id") {
        LaunchOptions o = ok;
        o.id = "twice";
        REQUIRE(client.launch(o));
        Error e = launch_error(o);
        CHECK(e.code == Errc::duplicate_id);
        CHECK(e.message == "a container with id 'twice' already exists");
        REQUIRE(client.wait("twice"));
        REQUIRE(client.destroy("twice"));
    }
    SECTION("unknown ids for wait, kill and destroy") {
        CHECK(client.wait("nope").error().message == "no container with id 'nope'");
        CHECK(client.kill("nope", SIGTERM).error().code == Errc::unknown_container);
        CHECK(client.destroy("nope").error().code == Errc::unknown_container);
    }
    SECTION("signal out of range") {
        LaunchOptions o = ok;
        o.id = "sig";
        o.argv = {probe(), "sleep"};
        REQUIRE(client.launch(o));
        CHECK(client.kill("sig", 0).error().message == "signal 0 is out of range 1..64");
        CHECK(client.kill("sig", 65).error().code == Errc::bad_request);
        REQUIRE(client.destroy("sig"));
    }
    // Whatever was refused, the same connection still launches.
    auto r = run(client, {probe(), "exit", "3"});
    CHECK(r.status.code == 3);
}

TEST_CASE("server: the socket is 0600 and other uids are refused") {
    require_root();
    ServerProcess server;
    struct stat st;
    REQUIRE(::stat(server.socket().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    // A child that becomes uid 65534 and connects (the directory and socket opened to it).
    REQUIRE(::chmod(server.socket().c_str(), 0666) == 0);
    REQUIRE(::chmod(server.socket().substr(0, server.socket().rfind('/')).c_str(), 0755) == 0);
    Pipe verdict;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        if (::setgid(65534) < 0 || ::setuid(65534) < 0) ::_exit(2);
        auto c = Client::connect(server.socket());
        if (!c) ::_exit(3);
        auto pid = c->hello();
        const std::string msg = pid ? "accepted" : pid.error().message;
        [[maybe_unused]] auto n = ::write(verdict.write.get(), msg.data(), msg.size());
        ::_exit(0);
    }
    verdict.write.reset();
    const std::string msg = read_all(verdict.read.get());
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(msg == "uid 65534 may not use this nsfork server");
    // Root is still served.
    CHECK(server.connect().hello());
}

TEST_CASE("server: SIGTERM to the server kills its containers before it exits") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Pipe out;
    LaunchOptions o;
    o.argv = {probe(), "daemon", "10"};
    o.stdio = {-1, out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    CHECK(server.stop() == ExitStatus{0, 0});
    CHECK(processes_in_pidns(ct->pidns_inode()).empty());
    CHECK_FALSE(client.list()); // the connection is gone
}

// The server keeps a reply's fds (here: the status table's, in every HelloReply) for a client
// that does not read, by duplicating them. When it has no fd left for that, the reply becomes an
// error on the same seq and the connection carries on; it used to queue fd -1, and the send of
// that reply failed (EBADF) and dropped the connection with every reply after it.
TEST_CASE("server: a reply whose fds cannot be kept for a slow client becomes an error, and the connection lives on") {
    require_root();
    using namespace std::chrono_literals;
    constexpr std::size_t kLimit = 64, kFree = 4;
    ServerProcess server({}, {"/usr/bin/prlimit", "--nofile=64:64"});
    REQUIRE(server.connect().hello()); // settled: its warm pool (if any) is up
    std::this_thread::sleep_for(200ms);
    // Idle connections take the server's fds until only kFree are left.
    std::vector<testing::RawConnection> idle;
    const std::size_t used = testing::fd_count(server.pid());
    REQUIRE(used + kFree + 1 < kLimit);
    for (std::size_t i = used; i + kFree + 1 < kLimit; ++i) idle.push_back(raw_connection(server.socket()));
    testing::RawConnection slow = raw_connection(server.socket());
    testing::eventually([&] { return testing::fd_count(server.pid()) >= kLimit - kFree; });
    REQUIRE(testing::fd_count(server.pid()) == kLimit - kFree);

    // Far more Hellos than its socket holds, none read: the server queues the rest.
    constexpr std::uint32_t kHellos = 1500;
    for (std::uint32_t seq = 1; seq <= kHellos;) {
        const int err = slow.send(testing::hello(seq), {}, MSG_DONTWAIT);
        if (err == EAGAIN) {
            std::this_thread::sleep_for(1ms);
            continue;
        }
        REQUIRE(err == 0);
        ++seq;
    }
    std::this_thread::sleep_for(300ms); // the server reads and answers them all

    // Every request is answered, in order: a HelloReply with its fd, or an error without one.
    std::size_t hellos = 0, errors = 0;
    for (std::uint32_t seq = 1; seq <= kHellos; ++seq) {
        auto got = slow.receive(10s);
        REQUIRE(got);
        const wire::ReplyMessage* m = verify_reply(got->bytes);
        REQUIRE(m);
        REQUIRE(m->seq() == seq);
        if (m->reply_as_HelloReply()) {
            CHECK(got->fds.size() == 1);
            ++hellos;
        } else {
            REQUIRE(m->reply_as_Error());
            const Error e = read_error(*m->reply_as_Error());
            CHECK(e.code == Errc::unavailable);
            CHECK(e.sys_errno == EMFILE);
            CHECK(got->fds.empty());
            ++errors;
        }
    }
    CHECK(hellos > 0);
    CHECK(errors > 0);
    // Once read, fds are free again, and the same connection is answered in full.
    REQUIRE(slow.send(testing::hello(kHellos + 1)) == 0);
    auto last = slow.receive(10s);
    REQUIRE(last);
    const wire::ReplyMessage* m = verify_reply(last->bytes);
    REQUIRE(m);
    CHECK(m->seq() == kHellos + 1);
    CHECK(m->reply_as_HelloReply());
}

// ---- one request for a whole run (Launch{destroy_on_exit}) ----

TEST_CASE("server: a Launch with destroy_on_exit is answered again once its container ended and is gone, nested ones with it") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Client other = server.connect();
    Pipe in;
    LaunchOptions o = command("whole-run", {"/bin/sh", "-c", "read line; exit 3"});
    o.stdio = {in.read.get(), -1, -1};
    o.destroy_on_exit = true;
    auto ct = client.launch(o);
    REQUIRE(ct);
    in.read.reset();
    CHECK(ct->end_seq() != 0);
    LaunchOptions inner = command("whole-run-inner", {probe(), "sleep"});
    inner.parent = "whole-run";
    auto nested = client.launch(inner);
    REQUIRE(nested);
    // Until it ends, an ordinary container.
    CHECK(MUST(other.list()).size() == 2);
    in.write.reset(); // the shell reads EOF and exits 3
    auto gone = client.ended(*ct);
    REQUIRE(gone);
    CHECK(gone->id == "whole-run");
    CHECK(gone->exit == ExitStatus{3, 0});
    CHECK(gone->state == State::destroyed);
    // Forgotten, with what was nested in it; their processes and cgroup leaves are gone.
    CHECK(MUST(other.list()).empty());
    CHECK_FALSE(alive(nested->pid()));
    if (!ct->info().cgroup.empty()) {
        CHECK(::access(ct->info().cgroup.c_str(), F_OK) != 0);
        CHECK(::access(nested->info().cgroup.c_str(), F_OK) != 0);
    }
    // Without it, ended() waits and destroys.
    auto plain = client.launch(command("", {probe(), "exit", "7"}));
    REQUIRE(plain);
    CHECK(plain->end_seq() == 0);
    auto plain_gone = client.ended(*plain);
    REQUIRE(plain_gone);
    CHECK(plain_gone->exit == ExitStatus{7, 0});
    CHECK(MUST(other.list()).empty());
}

TEST_CASE("server: on the wire, destroy_on_exit gets a LaunchReply that says so, one DestroyReply on the same seq, then nothing, and a failed launch only its error") {
    require_root();
    ServerProcess server;
    testing::RawConnection conn = raw_connection(server.socket());
    auto next = [&](std::chrono::milliseconds limit = std::chrono::seconds(10)) { return conn.receive(limit); };

    testing::LaunchFields f;
    f.id = "raw-run";
    f.argv = std::vector<std::string>{probe(), "exit", "5"};
    f.destroy_on_exit = true;
    REQUIRE(conn.send(testing::launch_request(1, f)) == 0);
    auto launched = next();
    REQUIRE(launched);
    const wire::ReplyMessage* m = verify_reply(launched->bytes);
    REQUIRE(m);
    CHECK(m->seq() == 1);
    REQUIRE(m->reply_as_LaunchReply());
    CHECK(m->reply_as_LaunchReply()->destroy_on_exit());
    CHECK(launched->fds.size() == 1);
    auto gone = next();
    REQUIRE(gone);
    m = verify_reply(gone->bytes);
    REQUIRE(m);
    CHECK(m->seq() == 1);
    REQUIRE(m->reply_as_DestroyReply());
    const ContainerInfo info = read_info(*m->reply_as_DestroyReply()->container());
    CHECK(info.id == "raw-run");
    CHECK(info.exit == ExitStatus{5, 0});
    CHECK(info.state == State::destroyed);
    CHECK(next(std::chrono::milliseconds(300)).error().code == Errc::unavailable);

    f.id = "raw-fail";
    f.argv = std::vector<std::string>{"/nonexistent/command"};
    REQUIRE(conn.send(testing::launch_request(2, f)) == 0);
    auto failed = next();
    REQUIRE(failed);
    m = verify_reply(failed->bytes);
    REQUIRE(m);
    CHECK(m->seq() == 2);
    REQUIRE(m->reply_as_Error());
    CHECK(read_error(*m->reply_as_Error()).code == Errc::exec_failed);
    CHECK(next(std::chrono::milliseconds(300)).error().code == Errc::unavailable);

    // Without the field, the reply promises nothing.
    f.id = "raw-plain";
    f.argv = std::vector<std::string>{"/bin/true"};
    f.destroy_on_exit = false;
    REQUIRE(conn.send(testing::launch_request(3, f)) == 0);
    auto plain = next();
    REQUIRE(plain);
    m = verify_reply(plain->bytes);
    REQUIRE(m);
    REQUIRE(m->reply_as_LaunchReply());
    CHECK_FALSE(m->reply_as_LaunchReply()->destroy_on_exit());
    REQUIRE(conn.send(testing::destroy_request(4, "raw-plain")) == 0);
    auto destroyed = next();
    REQUIRE(destroyed);
    m = verify_reply(destroyed->bytes);
    REQUIRE(m);
    CHECK(m->seq() == 4);
    CHECK(m->reply_as_DestroyReply());
}

TEST_CASE("server: a destroy_on_exit container destroyed by another client answers both, and one whose connection closed is still destroyed at its end") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Client other = server.connect();
    LaunchOptions o = command("run-destroyed", {probe(), "sleep"});
    o.destroy_on_exit = true;
    auto ct = client.launch(o);
    REQUIRE(ct);
    auto by_other = other.destroy("run-destroyed");
    REQUIRE(by_other);
    CHECK(by_other->exit == ExitStatus{0, SIGKILL});
    auto gone = client.ended(*ct);
    REQUIRE(gone);
    CHECK(gone->exit == ExitStatus{0, SIGKILL});
    CHECK(gone->state == State::destroyed);

    Pipe in;
    std::string leaf;
    {
        Client leaving = server.connect();
        LaunchOptions l = command("run-orphaned", {"/bin/sh", "-c", "read line"});
        l.stdio = {in.read.get(), -1, -1};
        l.destroy_on_exit = true;
        auto launched = leaving.launch(l);
        REQUIRE(launched);
        leaf = launched->info().cgroup;
        in.read.reset();
    } // the connection closes; the container, not tied to it, runs on
    CHECK(MUST(other.list()).size() == 1);
    in.write.reset();
    CHECK(testing::eventually([&] { return MUST(other.list()).empty(); }));
    if (!leaf.empty()) CHECK(::access(leaf.c_str(), F_OK) != 0);
}
