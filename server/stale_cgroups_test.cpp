// Which nsfork-PID trees belong to dead servers: names, marks, /proc/PID/stat, and the verdict
// against a process table given as a function. No root, no cgroups.
#include "server/stale_cgroups.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace nsfork;

namespace {

constexpr std::uint64_t kOurNs = 4026531836;

// A process table: pid → start ticks.
ProcessStart table(std::map<pid_t, std::uint64_t> starts) {
    return [starts = std::move(starts)](pid_t pid) -> std::optional<std::uint64_t> {
        auto it = starts.find(pid);
        if (it == starts.end()) return std::nullopt;
        return it->second;
    };
}

} // namespace

TEST_CASE("stale cgroups: only nsfork-<pid> names are server trees") {
    CHECK(server_tree_pid("nsfork-1234") == 1234);
    CHECK(server_tree_pid("nsfork-1") == 1);
    CHECK(server_tree_pid("nsfork-2147483647") == 2147483647);
    CHECK_FALSE(server_tree_pid("nsfork-2147483648"));
    CHECK_FALSE(server_tree_pid("nsfork-99999999999"));
    CHECK_FALSE(server_tree_pid("nsfork-"));
    CHECK_FALSE(server_tree_pid("nsfork-0"));
    CHECK_FALSE(server_tree_pid("nsfork-012"));
    CHECK_FALSE(server_tree_pid("nsfork-12a"));
    CHECK_FALSE(server_tree_pid("nsfork--12"));
    CHECK_FALSE(server_tree_pid("nsfork-+12"));
    CHECK_FALSE(server_tree_pid("nsfork-hardening-12"));
    CHECK_FALSE(server_tree_pid("nsfork-test-stale-12"));
    CHECK_FALSE(server_tree_pid("c12"));
    CHECK_FALSE(server_tree_pid("xnsfork-12"));
}

TEST_CASE("stale cgroups: a mark reads back as written, anything else is no mark") {
    const ServerMark m{4026531836, 123456789};
    CHECK(format_mark(m) == "4026531836 123456789");
    CHECK(parse_mark(format_mark(m)) == m);
    CHECK_FALSE(parse_mark(""));
    CHECK_FALSE(parse_mark("4026531836"));
    CHECK_FALSE(parse_mark("4026531836 "));
    CHECK_FALSE(parse_mark(" 123"));
    CHECK_FALSE(parse_mark("4026531836 12 3"));
    CHECK_FALSE(parse_mark("4026531836 -1"));
    CHECK_FALSE(parse_mark("ns 12"));
}

TEST_CASE("stale cgroups: the start time is field 22 of /proc/PID/stat, whatever the command's name") {
    const std::string tail = " 1 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100";
    CHECK(parse_start_ticks("42 (nsfork)" " S" + tail) == 987654);
    // A command name with spaces and parentheses cannot shift the fields.
    CHECK(parse_start_ticks("42 (a) b (c) d)" " S" + tail) == 987654);
    // A zombie is dead: no server.
    CHECK_FALSE(parse_start_ticks("42 (nsfork) Z" + tail));
    CHECK_FALSE(parse_start_ticks("42 (nsfork) X" + tail));
    CHECK_FALSE(parse_start_ticks("42 (nsfork) S 1 1 1"));
    CHECK_FALSE(parse_start_ticks("42 nsfork S" + tail));
    CHECK_FALSE(parse_start_ticks(""));
}

TEST_CASE("stale cgroups: a marked tree is dead when its pid is gone or names another process") {
    const ServerMark mark{kOurNs, 5000};
    CHECK(judge_tree({100, mark, 5001}, kOurNs, table({{100, 5000}})) == TreeVerdict::live);
    CHECK(judge_tree({100, mark, 5001}, kOurNs, table({})) == TreeVerdict::dead);
    // The pid was reused, by a later process or (after a reboot's worth of pids) an earlier one.
    CHECK(judge_tree({100, mark, 5001}, kOurNs, table({{100, 5001}})) == TreeVerdict::dead);
    CHECK(judge_tree({100, mark, 5001}, kOurNs, table({{100, 4000}})) == TreeVerdict::dead);
    // The mark decides, not the clock: a birth time that the wall clock moved far off changes nothing.
    CHECK(judge_tree({100, mark, 1}, kOurNs, table({{100, 5000}})) == TreeVerdict::live);
    CHECK(judge_tree({100, mark, std::nullopt}, kOurNs, table({{100, 5000}})) == TreeVerdict::live);
}

TEST_CASE("stale cgroups: a tree marked in another pid namespace is never judged") {
    const ServerMark mark{kOurNs + 1, 5000};
    // Our pid 100 is not its pid 100: whether gone or another process here, it is not ours.
    CHECK(judge_tree({100, mark, 5001}, kOurNs, table({})) == TreeVerdict::foreign);
    CHECK(judge_tree({100, mark, 5001}, kOurNs, table({{100, 9000}})) == TreeVerdict::foreign);
}

TEST_CASE("stale cgroups: an unmarked tree is dead when its pid is gone or started after the tree") {
    CHECK(judge_tree({100, std::nullopt, 5000}, kOurNs, table({})) == TreeVerdict::dead);
    CHECK(judge_tree({100, std::nullopt, 5000}, kOurNs, table({{100, 4990}})) == TreeVerdict::live);
    CHECK(judge_tree({100, std::nullopt, 5000}, kOurNs, table({{100, 5000 + kClockSlackTicks}})) ==
          TreeVerdict::live);
    CHECK(judge_tree({100, std::nullopt, 5000}, kOurNs, table({{100, 5001 + kClockSlackTicks}})) ==
          TreeVerdict::dead);
    // Without a birth time only a gone pid is proof.
    CHECK(judge_tree({100, std::nullopt, std::nullopt}, kOurNs, table({{100, 99999}})) == TreeVerdict::live);
    CHECK(judge_tree({100, std::nullopt, std::nullopt}, kOurNs, table({})) == TreeVerdict::dead);
}
