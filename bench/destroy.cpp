// destroy: a container holding N processes (nsfork-probe daemon N: a setsid double-forked
// daemon and N sleeping children), timed from the destroy request until every process is gone.
// Baselines, all from the tiny helper with the same forker: SIGKILL to a raw namespace's pid 1
// until reaped, cgroup v2 cgroup.kill, the Mesos v1 freezer sequence, and kill(2) per pid.
#include "clock.hpp"
#include "raw_floor.hpp"
#include "scenarios.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

namespace nsfork::bench {

namespace {

// µs of Client::destroy for a container running `forker`, once all its processes exist.
Result<double> nsfork_destroy(Client& c, const std::vector<std::string>& forker) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return sys_error(Errc::internal, "pipe2 failed", errno);
    UniqueFd ready_read(p[0]), ready_write(p[1]);
    LaunchOptions o = launch_options(forker);
    o.stdio = {-1, ready_write.get(), -1};
    auto ct = c.launch(o);
    ready_write.reset();
    if (!ct) return std::move(ct).error();
    auto ready = await_ready(ready_read.get(), "nsfork-probe daemon");
    if (ready) settle_before_destroy();
    const std::int64_t t0 = now_ns();
    auto gone = c.destroy(ct->id());
    const std::int64_t t1 = now_ns();
    if (!ready) return std::move(ready).error();
    if (!gone) return std::move(gone).error();
    return ns_to_us(t1 - t0);
}

} // namespace

Result<void> run_destroy(Context& ctx, Report& r) {
    const std::string S = "destroy";
    const std::string probe = ctx.bin("nsfork-probe");
    if (::access(probe.c_str(), X_OK) < 0)
        return Error{Errc::unavailable, probe + " is missing (it is built with the tests: BUILD_TESTING=ON)"};
    const HelperFacts& facts = ctx.helper.facts();
    if (!facts.freezer_missing.empty()) r.skip(S, "v1 freezer (Mesos)", facts.freezer_missing);
    if (!facts.cgroup2_missing.empty()) {
        r.skip(S, "cgroup.kill", facts.cgroup2_missing);
        r.skip(S, "kill each pid", facts.cgroup2_missing + " (used to find the pids)");
    }

    Chart chart{"destroy", "Destroy time against process count (median)", "processes in the container", "ms",
                true, true, {}};
    const std::vector<std::string> names = {"nsfork destroy", "raw namespace kill", "cgroup.kill (v2)",
                                            "v1 freezer (Mesos)", "kill each pid"};
    std::vector<Series> series(names.size());
    for (std::size_t i = 0; i < names.size(); ++i) series[i].name = names[i];

    for (std::size_t k = 0; k < ctx.sizes.destroy_sizes.size(); ++k) {
        const int n = ctx.sizes.destroy_sizes[k];
        const std::vector<std::string> forker = {probe, "daemon", std::to_string(n)};
        const std::string group = fmt::format("{} processes (+2 of the daemon, +1 shim for nsfork)", n);
        std::vector<Variant> v;
        std::vector<Shown> shown;
        auto add = [&](Shown s, std::function<Result<double>()> run) {
            v.push_back({s.name, std::move(run)});
            shown.push_back(std::move(s));
        };
        add({group, names[0], Role::subject, "request until reply (init reaped)"},
            [&] { return nsfork_destroy(ctx.client, forker); });
        add({group, names[1], Role::baseline, "pidfd SIGKILL pid 1 until reaped"},
            [&] { return helper_us(ctx.helper, HelperOp::raw_namespace_kill, forker); });
        if (facts.cgroup2_missing.empty()) {
            add({group, names[2], Role::baseline, "until populated 0 and rmdir"},
                [&] { return helper_us(ctx.helper, HelperOp::cgroup_kill, forker); });
            add({group, names[4], Role::baseline, "pids from cgroup.procs; until populated 0 and rmdir"},
                [&] { return helper_us(ctx.helper, HelperOp::kill_each, forker); });
        }
        if (facts.freezer_missing.empty())
            add({group, names[3], Role::baseline, "freeze, kill each, thaw, until empty and rmdir"},
                [&] { return helper_us(ctx.helper, HelperOp::freezer, forker); });

        const Alternated runs = alternate(ctx.sizes.destroy_rounds[k], v);
        record(r, S, shown, runs);
        for (std::size_t i = 0; i < shown.size(); ++i) {
            if (runs.samples[i].empty()) continue;
            const auto at = std::find(names.begin(), names.end(), shown[i].name) - names.begin();
            series[static_cast<std::size_t>(at)].points.emplace_back(n, summarize(runs.samples[i]).median / 1e3);
        }
    }
    for (Series& s : series)
        if (!s.points.empty()) chart.series.push_back(std::move(s));
    r.add_chart(std::move(chart));
    r.note(S, "the same forker (nsfork-probe daemon N) in every variant; cgroup variants have no pid "
              "namespace; processes orphaned by the daemon are reaped by the helper (a child subreaper) after "
              "the clock stopped; v1 emptiness is polled every 50 us (v1 has no notification); every variant "
              "waits 20 ms after 'ready' so that cgroup.events' 10 ms notification rate limit is not charged");
    return {};
}

} // namespace nsfork::bench
