// cgroup v2 leaves: one per container, placed at birth (CLONE_INTO_CGROUP), killed with
// cgroup.kill, watched through cgroup.events, removed when empty.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace nsfork {

// The names of the sub-cgroups of `path` (its subdirectories: a cgroup's files never are);
// empty when it cannot be read.
std::vector<std::string> sub_cgroup_names(const std::string& path);

// One cgroup v2 directory. A created one is owned: when the object goes out of scope, every
// process in it and below is killed and the directory is removed with every sub-cgroup (those
// the container made included), unless it was removed already or release()d. An adopted one
// (an operator's root) is never killed nor removed. A moved-from Cgroup does nothing.
class Cgroup {
public:
    // How long destruction waits for killed processes to leave, in all: a process stuck in
    // uninterruptible sleep (a dead NFS server) must not hang the server's only thread.
    static constexpr std::chrono::milliseconds kDestroyTimeout{2000};

    // Creates `parent/name` (EEXIST is an error: names are unique per server).
    static Result<Cgroup> create(const std::string& parent, const std::string& name);
    // Adopts an existing directory (for a root given by the operator); remove() leaves it.
    static Result<Cgroup> adopt(const std::string& path);
    // Takes over an existing directory as if it had been created here (a dead server's tree):
    // destruction kills what is in it and removes it.
    static Result<Cgroup> take(const std::string& path);

    Cgroup(Cgroup&& o) noexcept : path_(std::move(o.path_)), owned_(std::exchange(o.owned_, false)) {}
    Cgroup& operator=(Cgroup&& o) noexcept {
        if (this != &o) {
            destroy_quietly();
            path_ = std::move(o.path_);
            owned_ = std::exchange(o.owned_, false); // the moved-from one does nothing
        }
        return *this;
    }
    Cgroup(const Cgroup&) = delete;
    Cgroup& operator=(const Cgroup&) = delete;
    ~Cgroup() { destroy_quietly(); }

    const std::string& path() const { return path_; }
    // Whether destruction will kill and remove it (created, not yet removed nor released).
    bool owned() const { return owned_; }
    // An fd of the directory, for CLONE_INTO_CGROUP. Not kept open: a server with 10,000
    // containers would otherwise carry 10,000 more fds into every clone.
    Result<UniqueFd> open_dir() const;
    // SIGKILLs every process in the cgroup and below (cgroup.kill, Linux 5.14).
    Result<void> kill() const;
    // Whether any process is left in it or below ("populated" of cgroup.events).
    Result<bool> populated() const;
    // The same, read from its open cgroup.events (open_events()).
    Result<bool> populated(int events) const;
    // An fd to cgroup.events: POLLPRI when "populated" changes.
    Result<UniqueFd> open_events() const;
    // rmdir of its sub-cgroups, depth-first, then of itself; EBUSY while processes remain.
    // A no-op for an adopted, removed or released one.
    Result<void> remove();
    // One rmdir of it alone, if it is ours: true when that removed it (or it was gone already);
    // false when it is not ours (adopted, removed, released), is still populated, or has
    // sub-cgroups (remove() then lists them). What an empty leaf costs to remove, without
    // reading cgroup.events first.
    bool remove_if_empty();
    // Kills everything in it and below, waits (at most `timeout`) until it is empty, then
    // remove()s it. What the destructor does, for a caller that wants the error.
    Result<void> destroy(std::chrono::milliseconds timeout = kDestroyTimeout);
    // Gives up ownership: the caller now removes the directory (whose path is returned), and
    // this object does nothing more.
    std::string release() {
        owned_ = false;
        return std::exchange(path_, {});
    }

private:
    Cgroup(std::string path, bool owned) : path_(std::move(path)), owned_(owned) {}
    Result<UniqueFd> open_file(const char* name, int flags) const;
    void destroy_quietly() noexcept;
    std::string path_;
    bool owned_ = false; // created by us, not yet removed nor released
};

} // namespace nsfork
