// scale: one `nsfork serve` with many live containers (/bin/sleep infinity): the server's
// resident memory and open fds idle and at full size, launch latency at 0, 10% and 100% of
// the live target, and the time to destroy them all.
#include "clock.hpp"
#include "scenarios.hpp"
#include "serve_process.hpp"

#include <dirent.h>
#include <sys/resource.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

namespace nsfork::bench {

namespace {

constexpr int kFillConnections = 8;

long read_long(const std::string& path) {
    std::ifstream in(path);
    long v = -1;
    in >> v;
    return v;
}

// Entries of a /proc directory (numeric ones only when `numeric`).
long count_entries(const std::string& dir, bool numeric) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return -1;
    long n = 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.' && (!numeric || std::isdigit(static_cast<unsigned char>(e->d_name[0])))) ++n;
    ::closedir(d);
    return n;
}

// VmRSS of `pid` in MiB; -1 when unreadable.
double rss_mib(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/status", pid));
    std::string key;
    while (in >> key) {
        if (key == "VmRSS:") {
            double kib = -1;
            in >> kib;
            return kib / 1024;
        }
        in.ignore(1 << 16, '\n');
    }
    return -1;
}

// How many containers this host can hold beside what runs now, given `procs_each` processes
// and `fds_each` server fds per container, and the limit that decides it.
std::pair<int, std::string> capacity(double procs_each, double fds_each, long server_fds_now) {
    const long procs = count_entries("/proc", true);
    const auto by_pids = static_cast<long>((read_long("/proc/sys/kernel/pid_max") - procs - 2000) / procs_each);
    const auto by_threads = static_cast<long>((read_long("/proc/sys/kernel/threads-max") - procs - 2000) / procs_each);
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile); // the servers inherited ours
    const auto by_fds = static_cast<long>((static_cast<double>(nofile.rlim_cur) - server_fds_now - 64) / fds_each);
    const long cap = std::min({by_pids, by_threads, by_fds});
    const std::string why = cap == by_pids ? "kernel.pid_max" : cap == by_threads ? "kernel.threads-max" : "RLIMIT_NOFILE";
    return {static_cast<int>(std::max(0L, cap)), why};
}

// Launches sleepers until `ids` holds `target`, over several connections at once.
Result<void> fill(const ServeProcess& serve, std::vector<std::string>& ids, int target) {
    std::atomic<int> budget{target - static_cast<int>(ids.size())};
    std::mutex m;
    std::optional<Error> failure;
    std::vector<std::thread> threads;
    for (int t = 0; t < kFillConnections; ++t)
        threads.emplace_back([&] {
            auto c = serve.connect();
            while (c && budget.fetch_sub(1) > 0) {
                auto ct = c->launch(launch_options({"/bin/sleep", "infinity"}));
                std::lock_guard lock(m);
                if (!ct) {
                    if (!failure) failure = ct.error();
                    return;
                }
                ids.push_back(ct->id()); // its pidfd closes here: we do not need 10,000 of them
            }
            std::lock_guard lock(m);
            if (!c && !failure) failure = c.error();
        });
    for (std::thread& t : threads) t.join();
    if (failure) return *failure;
    return {};
}

// Destroys every id over several connections; the ns it took.
Result<std::int64_t> destroy_all(const ServeProcess& serve, std::vector<std::string>& ids) {
    std::atomic<std::size_t> next{0};
    std::mutex m;
    std::optional<Error> failure;
    std::vector<std::thread> threads;
    const std::int64_t t0 = now_ns();
    for (int t = 0; t < kFillConnections; ++t)
        threads.emplace_back([&] {
            auto c = serve.connect();
            for (std::size_t i; c && (i = next.fetch_add(1)) < ids.size();)
                if (auto gone = c->destroy(ids[i]); !gone) {
                    std::lock_guard lock(m);
                    if (!failure) failure = gone.error();
                    return;
                }
        });
    for (std::thread& t : threads) t.join();
    const std::int64_t t1 = now_ns();
    if (failure) return *failure;
    ids.clear();
    return t1 - t0;
}

} // namespace

Result<void> run_scale(Context& ctx, Report& r) {
    const std::string S = "scale";
    int live = ctx.sizes.scale_live;
    // Two servers: `full` is filled, `empty` never holds anything. Launches on both are
    // alternated at every level, so the comparison is made in the same minutes of machine time.
    auto full = ServeProcess::start(ctx.bin("nsfork"));
    if (!full) return std::move(full).error();
    auto empty = ServeProcess::start(ctx.bin("nsfork"));
    if (!empty) return std::move(empty).error();
    auto client = full->connect();
    if (!client) return std::move(client).error();
    auto empty_client = empty->connect();
    if (!empty_client) return std::move(empty_client).error();
    auto server_pid = client->hello();
    if (!server_pid) return std::move(server_pid).error();
    const std::string fd_dir = fmt::format("/proc/{}/fd", *server_pid);
    const std::string footprint = "server footprint (nsfork serve)";

    const long idle_fds = count_entries(fd_dir, false);
    add_figure(r, S, {footprint, "VmRSS idle"}, {rss_mib(*server_pid)}, "MiB");
    add_figure(r, S, {footprint, "open fds idle"}, {static_cast<double>(idle_fds)}, "fds");
    // A first guess (2 fds per container); corrected from what the server really uses below.
    if (auto [cap, why] = capacity(2, 2, idle_fds); cap < live) {
        r.note(S, fmt::format("live target reduced from {} to {}: {} leaves room for no more here", live, cap, why));
        live = cap;
    }

    std::vector<std::string> ids;
    for (int level : {0, live / 10, live}) {
        if (level > live) level = live;
        auto filled = fill(*full, ids, level);
        if (!filled) {
            r.error(S, fmt::format("filling to {} live: {}", level, filled.error().message));
            break;
        }
        const long fds = count_entries(fd_dir, false);
        if (level > 0 && level < live) { // the server's real cost per container, now that it is known
            const double fds_each = static_cast<double>(fds - idle_fds) / level;
            if (auto [cap, why] = capacity(2, std::max(1.0, fds_each), fds); cap < live - level) {
                r.note(S, fmt::format("live target reduced from {} to {}: the server holds {:.1f} fds per container "
                                      "and {} leaves room for no more",
                                      live, level + cap, fds_each, why));
                live = level + cap;
            }
        }
        if (level == live) {
            add_figure(r, S, {footprint, fmt::format("VmRSS at {} live", level)}, {rss_mib(*server_pid)}, "MiB");
            add_figure(r, S, {footprint, fmt::format("open fds at {} live", level)}, {static_cast<double>(fds)}, "fds");
        }
        const std::string group = fmt::format("launch /bin/true until exec'd, {} live", level);
        const std::string subject = fmt::format("server with {} live", level);
        std::vector<Variant> v = {{subject, [&] { return launch_us(*client, launch_options({"/bin/true"})); }},
                                  {"empty server", [&] { return launch_us(*empty_client, launch_options({"/bin/true"})); }}};
        record(r, S, {{group, subject, Role::subject}, {group, "empty server", Role::baseline, "alternated"}},
               alternate(ctx.sizes.scale_samples, v));
    }
    const std::size_t count = ids.size();
    auto took = destroy_all(*full, ids);
    if (!took) return std::move(took).error();
    const std::string destroy_group = fmt::format("destroy all {} live ({} connections)", count, kFillConnections);
    add_figure(r, S, {destroy_group, "total"}, {static_cast<double>(*took) / 1e6}, "ms");
    add_figure(r, S, {destroy_group, "per container"}, {count ? ns_to_us(*took) / static_cast<double>(count) : 0}, "us");
    r.note(S, "fresh `nsfork serve` processes; each live container is nsfork-shim + /bin/sleep infinity; the "
              "launches on the full server alternate with launches on a second, empty one");
    return {};
}

} // namespace nsfork::bench
