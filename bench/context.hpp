// What every scenario is given: the embedded server's client, the helper, where the binaries
// are, and how big to make things.
#pragma once

#include "helper.hpp"
#include "nsfork/client.hpp"

#include <string>
#include <vector>

namespace nsfork::bench {

// Sizes of every scenario: the defaults finish each in under a minute on 2 cores; --quick
// shrinks everything to a smoke test of a few seconds.
struct Sizes {
    int cli_rounds, launch_rounds, ipc_rounds;
    std::vector<int> churn_parallel;
    int churn_rounds, churn_launches; // launches per round at each parallelism
    std::vector<int> destroy_sizes;
    std::vector<int> destroy_rounds;  // per size
    std::vector<double> fat_gib;
    int fat_threads, fat_iterations;  // per thread, each iteration runs every variant once
    int scale_live, scale_samples;
    int soak_launches, soak_parallel; // soak: only when named
    static Sizes defaults();
    static Sizes quick();
};

// The engines scenario's choices (main.cpp's --engines and --engine-runs).
struct EngineOptions {
    std::vector<std::string> only; // empty: every engine
    int runs = 0;                  // runs per runtime and engine; 0: the default (--quick: 2)
};

struct Context {
    Client& client;          // the embedded server's first connection; no warm pool: cold launches
    std::string socket;      // the embedded server also listens here, for more connections
    Client& warm_client;     // a second embedded server, with a warm pool
    std::string warm_socket;
    Helper& helper;
    std::string bin_dir;     // nsfork, nsfork-shim, nsfork-probe
    Sizes sizes;
    bool quick = false;
    EngineOptions engines = {};

    std::string bin(const std::string& name) const { return bin_dir + "/" + name; }
};

// The full path of `name` found in $PATH (or /usr/sbin, /sbin), empty if absent.
std::string find_tool(const std::string& name);

// A launch request for `argv` with the benchmark environment and /dev/null stdio.
LaunchOptions launch_options(std::vector<std::string> argv);

// µs from a Launch request to its reply (the command exec'd); the container is then waited for
// and destroyed, untimed.
Result<double> launch_us(Client& c, const LaunchOptions& o);

// Waits (up to 10 s) until `c`'s server has its warm pool full and nothing warming.
void settle_pool(Client& c);

// µs of one helper operation, for alternate().
Result<double> helper_us(Helper& h, HelperOp op, const std::vector<std::string>& argv, int count = 0,
                         int parallel = 0);

} // namespace nsfork::bench
