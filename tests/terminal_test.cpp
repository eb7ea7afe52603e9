// `nsfork run` on a terminal, as a person runs it from an interactive shell: a real pty whose
// master the test types on and reads, and a shell (testing/pty.hpp) that starts nsfork as its
// foreground job and reports its stops the way a shell's waitpid sees them.
#include "harness.hpp"
#include "testing/pty.hpp"

#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <csignal>
#include <filesystem>
#include <fstream>

using namespace nsfork;
using namespace nsfork::test;
using testing::PtyJob;

namespace {

PtyJob start_job(std::vector<std::string> args, const PtyJob::Options& options = PtyJob::Options()) {
    args.insert(args.begin(), bin("nsfork"));
    auto job = PtyJob::start(args, options);
    if (!job) FAIL(job.error().message);
    return std::move(*job);
}


// The job's exit code, once it ended (any stop or continue before it is a failure).
int exit_code_of(PtyJob& job) {
    const int status = MUST(job.next_status());
    INFO("wait status " << status);
    REQUIRE((WIFEXITED(status) || WIFSIGNALED(status)));
    return testing::shell_code(status);
}

// The last line of /proc/PID/status's NSpid: the pid as its innermost namespace sees it.
std::string innermost_pid(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("NSpid:", 0) == 0) return line.substr(line.find_last_of(" \t") + 1);
    return "";
}

} // namespace

TEST_CASE("terminal: the command has the caller's terminal: /dev/tty opens (script -c style)") {
    require_root();
    PtyJob job = start_job({"run", "--", "sh", "-c", "exec 3<>/dev/tty && echo ok"});
    CHECK(exit_code_of(job) == 0);
    CHECK(MUST(job.drain()).find("ok") != std::string::npos);
}

TEST_CASE("terminal: the front runs it, the command's group the terminal's foreground while it runs, ours again after") {
    require_root();
    // `read` on the terminal only works in the foreground (SIGTTIN would stop it otherwise).
    PtyJob job = start_job({"run", "--", "sh", "-c", "echo ready; read line; echo got $line"});
    MUST(job.read_until("ready"));
    // The front (bin/nsfork, static) runs it itself, job control included: no hand-over.
    std::error_code ec;
    CHECK(std::filesystem::read_symlink("/proc/" + std::to_string(job.job()) + "/exe", ec) ==
          std::filesystem::canonical(bin("nsfork")));
    const pid_t foreground = job.foreground();
    CHECK(foreground != job.job());
    CHECK(innermost_pid(foreground) == "2"); // the command, inside the container
    MUST(job.type("this\n"));
    CHECK(exit_code_of(job) == 0);
    CHECK(MUST(job.drain()).find("got this") != std::string::npos);
    CHECK(job.foreground() == job.job());
}

TEST_CASE("terminal: ^C reaches the command, not nsfork run") {
    require_root();
    PtyJob job = start_job({"run", "--", probe(), "trap", std::to_string(SIGINT)});
    MUST(job.read_until("ready"));
    MUST(job.type("\x03"));
    MUST(job.read_until("caught 2"));
    CHECK(exit_code_of(job) == 100 + SIGINT); // the command's own exit: nsfork was not interrupted
}

TEST_CASE("terminal: ^Z stops the job as the shell sees it, and fg continues it to the end") {
    require_root();
    PtyJob job = start_job({"run", "--", "sh", "-c", "echo ready; read line; echo got $line"});
    MUST(job.read_until("ready"));
    MUST(job.type("\x1a"));
    const int stopped = MUST(job.next_status());
    REQUIRE(WIFSTOPPED(stopped));
    CHECK(WSTOPSIG(stopped) == SIGTSTP);
    CHECK(job.foreground_at_change() == job.job()); // nsfork took the terminal back for the shell
    MUST(job.fg());
    CHECK(WIFCONTINUED(MUST(job.next_status())));
    MUST(job.type("again\n"));
    CHECK(exit_code_of(job) == 0);
    CHECK(MUST(job.drain()).find("got again") != std::string::npos);
    CHECK(job.foreground() == job.job());
}

TEST_CASE("terminal: after ^Z and bg the command runs in the background, stops on reading the terminal, fg ends it") {
    require_root();
    PtyJob job = start_job({"run", "--", "sh", "-c", "echo ready; read line; echo got $line"});
    MUST(job.read_until("ready"));
    MUST(job.type("\x1a"));
    REQUIRE(WIFSTOPPED(MUST(job.next_status())));
    MUST(job.bg());
    // In the background its read of the terminal stops it (SIGTTIN), and so nsfork run. The
    // continue may be overtaken by that stop before the shell looks: waitpid() reports a job's
    // latest state, as a real shell would see it too.
    int stopped = MUST(job.next_status());
    if (WIFCONTINUED(stopped)) stopped = MUST(job.next_status());
    REQUIRE(WIFSTOPPED(stopped));
    CHECK(WSTOPSIG(stopped) == SIGTTIN);
    CHECK(job.foreground_at_change() != job.job()); // the shell's still: nsfork took nothing
    MUST(job.fg());
    CHECK(WIFCONTINUED(MUST(job.next_status())));
    MUST(job.type("late\n"));
    CHECK(exit_code_of(job) == 0);
    CHECK(MUST(job.drain()).find("got late") != std::string::npos);
}

TEST_CASE("terminal: --new-session gives the command no terminal") {
    require_root();
    PtyJob job = start_job({"run", "--new-session", "--", "sh", "-c",
                            "if (exec 3<>/dev/tty) 2>/dev/null; then echo has-tty; else echo no-tty; fi"});
    CHECK(exit_code_of(job) == 0);
    CHECK(MUST(job.drain()).find("no-tty") != std::string::npos);
    CHECK(job.foreground() == job.job());
}

TEST_CASE("terminal: -t relays a terminal of the container's own, raw mode restored, window size followed") {
    require_root();
    for (bool private_run : {true, false}) {
        INFO((private_run ? "without a server" : "through nsfork serve"));
        std::optional<ServerProcess> server;
        std::vector<std::string> args = {"run", "-t"};
        if (!private_run) {
            server.emplace();
            args.insert(args.end(), {"--socket", server->socket()});
        }
        args.insert(args.end(), {"--", "sh", "-c", "tty; stty size; echo ready; read line; stty size; echo got $line"});
        PtyJob::Options options;
        options.size = {30, 100, 0, 0};
        PtyJob job = start_job(args, options);
        const std::string first = MUST(job.read_until("ready"));
        CHECK(first.find("/dev/pts/0") != std::string::npos); // its own devpts, not ours
        CHECK(first.find("30 100") != std::string::npos);     // our window size, from the start
        const termios raw = MUST(job.mode());
        CHECK_FALSE(raw.c_lflag & ICANON); // ours in raw mode while it runs
        MUST(job.resize(40, 120));
        MUST(job.type("x\r")); // raw: Enter is a CR, which the container's terminal makes a newline
        CHECK(exit_code_of(job) == 0);
        const std::string shown = MUST(job.drain());
        CHECK(shown.find("40 120") != std::string::npos);
        CHECK(shown.find("got x") != std::string::npos);
        const termios after = MUST(job.mode());
        const termios& initial = job.initial_mode();
        CHECK(after.c_lflag == initial.c_lflag);
        CHECK(after.c_iflag == initial.c_iflag);
        CHECK(after.c_oflag == initial.c_oflag);
    }
}

TEST_CASE("terminal: -t restores the terminal's mode when the command is not found and when nsfork run is signalled") {
    require_root();
    auto same_mode = [](const PtyJob& job) {
        const termios after = MUST(job.mode());
        const termios& initial = job.initial_mode();
        return after.c_lflag == initial.c_lflag && after.c_iflag == initial.c_iflag && after.c_oflag == initial.c_oflag;
    };
    PtyJob missing = start_job({"run", "-t", "--", "no-such-command-anywhere"});
    CHECK(exit_code_of(missing) == 127);
    CHECK(MUST(missing.drain()).find("nsfork: cannot execute 'no-such-command-anywhere'") != std::string::npos);
    CHECK(same_mode(missing));

    PtyJob signalled = start_job({"run", "-t", "--", probe(), "sleep"});
    MUST(signalled.read_until("ready"));
    CHECK_FALSE(same_mode(signalled)); // raw meanwhile
    ::kill(signalled.job(), SIGTERM);  // forwarded: the command dies of it, and nsfork exits so
    CHECK(exit_code_of(signalled) == 128 + SIGTERM);
    CHECK(same_mode(signalled));
}
