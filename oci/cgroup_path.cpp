#include "oci/cgroup_path.hpp"

#include <sstream>
#include <vector>

namespace nsfork::oci {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::istringstream in(s);
    for (std::string part; std::getline(in, part, sep);) parts.push_back(part);
    if (!s.empty() && s.back() == sep) parts.emplace_back();
    return parts;
}

Error bad_path(const std::string& path, const std::string& why) {
    return Error{Errc::bad_request, "config.json: linux.cgroupsPath \"" + path + "\": " + why};
}

// systemd nests slices by their dashes: "a-b-c.slice" lives at a.slice/a-b.slice/a-b-c.slice.
Result<std::string> expand_slice(const std::string& slice) {
    const std::string suffix = ".slice";
    if (slice == "-.slice") return std::string();
    if (slice.size() <= suffix.size() || slice.compare(slice.size() - suffix.size(), suffix.size(), suffix) != 0 ||
        slice.find('/') != std::string::npos)
        return bad_path(slice, "\"" + slice + "\" is not a slice");
    const std::string name = slice.substr(0, slice.size() - suffix.size());
    std::string path, prefix;
    for (const std::string& part : split(name, '-')) {
        if (part.empty()) return bad_path(slice, "\"" + slice + "\" is not a valid slice name");
        prefix += prefix.empty() ? part : "-" + part;
        path += "/" + prefix + suffix;
    }
    return path;
}

} // namespace

Result<std::string> cgroups_path_for(const std::string& configured, const std::string& id, bool systemd) {
    if (!systemd) return configured.empty() ? id : configured;
    if (configured.empty()) return "/system.slice/nsfork-oci-" + id + ".scope";
    const auto parts = split(configured, ':');
    if (parts.size() != 3) return bad_path(configured, "with --systemd-cgroup it is \"slice:prefix:name\"");
    auto slice = expand_slice(parts[0].empty() ? "system.slice" : parts[0]);
    if (!slice) return std::move(slice).error();
    const std::string& name = parts[2];
    if (name.empty()) return bad_path(configured, "no unit name");
    if (name.size() > 6 && name.ends_with(".slice")) {
        auto own = expand_slice(name);
        if (!own) return std::move(own).error();
        return *own;
    }
    return *slice + "/" + (parts[1].empty() ? name : parts[1] + "-" + name) + ".scope";
}

Result<std::string> server_cgroup_name(const std::string& cgroups_path) {
    std::string name = "oci";
    for (const std::string& part : split(cgroups_path, '/')) {
        if (part.empty()) continue;
        if (part == "." || part == "..") return bad_path(cgroups_path, "a \"" + part + "\" component is not allowed");
        name += "/" + part;
    }
    if (name == "oci") return bad_path(cgroups_path, "names no cgroup");
    return name;
}

} // namespace nsfork::oci
