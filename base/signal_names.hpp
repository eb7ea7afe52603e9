// Signals by name or number, as `nsfork kill` and nsfork-oci's kill take them.
#pragma once

#include <string_view>

namespace nsfork {

// A signal by number or name ("TERM", "SIGTERM", "9"); 0 if unknown.
int parse_signal(std::string_view s);

} // namespace nsfork
