#include "server/policy.hpp"

#include <catch2/catch.hpp>

using namespace nsfork;

TEST_CASE("policy: isolator lists") {
    auto both = parse_isolation("filesystem/linux,namespaces/pid");
    REQUIRE(both);
    CHECK(both->filesystem);
    CHECK(both->pid);
    auto fs = parse_isolation("filesystem/linux");
    REQUIRE(fs);
    CHECK(fs->filesystem);
    CHECK_FALSE(fs->pid);
    auto none = parse_isolation("");
    REQUIRE(none);
    CHECK_FALSE(none->filesystem);
    CHECK_FALSE(none->pid);
    CHECK(parse_isolation("namespaces/pid").error().message.find("requires filesystem/linux") != std::string::npos);
    CHECK(parse_isolation("filesystem/linux,,namespaces/pid").error().message ==
          "unknown isolator '' (known: filesystem/linux, namespaces/pid)");
    CHECK(parse_isolation("cgroups/cpu").error().code == Errc::bad_request);
}

TEST_CASE("policy: the operator's switch needs the pid isolator") {
    CHECK(check_policy({true, true}, true));
    CHECK(check_policy({true, false}, false));
    CHECK_FALSE(check_policy({true, false}, true));
}
