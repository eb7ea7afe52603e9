#include "placement.hpp"

#include <fmt/format.h>

#include <string>

namespace nsfork {

namespace {
constexpr std::string_view kRefused = "sharing the agent's pid namespace is disallowed "
                                      "(--disallow-sharing-agent-pid-namespace)";

Error refused(std::string_view why = {}) { return Error{Errc::not_permitted, std::string(kRefused) + std::string(why)}; }
} // namespace

Result<Placement> place(const PlacementRequest& req, const ParentView* parent, const ServerFacts& server) {
    Placement p;
    const bool share = req.share_pid_namespace;
    if (!req.parent_id.empty()) {
        if (!parent) return Error{Errc::unknown_container, fmt::format("no parent container '{}'", req.parent_id)};
        if (parent->ended)
            return Error{Errc::invalid_state, fmt::format("parent container '{}' has already ended", req.parent_id)};
    }
    if (req.join_fd) {
        if (parent || share)
            return Error{Errc::bad_request, "a launch that joins a pid namespace by fd takes no parent "
                                            "and no share_pid_namespace"};
        if (server.disallow_sharing_agent_pidns && req.joined_pidns == server.own_pidns)
            return refused(": the namespace passed by fd is the agent's");
        p.base = PidnsBase::joined;
        p.new_pid_namespace = false;
    } else if (!server.isolation.pid) {
        p.new_pid_namespace = false; // everything shares the server's namespace
    } else if (parent) {
        p.base = PidnsBase::parent;
        p.new_pid_namespace = !share;
        if (share && server.disallow_sharing_agent_pidns && parent->pidns == server.own_pidns)
            return refused(fmt::format(": parent container '{}' shares it", parent->id));
    } else if (share) {
        if (server.disallow_sharing_agent_pidns) return refused();
        p.new_pid_namespace = false;
    }
    if (!server.own_pidns_refusal.empty() && !p.new_pid_namespace &&
        (p.base == PidnsBase::server || (p.base == PidnsBase::joined && req.joined_pidns == server.own_pidns) ||
         (p.base == PidnsBase::parent && parent->pidns == server.own_pidns)))
        return Error{Errc::not_permitted,
                     fmt::format("a container may not share the server's pid namespace: {}", server.own_pidns_refusal)};
    if (req.pid_max) {
        if (!p.new_pid_namespace)
            return Error{Errc::bad_request, "pid_max bounds a pid namespace of the container's own; this one shares one"};
        if (!server.per_namespace_pid_max)
            return Error{Errc::unavailable, "pid_max needs Linux 6.14 or newer (a pid_max per pid namespace)"};
    }
    if (!server.cgroup_root.empty()) {
        p.cgroup_parent = parent && !parent->cgroup.empty() ? parent->cgroup : server.cgroup_root;
    } else if (!p.new_pid_namespace) {
        return Error{Errc::unavailable,
                     "this container would share a pid namespace, so only its own cgroup could destroy "
                     "it, and no writable cgroup v2 was found: " + std::string(server.no_cgroup_reason)};
    }
    return p;
}

} // namespace nsfork
