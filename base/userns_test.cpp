// enter_user_namespace changes the process for good: each case runs in a forked child, as uid
// 65534 (dropped to when the suite runs as root), and sends back what went wrong.
#include "base/userns.hpp"

#include "nsfork/fd.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

using namespace nsfork;

namespace {

constexpr uid_t kNobody = 65534;

std::string read_file(const char* path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// An id map file's lines as "INSIDE OUTSIDE COUNT", space-separated.
std::string id_map(const char* path) {
    std::istringstream in(read_file(path));
    std::string out;
    for (std::string word; in >> word;) out += (out.empty() ? "" : " ") + word;
    return out;
}

// Drops root, if we have it, to uid and gid 65534 without supplementary groups.
std::string become_nobody() {
    if (::geteuid() != 0) return {};
    if (::setgroups(0, nullptr) < 0 || ::setresgid(kNobody, kNobody, kNobody) < 0 ||
        ::setresuid(kNobody, kNobody, kNobody) < 0)
        return "cannot drop to uid 65534";
    // Undumpable now, as a daemon that dropped root is: enter_user_namespace copes.
    return ::prctl(PR_GET_DUMPABLE) == 1 ? "still dumpable after dropping root" : "";
}

// Runs `body` as uid 65534 in a forked child; what it returns ("" for success) comes back.
std::string as_nobody(const std::function<std::string()>& body) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    UniqueFd in(fds[0]), out(fds[1]);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        in.reset();
        std::string failure = become_nobody();
        if (failure.empty()) failure = body();
        [[maybe_unused]] ssize_t n = ::write(out.get(), failure.data(), failure.size());
        ::_exit(0);
    }
    out.reset();
    std::string failure;
    char buf[512];
    for (ssize_t n; (n = ::read(in.get(), buf, sizeof buf)) > 0;) failure.append(buf, static_cast<std::size_t>(n));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    return failure;
}

ino_t user_namespace_inode() {
    struct stat st;
    return ::stat("/proc/self/ns/user", &st) == 0 ? st.st_ino : 0;
}

// What being privileged in the namespace is for: a mount namespace of our own.
std::string can_make_mount_namespace() {
    return ::unshare(CLONE_NEWNS) == 0 ? "" : "unshare(CLONE_NEWNS) failed: " + std::string(std::strerror(errno));
}

} // namespace

TEST_CASE("userns: an unprivileged process becomes root in a user namespace of its own") {
    CHECK(as_nobody([]() -> std::string {
              if (in_user_namespace()) return "in a user namespace before entering one";
              const int dumpable = ::prctl(PR_GET_DUMPABLE);
              if (auto ok = enter_user_namespace(); !ok) return ok.error().message;
              if (::prctl(PR_GET_DUMPABLE) != dumpable) return "the dumpable flag was not restored";
              if (!in_user_namespace()) return "in_user_namespace() is false after entering one";
              if (::getuid() != 0 || ::getgid() != 0) return "not uid and gid 0 inside";
              if (id_map("/proc/self/uid_map") != "0 65534 1") return "uid_map is " + id_map("/proc/self/uid_map");
              if (id_map("/proc/self/gid_map") != "0 65534 1") return "gid_map is " + id_map("/proc/self/gid_map");
              if (read_file("/proc/self/setgroups") != "deny\n") return "setgroups is not denied";
              return can_make_mount_namespace();
          }) == "");
}

TEST_CASE("userns: with current_user the caller keeps its uid and gid inside, and its capabilities") {
    CHECK(as_nobody([]() -> std::string {
              if (auto ok = enter_user_namespace(UserMapping::current_user); !ok) return ok.error().message;
              if (!in_user_namespace()) return "in_user_namespace() is false after entering one";
              if (::getuid() != kNobody || ::getgid() != kNobody)
                  return "uid " + std::to_string(::getuid()) + " inside, not 65534";
              if (id_map("/proc/self/uid_map") != "65534 65534 1") return "uid_map is " + id_map("/proc/self/uid_map");
              return can_make_mount_namespace();
          }) == "");
}

TEST_CASE("userns: a second call, as root inside the first namespace, keeps it") {
    CHECK(as_nobody([]() -> std::string {
              if (auto ok = enter_user_namespace(); !ok) return ok.error().message;
              const ino_t first = user_namespace_inode();
              if (auto ok = enter_user_namespace(); !ok) return "second call: " + ok.error().message;
              return user_namespace_inode() == first ? "" : "the second call made another namespace";
          }) == "");
}

TEST_CASE("userns: a threaded process is refused, and says why") {
    CHECK(as_nobody([]() -> std::string {
              int fds[2];
              if (::pipe2(fds, O_CLOEXEC) < 0) return "pipe2 failed";
              UniqueFd in(fds[0]), out(fds[1]);
              std::thread waiting([&] {
                  char c;
                  [[maybe_unused]] ssize_t n = ::read(in.get(), &c, 1);
              });
              auto ok = enter_user_namespace();
              out.reset();
              waiting.join();
              if (ok) return "a process with 2 threads entered a user namespace";
              if (in_user_namespace()) return "refused, yet in a user namespace";
              return ok.error().message.find("2 threads") != std::string::npos ? "" : ok.error().message;
          }) == "");
}

TEST_CASE("userns: with user.max_user_namespaces 0 the error names the setting") {
    // The limit is per user namespace: set to 0 in one made for the test, it forbids only
    // namespaces made inside that one.
    CHECK(as_nobody([]() -> std::string {
              if (auto ok = enter_user_namespace(UserMapping::current_user); !ok) return ok.error().message;
              {
                  std::ofstream limit("/proc/sys/user/max_user_namespaces");
                  limit << "0\n";
                  if (!limit.flush()) return "cannot set user.max_user_namespaces to 0 in our namespace";
              }
              auto ok = enter_user_namespace(); // still uid 65534 inside: not a no-op
              if (ok) return "entered a user namespace with user.max_user_namespaces 0";
              if (ok.error().code != Errc::unavailable || ok.error().sys_errno != ENOSPC)
                  return "unexpected error: " + ok.error().message;
              return ok.error().message.find("user.max_user_namespaces is 0") != std::string::npos
                         ? ""
                         : "the error does not name the setting: " + ok.error().message;
          }) == "");
}

TEST_CASE("userns: past the user.max_user_namespaces limit the error says it is reached") {
    CHECK(as_nobody([]() -> std::string {
              if (auto ok = enter_user_namespace(UserMapping::current_user); !ok) return ok.error().message;
              {
                  std::ofstream limit("/proc/sys/user/max_user_namespaces");
                  limit << "1\n";
                  if (!limit.flush()) return "cannot set user.max_user_namespaces to 1 in our namespace";
              }
              // The limit counts at every level above: the first one below is within it, a
              // second one, nested in the first, is not (and the setting reads as unlimited there).
              if (auto ok = enter_user_namespace(UserMapping::current_user); !ok) return "first: " + ok.error().message;
              auto ok = enter_user_namespace(UserMapping::current_user);
              if (ok) return "entered a second user namespace past a limit of 1";
              if (ok.error().sys_errno != ENOSPC) return "unexpected error: " + ok.error().message;
              return ok.error().message.find("too many user namespaces") != std::string::npos
                         ? ""
                         : "the error does not say the limit is reached: " + ok.error().message;
          }) == "");
}
