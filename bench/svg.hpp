// A line chart as a self-contained SVG file, written by hand (no plotting dependency).
#pragma once

#include "nsfork/error.hpp"
#include "report.hpp"

#include <string>

namespace nsfork::bench {

// Renders `chart` (axes, ticks, one polyline with markers per series, a legend) to `path`.
Result<void> write_svg(const Chart& chart, const std::string& path);

} // namespace nsfork::bench
