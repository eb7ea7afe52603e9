// cli: the whole-process cost a developer sees — `nsfork run` against a running `nsfork serve`
// (and on its own, without a server), both carried out by the static front, versus the full
// program doing the same, `unshare -pf --mount-proc` and bwrap, each spawned by the tiny helper
// and timed from spawn until reaped; the same on a terminal (a new pty, the command its foreground
// job, as from an interactive shell); and without root: each tool run as uid 65534, in a user
// namespace of its own.
#include "scenarios.hpp"
#include "serve_process.hpp"
#include "temp_dir.hpp"
#include "testing/process.hpp"

#include <nlohmann/json.hpp>

#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

namespace nsfork::bench {

namespace {

constexpr uid_t kUser = 65534;

// `argv` run as uid and gid 65534 without supplementary groups (setpriv execs it in place).
std::vector<std::string> as_user(const std::string& setpriv, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"});
    return argv;
}

// Whether uid 65534 may execute `path` (a build tree under /root, say, is out of its reach).
bool user_can_execute(const std::string& path) {
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0)
        ::_exit(::setgroups(0, nullptr) == 0 && ::setresgid(kUser, kUser, kUser) == 0 &&
                        ::setresuid(kUser, kUser, kUser) == 0 && ::access(path.c_str(), X_OK) == 0
                    ? 0
                    : 1);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The same commands under a plain `hyperfine -N` (Debian hyperfine), so that anyone can check
// the headline without our tool: its own warm-up and runs, one command after the other (not
// alternated), each sample from its JSON export. Its command line is printed as a note.
void run_hyperfine(Context& ctx, Report& r, const std::string& S, const std::vector<std::pair<Shown, std::vector<std::string>>>& commands) {
    const std::string hyperfine = find_tool("hyperfine");
    if (hyperfine.empty()) {
        r.skip(S, "hyperfine rows", "not installed (apt-get install hyperfine)");
        return;
    }
    auto dir = TempDir::create("hyperfine");
    if (!dir) {
        r.error(S, dir.error().message);
        return;
    }
    const std::string json = dir->path() + "/hyperfine.json";
    const int runs = std::max(10, ctx.sizes.cli_rounds / 2);
    std::vector<std::string> argv = {hyperfine, "-N", "--style", "none", "--warmup", "20", "--runs", std::to_string(runs),
                                     "--export-json", json};
    for (const auto& [shown, command] : commands) {
        std::string line;
        for (const auto& word : command) line += (line.empty() ? "" : " ") + word; // -N splits on blanks
        argv.insert(argv.end(), {"--command-name", shown.name, line});
    }
    std::string shown_line;
    for (const auto& word : argv) shown_line += (shown_line.empty() ? "" : " ") + (word.find(' ') == std::string::npos ? word : "'" + word + "'");
    auto ran = testing::run_process(argv);
    if (!ran || ran->exit_code != 0) {
        r.error(S, "hyperfine failed: " + (ran ? ran->err : ran.error().message));
        return;
    }
    nlohmann::json results;
    try {
        results = nlohmann::json::parse(std::ifstream(json)).at("results");
    } catch (const std::exception& e) {
        r.error(S, std::string("cannot read hyperfine's JSON export: ") + e.what());
        return;
    }
    for (std::size_t i = 0; i < commands.size() && i < results.size(); ++i) {
        std::vector<double> us;
        for (double seconds : results[i].at("times")) us.push_back(seconds * 1e6);
        add_figure(r, S, commands[i].first, std::move(us), "us");
    }
    r.note(S, "hyperfine rows: " + shown_line);
}

} // namespace

Result<void> run_cli(Context& ctx, Report& r) {
    const std::string S = "cli";
    const std::string group = "/bin/true, whole process, spawn until reaped";
    const std::string rootless = "/bin/true as uid 65534 (setpriv), in a user namespace, spawn until reaped";
    const std::string terminal = "/bin/true on a terminal (a new pty, its foreground job), spawn until reaped";
    const std::string hyperfine_group = "the same under hyperfine -N (its runs, one command after the other)";
    auto serve = ServeProcess::start(ctx.bin("nsfork"));
    if (!serve) return std::move(serve).error();

    std::vector<Variant> variants;
    std::vector<Shown> shown;
    auto add = [&](const std::string& in, std::string name, Role role, std::vector<std::string> argv,
                   std::string note = {}) {
        const HelperOp op = in == terminal ? HelperOp::spawn_wait_on_terminal : HelperOp::spawn_wait;
        shown.push_back({in, name, role, std::move(note)});
        variants.push_back({name, [&ctx, op, argv = std::move(argv)] { return helper_us(ctx.helper, op, argv); }});
    };
    const std::string unshare = find_tool("unshare"), bwrap = find_tool("bwrap"), setpriv = find_tool("setpriv");

    // The root rows, also run under hyperfine (below).
    std::vector<std::pair<Shown, std::vector<std::string>>> root_rows;
    auto add_root = [&](std::string name, Role role, std::vector<std::string> argv, std::string note = {}) {
        add(group, name, role, argv, note);
        root_rows.push_back({{hyperfine_group, name, role}, std::move(argv)});
    };
    add_root("nsfork run --socket (running server)", Role::subject,
             {ctx.bin("nsfork"), "run", "--socket", serve->socket(), "--", "/bin/true"});
    add_root("nsfork run (no server)", Role::subject, {ctx.bin("nsfork"), "run", "--", "/bin/true"},
             "the static front clones the container itself");
    // The same through the full program, as every run went before the front (its exec included).
    const std::string full = ctx.bin("../libexec/nsfork/nsfork");
    add(group, "full program run --socket", Role::baseline, {full, "run", "--socket", serve->socket(), "--", "/bin/true"},
        "libexec/nsfork/nsfork, C++ on glibc");
    add(group, "full program run (no server)", Role::baseline, {full, "run", "--", "/bin/true"});
    if (!unshare.empty()) add_root("unshare -pf --mount-proc", Role::baseline, {unshare, "-pf", "--mount-proc", "/bin/true"});
    else r.skip(S, "unshare", "not installed (util-linux)");
    if (!bwrap.empty())
        add_root("bwrap --unshare-pid --proc", Role::baseline,
                 {bwrap, "--unshare-pid", "--dev-bind", "/", "/", "--proc", "/proc", "/bin/true"});
    else r.skip(S, "bwrap", "not installed (apt-get install bubblewrap)");

    // On a terminal the command takes its foreground, with job control: the front's too.
    add(terminal, "nsfork run (no server), on a terminal", Role::subject, {ctx.bin("nsfork"), "run", "--", "/bin/true"},
        "the front, job control included");
    add(terminal, "full program run, on a terminal", Role::baseline, {full, "run", "--", "/bin/true"});
    if (!unshare.empty())
        add(terminal, "unshare -pf --mount-proc, on a terminal", Role::baseline, {unshare, "-pf", "--mount-proc", "/bin/true"});

    // Rootless: every row pays setpriv's exec; its own row says how much that is.
    if (setpriv.empty()) r.skip(S, "rootless rows", "setpriv not installed (util-linux)");
    else {
        add(rootless, "setpriv alone", Role::baseline, as_user(setpriv, {"/bin/true"}), "the cost every row below includes");
        if (user_can_execute(ctx.bin("nsfork")) && user_can_execute(ctx.bin("../libexec/nsfork/nsfork")) &&
            user_can_execute(ctx.bin("nsfork-shim")))
            add(rootless, "nsfork run (rootless)", Role::subject, as_user(setpriv, {ctx.bin("nsfork"), "run", "--", "/bin/true"}),
                "user mapped to root inside");
        else r.skip(S, "nsfork run (rootless)", "uid 65534 cannot execute nsfork, libexec/nsfork/nsfork or nsfork-shim from " + ctx.bin_dir);
        if (!unshare.empty())
            add(rootless, "unshare -rpf --mount-proc", Role::baseline,
                as_user(setpriv, {unshare, "-rpf", "--mount-proc", "/bin/true"}));
        if (!bwrap.empty())
            add(rootless, "bwrap --unshare-user --unshare-pid", Role::baseline,
                as_user(setpriv, {bwrap, "--unshare-user", "--unshare-pid", "--dev-bind", "/", "/", "--proc", "/proc",
                                  "/bin/true"}));
    }

    record(r, S, shown, alternate(ctx.sizes.cli_rounds, variants));
    r.note(S, "each tool spawned with posix_spawn by the same tiny helper process; variants alternated "
              "round by round, one warm-up round discarded");
    run_hyperfine(ctx, r, S, root_rows);
    return {};
}

} // namespace nsfork::bench
