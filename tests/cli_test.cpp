// The nsfork command line, run as a separate process the way a person runs it.
#include "harness.hpp"

#include "base/procfs.hpp"
#include "base/syscalls.hpp"
#include "base/unix_socket.hpp"
#include "protocol/framing.hpp"
#include "protocol/messages.hpp"
#include "protocol/replies.hpp"
#include "testing/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sys/socket.h>
#include <thread>

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

// Runs nsfork with `blocked` blocked and `ignored` ignored, as a caller with that signal state
// (`nohup`, `trap '' HUP`) would; ours are restored after.
ProcessResult nsfork_cli_with(std::vector<std::string> args, std::vector<int> blocked, std::vector<int> ignored) {
    sigset_t mask, saved_mask;
    ::sigemptyset(&mask);
    for (int sig : blocked) ::sigaddset(&mask, sig);
    std::vector<struct sigaction> saved(ignored.size());
    for (std::size_t i = 0; i < ignored.size(); ++i) {
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        ::sigaction(ignored[i], &ignore, &saved[i]);
    }
    ::sigprocmask(SIG_BLOCK, &mask, &saved_mask);
    auto r = nsfork_cli(std::move(args));
    ::sigprocmask(SIG_SETMASK, &saved_mask, nullptr);
    for (std::size_t i = 0; i < ignored.size(); ++i) ::sigaction(ignored[i], &saved[i], nullptr);
    return r;
}

// The signal set a /proc/PID/status line ("SigIgn:\t0000000000000001") shows, in `text`.
std::uint64_t signal_set(const std::string& text, const std::string& key) {
    const auto at = text.find(key + ":");
    if (at == std::string::npos) return 0;
    return std::stoull(text.substr(at + key.size() + 1), nullptr, 16);
}

constexpr std::uint64_t bit(int sig) { return std::uint64_t{1} << (sig - 1); }

// `nsfork ARGS...` started with its stdout on a pipe; the caller reaps it.
struct Started {
    pid_t pid;
    UniqueFd out;
};
Started start_cli(std::vector<std::string> args) {
    args.insert(args.begin(), bin("nsfork"));
    Pipe out;
    auto pid = testing::spawn(args, out.write.get());
    REQUIRE(pid);
    return {*pid, std::move(out.read)};
}

int reap_code(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return testing::shell_code(status);
}

std::string exe_of(pid_t pid) {
    std::error_code ec;
    return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
}

std::string comm_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

// A stand-in server for one connection, to see which requests a `run --socket` makes. It answers
// a Launch with a pidfd (of this test process: nothing signals it) and, as the server does, says
// it destroys the container at its end and then does so (exit code 9) — or, `older`, as a server
// from before destroy_on_exit, says nothing of it and answers a Wait and a Destroy.
class RecordingServer {
public:
    explicit RecordingServer(bool older) : dir_(MUST(testing::TempDir::create("recording"))), older_(older) {
        socket_ = dir_.path() + "/s.sock";
        listener_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        const sockaddr_un addr = MUST(unix_address(socket_));
        REQUIRE(::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listener_.get(), 1) == 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~RecordingServer() {
        // An accept still waiting (the client never came) takes this connection, and its end.
        if (auto poke = detail::connect_socket(socket_); !poke) WARN(poke.error().message);
        thread_.join();
    }
    const std::string& socket() const { return socket_; }
    // The requests it got, once the client closed the connection.
    std::vector<std::string> seen() {
        thread_.join();
        thread_ = std::thread([] {});
        return seen_;
    }

private:
    void serve() {
        UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) return;
        const UniqueFd pidfd(sys::pidfd_open(::getpid(), 0));
        ContainerInfo info;
        info.id = "recorded-1";
        info.pid = ::getpid();
        info.state = State::running;
        auto answer = [&](auto write, std::span<const int> fds = {}) {
            flatbuffers::FlatBufferBuilder fbb;
            write(fbb);
            (void)send_datagram(conn.get(), {fbb.GetBufferPointer(), fbb.GetSize()}, fds);
        };
        for (;;) {
            auto got = recv_datagram(conn.get());
            if (!got || got->bytes.empty()) return; // the client closed
            const wire::RequestMessage* m = verify_request(got->bytes);
            if (!m) return seen_.push_back("unverifiable");
            const std::uint32_t seq = m->seq();
            switch (m->request_type()) {
            case wire::Request::Launch: {
                const bool promised = !older_ && m->request_as_Launch()->destroy_on_exit();
                seen_.push_back(m->request_as_Launch()->destroy_on_exit() ? "Launch{destroy_on_exit}" : "Launch");
                const int fd = pidfd.get();
                answer([&](auto& fbb) { write_launch_reply(fbb, seq, info, false, false, promised); }, {&fd, 1});
                info.exit = ExitStatus{9, 0};
                info.state = State::destroyed;
                if (promised) answer([&](auto& fbb) { write_destroy_reply(fbb, seq, info); });
                break;
            }
            case wire::Request::Wait:
                seen_.push_back("Wait");
                answer([&](auto& fbb) { write_wait_reply(fbb, seq, info); });
                break;
            case wire::Request::Destroy:
                seen_.push_back("Destroy");
                answer([&](auto& fbb) { write_destroy_reply(fbb, seq, info); });
                break;
            default:
                seen_.push_back(wire::EnumNameRequest(m->request_type()));
                answer([&](auto& fbb) { write_error_reply(fbb, seq, Error{Errc::bad_request, "not in this test"}); });
            }
        }
    }

    testing::TempDir dir_;
    bool older_;
    std::string socket_;
    UniqueFd listener_;
    std::thread thread_;
    std::vector<std::string> seen_;
};

} // namespace

TEST_CASE("cli: run --socket makes one request for the whole run, and with a server before destroy_on_exit a Launch, a Wait and a Destroy") {
    for (const std::string& program : {bin("nsfork"), full_nsfork()}) {
        INFO(program);
        {
            RecordingServer current(false);
            auto r = run_process({program, "run", "--socket", current.socket(), "--", "/bin/true"});
            CHECK(r.exit_code == 9); // the exit code in the server's last word
            CHECK(r.err.empty());
            CHECK(current.seen() == std::vector<std::string>{"Launch{destroy_on_exit}"});
        }
        {
            RecordingServer older(true);
            auto r = run_process({program, "run", "--socket", older.socket(), "--", "/bin/true"});
            CHECK(r.exit_code == 9);
            CHECK(r.err.empty());
            CHECK(older.seen() == std::vector<std::string>{"Launch{destroy_on_exit}", "Wait", "Destroy"});
        }
    }
}

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

TEST_CASE("cli: without --socket no server runs: nsfork-shim is nsfork run's own child, in a cgroup of its own") {
    require_root();
    Started run = start_cli({"run", "--", probe(), "sleep"});
    REQUIRE(read_line(run.out.get()) == "ready");
    const auto children = testing::children_of(run.pid);
    REQUIRE(children.size() == 1);
    CHECK(comm_of(children[0]) == "nsfork-shim");
    const std::string cgroup = testing::default_cgroup_root(run.pid); // as a server's root is named
    if (!procfs::cgroup2_mount().empty()) CHECK(cgroup_of(children[0]) == cgroup);
    ::kill(run.pid, SIGTERM);
    CHECK(reap_code(run.pid) == 128 + SIGTERM);
    struct stat st;
    CHECK(::stat(cgroup.c_str(), &st) < 0); // removed with the container
}

TEST_CASE("cli: the front (bin/nsfork) runs `run [--socket S] -- CMD` itself, hands every other command line to the full program") {
    require_root();
    const std::string front = std::filesystem::canonical(bin("nsfork")).string();
    const std::string full = std::filesystem::canonical(full_nsfork()).string();
    ServerProcess server;
    struct Case {
        std::vector<std::string> args;
        std::string runs_in;
    };
    const std::vector<Case> cases = {
        // Without a terminal, as root, no option: the front clones the container itself.
        {{"run", "--"}, front},
        // Through a server: the front speaks the protocol.
        {{"run", "--socket", server.socket(), "--"}, front},
        // Another option: the full program, exec'd in the same process.
        {{"run", "--env", "A=1", "--"}, full},
        {{"run", "--socket", server.socket(), "--env", "A=1", "--"}, full},
    };
    for (const Case& c : cases) {
        std::string line;
        for (const auto& a : c.args) line += a + " ";
        INFO(line);
        std::vector<std::string> args = c.args;
        args.insert(args.end(), {probe(), "sleep"});
        Started run = start_cli(args);
        REQUIRE(read_line(run.out.get()) == "ready");
        CHECK(exe_of(run.pid) == c.runs_in);
        ::kill(run.pid, SIGTERM); // forwarded: the probe dies of it
        CHECK(reap_code(run.pid) == 128 + SIGTERM);
    }
    CHECK(MUST(server.connect().list()).empty()); // each destroyed after its end

    // The container is the same either way: what its command sees, its pid 1, its cgroup's place.
    const std::string look = "ps -e -o pid=,comm=; tr '\\0' ' ' </proc/1/cmdline; echo; "
                             // (not SigQ, the uid's queued signals host-wide, nor the mount count, which
                             // follows the host's mounts, which tests beside this one change)
                             "grep -E '^(Sig(Blk|Ign|Cgt)|Cap|NoNewPrivs|Seccomp|Umask|Cpus_allowed_list)' /proc/self/status; pwd; "
                             "ls /proc/self/fd; env | sort; "
                             "sed -E 's/nsfork-[0-9]+/nsfork-PID/; s|/c[0-9]+$|/cN|' /proc/self/cgroup";
    for (const std::vector<std::string>& via : {std::vector<std::string>{}, {"--socket", server.socket()}}) {
        INFO((via.empty() ? "without a server" : "through nsfork serve"));
        std::vector<std::string> by_front = {bin("nsfork"), "run"}, by_full = {full_nsfork(), "run"};
        for (auto* argv : {&by_front, &by_full}) {
            argv->insert(argv->end(), via.begin(), via.end());
            argv->insert(argv->end(), {"--", "sh", "-c", look});
        }
        auto front_run = run_process(by_front);
        auto full_run = run_process(by_full);
        CHECK(front_run.exit_code == 0);
        CHECK(front_run.err.empty());
        CHECK(front_run.out == full_run.out);
        CHECK(front_run.out.find("nsfork-shim --report-fd=3 --plan=4") != std::string::npos);
        // Cloned on the cloner's CPU (OnThisCpu), it runs wherever we may.
        std::string own = read_all(UniqueFd(::open("/proc/self/status", O_RDONLY | O_CLOEXEC)).get());
        own = own.substr(own.find("Cpus_allowed_list:"));
        CHECK(front_run.out.find(own.substr(0, own.find('\n') + 1)) != std::string::npos);
    }
    // A launch the server refuses is the full program's to report, as it always has.
    auto missing = nsfork_cli({"run", "--socket", server.socket(), "--", "no-such-command-anywhere"});
    CHECK(missing.exit_code == 127);
    CHECK(missing.err == "nsfork: cannot execute 'no-such-command-anywhere': No such file or directory\n");
}

TEST_CASE("cli: the caller's ignored signals and blocked mask reach the command, with and without a server") {
    require_root();
    ServerProcess server;
    for (bool private_run : {true, false}) {
        INFO((private_run ? "without a server" : "through nsfork serve"));
        std::vector<std::string> args = {"run"};
        if (!private_run) args.insert(args.end(), {"--socket", server.socket()});
        args.insert(args.end(), {"--", "grep", "^Sig", "/proc/self/status"});
        // (trap '' HUP; nsfork run -- grep SigIgn /proc/self/status), and `nohup`'s case.
        auto ignoring = nsfork_cli_with(args, {}, {SIGHUP});
        CHECK(ignoring.exit_code == 0);
        CHECK((signal_set(ignoring.out, "SigIgn") & bit(SIGHUP)));
        auto blocking = nsfork_cli_with(args, {SIGUSR1, SIGHUP}, {});
        CHECK(blocking.exit_code == 0);
        CHECK((signal_set(blocking.out, "SigBlk") & (bit(SIGUSR1) | bit(SIGHUP))) == (bit(SIGUSR1) | bit(SIGHUP)));
        // A caller that does neither passes neither on: not the server's, not nsfork's own.
        auto plain = nsfork_cli(args);
        CHECK(signal_set(plain.out, "SigIgn") == 0);
        CHECK(signal_set(plain.out, "SigBlk") == 0);
    }
}

TEST_CASE("cli: --kill-group forwards signals to the command's whole process group") {
    require_root();
    for (bool kill_group : {true, false}) {
        std::vector<std::string> args = {"run"};
        if (kill_group) args.push_back("--kill-group");
        args.insert(args.end(), {"--", probe(), "group-trap", std::to_string(SIGUSR1)});
        Started run = start_cli(args);
        REQUIRE(read_line(run.out.get()) == "ready");
        ::kill(run.pid, SIGUSR1);
        std::vector<std::string> caught = {read_line(run.out.get())};
        if (kill_group) {
            caught.push_back(read_line(run.out.get()));
            std::sort(caught.begin(), caught.end());
            CHECK(caught == std::vector<std::string>{"child caught 10", "parent caught 10"});
            CHECK(reap_code(run.pid) == 0);
        } else {
            CHECK(caught == std::vector<std::string>{"parent caught 10"}); // the command alone
            ::kill(run.pid, SIGTERM); // forwarded: the command dies of it, its child with the namespace
            CHECK(reap_code(run.pid) == 128 + SIGTERM);
        }
    }
}

TEST_CASE("cli: nsfork kill --all signals every process of the container") {
    require_root();
    ServerProcess server;
    const std::string& sock = server.socket();
    Started run = start_cli({"run", "--socket", sock, "--id", "all", "--", probe(), "group-trap", std::to_string(SIGUSR1)});
    REQUIRE(read_line(run.out.get()) == "ready");
    CHECK(nsfork_cli({"kill", "--socket", sock, "--signal", "USR1", "--all", "all"}).exit_code == 0);
    std::vector<std::string> caught = {read_line(run.out.get()), read_line(run.out.get())};
    std::sort(caught.begin(), caught.end());
    CHECK(caught == std::vector<std::string>{"child caught 10", "parent caught 10"});
    CHECK(reap_code(run.pid) == 0);
}

TEST_CASE("cli: --die-with-parent destroys the container when the parent of nsfork run dies") {
    require_root();
    ServerProcess server;
    for (bool private_run : {true, false}) {
        INFO((private_run ? "without a server" : "through nsfork serve"));
        std::string command = bin("nsfork") + " run --die-with-parent ";
        if (!private_run) command += "--socket " + server.socket() + " --id orphan ";
        // `; :` keeps sh waiting as nsfork's parent rather than exec'ing it.
        command += "-- " + probe() + " sleep; :";
        Pipe out;
        auto parent = testing::spawn({"/bin/sh", "-c", command}, out.write.get());
        REQUIRE(parent);
        out.write.reset();
        REQUIRE(read_line(out.read.get()) == "ready");
        const auto nsfork = testing::children_of(*parent);
        REQUIRE(nsfork.size() == 1);
        const auto pidns = procfs::pid_namespace_inode(nsfork[0]);
        std::uint64_t container_ns = 0;
        UniqueFd held; // the container's namespace, so that its inode stays its own
        if (private_run) {
            const auto shim = testing::children_of(nsfork[0]);
            REQUIRE(shim.size() == 1);
            container_ns = procfs::pid_namespace_inode(shim[0]);
            held = testing::hold_pid_namespace(shim[0]);
            CHECK(container_ns != pidns);
        }
        ::kill(*parent, SIGKILL);
        reap_code(*parent);
        CHECK(testing::eventually([&] { return !alive(nsfork[0]); }));
        if (private_run) {
            CHECK(testing::eventually([&] { return processes_in_pidns(container_ns).empty(); }));
            struct stat st;
            CHECK(::stat(testing::default_cgroup_root(nsfork[0]).c_str(), &st) < 0); // cleaned up, not killed
        } else {
            Client client = server.connect();
            CHECK(testing::eventually([&] {
                auto listed = client.list();
                return listed && listed->empty();
            }));
        }
    }
}

TEST_CASE("cli: --preserve-fds N passes fds 3..3+N-1 on, and refuses a closed one, naming it") {
    require_root();
    const std::string nsfork = bin("nsfork");
    auto passed = run_process({"/bin/sh", "-c",
                               "exec 3</dev/null 4<" + nsfork + " 5</dev/null; exec " + nsfork +
                                   " run --preserve-fds 2 -- " + probe() + " fds"});
    CHECK(passed.exit_code == 0);
    CHECK(passed.out == "0\n1\n2\n3\n4\n"); // not 5: only what was asked
    auto which = run_process({"/bin/sh", "-c",
                              "exec 3</dev/null 4<" + nsfork + "; exec " + nsfork +
                                  " run --preserve-fds 2 -- readlink /proc/self/fd/4"});
    CHECK(which.out == nsfork + "\n");
    auto closed = run_process({"/bin/sh", "-c", "exec 3</dev/null 4<&-; exec " + nsfork + " run --preserve-fds 2 -- true"});
    CHECK(closed.exit_code == 125);
    CHECK(closed.err == "nsfork: --preserve-fds 2: fd 4 is not open\n");
}

TEST_CASE("cli: socket activation: LISTEN_FDS passed with LISTEN_PID naming the command inside") {
    require_root();
    const std::string nsfork = bin("nsfork");
    const std::string report = " -- sh -c 'echo $LISTEN_PID $LISTEN_FDS $LISTEN_FDNAMES; readlink /proc/self/fd/3'";
    // LISTEN_PID names the process that execs nsfork: the fds are ours, and the command's (pid 2).
    auto ours = run_process({"/bin/sh", "-c",
                             "exec 3<" + nsfork + "; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec " + nsfork +
                                 " run" + report});
    CHECK(ours.exit_code == 0);
    CHECK(ours.out == "2 1 web\n" + nsfork + "\n");
    // Meant for another process: neither the variables nor the fd go on.
    auto stale = run_process({"/bin/sh", "-c",
                              "exec 3<" + nsfork + "; LISTEN_PID=1 LISTEN_FDS=1 LISTEN_FDNAMES=web exec " + nsfork +
                                  " run" + report});
    CHECK(stale.out == "\n");
}

TEST_CASE("cli: --user, --groups and --unsetenv") {
    require_root();
    auto nobody = nsfork_cli({"run", "--user", "nobody", "--groups", "daemon,2", "--", "sh", "-c", "id -u; id -g; id -G"});
    CHECK(nobody.exit_code == 0);
    CHECK(nobody.out == "65534\n65534\n65534 1 2\n");
    auto numeric = nsfork_cli({"run", "--user", "4242:4343", "--", "sh", "-c", "id -u; id -g; id -G"});
    CHECK(numeric.out == "4242\n4343\n4343\n"); // no groups of root's kept
    auto unknown = nsfork_cli({"run", "--user", "no-such-user-here", "--", "true"});
    CHECK(unknown.exit_code == 125);
    CHECK(unknown.err == "nsfork: no user named 'no-such-user-here' in this host's user database\n");

    ::setenv("NSFORK_GONE", "1", 1);
    ::setenv("NSFORK_SET", "1", 1);
    auto env = nsfork_cli({"run", "--unsetenv", "NSFORK_GONE", "--unsetenv", "NSFORK_SET", "--env", "NSFORK_SET=2",
                           "--", probe(), "env"});
    ::unsetenv("NSFORK_GONE");
    ::unsetenv("NSFORK_SET");
    auto vars = lines(env.out);
    CHECK(std::count(vars.begin(), vars.end(), "NSFORK_GONE=1") == 0);
    CHECK(std::count(vars.begin(), vars.end(), "NSFORK_SET=2") == 1); // --env wins, as with env -u
}

TEST_CASE("cli: without --socket, --share-pid-namespace shares the caller's namespace and --join-pidns joins one") {
    require_root();
    const std::string ours = std::to_string(procfs::pid_namespace_inode(0));
    auto shared = nsfork_cli({"run", "--share-pid-namespace", "--", probe(), "pidns"});
    CHECK(shared.exit_code == 0);
    CHECK(shared.out == ours + "\n");
    CHECK(nsfork_cli({"run", "--", probe(), "pidns"}).out != ours + "\n");

    Started host = start_cli({"run", "--", probe(), "sleep"});
    REQUIRE(read_line(host.out.get()) == "ready");
    const auto shim = testing::children_of(host.pid);
    REQUIRE(shim.size() == 1);
    const std::string ns = "/proc/" + std::to_string(shim[0]) + "/ns/pid";
    auto joined = nsfork_cli({"run", "--join-pidns", ns, "--", "sh", "-c", probe() + " pidns; " + probe() + " ps"});
    CHECK(joined.exit_code == 0);
    auto seen = lines(joined.out);
    REQUIRE(seen.size() >= 2);
    CHECK(seen[0] == std::to_string(procfs::pid_namespace_inode(shim[0])));
    CHECK(std::count(seen.begin(), seen.end(), "1") == 1); // the host container's pid 1 is seen from there
    ::kill(host.pid, SIGTERM);
    CHECK(reap_code(host.pid) == 128 + SIGTERM);
}
