// cli: the whole-process cost a developer sees — `nsfork run` against a running `nsfork serve`
// (and with its own private server) versus `unshare -pf --mount-proc` and bwrap, each spawned
// by the tiny helper and timed from spawn until reaped.
#include "scenarios.hpp"
#include "serve_process.hpp"

namespace nsfork::bench {

Result<void> run_cli(Context& ctx, Report& r) {
    const std::string S = "cli";
    const std::string group = "/bin/true, whole process, spawn until reaped";
    auto serve = ServeProcess::start(ctx.bin("nsfork"));
    if (!serve) return std::move(serve).error();

    std::vector<Variant> variants;
    std::vector<Shown> shown;
    auto add = [&](std::string name, Role role, std::vector<std::string> argv, std::string note = {}) {
        shown.push_back({group, name, role, std::move(note)});
        variants.push_back({name, [&ctx, argv = std::move(argv)] { return helper_us(ctx.helper, HelperOp::spawn_wait, argv); }});
    };
    add("nsfork run --socket (running server)", Role::subject,
        {ctx.bin("nsfork"), "run", "--socket", serve->socket(), "--", "/bin/true"});
    add("nsfork run (private server)", Role::subject, {ctx.bin("nsfork"), "run", "--", "/bin/true"},
        "forks its own server first");
    if (std::string unshare = find_tool("unshare"); !unshare.empty())
        add("unshare -pf --mount-proc", Role::baseline, {unshare, "-pf", "--mount-proc", "/bin/true"});
    else r.skip(S, "unshare", "not installed (util-linux)");
    if (std::string bwrap = find_tool("bwrap"); !bwrap.empty())
        add("bwrap --unshare-pid --proc", Role::baseline,
            {bwrap, "--unshare-pid", "--dev-bind", "/", "/", "--proc", "/proc", "/bin/true"});
    else r.skip(S, "bwrap", "not installed (apt-get install bubblewrap)");

    record(r, S, shown, alternate(ctx.sizes.cli_rounds, variants));
    r.note(S, "each tool spawned with posix_spawn by the same tiny helper process; variants alternated "
              "round by round, one warm-up round discarded");
    return {};
}

} // namespace nsfork::bench
