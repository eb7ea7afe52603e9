// The asynchronous client (nsfork/async_client.hpp) against a real `nsfork serve`: the three
// kinds of completion token, many requests in flight on one connection, errors as values, and
// the ends of a connection (the server killed, the client destroyed).
#include "nsfork/async_client.hpp"

#include "harness.hpp"
#include "base/procfs.hpp"
#include "launcher/cgroup.hpp"
#include "protocol/messages.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <csignal>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace nsfork;
using namespace nsfork::test;
namespace asio = boost::asio;

namespace {

AsyncClient connect(asio::io_context& io, const ServerProcess& server) {
    return MUST(AsyncClient::connect(io.get_executor(), server.socket()));
}

// Runs `co` on `io` until it and everything it started are done; its exceptions (a failed
// REQUIRE) come out here.
void run_coroutine(asio::io_context& io, asio::awaitable<void> co) {
    asio::co_spawn(io, std::move(co), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    io.run();
}

} // namespace

TEST_CASE("async client: launch, wait and destroy chained in callbacks, none run inside the call that started it") {
    require_root();
    ServerProcess server;
    asio::io_context io;
    AsyncClient client = connect(io, server);
    std::optional<ExitStatus> status;
    std::optional<ContainerInfo> gone;
    bool returned = false;
    client.async_launch(command("cb", {probe(), "exit", "7"}), [&](Result<Container> ct) {
        CHECK(returned);
        REQUIRE(ct);
        CHECK(ct->id() == "cb");
        client.async_wait(ct->id(), [&](Result<ExitStatus> s) {
            REQUIRE(s);
            status = *s;
            client.async_destroy("cb", [&](Result<ContainerInfo> d) {
                REQUIRE(d);
                gone = std::move(*d);
            });
        });
    });
    returned = true;
    CHECK(client.in_flight() == 1);
    io.run(); // returns once nothing is pending: the client waits on its socket only for replies due
    CHECK(status == ExitStatus{7, 0});
    REQUIRE(gone);
    CHECK(gone->id == "cb");
    CHECK(gone->exit == ExitStatus{7, 0});
    CHECK(client.in_flight() == 0);
}

TEST_CASE("async client: futures, with the io_context run in between") {
    require_root();
    ServerProcess server;
    asio::io_context io;
    AsyncClient client = connect(io, server);
    std::future<Result<Container>> launched = client.async_launch(command("fut", {probe(), "exit", "4"}), asio::use_future);
    io.run();
    Container ct = MUST(launched.get());

    auto waited = client.async_wait(ct.id(), asio::use_future);
    auto listed = client.async_list(asio::use_future);
    io.restart();
    io.run();
    CHECK(MUST(waited.get()) == ExitStatus{4, 0});
    const std::vector<ContainerInfo> all = MUST(listed.get());
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "fut");

    auto gone = client.async_destroy("fut", asio::use_future);
    io.restart();
    io.run();
    CHECK(MUST(gone.get()).exit == ExitStatus{4, 0});
}

namespace {

// A container's life in a coroutine: hello, launch, attach, wait, list, destroy.
asio::awaitable<void> lifecycle(AsyncClient& client) {
    const ServerStatus status = MUST(co_await client.async_hello(asio::use_awaitable));
    CHECK(status.pid > 0);
    CHECK(client.protocol_version() == 2);
    REQUIRE(client.status_table() != nullptr);

    // (Options built outside the co_await: GCC 12 cannot put a braced list of strings in one.)
    LaunchOptions options = command("co", {probe(), "exit", "3"});
    Container ct = MUST(co_await client.async_launch(std::move(options), asio::use_awaitable));
    CHECK(ct.pidfd() >= 0);
    Container again = MUST(co_await client.async_attach("co", asio::use_awaitable));
    CHECK(again.pid() == ct.pid());
    CHECK(MUST(co_await client.async_wait("co", asio::use_awaitable)) == ExitStatus{3, 0});
    auto peeked = client.status_table()->read(ct.info().slot);
    REQUIRE(peeked);
    CHECK(peeked->state == State::exited);
    const std::vector<ContainerInfo> all = MUST(co_await client.async_list(asio::use_awaitable));
    REQUIRE(all.size() == 1);
    CHECK(all[0].state == State::exited);
    const ContainerInfo gone = MUST(co_await client.async_destroy("co", asio::use_awaitable));
    CHECK(gone.exit == ExitStatus{3, 0});
}

} // namespace

TEST_CASE("async client: a container's whole life in a C++20 coroutine (use_awaitable)") {
    require_root();
    ServerProcess server;
    asio::io_context io;
    AsyncClient client = connect(io, server);
    run_coroutine(io, lifecycle(client));
}

TEST_CASE("async client: 200 launches in flight on one connection, then their waits, each exit its own") {
    require_root();
    ServerProcess server;
    asio::io_context io;
    AsyncClient client = connect(io, server);
    constexpr int kLaunches = 200;
    std::vector<std::optional<ExitStatus>> statuses(kLaunches);
    std::vector<std::string> errors;
    int destroyed = 0;
    for (int i = 0; i < kLaunches; ++i) {
        const std::string id = "many-" + std::to_string(i);
        client.async_launch(command(id, {probe(), "exit", std::to_string(i)}), [&, i, id](Result<Container> ct) {
            if (!ct) return errors.push_back(id + ": launch: " + ct.error().message);
            client.async_wait(id, [&, i, id](Result<ExitStatus> s) {
                if (!s) return errors.push_back(id + ": wait: " + s.error().message);
                statuses[i] = *s;
                client.async_destroy(id, [&, id](Result<ContainerInfo> d) {
                    if (!d) return errors.push_back(id + ": destroy: " + d.error().message);
                    ++destroyed;
                });
            });
        });
    }
    CHECK(client.in_flight() == kLaunches);
    io.run();
    for (const std::string& e : errors) FAIL_CHECK(e);
    for (int i = 0; i < kLaunches; ++i) CHECK(statuses[i] == ExitStatus{i, 0});
    CHECK(destroyed == kLaunches);
}

TEST_CASE("async client: errors are values with the server's code and message, and the connection goes on") {
    require_root();
    ServerProcess server;
    asio::io_context io;
    AsyncClient client = connect(io, server);
    std::optional<Result<ExitStatus>> unknown;
    std::optional<Result<Container>> empty_argv, too_many_fds;
    bool returned = false;
    client.async_wait("nobody", [&](Result<ExitStatus> r) { unknown.emplace(std::move(r)); });
    client.async_launch(command("empty", {}), [&](Result<Container> r) { empty_argv.emplace(std::move(r)); });
    // Refused before it is sent, and still completed through the executor, not inside the call.
    LaunchOptions fds = command("fds", {probe(), "exit", "0"});
    fds.extra_fds.assign(kMaxExtraFds + 1, 0);
    client.async_launch(fds, [&](Result<Container> r) {
        CHECK(returned);
        too_many_fds.emplace(std::move(r));
    });
    returned = true;
    io.run();
    REQUIRE(unknown);
    REQUIRE_FALSE(*unknown);
    CHECK(unknown->error().code == Errc::unknown_container);
    CHECK_THAT(unknown->error().message, Catch::Contains("nobody"));
    REQUIRE(empty_argv);
    REQUIRE_FALSE(*empty_argv);
    CHECK(empty_argv->error().code == Errc::bad_request);
    REQUIRE(too_many_fds);
    REQUIRE_FALSE(*too_many_fds);
    CHECK(too_many_fds->error().code == Errc::bad_request);

    std::optional<Result<std::vector<ContainerInfo>>> listed;
    client.async_list([&](auto r) { listed.emplace(std::move(r)); });
    io.restart();
    io.run();
    REQUIRE(listed);
    CHECK(*listed);
}

TEST_CASE("async client: a wait in flight answers when its container is killed by a signal") {
    require_root();
    ServerProcess server;
    asio::io_context io;
    AsyncClient client = connect(io, server);
    Pipe out;
    LaunchOptions o = command("victim", {probe(), "sleep"});
    o.stdio = {-1, out.write.get(), -1};
    std::optional<Result<ExitStatus>> status;
    std::optional<Result<void>> killed;
    client.async_launch(o, [&](Result<Container> ct) {
        REQUIRE(ct);
        client.async_wait("victim", [&](Result<ExitStatus> s) { status.emplace(std::move(s)); });
        client.async_kill("victim", SIGKILL, [&](Result<void> k) { killed.emplace(std::move(k)); });
    });
    out.write.reset();
    io.run();
    REQUIRE(killed);
    CHECK(*killed);
    REQUIRE(status);
    REQUIRE(*status);
    CHECK((*status)->shell_code() == 128 + SIGKILL);
    (void)client.async_destroy("victim", asio::use_future);
    io.restart();
    io.run();
}

TEST_CASE("async client: the server killed completes every pending operation, and every later one, disconnected") {
    require_root();
    // A SIGKILLed server leaves its cgroup tree: give it one of ours, removed with everything below.
    std::optional<Cgroup> root;
    std::vector<std::string> args;
    if (!procfs::cgroup2_mount().empty()) {
        std::string own = procfs::cgroup2_path();
        if (own == "/") own.clear();
        root.emplace(MUST(Cgroup::create(procfs::cgroup2_mount() + own, "nsfork-test-async-" + std::to_string(::getpid()))));
        args = {"--cgroup-root", root->path()};
    }
    ServerProcess server(args);
    asio::io_context io;
    AsyncClient client = connect(io, server);
    std::vector<Container> sleepers;
    for (const char* id : {"s1", "s2", "s3"})
        client.async_launch(command(id, {probe(), "sleep"}), [&](Result<Container> ct) {
            sleepers.push_back(MUST(std::move(ct)));
        });
    io.run();
    REQUIRE(sleepers.size() == 3);

    std::vector<Result<ExitStatus>> waits;
    for (const Container& ct : sleepers)
        client.async_wait(ct.id(), [&](Result<ExitStatus> s) { waits.push_back(std::move(s)); });
    CHECK(client.in_flight() == 3);
    REQUIRE(::kill(server.pid(), SIGKILL) == 0);
    CHECK(server.stop() == ExitStatus{0, SIGKILL});
    io.restart();
    io.run();
    REQUIRE(waits.size() == 3);
    for (const auto& w : waits) {
        REQUIRE_FALSE(w);
        CHECK(w.error().code == Errc::disconnected);
        CHECK(w.error().message == "nsfork server closed the connection");
    }
    std::optional<Result<ServerStatus>> later;
    client.async_hello([&](Result<ServerStatus> r) { later.emplace(std::move(r)); });
    io.restart();
    io.run();
    REQUIRE(later);
    REQUIRE_FALSE(*later);
    CHECK(later->error().code == Errc::disconnected);
    // The containers die with their server (parent-death signal on each init).
    for (const Container& ct : sleepers) CHECK(testing::eventually([&] { return !alive(ct.pid()); }));
}

TEST_CASE("async client: destroyed with operations pending, it completes them cancelled and leaves nothing behind") {
    require_root();
    ServerProcess server;
    asio::io_context io;
    std::optional<AsyncClient> client(connect(io, server));
    std::optional<Container> sleeper;
    client->async_launch(command("long", {probe(), "sleep"}),
                         [&](Result<Container> ct) { sleeper.emplace(MUST(std::move(ct))); });
    io.run();
    REQUIRE(sleeper);

    std::vector<Result<ExitStatus>> waits;
    std::optional<Result<std::vector<ContainerInfo>>> listed;
    client->async_wait("long", [&](Result<ExitStatus> s) { waits.push_back(std::move(s)); });
    client->async_list([&](auto r) { listed.emplace(std::move(r)); }); // sent, its answer not read yet
    client.reset();
    io.restart();
    io.run();
    REQUIRE(waits.size() == 1);
    REQUIRE_FALSE(waits[0]);
    CHECK(waits[0].error().code == Errc::disconnected);
    CHECK(waits[0].error().message == "cancelled: the AsyncClient was destroyed");
    REQUIRE(listed);
    CHECK_FALSE(*listed);

    // A handler that never ran (its io_context gone first) is destroyed, not leaked.
    auto token = std::make_shared<int>(0);
    {
        asio::io_context other;
        AsyncClient doomed = connect(other, server);
        doomed.async_wait("long", [token](Result<ExitStatus>) { FAIL("ran after its io_context was gone"); });
        CHECK(token.use_count() == 2);
    }
    CHECK(token.use_count() == 1);

    // The server goes on with the container (not tied to the connection) for the next client.
    Client next = server.connect();
    MUST(next.destroy("long"));
}

TEST_CASE("async client: destroy_on_exit ends complete async_ended whether they came before or after it, and without the option async_ended waits and destroys") {
    require_root();
    ServerProcess server;
    asio::io_context io;
    AsyncClient client = connect(io, server);
    Pipe in;
    LaunchOptions quick = command("quick", {probe(), "exit", "3"});
    quick.destroy_on_exit = true;
    LaunchOptions held = command("held", {"/bin/sh", "-c", "read line; exit 4"});
    held.stdio = {in.read.get(), -1, -1};
    held.destroy_on_exit = true;
    auto first = client.async_launch(quick, asio::use_future);
    auto second = client.async_launch(held, asio::use_future);
    io.run();
    Container q = MUST(first.get()), h = MUST(second.get());
    in.read.reset();
    CHECK(q.end_seq() != 0);
    CHECK(h.end_seq() != 0);
    // The quick one ends and is forgotten before anyone asks (the List's answer follows its end).
    CHECK(testing::eventually([&] {
        auto listed = client.async_list(asio::use_future);
        io.restart();
        io.run();
        auto all = MUST(listed.get());
        return all.size() == 1 && all[0].id == "held";
    }));
    auto q_end = client.async_ended(q, asio::use_future);
    auto h_end = client.async_ended(h, asio::use_future);
    io.restart();
    io.run_for(std::chrono::milliseconds(100)); // the held one has not ended: its end is awaited
    CHECK(h_end.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
    in.write.reset();
    io.restart();
    io.run();
    ContainerInfo q_gone = MUST(q_end.get()), h_gone = MUST(h_end.get());
    CHECK(q_gone.exit == ExitStatus{3, 0});
    CHECK(q_gone.state == State::destroyed);
    CHECK(h_gone.exit == ExitStatus{4, 0});
    CHECK(h_gone.state == State::destroyed);
    // Once per container.
    auto again = client.async_ended(q, asio::use_future);
    io.restart();
    io.run();
    auto twice = again.get();
    REQUIRE_FALSE(twice);
    CHECK(twice.error().code == Errc::bad_request);
    // Without the option: a Wait, then a Destroy.
    auto plain = client.async_launch(command("plain", {probe(), "exit", "5"}), asio::use_future);
    io.restart();
    io.run();
    Container p = MUST(plain.get());
    CHECK(p.end_seq() == 0);
    auto p_end = client.async_ended(p, asio::use_future);
    io.restart();
    io.run();
    CHECK(MUST(p_end.get()).exit == ExitStatus{5, 0});
    auto left = client.async_list(asio::use_future);
    io.restart();
    io.run();
    CHECK(MUST(left.get()).empty());
}
