#include "base/procfs.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nsfork::procfs {

namespace {

std::string proc_path(pid_t pid, const char* file) {
    return (pid == 0 ? std::string("/proc/self/") : "/proc/" + std::to_string(pid) + "/") + file;
}

} // namespace

bool parse_mount_line(std::string_view line, Mount& out) {
    const auto dash = line.find(" - ");
    if (dash == std::string_view::npos) return false;
    std::istringstream head{std::string(line.substr(0, dash))}, tail{std::string(line.substr(dash + 3))};
    std::string id, parent, dev, options;
    if (!(head >> id >> parent >> dev >> out.root >> out.mount_point >> options)) return false;
    if (!(tail >> out.fstype >> out.source)) return false;
    tail >> out.super_options; // may be empty
    return true;
}

std::vector<Mount> mounts(pid_t pid) {
    std::vector<Mount> out;
    std::ifstream in(proc_path(pid, "mountinfo"));
    for (std::string line; std::getline(in, line);)
        if (Mount m; parse_mount_line(line, m)) out.push_back(std::move(m));
    return out;
}

std::vector<std::string> mount_points(std::string_view fstype, std::string_view option) {
    std::vector<std::string> out;
    for (const Mount& m : mounts()) {
        if (m.fstype != fstype || m.root != "/") continue;
        if (!option.empty()) {
            bool found = false;
            std::istringstream opts(m.super_options);
            for (std::string o; std::getline(opts, o, ',');) found = found || o == option;
            if (!found) continue;
        }
        out.push_back(m.mount_point);
    }
    return out;
}

std::string cgroup2_mount() {
    for (const Mount& m : mounts())
        if (m.fstype == "cgroup2") return m.mount_point;
    return {};
}

std::string cgroup2_path_in(std::string_view text) {
    while (!text.empty()) {
        const auto eol = text.find('\n');
        const std::string_view line = text.substr(0, eol);
        if (line.starts_with("0::")) return std::string(line.substr(3));
        if (eol == std::string_view::npos) break;
        text.remove_prefix(eol + 1);
    }
    return {};
}

std::string cgroup2_path(pid_t pid) {
    // read(2), not an ifstream: when the process is reaped between the open and the read, the
    // read fails (ESRCH), which libstdc++'s filebuf throws, here out of a server's handler.
    const int fd = ::open(proc_path(pid, "cgroup").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { // gone meanwhile: no path, as for a process gone before the open
            text.clear();
            break;
        }
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return cgroup2_path_in(text);
}

long field(const std::string& path, std::string_view key) {
    FILE* f = std::fopen(path.c_str(), "re");
    if (!f) return -1;
    char line[256];
    long value = -1;
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, key.data(), key.size()) == 0 && line[key.size()] == ':') {
            value = std::strtol(line + key.size() + 1, nullptr, 10);
            break;
        }
    }
    std::fclose(f);
    return value;
}

long status_field(pid_t pid, std::string_view key) { return field(proc_path(pid, "status"), key); }

int thread_count() { return static_cast<int>(status_field(0, "Threads")); }

// readlink, not stat: the link's text ("pid:[INODE]") comes from the namespace itself, while a
// stat makes the namespace's nsfs dentry (and drops it once unused): 20-40 µs the first time for
// a process here, against ~5 for the readlink.
ino_t pid_namespace_inode(pid_t pid) {
    char link[64];
    const ssize_t n = ::readlink(proc_path(pid, "ns/pid").c_str(), link, sizeof link - 1);
    if (n <= 0) return 0;
    link[n] = '\0';
    unsigned long long inode = 0;
    if (std::sscanf(link, "pid:[%llu]", &inode) != 1) return 0;
    return static_cast<ino_t>(inode);
}

std::string cgroup2_path_of(int pidfd, int mount_fd, std::string_view mount) {
    // struct pidfd_info as Linux 6.13 has it (linux/pidfd.h): later kernels take this size too.
    struct Info {
        std::uint64_t mask, cgroupid;
        std::uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
        std::int32_t exit_code;
    };
    static_assert(sizeof(Info) == 64); // PIDFD_INFO_SIZE_VER0
    constexpr std::uint64_t kCgroupId = 1u << 2, kExit = 1u << 3; // PIDFD_INFO_CGROUPID, _EXIT
    constexpr unsigned long kGetInfo = _IOWR(0xFF, 11, Info); // PIDFD_GET_INFO
    Info info{};
    info.mask = kCgroupId | kExit;
    if (::ioctl(pidfd, kGetInfo, &info) < 0 || !(info.mask & kCgroupId)) return "";
    // A cgroup's file handle is its kernfs id (FILEID_KERNFS).
    alignas(file_handle) unsigned char by_id[sizeof(file_handle) + sizeof info.cgroupid]{};
    auto* handle = reinterpret_cast<file_handle*>(by_id);
    handle->handle_bytes = sizeof info.cgroupid;
    handle->handle_type = 0xfe;
    std::memcpy(handle->f_handle, &info.cgroupid, sizeof info.cgroupid);
    const int dir = ::open_by_handle_at(mount_fd, handle, O_PATH | O_CLOEXEC);
    if (dir < 0) return "";
    char link[32], path[4096];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", dir);
    const ssize_t n = ::readlink(link, path, sizeof path);
    ::close(dir);
    if (n <= 0 || static_cast<std::size_t>(n) >= sizeof path) return "";
    const std::string_view full(path, static_cast<std::size_t>(n));
    if (!full.starts_with(mount)) return "";
    const std::string_view inside = full.substr(mount.size());
    return inside.empty() ? "/" : std::string(inside);
}

ino_t pid_namespace_inode(pid_t pid, int pidfd) {
    constexpr unsigned long kGetPidNamespace = _IO(0xFF, 5); // PIDFD_GET_PID_NAMESPACE (linux/pidfd.h, 6.11)
    const int ns = ::ioctl(pidfd, kGetPidNamespace, 0);     // an nsfs fd, close-on-exec
    if (ns < 0) return pid_namespace_inode(pid);
    struct stat st {};
    const bool known = ::fstat(ns, &st) == 0;
    ::close(ns);
    return known ? st.st_ino : pid_namespace_inode(pid);
}

} // namespace nsfork::procfs
