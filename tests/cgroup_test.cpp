// launcher/cgroup: leaves under a test-owned subtree of the real cgroup2 hierarchy.
#include "harness.hpp"
#include "base/procfs.hpp"
#include "launcher/cgroup.hpp"

#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/wait.h>

#include <csignal>
#include <fstream>

using namespace nsfork;
using namespace nsfork::test;

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
