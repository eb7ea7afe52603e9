// Zero-copy IPC and reconnection: sealed memfd bodies, the status table, re-attaching, and what
// happens when a client or the server dies.
#include "badinput.hpp"
#include "harness.hpp"
#include "launcher/cgroup.hpp"
#include "base/pidfd.hpp"
#include "base/procfs.hpp"
#include "protocol/body.hpp"
#include "protocol/messages.hpp"
#include "protocol/requests.hpp"
#include "protocol/status_table.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>

using namespace nsfork;
using namespace nsfork::test;

namespace {

// `total` bytes of environment in variables of ~4 KiB (one string may not exceed 128 KiB).
std::vector<std::string> big_env(std::size_t total) {
    std::vector<std::string> env = {kPath};
    std::size_t size = 0;
    for (int i = 0; size < total; ++i) {
        std::string var = "NSFORK_BIG_" + std::to_string(i) + "=" + std::string(4000, static_cast<char>('a' + i % 26));
        size += var.size() + 1;
        env.push_back(std::move(var));
    }
    return env;
}

// Raises RLIMIT_STACK (which sets ARG_MAX to a quarter of it) for the test's lifetime: a 16 MiB
// environment needs more than the default 2 MiB of ARG_MAX, for our exec and the container's.
class BigStack {
public:
    BigStack() {
        REQUIRE(::getrlimit(RLIMIT_STACK, &saved_) == 0);
        rlimit big{256ULL << 20, 256ULL << 20};
        if (saved_.rlim_max != RLIM_INFINITY && saved_.rlim_max < big.rlim_max) big.rlim_max = saved_.rlim_max;
        big.rlim_cur = big.rlim_max;
        REQUIRE(::setrlimit(RLIMIT_STACK, &big) == 0);
    }
    ~BigStack() { ::setrlimit(RLIMIT_STACK, &saved_); }

private:
    rlimit saved_{};
};

// Sends a request built by hand, with `body` as the Body memfd, and returns the reply's error
// message ("" for a non-error reply).
std::string send_with_body(Client& client, int body_fd, std::uint64_t declared) {
    const testing::Bytes envelope = testing::body_envelope(77, declared);
    const int fds[] = {body_fd};
    REQUIRE(send_datagram(client.native_handle(), envelope, fds));
    auto got = recv_datagram(client.native_handle());
    REQUIRE(got);
    auto reply = open_reply(std::move(*got), 1 << 20);
    REQUIRE(reply);
    CHECK(reply->message->seq() == 77);
    const wire::Error* e = reply->message->reply_as_Error();
    return e ? str(e->message()) : "";
}

} // namespace

// Linux caps argv + environment of one execve at 3/4 of _STK_LIM, 6 MiB, whatever RLIMIT_STACK
// says (fs/exec.c, bprm_stack_limits): the largest environment a command can receive is just
// under that. The request itself has no such limit (--max-request-bytes, default 64 MiB).
constexpr std::size_t kLargestExecEnv = (6u << 20) - (64u << 10);

TEST_CASE("ipc: 1 MiB and ~6 MiB environments reach the container intact through the library") {
    require_root();
    BigStack stack;
    ServerProcess server;
    Client client = server.connect();
    for (std::size_t size : {std::size_t(1) << 20, kLargestExecEnv}) {
        INFO(size << " bytes of environment");
        const auto env = big_env(size);
        auto r = run(client, {probe(), "env"}, env);
        CHECK(r.status.code == 0);
        CHECK(lines(r.out) == env);
    }
}

TEST_CASE("ipc: a 16 MiB environment crosses to the server intact, the kernel refuses its exec") {
    require_root();
    BigStack stack;
    ServerProcess server;
    Client client = server.connect();
    LaunchOptions o;
    o.argv = {probe(), "env"};
    o.env = big_env(16u << 20);
    auto ct = client.launch(o);
    REQUIRE_FALSE(ct);
    // Refused by execve (E2BIG), not by the transport: the 16 MiB request was read and checked.
    CHECK(ct.error().code == Errc::launch_failed);
    CHECK(ct.error().message == "container setup failed while executing nsfork-shim: Argument list too long");
    CHECK(run(client, {probe(), "exit", "0"}).status.code == 0);
}

TEST_CASE("ipc: 1 MiB and ~6 MiB environments reach the container intact through nsfork run") {
    require_root();
    BigStack stack;
    for (std::size_t size : {std::size_t(1) << 20, kLargestExecEnv - (64u << 10)}) {
        INFO(size << " bytes of environment");
        const auto env = big_env(size);
        std::vector<std::string> argv = {"/usr/bin/env", "-i"};
        argv.insert(argv.end(), env.begin(), env.end());
        argv.insert(argv.end(), {bin("nsfork"), "run", "--", probe(), "env"});
        auto r = run_process(argv);
        CHECK(r.exit_code == 0);
        CHECK(r.err.empty());
        CHECK(lines(r.out) == env);
    }
}

TEST_CASE("ipc: request bodies must be sealed, whole and within the cap") {
    require_root();
    ServerProcess server({"--max-request-bytes", std::to_string(2 << 20)});
    Client client = server.connect();
    testing::LaunchFields fields;
    fields.argv = {probe(), "exit", "0"};
    fields.env = big_env(1 << 20);
    const auto request = testing::launch_request(77, fields);
    constexpr int all = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    const std::string unsealed =
        "message body memfd is not sealed (it needs F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_SEAL)";

    CHECK(send_with_body(client, badinput::memfd_with(request, 0).get(), request.size()) == unsealed);
    CHECK(send_with_body(client, badinput::memfd_with(request, F_SEAL_SHRINK | F_SEAL_GROW).get(), request.size()) == unsealed);
    CHECK(send_with_body(client, badinput::memfd_with(request, all).get(), request.size() + 100) ==
          "message body is truncated: " + std::to_string(request.size() + 100) + " bytes declared, the memfd holds " +
              std::to_string(request.size()));
    fields.env = big_env(3 << 20);
    const auto big = testing::launch_request(77, fields);
    CHECK(send_with_body(client, badinput::memfd_with(big, all).get(), big.size()) ==
          "message body of " + std::to_string(big.size()) + " bytes exceeds the limit of 2097152 bytes");
    Pipe not_memfd;
    CHECK(send_with_body(client, not_memfd.read.get(), 100) == "message body fd is not a sealable memfd");
    // A whole, sealed body within the cap launches.
    CHECK(send_with_body(client, badinput::memfd_with(request, all).get(), request.size()) == "");
    // And the same connection keeps working.
    CHECK(run(client, {probe(), "exit", "4"}).status.code == 4);
}

TEST_CASE("ipc: the status table gives states and exit statuses without a request") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    auto table = client.status_table();
    REQUIRE(table);
    CHECK((*table)->capacity() >= 65536);
    Pipe out, in;
    LaunchOptions o;
    o.id = "watched";
    o.argv = {"sh", "-c", "echo ready; read x; exit 3"};
    o.env = {kPath};
    o.stdio = {in.read.get(), out.write.get(), -1};
    auto ct = client.launch(o);
    REQUIRE(ct);
    out.write.reset();
    in.read.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    auto running = client.peek(ct->info());
    REQUIRE(running);
    CHECK(running->id == "watched");
    CHECK(running->state == State::running);
    CHECK(running->pid == ct->pid());
    CHECK(running->pidns == ct->pidns_inode());
    CHECK_FALSE(running->exit);

    // Wait on the table's event counter, not on the server.
    const std::uint32_t seen = (*table)->events();
    REQUIRE(::write(in.write.get(), "\n", 1) == 1);
    for (int i = 0; i < 100 && client.peek(ct->info())->state != State::exited; ++i)
        (*table)->wait_event((*table)->events(), 100);
    CHECK((*table)->events() != seen);
    auto exited = client.peek(ct->info());
    REQUIRE(exited);
    CHECK(exited->state == State::exited);
    CHECK(exited->exit == ExitStatus{3, 0});
    REQUIRE(client.destroy("watched"));
    CHECK_FALSE(client.peek(ct->info())); // its slot no longer holds it
}

TEST_CASE("ipc: a Hello carries the status table unless the client says it has it, and the client asks for it once") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    auto hello = [&](std::uint32_t seq, bool table) {
        flatbuffers::FlatBufferBuilder fbb;
        write_hello(fbb, seq, table);
        REQUIRE(send_datagram(client.native_handle(), {fbb.GetBufferPointer(), fbb.GetSize()}, {}));
        auto got = recv_datagram(client.native_handle());
        REQUIRE(got);
        const auto* r = flatbuffers::GetRoot<wire::ReplyMessage>(got->bytes.data())->reply_as_HelloReply();
        REQUIRE(r);
        const std::size_t roles = r->fds() ? r->fds()->size() : 0;
        CHECK(roles == got->fds.size()); // what it declares is what it carries
        return got->fds.size();
    };
    CHECK(hello(1, true) == 1);
    CHECK(hello(2, false) == 0);
    CHECK(hello(3, true) == 1);
    // The client: its first Hello maps the table, the next ones take no fd (none is left open).
    REQUIRE(client.status());
    REQUIRE(client.status_table());
    const std::size_t fds = testing::fd_count(::getpid());
    for (int i = 0; i < 10; ++i) REQUIRE(client.status());
    CHECK(testing::fd_count(::getpid()) == fds);
    LaunchOptions o;
    o.argv = {"/bin/true"};
    auto ct = client.launch(o);
    REQUIRE(ct);
    CHECK(client.peek(ct->info())); // still readable through the one mapping
}

TEST_CASE("ipc: a Hello that asks for no status is answered with the version and pid alone, and status() still gets it all") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    LaunchOptions o;
    o.argv = {"/bin/true"};
    auto ct = client.launch(o); // so that the statistics are not all zero
    REQUIRE(ct);
    auto hello = [&](std::uint32_t seq, bool status) {
        flatbuffers::FlatBufferBuilder fbb;
        write_hello(fbb, seq, false, status);
        REQUIRE(send_datagram(client.native_handle(), {fbb.GetBufferPointer(), fbb.GetSize()}, {}));
        auto got = recv_datagram(client.native_handle());
        REQUIRE(got);
        const auto* m = flatbuffers::GetRoot<wire::ReplyMessage>(got->bytes.data());
        CHECK(m->seq() == seq);
        const auto* r = m->reply_as_HelloReply();
        REQUIRE(r);
        CHECK(r->version() == kProtocolVersion);
        CHECK(r->server_pid() == server.pid());
        CHECK_FALSE(r->fds());
        return std::pair{r->pool() != nullptr, r->statistics() != nullptr && r->statistics()->launches() >= 1};
    };
    CHECK(hello(100, false) == std::pair{false, false});
    CHECK(hello(101, true) == std::pair{true, true});
    // The library: hello() asks for none, status() for all, on the same connection.
    auto pid = client.hello();
    REQUIRE(pid);
    CHECK(*pid == server.pid());
    auto status = client.status();
    REQUIRE(status);
    CHECK(status->pid == server.pid());
    CHECK(status->launches >= 1);
    CHECK(status->launch_work_ns > 0);
}

TEST_CASE("ipc: clients cannot write the status table") {
    require_root();
    ServerProcess server;
    Client client = server.connect();
    REQUIRE(client.hello());
    // Receive the table's fd ourselves with a raw Hello.
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateRequestMessage(fbb, 5, wire::Request::Hello, wire::CreateHello(fbb, kProtocolVersion).Union()));
    REQUIRE(send_datagram(client.native_handle(), {fbb.GetBufferPointer(), fbb.GetSize()}, {}));
    auto got = recv_datagram(client.native_handle());
    REQUIRE(got);
    REQUIRE(got->fds.size() == 1);
    const int fd = got->fds[0].get();
    CHECK(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
    CHECK(errno == EPERM);
    CHECK(::fcntl(fd, F_ADD_SEALS, 0) == -1); // F_SEAL_SEAL: no seal can be removed or added
    void* ro = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    REQUIRE(ro != MAP_FAILED);
    CHECK(::mprotect(ro, 4096, PROT_READ | PROT_WRITE) == -1);
    ::munmap(ro, 4096);
    CHECK(::ftruncate(fd, 0) == -1);
}

TEST_CASE("ipc: concurrent readers never see a torn status entry while the writer updates at full rate") {
    auto writer = StatusTableWriter::create(64);
    REQUIRE(writer);
    const std::uint32_t slot = *writer->acquire();
    // The reader runs in another process on its own read-only mapping, as a client would.
    Pipe verdict;
    const pid_t reader = ::fork();
    REQUIRE(reader >= 0);
    if (reader == 0) {
        auto table = StatusTableReader::map(writer->fd());
        if (!table) ::_exit(2);
        long reads = 0, torn = 0;
        std::uint64_t last = 0;
        while (last < 200000) {
            auto s = table->read(slot);
            if (!s) continue;
            // Every field is derived from one counter n: any mix of two updates shows.
            const std::uint64_t n = s->pidns;
            const bool whole = s->pid == static_cast<pid_t>(n % 100000) && s->exit &&
                               s->exit->code == static_cast<int>(n % 256) && s->exit->signal == static_cast<int>(n % 7) &&
                               s->id == "c-" + std::to_string(n);
            torn += !whole;
            ++reads;
            last = n;
        }
        const std::string out = std::to_string(reads) + " " + std::to_string(torn);
        [[maybe_unused]] auto w = ::write(verdict.write.get(), out.data(), out.size());
        ::_exit(0);
    }
    verdict.write.reset();
    ContainerInfo info;
    info.state = State::exited;
    for (std::uint64_t n = 1; n <= 200000; ++n) {
        info.pidns = n;
        info.pid = static_cast<pid_t>(n % 100000);
        info.exit = ExitStatus{static_cast<int>(n % 256), static_cast<int>(n % 7)};
        info.id = "c-" + std::to_string(n);
        writer->publish(slot, info);
    }
    std::istringstream result(read_all(verdict.read.get()));
    long reads = 0, torn = -1;
    result >> reads >> torn;
    int status = 0;
    REQUIRE(::waitpid(reader, &status, 0) == reader);
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(reads > 0);
    CHECK(torn == 0);
}

TEST_CASE("ipc: a change published for later is seen at once, and its sleepers wake with wake_readers") {
    auto writer = StatusTableWriter::create(64);
    REQUIRE(writer);
    const std::uint32_t slot = *writer->acquire();
    // A client process sleeping on the event counter; it says when it woke.
    Pipe ready, woke;
    const pid_t sleeper = ::fork();
    REQUIRE(sleeper >= 0);
    if (sleeper == 0) {
        auto table = StatusTableReader::map(writer->fd());
        if (!table) ::_exit(2);
        const std::uint32_t seen = table->events();
        [[maybe_unused]] auto r = ::write(ready.write.get(), "r", 1);
        table->wait_event(seen, 10000);
        [[maybe_unused]] auto w = ::write(woke.write.get(), table->events() != seen ? "y" : "n", 1);
        ::_exit(0);
    }
    struct Reap {
        pid_t pid;
        ~Reap() {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    } reap{sleeper};
    ready.write.reset();
    woke.write.reset();
    char r = 0;
    REQUIRE(::read(ready.read.get(), &r, 1) == 1);
    // Until it sleeps in the futex (else it would see the change without being woken).
    auto sleeping = [&] {
        std::ifstream call("/proc/" + std::to_string(sleeper) + "/syscall");
        long nr = -1;
        call >> nr;
        return nr == SYS_futex;
    };
    for (int i = 0; i < 500 && !sleeping(); ++i) ::usleep(1000);
    REQUIRE(sleeping());

    auto table = StatusTableReader::map(writer->fd());
    REQUIRE(table);
    const std::uint32_t before = table->events();
    ContainerInfo info;
    info.id = "later";
    info.state = State::running;
    writer->publish(slot, info, StatusTableWriter::Wake::later);
    CHECK(table->events() != before); // counted, and the entry readable, at once
    REQUIRE(table->read(slot));
    CHECK(table->read(slot)->id == "later");
    pollfd p{woke.read.get(), POLLIN, 0};
    CHECK(::poll(&p, 1, 100) == 0); // ... but the sleeper not woken yet
    writer->wake_readers();
    CHECK(::poll(&p, 1, 5000) == 1);
    CHECK(read_all(woke.read.get()) == "y");
}

TEST_CASE("ipc: a new client re-attaches to containers after the first client was SIGKILLed") {
    require_root();
    ServerProcess server;
    Pipe ready;
    Pipe out; // the survivor's stdout: "ready" once its handler is in place
    const pid_t agent = ::fork();
    REQUIRE(agent >= 0);
    if (agent == 0) {
        auto c = Client::connect(server.socket());
        if (!c) ::_exit(2);
        LaunchOptions o;
        o.id = "survivor";
        o.argv = {probe(), "trap", std::to_string(SIGUSR1)};
        o.stdio = {-1, out.write.get(), -1};
        if (!c->launch(o)) ::_exit(3);
        o.stdio = {-1, -1, -1};
        o.id = "tied";
        o.argv = {probe(), "sleep"};
        o.tie_to_connection = true;
        if (!c->launch(o)) ::_exit(4);
        [[maybe_unused]] auto n = ::write(ready.write.get(), "x", 1);
        ::pause();
    }
    ready.write.reset();
    char c;
    REQUIRE(::read(ready.read.get(), &c, 1) == 1);
    ::kill(agent, SIGKILL);
    ::waitpid(agent, nullptr, 0);

    Client client = server.connect();
    // The tied one goes with its connection; the other lives on.
    std::vector<ContainerInfo> listed;
    for (int i = 0; i < 1000; ++i) {
        listed = *client.list();
        if (listed.size() == 1) break;
        (*client.status_table())->wait_event((*client.status_table())->events(), 10);
    }
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].id == "survivor");
    CHECK(listed[0].state == State::running);
    auto ct = client.attach("survivor");
    REQUIRE(ct);
    CHECK(pid_of_pidfd(ct->pidfd()) == listed[0].pid);
    // The launch answers once the command is exec'd, before it handles the signal.
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    REQUIRE(signal_pidfd(ct->pidfd(), SIGUSR1));
    CHECK(client.wait("survivor")->code == 100 + SIGUSR1);
    REQUIRE(client.destroy("survivor"));
    CHECK(client.attach("survivor").error().code == Errc::unknown_container);
}

TEST_CASE("ipc: a SIGKILLed server leaves no container process, and its clients get errors") {
    require_root();
    // A cgroup root of the test's own: a server starting meanwhile (another test's) would remove
    // the dead server's tree beside its own, killing what this test waits to see its shim kill.
    const std::string ours = procfs::cgroup2_path();
    auto cgroup_root = Cgroup::create(procfs::cgroup2_mount() + (ours == "/" ? "" : ours),
                                      "nsfork-test-ipc-" + std::to_string(::getpid()));
    REQUIRE(cgroup_root);
    std::optional<ServerProcess> server(std::in_place, std::vector<std::string>{"--cgroup-root", cgroup_root->path()});
    Client client = server->connect();
    auto launch = [&](std::string id, std::string parent, bool share) {
        Pipe out;
        LaunchOptions o;
        o.id = std::move(id);
        o.argv = {probe(), "daemon", "3"};
        o.parent = std::move(parent);
        o.share_pid_namespace = share;
        o.stdio = {-1, out.write.get(), -1};
        auto ct = client.launch(o);
        REQUIRE(ct);
        out.write.reset();
        REQUIRE(read_line(out.read.get()) == "ready");
        return std::move(*ct);
    };
    Container own = launch("own", "", false);
    Container nested = launch("nested", "own", false);
    Container shared = launch("shared", "", true); // in the server's namespace: only its cgroup ends it
    const std::string shared_leaf = cgroup_of(shared.pid());
    const std::vector<pid_t> shared_pids = cgroup_procs(shared_leaf);
    REQUIRE(shared_pids.size() == 6);
    auto pending = client.send_wait("own");
    REQUIRE(pending);

    const pid_t server_pid = server->pid();
    ::kill(server_pid, SIGKILL);
    server->stop(); // reaps it

    // Every process of every container dies: pid 1 of a namespace by its parent-death signal,
    // the shared one's shim by killing its own cgroup.
    pollfd p{shared.pidfd(), POLLIN, 0};
    CHECK(::poll(&p, 1, 10000) == 1);
    for (const Container* c : {&own, &nested}) {
        pollfd q{c->pidfd(), POLLIN, 0};
        CHECK(::poll(&q, 1, 10000) == 1);
        CHECK(processes_in_pidns(c->pidns_inode()).empty());
    }
    auto leaf = Cgroup::adopt(shared_leaf);
    REQUIRE(leaf);
    auto events = leaf->open_events();
    REQUIRE(events);
    while (*leaf->populated()) {
        pollfd e{events->get(), POLLPRI, 0};
        REQUIRE(::poll(&e, 1, 10000) == 1);
        char buf[128];
        REQUIRE(::pread(events->get(), buf, sizeof buf, 0) > 0);
    }
    for (pid_t pid : shared_pids) CHECK_FALSE(alive(pid));

    auto answer = client.receive_wait(*pending);
    REQUIRE_FALSE(answer);
    CHECK(answer.error().code == Errc::disconnected);
    CHECK(answer.error().message == "nsfork server closed the connection");
    auto later = client.list();
    REQUIRE_FALSE(later);
    CHECK(later.error().code == Errc::disconnected);

    // The dead server could not remove its cgroups: the test does.
    const std::string root = shared_leaf.substr(0, shared_leaf.rfind('/'));
    std::vector<std::string> dirs;
    for (auto& e : std::filesystem::recursive_directory_iterator(root))
        if (e.is_directory()) dirs.push_back(e.path());
    std::sort(dirs.rbegin(), dirs.rend());
    for (const auto& d : dirs) CHECK(::rmdir(d.c_str()) == 0);
    CHECK(::rmdir(root.c_str()) == 0);
}

TEST_CASE("ipc: a client assigned another connection reads that server's status table") {
    require_root();
    ServerProcess one, two;
    Client a = one.connect();
    LaunchOptions sleeper;
    sleeper.argv = {probe(), "sleep", "100"};
    sleeper.env = {kPath};
    auto ct = a.launch(sleeper);
    REQUIRE(ct);
    Client x = two.connect();
    REQUIRE(x.hello()); // maps the second server's table
    x = one.connect();  // talks to the first server from now on
    auto seen = x.peek(ct->info());
    REQUIRE(seen);
    CHECK(seen->state == State::running);
    CHECK(seen->pid == ct->pid());
    REQUIRE(a.destroy(ct->id()));
}
