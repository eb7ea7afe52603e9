// launch: time from the client's Launch request to the reply in hand (the server replies once
// the command was exec'd, pidfd included), cold — no pre-made namespace. Against the raw floor
// and posix_spawn (until exec'd), and against whole tools (until exit observed).
#include "clock.hpp"
#include "testing/process.hpp"
#include "runc_bundle.hpp"
#include "scenarios.hpp"

#include <fmt/format.h>

#include <fstream>
#include <tuple>

namespace nsfork::bench {

namespace {

const std::string kTrue = "/bin/true";

// The µs `work` took, or its error.
template <class Work>
Result<double> timed(Work&& work) {
    const std::int64_t t0 = now_ns();
    Result<void> ok = work();
    const std::int64_t t1 = now_ns();
    if (!ok) return std::move(ok).error();
    return ns_to_us(t1 - t0);
}

// Waits for and forgets a container, outside any timing.
Result<void> finish(Client& c, const Container& ct) {
    auto status = c.wait(ct.id());
    if (!status) return std::move(status).error();
    auto gone = c.destroy(ct.id());
    if (!gone) return std::move(gone).error();
    if (status->code != 0 || status->signal != 0) return Error{Errc::launch_failed, "/bin/true failed in a container"};
    return {};
}

} // namespace

Result<void> run_launch(Context& ctx, Report& r) {
    const std::string S = "launch";
    const std::string until_exec = "/bin/true, request until exec'd";
    const std::string long_lived = "long-lived command (/bin/sleep), request until exec'd";
    const std::string until_exit = "/bin/true, request until exit observed";
    Client& c = ctx.client;

    std::vector<Variant> v;
    std::vector<Shown> shown;
    auto add = [&](Shown s, std::function<Result<double>()> run) {
        v.push_back({s.name, std::move(run)});
        shown.push_back(std::move(s));
    };

    Client& warm = ctx.warm_client;
    const auto cold_before = c.status();
    const auto warm_before = warm.status();
    add({until_exec, "nsfork warm launch", Role::subject,
         "warm pool: a ready namespace's shim gets the plan and spawns the command"}, [&] {
        std::optional<Container> ct;
        auto us = timed([&]() -> Result<void> {
            auto got = warm.launch(launch_options({kTrue}));
            if (!got) return std::move(got).error();
            ct.emplace(std::move(*got));
            return {};
        });
        if (ct)
            if (auto ok = finish(warm, *ct); !ok) return Result<double>(std::move(ok).error());
        // Untimed: the pool refilled before anything else runs, so that a warm launch is one
        // from a ready pool, and no refill (a clone and an exec) runs while a baseline is timed.
        settle_pool(warm);
        return us;
    });
    add({until_exec, "nsfork launch", Role::subject, "cold: clone3, mount /proc, exec shim, shim spawns command"}, [&] {
        std::optional<Container> ct;
        auto us = timed([&]() -> Result<void> {
            auto got = c.launch(launch_options({kTrue}));
            if (!got) return std::move(got).error();
            ct.emplace(std::move(*got));
            return {};
        });
        if (ct)
            if (auto ok = finish(c, *ct); !ok) return Result<double>(std::move(ok).error());
        return us;
    });
    add({until_exec, "raw floor", Role::baseline, "clone3 NEWPID|NEWNS, /proc, exec as pid 1, no init"},
        [&] { return helper_us(ctx.helper, HelperOp::raw_launch, {kTrue}); });
    add({until_exec, "posix_spawn", Role::baseline, "no namespaces, tiny parent"},
        [&] { return helper_us(ctx.helper, HelperOp::posix_spawn, {kTrue}); });

    add({long_lived, "nsfork launch", Role::subject, "destroyed after, untimed"}, [&] {
        std::optional<Container> ct;
        auto us = timed([&]() -> Result<void> {
            auto got = c.launch(launch_options({"/bin/sleep", "infinity"}));
            if (!got) return std::move(got).error();
            ct.emplace(std::move(*got));
            return {};
        });
        if (ct)
            if (auto gone = c.destroy(ct->id()); !gone) return Result<double>(std::move(gone).error());
        return us;
    });

    add({until_exit, "nsfork launch + wait", Role::subject, "exit status from the server"}, [&] {
        std::string id;
        auto us = timed([&]() -> Result<void> {
            auto ct = c.launch(launch_options({kTrue}));
            if (!ct) return std::move(ct).error();
            id = ct->id();
            auto status = c.wait(id);
            if (!status) return std::move(status).error();
            return {};
        });
        if (!id.empty())
            if (auto gone = c.destroy(id); !gone) return Result<double>(std::move(gone).error());
        return us;
    });
    add({until_exit, "raw floor + wait", Role::baseline},
        [&] { return helper_us(ctx.helper, HelperOp::raw_launch_wait, {kTrue}); });
    if (std::string unshare = find_tool("unshare"); !unshare.empty())
        add({until_exit, "unshare -pf --mount-proc", Role::baseline, "whole process"}, [&, unshare] {
            return helper_us(ctx.helper, HelperOp::spawn_wait, {unshare, "-pf", "--mount-proc", kTrue});
        });
    else r.skip(S, "unshare", "not installed (util-linux)");
    if (std::string bwrap = find_tool("bwrap"); !bwrap.empty())
        add({until_exit, "bwrap --unshare-pid --proc", Role::baseline, "whole process"}, [&, bwrap] {
            return helper_us(ctx.helper, HelperOp::spawn_wait,
                             {bwrap, "--unshare-pid", "--dev-bind", "/", "/", "--proc", "/proc", kTrue});
        });
    else r.skip(S, "bwrap", "not installed (apt-get install bubblewrap)");

    std::optional<RuncBundle> runc_bundle;
    if (std::string runc = find_tool("runc"); runc.empty()) {
        r.skip(S, "runc run", "not installed (apt-get install runc)");
    } else if (auto b = RuncBundle::create(runc, kTrue); !b) {
        r.skip(S, "runc run", "cannot build the bundle: " + b.error().message);
    } else {
        runc_bundle.emplace(std::move(*b));
        add({until_exit, "runc run (minimal bundle)", Role::baseline, "whole process; pid+mount ns, /proc only"},
            [&] { return helper_us(ctx.helper, HelperOp::spawn_wait, runc_bundle->run_argv()); });
    }
    if (find_tool("crun").empty())
        r.skip(S, "crun run", "not installed");
    else if (ctx.helper.facts().cgroup2_dir.rfind("/sys/fs/cgroup/unified", 0) == 0)
        r.skip(S, "crun run", "crun refuses on this cgroup v1 hybrid host (\"cgroups in hybrid mode not "
                              "supported, drop all controllers from cgroupv2\", KERNEL.md)");
    else
        r.skip(S, "crun run", "not wired up yet (only hybrid hosts were available to test it on)");

    record(r, S, shown, alternate(ctx.sizes.launch_rounds, v));
    if (auto st = warm.status()) {
        // What the ready pool costs while idle: its processes (one shim each, pid 1 of a ready
        // namespace) and their resident memory.
        long processes = 0, rss_kib = 0;
        for (pid_t pid : testing::children_of(st->pid)) {
            ++processes;
            std::ifstream status(fmt::format("/proc/{}/status", pid));
            for (std::string line; std::getline(status, line);)
                if (line.rfind("VmRSS:", 0) == 0) rss_kib += std::stol(line.substr(6));
        }
        r.note(S, fmt::format("idle cost of the warm pool: {} process(es) (one nsfork-shim per ready namespace), "
                              "{} KiB resident in all",
                              processes, rss_kib));
        r.note(S, fmt::format("warm pool after the run: {} of {} ready, {} served, {} discarded (a launch finding "
                              "no ready entry takes the cold path, and is timed as it is)",
                              st->pool_ready, st->pool_size, st->pool_served, st->pool_discarded));
    }
    // The servers' own accounting (Hello): handler time per answered launch, clone3 excluded.
    for (auto [name, client, before] : {std::tuple{"cold server", &c, cold_before}, std::tuple{"warm server", &warm, warm_before}}) {
        auto after = client->status();
        if (!after || !before || after->launches <= before->launches) continue;
        const double us = static_cast<double>(after->launch_work_ns - before->launch_work_ns) / 1000.0 /
                          static_cast<double>(after->launches - before->launches);
        add_figure(r, S, {"server time per launch excluding clone and exec", name, Role::subject,
                          fmt::format("mean over {} launches, from the server's own accounting",
                                      after->launches - before->launches)},
                   {us}, "us");
        // The same, by phase (LaunchPhase): where that time goes.
        for (std::size_t i = 0; i < after->launch_phases.ns.size(); ++i) {
            const auto phase = static_cast<LaunchPhase>(i);
            const double phase_us = static_cast<double>(after->launch_phases[phase] - before->launch_phases[phase]) /
                                    1000.0 / static_cast<double>(after->launches - before->launches);
            add_figure(r, S, {fmt::format("{}, by phase", name), std::string(to_string(phase)), Role::subject, ""},
                       {phase_us}, "us");
        }
    }
    r.note(S, "nsfork launches go through the embedded server (start_server_before_threads); baselines run "
              "in a tiny forked helper; all variants alternated round by round, one warm-up round discarded");
    r.note(S, "unshare, bwrap and runc cannot report 'exec'd', so they are compared with launch + wait");
    return {};
}

} // namespace nsfork::bench
