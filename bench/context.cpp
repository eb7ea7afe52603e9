#include "context.hpp"

#include "clock.hpp"
#include "process.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>

namespace nsfork::bench {

Sizes Sizes::defaults() {
    return Sizes{
        .cli_rounds = 400,
        .launch_rounds = 150,
        .ipc_rounds = 5000,
        .churn_parallel = {1, 2, 8, 32},
        .churn_rounds = 5,
        .churn_launches = 200,
        .destroy_sizes = {1, 100, 1000, 5000},
        .destroy_rounds = {30, 15, 5, 3},
        .fat_gib = {0.1, 1, 4},
        .fat_threads = 8,
        .fat_iterations = 6,
        .scale_live = 10000,
        .scale_samples = 100,
        .soak_launches = 100000,
        .soak_parallel = 8,
    };
}

Sizes Sizes::quick() {
    return Sizes{
        .cli_rounds = 5,
        .launch_rounds = 5,
        .ipc_rounds = 100,
        .churn_parallel = {1, 2, 8, 32},
        .churn_rounds = 1,
        .churn_launches = 32,
        .destroy_sizes = {1, 20},
        .destroy_rounds = {2, 2},
        .fat_gib = {0.01, 0.05},
        .fat_threads = 8,
        .fat_iterations = 1,
        .scale_live = 50,
        .scale_samples = 5,
        .soak_launches = 500,
        .soak_parallel = 8,
    };
}

std::string find_tool(const std::string& name) {
    const char* env = std::getenv("PATH");
    std::istringstream dirs(std::string(env ? env : "") + ":/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        if (dir.empty()) continue;
        const std::string path = dir + "/" + name;
        if (::access(path.c_str(), X_OK) == 0) return path;
    }
    return {};
}

LaunchOptions launch_options(std::vector<std::string> argv) {
    LaunchOptions o;
    o.argv = std::move(argv);
    o.env = {kPathEnv};
    return o;
}

Result<double> launch_us(Client& c, const LaunchOptions& o) {
    const std::int64_t t0 = now_ns();
    auto ct = c.launch(o);
    const std::int64_t t1 = now_ns();
    if (!ct) return std::move(ct).error();
    if (auto st = c.wait(ct->id()); !st) return std::move(st).error();
    if (auto gone = c.destroy(ct->id()); !gone) return std::move(gone).error();
    return ns_to_us(t1 - t0);
}

Result<double> helper_us(Helper& h, HelperOp op, const std::vector<std::string>& argv, int count, int parallel) {
    auto ns = h.run(op, argv, count, parallel);
    if (!ns) return std::move(ns).error();
    return ns_to_us(*ns);
}

void settle_pool(Client& c) {
    for (int i = 0; i < 2000; ++i) {
        auto s = c.status();
        if (!s || (s->pool_ready == s->pool_size && s->pool_warming == 0 && s->namespaces_pending == 0)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

} // namespace nsfork::bench
