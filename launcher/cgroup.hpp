// cgroup v2 leaves: one per container, placed at birth (CLONE_INTO_CGROUP), killed with
// cgroup.kill, watched through cgroup.events, removed when empty.
#pragma once

#include "base/error.hpp"
#include "base/fd.hpp"

#include <string>
#include <utility>

namespace nsfork {

// One cgroup v2 directory the caller created and owns: removing it is the caller's job
// (remove()), after every process in it has been reaped.
class Cgroup {
public:
    // Creates `parent/name` (EEXIST is an error: names are unique per server).
    static Result<Cgroup> create(const std::string& parent, const std::string& name);
    // Adopts an existing directory (for a root given by the operator); remove() leaves it.
    static Result<Cgroup> adopt(const std::string& path);

    Cgroup(Cgroup&& o) noexcept : path_(std::move(o.path_)), owned_(o.owned_), removed_(std::exchange(o.removed_, true)) {}
    Cgroup& operator=(Cgroup&& o) noexcept {
        path_ = std::move(o.path_);
        owned_ = o.owned_;
        removed_ = std::exchange(o.removed_, true); // the moved-from one removes nothing
        return *this;
    }

    const std::string& path() const { return path_; }
    // An fd of the directory, for CLONE_INTO_CGROUP. Not kept open: a server with 10,000
    // containers would otherwise carry 10,000 more fds into every clone.
    Result<UniqueFd> open_dir() const;
    // SIGKILLs every process in the cgroup and below (cgroup.kill, Linux 5.14).
    Result<void> kill() const;
    // Whether any process is left in it or below ("populated" of cgroup.events).
    Result<bool> populated() const;
    // An fd to cgroup.events: POLLPRI when "populated" changes.
    Result<UniqueFd> open_events() const;
    // rmdir; EBUSY while processes (or child cgroups) remain.
    Result<void> remove();

private:
    Cgroup(std::string path, bool owned) : path_(std::move(path)), owned_(owned) {}
    Result<UniqueFd> open_file(const char* name, int flags) const;
    std::string path_;
    bool owned_ = true;
    bool removed_ = false;
};

} // namespace nsfork
