// nsfork-oci's defaults, which its musl front (front.cpp) reads too.
#pragma once

namespace nsfork::oci {

// Where the node's server listens when neither --nsfork-socket nor NSFORK_SOCKET says.
inline constexpr const char* kDefaultServerSocket = "/run/nsfork/nsfork.sock";
// Where container state lives when --root does not say (runc's is /run/runc).
inline constexpr const char* kDefaultRoot = "/run/nsfork-oci";

} // namespace nsfork::oci
