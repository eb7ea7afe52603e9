// The plan a shim receives: encode_plan (launcher/plan.cpp) against the shim's parser
// (nsfork_parse_plan in launcher/shim_plan.h), and the malformed plans the parser refuses.
#include "launcher/child.hpp"
#include "launcher/plan.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "launcher/shim_plan.h"
}

using namespace nsfork;

namespace {

// A parse of `bytes`, with the pointer storage it needs kept alive beside it.
struct Parsed {
    std::vector<char> buf;
    std::vector<char*> pointers;
    nsfork_parsed_plan plan{};
    bool ok = false;

    explicit Parsed(const std::vector<std::uint8_t>& bytes, std::size_t max_pointers = 0)
        : buf(bytes.begin(), bytes.end()),
          pointers(max_pointers ? max_pointers : NSFORK_PLAN_MAX_POINTERS(bytes.size())) {
        ok = nsfork_parse_plan(buf.data(), buf.size(), pointers.data(), pointers.size(), &plan) == 0;
    }
};

std::vector<std::string> strings(char* const* list) {
    std::vector<std::string> out;
    for (; *list; ++list) out.emplace_back(*list);
    return out;
}

LaunchSpec sample_spec() {
    LaunchSpec spec;
    spec.argv = {"/bin/sh", "-c", "echo 'two words'", ""};
    spec.env = {"PATH=/bin", "EMPTY=", "LANG=C.UTF-8"};
    spec.cwd = "/srv/work dir";
    spec.stdio = {-1, 5, 7};
    return spec;
}

// A hand-built plan: `header` as given, then `body` verbatim.
std::vector<std::uint8_t> raw_plan(const nsfork_plan& header, const std::string& body) {
    std::string bytes(sizeof header, '\0');
    std::memcpy(bytes.data(), &header, sizeof header);
    bytes += body;
    return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

std::vector<std::uint8_t> raw_plan(std::uint32_t magic, std::uint32_t argc, std::uint32_t envc, std::uint32_t size,
                                   std::uint32_t stdio, const std::string& body) {
    nsfork_plan header{};
    header.magic = magic;
    header.argc = argc;
    header.envc = envc;
    header.size = size;
    header.stdio = stdio;
    return raw_plan(header, body);
}

std::vector<std::uint8_t> well_formed(const std::string& body, std::uint32_t argc = 1, std::uint32_t envc = 0) {
    return raw_plan(NSFORK_PLAN_MAGIC, argc, envc, static_cast<std::uint32_t>(body.size()), 0, body);
}

// A well-formed "cmd" plan at "/" (after `body`'s groups, if any) whose header `change` alters.
template <class Change>
std::vector<std::uint8_t> changed(Change&& change, std::string body = std::string("cmd\0/\0", 6)) {
    nsfork_plan header{};
    header.magic = NSFORK_PLAN_MAGIC;
    header.argc = 1;
    header.size = static_cast<std::uint32_t>(body.size());
    change(header);
    return raw_plan(header, body);
}

// Four bytes of a group id, as the plan carries it.
std::string gid_bytes(std::uint32_t gid) {
    std::string out(sizeof gid, '\0');
    std::memcpy(out.data(), &gid, sizeof gid);
    return out;
}

} // namespace

TEST_CASE("plan: argv, env, cwd and the stdio bits survive encoding and the shim's parse") {
    const LaunchSpec spec = sample_spec();
    auto bytes = encode_plan(spec);
    REQUIRE(bytes);
    Parsed parsed(*bytes);
    REQUIRE(parsed.ok);
    CHECK(strings(parsed.plan.argv) == spec.argv);
    CHECK(strings(parsed.plan.envp) == spec.env);
    CHECK(std::string(parsed.plan.cwd) == spec.cwd);
    CHECK(parsed.plan.header.stdio == 0b110); // stdout and stderr given, stdin /dev/null
    CHECK(parsed.plan.header.flags == 0);     // the command's process as by default
    CHECK(parsed.plan.header.extra_fds == 0);
    CHECK(parsed.plan.header.ngroups == 0);
}

TEST_CASE("plan: the command's process settings survive encoding and the shim's parse") {
    LaunchSpec spec = sample_spec();
    spec.new_session = false;
    spec.foreground = true;
    spec.kill_group = true;
    spec.signal_mask = 1ull << (SIGHUP - 1) | 1ull << 63;
    spec.ignored_signals = 1ull << (SIGINT - 1) | 1ull << (SIGQUIT - 1);
    spec.uid = 1000;
    spec.gid = 100;
    spec.groups = std::vector<gid_t>{10, 20, 4000000000u};
    spec.extra_fds = {8, 9};
    auto bytes = encode_plan(spec);
    REQUIRE(bytes);
    Parsed parsed(*bytes);
    REQUIRE(parsed.ok);
    const nsfork_plan& h = parsed.plan.header;
    CHECK(h.flags == (NSFORK_PLAN_FOREGROUND | NSFORK_PLAN_KILL_GROUP | NSFORK_PLAN_UID | NSFORK_PLAN_GID |
                      NSFORK_PLAN_GROUPS));
    CHECK(h.signal_mask == spec.signal_mask);
    CHECK(h.ignored_signals == spec.ignored_signals);
    CHECK(h.uid == 1000);
    CHECK(h.gid == 100);
    CHECK(h.extra_fds == 2);
    REQUIRE(h.ngroups == 3);
    CHECK(std::vector<gid_t>(parsed.plan.groups, parsed.plan.groups + 3) == *spec.groups);
    CHECK(strings(parsed.plan.argv) == spec.argv); // the strings follow the groups
    CHECK(strings(parsed.plan.envp) == spec.env);
    CHECK(std::string(parsed.plan.cwd) == spec.cwd);
}

TEST_CASE("plan: a terminal, uid 0 and an empty list of groups are said, not defaulted") {
    LaunchSpec spec = sample_spec();
    spec.tty = true;
    spec.tty_rows = 30;
    spec.tty_cols = 100;
    spec.uid = 0;
    spec.groups = std::vector<gid_t>{};
    auto bytes = encode_plan(spec);
    REQUIRE(bytes);
    Parsed parsed(*bytes);
    REQUIRE(parsed.ok);
    CHECK(parsed.plan.header.flags == (NSFORK_PLAN_TTY | NSFORK_PLAN_UID | NSFORK_PLAN_GROUPS));
    CHECK(parsed.plan.header.ngroups == 0);
    CHECK(parsed.plan.header.tty_rows == 30); // the window size the shim sets before the command
    CHECK(parsed.plan.header.tty_cols == 100);
}

TEST_CASE("plan: settings that cannot go together are not encoded, and check_command_settings says why") {
    auto refused = [](const LaunchSpec& spec) {
        CHECK_FALSE(encode_plan(spec));
        auto checked = check_command_settings(spec);
        REQUIRE_FALSE(checked);
        CHECK(checked.error().code == Errc::bad_request);
        return checked.error().message;
    };
    LaunchSpec spec = sample_spec();
    spec.extra_fds = std::vector<int>(NSFORK_PLAN_MAX_EXTRA_FDS, 3);
    CHECK(encode_plan(spec)); // the most one datagram carries beside stdio
    spec.extra_fds.push_back(3);
    CHECK(refused(spec) == "too many extra fds: 14 (at most 13)");
    spec.extra_fds = {3, -1};
    CHECK(refused(spec) == "bad extra fd -1");

    spec = sample_spec();
    spec.tty = true;
    spec.new_mount_namespace = false;
    CHECK(refused(spec).find("needs a mount namespace of its own") != std::string::npos);
    spec.new_mount_namespace = true;
    spec.new_session = false;
    spec.foreground = true;
    CHECK(refused(spec).find("exclude each other") != std::string::npos);

    spec = sample_spec();
    spec.foreground = true; // in a session of its own
    CHECK(refused(spec) == "the caller's terminal's foreground needs the caller's session");

    spec = sample_spec();
    spec.uid = static_cast<uid_t>(-1);
    CHECK(refused(spec) == "bad user or group id 4294967295");
}

TEST_CASE("plan: an empty environment parses to an empty envp") {
    LaunchSpec spec;
    spec.argv = {"true"};
    auto bytes = encode_plan(spec);
    REQUIRE(bytes);
    Parsed parsed(*bytes);
    REQUIRE(parsed.ok);
    CHECK(strings(parsed.plan.argv) == std::vector<std::string>{"true"});
    CHECK(parsed.plan.envp[0] == nullptr);
    CHECK(std::string(parsed.plan.cwd) == "/");
    CHECK(parsed.plan.header.stdio == 0);
}

TEST_CASE("plan: a plan larger than one datagram is not encoded, and a cold launch's carries its settings alone") {
    LaunchSpec spec = sample_spec();
    spec.env = {"BIG=" + std::string(NSFORK_PLAN_MAX, 'x')};
    spec.kill_group = true;
    spec.extra_fds = {9};
    CHECK_FALSE(command_fits_plan(spec));
    CHECK_FALSE(encode_plan(spec));
    auto bytes = encode_cold_plan(spec);
    REQUIRE(bytes);
    Parsed parsed(*bytes);
    REQUIRE(parsed.ok);
    CHECK(parsed.plan.header.argc == 0); // argv, env and cwd go through the exec
    CHECK(parsed.plan.argv[0] == nullptr);
    CHECK(parsed.plan.envp[0] == nullptr);
    CHECK(std::string(parsed.plan.cwd).empty());
    CHECK(parsed.plan.header.flags == NSFORK_PLAN_KILL_GROUP);
    CHECK(parsed.plan.header.extra_fds == 1);
    CHECK(parsed.plan.header.stdio == 0b110);

    spec.env = {"SMALL=1"};
    CHECK(command_fits_plan(spec));
    CHECK(encode_cold_plan(spec) == encode_plan(spec)); // fits: the whole plan
}

TEST_CASE("plan: the shim refuses malformed plans") {
    CHECK(Parsed(well_formed(std::string("cmd\0/\0", 6))).ok); // the baseline the others break
    CHECK_FALSE(Parsed(std::vector<std::uint8_t>(sizeof(nsfork_plan) - 1)).ok);                // short
    CHECK_FALSE(Parsed(raw_plan(0x12345678, 1, 0, 6, 0, std::string("cmd\0/\0", 6))).ok);     // bad magic
    CHECK_FALSE(Parsed(raw_plan(NSFORK_PLAN_MAGIC, 1, 0, 7, 0, std::string("cmd\0/\0", 6))).ok); // size > bytes
    CHECK_FALSE(Parsed(raw_plan(NSFORK_PLAN_MAGIC, 1, 0, 5, 0, std::string("cmd\0/\0", 6))).ok); // size < bytes
    CHECK_FALSE(Parsed(raw_plan(NSFORK_PLAN_MAGIC, 1, 0, 6, 8, std::string("cmd\0/\0", 6))).ok); // unknown stdio bit
    CHECK_FALSE(Parsed(well_formed(std::string("/\0", 2), 0)).ok);                               // argc 0 with a cwd
    CHECK(Parsed(well_formed(std::string("\0", 1), 0)).ok);                                       // settings-only
    CHECK_FALSE(Parsed(well_formed(std::string("A=1\0\0", 5), 0, 1)).ok);                         // env, no command
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0\0", 5))).ok);                               // command, no cwd
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0/", 5))).ok);                               // cwd lacks its NUL
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0/\0", 6), 2)).ok);                           // fewer strings than argc
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0/\0", 6), 1, 1)).ok);                        // no cwd left
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0A=1\0/\0", 10))).ok);                        // more strings than announced
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0/\0", 6), 0xffffffffu, 2)).ok);              // counts that would wrap
}

TEST_CASE("plan: the shim refuses malformed settings of the command's process") {
    CHECK(Parsed(changed([](nsfork_plan&) {})).ok); // the baseline the others break
    CHECK_FALSE(Parsed(changed([](nsfork_plan& h) { h.flags = NSFORK_PLAN_ALL_FLAGS + 1; })).ok); // unknown flag
    CHECK_FALSE(Parsed(changed([](nsfork_plan& h) { h.flags = NSFORK_PLAN_FOREGROUND | NSFORK_PLAN_TTY; })).ok);
    CHECK(Parsed(changed([](nsfork_plan& h) { h.extra_fds = NSFORK_PLAN_MAX_EXTRA_FDS; })).ok);
    CHECK_FALSE(Parsed(changed([](nsfork_plan& h) { h.extra_fds = NSFORK_PLAN_MAX_EXTRA_FDS + 1; })).ok);
    CHECK_FALSE(Parsed(changed([](nsfork_plan& h) { h.uid = 1000; })).ok); // without NSFORK_PLAN_UID
    CHECK_FALSE(Parsed(changed([](nsfork_plan& h) { h.tty_cols = 80; })).ok); // without NSFORK_PLAN_TTY
    CHECK_FALSE(Parsed(changed([](nsfork_plan& h) { h.zero = 1; })).ok);
    CHECK_FALSE(Parsed(changed([](nsfork_plan& h) { h.gid = 1000; })).ok); // without NSFORK_PLAN_GID
    CHECK(Parsed(changed([](nsfork_plan& h) {
              h.flags = NSFORK_PLAN_UID | NSFORK_PLAN_GID;
              h.uid = h.gid = 7;
          })).ok);

    const std::string body = gid_bytes(10) + gid_bytes(20) + std::string("cmd\0/\0", 6);
    auto groups = [&](std::uint32_t flags, std::uint32_t ngroups) {
        return changed(
            [&](nsfork_plan& h) {
                h.flags = flags;
                h.ngroups = ngroups;
            },
            body);
    };
    Parsed two(groups(NSFORK_PLAN_GROUPS, 2));
    REQUIRE(two.ok);
    CHECK(std::vector<std::uint32_t>(two.plan.groups, two.plan.groups + 2) == std::vector<std::uint32_t>{10, 20});
    CHECK(strings(two.plan.argv) == std::vector<std::string>{"cmd"});
    CHECK_FALSE(Parsed(groups(0, 2)).ok);                           // groups without NSFORK_PLAN_GROUPS
    CHECK_FALSE(Parsed(groups(NSFORK_PLAN_GROUPS, 1)).ok);          // a group's bytes read as strings
    CHECK_FALSE(Parsed(groups(NSFORK_PLAN_GROUPS, 3)).ok);          // the strings' bytes read as a group
    CHECK_FALSE(Parsed(groups(NSFORK_PLAN_GROUPS, 0x40000000u)).ok); // more groups than bytes
}

TEST_CASE("plan: the shim refuses a plan buffer not aligned for its groups") {
    auto bytes = well_formed(std::string("cmd\0/\0", 6));
    std::vector<char> buf(bytes.size() + 1);
    std::memcpy(buf.data() + 1, bytes.data(), bytes.size());
    std::vector<char*> pointers(NSFORK_PLAN_MAX_POINTERS(bytes.size()));
    nsfork_parsed_plan plan{};
    CHECK(nsfork_parse_plan(buf.data() + 1, bytes.size(), pointers.data(), pointers.size(), &plan) == -1);
}

TEST_CASE("plan: the shim refuses a plan whose pointers do not fit its array") {
    auto bytes = well_formed(std::string("a\0b\0c\0/\0", 8), 3);
    CHECK(Parsed(bytes, 4 + 1).ok);     // 3 argv + NULL + the envp NULL
    CHECK_FALSE(Parsed(bytes, 4).ok);
}

TEST_CASE("plan: the init's fd table numbers the slots in use contiguously from 3") {
    constexpr InitFdUse plain{};
    CHECK(plain.fd_of(InitFd::report) == 3);
    CHECK(plain.fd_of(InitFd::plan) == -1);
    constexpr InitFdUse shared{.watch_server = true, .plan = true};
    CHECK(shared.fd_of(InitFd::server_pidfd) == 4);
    CHECK(shared.fd_of(InitFd::cgroup_kill) == 5);
    CHECK(shared.fd_of(InitFd::plan) == 6);
    constexpr InitFdUse planned{.watch_server = false, .plan = true};
    CHECK(planned.fd_of(InitFd::server_pidfd) == -1);
    CHECK(planned.fd_of(InitFd::plan) == 4);
}

TEST_CASE("plan: a hold plan is settings-only with the hold flag alone, and the shim takes nothing beside it") {
    LaunchSpec spec;
    spec.hold = true;
    auto bytes = encode_plan(spec);
    REQUIRE(bytes);
    CHECK(encode_cold_plan(spec) == bytes);
    Parsed p(*bytes);
    REQUIRE(p.ok);
    CHECK(p.plan.header.flags == NSFORK_PLAN_HOLD);
    CHECK(p.plan.header.argc == 0);
    CHECK(std::string(p.plan.cwd).empty());

    spec.argv = {"/bin/true"};
    CHECK_FALSE(encode_plan(spec)); // check_command_settings refuses it, naming why
    CHECK_THAT(check_command_settings(spec).error().message, Catch::StartsWith("a holding init runs no command"));

    const std::string settings_only("\0", 1);
    auto hold_with = [&](auto&& change) {
        return changed(
            [&](nsfork_plan& h) {
                h.argc = 0;
                h.flags = NSFORK_PLAN_HOLD;
                change(h);
            },
            settings_only);
    };
    CHECK(Parsed(hold_with([](nsfork_plan&) {})).ok);
    CHECK_FALSE(Parsed(hold_with([](nsfork_plan& h) { h.flags |= NSFORK_PLAN_KILL_GROUP; })).ok);
    CHECK_FALSE(Parsed(hold_with([](nsfork_plan& h) { h.stdio = 2; })).ok);
    CHECK_FALSE(Parsed(hold_with([](nsfork_plan& h) { h.extra_fds = 1; })).ok);
    CHECK_FALSE(Parsed(hold_with([](nsfork_plan& h) { h.signal_mask = 1; })).ok);
    CHECK_FALSE(Parsed(changed([](nsfork_plan& h) { h.flags = NSFORK_PLAN_HOLD; })).ok); // with a command
}
