// nsfork-compat-client SOCKET: a client of the previous schema (tests/compat/previous.fbs), as
// a program built before the current protocol would speak: messages finished without a file
// identifier, Hello{version 1} without min_version, replies verified without looking at an
// identifier. compat_test.cpp runs it against today's `nsfork serve`; it says each step on
// stdout and exits 0 when the server served them all — Hello, Launch with stdio, Wait, List, an
// Error, Destroy — and it read every reply, though today's carry "NSFR" in bytes 4..7 (where
// this schema's reader skips padding).
//
// It includes nothing generated from the current schema and links no library that does
// (framing.cpp is compiled in, nsfork_base linked): the previous schema's nsfork::wire is the
// only one in this program.
#include "previous_generated.h"

#include "base/unix_socket.hpp"
#include "protocol/framing.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace nsfork;

namespace {

[[noreturn]] void fail(const std::string& why) {
    std::fprintf(stderr, "nsfork-compat-client: %s\n", why.c_str());
    std::exit(1);
}

void require(bool ok, const std::string& what) {
    if (!ok) fail(what);
}

std::string text(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

class Connection {
public:
    explicit Connection(const std::string& path) {
        auto addr = unix_address(path);
        require(bool(addr), "bad socket path " + path);
        sock_ = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        require(bool(sock_), "socket failed");
        require(::connect(sock_.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0,
                "cannot connect to " + path + ": " + std::strerror(errno));
    }

    // Sends RequestMessage{seq, type, body} as the previous schema's clients did: Finish without
    // an identifier. Returns the seq.
    std::uint32_t send(flatbuffers::FlatBufferBuilder& fbb, wire::Request type, flatbuffers::Offset<void> body,
                       std::vector<int> fds = {}) {
        const std::uint32_t seq = next_seq_++;
        fbb.Finish(wire::CreateRequestMessage(fbb, seq, type, body));
        require(std::memcmp(fbb.GetBufferPointer() + 4, "NSFQ", 4) != 0, "the previous schema has no identifier");
        auto sent = send_datagram(sock_.get(), {fbb.GetBufferPointer(), fbb.GetSize()}, fds);
        require(bool(sent), "send failed");
        return seq;
    }

    // The next reply, which must be on `seq` and verify with the previous schema's Verifier.
    const wire::ReplyMessage& receive(std::uint32_t seq) {
        pollfd p{sock_.get(), POLLIN, 0};
        require(::poll(&p, 1, 10000) == 1, "no reply within 10 s");
        auto got = recv_datagram(sock_.get());
        require(bool(got), "receive failed");
        last_ = std::move(*got);
        flatbuffers::Verifier v(last_.bytes.data(), last_.bytes.size());
        require(v.VerifyBuffer<wire::ReplyMessage>(nullptr), "a reply does not verify with the previous schema");
        // Today's server identifies its replies; this client never asks, it only must not mind.
        require(last_.bytes.size() >= 8 && std::memcmp(last_.bytes.data() + 4, "NSFR", 4) == 0,
                "the reply carries no NSFR identifier: not today's server?");
        const auto* m = flatbuffers::GetRoot<wire::ReplyMessage>(last_.bytes.data());
        require(m->seq() == seq, "a reply on seq " + std::to_string(m->seq()) + ", expected " + std::to_string(seq));
        if (const wire::Error* e = m->reply_as_Error(); e && expect_error_ == false)
            fail("the server refused: " + text(e->message()));
        return *m;
    }

    std::vector<UniqueFd>& fds() { return last_.fds; }
    void expect_error(bool e) { expect_error_ = e; }

private:
    UniqueFd sock_;
    std::uint32_t next_seq_ = 1;
    Datagram last_;
    bool expect_error_ = false;
};

struct Pipe {
    UniqueFd read, write;
    Pipe() {
        int p[2];
        require(::pipe2(p, O_CLOEXEC) == 0, "pipe2 failed");
        read = UniqueFd(p[0]);
        write = UniqueFd(p[1]);
    }
};

std::string read_all(int fd) {
    std::string out;
    char buf[256];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        require(n > 0, "read failed");
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

const char* kId = "compat-1";

void hello(Connection& c) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto seq = c.send(fbb, wire::Request::Hello, wire::CreateHello(fbb, 1).Union());
    const wire::HelloReply* r = c.receive(seq).reply_as_HelloReply();
    require(r, "Hello: not a HelloReply");
    require(r->version() == 1, "Hello: the server answered version " + std::to_string(r->version()) + ", not 1");
    require(r->server_pid() > 0, "Hello: no server pid");
    require(r->fds() && r->fds()->size() == 1 && r->fds()->Get(0) == wire::FdRole::StatusTable &&
                c.fds().size() == 1,
            "Hello: the status table does not come with it");
    std::printf("hello: version 1, server pid %d, status table fd\n", r->server_pid());
}

void launch(Connection& c) {
    Pipe in, out;
    flatbuffers::FlatBufferBuilder fbb;
    auto argv = fbb.CreateVectorOfStrings(std::vector<std::string>{"/bin/sh", "-c", "read line && echo \"got $line\""});
    auto env = fbb.CreateVectorOfStrings(std::vector<std::string>{"PATH=/usr/bin:/bin"});
    const std::vector<wire::FdRole> roles{wire::FdRole::Stdin, wire::FdRole::Stdout, wire::FdRole::Stderr};
    auto body = wire::CreateLaunch(fbb, fbb.CreateString(kId), argv, env, 0, fbb.CreateVector(roles));
    const auto seq = c.send(fbb, wire::Request::Launch, body.Union(), {in.read.get(), out.write.get(), out.write.get()});
    in.read.reset();
    out.write.reset();
    const wire::LaunchReply* r = c.receive(seq).reply_as_LaunchReply();
    require(r, "Launch: not a LaunchReply");
    require(text(r->container()->id()) == kId, "Launch: another id");
    require(r->fds() && r->fds()->size() == 1 && r->fds()->Get(0) == wire::FdRole::Pidfd && c.fds().size() == 1,
            "Launch: no pidfd");
    require(::write(in.write.get(), "compat\n", 7) == 7, "write to the container's stdin failed");
    in.write.reset();
    const std::string said = read_all(out.read.get());
    require(said == "got compat\n", "Launch: the container said '" + said + "'");
    std::printf("launch: %s, pid %d, stdio through pipes\n", kId, r->container()->pid());
}

void wait(Connection& c) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto seq = c.send(fbb, wire::Request::Wait, wire::CreateWait(fbb, fbb.CreateString(kId)).Union());
    const wire::WaitReply* r = c.receive(seq).reply_as_WaitReply();
    require(r, "Wait: not a WaitReply");
    const wire::ContainerInfo& info = *r->container();
    require(info.state() == wire::State::Exited, "Wait: not exited");
    require(info.exit_status() && info.exit_status()->code() == 0 && info.exit_status()->signal() == 0,
            "Wait: not exit status 0");
    std::printf("wait: exited 0\n");
}

void list(Connection& c) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto seq = c.send(fbb, wire::Request::List, wire::CreateList(fbb).Union());
    const wire::ListReply* r = c.receive(seq).reply_as_ListReply();
    require(r, "List: not a ListReply");
    bool found = false;
    for (const wire::ContainerInfo* info : *r->containers()) found = found || text(info->id()) == kId;
    require(found, "List: the container is not listed");
    std::printf("list: %u container(s), %s among them\n", r->containers()->size(), kId);
}

void unknown(Connection& c) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto seq = c.send(fbb, wire::Request::Wait, wire::CreateWait(fbb, fbb.CreateString("compat-none")).Union());
    c.expect_error(true);
    const wire::Error* e = c.receive(seq).reply_as_Error();
    c.expect_error(false);
    require(e && e->code() == wire::ErrorCode::UnknownContainer, "Wait of an unknown id: not an UnknownContainer error");
    std::printf("error: %s\n", text(e->message()).c_str());
}

void destroy(Connection& c) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto seq = c.send(fbb, wire::Request::Destroy, wire::CreateDestroy(fbb, fbb.CreateString(kId)).Union());
    const wire::DestroyReply* r = c.receive(seq).reply_as_DestroyReply();
    require(r && text(r->container()->id()) == kId, "Destroy: not a DestroyReply for the container");
    std::printf("destroy: %s\n", kId);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) fail("usage: nsfork-compat-client SOCKET");
    Connection c(argv[1]);
    hello(c);
    launch(c);
    wait(c);
    list(c);
    unknown(c);
    {
        // Hello is optional: a connection that never says it speaks version 1.
        Connection quiet(argv[1]);
        list(quiet);
    }
    destroy(c);
    return 0;
}
