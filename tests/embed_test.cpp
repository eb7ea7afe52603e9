// start_server_before_threads: the embedding entry point an agent calls at the top of main().
#include "harness.hpp"
#include "base/pidfd.hpp"
#include "server/server.hpp"

#include <catch2/catch.hpp>

#include <future>
#include <thread>

using namespace nsfork;
using namespace nsfork::test;

TEST_CASE("embed: a forked private server launches over its socketpair") {
    require_root();
    auto client = start_server_before_threads();
    REQUIRE(client);
    auto server_pid = client->hello();
    REQUIRE(server_pid);
    CHECK(*server_pid != ::getpid());
    auto r = run(*client, {probe(), "ppid"});
    CHECK(r.out == "1\n");
    CHECK(r.status == ExitStatus{0, 0});
}

TEST_CASE("embed: destroying the client kills the containers and reaps the server") {
    require_root();
    std::uint64_t pidns = 0;
    {
        auto client = start_server_before_threads();
        REQUIRE(client);
        Pipe out;
        LaunchOptions o;
        o.argv = {probe(), "daemon", "5"};
        o.stdio = {-1, out.write.get(), -1};
        auto ct = client->launch(o);
        REQUIRE(ct);
        out.write.reset();
        REQUIRE(read_line(out.read.get()) == "ready");
        pidns = ct->pidns_inode();
        CHECK(processes_in_pidns(pidns).size() == 8);
    } // ~Client: connection closed, server shuts down, is reaped (test_main checks no child is left)
    CHECK(processes_in_pidns(pidns).empty());
}

TEST_CASE("embed: refused once the caller has a second thread") {
    std::promise<void> go;
    std::thread t([f = go.get_future()]() mutable { f.wait(); });
    auto client = start_server_before_threads();
    go.set_value();
    t.join();
    REQUIRE_FALSE(client);
    CHECK(client.error().code == Errc::unavailable);
    CHECK(client.error().message.find("2 threads") != std::string::npos);
}
