// soak: 100,000 launches of /bin/true with churn (8 in flight) against a fresh `nsfork serve`
// (warm pool on, as it ships), about ten minutes here; then what was lost or leaked: launches
// that failed, and the server's fds, children, cgroups and memory against where they started.
// Not part of a default run: name it (`nsfork-bench soak`).
#include "clock.hpp"
#include "testing/process.hpp"
#include "base/procfs.hpp"
#include "scenarios.hpp"
#include "serve_process.hpp"

#include "launcher/cgroup.hpp"

#include <fmt/format.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <latch>
#include <mutex>
#include <thread>

namespace nsfork::bench {

namespace {

// What the server holds: counted before and after.
struct Footprint {
    long fds = 0, children = 0, cgroups = 0, rss_kib = 0;
};

Footprint footprint_of(pid_t server) {
    Footprint f;
    namespace fs = std::filesystem;
    std::error_code ec;
    f.fds = static_cast<long>(testing::fd_count(server));
    f.children = static_cast<long>(testing::children_of(server).size());
    const std::string root = fmt::format("{}/nsfork-{}", procfs::cgroup2_mount(), server);
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
        f.cgroups += it->is_directory();
    std::ifstream status(fmt::format("/proc/{}/status", server));
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) f.rss_kib = std::stol(line.substr(6));
    return f;
}

struct Tally {
    std::atomic<long> done{0}, failed{0};
    std::mutex m;
    std::string first_failure;
};

// Launch, wait, destroy until the budget is spent; failures are counted, not fatal.
void worker(Client& c, std::atomic<long>& budget, Tally& t) {
    while (budget.fetch_sub(1) > 0) {
        Result<void> ok = [&]() -> Result<void> {
            auto ct = c.launch(launch_options({"/bin/true"}));
            if (!ct) return std::move(ct).error();
            auto status = c.wait(ct->id());
            if (!status) return std::move(status).error();
            if (status->code != 0 || status->signal != 0) return Error{Errc::launch_failed, "/bin/true did not exit 0"};
            auto gone = c.destroy(ct->id());
            if (!gone) return std::move(gone).error();
            return {};
        }();
        if (ok) ++t.done;
        else {
            ++t.failed;
            std::lock_guard lock(t.m);
            if (t.first_failure.empty()) t.first_failure = ok.error().message;
        }
    }
}

} // namespace

Result<void> run_soak(Context& ctx, Report& r) {
    const std::string S = "soak";
    auto server = ServeProcess::start(ctx.bin("nsfork"));
    if (!server) return std::move(server).error();
    auto control = server->connect();
    if (!control) return std::move(control).error();
    const int parallel = ctx.sizes.soak_parallel;
    std::vector<Client> clients;
    for (int i = 0; i < parallel; ++i) {
        auto c = server->connect();
        if (!c) return std::move(c).error();
        clients.push_back(std::move(*c));
    }
    auto run_launches = [&](long n, Tally& t) {
        std::atomic<long> budget{n};
        std::vector<std::thread> threads;
        for (Client& c : clients) threads.emplace_back([&] { worker(c, budget, t); });
        for (auto& th : threads) th.join();
    };
    Tally warmup;
    run_launches(200, warmup); // the pool, the status table's first pages, the allocator
    settle_pool(*control); // so that counts compare
    const Footprint before = footprint_of(server->pid());

    Tally t;
    const long total = ctx.sizes.soak_launches;
    const std::int64_t t0 = now_ns();
    std::vector<double> rates;
    for (long done = 0; done < total;) {
        const long chunk = std::min<long>(total - done, std::max<long>(total / 20, 1));
        const std::int64_t c0 = now_ns();
        run_launches(chunk, t);
        rates.push_back(chunk / (static_cast<double>(now_ns() - c0) / 1e9));
        done += chunk;
    }
    const double seconds = static_cast<double>(now_ns() - t0) / 1e9;
    settle_pool(*control); // so that counts compare
    const Footprint after = footprint_of(server->pid());

    add_figure(r, S, {fmt::format("{} launches, {} in flight, in chunks of {}", total, parallel, total / 20),
                      "nsfork launch + wait + destroy", Role::subject, "rate of each chunk"},
               rates, "launches/s");
    r.note(S, fmt::format("{} launches in {:.1f} s: {} succeeded, {} failed{}", total, seconds, t.done.load(),
                          t.failed.load(), t.failed ? " (first: " + t.first_failure + ")" : ""));
    r.note(S, fmt::format("server before -> after: fds {} -> {}, children {} -> {}, cgroups {} -> {}, VmRSS {} -> {} KiB",
                          before.fds, after.fds, before.children, after.children, before.cgroups, after.cgroups,
                          before.rss_kib, after.rss_kib));
    if (t.failed) r.error(S, fmt::format("{} launches lost", t.failed.load()));
    if (after.fds != before.fds || after.children != before.children || after.cgroups != before.cgroups)
        r.error(S, "the server leaked fds, children or cgroups");
    if (after.rss_kib > before.rss_kib * 11 / 10)
        r.error(S, fmt::format("the server's memory grew by more than 10% ({} -> {} KiB)", before.rss_kib, after.rss_kib));
    return {};
}

} // namespace nsfork::bench
