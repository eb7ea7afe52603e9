// The suite's main: runs Catch2, then fails the run if the test process leaked an fd, left a
// child unreaped, or left a cgroup tree behind (every test cleans up what it creates).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "base/procfs.hpp"
#include "testing/process.hpp"

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

namespace {

std::set<int> open_fds() {
    std::set<int> fds;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return fds;
    const int own = ::dirfd(d);
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.' && std::atoi(e->d_name) != own) fds.insert(std::atoi(e->d_name));
    ::closedir(d);
    return fds;
}

// Describes what the fd points at, for the report.
std::string target(int fd) {
    char link[64], buf[512];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = ::readlink(link, buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
}

// Where servers make their default cgroup roots (nsfork-<server pid>) and the tests their own
// (nsfork-hardening-<test pid>): this process's cgroup v2 directory; "" without cgroup2.
std::string cgroup_parent() {
    const std::string mount = nsfork::procfs::cgroup2_mount(), own = nsfork::procfs::cgroup2_path();
    if (mount.empty() || own.empty()) return {};
    return mount + (own == "/" ? "" : own);
}

// The nsfork-* directories in `parent`.
std::set<std::string> nsfork_cgroups(const std::string& parent) {
    std::set<std::string> out;
    DIR* d = parent.empty() ? nullptr : ::opendir(parent.c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d))
        if (e->d_type == DT_DIR && std::string_view(e->d_name).starts_with("nsfork-")) out.insert(e->d_name);
    ::closedir(d);
    return out;
}

// New nsfork-* trees this process is answerable for: those of servers it started itself (a
// SIGKILLed server leaves its tree, which the test that killed it must remove) and its own
// test cgroups. Other test processes run beside this one: their trees are not ours to count.
std::vector<std::string> leaked_cgroups(const std::string& parent, const std::set<std::string>& before) {
    std::set<std::string> ours = {"nsfork-hardening-" + std::to_string(::getpid())};
    for (pid_t pid : nsfork::testing::spawned()) ours.insert("nsfork-" + std::to_string(pid));
    std::vector<std::string> out;
    for (const std::string& name : nsfork_cgroups(parent))
        if (!before.count(name) && ours.count(name)) out.push_back(parent + "/" + name);
    return out;
}

} // namespace

int main(int argc, char** argv) {
    const std::set<int> before = open_fds();
    const std::string cgroups = cgroup_parent();
    const std::set<std::string> cgroups_before = nsfork_cgroups(cgroups);
    int result = Catch::Session().run(argc, argv);

    for (int fd : open_fds())
        if (!before.count(fd)) {
            std::fprintf(stderr, "LEAK: fd %d (%s) is still open after the tests\n", fd, target(fd).c_str());
            result = 1;
        }
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0) {
        std::fprintf(stderr, "LEAK: child %d was left %s by the tests\n", info.si_pid,
                     info.si_pid ? "unreaped" : "running");
        result = 1;
    }
    for (const std::string& dir : leaked_cgroups(cgroups, cgroups_before)) {
        std::fprintf(stderr, "LEAK: cgroup %s was left behind by the tests\n", dir.c_str());
        result = 1;
    }
    return result;
}
