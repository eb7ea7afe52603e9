// The musl front's hand-written wire messages (cli/front_wire.hpp) against the generated
// FlatBuffers code: what it writes verifies and parses as the server reads it, and it reads the
// replies the server's own code builds.
#include "cli/front_wire.hpp"

#include "protocol/messages.hpp"
#include "server/request.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <string>
#include <vector>

using namespace nsfork;

namespace {

std::vector<UniqueFd> three_fds() {
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 3; ++i) fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    return fds;
}

// A reply as the server builds it.
std::vector<std::uint8_t> reply(std::uint32_t seq, wire::Reply type,
                                 const std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)>& body) {
    flatbuffers::FlatBufferBuilder fbb;
    finish_reply(fbb, seq, type, body(fbb));
    return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

ContainerInfo info(const std::string& id) {
    ContainerInfo i;
    i.id = id;
    i.pid = 1234;
    i.state = State::exited;
    i.exit = ExitStatus{0, SIGTERM};
    return i;
}

} // namespace

TEST_CASE("front wire: its Launch verifies and parses as the server reads it, stdio, environment, cwd, signals and destroy_on_exit") {
    alignas(8) std::uint8_t buf[NSFORK_MAX_DATAGRAM];
    char a0[] = "/bin/echo", a1[] = "a b", a2[] = "";
    char* argv[] = {a0, a1, a2, nullptr};
    char e0[] = "PATH=/bin", e1[] = "EMPTY=";
    char* env[] = {e0, e1, nullptr};
    front_wire::Writer w(buf, sizeof buf);
    w.start_request(7, front_wire::kLaunch);
    w.launch(argv, env, "/tmp", 0x8001, 0x2, true);
    REQUIRE(w.ok());
    const std::span<const std::uint8_t> bytes(buf, w.size());
    CHECK(identify(bytes) == Identified::request);
    const wire::RequestMessage* m = verify_request(bytes);
    REQUIRE(m);
    CHECK(m->seq() == 7);
    REQUIRE(m->request_as_Launch());
    const auto fds = three_fds();
    auto r = parse_launch(*m->request_as_Launch(), fds);
    REQUIRE(r);
    CHECK(r->id.empty());
    CHECK(r->spec.argv == std::vector<std::string>{"/bin/echo", "a b", ""});
    CHECK(r->spec.env == std::vector<std::string>{"PATH=/bin", "EMPTY="});
    CHECK(r->spec.cwd == "/tmp");
    CHECK(r->spec.stdio == std::array<int, 3>{fds[0].get(), fds[1].get(), fds[2].get()});
    CHECK(r->spec.signal_mask == 0x8001);
    CHECK(r->spec.ignored_signals == 0x2);
    CHECK_FALSE(r->spec.tty);
    CHECK_FALSE(r->spec.uid);
    CHECK(r->spec.extra_fds.empty());
    CHECK(m->request_as_Launch()->destroy_on_exit());
    // Declared three fds: without them the server refuses it.
    CHECK_FALSE(parse_launch(*m->request_as_Launch(), {}));
}

TEST_CASE("front wire: Wait and Destroy verify with their id, an empty environment too, and a full buffer is not ok") {
    alignas(8) std::uint8_t buf[NSFORK_MAX_DATAGRAM];
    for (auto [type, kind] : {std::pair{front_wire::kWait, wire::Request::Wait}, {front_wire::kDestroy, wire::Request::Destroy}}) {
        front_wire::Writer w(buf, sizeof buf);
        w.start_request(2, type);
        w.by_id("nsfork-12-3");
        REQUIRE(w.ok());
        const wire::RequestMessage* m = verify_request({buf, w.size()});
        REQUIRE(m);
        CHECK(m->request_type() == kind);
        const auto* id = kind == wire::Request::Wait ? m->request_as_Wait()->id() : m->request_as_Destroy()->id();
        CHECK(id->str() == "nsfork-12-3");
    }
    char a0[] = "true";
    char* argv[] = {a0, nullptr};
    char* no_env[] = {nullptr};
    front_wire::Writer empty(buf, sizeof buf);
    empty.start_request(1, front_wire::kLaunch);
    empty.launch(argv, no_env, "/", 0, 0, false);
    const wire::RequestMessage* m = verify_request({buf, empty.size()});
    REQUIRE(m);
    CHECK(parse_launch(*m->request_as_Launch(), three_fds()));
    CHECK_FALSE(m->request_as_Launch()->destroy_on_exit());

    std::string big(70000, 'x');
    char* huge[] = {big.data(), nullptr};
    front_wire::Writer over(buf, sizeof buf);
    over.start_request(1, front_wire::kLaunch);
    over.launch(huge, no_env, "/", 0, 0, true);
    CHECK_FALSE(over.ok());
}

TEST_CASE("front wire: reads the server's LaunchReply, WaitReply, DestroyReply and Error, and nothing from a truncated one") {
    const auto launched = reply(1, wire::Reply::LaunchReply, [](flatbuffers::FlatBufferBuilder& fbb) {
        const auto c = write_info(fbb, info("nsfork-99-1"));
        const auto roles = fbb.CreateVector(std::vector<wire::FdRole>{wire::FdRole::Pidfd});
        return wire::CreateLaunchReply(fbb, c, roles).Union();
    });
    const front_wire::Reply l(launched.data(), launched.size());
    CHECK(l.seq() == 1);
    char id[256];
    bool pidfd_first = false, destroys = true;
    REQUIRE(l.launched(id, sizeof id, &pidfd_first, &destroys));
    CHECK(std::string(id) == "nsfork-99-1");
    CHECK(pidfd_first);
    CHECK_FALSE(destroys); // a server that does not say it will: Wait and Destroy
    const auto promised = reply(1, wire::Reply::LaunchReply, [](flatbuffers::FlatBufferBuilder& fbb) {
        const auto c = write_info(fbb, info("nsfork-99-1"));
        const auto roles = fbb.CreateVector(std::vector<wire::FdRole>{wire::FdRole::Pidfd});
        return wire::CreateLaunchReply(fbb, c, roles, true).Union();
    });
    REQUIRE(front_wire::Reply(promised.data(), promised.size()).launched(id, sizeof id, &pidfd_first, &destroys));
    CHECK(destroys);
    std::int32_t code = -1, signal = -1;
    CHECK_FALSE(l.exited(&code, &signal));

    const auto waited = reply(2, wire::Reply::WaitReply, [](flatbuffers::FlatBufferBuilder& fbb) {
        return wire::CreateWaitReply(fbb, write_info(fbb, info("nsfork-99-1"))).Union();
    });
    const front_wire::Reply w(waited.data(), waited.size());
    CHECK(w.seq() == 2);
    REQUIRE(w.exited(&code, &signal));
    CHECK(code == 0);
    CHECK(signal == SIGTERM);

    const auto gone = reply(1, wire::Reply::DestroyReply, [](flatbuffers::FlatBufferBuilder& fbb) {
        ContainerInfo i = info("nsfork-99-1");
        i.exit = ExitStatus{3, 0};
        return wire::CreateDestroyReply(fbb, write_info(fbb, i)).Union();
    });
    REQUIRE(front_wire::Reply(gone.data(), gone.size()).exited(&code, &signal));
    CHECK(code == 3);
    CHECK(signal == 0);

    const auto failed = reply(1, wire::Reply::Error, [](flatbuffers::FlatBufferBuilder& fbb) {
        return wire::CreateError(fbb, wire::ErrorCode::ExecFailed, fbb.CreateString("cannot execute 'x'"), ENOENT).Union();
    });
    const front_wire::Reply e(failed.data(), failed.size());
    char message[64];
    REQUIRE(e.error(message, sizeof message));
    CHECK(std::string(message) == "cannot execute 'x'");
    CHECK_FALSE(e.launched(id, sizeof id, &pidfd_first, &destroys));

    // Every prefix of a reply reads as nothing or as far as it goes, never past its end.
    for (std::size_t n = 0; n < waited.size(); ++n) {
        std::vector<std::uint8_t> cut(waited.begin(), waited.begin() + static_cast<long>(n));
        const front_wire::Reply r(cut.data(), cut.size());
        (void)r.exited(&code, &signal);
    }
    // A request's identifier is not a reply.
    alignas(8) std::uint8_t buf[256];
    front_wire::Writer req(buf, sizeof buf);
    req.start_request(1, front_wire::kWait);
    req.by_id("a");
    CHECK(front_wire::Reply(buf, req.size()).type() == 0);
}
