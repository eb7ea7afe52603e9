// The JSON the CLI prints (--json): one object per container, one for the server's status.
// nlohmann::ordered_json keeps the keys in the order scripts already parse them.
#pragma once

#include "nsfork/types.hpp"

#include <string>
#include <vector>

namespace nsfork::cli {

// One JSON object for `info`, as `run --json`, `destroy --json` print it.
std::string to_json(const ContainerInfo& info);
// The server's pid and its warm pool's counters, as `status --json` prints them.
std::string to_json(const ServerStatus& status);
// A JSON array of the containers, as `list --json` prints it.
std::string to_json(const std::vector<ContainerInfo>& list);

} // namespace nsfork::cli
