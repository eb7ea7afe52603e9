#include "testing/process.hpp"

#include "nsfork/fd.hpp"
#include "base/procfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string_view>

extern char** environ;

namespace nsfork::testing {

namespace {

std::mutex spawned_mutex;
std::vector<pid_t> spawned_pids;

} // namespace

std::vector<pid_t> spawned() {
    const std::lock_guard lock(spawned_mutex);
    return spawned_pids;
}

Result<pid_t> spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_fd >= 0) posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (err_fd >= 0) posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    pid_t pid = -1;
    const int rc = argv.empty() ? EINVAL : ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return sys_error(Errc::unavailable, "cannot start " + (argv.empty() ? "nothing" : argv[0]), rc);
    const std::lock_guard lock(spawned_mutex);
    spawned_pids.push_back(pid);
    return pid;
}

int shell_code(int wstatus) { return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus); }

Result<ProcessResult> run_process(const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return sys_error(Errc::internal, "pipe2", errno);
    UniqueFd out_read(out[0]), out_write(out[1]);
    if (::pipe2(err, O_CLOEXEC) != 0) return sys_error(Errc::internal, "pipe2", errno);
    UniqueFd err_read(err[0]), err_write(err[1]);
    auto pid = spawn(argv, out_write.get(), err_write.get());
    if (!pid) return std::move(pid).error();
    out_write.reset();
    err_write.reset();
    ProcessResult r;
    // Both pipes drained together: a child that fills one while we block on the other would hang.
    pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
    int open_count = 2;
    char buf[4096];
    while (open_count > 0) {
        if (::poll(fds, 2, -1) < 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            else if (n == 0 || errno != EINTR) {
                fds[i].fd = -1;
                --open_count;
            }
        }
    }
    int status = 0;
    while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {}
    r.exit_code = shell_code(status);
    return r;
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

bool alive(pid_t pid) {
    // read(2), not an ifstream: a process that exits between the open and the read fails the read
    // (ESRCH), which libstdc++'s filebuf throws as an exception out of the caller's /proc scan.
    char buf[1024];
    const int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n <= 0) return false;
    const std::string_view text(buf, static_cast<std::size_t>(n));
    const auto paren = text.rfind(')');
    return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z' && text[paren + 2] != 'X';
}

std::size_t fd_count(pid_t pid) {
    std::size_t n = 0;
    DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
    if (!d) return 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
}

std::vector<pid_t> children_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::vector<pid_t> out;
    for (pid_t child; f >> child;) out.push_back(child);
    return out;
}

std::vector<pid_t> processes_in_pidns(std::uint64_t pidns) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    if (!d) return out;
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

UniqueFd hold_pid_namespace(pid_t pid) {
    return UniqueFd(::open(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
}

std::string cgroup_of(pid_t pid) {
    const std::string path = procfs::cgroup2_path(pid);
    if (path.empty()) return {};
    return procfs::cgroup2_mount() + path;
}

std::vector<pid_t> cgroup_procs(const std::string& dir) {
    std::vector<pid_t> pids;
    std::ifstream procs(dir + "/cgroup.procs");
    for (pid_t p; procs >> p;) pids.push_back(p);
    return pids;
}

std::string default_cgroup_root(pid_t server) {
    std::string own = procfs::cgroup2_path();
    if (own == "/") own.clear();
    return procfs::cgroup2_mount() + own + "/nsfork-" + std::to_string(server);
}

} // namespace nsfork::testing
