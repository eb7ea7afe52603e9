// The plan a shim receives: encode_plan (launcher/plan.cpp) against the shim's parser
// (nsfork_parse_plan in launcher/shim_plan.h), and the malformed plans the parser refuses.
#include "launcher/child.hpp"
#include "launcher/plan.hpp"

#include <catch2/catch.hpp>

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

// A hand-built plan: the header fields as given, then `body` verbatim.
std::vector<std::uint8_t> raw_plan(std::uint32_t magic, std::uint32_t argc, std::uint32_t envc, std::uint32_t size,
                                   std::uint32_t stdio, const std::string& body) {
    const nsfork_plan header{magic, argc, envc, size, stdio};
    std::string bytes(sizeof header, '\0');
    std::memcpy(bytes.data(), &header, sizeof header);
    bytes += body;
    return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

std::vector<std::uint8_t> well_formed(const std::string& body, std::uint32_t argc = 1, std::uint32_t envc = 0) {
    return raw_plan(NSFORK_PLAN_MAGIC, argc, envc, static_cast<std::uint32_t>(body.size()), 0, body);
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
    CHECK(parsed.plan.stdio == 0b110); // stdout and stderr given, stdin /dev/null
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
    CHECK(parsed.plan.stdio == 0);
}

TEST_CASE("plan: a plan larger than one datagram is not encoded") {
    LaunchSpec spec;
    spec.argv = {"true"};
    spec.env = {"BIG=" + std::string(NSFORK_PLAN_MAX, 'x')};
    CHECK_FALSE(encode_plan(spec));
}

TEST_CASE("plan: the shim refuses malformed plans") {
    CHECK(Parsed(well_formed(std::string("cmd\0/\0", 6))).ok); // the baseline the others break
    CHECK_FALSE(Parsed(std::vector<std::uint8_t>(sizeof(nsfork_plan) - 1)).ok);                // short
    CHECK_FALSE(Parsed(raw_plan(0x12345678, 1, 0, 6, 0, std::string("cmd\0/\0", 6))).ok);     // bad magic
    CHECK_FALSE(Parsed(raw_plan(NSFORK_PLAN_MAGIC, 1, 0, 7, 0, std::string("cmd\0/\0", 6))).ok); // size > bytes
    CHECK_FALSE(Parsed(raw_plan(NSFORK_PLAN_MAGIC, 1, 0, 5, 0, std::string("cmd\0/\0", 6))).ok); // size < bytes
    CHECK_FALSE(Parsed(raw_plan(NSFORK_PLAN_MAGIC, 1, 0, 6, 8, std::string("cmd\0/\0", 6))).ok); // unknown stdio bit
    CHECK_FALSE(Parsed(well_formed(std::string("/\0", 2), 0)).ok);                               // argc 0
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0/", 5))).ok);                               // cwd lacks its NUL
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0/\0", 6), 2)).ok);                           // fewer strings than argc
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0/\0", 6), 1, 1)).ok);                        // no cwd left
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0A=1\0/\0", 10))).ok);                        // more strings than announced
    CHECK_FALSE(Parsed(well_formed(std::string("cmd\0/\0", 6), 0xffffffffu, 2)).ok);              // counts that would wrap
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
