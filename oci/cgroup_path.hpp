// Where a container's cgroups go: linux.cgroupsPath as runc reads it, and the name of the leaf
// the server makes for it.
#pragma once

#include "nsfork/error.hpp"

#include <string>

namespace nsfork::oci {

// The path of the container's cgroups: `configured` (linux.cgroupsPath) as it is, or the id when
// absent. With --systemd-cgroup, `configured` is "slice:prefix:name" and becomes systemd's
// place for it, as runc's systemd driver puts it: "a-b.slice:pre:name" → /a.slice/a-b.slice/pre-name.scope
// (no slice: system.slice; a name ending in ".slice" is the unit itself).
Result<std::string> cgroups_path_for(const std::string& configured, const std::string& id, bool systemd);

// The server's leaf for it (LaunchOptions::cgroup_name): the same path below "oci/" in the
// server's tree — apart from the leaves it names itself (c<N>), which an engine's path could
// otherwise take — without empty components; a "." or ".." component is refused, naming the field.
Result<std::string> server_cgroup_name(const std::string& cgroups_path);

} // namespace nsfork::oci
