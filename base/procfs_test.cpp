#include "base/procfs.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace nsfork;

TEST_CASE("procfs: a mountinfo line, optional fields and all") {
    procfs::Mount m;
    REQUIRE(procfs::parse_mount_line(
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue", m));
    CHECK(m.root == "/mnt1");
    CHECK(m.mount_point == "/mnt2");
    CHECK(m.fstype == "ext3");
    CHECK(m.source == "/dev/root");
    CHECK(m.super_options == "rw,errors=continue");
    REQUIRE(procfs::parse_mount_line("30 1 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate", m));
    CHECK(m.fstype == "cgroup2");
    CHECK(m.mount_point == "/sys/fs/cgroup/unified");
    CHECK_FALSE(procfs::parse_mount_line("36 35 98:0 /mnt1 /mnt2 rw", m));
    CHECK_FALSE(procfs::parse_mount_line("", m));
}

TEST_CASE("procfs: the cgroup2 line of a cgroup file") {
    CHECK(procfs::cgroup2_path_in("12:freezer:/\n0::/user.slice/a.scope\n") == "/user.slice/a.scope");
    CHECK(procfs::cgroup2_path_in("0::/") == "/");
    CHECK(procfs::cgroup2_path_in("1:name=systemd:/x\n") == "");
    CHECK(procfs::cgroup2_path_in("") == "");
}

TEST_CASE("procfs: the caller's own status fields and pid namespace") {
    CHECK(procfs::thread_count() == 1);
    CHECK(procfs::status_field(0, "Pid") == ::getpid());
    CHECK(procfs::status_field(::getpid(), "PPid") == ::getppid());
    CHECK(procfs::status_field(0, "NoSuchKey") == -1);
    CHECK(procfs::pid_namespace_inode(0) != 0);
    CHECK(procfs::pid_namespace_inode(0) == procfs::pid_namespace_inode(::getpid()));
    struct stat st {}; // the inode the namespace's file has (read from its link's text)
    REQUIRE(::stat("/proc/self/ns/pid", &st) == 0);
    CHECK(procfs::pid_namespace_inode(0) == st.st_ino);
    CHECK(procfs::pid_namespace_inode(-2) == 0); // no such process
    CHECK(procfs::mounts().size() > 0);
    CHECK(procfs::mount_points("proc").size() > 0);
}

TEST_CASE("procfs: a pid namespace's inode through a pidfd, and by pid where the pidfd cannot tell (a zombie, no pidfd)") {
    const ino_t own = procfs::pid_namespace_inode(0);
    const int self = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
    REQUIRE(self >= 0);
    CHECK(procfs::pid_namespace_inode(::getpid(), self) == own);
    ::close(self);
    CHECK(procfs::pid_namespace_inode(::getpid(), -1) == own);
    // A zombie has no namespaces left for the pidfd's ioctl: its pid (not yet reaped) still says.
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    REQUIRE(child > 0);
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
    REQUIRE(fd >= 0);
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) == 0);
    CHECK(procfs::pid_namespace_inode(child, fd) == own);
    ::close(fd);
    REQUIRE(::waitpid(child, nullptr, 0) == child);
}
