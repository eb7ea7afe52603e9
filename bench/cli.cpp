// cli: the whole-process cost a developer sees — `nsfork run` against a running `nsfork serve`
// (and on its own, without a server) versus `unshare -pf --mount-proc` and bwrap, each spawned
// by the tiny helper and timed from spawn until reaped; and the same without root: each tool run
// as uid 65534, in a user namespace of its own.
#include "scenarios.hpp"
#include "serve_process.hpp"

#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

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

} // namespace

Result<void> run_cli(Context& ctx, Report& r) {
    const std::string S = "cli";
    const std::string group = "/bin/true, whole process, spawn until reaped";
    const std::string rootless = "/bin/true as uid 65534 (setpriv), in a user namespace, spawn until reaped";
    auto serve = ServeProcess::start(ctx.bin("nsfork"));
    if (!serve) return std::move(serve).error();

    std::vector<Variant> variants;
    std::vector<Shown> shown;
    auto add = [&](const std::string& in, std::string name, Role role, std::vector<std::string> argv,
                   std::string note = {}) {
        shown.push_back({in, name, role, std::move(note)});
        variants.push_back({name, [&ctx, argv = std::move(argv)] { return helper_us(ctx.helper, HelperOp::spawn_wait, argv); }});
    };
    const std::string unshare = find_tool("unshare"), bwrap = find_tool("bwrap"), setpriv = find_tool("setpriv");

    add(group, "nsfork run --socket (running server)", Role::subject,
        {ctx.bin("nsfork"), "run", "--socket", serve->socket(), "--", "/bin/true"});
    add(group, "nsfork run (no server)", Role::subject, {ctx.bin("nsfork"), "run", "--", "/bin/true"},
        "clones the container itself");
    if (!unshare.empty()) add(group, "unshare -pf --mount-proc", Role::baseline, {unshare, "-pf", "--mount-proc", "/bin/true"});
    else r.skip(S, "unshare", "not installed (util-linux)");
    if (!bwrap.empty())
        add(group, "bwrap --unshare-pid --proc", Role::baseline,
            {bwrap, "--unshare-pid", "--dev-bind", "/", "/", "--proc", "/proc", "/bin/true"});
    else r.skip(S, "bwrap", "not installed (apt-get install bubblewrap)");

    // Rootless: every row pays setpriv's exec; its own row says how much that is.
    if (setpriv.empty()) r.skip(S, "rootless rows", "setpriv not installed (util-linux)");
    else {
        add(rootless, "setpriv alone", Role::baseline, as_user(setpriv, {"/bin/true"}), "the cost every row below includes");
        if (user_can_execute(ctx.bin("nsfork")) && user_can_execute(ctx.bin("nsfork-shim")))
            add(rootless, "nsfork run (rootless)", Role::subject, as_user(setpriv, {ctx.bin("nsfork"), "run", "--", "/bin/true"}),
                "user mapped to root inside");
        else r.skip(S, "nsfork run (rootless)", "uid 65534 cannot execute nsfork or nsfork-shim in " + ctx.bin_dir);
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
    return {};
}

} // namespace nsfork::bench
