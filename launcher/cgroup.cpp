#include "launcher/cgroup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nsfork {

Result<Cgroup> Cgroup::create(const std::string& parent, const std::string& name) {
    const std::string path = parent + "/" + name;
    if (::mkdir(path.c_str(), 0755) < 0) return sys_error(Errc::unavailable, "cannot create cgroup " + path, errno);
    return Cgroup(path, true);
}

Result<Cgroup> Cgroup::adopt(const std::string& path) {
    if (::access((path + "/cgroup.procs").c_str(), W_OK) < 0)
        return sys_error(Errc::unavailable, "cannot open cgroup " + path + " (not a writable cgroup v2 directory)",
                         errno);
    return Cgroup(path, false);
}

Result<UniqueFd> Cgroup::open_dir() const {
    UniqueFd dir(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return sys_error(Errc::unavailable, "cannot open cgroup " + path_, errno);
    return dir;
}

Result<UniqueFd> Cgroup::open_file(const char* name, int flags) const {
    UniqueFd f(::open((path_ + "/" + name).c_str(), flags | O_CLOEXEC));
    if (!f) return sys_error(Errc::internal, "cannot open " + path_ + "/" + name, errno);
    return f;
}

Result<void> Cgroup::kill() const {
    auto f = open_file("cgroup.kill", O_WRONLY);
    if (!f) return std::move(f).error();
    if (::write(f->get(), "1", 1) != 1) return sys_error(Errc::internal, "cannot write " + path_ + "/cgroup.kill", errno);
    return {};
}

Result<bool> Cgroup::populated() const {
    auto f = open_events();
    if (!f) return std::move(f).error();
    char buf[256];
    const ssize_t n = ::read(f->get(), buf, sizeof buf - 1);
    if (n < 0) return sys_error(Errc::internal, "cannot read " + path_ + "/cgroup.events", errno);
    buf[n] = 0;
    const char* p = std::strstr(buf, "populated ");
    if (!p) return Error{Errc::internal, path_ + "/cgroup.events has no populated line"};
    return p[10] == '1';
}

Result<UniqueFd> Cgroup::open_events() const { return open_file("cgroup.events", O_RDONLY); }

Result<void> Cgroup::remove() {
    if (!owned_ || removed_) return {};
    if (::rmdir(path_.c_str()) < 0) return sys_error(Errc::internal, "cannot remove cgroup " + path_, errno);
    removed_ = true;
    return {};
}

} // namespace nsfork
