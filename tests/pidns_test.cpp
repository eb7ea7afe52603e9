// launcher/pidns: resolving and entering pid namespaces given as fds.
#include "harness.hpp"
#include "base/procfs.hpp"
#include "base/pidfd.hpp"
#include "launcher/pidns.hpp"
#include "base/syscalls.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>

using namespace nsfork;
using namespace nsfork::test;

TEST_CASE("pidns: our own namespace resolves from a namespace fd and from a pidfd") {
    require_root();
    auto own = open_own_pid_namespace();
    REQUIRE(own);
    const ino_t ino = namespace_inode(own->get());
    CHECK(ino == procfs::pid_namespace_inode(0));
    UniqueFd ns(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    auto from_ns = resolve_pid_namespace(ns.get(), own->get());
    REQUIRE(from_ns);
    CHECK(namespace_inode(from_ns->get()) == ino);
    UniqueFd self(sys::pidfd_open(::getpid(), 0));
    auto from_pidfd = resolve_pid_namespace(self.get(), own->get());
    REQUIRE(from_pidfd);
    CHECK(namespace_inode(from_pidfd->get()) == ino);
    // And we are back: pid_for_children is our own again.
    struct stat st;
    REQUIRE(::stat("/proc/self/ns/pid_for_children", &st) == 0);
    CHECK(st.st_ino == ino);
}

TEST_CASE("pidns: fds that are not pid namespaces are named for what they are") {
    require_root();
    auto own = open_own_pid_namespace();
    REQUIRE(own);
    UniqueFd mnt(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
    CHECK(resolve_pid_namespace(mnt.get(), own->get()).error().message == "the fd is a mount namespace, not a pid namespace");
    Pipe p;
    CHECK(resolve_pid_namespace(p.read.get(), own->get()).error().code == Errc::bad_request);
}
