// ipc: the round trip of a request that does no work (Hello), against the same round trip on a
// bare SOCK_SEQPACKET pair with the helper (no flatbuffers, no event loop): the floor. Then the
// zero-copy paths: a launch whose 1 MiB environment travels as a sealed memfd, against the same
// launch with a small environment; and a container's state read from the status table, against
// asking the server (List).
#include "clock.hpp"
#include "scenarios.hpp"

namespace nsfork::bench {

Result<void> run_ipc(Context& ctx, Report& r) {
    const std::string S = "ipc";
    const std::string group = "request/reply round trip";
    std::vector<Variant> v = {
        {"nsfork Client::hello",
         [&]() -> Result<double> {
             const std::int64_t t0 = now_ns();
             auto pid = ctx.client.hello();
             const std::int64_t t1 = now_ns();
             if (!pid) return std::move(pid).error();
             return ns_to_us(t1 - t0);
         }},
        {"bare SEQPACKET ping",
         [&]() -> Result<double> {
             auto ns = ctx.helper.ping();
             if (!ns) return std::move(ns).error();
             return ns_to_us(*ns);
         }},
    };
    record(r, S, {{group, "nsfork Client::hello", Role::subject, "flatbuffers both ways, Asio server"},
                  {group, "bare SEQPACKET ping", Role::baseline, "socketpair to the helper, fixed structs"}},
           alternate(ctx.sizes.ipc_rounds, v, 50));

    // Launch round trip with a 1 MiB environment (a memfd body: the request is > 64 KiB).
    std::vector<std::string> big_env = {"PATH=/usr/bin:/bin"};
    for (std::size_t size = 0; size < (1u << 20); size += 4096)
        big_env.push_back("NSFORK_BENCH_" + std::to_string(big_env.size()) + "=" + std::string(4080, 'x'));
    auto timed_launch = [&](const std::vector<std::string>& env) {
        LaunchOptions o = launch_options({"/bin/true"});
        o.env = env;
        return launch_us(ctx.client, o);
    };
    const std::string launches = "launch round trip (cold server), until exec'd";
    std::vector<Variant> lv = {
        {"1 MiB environment (memfd body)", [&] { return timed_launch(big_env); }},
        {"small environment (one datagram)", [&] { return timed_launch(launch_options({"/bin/true"}).env); }},
    };
    record(r, S, {{launches, "1 MiB environment (memfd body)", Role::subject, "sealed memfd, mapped read-only by the server"},
                  {launches, "small environment (one datagram)", Role::baseline, ""}},
           alternate(std::max(ctx.sizes.launch_rounds / 3, 3), lv));

    // A state read: the status table (no syscall) against a List request.
    LaunchOptions sleeper = launch_options({"/bin/sleep", "1000"});
    auto ct = ctx.client.launch(sleeper);
    if (!ct) return std::move(ct).error();
    if (!ctx.client.peek(ct->info())) return Error{Errc::internal, "the status table does not show a live container"};
    const std::string reads = "one container's state";
    std::vector<Variant> sv = {
        {"status table (Client::peek)",
         [&]() -> Result<double> {
             const std::int64_t t0 = now_ns();
             auto s = ctx.client.peek(ct->info());
             const std::int64_t t1 = now_ns();
             if (!s || s->state != State::running) return Error{Errc::internal, "peek lost the container"};
             return ns_to_us(t1 - t0);
         }},
        {"List request",
         [&]() -> Result<double> {
             const std::int64_t t0 = now_ns();
             auto l = ctx.client.list();
             const std::int64_t t1 = now_ns();
             if (!l) return std::move(l).error();
             return ns_to_us(t1 - t0);
         }},
    };
    record(r, S, {{reads, "status table (Client::peek)", Role::subject, "seqlocked entry in shared memory"},
                  {reads, "List request", Role::baseline, "round trip; the server holds 1 container"}},
           alternate(ctx.sizes.ipc_rounds, sv, 50));
    (void)ctx.client.destroy(ct->id());
    return {};
}

} // namespace nsfork::bench
