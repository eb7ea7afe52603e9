#include "launcher/plan.hpp"

#include "base/syscalls.hpp"

#include <cerrno>
extern "C" {
#include "launcher/shim_plan.h"
}

#include <cstring>

namespace nsfork {

std::optional<std::vector<std::uint8_t>> encode_plan(const LaunchSpec& spec) {
    std::size_t size = 0;
    for (const auto& a : spec.argv) size += a.size() + 1;
    for (const auto& e : spec.env) size += e.size() + 1;
    size += spec.cwd.size() + 1;
    if (sizeof(nsfork_plan) + size > NSFORK_PLAN_MAX) return std::nullopt;
    std::uint32_t stdio = 0;
    for (unsigned i = 0; i < 3; ++i)
        if (spec.stdio[i] >= 0) stdio |= 1u << i;
    const nsfork_plan header{NSFORK_PLAN_MAGIC, static_cast<std::uint32_t>(spec.argv.size()),
                             static_cast<std::uint32_t>(spec.env.size()), static_cast<std::uint32_t>(size), stdio};
    std::vector<std::uint8_t> out(sizeof header);
    out.reserve(sizeof header + size);
    std::memcpy(out.data(), &header, sizeof header);
    auto add = [&](const std::string& s) { out.insert(out.end(), s.c_str(), s.c_str() + s.size() + 1); };
    for (const auto& a : spec.argv) add(a);
    for (const auto& e : spec.env) add(e);
    add(spec.cwd);
    return out;
}

Result<void> send_plan(int sock, const std::vector<std::uint8_t>& plan, const LaunchSpec& spec) {
    int stdio[3];
    std::size_t count = 0;
    for (int fd : spec.stdio)
        if (fd >= 0) stdio[count++] = fd; // the slots not given keep the shim's /dev/null
    const ssize_t n = sys::send_with_fds(sock, plan.data(), plan.size(), stdio, count);
    if (n < 0) return sys_error(Errc::launch_failed, "cannot send the plan to nsfork-shim", errno);
    return {};
}

} // namespace nsfork
