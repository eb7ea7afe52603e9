// Tests for nsfork-shim, run directly as a child of the test (no namespace): as a subreaper it
// reaps orphans there too. Modelled on tini's tests: exit codes, signals, orphans, exec errors.
#include <catch2/catch.hpp>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "launcher/exec_report.h"

#ifndef NSFORK_SHIM_PATH
#error "the build must define NSFORK_SHIM_PATH"
#endif

extern char **environ;

namespace {

using namespace std::chrono_literals;
using nsfork::UniqueFd;
using nsfork::test::Pipe;

constexpr auto kTimeout = 10s;

// Moves fd to a close-on-exec fd numbered 64 or more.
UniqueFd move_high(int fd) {
    const int high = fcntl(fd, F_DUPFD_CLOEXEC, 64);
    const int saved = errno;
    ::close(fd);
    errno = saved;
    REQUIRE(high >= 0);
    return UniqueFd(high);
}

// A close-on-exec pipe whose ends sit at fd 64 or above, so that the dup2 actions that wire the
// child's low fds can never overwrite one another's source.
Pipe make_pipe() {
    Pipe p;
    p.read = move_high(p.read.release());
    p.write = move_high(p.write.release());
    return p;
}

// Waits until fd is readable; fails the test after kTimeout, so that a bug cannot hang the suite.
void await_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    REQUIRE(poll(&p, 1, std::chrono::milliseconds(kTimeout).count()) == 1);
}

// Reads fd until EOF.
std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        await_readable(fd);
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        REQUIRE(n >= 0);
        if (n == 0) return out;
        out.append(buf, static_cast<size_t>(n));
    }
}

// Reads one line (without its newline) from fd; empty at EOF.
std::string read_line(int fd) {
    std::string line;
    char c;
    for (;;) {
        await_readable(fd);
        if (::read(fd, &c, 1) != 1 || c == '\n') return line;
        line += c;
    }
}

// Splits text into its lines.
std::vector<std::string> lines_of(const std::string &text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// How to start the shim; the defaults are the launcher's way.
struct ShimOptions {
    std::vector<std::string> command{};             // after "--"
    int report_fd = 3;                              // report pipe's fd number in the shim; -1: none
    bool close_report_reader = false;               // the launcher is gone before the shim reports
    std::optional<std::vector<std::string>> args{}; // replaces all of the shim's own arguments
    std::vector<std::string> wrapper{};             // runs the shim through this; it must exec "$@"
    std::vector<std::pair<int, int>> extra_fds{};   // {fd here, its fd number in the shim}
};

// One run of the shim, started the way the launcher starts it: all signals blocked,
// stdin/stdout/stderr and the report fd on pipes, nothing else open. Kills and reaps what is
// left on destruction, so a failed REQUIRE leaks neither processes nor fds.
class ShimRun {
public:
    explicit ShimRun(const ShimOptions &opts) {
        Pipe in = make_pipe(), out = make_pipe(), err = make_pipe(), rep = make_pipe();
        std::vector<std::string> argv = opts.wrapper;
        argv.push_back(NSFORK_SHIM_PATH);
        if (opts.args) {
            argv.insert(argv.end(), opts.args->begin(), opts.args->end());
        } else {
            if (opts.report_fd >= 0) {
                argv.push_back("--report-fd=" + std::to_string(opts.report_fd));
            }
            argv.push_back("--");
            argv.insert(argv.end(), opts.command.begin(), opts.command.end());
        }
        std::vector<char *> cargv;
        for (auto &a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);

        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in.read.get(), 0);
        posix_spawn_file_actions_adddup2(&fa, out.write.get(), 1);
        posix_spawn_file_actions_adddup2(&fa, err.write.get(), 2);
        int top = 2;
        if (opts.report_fd >= 0) {
            posix_spawn_file_actions_adddup2(&fa, rep.write.get(), opts.report_fd);
            top = std::max(top, opts.report_fd);
        }
        for (auto [from, to] : opts.extra_fds) {
            posix_spawn_file_actions_adddup2(&fa, from, to);
            top = std::max(top, to);
        }
        // Whatever the test harness left open must not reach the shim.
        posix_spawn_file_actions_addclosefrom_np(&fa, top + 1);

        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t all;
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &all);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (opts.close_report_reader) rep.read.reset();
        const int rc = posix_spawn(&pid_, cargv[0], &fa, &attr, cargv.data(), environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        REQUIRE(rc == 0);
        // Not glibc 2.36's pidfd_open: its <sys/pidfd.h> lacks extern "C" and fails to link in C++.
        pidfd_ = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid_, 0)));
        if (pidfd_.get() < 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            FAIL("pidfd_open: " << strerror(errno));
        }
        in_ = std::move(in.write);
        out_ = std::move(out.read);
        err_ = std::move(err.read);
        report_ = std::move(rep.read);
    }

    ShimRun(const ShimRun &) = delete;
    ShimRun &operator=(const ShimRun &) = delete;

    ~ShimRun() {
        if (pid_ <= 0) return;
        for (pid_t child : children()) kill(child, SIGKILL);
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }

    pid_t pid() const { return pid_; }
    int stdin_fd() const { return in_.get(); }
    int stdout_fd() const { return out_.get(); }
    void close_stdin() { in_.reset(); }

    // Waits (at most kTimeout) for the shim and returns its exit code.
    int wait() {
        await_readable(pidfd_.get());
        int status = 0;
        REQUIRE(waitpid(pid_, &status, 0) == pid_);
        pid_ = 0;
        REQUIRE(WIFEXITED(status));
        return WEXITSTATUS(status);
    }

    // The shim's stderr up to EOF.
    std::string stderr_text() { return read_all(err_.get()); }

    // Everything on the report pipe up to EOF.
    std::string report_bytes() { return read_all(report_.get()); }

    // The shim's current children (from /proc, needs CONFIG_PROC_CHILDREN).
    std::vector<pid_t> children() const { return nsfork::testing::children_of(pid_); }

private:
    pid_t pid_ = 0;
    UniqueFd pidfd_, in_, out_, err_, report_;
};

// Runs the shim on a command with stdin at EOF and returns its exit code.
int run_shim(const std::vector<std::string> &command) {
    ShimRun run({.command = command});
    run.close_stdin();
    return run.wait();
}

// The report bytes holding exactly one record.
std::string record_bytes(int32_t stage, int32_t error) {
    const nsfork_exec_report r{stage, error, 0, 0};
    return std::string(reinterpret_cast<const char *>(&r), sizeof r);
}

// The state letter of a process (field 3 of /proc/PID/stat), or '?' if it is gone.
char process_state(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

// The command name of a process, or "" if it is gone.
std::string process_comm(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(in, comm);
    return comm;
}

// The value of a "Key:\tvalue" line in a /proc/PID/status text.
std::string status_field(const std::string &status, const std::string &key) {
    for (const auto &line : lines_of(status)) {
        if (line.rfind(key + ":", 0) == 0) {
            const auto start = line.find_first_not_of(" \t", key.size() + 1);
            return start == std::string::npos ? "" : line.substr(start);
        }
    }
    return "<missing>";
}

} // namespace

TEST_CASE("shim: every exit code 0..255 propagates") {
    for (int code = 0; code <= 255; ++code) {
        INFO("exit code " << code);
        REQUIRE(run_shim({"/bin/sh", "-c", "exit $1", "sh", std::to_string(code)}) == code);
    }
}

TEST_CASE("shim: death by signal N exits 128+N") {
    const auto [name, number] = GENERATE(table<std::string, int>({
        {"TERM", SIGTERM},
        {"KILL", SIGKILL},
        {"SEGV", SIGSEGV},
    }));
    INFO("signal " << name);
    // No core file: the default action of SIGSEGV would write one into the cwd.
    REQUIRE(run_shim({"/bin/sh", "-c", "ulimit -c 0; kill -" + name + " $$"}) == 128 + number);
}

TEST_CASE("shim: signals sent to the shim are forwarded to the command") {
    const auto [name, number, code] = GENERATE(table<std::string, int, int>({
        {"TERM", SIGTERM, 71},
        {"USR1", SIGUSR1, 72},
        {"HUP", SIGHUP, 73},
        {"INT", SIGINT, 74},
    }));
    INFO("signal " << name);
    ShimRun run({.command = {"/bin/sh", "-c", "trap 'exit $2' $1; echo ready; read x; exit 1", "sh",
                             name, std::to_string(code)}});
    REQUIRE(read_line(run.stdout_fd()) == "ready"); // the trap is in place
    REQUIRE(kill(run.pid(), number) == 0);
    REQUIRE(run.wait() == code);
}

TEST_CASE("shim: orphans are reaped while the command runs") {
    // Double forks make orphans: ten that exit at once, and ten `cat`s held alive by the gate
    // until the test closes it.
    Pipe gate = make_pipe();
    ShimRun run({.command = {"/bin/sh", "-c",
                             "for i in 1 2 3 4 5 6 7 8 9 10; do"
                             "  ( /bin/true & ); ( exec cat <&4 >/dev/null & );"
                             "done; echo $$; read x; exit 42"},
                 .extra_fds = {{gate.read.get(), 4}}});
    gate.read.reset();
    const pid_t command = std::stoi(read_line(run.stdout_fd()));

    // Unreaped `true`s would stay as zombies; the `cat`s must have become the shim's children.
    REQUIRE(nsfork::testing::eventually([&] {
        const auto kids = run.children();
        if (kids.size() != 11) return false;
        for (pid_t kid : kids) {
            if (process_state(kid) == 'Z') return false;
            if (kid != command && process_comm(kid) != "cat") return false;
        }
        return true;
    }, kTimeout, 1ms));

    // The `cat`s die while the shim is stopped, so their ten SIGCHLDs merge into one pending
    // signal: the shim must still reap them all.
    REQUIRE(kill(run.pid(), SIGSTOP) == 0);
    gate.write.reset();
    REQUIRE(nsfork::testing::eventually([&] {
        const auto kids = run.children();
        return kids.size() == 11 && std::count_if(kids.begin(), kids.end(), [](pid_t kid) {
                                        return process_state(kid) == 'Z';
                                    }) == 10;
    }, kTimeout, 1ms));
    REQUIRE(kill(run.pid(), SIGCONT) == 0);
    REQUIRE(nsfork::testing::eventually([&] { return run.children() == std::vector<pid_t>{command}; }, kTimeout, 1ms));
    REQUIRE(process_state(command) != 'Z');

    run.close_stdin();
    REQUIRE(run.wait() == 42);
}

TEST_CASE("shim: command not found exits 127 and reports ENOENT") {
    const auto [command, error] = GENERATE(table<std::string, int>({
        {"nsfork-test-no-such-command", ENOENT},
        {"/nonexistent-dir/cmd", ENOENT},
        {"/etc/passwd/cmd", ENOTDIR},
    }));
    INFO("command " << command);
    ShimRun run({.command = {command, "arg"}});
    REQUIRE(run.wait() == 127);
    REQUIRE(run.report_bytes() == record_bytes(NSFORK_STAGE_EXEC_COMMAND, error));
    REQUIRE(run.stderr_text().empty()); // the launcher says it, once
    // Without a launcher to tell, the shim says it itself, in one line.
    ShimRun alone({.command = {command, "arg"}, .report_fd = -1});
    REQUIRE(alone.wait() == 127);
    REQUIRE(alone.stderr_text() ==
            "nsfork-shim: cannot execute '" + command + "': " + strerror(error) + "\n");
}

TEST_CASE("shim: a command that is not executable exits 126 and reports EACCES") {
    nsfork::test::TempDir tmp;
    const std::string file = tmp.path() + "/script", dir = tmp.path() + "/dir";
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "#!/bin/sh\nexit 0\n", 17) == 17);
    REQUIRE(fchmod(fd, 0644) == 0);
    close(fd);
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);

    for (const auto &command : {file, dir}) {
        INFO("command " << command);
        ShimRun run({.command = {command}});
        REQUIRE(run.wait() == 126);
        REQUIRE(run.report_bytes() == record_bytes(NSFORK_STAGE_EXEC_COMMAND, EACCES));
        REQUIRE(run.stderr_text().empty());
        ShimRun alone({.command = {command}, .report_fd = -1});
        REQUIRE(alone.wait() == 126);
        const auto lines = lines_of(alone.stderr_text());
        REQUIRE(lines.size() == 1);
        REQUIRE(lines[0] == "nsfork-shim: cannot execute '" + command + "': " + strerror(EACCES));
    }
}

TEST_CASE("shim: success reports OK then EOF while the command still runs") {
    ShimRun run({.command = {"/bin/sh", "-c", "read x; exit 3"}});
    // EOF arrives at exec, not at exit: the command holds no copy of the report pipe.
    REQUIRE(run.report_bytes() == record_bytes(NSFORK_STAGE_OK, 0));
    run.close_stdin();
    REQUIRE(run.wait() == 3);
    REQUIRE(run.stderr_text().empty());
}

TEST_CASE("shim: runs without a report fd") {
    ShimRun run({.command = {"/bin/sh", "-c", "exit 9"}, .report_fd = -1});
    REQUIRE(run.wait() == 9);
    REQUIRE(run.report_bytes().empty());
}

TEST_CASE("shim: bad usage exits 125 with one line") {
    const auto args = GENERATE(std::vector<std::string>{},
                               std::vector<std::string>{"--report-fd=3"},
                               std::vector<std::string>{"--report-fd=3", "--"},
                               std::vector<std::string>{"--bogus", "--", "true"},
                               std::vector<std::string>{"--report-fd=x3", "--", "true"},
                               std::vector<std::string>{"true"});
    INFO("arguments: " << args.size());
    ShimRun run({.args = args});
    REQUIRE(run.wait() == 125);
    REQUIRE(lines_of(run.stderr_text()).size() == 1);
}

TEST_CASE("shim: usage errors are reported on the report fd") {
    ShimRun run({.args = std::vector<std::string>{"--report-fd=3", "--"}});
    REQUIRE(run.wait() == 125);
    REQUIRE(run.report_bytes() == record_bytes(NSFORK_STAGE_SHIM_SETUP, EINVAL));
}

TEST_CASE("shim: a report fd that is not open exits 125") {
    ShimRun run({.args = std::vector<std::string>{"--report-fd=9", "--", "true"}});
    REQUIRE(run.wait() == 125);
    const auto lines = lines_of(run.stderr_text());
    REQUIRE(lines.size() == 1);
    REQUIRE(lines[0].find("report-fd") != std::string::npos);
}

TEST_CASE("shim: the command starts with no signal blocked or ignored") {
    // The shim itself starts with every signal blocked, and glibc's posix_spawn (in ShimRun)
    // leaves it SIG_IGN on signals 32 and 33.
    ShimRun run({.command = {"/bin/cat", "/proc/self/status"}});
    const std::string status = read_all(run.stdout_fd());
    REQUIRE(run.wait() == 0);
    CHECK(status_field(status, "SigBlk") == "0000000000000000");
    CHECK(status_field(status, "SigIgn") == "0000000000000000");
}

TEST_CASE("shim: an inherited SIG_IGN does not lose the command's status nor reach it") {
    // With SIGCHLD ignored the kernel would reap the command itself and the shim would wait
    // forever; the wrapper shell sets SIG_IGN, which survives its exec of the shim.
    const std::vector<std::string> wrapper = {"/bin/sh", "-c", "trap '' CHLD INT QUIT; exec \"$@\"",
                                              "sh"};
    {
        ShimRun run({.command = {"/bin/sh", "-c", "exit 42"}, .wrapper = wrapper});
        REQUIRE(run.wait() == 42);
    }
    ShimRun run({.command = {"/bin/cat", "/proc/self/status"}, .wrapper = wrapper});
    const std::string status = read_all(run.stdout_fd());
    REQUIRE(run.wait() == 0);
    CHECK(status_field(status, "SigIgn") == "0000000000000000");
}

TEST_CASE("shim: the command does not inherit the report fd") {
    ShimRun run({.command = {"/bin/ls", "/proc/self/fd"}});
    const auto entries = lines_of(read_all(run.stdout_fd()));
    REQUIRE(run.wait() == 0);
    // 0, 1, 2 and the directory fd ls reads; a leaked report fd would make it 0..4.
    REQUIRE(std::set<std::string>(entries.begin(), entries.end()) ==
            std::set<std::string>{"0", "1", "2", "3"});
}

TEST_CASE("shim: the command keeps other fds it was given") {
    Pipe extra = make_pipe();
    ShimRun run({.command = {"/bin/sh", "-c", "echo kept >&5"},
                 .extra_fds = {{extra.write.get(), 5}}});
    extra.write.reset();
    REQUIRE(run.wait() == 0);
    REQUIRE(read_all(extra.read.get()) == "kept\n");
}

TEST_CASE("shim: a launcher gone before the report does not kill the command with SIGPIPE") {
    ShimRun run({.command = {"/bin/sh", "-c", "echo ready; read x; exit 5"},
                 .close_report_reader = true});
    REQUIRE(read_line(run.stdout_fd()) == "ready");
    run.close_stdin();
    REQUIRE(run.wait() == 5);
}

TEST_CASE("shim: SIGTTIN and SIGTTOU sent to the shim are never forwarded") {
    // The command traps both and USR1; TTIN and TTOU go first, USR1 after a pause: a forwarded
    // TTIN or TTOU would print its line before "usr1".
    ShimRun run({.command = {"/bin/sh", "-c",
                             "trap 'echo ttin' TTIN; trap 'echo ttou' TTOU; trap 'echo usr1; exit 9' USR1;"
                             " echo ready; while :; do read x; done"}});
    REQUIRE(read_line(run.stdout_fd()) == "ready");
    REQUIRE(kill(run.pid(), SIGTTIN) == 0);
    REQUIRE(kill(run.pid(), SIGTTOU) == 0);
    std::this_thread::sleep_for(200ms);
    REQUIRE(kill(run.pid(), SIGUSR1) == 0);
    REQUIRE(run.wait() == 9);
    CHECK(read_all(run.stdout_fd()) == "usr1\n");
    CHECK(run.stderr_text().empty());
}

TEST_CASE("shim: SIGTSTP sent to the shim is forwarded to a command that handles it") {
    ShimRun run({.command = {"/bin/sh", "-c", "trap 'echo tstp; exit 8' TSTP; echo ready; while :; do read x; done"}});
    REQUIRE(read_line(run.stdout_fd()) == "ready");
    REQUIRE(kill(run.pid(), SIGTSTP) == 0);
    REQUIRE(run.wait() == 8);
    CHECK(read_all(run.stdout_fd()) == "tstp\n");
}

TEST_CASE("shim: signals racing with the command's exit are forwarded without an error") {
    // A burst of signals while the command exits: those that find it a zombie, or gone, must
    // neither print an error nor change the exit code.
    ShimRun run({.command = {"/bin/sh", "-c", "trap '' USR1; echo ready; read x; exit 3"}});
    REQUIRE(read_line(run.stdout_fd()) == "ready");
    run.close_stdin();
    for (int i = 0; i < 2000 && kill(run.pid(), SIGUSR1) == 0 && process_state(run.pid()) != 'Z'; ++i) {
    }
    REQUIRE(run.wait() == 3);
    CHECK(run.stderr_text().empty());
}
