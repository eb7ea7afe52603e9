// Socket activation against the real binaries: `nsfork serve` started by systemd-socket-activate
// (Debian's `systemd` package) on the first connection, as systemd's nsfork.socket starts it;
// what it refuses to serve on; and the systemd units of packaging/, checked by systemd-analyze.
#include "harness.hpp"
#include "base/unix_socket.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace nsfork;
using namespace nsfork::test;
namespace fs = std::filesystem;

namespace {

const std::string kActivate = "/usr/bin/systemd-socket-activate";
const std::string kAnalyze = "/usr/bin/systemd-analyze";

// Skips the test (exit code 77) when `tool` is missing, failing instead under CI=true.
void require_tool(const std::string& tool) {
    if (::access(tool.c_str(), X_OK) == 0) return;
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") FAIL(tool << " is missing (Debian package systemd), and CI=true does not allow skipping");
    std::fprintf(stderr, "SKIPPED: %s is missing (Debian package systemd)\n", tool.c_str());
    std::fflush(stderr);
    std::_Exit(77);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

bool exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
}

// What /proc/PID/fd/FD points at ("socket:[N]"), "" if nothing.
std::string fd_target(pid_t pid, int fd) {
    std::error_code ec;
    auto target = fs::read_symlink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec);
    return ec ? std::string() : target.string();
}

// Every fd target of `pid`.
std::vector<std::string> fd_targets(pid_t pid) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec))
        out.push_back(fs::read_symlink(e.path(), ec).string());
    return out;
}

// A connection of `type` to the socket at `path`: enough to wake systemd-socket-activate.
UniqueFd connect_raw(const std::string& path, int type) {
    auto addr = unix_address(path);
    REQUIRE(addr);
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0);
    return fd;
}

// Whether the socket bound at `path` listens (/proc/net/unix: its flags have __SO_ACCEPTCON,
// 0x10000). systemd-socket-activate binds before it listens, and a connect in between is refused.
bool listening(const std::string& path) {
    std::ifstream in("/proc/net/unix");
    std::string line;
    std::getline(in, line); // the header
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string num, refs, protocol, flags, type, state, inode, bound;
        fields >> num >> refs >> protocol >> flags >> type >> state >> inode >> bound;
        if (bound == path && (std::stoul(flags, nullptr, 16) & 0x10000)) return true;
    }
    return false;
}

// An argument of Activated's `serve_args` that stands for its socket's path.
const std::string kItsSocket = "{socket}";

// systemd-socket-activate listening on a fresh socket, which execs `nsfork serve --log-level
// info` plus `serve_args` in its own place (same pid) on the first connection attempt, as systemd
// does for nsfork.socket. Its stderr (the server's log) goes to a file. SIGTERMed and reaped on
// destruction.
class Activated {
public:
    explicit Activated(const std::vector<std::string>& serve_args = {}, bool seqpacket = true) {
        socket_ = dir_.path() + "/nsfork.sock";
        log_ = dir_.path() + "/stderr";
        UniqueFd err(::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        REQUIRE(err);
        std::vector<std::string> argv = {kActivate, "-l", socket_};
        if (seqpacket) argv.push_back("--seqpacket");
        argv.insert(argv.end(), {bin("nsfork"), "serve", "--log-level", "info"});
        for (const std::string& arg : serve_args) argv.push_back(arg == kItsSocket ? socket_ : arg);
        pid_ = MUST(testing::spawn(argv, -1, err.get()));
        REQUIRE(testing::eventually([&] { return listening(socket_); }));
    }
    ~Activated() { (void)stop(); }

    const std::string& socket() const { return socket_; }
    pid_t pid() const { return pid_; }
    std::string log() const { return read_file(log_); }
    // The program the process runs: systemd-socket-activate, then nsfork once a client came.
    std::string program() const {
        std::error_code ec;
        return fs::read_symlink("/proc/" + std::to_string(pid_) + "/exe", ec).string();
    }
    // SIGTERM, and how it ended.
    ExitStatus stop() {
        if (pid_ < 0) return {};
        ::kill(pid_, SIGTERM);
        return wait();
    }
    // Waits for it to end by itself.
    ExitStatus wait() {
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {}
        pid_ = -1;
        return WIFSIGNALED(status) ? ExitStatus{0, WTERMSIG(status)} : ExitStatus{WEXITSTATUS(status), 0};
    }

private:
    TempDir dir_;
    std::string socket_, log_;
    pid_t pid_ = -1;
};

std::string canonical(const std::string& path) { return fs::canonical(path).string(); }

} // namespace

TEST_CASE("activation: the first connection starts nsfork serve, which serves it and the next ones") {
    require_root();
    require_tool(kActivate);
    Activated a;
    // Nothing of nsfork runs before a client comes: only the activator, with no child.
    CHECK(a.program() == kActivate);
    CHECK(testing::children_of(a.pid()).empty());

    Client first = MUST(Client::connect(a.socket()));
    auto r = run(first, {probe(), "exit", "3"});
    CHECK(r.status.shell_code() == 3);
    // The activator became the server (same pid: LISTEN_PID names it): the front exec'd the full program.
    CHECK(a.program() == canonical(full_nsfork()));

    Client second = MUST(Client::connect(a.socket()));
    CHECK(run(second, {probe(), "exit", "4"}).status.shell_code() == 4);
    CHECK(run(first, {probe(), "exit", "5"}).status.shell_code() == 5);
    CHECK(MUST(second.list()).empty());
    CHECK(a.log().find("listening on " + a.socket() + " (socket activation)") != std::string::npos);
}

TEST_CASE("activation: containers get neither the server's LISTEN_* variables nor its socket") {
    require_root();
    require_tool(kActivate);
    Activated a;
    Client client = MUST(Client::connect(a.socket()));
    // The command's environment is the request's, its fds its stdio.
    auto env = run(client, {probe(), "env"}, {kPath, "KEPT=1"});
    CHECK(lines(env.out) == std::vector<std::string>{kPath, "KEPT=1"});
    CHECK(lines(run(client, {probe(), "fds"}).out) == std::vector<std::string>{"0", "1", "2"});

    // The server's listening socket (fd 3, from the activator) is in no container process.
    const std::string listening = fd_target(a.pid(), 3);
    REQUIRE(listening.starts_with("socket:["));
    Container ct = launch_with(client, "sleeper", {probe(), "sleep"});
    std::vector<pid_t> inside = {ct.pid()};
    REQUIRE(testing::eventually([&] { return !testing::children_of(ct.pid()).empty(); }));
    for (pid_t child : testing::children_of(ct.pid())) inside.push_back(child);
    for (pid_t pid : inside) {
        INFO("pid " << pid);
        for (const std::string& target : fd_targets(pid)) CHECK(target != listening);
        CHECK(read_file("/proc/" + std::to_string(pid) + "/environ").find("LISTEN_") == std::string::npos);
    }
    MUST(client.destroy("sleeper"));
}

TEST_CASE("activation: SIGTERM ends the server, its containers and cgroups, and leaves the socket file to its owner") {
    require_root();
    require_tool(kActivate);
    // Given both, --socket and the passed socket must agree: they do, and it serves on the
    // passed one (it binds nothing, so the file stays systemd's even though --socket names it).
    Activated a({"--socket", kItsSocket});
    std::optional<Client> client(MUST(Client::connect(a.socket())));
    Container ct = launch_with(*client, "sleeper", {probe(), "sleep"});
    const pid_t init = ct.pid();
    const std::string cgroups = testing::default_cgroup_root(a.pid());
    CHECK(exists(cgroups));
    CHECK(a.stop().shell_code() == 0);
    CHECK(testing::eventually([&] { return !alive(init); }));
    CHECK_FALSE(exists(cgroups));
    // The socket is the service manager's: systemd removes it (RemoveOnStop=), not the server.
    CHECK(exists(a.socket()));
    client.reset();
}

TEST_CASE("activation: a --socket that names another socket than the passed one is refused") {
    require_root();
    require_tool(kActivate);
    Activated a({"--socket", "/run/nsfork-elsewhere.sock"});
    UniqueFd wake = connect_raw(a.socket(), SOCK_SEQPACKET);
    CHECK(a.wait().shell_code() == 125);
    CHECK(a.log().find("nsfork: --socket /run/nsfork-elsewhere.sock is not the socket the service manager passed (" +
                       a.socket() + "); give the same path, or no --socket") != std::string::npos);
}

TEST_CASE("activation: a passed socket of the wrong kind is refused, naming what it is, and serve exits 125") {
    require_tool(kActivate);
    // A stream socket (systemd-socket-activate without --seqpacket, ListenStream= in a unit).
    Activated stream({}, false);
    UniqueFd wake = connect_raw(stream.socket(), SOCK_STREAM);
    CHECK(stream.wait().shell_code() == 125);
    CHECK(stream.log().find("nsfork: socket activation: fd 3 is a SOCK_STREAM socket, not SOCK_SEQPACKET") !=
          std::string::npos);

    // Not a socket at all.
    const std::string nsfork = bin("nsfork");
    auto file = run_process({"/bin/sh", "-c", "exec 3</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec " + nsfork + " serve"});
    CHECK(file.exit_code == 125);
    CHECK(file.err == "nsfork: socket activation: fd 3 is a character device, not a socket\n");
    // Two fds where one is expected.
    auto two = run_process({"/bin/sh", "-c", "exec 3</dev/null 4</dev/null; LISTEN_PID=$$ LISTEN_FDS=2 exec " + nsfork + " serve"});
    CHECK(two.exit_code == 125);
    CHECK(two.err == "nsfork: socket activation: 2 fds passed (LISTEN_FDS=2); nsfork serve takes exactly one listening "
                     "socket\n");
}

TEST_CASE("activation: LISTEN_* meant for another process are ignored: serve then needs --socket") {
    const std::string nsfork = bin("nsfork");
    auto r = run_process({"/bin/sh", "-c", "exec 3</dev/null; LISTEN_PID=1 LISTEN_FDS=1 exec " + nsfork + " serve"});
    CHECK(r.exit_code == 125);
    CHECK(r.err == "nsfork: serve: --socket PATH is required (LISTEN_FDS is set, but LISTEN_PID does not name this "
                   "process: no socket was passed to it)\n");
    auto none = run_process({nsfork, "serve"});
    CHECK(none.exit_code == 125);
    CHECK(none.err == "nsfork: serve: --socket PATH is required (see nsfork serve --help)\n");
}

TEST_CASE("activation: the installed systemd units start the installed nsfork and pass systemd-analyze verify") {
    require_tool(kAnalyze);
    // Installed as `cmake --install --prefix P` does, for nsfork (cli/) and the units alone.
    TempDir prefix;
    for (const char* dir : {"cli", "packaging"}) {
        auto installed = run_process({"/usr/bin/env", "cmake", "-DCMAKE_INSTALL_PREFIX=" + prefix.path(), "-P",
                                      bin("../" + std::string(dir) + "/cmake_install.cmake")});
        INFO(installed.err);
        REQUIRE(installed.exit_code == 0);
    }
    const std::string units = prefix.path() + "/lib/systemd/system";
    const std::string service = read_file(units + "/nsfork.service");
    CHECK(service.find('@') == std::string::npos); // every @VARIABLE@ configured
    CHECK(read_file(units + "/nsfork.socket").find("\nListenSequentialPacket=/run/nsfork/nsfork.sock\n") !=
          std::string::npos);
    // ExecStart names nsfork where the install put it.
    const auto exec_at = service.find("\nExecStart=");
    REQUIRE(exec_at != std::string::npos);
    const auto exec_end = service.find('\n', exec_at + 1);
    CHECK(service.substr(exec_at + 11, exec_end - exec_at - 11) == prefix.path() + "/bin/nsfork serve");
    CHECK(::access((prefix.path() + "/bin/nsfork").c_str(), X_OK) == 0);
    // systemd-analyze needs no running systemd. Unknown keys and bad values only warn (exit 0):
    // its output must be empty too.
    auto r = run_process({kAnalyze, "verify", units + "/nsfork.socket", units + "/nsfork.service"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
}
