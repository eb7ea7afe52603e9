// The operator's choices: which isolators are on, and whether sharing the agent's pid
// namespace is allowed — parsed and checked for consistency once, at start.
#pragma once

#include "base/error.hpp"

#include <string_view>

namespace nsfork {

struct Isolation {
    bool filesystem = true; // filesystem/linux: a new mount namespace, / private, /proc fresh
    bool pid = true;        // namespaces/pid: a pid namespace per container (unless shared)
};

// Parses a comma list of isolator names ("filesystem/linux,namespaces/pid"); "" turns all off.
// Unknown names and a pid isolator without filesystem/linux are refused, naming the cause.
Result<Isolation> parse_isolation(std::string_view list);

// Refuses option combinations that could not serve any launch.
Result<void> check_policy(const Isolation& isolation, bool disallow_sharing_agent_pidns);

} // namespace nsfork
