// The targets, judged against what this run measured: met, missed (by how much, and
// what is believed to close the gap), not measured, or not run. Printed, never asserted.
#pragma once

#include "report.hpp"

#include <vector>

namespace nsfork::bench {

std::vector<Target> judge_targets(const Report& report);

} // namespace nsfork::bench
