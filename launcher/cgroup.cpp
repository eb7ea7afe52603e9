#include "launcher/cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace nsfork {

namespace {

using Clock = std::chrono::steady_clock;

// rmdir of `path`'s sub-cgroups, deepest first, then of `path`. A sub-cgroup that vanished
// meanwhile (its own owner removed it) is fine; the first other failure is returned.
Result<void> remove_tree(const std::string& path) {
    // Most leaves have no sub-cgroup: the subtree is listed only when rmdir refuses (EBUSY).
    if (::rmdir(path.c_str()) == 0) return {};
    if (errno != EBUSY && errno != ENOTEMPTY) return sys_error(Errc::internal, "cannot remove cgroup " + path, errno);
    for (const std::string& sub : sub_cgroup_names(path)) {
        auto removed = remove_tree(path + "/" + sub);
        if (!removed && removed.error().sys_errno != ENOENT) return removed;
    }
    if (::rmdir(path.c_str()) < 0) return sys_error(Errc::internal, "cannot remove cgroup " + path, errno);
    return {};
}

// Reads "populated" from an open cgroup.events.
Result<bool> read_populated(int events, const std::string& path) {
    char buf[256];
    const ssize_t n = ::pread(events, buf, sizeof buf - 1, 0);
    if (n < 0) return sys_error(Errc::internal, "cannot read " + path + "/cgroup.events", errno);
    buf[n] = 0;
    const char* p = std::strstr(buf, "populated ");
    if (!p) return Error{Errc::internal, path + "/cgroup.events has no populated line"};
    return p[10] == '1';
}

} // namespace

std::vector<std::string> sub_cgroup_names(const std::string& path) {
    std::vector<std::string> out;
    DIR* dir = ::opendir(path.c_str());
    if (!dir) return out;
    while (const dirent* e = ::readdir(dir)) {
        if (e->d_type != DT_DIR || std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        out.emplace_back(e->d_name);
    }
    ::closedir(dir);
    return out;
}

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

Result<Cgroup> Cgroup::take(const std::string& path) {
    if (::access((path + "/cgroup.kill").c_str(), W_OK) < 0)
        return sys_error(Errc::unavailable, "cannot take cgroup " + path + " (not a writable cgroup v2 directory)",
                         errno);
    return Cgroup(path, true);
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
    return read_populated(f->get(), path_);
}

Result<bool> Cgroup::populated(int events) const { return read_populated(events, path_); }

Result<UniqueFd> Cgroup::open_events() const { return open_file("cgroup.events", O_RDONLY); }

Result<void> Cgroup::remove() {
    if (!owned_) return {};
    if (auto removed = remove_tree(path_); !removed) return removed;
    owned_ = false;
    return {};
}

bool Cgroup::remove_if_empty() {
    if (!owned_) return false;
    if (::rmdir(path_.c_str()) < 0 && errno != ENOENT) return false;
    owned_ = false;
    return true;
}

Result<void> Cgroup::destroy(std::chrono::milliseconds timeout) {
    if (!owned_) return {};
    const auto deadline = Clock::now() + timeout;
    auto events = open_events();
    if (!events) return std::move(events).error();
    // "populated" covers the whole subtree and cgroup.kill kills it, sub-cgroups included (and
    // a fork racing with it): one kill at the top, one wait.
    for (bool killed = false;;) {
        auto busy = read_populated(events->get(), path_);
        if (!busy) return std::move(busy).error();
        if (!*busy) break;
        if (!killed) {
            if (auto k = kill(); !k) return k;
            killed = true;
            continue;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0)
            return Error{Errc::internal, "cgroup " + path_ + " still has processes after cgroup.kill", EBUSY};
        pollfd p{events->get(), POLLPRI, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR)
            return sys_error(Errc::internal, "cannot poll " + path_ + "/cgroup.events", errno);
    }
    return remove();
}

void Cgroup::destroy_quietly() noexcept {
    if (!owned_) return;
    try {
        (void)destroy();
    } catch (...) { // std::bad_alloc building a message: nothing better to do in a destructor
    }
    owned_ = false; // whatever happened, never twice
}

} // namespace nsfork
