// parse_launch: every refusal of a Launch that needs no server state, and the LaunchSpec it
// builds. Launch messages are built with the test-support library's raw builder, so that even
// what the client library would refuse can be parsed.
#include "server/request.hpp"

#include "protocol/messages.hpp"
#include "testing/wire.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

using namespace nsfork;
using testing::LaunchFields;

namespace {

constexpr auto kPidNamespace = static_cast<std::uint8_t>(wire::FdRole::PidNamespace);
constexpr auto kPidfd = static_cast<std::uint8_t>(wire::FdRole::Pidfd);

// `n` fds on /dev/null: parse_launch only borrows them, it never looks at what they are.
std::vector<UniqueFd> null_fds(std::size_t n) {
    std::vector<UniqueFd> fds;
    for (std::size_t i = 0; i < n; ++i) {
        fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        REQUIRE(fds.back());
    }
    return fds;
}

// parse_launch of the Launch `f` describes, with `fds`.
Result<LaunchRequest> parse(const LaunchFields& f, const std::vector<UniqueFd>& fds = {}) {
    const testing::Bytes bytes = testing::launch_request(1, f);
    const wire::RequestMessage* m = verify_request(bytes);
    REQUIRE(m);
    REQUIRE(m->request_as_Launch());
    return parse_launch(*m->request_as_Launch(), fds);
}

// The refusal of `f`: it must be a bad_request with exactly `message`.
void check_refused(const LaunchFields& f, const std::string& message, const std::vector<UniqueFd>& fds = {},
                   Errc code = Errc::bad_request) {
    auto r = parse(f, fds);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == code);
    CHECK(r.error().message == message);
}

} // namespace

TEST_CASE("parse_launch turns a plain Launch into its LaunchSpec") {
    LaunchFields f;
    f.argv = std::vector<std::string>{"/bin/echo", "a b", ""};
    f.env = {"PATH=/bin", "EMPTY="};
    f.cwd = "/tmp";
    auto r = parse(f);
    REQUIRE(r);
    CHECK(r->id.empty());
    CHECK(r->spec.argv == std::vector<std::string>{"/bin/echo", "a b", ""});
    CHECK(r->spec.env == std::vector<std::string>{"PATH=/bin", "EMPTY="});
    CHECK(r->spec.cwd == "/tmp");
    CHECK(r->spec.stdio == std::array<int, 3>{-1, -1, -1});
    CHECK(r->join_fd == -1);
    CHECK(r->spec.pid_max == 0);
}

TEST_CASE("parse_launch keeps the default cwd / when the Launch names none") {
    auto r = parse(LaunchFields{});
    REQUIRE(r);
    CHECK(r->spec.cwd == "/");
}

TEST_CASE("parse_launch keeps a valid id and treats an empty one as none") {
    LaunchFields f;
    f.id = "web-1.a_b";
    auto r = parse(f);
    REQUIRE(r);
    CHECK(r->id == "web-1.a_b");
    f.id = "";
    auto empty = parse(f);
    REQUIRE(empty);
    CHECK(empty->id.empty());
}

TEST_CASE("parse_launch refuses invalid ids with the id check's message") {
    LaunchFields f;
    f.id = "..";
    check_refused(f, "container id '..' is not allowed", {}, Errc::invalid_id);
    f.id = "a/b";
    check_refused(f, "container id contains byte 0x2f; allowed are letters, digits, '_', '-' and '.'", {},
                  Errc::invalid_id);
    f.id = std::string(129, 'a');
    check_refused(f, "container id is 129 bytes long, the limit is 128", {}, Errc::invalid_id);
}

TEST_CASE("parse_launch puts each stdio fd in its slot") {
    LaunchFields f;
    f.roles = {2, 0};
    const auto fds = null_fds(2);
    auto r = parse(f, fds);
    REQUIRE(r);
    CHECK(r->spec.stdio == std::array<int, 3>{fds[1].get(), -1, fds[0].get()});
}

TEST_CASE("parse_launch takes a pid namespace fd or a pidfd as the one to join") {
    const auto fds = null_fds(2);
    for (std::uint8_t role : {kPidNamespace, kPidfd}) {
        LaunchFields f;
        f.roles = {1, role};
        auto r = parse(f, fds);
        REQUIRE(r);
        CHECK(r->join_fd == fds[1].get());
        CHECK(r->spec.stdio[1] == fds[0].get());
    }
}

TEST_CASE("parse_launch refuses a count of fds other than the declared one") {
    LaunchFields f;
    check_refused(f, "request declares 0 fds but carries 1", null_fds(1));
    f.roles = {1, 2};
    check_refused(f, "request declares 2 fds but carries 1", null_fds(1));
}

TEST_CASE("parse_launch refuses an fd role no Launch takes") {
    LaunchFields f;
    f.roles = {9};
    check_refused(f, "fd 0 has role 9, which a Launch cannot take", null_fds(1));
    f.roles = {0, 255};
    check_refused(f, "fd 1 has role 255, which a Launch cannot take", null_fds(2));
}

TEST_CASE("parse_launch refuses two fds for one stdio slot and two namespaces to join") {
    LaunchFields f;
    f.roles = {1, 1};
    check_refused(f, "two fds for stdio slot 1", null_fds(2));
    f.roles = {kPidfd, kPidNamespace};
    check_refused(f, "two pid namespaces to join", null_fds(2));
}

TEST_CASE("parse_launch refuses an empty argv and an empty argv[0]") {
    LaunchFields f;
    f.argv = std::vector<std::string>{};
    check_refused(f, "argv is empty: no command to run");
    f.argv = std::vector<std::string>{"", "x"};
    check_refused(f, "argv[0] is empty: no command to run");
}

TEST_CASE("parse_launch refuses NUL bytes in argv, environment and cwd") {
    LaunchFields f;
    f.argv = std::vector<std::string>{"a", "b", std::string("c\0d", 3)};
    check_refused(f, "argv[2] contains a NUL byte");
    f = LaunchFields{};
    f.env = {"A=1", std::string("B=\0", 3)};
    check_refused(f, "environment entry 1 contains a NUL byte");
    f = LaunchFields{};
    f.cwd = std::string("/a\0b", 4);
    check_refused(f, "cwd contains a NUL byte");
}

TEST_CASE("parse_launch refuses environment entries that are not NAME=VALUE") {
    LaunchFields f;
    f.env = {"A=1", "NOEQUALS"};
    check_refused(f, "environment entry 1 ('NOEQUALS') is not of the form NAME=VALUE");
    f.env = {"=x"};
    check_refused(f, "environment entry 0 ('=x') is not of the form NAME=VALUE");
    f.env = {""};
    check_refused(f, "environment entry 0 ('') is not of the form NAME=VALUE");
}

TEST_CASE("parse_launch quotes at most 64 bytes of a bad environment entry") {
    LaunchFields f;
    f.env = {std::string(1000, 'x')};
    check_refused(f, "environment entry 0 ('" + std::string(64, 'x') + "') is not of the form NAME=VALUE");
}

TEST_CASE("parse_launch refuses a relative or empty cwd") {
    LaunchFields f;
    f.cwd = "tmp";
    check_refused(f, "cwd 'tmp' is not an absolute path");
    f.cwd = "";
    check_refused(f, "cwd '' is not an absolute path");
}
