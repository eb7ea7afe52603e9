// ipc: the round trip of a request that does no work (Hello), against the same round trip on a
// bare SOCK_SEQPACKET pair with the helper (no flatbuffers, no event loop): the floor.
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
    return {};
}

} // namespace nsfork::bench
