// churn: launches per second of /bin/true end to end — launch, exit observed, forgotten — with
// 1, 2, 8 and 32 in flight, against the raw floor at the same parallelism (clone3 + exec +
// waitid, N in flight, in the tiny helper). The blocking client needs a thread and a connection
// per launch in flight; the asynchronous one keeps them all on one connection and one thread.
// Each cycle is one request (Launch{destroy_on_exit}, its end answered unasked); one variant
// keeps the three of before (Launch, Wait, Destroy) to show what that saves.
#include "clock.hpp"
#include "scenarios.hpp"

#include "nsfork/async_client.hpp"

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>

#include <atomic>
#include <latch>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace nsfork::bench {

namespace {

// How a cycle asks: one request (destroy_on_exit), or a Launch, a Wait and a Destroy.
enum class Requests { one, three };

LaunchOptions churn_options(Requests requests) {
    LaunchOptions o = launch_options({"/bin/true"});
    o.destroy_on_exit = requests == Requests::one;
    return o;
}

// One client's share of a round: launch, end observed, forgotten, until the shared budget is spent.
Result<void> churn_worker(Client& c, std::atomic<int>& budget, Requests requests) {
    const LaunchOptions o = churn_options(requests);
    while (budget.fetch_sub(1) > 0) {
        auto ct = c.launch(o);
        if (!ct) return std::move(ct).error();
        if (requests == Requests::one && !ct->end_seq()) return Error{Errc::protocol, "the server ignored destroy_on_exit"};
        auto gone = c.ended(*ct); // with three requests: a Wait and a Destroy
        if (!gone) return std::move(gone).error();
    }
    return {};
}

// `launches` end-to-end launches through the server with `parallel` outstanding: one thread
// and one connection per outstanding launch (one Client is one blocking connection). Returns
// launches per second, timed from the moment every thread is connected and released.
Result<double> nsfork_round(const std::string& socket, int parallel, int launches, Requests requests = Requests::one) {
    std::vector<Client> clients;
    for (int i = 0; i < parallel; ++i) {
        auto c = Client::connect(socket);
        if (!c) return std::move(c).error();
        clients.push_back(std::move(*c));
    }
    std::atomic<int> budget{launches};
    std::latch go(1);
    std::mutex m;
    std::optional<Error> failure;
    std::vector<std::thread> threads;
    for (Client& c : clients)
        threads.emplace_back([&] {
            go.wait();
            if (auto ok = churn_worker(c, budget, requests); !ok) {
                std::lock_guard lock(m);
                if (!failure) failure = ok.error();
            }
        });
    const std::int64_t t0 = now_ns();
    go.count_down();
    for (std::thread& t : threads) t.join();
    const std::int64_t t1 = now_ns();
    if (failure) return *failure;
    return launches / (static_cast<double>(t1 - t0) / 1e9);
}

// One launch after another on an AsyncClient — launch, its end, then the next — until the
// shared budget is spent; as many of these chains run at once as launches are to be in flight.
class AsyncChain {
public:
    AsyncChain(AsyncClient& c, int& budget, std::optional<Error>& failure)
        : c_(c), budget_(budget), failure_(failure) {}

    void next() {
        if (failure_ || budget_ == 0) return;
        --budget_;
        c_.async_launch(churn_options(Requests::one), [this](Result<Container> ct) {
            if (!ct) return fail(std::move(ct).error());
            c_.async_ended(*ct, [this](Result<ContainerInfo> gone) {
                if (!gone) return fail(std::move(gone).error());
                next();
            });
        });
    }

private:
    void fail(Error e) {
        if (!failure_) failure_ = std::move(e);
    }

    AsyncClient& c_;
    int& budget_;
    std::optional<Error>& failure_;
};

// `launches` end-to-end launches through the server with `parallel` outstanding, all on one
// AsyncClient connection driven by this thread. Returns launches per second, timed from the
// first request to the last answer.
Result<double> nsfork_async_round(const std::string& socket, int parallel, int launches) {
    boost::asio::io_context io;
    auto c = AsyncClient::connect(io.get_executor(), socket);
    if (!c) return std::move(c).error();
    int budget = launches;
    std::optional<Error> failure;
    std::vector<AsyncChain> chains(static_cast<std::size_t>(parallel), AsyncChain(*c, budget, failure));
    const std::int64_t t0 = now_ns();
    for (AsyncChain& chain : chains) chain.next();
    io.run();
    const std::int64_t t1 = now_ns();
    if (failure) return *failure;
    return launches / (static_cast<double>(t1 - t0) / 1e9);
}

} // namespace

Result<void> run_churn(Context& ctx, Report& r) {
    const std::string S = "churn";
    const int launches = ctx.sizes.churn_launches;
    for (int parallel : ctx.sizes.churn_parallel) {
        const std::string group = fmt::format("{} in flight (rate per round of {} launches)", parallel, launches);
        std::vector<Variant> v = {
            {"nsfork", [&, parallel] { return nsfork_round(ctx.socket, parallel, launches); }},
            {"nsfork warm pool", [&, parallel] { return nsfork_round(ctx.warm_socket, parallel, launches); }},
            {"nsfork warm pool, 3 requests",
             [&, parallel] { return nsfork_round(ctx.warm_socket, parallel, launches, Requests::three); }},
            {"nsfork async", [&, parallel] { return nsfork_async_round(ctx.socket, parallel, launches); }},
            {"nsfork async warm pool", [&, parallel] { return nsfork_async_round(ctx.warm_socket, parallel, launches); }},
            {"raw floor", [&, parallel]() -> Result<double> {
                 auto ns = ctx.helper.run(HelperOp::raw_churn, {"/bin/true"}, launches, parallel);
                 if (!ns) return std::move(ns).error();
                 return launches / (static_cast<double>(*ns) / 1e9);
             }},
        };
        record(r, S,
               {{group, "nsfork", Role::subject, "launch until forgotten: one request (destroy_on_exit)"},
                {group, "nsfork warm pool", Role::subject, "the same, against a server with a warm pool of 4"},
                {group, "nsfork warm pool, 3 requests", Role::subject, "the same as Launch, Wait and Destroy"},
                {group, "nsfork async", Role::subject, "the same on one AsyncClient connection, one thread"},
                {group, "nsfork async warm pool", Role::subject, "AsyncClient, against the warm pool server"},
                {group, "raw floor", Role::baseline, "clone3 + exec + waitid"}},
               alternate(ctx.sizes.churn_rounds, v), "launches/s");
    }
    r.note(S, "ratio > 1 means nsfork is faster here; each sample is one round's rate; nsfork (the blocking "
              "Client) uses one thread + connection per launch in flight, nsfork async (AsyncClient) one "
              "connection and one thread for all of them");
    return {};
}

} // namespace nsfork::bench
