// launcher/cgroup: leaves under a test-owned subtree of the real cgroup2 hierarchy.
#include "harness.hpp"
#include "base/procfs.hpp"
#include "launcher/cgroup.hpp"

#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

using namespace nsfork;
using namespace nsfork::test;

namespace {

// A test-owned cgroup under the test process's own, created by the caller's Cgroup::create.
std::string test_parent() {
    std::string own = procfs::cgroup2_path();
    if (own == "/") own.clear();
    return procfs::cgroup2_mount() + own;
}

// Forks a child that moves itself into `dir` and waits there, still alive when this returns.
pid_t park_process_in(const std::string& dir) {
    Pipe ready;
    const pid_t child = ::fork();
    if (child == 0) {
        const std::string pid = std::to_string(::getpid());
        FILE* procs = std::fopen((dir + "/cgroup.procs").c_str(), "we");
        if (!procs || std::fputs(pid.c_str(), procs) < 0 || std::fclose(procs) != 0) ::_exit(1);
        [[maybe_unused]] auto n = ::write(ready.write.get(), "x", 1);
        for (;;) ::pause();
    }
    ready.write.reset();
    char c;
    if (child < 0 || ::read(ready.read.get(), &c, 1) != 1) return -1;
    return child;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Reaps `child` if it dies within 5 s and returns its wait status; else SIGKILLs and reaps it
// (so that a failing test leaves nothing behind) and returns -1.
int reap_within_5s(pid_t child) {
    int status = 0;
    for (int i = 0; i < 500; ++i) {
        if (::waitpid(child, &status, WNOHANG) == child) return status;
        ::usleep(10'000);
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    return -1;
}

} // namespace

TEST_CASE("cgroup: going out of scope kills a nested sub-cgroup's live process and removes the tree") {
    require_root();
    auto root = Cgroup::create(test_parent(), "nsfork-test-scope-" + std::to_string(::getpid()));
    REQUIRE(root);
    std::string leaf_path, nested;
    pid_t child = -1;
    {
        auto leaf = Cgroup::create(root->path(), "leaf");
        REQUIRE(leaf);
        leaf_path = leaf->path();
        // A sub-cgroup made behind the object's back, as a container with delegation would.
        nested = leaf_path + "/made-inside";
        REQUIRE(::mkdir(nested.c_str(), 0755) == 0);
        child = park_process_in(nested);
        REQUIRE(child > 0);
        REQUIRE(*leaf->populated());
    }
    const int status = reap_within_5s(child);
    REQUIRE(status != -1);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK_FALSE(exists(nested));
    CHECK_FALSE(exists(leaf_path));
    if (exists(nested)) ::rmdir(nested.c_str());
    if (exists(leaf_path)) ::rmdir(leaf_path.c_str());
    CHECK(root->remove());
}

TEST_CASE("cgroup: remove() takes the sub-cgroups with it, and EBUSY while a process is left") {
    require_root();
    auto leaf = Cgroup::create(test_parent(), "nsfork-test-remove-" + std::to_string(::getpid()));
    REQUIRE(leaf);
    const std::string deep = leaf->path() + "/a/b";
    REQUIRE(::mkdir((leaf->path() + "/a").c_str(), 0755) == 0);
    REQUIRE(::mkdir(deep.c_str(), 0755) == 0);
    const pid_t child = park_process_in(deep);
    REQUIRE(child > 0);
    auto busy = leaf->remove();
    CHECK_FALSE(busy);
    CHECK(exists(deep));
    CHECK(leaf->owned());
    REQUIRE(leaf->kill());
    REQUIRE(::waitpid(child, nullptr, 0) == child);
    CHECK(leaf->remove());
    CHECK_FALSE(exists(leaf->path()));
    CHECK_FALSE(leaf->owned());
}

TEST_CASE("cgroup: an adopted or released cgroup is left alone when it goes out of scope") {
    require_root();
    auto made = Cgroup::create(test_parent(), "nsfork-test-left-" + std::to_string(::getpid()));
    REQUIRE(made);
    const std::string path = made->path();
    const pid_t child = park_process_in(path);
    REQUIRE(child > 0);
    {
        auto adopted = Cgroup::adopt(path);
        REQUIRE(adopted);
        CHECK_FALSE(adopted->owned());
    }
    CHECK(exists(path));
    CHECK(alive(child));
    {
        Cgroup moved = std::move(*made);
        CHECK_FALSE(made->owned()); // moved-from: its destruction does nothing either
        CHECK(moved.release() == path);
        CHECK(moved.path().empty());
    }
    CHECK(exists(path));
    CHECK(alive(child));
    // The test owns it now.
    REQUIRE(::kill(child, SIGKILL) == 0);
    REQUIRE(::waitpid(child, nullptr, 0) == child);
    CHECK(::rmdir(path.c_str()) == 0);
}

TEST_CASE("cgroup: create, populate, kill, watch it empty, remove") {
    require_root();
    const std::string mount = procfs::cgroup2_mount();
    REQUIRE_FALSE(mount.empty());
    std::string own = procfs::cgroup2_path();
    if (own == "/") own.clear();
    auto root = Cgroup::create(mount + own, "nsfork-test-" + std::to_string(::getpid()));
    REQUIRE(root);
    auto leaf = Cgroup::create(root->path(), "leaf");
    REQUIRE(leaf);
    CHECK(*leaf->populated() == false);

    // A child that moves itself into the leaf, forks a grandchild, and waits.
    Pipe ready;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        const std::string pid = std::to_string(::getpid());
        FILE* procs = std::fopen((leaf->path() + "/cgroup.procs").c_str(), "we");
        if (!procs || std::fputs(pid.c_str(), procs) < 0 || std::fclose(procs) != 0) ::_exit(1);
        if (::fork() == 0) ::pause();
        [[maybe_unused]] auto n = ::write(ready.write.get(), "x", 1);
        ::pause();
        ::_exit(0);
    }
    ready.write.reset();
    char c;
    REQUIRE(::read(ready.read.get(), &c, 1) == 1);
    CHECK(*leaf->populated() == true);
    CHECK_FALSE(leaf->remove()); // EBUSY while populated

    auto events = leaf->open_events();
    REQUIRE(events);
    REQUIRE(leaf->kill());
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WTERMSIG(status) == SIGKILL);
    // The grandchild (reparented elsewhere) dies too; "populated 0" is signalled with POLLPRI.
    while (*leaf->populated()) {
        pollfd p{events->get(), POLLPRI, 0};
        REQUIRE(::poll(&p, 1, 10000) == 1);
        char buf[256];
        REQUIRE(::pread(events->get(), buf, sizeof buf, 0) > 0);
    }
    CHECK(leaf->remove());
    CHECK(root->remove());
}

TEST_CASE("cgroup: the cgroup2 mount is found from mountinfo") {
    const std::string mount = procfs::cgroup2_mount();
    REQUIRE_FALSE(mount.empty());
    CHECK(std::ifstream(mount + "/cgroup.controllers").good());
}
