// The command's process (issue 13): its process group and terminal, signals, user, extra fds and
// pid 1's working directory — real launches through spawn() and a plan, as every launch goes.
#include "harness.hpp"
#include "base/pidfd.hpp"
#include "base/unix_socket.hpp"
#include "launcher/job_control.hpp"
#include "launcher/plan.hpp"
#include "launcher/spawn.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <linux/capability.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

using namespace nsfork;
using namespace nsfork::test;

namespace {

LaunchSpec command_spec(std::vector<std::string> argv, int out_fd) {
    LaunchSpec spec;
    spec.init_path = NSFORK_SHIM_PATH;
    spec.argv = std::move(argv);
    spec.env = {kPath};
    spec.stdio = {-1, out_fd, out_fd};
    return spec;
}

LaunchSpec probe_spec(std::vector<std::string> args, int out_fd) {
    args.insert(args.begin(), probe());
    return command_spec(std::move(args), out_fd);
}

// A launch through a plan whose command was exec'd; killed and reaped on destruction unless
// waited for.
class Running {
public:
    explicit Running(const LaunchSpec& spec, UniqueFd* terminal = nullptr) {
        auto launched = spawn_planned(spec);
        REQUIRE(launched);
        launch_ = std::move(*launched);
        auto outcome = read_launch_outcome(launch_, spec, terminal);
        if (!outcome) {
            kill();
            FAIL("launch failed: " << outcome.error().message);
        }
    }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;
    ~Running() { kill(); }

    pid_t shim() const { return launch_.spawned.pid; }
    int pidfd() const { return launch_.spawned.pidfd.get(); }
    int channel() const { return launch_.channel.get(); }

    // The command, as seen from here (the shim's one child).
    pid_t command() const {
        std::vector<pid_t> children;
        REQUIRE(testing::eventually([&] { return (children = testing::children_of(shim())).size() == 1; }));
        return children[0];
    }

    ExitStatus wait() {
        auto status = reap(launch_.spawned.pidfd.get());
        REQUIRE(status);
        launch_.spawned.pidfd.reset();
        return *status;
    }

private:
    void kill() {
        if (!launch_.spawned.pidfd) return;
        (void)signal_pidfd(launch_.spawned.pidfd.get(), SIGKILL);
        (void)reap(launch_.spawned.pidfd.get());
        launch_.spawned.pidfd.reset();
    }

    PlannedLaunch launch_;
};

// The value of "key:" in a /proc status text (or the probe's "self.key:" lines), trimmed.
std::string field(const std::string& text, const std::string& key) {
    for (const auto& line : lines(text)) {
        if (line.rfind(key + ":", 0) != 0) continue;
        const auto start = line.find_first_not_of(" \t", key.size() + 1);
        const auto end = line.find_last_not_of(" \t");
        return start == std::string::npos ? "" : line.substr(start, end - start + 1);
    }
    return "?";
}

// Runs `argv` through a plan launch with `change` applied to its spec; its output and status.
std::pair<std::string, ExitStatus> output_of(LaunchSpec spec) {
    Pipe out;
    spec.stdio = {-1, out.write.get(), out.write.get()};
    Running run(spec);
    out.write.reset();
    std::string text = read_all(out.read.get());
    return {text, run.wait()};
}

std::string link_target(const std::string& path) {
    char buf[4096];
    const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
}

char process_state(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

std::uint64_t bit(int sig) { return std::uint64_t{1} << (sig - 1); }

std::string hex16(std::uint64_t mask) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(mask));
    return buf;
}

// Runs `body` in a forked child of this (single-threaded) test process and returns what it
// wrote to the fd it is given: for what must happen in a process of its own (another session,
// fewer capabilities). The child never returns into the test runner.
std::string in_child(const std::function<void(int out)>& body) {
    Pipe out;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        out.read.reset();
        try {
            body(out.write.get());
        } catch (...) {
            ::_exit(2);
        }
        ::_exit(0);
    }
    out.write.reset();
    std::string text = read_all(out.read.get());
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(status == 0);
    return text;
}

void say(int fd, const std::string& text) {
    [[maybe_unused]] ssize_t n = ::write(fd, text.data(), text.size());
}

// Restores this process's signal mask and SIGALRM disposition on scope exit.
class CallerSignals {
public:
    CallerSignals() {
        sigset_t blocked;
        ::sigemptyset(&blocked);
        ::sigaddset(&blocked, SIGPROF);
        ::sigprocmask(SIG_BLOCK, &blocked, &saved_mask_);
        saved_alarm_ = std::signal(SIGALRM, SIG_IGN);
    }
    ~CallerSignals() {
        std::signal(SIGALRM, saved_alarm_);
        ::sigprocmask(SIG_SETMASK, &saved_mask_, nullptr);
    }

private:
    sigset_t saved_mask_;
    void (*saved_alarm_)(int);
};

} // namespace

TEST_CASE("command: it leads a process group of its own, apart from pid 1's") {
    require_root();
    SECTION("in a session of its own (every server launch)") {
        auto [text, status] = output_of(probe_spec({"view"}, -1));
        CHECK(status == ExitStatus{0, 0});
        CHECK(field(text, "pid") == "2");
        CHECK(field(text, "pgrp") == "2"); // was 1: the shim's group
        CHECK(field(text, "sid") == "1");
    }
    SECTION("in the caller's session (nsfork run on a terminal)") {
        auto spec = probe_spec({"sleep"}, -1);
        spec.new_session = false;
        Pipe out;
        spec.stdio = {-1, out.write.get(), out.write.get()};
        Running run(spec);
        CHECK(read_line(out.read.get()) == "ready");
        const pid_t command = run.command();
        CHECK(::getsid(run.shim()) == ::getsid(0));
        CHECK(::getsid(command) == ::getsid(0));
        CHECK(::getpgid(command) == command);
        // The init's group is its own too: the caller's group signals reach the launcher only.
        CHECK(::getpgid(run.shim()) == run.shim());
    }
}

TEST_CASE("command: a signal the command sends its own group is delivered once") {
    require_root();
    auto [text, status] = output_of(probe_spec({"group-signal"}, -1));
    CHECK(text == "usr1 1\n"); // 2 when pid 1 shared the group and forwarded it again
    CHECK(status == ExitStatus{0, 0});
}

TEST_CASE("command: it starts with the plan's blocked and ignored signals, never the launcher's") {
    require_root();
    const CallerSignals caller; // SIGPROF blocked and SIGALRM ignored here
    auto spec = command_spec({"cat", "/proc/self/status"}, -1);
    spec.signal_mask = bit(SIGHUP) | bit(SIGUSR2) | bit(SIGKILL) | bit(SIGRTMIN + 2);
    spec.ignored_signals = bit(SIGINT) | bit(SIGQUIT) | bit(SIGSTOP) | bit(SIGRTMAX);
    auto [text, status] = output_of(spec);
    CHECK(status == ExitStatus{0, 0});
    // SIGKILL and SIGSTOP cannot be blocked or ignored: their bits are dropped.
    CHECK(field(text, "SigBlk") == hex16(bit(SIGHUP) | bit(SIGUSR2) | bit(SIGRTMIN + 2)));
    CHECK(field(text, "SigIgn") == hex16(bit(SIGINT) | bit(SIGQUIT) | bit(SIGRTMAX)));

    auto plain = command_spec({"cat", "/proc/self/status"}, -1);
    auto [defaults, plain_status] = output_of(plain);
    CHECK(field(defaults, "SigBlk") == hex16(0));
    CHECK(field(defaults, "SigIgn") == hex16(0));
}

TEST_CASE("command: with kill_group, signals to the container reach the command's whole group") {
    require_root();
    auto spec = probe_spec({"group-trap", std::to_string(SIGUSR1)}, -1);
    spec.kill_group = true;
    Pipe out;
    spec.stdio = {-1, out.write.get(), out.write.get()};
    Running run(spec);
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    REQUIRE(signal_pidfd(run.pidfd(), SIGUSR1));
    auto caught = lines(read_all(out.read.get()));
    std::sort(caught.begin(), caught.end());
    CHECK(caught == std::vector<std::string>{"child caught 10", "parent caught 10"});
    CHECK(run.wait() == ExitStatus{0, 0});
}

TEST_CASE("command: pid 1 leaves the command's working directory once it runs") {
    require_root();
    auto spec = probe_spec({"sleep"}, -1);
    spec.cwd = "/tmp";
    Pipe out;
    spec.stdio = {-1, out.write.get(), out.write.get()};
    Running run(spec);
    REQUIRE(read_line(out.read.get()) == "ready");
    CHECK(link_target("/proc/" + std::to_string(run.shim()) + "/cwd") == "/"); // was /tmp
    CHECK(link_target("/proc/" + std::to_string(run.command()) + "/cwd") == "/tmp");
}

TEST_CASE("command: it runs as the plan's user, group and supplementary groups, and pid 1 stays root") {
    require_root();
    SECTION("all three") {
        auto spec = command_spec({"cat", "/proc/self/status"}, -1);
        spec.uid = 1000;
        spec.gid = 1001;
        spec.groups = std::vector<gid_t>{10, 20};
        auto [text, status] = output_of(spec);
        CHECK(status == ExitStatus{0, 0});
        CHECK(field(text, "Uid") == "1000\t1000\t1000\t1000");
        CHECK(field(text, "Gid") == "1001\t1001\t1001\t1001");
        CHECK(field(text, "Groups") == "10 20");
    }
    SECTION("a user without groups keeps none of the launcher's (as runc)") {
        const std::string text = in_child([](int out) {
            const gid_t mine[] = {4, 24};
            if (::setgroups(2, mine) < 0) return say(out, "setgroups failed");
            auto spec = command_spec({"cat", "/proc/self/status"}, -1);
            spec.uid = 1000;
            say(out, output_of(spec).first);
        });
        CHECK(field(text, "Uid") == "1000\t1000\t1000\t1000");
        CHECK(field(text, "Gid") == "0\t0\t0\t0");
        CHECK(field(text, "Groups") == "");
    }
    SECTION("pid 1 is not switched") {
        auto spec = probe_spec({"sleep"}, -1);
        spec.uid = 1000;
        spec.gid = 1000;
        Pipe out;
        spec.stdio = {-1, out.write.get(), out.write.get()};
        Running run(spec);
        REQUIRE(read_line(out.read.get()) == "ready");
        std::ifstream shim_status("/proc/" + std::to_string(run.shim()) + "/status");
        const std::string text((std::istreambuf_iterator<char>(shim_status)), std::istreambuf_iterator<char>());
        CHECK(field(text, "Uid") == "0\t0\t0\t0");
    }
}

TEST_CASE("command: a user switch that fails is named in the error and exits 125") {
    require_root();
    // Without CAP_SETUID in its bounding set, the launcher's shim (root) cannot become 1000.
    const std::string told = in_child([](int out) {
        if (::prctl(PR_CAPBSET_DROP, CAP_SETUID, 0, 0, 0) < 0) return say(out, "prctl failed");
        auto spec = command_spec({"true"}, -1);
        spec.uid = 1000;
        spec.gid = 1000;
        auto launched = spawn_planned(spec);
        if (!launched) return say(out, "spawn failed: " + launched.error().message);
        auto outcome = read_launch_outcome(*launched, spec);
        say(out, outcome ? std::string("launched") : outcome.error().message);
        auto status = reap(launched->spawned.pidfd.get());
        say(out, status ? "\nexit " + std::to_string(status->code) : "\nreap failed");
    });
    CHECK(told == "cannot switch to user 1000:1000: Operation not permitted\nexit 125");
}

TEST_CASE("command: extra fds arrive as 3, 4, ... and nothing else does, and LISTEN_PID names the command") {
    require_root();
    Pipe three, four;
    auto spec = command_spec({"sh", "-c", "echo three >&3; echo four >&4; exec " + probe() + " view"}, -1);
    spec.extra_fds = {three.write.get(), four.write.get()};
    spec.env = {kPath, "LISTEN_FDS=2", "LISTEN_PID=99999", "LISTEN_FDNAMES=three:four"};
    Pipe out;
    spec.stdio = {-1, out.write.get(), out.write.get()};
    Running run(spec);
    out.write.reset();
    three.write.reset();
    four.write.reset();
    // EOF once the command is done with them: pid 1 keeps no copy.
    CHECK(read_all(three.read.get()) == "three\n");
    CHECK(read_all(four.read.get()) == "four\n");
    const std::string text = read_all(out.read.get());
    CHECK(run.wait() == ExitStatus{0, 0});
    CHECK(field(text, "self.fds") == "0->/dev/null 1->pipe 2->pipe 3->pipe 4->pipe");
    const auto env = lines(text);
    CHECK(field(text, "pid") == "2");
    CHECK(std::count(env.begin(), env.end(), "env: LISTEN_PID=2") == 1);
    CHECK(std::count(env.begin(), env.end(), "env: LISTEN_FDS=2") == 1);
    CHECK(std::count(env.begin(), env.end(), "env: LISTEN_FDNAMES=three:four") == 1);
}

TEST_CASE("command: a command too large for a plan is set up all the same (a settings-only plan)") {
    require_root();
    Pipe out, extra;
    auto spec = probe_spec({"view"}, out.write.get());
    spec.env.push_back("BIG=" + std::string(NSFORK_PLAN_MAX, 'x'));
    spec.cwd = "/tmp";
    spec.signal_mask = bit(SIGUSR1);
    spec.extra_fds = {extra.write.get()};
    REQUIRE_FALSE(command_fits_plan(spec));
    auto [text, status] = output_of(spec);
    CHECK(status == ExitStatus{0, 0});
    CHECK(field(text, "self.SigBlk") == hex16(bit(SIGUSR1)));
    CHECK(field(text, "self.fds") == "0->/dev/null 1->pipe 2->pipe 3->pipe");
    CHECK(field(text, "pgrp") == "2");
    CHECK(field(text, "cwd") == "/tmp");
    CHECK(field(text, "env").size() == 4 + NSFORK_PLAN_MAX); // BIG=..., the first in order
}

TEST_CASE("command: a launch without a plan socket refuses the settings only a plan carries") {
    require_root();
    auto spec = command_spec({"true"}, -1);
    spec.kill_group = true;
    auto spawned = spawn(spec);
    REQUIRE_FALSE(spawned);
    CHECK(spawned.error().code == Errc::bad_request);
    CHECK(spawned.error().message.find("cannot launch with signals to the command's process group") == 0);
}

TEST_CASE("command: a terminal of its own: /dev/tty, /dev/pts/0 of its own devpts, output through the master") {
    require_root();
    auto spec = command_spec({"sh", "-c", "exec 3<>/dev/tty && echo tty ok; tty; stat -c %d /dev/pts"}, -1);
    spec.tty = true;
    UniqueFd master;
    Running run(spec, &master);
    REQUIRE(master);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(master.get(), buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    CHECK(errno == EIO); // the command's side closed, and pid 1 keeps no copy
    text.erase(std::remove(text.begin(), text.end(), '\r'), text.end());
    struct stat host_pts;
    REQUIRE(::stat("/dev/pts", &host_pts) == 0);
    const auto got = lines(text);
    REQUIRE(got.size() == 3);
    CHECK(got[0] == "tty ok");
    CHECK(got[1] == "/dev/pts/0");
    CHECK(got[2] != std::to_string(host_pts.st_dev)); // another devpts instance than the host's
    CHECK(run.wait() == ExitStatus{0, 0});
}

TEST_CASE("command: a terminal of its own needs a mount namespace of its own") {
    require_root();
    auto spec = command_spec({"true"}, -1);
    spec.tty = true;
    spec.new_mount_namespace = false;
    auto launched = spawn_planned(spec);
    REQUIRE_FALSE(launched);
    CHECK(launched.error().code == Errc::bad_request);
    CHECK(launched.error().message.find("needs a mount namespace of its own") != std::string::npos);
}

TEST_CASE("command: in the foreground of the caller's terminal, stopped by ^Z and continued over the channel") {
    require_root();
    int master_fd = -1, slave_fd = -1;
    REQUIRE(::openpty(&master_fd, &slave_fd, nullptr, nullptr, nullptr) == 0);
    UniqueFd master(master_fd), slave(slave_fd);
    ::fcntl(master.get(), F_SETFD, FD_CLOEXEC);
    ::fcntl(slave.get(), F_SETFD, FD_CLOEXEC);
    Pipe go; // the test tells the launcher to go on, one byte per step
    Pipe told;
    const pid_t launcher = ::fork();
    REQUIRE(launcher >= 0);
    if (launcher == 0) {
        // The launcher, as `nsfork run` on a terminal: a session whose terminal is the pty.
        told.read.reset();
        go.write.reset();
        master.reset();
        const int out = told.write.get();
        sigset_t ttou;
        ::sigemptyset(&ttou);
        ::sigaddset(&ttou, SIGTTOU); // to take the terminal back from the background
        ::sigprocmask(SIG_BLOCK, &ttou, nullptr);
        if (::setsid() < 0 || ::ioctl(slave.get(), TIOCSCTTY, 0) < 0) ::_exit(3);
        for (int target = 0; target < 3; ++target) ::dup2(slave.get(), target);
        auto spec = probe_spec({"sleep"}, -1);
        spec.stdio = {0, 1, 2};
        spec.new_session = false;
        spec.foreground = true;
        auto launched = spawn_planned(spec);
        if (!launched || !read_launch_outcome(*launched, spec)) ::_exit(4);
        say(out, std::to_string(launched->spawned.pid) + "\n");
        auto event = receive_job_event(launched->channel.get());
        if (event && *event) say(out, "event " + std::to_string((*event)->kind) + " " + std::to_string((*event)->signal) + "\n");
        ::tcsetpgrp(0, ::getpgrp());
        say(out, "took\n");
        char byte;
        if (::read(go.read.get(), &byte, 1) == 1 && send_job_event(launched->channel.get(), NSFORK_JOB_CONTINUE))
            say(out, "continued\n");
        [[maybe_unused]] ssize_t n = ::read(go.read.get(), &byte, 1); // EOF: the test is done
        (void)signal_pidfd(launched->spawned.pidfd.get(), SIGKILL);
        (void)reap(launched->spawned.pidfd.get());
        ::_exit(0);
    }
    told.write.reset();
    go.read.reset();
    slave.reset();
    auto finish = [&] {
        go.write.reset();
        int status = 0;
        ::waitpid(launcher, &status, 0);
        return status;
    };
    const std::string shim_line = read_line(told.read.get());
    if (shim_line.empty()) {
        finish();
        FAIL("the launcher failed");
    }
    const pid_t shim = std::stoi(shim_line);
    std::vector<pid_t> children;
    CHECK(testing::eventually([&] { return (children = testing::children_of(shim)).size() == 1; }));
    const pid_t command = children.empty() ? -1 : children[0];
    // The command said "ready" on the terminal: it runs, in the terminal's foreground.
    std::string seen;
    char c;
    while (seen.find("ready") == std::string::npos && ::read(master.get(), &c, 1) == 1) seen += c;
    CHECK(::tcgetpgrp(master.get()) == command);
    CHECK(::getpgid(command) == command);

    const char ctrl_z = 0x1a;
    REQUIRE(::write(master.get(), &ctrl_z, 1) == 1);
    CHECK(read_line(told.read.get()) == "event " + std::to_string(NSFORK_JOB_STOPPED) + " " + std::to_string(SIGTSTP));
    CHECK(process_state(command) == 'T');
    CHECK(read_line(told.read.get()) == "took");
    CHECK(::tcgetpgrp(master.get()) == launcher);

    REQUIRE(::write(go.write.get(), "g", 1) == 1);
    CHECK(read_line(told.read.get()) == "continued");
    CHECK(testing::eventually([&] { return ::tcgetpgrp(master.get()) == command && process_state(command) == 'S'; }));
    CHECK(finish() == 0);
}

TEST_CASE("command: a shim that waited for its plan (a warm pool entry) sets the command up the same way") {
    require_root();
    // As the pool does: the shim is up and waiting before the command exists.
    auto pair = seqpacket_pair();
    REQUIRE(pair);
    auto& [ours, theirs] = *pair;
    LaunchSpec entry;
    entry.init_path = NSFORK_SHIM_PATH;
    entry.plan_fd = theirs.get();
    auto spawned = spawn(entry);
    REQUIRE(spawned);
    theirs.reset();
    REQUIRE(read_exec_report(spawned->report.get(), "nsfork-shim", "/"));

    Pipe out, extra;
    auto spec = probe_spec({"view"}, out.write.get());
    spec.cwd = "/tmp";
    spec.signal_mask = bit(SIGUSR1);
    spec.ignored_signals = bit(SIGHUP);
    spec.uid = 1000;
    spec.groups = std::vector<gid_t>{30};
    spec.extra_fds = {extra.write.get()};
    auto plan = encode_plan(spec);
    REQUIRE(plan);
    REQUIRE(send_plan(ours.get(), *plan, spec));
    auto outcome = read_exec_report(ours.get(), spec.argv[0], spec.cwd);
    out.write.reset();
    extra.write.reset();
    const std::string text = read_all(out.read.get());
    auto status = reap(spawned->pidfd.get());
    REQUIRE(outcome);
    CHECK(status->code == 0);
    CHECK(field(text, "pgrp") == "2");
    CHECK(field(text, "self.SigBlk") == hex16(bit(SIGUSR1)));
    CHECK(field(text, "self.SigIgn") == hex16(bit(SIGHUP)));
    CHECK(field(text, "self.Uid") == "1000\t1000\t1000\t1000");
    CHECK(field(text, "self.Groups") == "30");
    CHECK(field(text, "self.fds") == "0->/dev/null 1->pipe 2->pipe 3->pipe");
    CHECK(field(text, "cwd") == "/tmp");
}

TEST_CASE("command: a launcher in a user namespace of its own (rootless) nests and joins pid namespaces") {
    require_root();
    // Its own pid namespace is the host's, which the initial user namespace owns: it may enter
    // a namespace it made, but never come back. The launch goes through intermediates that do.
    const std::string told = in_child([](int out) {
        if (::unshare(CLONE_NEWUSER) < 0) return say(out, "unshare failed");
        for (auto [file, text] : {std::pair{"/proc/self/setgroups", "deny"}, std::pair{"/proc/self/uid_map", "0 0 1"},
                                  std::pair{"/proc/self/gid_map", "0 0 1"}}) {
            std::ofstream f(file);
            if (!(f << text)) return say(out, std::string("cannot write ") + file);
        }
        Pipe sink;
        auto spec = probe_spec({"sleep"}, sink.write.get());
        auto target = spawn(spec);
        if (!target || !read_exec_report(target->report.get(), "probe", "/")) return say(out, "target failed");
        UniqueFd target_ns(::open(("/proc/" + std::to_string(target->pid) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
        for (bool nested : {false, true}) {
            auto inner = probe_spec({"pidns"}, sink.write.get());
            inner.pidns_fd = target_ns.get();
            inner.new_pid_namespace = nested;
            auto s = spawn(inner);
            if (!s) return say(out, "spawn failed: " + s.error().message);
            auto ok = read_exec_report(s->report.get(), "probe", "/");
            auto status = reap(s->pidfd.get());
            say(out, std::string(nested ? "nested" : "joined") + (ok && status && status->code == 0 ? " ok\n" : " failed\n"));
        }
        (void)signal_pidfd(target->pidfd.get(), SIGKILL);
        (void)reap(target->pidfd.get());
    });
    CHECK(told == "joined ok\nnested ok\n");
}
