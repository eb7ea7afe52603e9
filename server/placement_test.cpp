// The placement rules, one case each: no namespaces, no cgroups, no root needed.
#include "server/placement.hpp"

#include <catch2/catch.hpp>

using namespace nsfork;

namespace {

constexpr ino_t kAgentNs = 4026531836;
constexpr ino_t kOtherNs = 4026532000;

ServerFacts facts(bool disallow = false) {
    ServerFacts f;
    f.own_pidns = kAgentNs;
    f.isolation = {true, true};
    f.disallow_sharing_agent_pidns = disallow;
    f.per_namespace_pid_max = true;
    f.cgroup_root = "/sys/fs/cgroup/nsfork-1";
    return f;
}

ParentView parent(std::uint64_t pidns = kOtherNs) {
    ParentView p;
    p.id = "pod";
    p.pidns = pidns;
    p.cgroup = "/sys/fs/cgroup/nsfork-1/c1";
    return p;
}

// A request; `parent_id` "" for a top-level one.
PlacementRequest request(std::string_view parent_id, bool share, bool join_fd = false, std::uint32_t pid_max = 0) {
    PlacementRequest r;
    r.parent_id = parent_id;
    r.share_pid_namespace = share;
    r.join_fd = join_fd;
    r.pid_max = pid_max;
    return r;
}

PlacementRequest nested(bool share = false) { return request("pod", share); }

PlacementRequest joined(ino_t ns) {
    PlacementRequest r = request("", false, true);
    r.joined_pidns = ns;
    return r;
}

} // namespace

TEST_CASE("placement: a top-level container gets a new namespace under the server's cgroup root") {
    auto p = place({}, nullptr, facts());
    REQUIRE(p);
    CHECK(p->new_pid_namespace);
    CHECK(p->base == PidnsBase::server);
    CHECK(p->cgroup_parent == "/sys/fs/cgroup/nsfork-1");
}

TEST_CASE("placement: a nested container gets a new namespace below its parent's, in its parent's cgroup") {
    const ParentView pod = parent();
    auto p = place(nested(), &pod, facts());
    REQUIRE(p);
    CHECK(p->new_pid_namespace);
    CHECK(p->base == PidnsBase::parent);
    CHECK(p->cgroup_parent == "/sys/fs/cgroup/nsfork-1/c1");
}

TEST_CASE("placement: a nested container may share its parent's namespace") {
    const ParentView pod = parent();
    auto p = place(nested(true), &pod, facts());
    REQUIRE(p);
    CHECK_FALSE(p->new_pid_namespace);
    CHECK(p->base == PidnsBase::parent);
}

TEST_CASE("placement: a top-level container may share the agent's namespace unless the operator disallows it") {
    const PlacementRequest share = request("", true);
    auto allowed = place(share, nullptr, facts());
    REQUIRE(allowed);
    CHECK_FALSE(allowed->new_pid_namespace);
    CHECK(allowed->base == PidnsBase::server);
    auto refused = place(share, nullptr, facts(true));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::not_permitted);
    CHECK(refused.error().message == "sharing the agent's pid namespace is disallowed "
                                     "(--disallow-sharing-agent-pid-namespace)");
}

TEST_CASE("placement: the operator's switch refuses sharing a parent that shares the agent's namespace") {
    const ParentView sharing = parent(kAgentNs);
    auto refused = place(nested(true), &sharing, facts(true));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::not_permitted);
    CHECK(refused.error().message.ends_with(": parent container 'pod' shares it"));
    // A namespace of its own below that parent is fine, and so is sharing a parent's own one.
    CHECK(place(nested(false), &sharing, facts(true)));
    const ParentView own = parent(kOtherNs);
    CHECK(place(nested(true), &own, facts(true)));
}

TEST_CASE("placement: a joined namespace is used as it is, unless it is the agent's and that is disallowed") {
    auto other = place(joined(kOtherNs), nullptr, facts(true));
    REQUIRE(other);
    CHECK(other->base == PidnsBase::joined);
    CHECK_FALSE(other->new_pid_namespace);
    CHECK(place(joined(kAgentNs), nullptr, facts(false)));
    auto agents = place(joined(kAgentNs), nullptr, facts(true));
    REQUIRE_FALSE(agents);
    CHECK(agents.error().code == Errc::not_permitted);
    CHECK(agents.error().message.ends_with(": the namespace passed by fd is the agent's"));
}

TEST_CASE("placement: a join fd takes no parent and no share_pid_namespace") {
    const ParentView pod = parent();
    const PlacementRequest with_parent = request("pod", false, true);
    auto a = place(with_parent, &pod, facts());
    REQUIRE_FALSE(a);
    CHECK(a.error().code == Errc::bad_request);
    CHECK(a.error().message == "a launch that joins a pid namespace by fd takes no parent and no share_pid_namespace");
    const PlacementRequest with_share = request("", true, true);
    auto b = place(with_share, nullptr, facts());
    REQUIRE_FALSE(b);
    CHECK(b.error().code == Errc::bad_request);
}

TEST_CASE("placement: an unknown or ended parent is refused") {
    auto unknown = place(nested(), nullptr, facts());
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().code == Errc::unknown_container);
    CHECK(unknown.error().message == "no parent container 'pod'");
    ParentView ended = parent();
    ended.ended = true;
    auto e = place(nested(), &ended, facts());
    REQUIRE_FALSE(e);
    CHECK(e.error().code == Errc::invalid_state);
    CHECK(e.error().message == "parent container 'pod' has already ended");
}

TEST_CASE("placement: pid_max needs a namespace of the container's own and Linux 6.14") {
    const PlacementRequest own = request("", false, false, 100);
    CHECK(place(own, nullptr, facts()));
    const PlacementRequest shared = request("", true, false, 100);
    auto s = place(shared, nullptr, facts());
    REQUIRE_FALSE(s);
    CHECK(s.error().code == Errc::bad_request);
    ServerFacts old = facts();
    old.per_namespace_pid_max = false;
    auto k = place(own, nullptr, old);
    REQUIRE_FALSE(k);
    CHECK(k.error().code == Errc::unavailable);
    CHECK(k.error().message.find("6.14") != std::string::npos);
}

TEST_CASE("placement: without cgroups a shared namespace is refused, a new one is not") {
    ServerFacts none = facts();
    none.cgroup_root = {};
    none.no_cgroup_reason = "no cgroup2 file system is mounted";
    auto fresh = place({}, nullptr, none);
    REQUIRE(fresh);
    CHECK(fresh->cgroup_parent.empty());
    auto shared = place(request("", true), nullptr, none);
    REQUIRE_FALSE(shared);
    CHECK(shared.error().code == Errc::unavailable);
    CHECK(shared.error().message.ends_with(": no cgroup2 file system is mounted"));
}

TEST_CASE("placement: without the pid isolator everything shares the server's namespace") {
    ServerFacts fs_only = facts();
    fs_only.isolation = {true, false};
    auto top = place({}, nullptr, fs_only);
    REQUIRE(top);
    CHECK_FALSE(top->new_pid_namespace);
    CHECK(top->base == PidnsBase::server);
    const ParentView pod = parent();
    auto child = place(nested(), &pod, fs_only);
    REQUIRE(child);
    CHECK_FALSE(child->new_pid_namespace);
    CHECK(child->base == PidnsBase::server);
    CHECK(child->cgroup_parent == "/sys/fs/cgroup/nsfork-1/c1");
}

TEST_CASE("placement: a parent without a cgroup puts its child under the server's root") {
    ParentView bare = parent();
    bare.cgroup = {};
    auto p = place(nested(), &bare, facts());
    REQUIRE(p);
    CHECK(p->cgroup_parent == "/sys/fs/cgroup/nsfork-1");
}
