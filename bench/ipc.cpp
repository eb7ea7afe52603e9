// ipc: the round trip of a request that does no work (Hello), against the same round trip on a
// bare SOCK_SEQPACKET pair with the helper (no flatbuffers, no event loop): the floor. Then the
// zero-copy paths: a launch whose 1 MiB environment travels as a sealed memfd, against the same
// launch with a small environment; and a container's state read from the status table, against
// asking the server (List).
#include "clock.hpp"
#include "scenarios.hpp"

#include "protocol/framing.hpp"
#include "protocol/requests.hpp"

#include <sched.h>

namespace nsfork::bench {

namespace {

// Pins this thread, the server and the helper to the CPU this thread is on, and restores their
// CPUs when it goes. A round trip of a few microseconds is otherwise decided by where the
// scheduler put each side: across two vCPUs each wake-up of an idle one costs tens of
// microseconds on these VMs, and either pair (client-server, client-helper) may land either way
// from run to run. On one CPU both round trips pay the same kernel switches, and what differs is
// what each side does per message.
class SameCpu {
public:
    explicit SameCpu(std::vector<pid_t> pids) : pids_(std::move(pids)) {
        pids_.insert(pids_.begin(), 0); // this thread
        const int cpu = ::sched_getcpu();
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        for (pid_t pid : pids_) {
            cpu_set_t was;
            CPU_ZERO(&was);
            if (cpu < 0 || ::sched_getaffinity(pid, sizeof was, &was) < 0) was = one;
            saved_.push_back(was);
            if (cpu >= 0) ::sched_setaffinity(pid, sizeof one, &one);
        }
    }
    ~SameCpu() {
        for (std::size_t i = 0; i < pids_.size(); ++i) ::sched_setaffinity(pids_[i], sizeof saved_[i], &saved_[i]);
    }
    SameCpu(const SameCpu&) = delete;
    SameCpu& operator=(const SameCpu&) = delete;

private:
    std::vector<pid_t> pids_;
    std::vector<cpu_set_t> saved_;
};

} // namespace

Result<void> run_ipc(Context& ctx, Report& r) {
    const std::string S = "ipc";
    const std::string group = "request/reply round trip";
    auto server = ctx.client.status();
    if (!server) return std::move(server).error();
    std::optional<SameCpu> pinned(std::in_place, std::vector<pid_t>{server->pid, ctx.helper.pid()});
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

    // What the status table's fd costs a Hello: every Hello carried it before clients said they
    // had the table; the same round trip otherwise.
    const std::string with_table = "Hello round trip, the status table's fd in the reply or not";
    std::vector<Variant> tv = {
        {"Client::hello (no fd: the client has the table)", v[0].run},
        {"Hello carrying the status table",
         [&]() -> Result<double> {
             const std::int64_t t0 = now_ns();
             flatbuffers::FlatBufferBuilder fbb(64);
             write_hello(fbb, 1, true);
             auto sent = send_datagram(ctx.client.native_handle(), {fbb.GetBufferPointer(), fbb.GetSize()}, {});
             auto got = sent ? recv_datagram(ctx.client.native_handle()) : Result<Datagram>(std::move(sent).error());
             if (got) got->fds.clear(); // closed, as the client closes a table it has already
             const std::int64_t t1 = now_ns();
             if (!got) return std::move(got).error();
             return ns_to_us(t1 - t0);
         }},
    };
    record(r, S, {{with_table, "Client::hello (no fd: the client has the table)", Role::subject, ""},
                  {with_table, "Hello carrying the status table", Role::baseline,
                   "a raw Hello asking for the table, as every Hello did before"}},
           alternate(ctx.sizes.ipc_rounds, tv, 50));
    pinned.reset();
    r.note(S, "the Hello and List round trips (not the launches) run with the client thread, the server and the helper "
              "pinned to one CPU: across "
              "vCPUs each wake-up of an idle one costs tens of microseconds here, and where the scheduler puts "
              "each pair varies from run to run (7 us or 77 us for the same Hello)");

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
    // Pinned as the round trips above are: unpinned, List took 8 or 90-114 us from run to run,
    // as the scheduler put the client and the server on one vCPU or on two.
    pinned.emplace(std::vector<pid_t>{server->pid, ctx.helper.pid()});
    record(r, S, {{reads, "status table (Client::peek)", Role::subject, "seqlocked entry in shared memory"},
                  {reads, "List request", Role::baseline, "round trip; the server holds 1 container"}},
           alternate(ctx.sizes.ipc_rounds, sv, 50));
    pinned.reset();
    (void)ctx.client.destroy(ct->id());
    return {};
}

} // namespace nsfork::bench
