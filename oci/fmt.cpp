// fmt's formatting compiled into nsfork-oci itself (fmt's header-only mode), so that the process
// loads no libfmt.so — nor, with -static-libstdc++ (runtime.cmake), libstdc++.so, which libfmt.so
// would pull back in. nsfork-oci runs once per engine call: a dynamically linked libstdc++ costs
// every run half a millisecond of CPU in the dynamic loader (symbol lookups, relocations).
// The libraries it links call only fmt::vformat, which taking its address here emits.
#define FMT_HEADER_ONLY
#include <fmt/format.h>

namespace nsfork::oci {

[[gnu::used]] std::string (*const fmt_vformat)(fmt::string_view, fmt::format_args) = &fmt::vformat;

} // namespace nsfork::oci
