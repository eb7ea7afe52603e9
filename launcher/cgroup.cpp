#include "cgroup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nsfork {

std::string find_cgroup2_mount() {
    std::ifstream mountinfo("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mountinfo, line)) {
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
        const auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream tail(line.substr(dash + 3));
        std::string fstype;
        tail >> fstype;
        if (fstype != "cgroup2") continue;
        std::istringstream head(line.substr(0, dash));
        std::string id, parent, dev, root, mountpoint;
        head >> id >> parent >> dev >> root >> mountpoint;
        return mountpoint;
    }
    return {};
}

std::string own_cgroup2_path() {
    std::ifstream cgroup("/proc/self/cgroup");
    std::string line;
    while (std::getline(cgroup, line))
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    return "/";
}

Result<Cgroup> Cgroup::create(const std::string& parent, const std::string& name) {
    const std::string path = parent + "/" + name;
    if (::mkdir(path.c_str(), 0755) < 0) return sys_error(Errc::unavailable, "cannot create cgroup " + path, errno);
    UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
        const int err = errno;
        ::rmdir(path.c_str());
        return sys_error(Errc::unavailable, "cannot open cgroup " + path, err);
    }
    return Cgroup(path, std::move(dir), true);
}

Result<Cgroup> Cgroup::adopt(const std::string& path) {
    UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return sys_error(Errc::unavailable, "cannot open cgroup " + path, errno);
    if (::faccessat(dir.get(), "cgroup.procs", W_OK, 0) < 0)
        return sys_error(Errc::unavailable, path + " is not a writable cgroup v2 directory", errno);
    return Cgroup(path, std::move(dir), false);
}

Result<void> Cgroup::kill() const {
    UniqueFd f(::openat(dir_.get(), "cgroup.kill", O_WRONLY | O_CLOEXEC));
    if (!f || ::write(f.get(), "1", 1) != 1)
        return sys_error(Errc::internal, "cannot write " + path_ + "/cgroup.kill", errno);
    return {};
}

Result<bool> Cgroup::populated() const {
    UniqueFd f(::openat(dir_.get(), "cgroup.events", O_RDONLY | O_CLOEXEC));
    char buf[256];
    const ssize_t n = f ? ::read(f.get(), buf, sizeof buf - 1) : -1;
    if (n < 0) return sys_error(Errc::internal, "cannot read " + path_ + "/cgroup.events", errno);
    buf[n] = 0;
    const char* p = std::strstr(buf, "populated ");
    if (!p) return Error{Errc::internal, path_ + "/cgroup.events has no populated line"};
    return p[10] == '1';
}

Result<UniqueFd> Cgroup::open_events() const {
    UniqueFd f(::openat(dir_.get(), "cgroup.events", O_RDONLY | O_CLOEXEC));
    if (!f) return sys_error(Errc::internal, "cannot open " + path_ + "/cgroup.events", errno);
    return f;
}

Result<void> Cgroup::remove() {
    if (!owned_ || !dir_) return {};
    if (::rmdir(path_.c_str()) < 0) return sys_error(Errc::internal, "cannot remove cgroup " + path_, errno);
    dir_.reset();
    return {};
}

} // namespace nsfork
