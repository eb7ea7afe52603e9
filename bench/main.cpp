// nsfork-bench: measures nsfork against the raw kernel floor and the tools it replaces, in one
// run, variants alternated. Prints a table; --json FILE writes every figure, and SVG charts
// beside it.
#include "clock.hpp"
#include "context.hpp"
#include "helper.hpp"
#include "report.hpp"
#include "scenarios.hpp"
#include "server/server.hpp"
#include "svg.hpp"
#include "targets.hpp"
#include "temp_dir.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <csignal>
#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace nsfork;
using namespace nsfork::bench;

constexpr int kSkipped = 77; // ctest's SKIP_RETURN_CODE

const char* const kUsage = R"(usage: nsfork-bench [--quick] [--json FILE] [--engines LIST] [--engine-runs N] [SCENARIO...]

  --engines LIST    engines scenario: only these (comma-separated: slurm,podman,containerd,docker)
  --engine-runs N   engines scenario: runs per runtime and engine (default 12, --quick 2)

Scenarios (default: all, in this order):
)";

struct Args {
    bool quick = false;
    std::string json;
    std::vector<std::string> scenarios;
    EngineOptions engines;
};

void usage(std::FILE* out) {
    std::fputs(kUsage, out);
    for (const Scenario& s : all_scenarios()) fmt::print(out, "  {:<11} {}\n", s.name, s.what);
}

std::optional<Args> parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--quick") a.quick = true;
        else if (arg == "--json" && i + 1 < argc) a.json = argv[++i];
        else if (arg == "--engines" && i + 1 < argc) {
            std::string list = argv[++i];
            for (std::size_t at = 0; at <= list.size();) {
                const std::size_t comma = std::min(list.find(',', at), list.size());
                if (comma > at) a.engines.only.push_back(list.substr(at, comma - at));
                at = comma + 1;
            }
        } else if (arg == "--engine-runs" && i + 1 < argc) {
            a.engines.runs = std::atoi(argv[++i]);
            if (a.engines.runs < 1) return std::nullopt;
        }
        else if (arg == "--help" || arg == "-h") {
            usage(stdout);
            std::exit(0);
        } else if (arg.rfind("-", 0) == 0) return std::nullopt;
        else {
            bool known = false;
            for (const Scenario& s : all_scenarios()) known |= arg == s.name;
            if (!known) {
                fmt::print(stderr, "nsfork-bench: unknown scenario '{}'\n", arg);
                return std::nullopt;
            }
            a.scenarios.push_back(arg);
        }
    }
    return a;
}

// Where nsfork, nsfork-shim and nsfork-probe were built: beside this binary.
std::string bin_dir() {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return ".";
    const std::string path(exe, static_cast<std::size_t>(n));
    return path.substr(0, path.rfind('/'));
}

std::string first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

std::string load_average() { return first_line("/proc/loadavg"); }

std::vector<std::pair<std::string, std::string>> machine_facts() {
    utsname u{};
    ::uname(&u);
    char date[64] = {};
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    return {{"kernel", u.release},
            {"cpus online", std::to_string(::sysconf(_SC_NPROCESSORS_ONLN))},
            {"memory (MiB)", std::to_string(::sysconf(_SC_PHYS_PAGES) / 1024 * ::sysconf(_SC_PAGESIZE) / 1024)},
            {"transparent huge pages", first_line("/sys/kernel/mm/transparent_hugepage/enabled")},
            {"date", date},
            {"load average at start (1, 5, 15 min, running/total, last pid)", load_average()}};
}

// The SVG path for `chart` beside the JSON file: <dir>/<stem>-<suffix>.svg.
std::string svg_path(const std::string& json, const Chart& chart) {
    std::string stem = json;
    if (stem.size() > 5 && stem.ends_with(".json")) stem.resize(stem.size() - 5);
    return stem + "-" + chart.file_suffix + ".svg";
}

// Raised so that the servers this process starts (which inherit it) can hold one fd per live
// container in the scale scenario; an agent running many containers would do the same.
void raise_fd_limit() {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) < 0) return;
    const rlim_t nr_open = static_cast<rlim_t>(std::atol(first_line("/proc/sys/fs/nr_open").c_str()));
    const rlim_t want = std::max<rlim_t>(r.rlim_max, std::min<rlim_t>(nr_open, 65536)); // root may raise the hard limit
    rlimit raised{want, want};
    if (::setrlimit(RLIMIT_NOFILE, &raised) < 0) {
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
}

} // namespace

int main(int argc, char** argv) {
    // Nothing here may start a thread before start_server_before_threads() and the helper's fork.
    auto args = parse(argc, argv);
    if (!args) {
        usage(stderr);
        return 2;
    }
    if (::geteuid() != 0) {
        const bool ci = std::getenv("CI") && std::string(std::getenv("CI")) == "true";
        fmt::print(stderr, "nsfork-bench: {}: needs root to create pid and mount namespaces and cgroups\n",
                   ci ? "FAILED (CI=true)" : "skipped");
        return ci ? 1 : kSkipped;
    }
    raise_fd_limit();
    auto socket_dir = TempDir::create("embedded");
    if (!socket_dir) return fmt::print(stderr, "nsfork-bench: {}\n", socket_dir.error().message), 1;

    // Two embedded servers: one cold (no warm pool), one with a warm pool, so that each launch
    // path is measured on its own and both in the same run.
    ServerOptions so;
    so.socket_path = socket_dir->path() + "/nsfork.sock";
    so.log_level = "warn";
    so.warm_pool = 0;
    auto client = start_server_before_threads(so);
    if (!client) return fmt::print(stderr, "nsfork-bench: cannot start the server: {}\n", client.error().message), 1;
    ServerOptions warm_so = so;
    warm_so.socket_path = socket_dir->path() + "/nsfork-warm.sock";
    warm_so.warm_pool = 4;
    auto warm_client = start_server_before_threads(warm_so);
    if (!warm_client) return fmt::print(stderr, "nsfork-bench: cannot start the warm server: {}\n", warm_client.error().message), 1;
    // A server that listens on a path outlives its first connection (agents reconnect after a
    // restart): each is told to stop when the benchmark ends.
    auto server_pid = client->hello();
    auto warm_pid = warm_client->hello();
    if (!server_pid || !warm_pid) return fmt::print(stderr, "nsfork-bench: a server does not answer\n"), 1;
    struct StopServer {
        pid_t pid;
        ~StopServer() { ::kill(pid, SIGTERM); }
    } stop_server{*server_pid}, stop_warm{*warm_pid};
    auto helper = Helper::start();
    if (!helper) return fmt::print(stderr, "nsfork-bench: cannot start the helper: {}\n", helper.error().message), 1;

    Context ctx{*client, so.socket_path, *warm_client, warm_so.socket_path, *helper, bin_dir(), args->quick ? Sizes::quick() : Sizes::defaults(),
                args->quick, args->engines};
    Report report;
    report.set_machine(machine_facts());
    fmt::print("nsfork-bench{}: medians, p90, p99 in the unit shown; ratio = nsfork median / baseline median\n",
               ctx.quick ? " --quick (tiny sizes: figures are a smoke test, not a measurement)" : "");
    for (const auto& [k, v] : machine_facts()) fmt::print("  {}: {}\n", k, v);
    std::fflush(stdout);

    for (const Scenario& s : all_scenarios()) {
        const bool named = std::find(args->scenarios.begin(), args->scenarios.end(), s.name) != args->scenarios.end();
        if (args->scenarios.empty() ? s.only_when_named : !named) continue;
        const std::int64_t t0 = now_ns();
        if (auto ok = s.run(ctx, report); !ok) report.error(s.name, ok.error().message);
        report.note(s.name, fmt::format("scenario took {:.1f} s; load average at its end: {}",
                                        static_cast<double>(now_ns() - t0) / 1e9, load_average()));
        report.finish();
        report.print_scenario(stdout, s.name);
        std::fflush(stdout);
    }
    report.set_targets(judge_targets(report));
    report.print_targets(stdout);

    int code = report.has_errors() ? 1 : 0;
    if (!args->json.empty()) {
        if (auto ok = report.write_json(args->json, ctx.quick); !ok) {
            fmt::print(stderr, "nsfork-bench: {}\n", ok.error().message);
            code = 1;
        } else fmt::print("\nwrote {}\n", args->json);
        for (const Chart& c : report.charts()) {
            const std::string path = svg_path(args->json, c);
            if (auto ok = write_svg(c, path); !ok) {
                fmt::print(stderr, "nsfork-bench: {}\n", ok.error().message);
                code = 1;
            } else fmt::print("wrote {}\n", path);
        }
    }
    return code;
}
