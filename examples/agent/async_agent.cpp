// The same agent on the asynchronous client (Boost.Asio, C++20 coroutines): one connection,
// one thread, several containers in flight at once — each launched, waited for and destroyed by
// a coroutine of its own, container i running `sh -c 'exit i'`.
//
//   async_agent SOCKET [N]    exit status 0 when every container ended as expected, 1 otherwise
#include <nsfork/async_client.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace asio = boost::asio;

namespace {

bool fail(const char* step, const nsfork::Error& error) {
    std::fprintf(stderr, "async_agent: %s failed: %s\n", step, error.message.c_str());
    return false;
}

// [readme:async]
// One container's life: launch, wait, destroy. Any number of these share the connection.
asio::awaitable<bool> run_container(nsfork::AsyncClient& client, int code) {
    nsfork::LaunchOptions options;
    options.argv = {"sh", "-c", "exit " + std::to_string(code)};
    options.env = {"PATH=/usr/bin:/bin"};
    options.stdio = {0, 1, 2};
    auto container = co_await client.async_launch(options, asio::use_awaitable);
    if (!container) co_return fail("launch", container.error());

    auto status = co_await client.async_wait(container->id(), asio::use_awaitable);
    if (!status) co_return fail("wait", status.error());
    std::printf("%s exited with %d\n", container->id().c_str(), status->shell_code());

    auto gone = co_await client.async_destroy(container->id(), asio::use_awaitable);
    if (!gone) co_return fail("destroy", gone.error());
    co_return status->code == code && status->signal == 0;
}
// [/readme]

} // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: async_agent SOCKET [N]\n");
        return 2;
    }
    const int n = argc == 3 ? std::atoi(argv[2]) : 4;
    // [readme:async-main]
    asio::io_context io;
    auto client = nsfork::AsyncClient::connect(io.get_executor(), argv[1]);
    if (!client) {
        fail("connect", client.error());
        return 1;
    }

    int succeeded = 0;
    for (int i = 0; i < n; ++i)
        asio::co_spawn(io, run_container(*client, i), [&](std::exception_ptr e, bool ok) {
            if (!e && ok) ++succeeded;
        });
    io.run();                                         // returns once every container is done
    // [/readme]
    std::printf("%d of %d containers ended as expected\n", succeeded, n);
    return succeeded == n ? 0 : 1;
}
