// cgroup v1's device list semantics as runc emulates them for cgroup v2: what a rule list leaves,
// and the rules cgroup v1 itself refuses. (The program's effect is tested with real cgroups in
// tests/oci/resources_test.cpp.)
#include "oci/device_filter.hpp"

#include <catch2/catch.hpp>

using namespace nsfork;
using namespace nsfork::oci;

namespace {

std::string describe(const DeviceAccess& a) {
    std::string s = a.default_allow ? "allow" : "deny";
    auto number = [](std::int64_t n) { return n < 0 ? std::string("*") : std::to_string(n); };
    for (const DeviceRule& r : a.exceptions)
        s += std::string(", ") + (r.allow ? "+" : "-") + r.type + " " + number(r.major) + ":" + number(r.minor) + " " + r.access;
    return s;
}

std::string emulated(const std::vector<DeviceRule>& rules) {
    auto a = emulate_device_rules(rules);
    return a ? describe(*a) : a.error().message;
}

} // namespace

TEST_CASE("oci device filter: device rules reduce to a default and its exceptions, as cgroup v1 keeps them") {
    CHECK(emulated({}) == "deny");
    CHECK(emulated({{false, 'a', -1, -1, "rwm"}, {true, 'c', 1, 3, "rwm"}, {true, 'c', 1, 5, "r"}, {true, 'c', 1, 5, "w"},
                    {true, 'c', -1, -1, "m"}}) == "deny, +c *:* m, +c 1:3 rwm, +c 1:5 rw");
    // A later deny takes accesses back out of an exception.
    CHECK(emulated({{false, 'a', -1, -1, "rwm"}, {true, 'c', 1, 3, "rwm"}, {false, 'c', 1, 3, "w"}}) == "deny, +c 1:3 rm");
    CHECK(emulated({{true, 'a', -1, -1, "rwm"}, {false, 'b', 8, -1, "w"}}) == "allow, -b 8:* w");
    // "a" resets everything before it.
    CHECK(emulated({{false, 'a', -1, -1, "rwm"}, {true, 'c', 1, 3, "rwm"}, {true, 'a', -1, -1, "rwm"}}) == "allow");
    CHECK(emulated({{false, 'a', -1, -1, "rwm"}, {true, 'c', 136, -1, "rwm"}, {false, 'c', 136, 2, "r"}}) ==
          "config.json: linux.resources.devices[2]: cgroup v1 semantics cannot punch a hole in an earlier wildcard rule");
}

TEST_CASE("oci device filter: the device filter program has one block per exception and ends in the default") {
    DeviceAccess a{false, {{true, 'c', 1, 3, "rwm"}, {true, 'c', -1, -1, "m"}}};
    auto program = device_filter_program(a);
    // 6 loads, then c 1:3 rwm: type, major, minor, verdict (2); c *:* m: type, access (3), verdict (2); default (2).
    REQUIRE(program.size() == 6 + 5 + 6 + 2);
    CHECK(program.back().code == (BPF_JMP | BPF_EXIT));
    CHECK(program[program.size() - 2].imm == 0);
    // The first block's mismatches all jump to the second block's first instruction.
    CHECK(program[6].off == 4);
    CHECK(program[7].off == 3);
    CHECK(program[8].off == 2);
}
