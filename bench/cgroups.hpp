// The cgroup mechanics the destroy baselines need: finding the hierarchies, a uniquely named
// directory that is always removed, reading its processes, waiting for it to empty.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace nsfork::bench {

// The cgroup2 directory of this process (mount point from /proc/self/mountinfo, fstype
// cgroup2 — /sys/fs/cgroup or, on hybrid hosts, /sys/fs/cgroup/unified — plus our "0::" path).
Result<std::string> own_cgroup2_dir();

// The root of the cgroup v1 freezer hierarchy, if one is mounted.
Result<std::string> freezer_root();

// A cgroup directory this process created; on destruction, whatever is still inside is killed
// (cgroup.kill on v2; thaw and SIGKILL each pid on v1) and the directory is removed.
class CgroupDir {
public:
    static Result<CgroupDir> create(std::string path, bool v2);
    CgroupDir(CgroupDir&& o) noexcept;
    CgroupDir& operator=(CgroupDir&&) = delete;
    ~CgroupDir();

    const std::string& path() const { return path_; }
    int fd() const { return fd_.get(); } // O_DIRECTORY, for CLONE_INTO_CGROUP
    // Removes it now (it must be empty); the destructor then has nothing left to do.
    Result<void> remove();

private:
    CgroupDir(std::string path, bool v2, UniqueFd fd) : path_(std::move(path)), v2_(v2), fd_(std::move(fd)) {}
    std::string path_;
    bool v2_ = true;
    UniqueFd fd_;
    bool removed_ = false;
};

// The pids listed in a cgroup.procs file.
Result<std::vector<pid_t>> read_pids(const std::string& procs_path);

// Writes `text` to an existing file (a cgroup control file).
Result<void> write_file(const std::string& path, const std::string& text);

// Blocks until cgroup.events (opened as `events_fd`) says "populated 0". The kernel signals a
// change of the file with POLLPRI, so this sleeps in poll rather than spinning.
Result<void> wait_unpopulated(int events_fd);

// Polls a cgroup v1 cgroup.procs until it lists nobody (v1 has no emptiness notification).
Result<void> wait_v1_empty(const std::string& procs_path);

// Reaps every child this process has, orphans included (the helper is a child subreaper).
void reap_all_children();

} // namespace nsfork::bench
