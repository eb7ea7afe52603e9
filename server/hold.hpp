// Hold containers' named cgroup leaves (Launch.cgroup_name, checked by check_cgroup_name in
// request.hpp): the directories between the server's tree and the leaf, made before the leaf and
// removed after it. The Server's Adopt and the main process's watch are in hold.cpp too.
#pragma once

#include "nsfork/error.hpp"
#include "launcher/cgroup.hpp"

#include <string>
#include <string_view>

namespace nsfork {

// Creates the leaf `name` below `root`, with its parents ("a" and "a/b" for "a/b/c") as mkdir -p
// makes them; on failure, the parents it made that are empty are removed again.
Result<Cgroup> create_named_cgroup(const std::string& root, std::string_view name);

// Removes the parents of leaf `name` below `root` that are empty now, innermost first, up to the
// first one still in use (by another container's leaf, or a process). Never `root` itself.
void remove_cgroup_parents(const std::string& root, std::string_view name);

} // namespace nsfork
