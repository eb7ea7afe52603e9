// Each reply the server writes, verified and read back the way the client reads it.
#include "protocol/replies.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace nsfork;

namespace {

// The verified ReplyMessage in `fbb`, as open_reply gets it from a datagram; every reply carries
// the reply identifier.
const wire::ReplyMessage& verified(const flatbuffers::FlatBufferBuilder& fbb) {
    CHECK(flatbuffers::BufferHasIdentifier(fbb.GetBufferPointer(), kReplyIdentifier));
    const wire::ReplyMessage* m = verify_reply({fbb.GetBufferPointer(), fbb.GetSize()});
    REQUIRE(m);
    return *m;
}

ContainerInfo sample() {
    ContainerInfo info;
    info.id = "web-1";
    info.parent = "pod";
    info.pid = 4242;
    info.pidns = 4026531836ULL;
    info.state = State::exited;
    info.exit = ExitStatus{0, 9};
    info.slot = 17;
    return info;
}

void check_same(const ContainerInfo& got, const ContainerInfo& want) {
    CHECK(got.id == want.id);
    CHECK(got.parent == want.parent);
    CHECK(got.pid == want.pid);
    CHECK(got.pidns == want.pidns);
    CHECK(got.state == want.state);
    CHECK(got.exit.has_value() == want.exit.has_value());
    if (got.exit && want.exit) CHECK(got.exit->shell_code() == want.exit->shell_code());
    CHECK(got.slot == want.slot);
    CHECK(got.held == want.held);
    CHECK(got.cgroup == want.cgroup);
}

// The fd roles a reply declares, as a vector of ints.
template <class Table>
std::vector<int> roles(const Table& t) {
    std::vector<int> out;
    if (t.fds())
        for (auto r : *t.fds()) out.push_back(static_cast<int>(r));
    return out;
}

} // namespace

TEST_CASE("replies: a HelloReply carries the version, pid, pool and launch statistics") {
    ServerStatus s;
    s.pid = 77;
    s.pool_size = 2;
    s.pool_ready = 1;
    s.pool_warming = 1;
    s.pool_served = 5;
    s.pool_discarded = 3;
    s.launch_work_ns = 123456789;
    s.launches = 42;
    for (std::size_t i = 0; i < s.launch_phases.ns.size(); ++i) s.launch_phases.ns[i] = 1000 + i;
    flatbuffers::FlatBufferBuilder fbb;
    write_hello_reply(fbb, 9, s);
    const wire::ReplyMessage& m = verified(fbb);
    CHECK(m.seq() == 9);
    const wire::HelloReply* r = m.reply_as_HelloReply();
    REQUIRE(r);
    CHECK(r->version() == kProtocolVersion);
    CHECK(r->server_pid() == 77);
    CHECK(roles(*r) == std::vector<int>{static_cast<int>(wire::FdRole::StatusTable)});
    REQUIRE(r->pool());
    CHECK(r->pool()->size() == 2);
    CHECK(r->pool()->ready() == 1);
    CHECK(r->pool()->warming() == 1);
    CHECK(r->pool()->served() == 5);
    CHECK(r->pool()->discarded() == 3);
    REQUIRE(r->statistics());
    CHECK(r->statistics()->work_ns() == 123456789);
    CHECK(r->statistics()->launches() == 42);
    REQUIRE(r->statistics()->phase_ns());
    REQUIRE(r->statistics()->phase_ns()->size() == static_cast<std::size_t>(LaunchPhase::count));
    for (flatbuffers::uoffset_t i = 0; i < r->statistics()->phase_ns()->size(); ++i)
        CHECK(r->statistics()->phase_ns()->Get(i) == 1000 + i);
}

TEST_CASE("replies: a HelloReply without the status (Hello.status false) has the version and pid, no pool, no statistics") {
    ServerStatus s;
    s.pid = 77;
    s.pool_size = 2;
    s.launches = 42;
    flatbuffers::FlatBufferBuilder fbb;
    write_hello_reply(fbb, 9, s, kProtocolVersion, false, false);
    const wire::HelloReply* r = verified(fbb).reply_as_HelloReply();
    REQUIRE(r);
    CHECK(r->version() == kProtocolVersion);
    CHECK(r->server_pid() == 77);
    CHECK(roles(*r).empty());
    CHECK_FALSE(r->pool());
    CHECK_FALSE(r->statistics());
}

TEST_CASE("replies: a HelloReply says the version negotiated") {
    flatbuffers::FlatBufferBuilder fbb;
    write_hello_reply(fbb, 3, ServerStatus{}, 1);
    const wire::HelloReply* r = verified(fbb).reply_as_HelloReply();
    REQUIRE(r);
    CHECK(r->version() == 1);
}

TEST_CASE("replies: Launch and Attach replies carry the container and declare its pidfd") {
    const ContainerInfo info = sample();
    flatbuffers::FlatBufferBuilder launch, attach;
    write_launch_reply(launch, 3, info);
    write_attach_reply(attach, 4, info);
    const wire::LaunchReply* l = verified(launch).reply_as_LaunchReply();
    const wire::AttachReply* a = verified(attach).reply_as_AttachReply();
    REQUIRE(l);
    REQUIRE(a);
    CHECK(verified(launch).seq() == 3);
    CHECK(verified(attach).seq() == 4);
    check_same(read_info(*l->container()), info);
    check_same(read_info(*a->container()), info);
    CHECK(roles(*l) == std::vector<int>{static_cast<int>(wire::FdRole::Pidfd)});
    CHECK(roles(*a) == std::vector<int>{static_cast<int>(wire::FdRole::Pidfd)});
}

TEST_CASE("replies: a tty launch's reply declares its terminal's master after the pidfd") {
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 3, sample(), true);
    const wire::LaunchReply* l = verified(fbb).reply_as_LaunchReply();
    REQUIRE(l);
    CHECK(roles(*l) == std::vector<int>{static_cast<int>(wire::FdRole::Pidfd), static_cast<int>(wire::FdRole::Terminal)});
}

TEST_CASE("replies: a hold launch's reply says held, names its cgroup and declares the leaf after the pidfd") {
    ContainerInfo info = sample();
    info.held = true;
    info.cgroup = "/sys/fs/cgroup/unified/nsfork-1/pod/held";
    flatbuffers::FlatBufferBuilder fbb;
    write_launch_reply(fbb, 3, info, false, true);
    const wire::LaunchReply* l = verified(fbb).reply_as_LaunchReply();
    REQUIRE(l);
    check_same(read_info(*l->container()), info);
    CHECK(roles(*l) == std::vector<int>{static_cast<int>(wire::FdRole::Pidfd), static_cast<int>(wire::FdRole::Cgroup)});
    CHECK(sample().cgroup.empty());
    flatbuffers::FlatBufferBuilder plain;
    write_wait_reply(plain, 4, sample());
    CHECK(verified(plain).reply_as_WaitReply()->container()->cgroup() == nullptr);
}

TEST_CASE("replies: an AdoptReply") {
    flatbuffers::FlatBufferBuilder fbb;
    write_adopt_reply(fbb, 7);
    CHECK(verified(fbb).reply_as_AdoptReply());
    CHECK(verified(fbb).seq() == 7);
}

TEST_CASE("replies: Wait and Destroy replies carry the container, a top-level one without a parent") {
    ContainerInfo info = sample();
    info.parent.clear();
    info.state = State::destroyed;
    flatbuffers::FlatBufferBuilder wait, destroy;
    write_wait_reply(wait, 5, info);
    write_destroy_reply(destroy, 6, info);
    const wire::WaitReply* w = verified(wait).reply_as_WaitReply();
    const wire::DestroyReply* d = verified(destroy).reply_as_DestroyReply();
    REQUIRE(w);
    REQUIRE(d);
    CHECK(w->container()->parent() == nullptr);
    check_same(read_info(*w->container()), info);
    check_same(read_info(*d->container()), info);
}

TEST_CASE("replies: a running container's info has no exit status") {
    ContainerInfo info = sample();
    info.state = State::running;
    info.exit.reset();
    flatbuffers::FlatBufferBuilder fbb;
    write_wait_reply(fbb, 1, info);
    const wire::WaitReply* w = verified(fbb).reply_as_WaitReply();
    REQUIRE(w);
    CHECK(w->container()->exit_status() == nullptr);
    check_same(read_info(*w->container()), info);
}

TEST_CASE("replies: Kill and List replies, an empty list included") {
    flatbuffers::FlatBufferBuilder kill;
    write_kill_reply(kill, 8);
    CHECK(verified(kill).reply_as_KillReply());
    CHECK(verified(kill).seq() == 8);

    const ContainerInfo a = sample();
    ContainerInfo b = sample();
    b.id = "web-2";
    const ContainerInfo* both[] = {&a, &b};
    flatbuffers::FlatBufferBuilder list;
    write_list_reply(list, 10, both);
    const wire::ListReply* l = verified(list).reply_as_ListReply();
    REQUIRE(l);
    REQUIRE(l->containers());
    REQUIRE(l->containers()->size() == 2);
    check_same(read_info(*l->containers()->Get(0)), a);
    check_same(read_info(*l->containers()->Get(1)), b);

    flatbuffers::FlatBufferBuilder none;
    write_list_reply(none, 11, {});
    const wire::ListReply* e = verified(none).reply_as_ListReply();
    REQUIRE(e);
    CHECK((!e->containers() || e->containers()->size() == 0));
}

TEST_CASE("replies: an error reply round-trips its code, message and errno") {
    flatbuffers::FlatBufferBuilder fbb;
    write_error_reply(fbb, 12, Error{Errc::unknown_container, "no container with id 'x'", 2});
    const wire::ReplyMessage& m = verified(fbb);
    CHECK(m.seq() == 12);
    REQUIRE(m.reply_as_Error());
    const Error e = read_error(*m.reply_as_Error());
    CHECK(e.code == Errc::unknown_container);
    CHECK(e.message == "no container with id 'x'");
    CHECK(e.sys_errno == 2);
}
