#include "cgroups.hpp"

#include "base/procfs.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

namespace nsfork::bench {

namespace {

std::string read_text(int fd) {
    std::string out;
    char buf[512];
    ssize_t n;
    off_t at = 0;
    while ((n = ::pread(fd, buf, sizeof buf, at)) > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        at += n;
    }
    return out;
}

void sleep_us(long us) {
    const timespec ts{0, us * 1000};
    ::nanosleep(&ts, nullptr);
}

} // namespace

Result<std::string> own_cgroup2_dir() {
    const auto points = procfs::mount_points("cgroup2");
    if (points.empty()) return Error{Errc::unavailable, "no cgroup2 hierarchy is mounted"};
    const std::string rel = procfs::cgroup2_path();
    if (rel.empty()) return Error{Errc::unavailable, "/proc/self/cgroup has no cgroup2 (0::) line"};
    return points.front() + (rel == "/" ? "" : rel);
}

Result<std::string> freezer_root() {
    const auto points = procfs::mount_points("cgroup", "freezer");
    if (points.empty()) return Error{Errc::unavailable, "no cgroup v1 freezer hierarchy is mounted"};
    return points.front();
}

Result<CgroupDir> CgroupDir::create(std::string path, bool v2) {
    if (::mkdir(path.c_str(), 0755) < 0) return sys_error(Errc::internal, "cannot create cgroup " + path, errno);
    UniqueFd fd(::open(path.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!fd) {
        const int e = errno;
        ::rmdir(path.c_str());
        return sys_error(Errc::internal, "cannot open cgroup " + path, e);
    }
    return CgroupDir(std::move(path), v2, std::move(fd));
}

CgroupDir::CgroupDir(CgroupDir&& o) noexcept
    : path_(std::move(o.path_)), v2_(o.v2_), fd_(std::move(o.fd_)), removed_(std::exchange(o.removed_, true)) {}

Result<void> CgroupDir::remove() {
    if (removed_) return {};
    fd_.reset();
    if (::rmdir(path_.c_str()) < 0) return sys_error(Errc::internal, "cannot remove cgroup " + path_, errno);
    removed_ = true;
    return {};
}

CgroupDir::~CgroupDir() {
    if (removed_) return;
    // Something failed half-way: empty it (the error was already reported) so it can go.
    if (v2_) {
        (void)write_file(path_ + "/cgroup.kill", "1");
        UniqueFd events(::open((path_ + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
        if (events) (void)wait_unpopulated(events.get());
    } else {
        (void)write_file(path_ + "/freezer.state", "THAWED");
        if (auto pids = read_pids(path_ + "/cgroup.procs"))
            for (pid_t pid : *pids) ::kill(pid, SIGKILL);
        (void)wait_v1_empty(path_ + "/cgroup.procs");
    }
    reap_all_children();
    (void)remove();
}

Result<std::vector<pid_t>> read_pids(const std::string& procs_path) {
    UniqueFd fd(::open(procs_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return sys_error(Errc::internal, "cannot open " + procs_path, errno);
    std::vector<pid_t> pids;
    const std::string text = read_text(fd.get());
    const char* p = text.c_str();
    while (*p) {
        char* end;
        const long pid = std::strtol(p, &end, 10);
        if (end == p) break;
        pids.push_back(static_cast<pid_t>(pid));
        p = end;
    }
    return pids;
}

Result<void> write_file(const std::string& path, const std::string& text) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return sys_error(Errc::internal, "cannot open " + path, errno);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        return sys_error(Errc::internal, "cannot write '" + text + "' to " + path, errno);
    return {};
}

Result<void> wait_unpopulated(int events_fd) {
    for (;;) {
        // Read first, then poll: a change between the two still wakes the poll.
        if (read_text(events_fd).find("populated 0") != std::string::npos) return {};
        pollfd p{events_fd, POLLPRI, 0};
        if (::poll(&p, 1, -1) < 0 && errno != EINTR) return sys_error(Errc::internal, "poll(cgroup.events) failed", errno);
    }
}

Result<void> wait_v1_empty(const std::string& procs_path) {
    for (;;) {
        auto pids = read_pids(procs_path);
        if (!pids) return std::move(pids).error();
        if (pids->empty()) return {};
        sleep_us(50);
    }
}

void reap_all_children() {
    for (;;) {
        const pid_t r = ::waitpid(-1, nullptr, __WALL);
        if (r < 0 && errno != EINTR) return; // ECHILD: none left
    }
}

} // namespace nsfork::bench
