// Starting a container's first process: the cold path (clone3 into new or joined namespaces,
// born into a new cgroup leaf) and the warm path (a pool entry takes the plan), and reading
// the launch's outcome from its report channel. Included by the server's own files only.
#pragma once

#include "server/container.hpp"
#include "server/placement.hpp"
#include "server/pool.hpp"
#include "server/statistics.hpp"

#include <memory>
#include <string_view>

namespace nsfork {

// A placement with what the caller opened for it.
struct Target {
    Placement where;
    std::shared_ptr<ContainerRecord> parent; // nullptr: top-level
    UniqueFd pidns;                          // the namespace to make a new one below or to join; -1: the server's
};

// clone3s the shim (spec.init_path) in the namespaces `spec` names, born into `cgroup` (the new
// leaf the caller made under its placement's cgroup_parent; nullopt without one), and hands it its plan
// (always one: a command too large for it goes through the shim's exec, its settings still in
// the plan). The record it returns has its pid, pidfd, report channels and cgroup set; the rest
// is the caller's. On failure the leaf goes (Cgroup's destructor).
Result<std::shared_ptr<ContainerRecord>> launch_cold(boost::asio::io_context& io, LaunchSpec& spec,
                                                     std::optional<Cgroup> cgroup,
                                                     LaunchStatistics::Handler& timer);

// A pool entry that took `spec`'s plan, or nullptr when the launch must go cold: no pool, no ready
// entry, not a top-level container with a namespace of its own, or a plan too large to send.
std::shared_ptr<WarmEntry> take_warm(WarmPool* pool, const Target& target, const LaunchSpec& spec,
                                     bool filesystem_isolation, LaunchStatistics::Handler& timer);

// The launch's outcome from its report channel (EAGAIN: nothing to read yet). On a plan socket,
// EOF without a record means the shim died: the setup pipe, if any, says why. A tty launch's
// OK report brings its terminal's master, kept in c.terminal (without it, the launch failed).
Result<void> exec_outcome(ContainerRecord& c);

} // namespace nsfork
