// Container ids: what a client may name a container.
#pragma once

#include "nsfork/error.hpp"
#include "base/limits.hpp" // kMaxIdLength

#include <string_view>

namespace nsfork {

// Accepts [A-Za-z0-9_.-], 1..128 characters, not "." or ".." — an id is safe as a path
// component (it names the container's cgroup) and in a log line.
Result<void> validate_id(std::string_view id);

} // namespace nsfork
