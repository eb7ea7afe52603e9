// fat-client: launch latency as the client grows. A forked client process touches G GiB and
// runs 8 threads that take turns launching /bin/true, each thread rotating through: via the
// server (started at the top of main, while the bench was small), fork()+exec itself,
// posix_spawn itself. The server's cost should stay flat; fork's grows with the page tables.
#include "clock.hpp"
#include "process.hpp"
#include "scenarios.hpp"

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

namespace nsfork::bench {

namespace {

const char* const kVariants[] = {"nsfork launch", "fork()+exec", "posix_spawn"};
constexpr int kVariantCount = 3;

// One sample of variant `v`, in µs, from a thread of the fat client.
Result<double> sample(int v, Client& c, const Command& true_cmd) {
    if (v == 0) return launch_us(c, launch_options({"/bin/true"}));
    auto ns = v == 1 ? time_fork_exec(true_cmd) : time_posix_spawn(true_cmd);
    if (!ns) return std::move(ns).error();
    return ns_to_us(*ns);
}

// The fat client's body (in the forked child): allocate and touch, start the threads, measure,
// write "S <variant> <us>" and "E <variant> <message>" lines to `out`.
[[noreturn]] void fat_client(const std::string& socket, std::size_t bytes, int threads, int iterations, int out) {
    std::string lines;
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        lines = fmt::format("E 0 cannot map {} bytes: {}\n", bytes, std::strerror(errno));
    } else {
        std::memset(mem, 1, bytes); // touched: every page is resident and mapped
        const Command true_cmd({"/bin/true"});
        // One sample at a time: the threads take turns, so that a figure is one launch from a
        // big multithreaded process, not a queue of eight.
        std::mutex turn;
        std::mutex m;
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                auto c = Client::connect(socket);
                std::string mine;
                for (int i = 0; i < iterations && c; ++i)
                    for (int step = 0; step < kVariantCount; ++step) {
                        const int v = (i + t + step) % kVariantCount; // rotate the order
                        std::unique_lock my_turn(turn);
                        auto us = sample(v, *c, true_cmd);
                        my_turn.unlock();
                        mine += us ? fmt::format("S {} {}\n", v, *us) : fmt::format("E {} {}\n", v, us.error().message);
                    }
                if (!c) mine += "E 0 " + c.error().message + "\n";
                std::lock_guard lock(m);
                lines += mine;
            });
        for (std::thread& t : pool) t.join();
    }
    for (std::size_t at = 0; at < lines.size();) {
        const ssize_t n = ::write(out, lines.data() + at, lines.size() - at);
        if (n <= 0) ::_exit(1);
        at += static_cast<std::size_t>(n);
    }
    ::_exit(0); // no destructors: the inherited Client and Helper belong to the parent
}

struct FatResult {
    std::vector<double> samples[kVariantCount];
    std::vector<std::string> errors;
};

// Forks the fat client for `gib` and collects what it measured.
Result<FatResult> run_one_size(const Context& ctx, double gib) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return sys_error(Errc::internal, "pipe2 failed", errno);
    UniqueFd rd(p[0]), wr(p[1]);
    const auto bytes = static_cast<std::size_t>(gib * (1ULL << 30));
    const pid_t pid = ::fork(); // the bench has one thread here: a plain fork is safe
    if (pid < 0) return sys_error(Errc::internal, "fork (fat client) failed", errno);
    if (pid == 0) fat_client(ctx.socket, bytes, ctx.sizes.fat_threads, ctx.sizes.fat_iterations, wr.get());
    wr.reset();
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(rd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    auto status = wait_pid(pid);
    if (!status) return std::move(status).error();
    if (auto ok = expect_success(*status, "the fat client"); !ok) return std::move(ok).error();
    FatResult out;
    std::istringstream in(text);
    std::string kind;
    int v;
    while (in >> kind >> v) {
        std::string rest;
        std::getline(in, rest);
        if (v < 0 || v >= kVariantCount) continue;
        if (kind == "S") out.samples[v].push_back(std::stod(rest));
        else out.errors.push_back(std::string(kVariants[v]) + ":" + rest);
    }
    return out;
}

} // namespace

Result<void> run_fat_client(Context& ctx, Report& r) {
    const std::string S = "fat-client";
    Chart chart{"fat-client", "Launch of /bin/true from a fat client (median, 8 threads launching)",
                "client memory touched (GiB)", "ms until exec'd", true, true, {}};
    chart.series.resize(kVariantCount);
    for (int v = 0; v < kVariantCount; ++v) chart.series[static_cast<std::size_t>(v)].name = kVariants[v];
    for (double gib : ctx.sizes.fat_gib) {
        auto got = run_one_size(ctx, gib);
        if (!got) return std::move(got).error();
        const std::string group = fmt::format("{:g} GiB touched, {} threads launching", gib, ctx.sizes.fat_threads);
        for (const std::string& e : got->errors) r.error(S, fmt::format("{:g} GiB: {}", gib, e));
        for (int v = 0; v < kVariantCount; ++v) {
            auto& samples = got->samples[v];
            if (samples.empty()) continue;
            chart.series[static_cast<std::size_t>(v)].points.emplace_back(gib, summarize(samples).median / 1e3);
            add_figure(r, S, {group, kVariants[v], v == 0 ? Role::subject : Role::baseline,
                              v == 0 ? "until the reply" : v == 1 ? "until exec seen" : "until it returned"},
                       std::move(samples), "us");
        }
    }
    r.add_chart(std::move(chart));
    r.note(S, "each size is a fresh forked client: mmap + memset (transparent huge pages as the host "
              "configures them for anonymous memory), then 8 threads, each with its own connection, "
              "rotating through the three variants and taking turns (one sample in flight at a time)");
    return {};
}

} // namespace nsfork::bench
