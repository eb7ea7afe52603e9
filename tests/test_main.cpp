// The suite's main: runs Catch2, then fails the run if the test process leaked an fd or left a
// child unreaped (every test cleans up what it creates).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/wait.h>

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

} // namespace

int main(int argc, char** argv) {
    const std::set<int> before = open_fds();
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
    return result;
}
