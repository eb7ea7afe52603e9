// The command's process through a real server and the client library (issue 13): a
// pseudo-terminal of the container's own whose master the client gets, Kill with `all` (runc
// kill --all), kill_group, the blocked and ignored signals, the user and groups, extra fds. The
// suite runs twice, with the warm pool and without: both launch paths carry every setting.
#include "harness.hpp"
#include "base/limits.hpp"
#include "base/procfs.hpp"
#include "server/signal_all.hpp"

#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fstream>

using namespace nsfork;
using namespace nsfork::test;

namespace {

// Bit N-1 of a signal set: signal N.
constexpr std::uint64_t bit(int sig) { return 1ULL << (sig - 1); }

// What `fd` (a terminal's master) gives until `needle` came, or until it ends (EIO once the
// command's side closed) or nothing came for 10 s: the test then fails on what it got.
std::string read_until(int fd, const std::string& needle) {
    std::string got;
    while (got.find(needle) == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) break;
        char buf[512];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
}

// The next line of `fd`, without its newline; what came so far if nothing more came for 10 s or
// the pipe ended (so that a process that never answers fails the test instead of hanging it).
std::string next_line(int fd) {
    std::string line;
    for (char c;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1 || ::read(fd, &c, 1) != 1 || c == '\n') return line;
        line += c;
    }
}

// A command's options with the test PATH.
LaunchOptions command(std::vector<std::string> argv) {
    LaunchOptions o;
    o.argv = std::move(argv);
    o.env = {kPath};
    return o;
}

// `o` launched with its stdout and stderr on a pipe; returns the container and the pipe's read
// end (the write end closed here: it reads EOF once every process of the container is gone).
std::pair<Container, UniqueFd> launch_piped(Client& client, LaunchOptions o) {
    Pipe out;
    o.stdio = {-1, out.write.get(), out.write.get()};
    auto ct = client.launch(o);
    if (!ct) FAIL(ct.error().message);
    return {std::move(*ct), std::move(out.read)};
}

// The output of `o` launched with stdout and stderr on a pipe, after it exited with `code`.
std::string output_of(Client& client, LaunchOptions o, int code = 0) {
    auto [ct, out] = launch_piped(client, std::move(o));
    std::string text = read_all(out.get());
    auto status = client.wait(ct.id());
    REQUIRE(status);
    CHECK(*status == ExitStatus{code, 0});
    REQUIRE(client.destroy(ct.id()));
    return text;
}

// A tty launch of `argv`; the container comes with its terminal's master.
Container launch_tty(Client& client, std::vector<std::string> argv) {
    LaunchOptions o = command(std::move(argv));
    o.tty = true;
    auto ct = client.launch(o);
    if (!ct) FAIL(ct.error().message);
    REQUIRE(ct->terminal() >= 0);
    return std::move(*ct);
}

// Writes `text` to the terminal's master: the command's input.
void type(int master, const std::string& text) {
    REQUIRE(::write(master, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
}

// Waits for and destroys `ct`, which must exit with `code`.
void finish(Client& client, const Container& ct, int code = 0) {
    auto status = client.wait(ct.id());
    REQUIRE(status);
    CHECK(*status == ExitStatus{code, 0});
    REQUIRE(client.destroy(ct.id()));
}

} // namespace

// ---- a terminal of the container's own ----

TEST_CASE("pty server: a tty launch's command talks to the client through the master it got") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = launch_tty(client, {"sh", "-c", "tty; read line; echo got:$line"});
    CHECK(read_until(ct.terminal(), "/dev/pts/0\r\n").find("/dev/pts/0\r\n") != std::string::npos);
    type(ct.terminal(), "hello\n");
    CHECK(read_until(ct.terminal(), "got:hello\r\n").find("got:hello\r\n") != std::string::npos);
    finish(client, ct);
    // The server keeps no copy of the master: once the command is gone, ours reads its end.
    char c;
    CHECK(::read(ct.terminal(), &c, 1) <= 0);
}

TEST_CASE("pty server: the terminal is the command's controlling terminal: /dev/tty opens") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = launch_tty(client, {"sh", "-c", "exec 3<>/dev/tty && echo tty-ok"});
    CHECK(read_until(ct.terminal(), "tty-ok").find("tty-ok") != std::string::npos);
    finish(client, ct);
}

TEST_CASE("pty server: a window size set on the master is the command's") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = launch_tty(client, {"sh", "-c", "read go; stty size"});
    const winsize size{37, 111, 0, 0};
    REQUIRE(::ioctl(ct.terminal(), TIOCSWINSZ, &size) == 0);
    type(ct.terminal(), "go\n");
    CHECK(read_until(ct.terminal(), "37 111\r\n").find("37 111\r\n") != std::string::npos);
    finish(client, ct);
}

TEST_CASE("pty server: a command on its terminal leads its own process group, in the foreground") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    // Fields 5 and 8 of /proc/PID/stat: the process group and the terminal's foreground group.
    Container ct = launch_tty(client, {"sh", "-c", "read pid comm state ppid pgrp sid tty tpgid rest < /proc/$$/stat; "
                                                   "echo $$:$pgrp:$tpgid:end"});
    const std::string out = read_until(ct.terminal(), ":end");
    CHECK(out.find("2:2:2:end") != std::string::npos);
    finish(client, ct);
}

// ---- Kill with all ----

// A shell that says `tag` on each SIGUSR1 and never exits by itself (a command whose exit would
// end the namespace, and with it the processes whose answer the test waits for); `start` runs
// once its trap is set, before it says "TAG-ready". It waits on a child that ignores SIGUSR1
// (a sleep killed by it would make the shell say so).
std::vector<std::string> catcher(const std::string& tag, const std::string& start = ":") {
    return {"sh", "-c", "trap 'echo " + tag + "' USR1\n" + start + "\necho " + tag + "-ready\n"
                        "(trap '' USR1; exec sleep 1000) & while :; do wait; done"};
}

// The next `n` lines of `fd`, sorted: processes answer in any order.
std::vector<std::string> next_lines(int fd, int n) {
    std::vector<std::string> got;
    for (int i = 0; i < n; ++i) got.push_back(next_line(fd));
    std::sort(got.begin(), got.end());
    return got;
}

using Lines = std::vector<std::string>;

// Destroys `ct`, which must still have been running.
void destroy_running(Client& client, const Container& ct) {
    auto gone = client.destroy(ct.id());
    REQUIRE(gone);
    CHECK(gone->exit == ExitStatus{0, SIGKILL});
}

TEST_CASE("pty server: kill all reaches a process the command double-forked away") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    // The daemon is the subshell's child, reparented to pid 1 once the subshell exits at once.
    auto [ct, out] = launch_piped(client, command(catcher("main", "(setsid " + probe() + " trap 10 &)")));
    CHECK(next_lines(out.get(), 2) == Lines{"main-ready", "ready"});
    REQUIRE(client.kill(ct.id(), SIGUSR1, true));
    CHECK(next_lines(out.get(), 2) == Lines{"caught 10", "main"});
    destroy_running(client, ct);
}

TEST_CASE("pty server: kill all reaches a process in a sub-cgroup the container made") {
    require_root();
    const std::string mount = procfs::cgroup2_mount();
    ServerProcess server;
    Client client = server.connect();
    const std::string move = "cg=" + mount + "$(sed -n 's/^0:://p' /proc/self/cgroup)/sub; mkdir $cg; "
                             "sh -c \"echo \\$\\$ > $cg/cgroup.procs && exec " + probe() + " trap 10\" &";
    auto [ct, out] = launch_piped(client, command(catcher("main", move)));
    CHECK(next_lines(out.get(), 2) == Lines{"main-ready", "ready"});
    const std::string sub = mount + procfs::cgroup2_path(ct.pid()) + "/sub";
    CHECK(testing::cgroup_procs(sub).size() == 1);
    REQUIRE(client.kill(ct.id(), SIGUSR1, true));
    CHECK(next_lines(out.get(), 2) == Lines{"caught 10", "main"});
    // The sub-cgroup is the test's to remove (once its process exited) however destroy treats it.
    CHECK(testing::eventually([&] { return ::rmdir(sub.c_str()) == 0 || errno == ENOENT; }));
    destroy_running(client, ct);
}

TEST_CASE("pty server: kill all reaches the containers nested in it") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    auto [outer, outer_out] = launch_piped(client, command(catcher("outer")));
    LaunchOptions nested = command(catcher("inner"));
    nested.parent = outer.id();
    auto [inner, inner_out] = launch_piped(client, nested);
    CHECK(next_line(outer_out.get()) == "outer-ready");
    CHECK(next_line(inner_out.get()) == "inner-ready");
    REQUIRE(client.kill(outer.id(), SIGUSR1, true));
    CHECK(next_line(outer_out.get()) == "outer");
    CHECK(next_line(inner_out.get()) == "inner");
    destroy_running(client, outer);
}

TEST_CASE("pty server: kill all with SIGKILL ends the container and what it left behind") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    auto [ct, out] = launch_piped(client, command({probe(), "daemon", "3"}));
    CHECK(next_line(out.get()) == "ready");
    REQUIRE(client.kill(ct.id(), SIGKILL, true));
    auto status = client.wait(ct.id());
    REQUIRE(status);
    CHECK(*status == ExitStatus{0, SIGKILL});
    CHECK(read_all(out.get()).empty()); // EOF: no process holds the pipe any more
    REQUIRE(client.destroy(ct.id()));
}

TEST_CASE("pty server: kill all of a container that ended is refused as a kill is") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Container ct = launch_with(client, "done", {"/bin/true"});
    REQUIRE(client.wait("done"));
    auto killed = client.kill("done", SIGTERM, true);
    REQUIRE_FALSE(killed);
    CHECK(killed.error().code == Errc::invalid_state);
    CHECK(killed.error().message == "container 'done' has already ended");
    REQUIRE(client.destroy("done"));
}

// What a server without cgroups does (rootless without delegation): the pid namespaces at and
// below the container's, found in /proc.
TEST_CASE("pty server: signalling by pid namespace reaches the namespace and those nested below it") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    auto [outer, outer_out] = launch_piped(client, command(catcher("outer", "(setsid " + probe() + " trap 10 &)")));
    LaunchOptions nested = command(catcher("inner"));
    nested.parent = outer.id();
    auto [inner, inner_out] = launch_piped(client, nested);
    auto [neighbour, neighbour_out] = launch_piped(client, command(catcher("neighbour")));
    CHECK(next_lines(outer_out.get(), 2) == Lines{"outer-ready", "ready"});
    CHECK(next_line(inner_out.get()) == "inner-ready");
    CHECK(next_line(neighbour_out.get()) == "neighbour-ready");
    const pid_t inits[] = {outer.pid(), inner.pid()};
    REQUIRE(signal_pid_namespace_tree(outer.pidns_inode(), SIGUSR1, inits));
    CHECK(next_lines(outer_out.get(), 2) == Lines{"caught 10", "outer"});
    CHECK(next_line(inner_out.get()) == "inner");
    // The inits were spared: alive, not stopped by a signal they do not handle.
    CHECK(testing::alive(outer.pid()));
    CHECK(testing::alive(inner.pid()));
    destroy_running(client, outer);
    // A container outside the namespace got nothing.
    destroy_running(client, neighbour);
    CHECK(read_all(neighbour_out.get()).empty());
}

// ---- signals and the process group ----

TEST_CASE("pty server: with kill_group a kill reaches the command's whole process group") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    // A non-interactive shell's background jobs stay in its group; it waits for them.
    const std::vector<std::string> argv = {"sh", "-c", "trap 'echo sh' USR1; " + probe() + " trap 10 & " + probe() +
                                                           " trap 10 & while ! wait; do :; done"};
    SECTION("with kill_group: the shell and both jobs") {
        LaunchOptions o = command(argv);
        o.kill_group = true;
        auto [ct, out] = launch_piped(client, o);
        CHECK(next_lines(out.get(), 2) == Lines{"ready", "ready"});
        REQUIRE(client.kill(ct.id(), SIGUSR1));
        CHECK(next_lines(out.get(), 3) == Lines{"caught 10", "caught 10", "sh"});
        finish(client, ct);
    }
    SECTION("without: the shell only") {
        auto [ct, out] = launch_piped(client, command(argv));
        CHECK(next_lines(out.get(), 2) == Lines{"ready", "ready"});
        REQUIRE(client.kill(ct.id(), SIGUSR1));
        CHECK(next_line(out.get()) == "sh");
        destroy_running(client, ct);
        CHECK(read_all(out.get()).empty());
    }
}

TEST_CASE("pty server: the command starts with the blocked and ignored signals the Launch gave") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    LaunchOptions o = command({"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"});
    o.signal_mask = bit(SIGHUP) | bit(SIGUSR2);
    o.ignored_signals = bit(SIGPIPE) | bit(SIGINT);
    CHECK(output_of(client, o) == "SigBlk:\t0000000000000801\nSigIgn:\t0000000000001002\n");
    // None given, none there: the server's own never reach a command.
    CHECK(output_of(client, command({"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"})) ==
          "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST_CASE("pty server: a command too large for a plan gets its settings all the same") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    LaunchOptions o = command({"grep", "^SigBlk", "/proc/self/status"});
    o.env.push_back("BIG=" + std::string(kMaxPlanBytes, 'x')); // argv and env go through the shim's exec
    o.signal_mask = bit(SIGUSR2);
    CHECK(output_of(client, o) == "SigBlk:\t0000000000000800\n");
}

// ---- user and groups ----

TEST_CASE("pty server: the command runs as the user, group and supplementary groups the Launch gave") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    const std::vector<std::string> argv = {"grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status"};
    LaunchOptions o = command(argv);
    o.uid = 1234;
    o.gid = 5678;
    o.groups = std::vector<gid_t>{42, 43};
    CHECK(output_of(client, o) == "Uid:\t1234\t1234\t1234\t1234\nGid:\t5678\t5678\t5678\t5678\nGroups:\t42 43 \n");
    // A user without groups has none: the server's are never kept across a switch.
    LaunchOptions alone = command(argv);
    alone.uid = 1234;
    CHECK(output_of(client, alone) == "Uid:\t1234\t1234\t1234\t1234\nGid:\t0\t0\t0\t0\nGroups:\t \n");
}

// ---- extra fds ----

TEST_CASE("pty server: extra fds are the command's 3, 4, ... and LISTEN_PID names the command") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    Pipe three, four;
    LaunchOptions o = command({"sh", "-c", "echo three >&3; echo four >&4; echo $LISTEN_PID:$$; "
                                           "ls /proc/self/fd | sort -n | tr '\\n' ' '"});
    o.env.push_back("LISTEN_FDS=2");
    o.env.push_back("LISTEN_PID=1");
    o.extra_fds = {three.write.get(), four.write.get()};
    const std::string out = output_of(client, o);
    three.write.reset();
    four.write.reset();
    CHECK(read_all(three.read.get()) == "three\n");
    CHECK(read_all(four.read.get()) == "four\n");
    auto rows = lines(out);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0] == "2:2"); // the command is pid 2, after the shim
    CHECK(rows[1] == "0 1 2 3 4 5 "); // 5: ls's own directory fd
}
