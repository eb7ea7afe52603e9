// runtime-spec hooks: each runs as a program of the host with the container's state (JSON) on
// its stdin, its env exactly as given, within its timeout.
#pragma once

#include "nsfork/error.hpp"
#include "oci/spec.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace nsfork::oci {

// Runs `hooks` in order, stopping at the first that fails: it exited non-zero, was killed, or
// outlived its timeout (then it is killed). `kind` names them in errors ("prestart").
Result<void> run_hooks(const std::vector<Hook>& hooks, std::string_view kind, const std::string& state_json);

} // namespace nsfork::oci
