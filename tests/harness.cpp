#include "harness.hpp"
#include "base/procfs.hpp"

#include "launcher/cgroup.hpp"
#include "base/pidfd.hpp"

#include <catch2/catch.hpp>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

namespace nsfork::test {

std::string bin(const std::string& name) { return std::string(NSFORK_BIN_DIR) + "/" + name; }

void require_root() {
    if (::geteuid() == 0) return;
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") FAIL("this test needs root, and CI=true does not allow skipping it");
    std::fprintf(stderr, "SKIPPED: this test needs root (pid and mount namespaces need CAP_SYS_ADMIN)\n");
    std::fflush(stderr);
    std::_Exit(77);
}

TempDir::TempDir() {
    char tmpl[] = "/tmp/nsfork-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

namespace {

// posix_spawn of argv with the given fds for stdout and stderr (-1: inherit).
pid_t spawn_process(const std::vector<std::string>& argv, int out_fd, int err_fd) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_fd >= 0) posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (err_fd >= 0) posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    return pid;
}

int shell_code(int wstatus) {
    return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
}

} // namespace

ServerProcess::ServerProcess(std::vector<std::string> extra_args, std::vector<std::string> wrapper) {
    socket_ = dir_.path() + "/nsfork.sock";
    std::vector<std::string> argv = std::move(wrapper);
    argv.insert(argv.end(), {bin("nsfork"), "serve", "--socket", socket_, "--log-level", "warn"});
    // ctest runs the suite twice: with the warm pool (the default) and without it.
    if (const char* pool = std::getenv("NSFORK_TEST_WARM_POOL")) argv.insert(argv.end(), {"--warm-pool", pool});
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    pid_ = spawn_process(argv, -1, -1);
    // Ready once it accepts; bounded, and a server that died is reported at once.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        if (Client::connect(socket_)) return;
        int status;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            FAIL("nsfork serve exited before it listened, status " << shell_code(status));
        }
        if (std::chrono::steady_clock::now() > deadline) FAIL("nsfork serve did not listen within 10 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

ExitStatus ServerProcess::stop() {
    if (pid_ < 0) return {};
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFSIGNALED(status) ? ExitStatus{0, WTERMSIG(status)} : ExitStatus{WEXITSTATUS(status), 0};
}

ServerProcess::~ServerProcess() { stop(); }

Client ServerProcess::connect() const {
    auto c = Client::connect(socket_);
    REQUIRE(c);
    return std::move(*c);
}

Pipe::Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
}

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

std::string read_line(int fd) {
    std::string out;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n') out += c;
    return out;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (end > start) out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

RunResult run(Client& client, std::vector<std::string> argv, std::vector<std::string> env) {
    if (env.empty()) env = {kPath};
    Pipe out;
    LaunchOptions o;
    o.argv = std::move(argv);
    o.env = std::move(env);
    o.stdio = {-1, out.write.get(), out.write.get()};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    RunResult r;
    r.out = read_all(out.read.get());
    auto status = client.wait(ct->id());
    REQUIRE(status);
    r.status = *status;
    auto gone = client.destroy(ct->id());
    REQUIRE(gone);
    r.info = *gone;
    return r;
}

ProcessResult run_process(const std::vector<std::string>& argv) {
    Pipe out, err;
    const pid_t pid = spawn_process(argv, out.write.get(), err.write.get());
    out.write.reset();
    err.write.reset();
    ProcessResult r;
    pollfd fds[2] = {{out.read.get(), POLLIN, 0}, {err.read.get(), POLLIN, 0}};
    int open_count = 2;
    char buf[4096];
    while (open_count > 0) {
        if (::poll(fds, 2, -1) < 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            else {
                fds[i].fd = -1;
                --open_count;
            }
        }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = shell_code(status);
    return r;
}

std::string cgroup_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("0::", 0) == 0) return procfs::cgroup2_mount() + line.substr(3);
    return {};
}

std::vector<pid_t> cgroup_procs(const std::string& dir) {
    std::vector<pid_t> pids;
    std::ifstream procs(dir + "/cgroup.procs");
    for (pid_t p; procs >> p;) pids.push_back(p);
    return pids;
}

bool alive(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto paren = text.rfind(')');
    return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z' && text[paren + 2] != 'X';
}

std::vector<pid_t> processes_in_pidns(std::uint64_t pidns) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    REQUIRE(d);
    while (dirent* e = ::readdir(d)) {
        char* end;
        const long pid = std::strtol(e->d_name, &end, 10);
        if (*end != 0 || e->d_name[0] == 0) continue;
        if (procfs::pid_namespace_inode(static_cast<pid_t>(pid)) == pidns && alive(static_cast<pid_t>(pid)))
            out.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(d);
    return out;
}

} // namespace nsfork::test
