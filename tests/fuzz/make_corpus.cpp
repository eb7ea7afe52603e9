// Writes the fuzzer's seed corpus: a handful of valid and invalid requests and replies, one
// message per file, finished with their file identifier (NSFQ, NSFR) as today's peers send them;
// those named v1-* without one, as a peer of protocol version 1 sends them. Run it after a schema
// change and commit what changed:
//   build-fuzz/make_corpus tests/fuzz/corpus
#include "protocol/nsfork_generated.h"

#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace wire = nsfork::wire;
using Builder = flatbuffers::FlatBufferBuilder;

namespace {

std::string g_dir;

constexpr const char* kRequestIdentifier = "NSFQ"; // protocol/messages.hpp
constexpr const char* kReplyIdentifier = "NSFR";

// Writes the finished message of `fbb` (or its first `keep` bytes) to <dir>/<name>.
void write(const std::string& name, const Builder& fbb, std::size_t keep = SIZE_MAX) {
    const std::string path = g_dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) {
        std::perror(path.c_str());
        std::exit(1);
    }
    const std::size_t n = keep < fbb.GetSize() ? keep : fbb.GetSize();
    std::fwrite(fbb.GetBufferPointer(), 1, n, f);
    std::fclose(f);
}

// A request of `type` over the body `make` builds, finished with `identifier` (nullptr: none).
void request(const std::string& name, std::uint32_t seq, wire::Request type,
             const std::function<flatbuffers::Offset<void>(Builder&)>& make, std::size_t keep = SIZE_MAX,
             const char* identifier = kRequestIdentifier) {
    Builder fbb;
    auto body = make(fbb);
    fbb.Finish(wire::CreateRequestMessage(fbb, seq, type, body), identifier);
    write(name, fbb, keep);
}

struct Launch {
    std::string id;
    std::vector<std::string> argv{"/bin/echo", "hello"};
    std::vector<std::string> env{"PATH=/usr/bin:/bin", "HOME=/"};
    std::string cwd;
    std::vector<std::uint8_t> roles;
    std::string parent;
    bool share = false;
    bool tty = false;
    std::uint64_t signal_mask = 0, ignored_signals = 0;
    std::optional<std::uint32_t> uid, gid;
    std::optional<std::vector<std::uint32_t>> groups;
    bool hold = false;
    std::string cgroup_name;
};

void launch(const std::string& name, const Launch& l, std::size_t keep = SIZE_MAX,
            const char* identifier = kRequestIdentifier) {
    request(name, 2, wire::Request::Launch, [&](Builder& fbb) {
        auto id = l.id.empty() ? 0 : fbb.CreateString(l.id);
        auto argv = fbb.CreateVectorOfStrings(l.argv);
        auto env = fbb.CreateVectorOfStrings(l.env);
        auto cwd = l.cwd.empty() ? 0 : fbb.CreateString(l.cwd);
        auto roles = fbb.CreateVector(reinterpret_cast<const wire::FdRole*>(l.roles.data()), l.roles.size());
        auto parent = l.parent.empty() ? 0 : fbb.CreateString(l.parent);
        flatbuffers::Offset<wire::User> user = 0;
        if (l.uid || l.gid || l.groups) {
            auto groups = l.groups ? fbb.CreateVector(*l.groups) : 0;
            wire::UserBuilder b(fbb);
            if (l.uid) b.add_uid(*l.uid);
            if (l.gid) b.add_gid(*l.gid);
            if (l.groups) b.add_groups(groups);
            user = b.Finish();
        }
        auto cgroup_name = l.cgroup_name.empty() ? 0 : fbb.CreateString(l.cgroup_name);
        return wire::CreateLaunch(fbb, id, argv, env, cwd, roles, parent, l.share, false, 0, l.tty, false,
                                  l.signal_mask, l.ignored_signals, user, 0, 0, l.hold, cgroup_name)
            .Union();
    }, keep, identifier);
}

// A ContainerInfo with an exit status when `exited`.
flatbuffers::Offset<wire::ContainerInfo> info(Builder& fbb, const std::string& id, const std::string& parent,
                                              bool exited) {
    auto i = fbb.CreateString(id);
    auto p = parent.empty() ? 0 : fbb.CreateString(parent);
    wire::ExitStatus status(exited ? 3 : 0, 0);
    return wire::CreateContainerInfo(fbb, i, p, 4242, 4026531836ULL,
                                     exited ? wire::State::Exited : wire::State::Running,
                                     exited ? &status : nullptr, 7);
}

void reply(const std::string& name, wire::Reply type, const std::function<flatbuffers::Offset<void>(Builder&)>& make,
           const char* identifier = kReplyIdentifier) {
    Builder fbb;
    auto body = make(fbb);
    fbb.Finish(wire::CreateReplyMessage(fbb, 5, type, body), identifier);
    write(name, fbb);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_corpus DIR\n");
        return 2;
    }
    g_dir = argv[1];

    // Valid requests.
    request("req-hello", 1, wire::Request::Hello, [](Builder& fbb) { return wire::CreateHello(fbb, 2, 1).Union(); });
    launch("req-launch-minimal", Launch{});
    Launch full;
    full.id = "job-1";
    full.cwd = "/tmp";
    full.roles = {0, 1, 2};
    launch("req-launch-stdio", full);
    Launch nested;
    nested.id = "job-1.child";
    nested.parent = "job-1";
    nested.share = true;
    launch("req-launch-nested-shared", nested);
    Launch join;
    join.roles = {1, 4};
    launch("req-launch-join-pidns", join);
    Launch process;
    process.tty = true;
    process.roles = {7, 7}; // two extra fds
    process.signal_mask = 1ULL << 0 | 1ULL << 11;
    process.ignored_signals = 1ULL << 12;
    process.uid = 1000;
    process.gid = 100;
    process.groups = std::vector<std::uint32_t>{10, 20};
    launch("req-launch-process", process);
    Launch hold;
    hold.argv = {};
    hold.env = {};
    hold.hold = true;
    hold.cgroup_name = "oci/pod-1/ctr-1";
    hold.roles = {3}; // joins the pid namespace of a pidfd's process
    launch("req-launch-hold", hold);
    request("req-adopt", 7, wire::Request::Adopt,
            [](Builder& fbb) { return wire::CreateAdopt(fbb, fbb.CreateString("job-1")).Union(); });
    request("req-kill-all", 4, wire::Request::Kill,
            [](Builder& fbb) { return wire::CreateKill(fbb, fbb.CreateString("job-1"), 10, true).Union(); });
    request("req-wait", 3, wire::Request::Wait,
            [](Builder& fbb) { return wire::CreateWait(fbb, fbb.CreateString("job-1")).Union(); });
    request("req-kill", 4, wire::Request::Kill,
            [](Builder& fbb) { return wire::CreateKill(fbb, fbb.CreateString("job-1"), 9).Union(); });
    request("req-destroy", 5, wire::Request::Destroy,
            [](Builder& fbb) { return wire::CreateDestroy(fbb, fbb.CreateString("job-1")).Union(); });
    request("req-list", 6, wire::Request::List, [](Builder& fbb) { return wire::CreateList(fbb).Union(); });
    request("req-attach", 7, wire::Request::Attach,
            [](Builder& fbb) { return wire::CreateAttach(fbb, fbb.CreateString("job-1")).Union(); });
    request("req-body", 8, wire::Request::Body, [](Builder& fbb) { return wire::CreateBody(fbb, 300000).Union(); });

    // Requests that verify but that validation refuses.
    Launch bad = Launch{};
    bad.argv = {};
    launch("bad-launch-empty-argv", bad);
    bad = Launch{};
    bad.argv = {"/bin/echo", std::string("a\0b", 3)};
    launch("bad-launch-nul-argv", bad);
    bad = Launch{};
    bad.env = {"NOEQUALS", "=x"};
    launch("bad-launch-env", bad);
    bad = Launch{};
    bad.cwd = "relative/dir";
    launch("bad-launch-relative-cwd", bad);
    bad = Launch{};
    bad.id = "../../escape";
    launch("bad-launch-id", bad);
    bad = Launch{};
    bad.roles = {0, 0, 9, 4, 3};
    launch("bad-launch-roles", bad);
    bad = Launch{};
    bad.tty = true;
    bad.roles = {1};
    bad.signal_mask = 1ULL << 8; // SIGKILL
    bad.uid = 0xffffffffu;
    bad.groups = std::vector<std::uint32_t>(300, 0xffffffffu);
    launch("bad-launch-process", bad);
    bad = hold;
    bad.argv = {"/bin/true"};
    bad.tty = true;
    bad.cgroup_name = "a/../../escape";
    launch("bad-launch-hold", bad);
    bad = Launch{};
    bad.cgroup_name = "not-held";
    launch("bad-launch-cgroup-name-without-hold", bad);
    request("bad-kill-signal-0", 4, wire::Request::Kill,
            [](Builder& fbb) { return wire::CreateKill(fbb, fbb.CreateString("x"), 0).Union(); });
    request("bad-unknown-kind", 9, static_cast<wire::Request>(200),
            [](Builder& fbb) { return wire::CreateHello(fbb, 1).Union(); });
    // Does not verify: cut in the middle.
    launch("bad-launch-truncated", full, 40);
    // Hello's versions the server does not speak, and an empty range.
    request("bad-hello-versions", 1, wire::Request::Hello, [](Builder& fbb) { return wire::CreateHello(fbb, 9, 3).Union(); });
    request("bad-hello-range", 1, wire::Request::Hello, [](Builder& fbb) { return wire::CreateHello(fbb, 1, 2).Union(); });
    // Identifiers: another one, and a reply's on a request (and so a request's on a reply).
    request("bad-identifier", 1, wire::Request::Hello, [](Builder& fbb) { return wire::CreateHello(fbb, 2).Union(); },
            SIZE_MAX, "ABCD");
    request("bad-request-with-reply-identifier", 1, wire::Request::Hello,
            [](Builder& fbb) { return wire::CreateHello(fbb, 2).Union(); }, SIZE_MAX, kReplyIdentifier);

    // Protocol version 1's: no identifier, Hello without min_version.
    request("v1-req-hello", 1, wire::Request::Hello, [](Builder& fbb) { return wire::CreateHello(fbb, 1).Union(); },
            SIZE_MAX, nullptr);
    launch("v1-req-launch-stdio", full, SIZE_MAX, nullptr);
    request("v1-req-list", 6, wire::Request::List, [](Builder& fbb) { return wire::CreateList(fbb).Union(); },
            SIZE_MAX, nullptr);

    // Replies.
    reply("rep-hello", wire::Reply::HelloReply, [](Builder& fbb) {
        const wire::FdRole role = wire::FdRole::StatusTable;
        return wire::CreateHelloReply(fbb, 1, 1234, fbb.CreateVector(&role, 1)).Union();
    });
    reply("rep-launch", wire::Reply::LaunchReply, [](Builder& fbb) {
        const wire::FdRole role = wire::FdRole::Pidfd;
        auto i = info(fbb, "job-1", "", false);
        return wire::CreateLaunchReply(fbb, i, fbb.CreateVector(&role, 1)).Union();
    });
    reply("rep-launch-hold", wire::Reply::LaunchReply, [](Builder& fbb) {
        const wire::FdRole roles[] = {wire::FdRole::Pidfd, wire::FdRole::Cgroup};
        auto id = fbb.CreateString("held");
        auto cgroup = fbb.CreateString("/sys/fs/cgroup/unified/nsfork-1/oci/pod-1/ctr-1");
        wire::ContainerInfoBuilder b(fbb);
        b.add_id(id);
        b.add_pid(4242);
        b.add_state(wire::State::Running);
        b.add_held(true);
        b.add_cgroup(cgroup);
        auto i = b.Finish();
        return wire::CreateLaunchReply(fbb, i, fbb.CreateVector(roles, 2)).Union();
    });
    reply("rep-adopt", wire::Reply::AdoptReply, [](Builder& fbb) { return wire::CreateAdoptReply(fbb).Union(); });
    reply("rep-wait", wire::Reply::WaitReply,
          [](Builder& fbb) { return wire::CreateWaitReply(fbb, info(fbb, "job-1", "", true)).Union(); });
    reply("rep-list", wire::Reply::ListReply, [](Builder& fbb) {
        std::vector<flatbuffers::Offset<wire::ContainerInfo>> all{
            info(fbb, "a", "", false), info(fbb, "a.b", "a", true), info(fbb, "c\"quote\n", "", true)};
        return wire::CreateListReply(fbb, fbb.CreateVector(all)).Union();
    });
    reply("rep-error", wire::Reply::Error, [](Builder& fbb) {
        return wire::CreateError(fbb, wire::ErrorCode::ExecFailed, fbb.CreateString("cannot execute 'x'"), 2).Union();
    });
    reply("v1-rep-wait", wire::Reply::WaitReply,
          [](Builder& fbb) { return wire::CreateWaitReply(fbb, info(fbb, "job-1", "", true)).Union(); }, nullptr);
    reply("v1-rep-error", wire::Reply::Error, [](Builder& fbb) {
        return wire::CreateError(fbb, wire::ErrorCode::UnknownContainer, fbb.CreateString("no container")).Union();
    }, nullptr);
    return 0;
}
