// The nsfork command line, run as a separate process the way a person runs it.
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <csignal>

using namespace nsfork;
using namespace nsfork::test;

namespace {

ProcessResult nsfork_cli(std::vector<std::string> args) {
    args.insert(args.begin(), bin("nsfork"));
    return run_process(args);
}

// The lowest fd a child of ours opens first: one that is neither 0-2 nor inherited from us
// (ctest, for one, leaves fds without FD_CLOEXEC).
int first_free_fd_of_child() {
    for (int fd = 3;; ++fd)
        if (const int flags = ::fcntl(fd, F_GETFD); flags < 0 || (flags & FD_CLOEXEC)) return fd;
}

} // namespace

TEST_CASE("cli: nsfork run -- ps -ef shows an isolated process list") {
    require_root();
    auto r = nsfork_cli({"run", "--", "ps", "-e", "-o", "pid=,comm="});
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    auto rows = lines(r.out);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].find("1 nsfork-shim") != std::string::npos);
    CHECK(rows[1].find("2 ps") != std::string::npos);
}

TEST_CASE("cli: every exit code 0..255 propagates through nsfork run") {
    require_root();
    ServerProcess server; // one server for all 256 runs keeps this quick
    for (int code = 0; code < 256; ++code) {
        auto r = nsfork_cli({"run", "--socket", server.socket(), "--", probe(), "exit", std::to_string(code)});
        REQUIRE(r.exit_code == code);
    }
    // The private (embedded) server path as well, at a few codes.
    for (int code : {0, 1, 42, 255})
        CHECK(nsfork_cli({"run", "--", probe(), "exit", std::to_string(code)}).exit_code == code);
}

TEST_CASE("cli: death by signal N exits 128+N") {
    require_root();
    for (int sig : {SIGTERM, SIGKILL, SIGSEGV, SIGINT, SIGUSR2}) {
        auto r = nsfork_cli({"run", "--", probe(), "signal-self", std::to_string(sig)});
        CHECK(r.exit_code == 128 + sig);
    }
}

TEST_CASE("cli: launcher errors exit 125, not executable 126, not found 127, each with one line") {
    require_root();
    auto not_found = nsfork_cli({"run", "--", "no-such-command-anywhere"});
    CHECK(not_found.exit_code == 127);
    CHECK(not_found.err == "nsfork: cannot execute 'no-such-command-anywhere': No such file or directory\n");

    TempDir dir;
    const std::string script = dir.path() + "/not-executable";
    UniqueFd f(::open(script.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    REQUIRE(f);
    f.reset();
    auto not_exec = nsfork_cli({"run", "--", script});
    CHECK(not_exec.exit_code == 126);
    CHECK(not_exec.err == "nsfork: cannot execute '" + script + "': Permission denied\n");

    auto bad_cwd = nsfork_cli({"run", "--cwd", "/no/such/dir", "--", "true"});
    CHECK(bad_cwd.exit_code == 125);
    CHECK(bad_cwd.err == "nsfork: cannot change to working directory '/no/such/dir': No such file or directory\n");

    auto no_server = nsfork_cli({"run", "--socket", dir.path() + "/none.sock", "--", "true"});
    CHECK(no_server.exit_code == 125);
    CHECK(lines(no_server.err).size() == 1);

    auto no_command = nsfork_cli({"run"});
    CHECK(no_command.exit_code == 125);
}

TEST_CASE("cli: SIGTERM sent to nsfork run reaches the command") {
    require_root();
    for (bool private_server : {true, false}) {
        std::optional<ServerProcess> server;
        std::vector<std::string> args = {bin("nsfork"), "run"};
        if (!private_server) {
            server.emplace();
            args.insert(args.end(), {"--socket", server->socket()});
        }
        args.insert(args.end(), {"--", probe(), "trap", std::to_string(SIGTERM)});
        Pipe out;
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out.write.get(), 1);
        pid_t pid;
        REQUIRE(::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0);
        posix_spawn_file_actions_destroy(&fa);
        out.write.reset();
        REQUIRE(read_line(out.read.get()) == "ready");
        ::kill(pid, SIGTERM);
        CHECK(read_line(out.read.get()) == "caught 15");
        int status = 0;
        ::waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 100 + SIGTERM);
    }
}

TEST_CASE("cli: orphans inside are reaped, no zombies remain") {
    require_root();
    auto r = nsfork_cli({"run", "--", "sh", "-c", probe() + " orphans 20 && " + probe() + " zombies"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "spawned\n0\n");
}

TEST_CASE("cli: the container holds only fds 0, 1 and 2") {
    require_root();
    auto r = nsfork_cli({"run", "--", probe(), "fds"});
    CHECK(r.out == "0\n1\n2\n");
}

TEST_CASE("cli: --env, --clear-env and the caller's environment") {
    require_root();
    ::setenv("NSFORK_CALLER_VAR", "from-caller", 1);
    auto inherited = nsfork_cli({"run", "--env", "EXTRA=1", "--", probe(), "env"});
    ::unsetenv("NSFORK_CALLER_VAR");
    auto env = lines(inherited.out);
    CHECK(std::count(env.begin(), env.end(), "NSFORK_CALLER_VAR=from-caller") == 1);
    CHECK(std::count(env.begin(), env.end(), "EXTRA=1") == 1);

    auto clear = nsfork_cli({"run", "--clear-env", "--env", "A=b", "--env", "PATH=/bin", "--", probe(), "env"});
    CHECK(lines(clear.out) == std::vector<std::string>{"A=b", "PATH=/bin"});
}

TEST_CASE("cli: --detach, list, wait, kill and destroy against a server") {
    require_root();
    ServerProcess server;
    const std::string& sock = server.socket();
    auto started = nsfork_cli({"run", "--socket", sock, "--id", "web", "--detach", "--", probe(), "sleep"});
    REQUIRE(started.exit_code == 0);
    CHECK(started.out == "web\n");

    auto listed = nsfork_cli({"list", "--socket", sock, "--json"});
    CHECK(listed.exit_code == 0);
    CHECK(listed.out.find(R"("id":"web")") != std::string::npos);
    CHECK(listed.out.find(R"("state":"running")") != std::string::npos);

    CHECK(nsfork_cli({"kill", "--socket", sock, "--signal", "USR1", "web"}).exit_code == 0);
    CHECK(nsfork_cli({"wait", "--socket", sock, "web"}).exit_code == 128 + SIGUSR1);
    CHECK(nsfork_cli({"wait", "--socket", sock, "web"}).exit_code == 128 + SIGUSR1);
    auto destroyed = nsfork_cli({"destroy", "--socket", sock, "--json", "web"});
    CHECK(destroyed.exit_code == 0);
    CHECK(destroyed.out.find(R"("state":"destroyed")") != std::string::npos);

    auto unknown = nsfork_cli({"wait", "--socket", sock, "web"});
    CHECK(unknown.exit_code == 125);
    CHECK(unknown.err == "nsfork: no container with id 'web'\n");

    auto bad_signal = nsfork_cli({"kill", "--socket", sock, "--signal", "NOPE", "x"});
    CHECK(bad_signal.exit_code == 125);
}

TEST_CASE("cli: run --json prints the container with its exit status") {
    require_root();
    auto r = nsfork_cli({"run", "--json", "--", probe(), "exit", "9"});
    CHECK(r.exit_code == 9);
    CHECK(r.out.find(R"("exit_status":{"code":9,"signal":0,"status":9})") != std::string::npos);
    CHECK(r.out.find(R"("pidns":)") != std::string::npos);
}

TEST_CASE("cli: VERB --help and --version exit 0, an option of another verb exits 125 naming it") {
    require_root();
    auto help = nsfork_cli({"run", "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("--detach") != std::string::npos);
    CHECK(help.out.find("--warm-pool") == std::string::npos); // serve's, not run's
    CHECK(help.err.empty());

    auto version = nsfork_cli({"--version"});
    CHECK(version.exit_code == 0);
    CHECK(version.out.rfind("nsfork ", 0) == 0);

    ServerProcess server;
    auto refused = nsfork_cli({"list", "--socket", server.socket(), "--detach"});
    CHECK(refused.exit_code == 125);
    CHECK(refused.out.empty());
    CHECK(refused.err == "nsfork: list: The following argument was not expected: --detach (see nsfork list --help)\n");
}

TEST_CASE("cli: run refuses to start when it cannot forward signals (signalfd fails)") {
    require_root();
    ServerProcess server;
    // Room for fds up to the connection to the server (the dynamic loader uses that slot
    // first); the signalfd would be the next one. Before, nsfork went on without it: the command
    // ran, deaf to the signals sent to nsfork.
    const std::string limit = std::to_string(first_free_fd_of_child() + 1);
    auto r = run_process({"/usr/bin/prlimit", "--nofile=" + limit + ":" + limit, bin("nsfork"), "run", "--socket",
                          server.socket(), "--", "/bin/echo", "ran"});
    CHECK(r.exit_code == 125);
    CHECK(r.err == "nsfork: cannot forward signals: signalfd failed: Too many open files\n");
    CHECK(r.out.empty());
    Client client = server.connect();
    auto containers = client.list();
    REQUIRE(containers);
    CHECK(containers->empty());
}

TEST_CASE("cli: --env without '=' is a usage error, found before any server starts") {
    require_root();
    auto r = nsfork_cli({"run", "--env", "NOEQUALS", "--", probe(), "env"});
    CHECK(r.exit_code == 125);
    CHECK(r.err == "nsfork: run: --env takes K=V, not 'NOEQUALS' (see nsfork run --help)\n");
    CHECK(r.out.empty());
}
