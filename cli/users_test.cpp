#include "cli/users.hpp"

#include <catch2/catch.hpp>

#include <pwd.h>

#include <algorithm>

using namespace nsfork;
using namespace nsfork::cli;

TEST_CASE("cli users: a name or a number, its primary group unless one is given") {
    auto root = resolve_identity(std::string("root"), std::nullopt);
    REQUIRE(root);
    CHECK(root->uid == 0u);
    CHECK(root->gid == 0u);
    REQUIRE(root->groups);
    CHECK(std::find(root->groups->begin(), root->groups->end(), 0u) != root->groups->end());

    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody);
    auto by_number = resolve_identity(std::to_string(nobody->pw_uid), std::nullopt);
    REQUIRE(by_number);
    CHECK(by_number->uid == nobody->pw_uid);
    CHECK(by_number->gid == nobody->pw_gid);

    auto both = resolve_identity(std::string("4242:root"), std::nullopt);
    REQUIRE(both);
    CHECK(both->uid == 4242u);
    CHECK(both->gid == 0u);
    CHECK(both->groups == std::vector<gid_t>{}); // not in the database: no groups, not ours

    auto none = resolve_identity(std::nullopt, std::nullopt);
    REQUIRE(none);
    CHECK_FALSE(none->uid);
    CHECK_FALSE(none->gid);
    CHECK_FALSE(none->groups);
}

TEST_CASE("cli users: --groups by name or number, empty for none, and unknown names are named") {
    auto g = resolve_identity(std::nullopt, std::string("root,7"));
    REQUIRE(g);
    CHECK_FALSE(g->uid);
    CHECK(g->groups == std::vector<gid_t>{0, 7});
    auto empty = resolve_identity(std::string("0"), std::string(""));
    REQUIRE(empty);
    CHECK(empty->groups == std::vector<gid_t>{});

    auto user = resolve_identity(std::string("no-such-user-here"), std::nullopt);
    REQUIRE_FALSE(user);
    CHECK(user.error().message == "no user named 'no-such-user-here' in this host's user database");
    auto group = resolve_identity(std::string("root:no-such-group"), std::nullopt);
    REQUIRE_FALSE(group);
    CHECK(group.error().message == "no group named 'no-such-group' in this host's group database");
    auto listed = resolve_identity(std::nullopt, std::string("root,no-such-group"));
    REQUIRE_FALSE(listed);
    CHECK(listed.error().message == "no group named 'no-such-group' in this host's group database");
    auto unknown = resolve_identity(std::string("4242"), std::nullopt);
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().message ==
          "user 4242 has no entry in this host's user database: give its group (--user 4242:GID)");
}
