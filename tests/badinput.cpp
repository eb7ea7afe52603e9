#include "badinput.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>

namespace nsfork::test::badinput {

Footprint settled_footprint(pid_t pid) {
    return testing::settled([&] { return Footprint{testing::fd_count(pid), testing::children_of(pid).size()}; },
                            std::equal_to<>{});
}

UniqueFd dev_null() {
    UniqueFd fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    REQUIRE(fd);
    return fd;
}

UniqueFd memfd_with(const Bytes& bytes, int seals) {
    UniqueFd fd(::memfd_create("badinput-body", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    REQUIRE(fd);
    REQUIRE(::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    if (seals) REQUIRE(::fcntl(fd.get(), F_ADD_SEALS, seals) == 0);
    return fd;
}

const wire::ReplyMessage* reply_in(const Result<Datagram>& got) {
    REQUIRE(got);
    const wire::ReplyMessage* m = verify_reply(got->bytes);
    REQUIRE(m);
    return m;
}

void check_error(const Result<Datagram>& got, std::uint32_t seq, Errc code, const std::string& message) {
    if (!got) FAIL("expected an Error reply, got: " << got.error().message);
    const wire::ReplyMessage* m = reply_in(got);
    CHECK(m->seq() == seq);
    const wire::Error* e = m->reply_as_Error();
    REQUIRE(e);
    CHECK(static_cast<int>(e->code()) == static_cast<int>(code));
    CHECK(str(e->message()) == message);
    CHECK(got->fds.empty());
}

Fixture::Fixture(std::vector<std::string> server_args) : server(std::move(server_args)) {
    // One launch first: the connection is accepted (its fd counted) and the warm pool, if any,
    // has been used and refilled before the baseline.
    raw_round_trip();
    baseline = settled_footprint(server.pid());
}

void Fixture::force_send_buffer() {
    const int size = 4 << 20;
    REQUIRE(::setsockopt(raw.fd(), SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) == 0);
}

Result<Datagram> Fixture::ask(const Bytes& bytes, std::span<const int> fds) {
    REQUIRE(raw.send(bytes, fds) == 0);
    return raw.receive();
}

void Fixture::raw_round_trip() {
    testing::LaunchFields f;
    f.id = "after-bad-input";
    auto launched = ask(testing::launch_request(raw.next_seq(), f));
    const wire::LaunchReply* l = reply_in(launched)->reply_as_LaunchReply();
    REQUIRE(l);
    CHECK(launched->fds.size() == 1);
    auto waited = ask(testing::wait_request(raw.next_seq(), "after-bad-input"));
    const wire::WaitReply* w = reply_in(waited)->reply_as_WaitReply();
    REQUIRE(w);
    CHECK(read_info(*w->container()).exit == ExitStatus{0, 0});
    CHECK(reply_in(ask(testing::destroy_request(raw.next_seq(), "after-bad-input")))->reply_as_DestroyReply());
}

void Fixture::check_still_serving(bool raw_alive) {
    if (raw_alive) raw_round_trip();
    {
        Client client = server.connect();
        LaunchOptions o;
        o.argv = {"/bin/true"};
        o.env = {kPath};
        auto ct = client.launch(o);
        REQUIRE(ct);
        auto status = client.wait(ct->id());
        REQUIRE(status);
        CHECK(*status == ExitStatus{0, 0});
        REQUIRE(client.destroy(ct->id()));
    }
    if (!raw_alive) raw.close();
    const Footprint now = settled_footprint(server.pid());
    CHECK(now.fds == baseline.fds - (raw_alive ? 0 : 1));
    CHECK(now.children == baseline.children);
}

} // namespace nsfork::test::badinput
