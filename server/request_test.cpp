// parse_launch: every refusal of a Launch that needs no server state, and the LaunchSpec it
// builds. Launch messages are built with the test-support library's raw builder, so that even
// what the client library would refuse can be parsed.
#include "server/request.hpp"

#include "protocol/messages.hpp"
#include "testing/wire.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <functional>
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

// ---- the command's process (issue 13) ----

constexpr auto kExtra = static_cast<std::uint8_t>(wire::FdRole::Extra);

// Bit N-1 of a signal set: signal N.
constexpr std::uint64_t bit(int sig) { return 1ULL << (sig - 1); }

TEST_CASE("parse_launch leaves the command's process as the server's when the Launch says nothing") {
    auto r = parse(LaunchFields{});
    REQUIRE(r);
    CHECK_FALSE(r->spec.tty);
    CHECK_FALSE(r->spec.kill_group);
    CHECK(r->spec.signal_mask == 0);
    CHECK(r->spec.ignored_signals == 0);
    CHECK_FALSE(r->spec.uid);
    CHECK_FALSE(r->spec.gid);
    CHECK_FALSE(r->spec.groups);
    CHECK(r->spec.extra_fds.empty());
}

TEST_CASE("parse_launch carries tty, kill_group, the signal sets and the user into the LaunchSpec") {
    LaunchFields f;
    f.tty = true;
    f.kill_group = true;
    f.signal_mask = bit(SIGHUP) | bit(SIGUSR1) | bit(64);
    f.ignored_signals = bit(SIGINT) | bit(SIGPIPE) | bit(34);
    f.uid = 1000;
    f.gid = 100;
    f.groups = std::vector<std::uint32_t>{10, 20, 0};
    auto r = parse(f);
    REQUIRE(r);
    CHECK(r->spec.tty);
    CHECK(r->spec.kill_group);
    CHECK(r->spec.signal_mask == f.signal_mask);
    CHECK(r->spec.ignored_signals == f.ignored_signals);
    CHECK(r->spec.uid == 1000u);
    CHECK(r->spec.gid == 100u);
    CHECK(r->spec.groups == std::vector<gid_t>{10, 20, 0});
}

TEST_CASE("parse_launch tells a user's absent fields from zero and absent groups from none") {
    LaunchFields f;
    f.uid = 0;
    auto root = parse(f);
    REQUIRE(root);
    CHECK(root->spec.uid == 0u);
    CHECK_FALSE(root->spec.gid);
    CHECK_FALSE(root->spec.groups);
    f = LaunchFields{};
    f.groups = std::vector<std::uint32_t>{};
    auto none = parse(f);
    REQUIRE(none);
    CHECK_FALSE(none->spec.uid);
    REQUIRE(none->spec.groups);
    CHECK(none->spec.groups->empty());
}

TEST_CASE("parse_launch gives the extra fds to the command in the order listed, after stdio") {
    LaunchFields f;
    f.roles = {kExtra, 1, kExtra, kExtra};
    const auto fds = null_fds(4);
    auto r = parse(f, fds);
    REQUIRE(r);
    CHECK(r->spec.extra_fds == std::vector<int>{fds[0].get(), fds[2].get(), fds[3].get()});
    CHECK(r->spec.stdio[1] == fds[1].get());
}

TEST_CASE("parse_launch takes kMaxExtraFds extra fds and refuses one more") {
    LaunchFields f;
    f.roles.assign(kMaxExtraFds, kExtra);
    auto r = parse(f, null_fds(kMaxExtraFds));
    REQUIRE(r);
    CHECK(r->spec.extra_fds.size() == kMaxExtraFds);
    f.roles.assign(kMaxExtraFds + 1, kExtra);
    check_refused(f, "more than 11 extra fds", null_fds(kMaxExtraFds + 1));
}

TEST_CASE("parse_launch refuses a terminal's role on a Launch: only replies carry one") {
    LaunchFields f;
    f.roles = {static_cast<std::uint8_t>(wire::FdRole::Terminal)};
    check_refused(f, "fd 0 has role 8, which a Launch cannot take", null_fds(1));
}

TEST_CASE("parse_launch refuses stdio fds on a tty launch") {
    LaunchFields f;
    f.tty = true;
    f.roles = {kExtra, 2};
    check_refused(f, "a tty launch takes no stdio fds: its stdio is the terminal", null_fds(2));
    f.roles = {kExtra};
    CHECK(parse(f, null_fds(1)));
}

TEST_CASE("parse_launch refuses signal sets naming SIGKILL, SIGSTOP or the C library's own signals") {
    LaunchFields f;
    f.signal_mask = bit(SIGTERM) | bit(SIGKILL);
    check_refused(f, "signal_mask: signal 9 (SIGKILL) cannot be blocked");
    f.signal_mask = bit(SIGSTOP);
    check_refused(f, "signal_mask: signal 19 (SIGSTOP) cannot be blocked");
    f.signal_mask = bit(32);
    check_refused(f, "signal_mask: signal 32 is reserved by the C library");
    f = LaunchFields{};
    f.ignored_signals = bit(SIGSTOP);
    check_refused(f, "ignored_signals: signal 19 (SIGSTOP) cannot be ignored");
    f.ignored_signals = bit(33);
    check_refused(f, "ignored_signals: signal 33 is reserved by the C library");
    f.ignored_signals = ~(bit(SIGKILL) | bit(SIGSTOP) | bit(32) | bit(33));
    CHECK(parse(f));
}

TEST_CASE("parse_launch refuses (uid_t)-1 and (gid_t)-1 as ids") {
    LaunchFields f;
    f.uid = 0xffffffffu;
    check_refused(f, "user.uid 4294967295 ((uid_t)-1) is not a user id");
    f = LaunchFields{};
    f.gid = 0xffffffffu;
    check_refused(f, "user.gid 4294967295 ((gid_t)-1) is not a group id");
    f = LaunchFields{};
    f.groups = std::vector<std::uint32_t>{1, 2, 0xffffffffu};
    check_refused(f, "user.groups[2] 4294967295 ((gid_t)-1) is not a group id");
    f.uid = 0xfffffffeu; // the largest id there is
    f.groups = std::vector<std::uint32_t>{0xfffffffeu};
    CHECK(parse(f));
}

TEST_CASE("parse_launch takes kMaxGroups supplementary groups and refuses one more") {
    LaunchFields f;
    f.groups = std::vector<std::uint32_t>(kMaxGroups, 7);
    auto r = parse(f);
    REQUIRE(r);
    CHECK(r->spec.groups->size() == kMaxGroups);
    f.groups->push_back(7);
    check_refused(f, "user.groups has 257 entries, at most 256");
}

namespace {

// parse_launch of a hold Launch: no argv, and what `more` adds (a field of a command's).
Result<LaunchRequest> parse_hold(const std::string& cgroup_name = {},
                                 const std::function<void(wire::LaunchBuilder&)>& more = {}) {
    flatbuffers::FlatBufferBuilder fbb;
    auto argv = fbb.CreateVectorOfStrings(std::vector<std::string>{});
    auto name = cgroup_name.empty() ? 0 : fbb.CreateString(cgroup_name);
    wire::LaunchBuilder b(fbb);
    b.add_argv(argv);
    b.add_hold(true);
    if (!cgroup_name.empty()) b.add_cgroup_name(name);
    if (more) more(b);
    auto launch = b.Finish();
    fbb.Finish(wire::CreateRequestMessage(fbb, 1, wire::Request::Launch, launch.Union()));
    const wire::RequestMessage* m = verify_request({fbb.GetBufferPointer(), fbb.GetSize()});
    REQUIRE(m);
    return parse_launch(*m->request_as_Launch(), {});
}

} // namespace

TEST_CASE("parse_launch makes a hold Launch a holding spec with its cgroup name") {
    auto r = parse_hold("oci/pod-1/ctr");
    REQUIRE(r);
    CHECK(r->spec.hold);
    CHECK(r->spec.argv.empty());
    CHECK(r->cgroup_name == "oci/pod-1/ctr");
    CHECK(check_command_settings(r->spec));
}

TEST_CASE("parse_launch refuses every command setting on a hold Launch, naming it") {
    const std::string prefix = "a hold launch runs no command of the server's: it takes no ";
    auto refused = [&](const std::function<void(wire::LaunchBuilder&)>& more, const std::string& field) {
        auto r = parse_hold({}, more);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::bad_request);
        CHECK(r.error().message == prefix + field);
    };
    refused([](wire::LaunchBuilder& b) { b.add_tty(true); }, "tty");
    refused([](wire::LaunchBuilder& b) { b.add_kill_group(true); }, "kill_group");
    refused([](wire::LaunchBuilder& b) { b.add_signal_mask(1); }, "signal_mask");
    refused([](wire::LaunchBuilder& b) { b.add_ignored_signals(1); }, "ignored_signals");
    refused([](wire::LaunchBuilder& b) { b.add_tty_rows(24); }, "tty_rows or tty_cols");
}

TEST_CASE("check_cgroup_name takes relative paths of plain components and refuses the rest, naming why") {
    CHECK(check_cgroup_name("a"));
    CHECK(check_cgroup_name("oci/k8s.io/pod-1/ctr_2"));
    CHECK(check_cgroup_name("x/c1")); // c<N> below the top is no server leaf's name
    auto refused = [](std::string_view name, const std::string& message) {
        auto r = check_cgroup_name(name);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::bad_request);
        CHECK(r.error().message == message);
    };
    refused("", "cgroup_name '' is empty");
    refused("/a", "cgroup_name '/a' is absolute: it names a path below the server's container tree");
    refused("a//b", "cgroup_name 'a//b' has an empty component");
    refused("a/", "cgroup_name 'a/' has an empty component");
    refused("a/./b", "cgroup_name 'a/./b' has a '.' component");
    refused("..", "cgroup_name '..' has a '..' component");
    refused("c12/x", "cgroup_name 'c12/x' starts with a name of the form c<N>, the server's own leaves");
    refused(std::string("a\0b", 3), std::string("cgroup_name 'a") + '\0' + "b' contains a NUL byte");
    refused(std::string(256, 'x'), "cgroup_name '" + std::string(64, 'x') + "' has a component longer than 255 bytes");
    refused(std::string(1025, 'x'), "cgroup_name '" + std::string(64, 'x') + "' is longer than 1024 bytes");
}

TEST_CASE("parse_launch refuses a cgroup_name on a Launch that is not a hold") {
    flatbuffers::FlatBufferBuilder fbb;
    auto argv = fbb.CreateVectorOfStrings(std::vector<std::string>{"/bin/true"});
    auto name = fbb.CreateString("x");
    wire::LaunchBuilder b(fbb);
    b.add_argv(argv);
    b.add_cgroup_name(name);
    auto launch = b.Finish();
    fbb.Finish(wire::CreateRequestMessage(fbb, 1, wire::Request::Launch, launch.Union()));
    auto r = parse_launch(*verify_request({fbb.GetBufferPointer(), fbb.GetSize()})->request_as_Launch(), {});
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "cgroup_name names a hold launch's leaf; this launch is not one");
}

TEST_CASE("parse_launch takes a hold Launch's device program of whole instructions and its namespaces to make ahead") {
    auto parse = [](std::size_t program_bytes, std::uint32_t namespaces) {
        flatbuffers::FlatBufferBuilder fbb;
        auto argv = fbb.CreateVectorOfStrings(std::vector<std::string>{});
        auto program = fbb.CreateVector(std::vector<std::uint8_t>(program_bytes, 0));
        wire::LaunchBuilder b(fbb);
        b.add_argv(argv);
        b.add_hold(true);
        b.add_device_program(program);
        b.add_new_namespaces(namespaces);
        auto launch = b.Finish();
        fbb.Finish(wire::CreateRequestMessage(fbb, 1, wire::Request::Launch, launch.Union()));
        auto r = parse_launch(*verify_request({fbb.GetBufferPointer(), fbb.GetSize()})->request_as_Launch(), {});
        // The program is borrowed from the message: checked here, while it lives.
        if (r) CHECK(r->device_program.size() == program_bytes);
        return r ? std::string() : r.error().message;
    };
    CHECK(parse(16, CLONE_NEWNET | CLONE_NEWUTS).empty());
    CHECK(parse(8 * 4096, CLONE_NEWIPC).empty());
    CHECK(parse(0, 0) == "device_program has 0 bytes: not a whole number of 8-byte instructions");
    CHECK(parse(12, 0) == "device_program has 12 bytes: not a whole number of 8-byte instructions");
    CHECK(parse(8 * 4097, 0) == "device_program has 4097 instructions, more than 4096");
    CHECK(parse(8, CLONE_NEWUSER) == "new_namespaces 0x10000000 has flags other than CLONE_NEWNET, CLONE_NEWIPC and "
                                     "CLONE_NEWUTS: 0x10000000");
}

namespace {

// negotiate_version of a Hello offering [min_version, version] (min_version 0: left out).
Result<std::uint32_t> negotiate(std::uint32_t version, std::uint32_t min_version = 0) {
    const testing::Bytes bytes = testing::hello(1, version, min_version);
    const wire::RequestMessage* m = verify_request(bytes);
    REQUIRE(m);
    REQUIRE(m->request_as_Hello());
    return negotiate_version(*m->request_as_Hello());
}

// The version negotiated for [min_version, version], which must be one.
std::uint32_t negotiated(std::uint32_t version, std::uint32_t min_version = 0) {
    auto r = negotiate(version, min_version);
    if (!r) FAIL(r.error().message);
    return *r;
}

void check_version_refused(std::uint32_t version, std::uint32_t min_version, const std::string& message) {
    auto r = negotiate(version, min_version);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::protocol);
    CHECK(r.error().message == message);
}

} // namespace

TEST_CASE("negotiate_version answers the highest version both sides speak") {
    static_assert(kMinProtocolVersion == 1 && kProtocolVersion == 2, "the cases below speak of 1..2");
    CHECK(negotiated(1) == 1);    // a client of the previous schema: Hello{version 1}
    CHECK(negotiated(2) == 2);
    CHECK(negotiated(2, 1) == 2);
    CHECK(negotiated(1, 1) == 1);
    CHECK(negotiated(9, 1) == 2); // a newer client that still speaks ours
    CHECK(negotiated(9, 2) == 2);
}

TEST_CASE("negotiate_version refuses ranges that do not meet ours, naming both") {
    check_version_refused(3, 0, "protocol version 3 not supported: this server speaks 1..2");
    check_version_refused(9, 3, "protocol versions 3..9 not supported: this server speaks 1..2");
    check_version_refused(0, 0, "protocol version 0 not supported: this server speaks 1..2");
    check_version_refused(1, 2, "Hello's min_version 2 is above its version 1");
}
