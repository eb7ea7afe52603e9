// Reading /proc: the mount table, cgroup membership, status fields. The one place that parses
// these files; launcher, server, tests and bench all ask here.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace nsfork::procfs {

// One line of a mountinfo file: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] -
// FSTYPE SOURCE SUPEROPTS".
struct Mount {
    std::string root;        // the path inside the file system that is mounted
    std::string mount_point;
    std::string fstype;
    std::string source;
    std::string super_options;
};

// Parses one mountinfo line; false when it is not one.
bool parse_mount_line(std::string_view line, Mount& out);

// The mounts of /proc/<pid>/mountinfo (pid 0: the caller's), in order; empty if unreadable.
std::vector<Mount> mounts(pid_t pid = 0);

// Mount points of the whole file systems (root "/") of type `fstype` whose super options
// include `option` (any, when empty), in mountinfo order.
std::vector<std::string> mount_points(std::string_view fstype, std::string_view option = {});

// The cgroup2 mount point ("" if none): /sys/fs/cgroup on a unified host,
// /sys/fs/cgroup/unified on a hybrid one.
std::string cgroup2_mount();

// Process `pid`'s cgroup v2 path relative to the mount (pid 0: the caller's), from the "0::"
// line of its cgroup file; "" when it cannot be read.
std::string cgroup2_path(pid_t pid = 0);

// The cgroup v2 path, relative to the mount, of the cgroup the process of `pidfd` is in, or was
// in when it ended: its id from PIDFD_GET_INFO (Linux 6.13; a reaped process's too since 6.15),
// opened by handle below `mount_fd` (the cgroup2 mount, opened not O_PATH; its path is `mount`).
// Needs CAP_DAC_READ_SEARCH. "" when the kernel cannot say: an older one, no such privilege, the
// cgroup removed since.
std::string cgroup2_path_of(int pidfd, int mount_fd, std::string_view mount);

// The cgroup2 path of the "0::" line of a /proc/PID/cgroup text; "" when there is none.
std::string cgroup2_path_in(std::string_view cgroup_file);

// The number after "<key>:" in /proc/<pid>/status (pid 0: the caller's), or -1.
long status_field(pid_t pid, std::string_view key);

// The number after "<key>:" in a text file of "Key: value" lines (status, fdinfo), or -1.
long field(const std::string& path, std::string_view key);

// The calling process's thread count; -1 when unreadable.
int thread_count();

// Inode of the pid namespace of process `pid` (pid 0: the caller's); 0 when it cannot be read.
// Only race-free for a pid the caller has not reaped yet, or for itself.
ino_t pid_namespace_inode(pid_t pid);
// The same for the process of `pidfd` (whose pid is `pid`): through the pidfd
// (PIDFD_GET_PID_NAMESPACE, Linux 6.11), with no lookup in /proc of what is often a process just
// made (~8 µs of ~25 less here), else as above, by pid (an older kernel, or a zombie, whose
// namespaces the ioctl no longer sees).
ino_t pid_namespace_inode(pid_t pid, int pidfd);

} // namespace nsfork::procfs
