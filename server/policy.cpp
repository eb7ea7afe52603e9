#include "policy.hpp"

#include <fmt/format.h>

namespace nsfork {

Result<Isolation> parse_isolation(std::string_view list) {
    Isolation iso{false, false};
    while (!list.empty()) {
        const auto comma = list.find(',');
        const std::string_view name = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        if (name == "filesystem/linux") iso.filesystem = true;
        else if (name == "namespaces/pid") iso.pid = true;
        else
            return Error{Errc::bad_request,
                         fmt::format("unknown isolator '{}' (known: filesystem/linux, namespaces/pid)", name)};
    }
    if (iso.pid && !iso.filesystem)
        return Error{Errc::bad_request,
                     "isolator namespaces/pid requires filesystem/linux (a private mount namespace for "
                     "the container's /proc)"};
    return iso;
}

Result<void> check_policy(const Isolation& isolation, bool disallow_sharing_agent_pidns) {
    if (disallow_sharing_agent_pidns && !isolation.pid)
        return Error{Errc::bad_request,
                     "--disallow-sharing-agent-pid-namespace needs the namespaces/pid isolator: without "
                     "it every container shares the agent's pid namespace"};
    return {};
}

} // namespace nsfork
