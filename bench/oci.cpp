// oci: `nsfork-oci run` as a cluster engine calls it (Slurm does exactly this: create, start, wait
// and delete in one command) against `runc run` and `crun run` of the same bundle — busybox's
// /bin/true with runc spec's config.json — each spawned by the helper and timed from spawn until
// reaped. nsfork-oci's server keeps a warm pool, refilled (untimed) after each of its runs, and
// warm runtimes for its front (oci/warm.hpp); the full runtime run directly is a baseline.
//
// crun refuses this cgroup v1 hybrid host (KERNEL.md). Where it does, it runs in a private mount
// namespace whose /sys/fs/cgroup is the cgroup2 tree, with cgroups disabled: a holder process
// keeps that namespace and each crun run enters it with nsenter, whose own cost has a row.
#include "base/procfs.hpp"
#include "scenarios.hpp"
#include "serve_process.hpp"
#include "temp_dir.hpp"
#include "testing/process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

namespace fs = std::filesystem;

namespace nsfork::bench {

namespace {

// The bundle every runtime runs: busybox as /bin/true, runc spec's config (every namespace,
// mount, masked path, capability set of it) without a terminal or the cgroupfs mount, which
// crun's cgroup-less namespace could not give.
Result<std::string> make_bundle(const std::string& dir, const std::string& runc) {
    const fs::path bundle = fs::path(dir) / "bundle", rootfs = bundle / "rootfs";
    std::error_code ec;
    for (const char* d : {"bin", "proc", "dev", "sys", "tmp"}) fs::create_directories(rootfs / d, ec);
    if (!ec) fs::copy_file("/bin/busybox", rootfs / "bin/busybox", ec);
    if (!ec) fs::create_symlink("busybox", rootfs / "bin/true", ec);
    if (ec) return Error{Errc::unavailable, "cannot build the busybox rootfs (apt-get install busybox-static): " + ec.message()};
    auto spec = testing::run_process({runc, "spec", "--bundle", bundle.string()});
    if (!spec || spec->exit_code != 0)
        return Error{Errc::unavailable, "runc spec failed: " + (spec ? spec->err : spec.error().message)};
    std::ifstream in(bundle / "config.json");
    nlohmann::json config = nlohmann::json::parse(in, nullptr, false);
    if (config.is_discarded()) return Error{Errc::internal, "runc spec wrote no JSON"};
    config["process"]["terminal"] = false;
    config["process"]["args"] = {"/bin/true"};
    config["root"]["path"] = rootfs.string();
    auto& mounts = config["mounts"];
    mounts.erase(std::remove_if(mounts.begin(), mounts.end(),
                                [](const nlohmann::json& m) { return m.value("destination", "") == "/sys/fs/cgroup"; }),
                 mounts.end());
    std::ofstream(bundle / "config.json", std::ios::trunc) << config.dump(1);
    return bundle.string();
}

// A process holding a private mount namespace whose /sys/fs/cgroup is the cgroup2 tree: where
// crun runs on a hybrid host. SIGKILLed and reaped when it goes.
class CgroupTwoNamespace {
public:
    static Result<CgroupTwoNamespace> start(const std::string& unshare) {
        const std::string cgroup2 = procfs::cgroup2_mount();
        if (cgroup2.empty()) return Error{Errc::unavailable, "no cgroup2 mount"};
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error(Errc::internal, "pipe2", errno);
        UniqueFd read(fds[0]), write(fds[1]);
        auto pid = testing::spawn({unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                                   "mount --bind " + cgroup2 + " /sys/fs/cgroup && echo ready && exec sleep 1000000"},
                                  write.get());
        if (!pid) return std::move(pid).error();
        write.reset();
        CgroupTwoNamespace ns(*pid);
        if (testing::read_line(read.get()) != "ready")
            return Error{Errc::unavailable, "cannot bind-mount " + cgroup2 + " on /sys/fs/cgroup in a private mount namespace"};
        return ns;
    }
    CgroupTwoNamespace(CgroupTwoNamespace&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
    ~CgroupTwoNamespace() {
        if (pid_ < 0) return;
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {}
    }
    // `argv` run inside the namespace.
    std::vector<std::string> enter(const std::string& nsenter, std::vector<std::string> argv) const {
        argv.insert(argv.begin(), {nsenter, "--mount=/proc/" + std::to_string(pid_) + "/ns/mnt", "--"});
        return argv;
    }

private:
    explicit CgroupTwoNamespace(pid_t pid) : pid_(pid) {}
    pid_t pid_ = -1;
};

} // namespace

Result<void> run_oci(Context& ctx, Report& r) {
    const std::string S = "oci";
    const std::string group = "busybox /bin/true bundle (runc spec's config), `run`: spawn until reaped";
    const std::string runc = find_tool("runc"), crun = find_tool("crun");
    if (runc.empty()) return Error{Errc::unavailable, "runc is not installed (apt-get install runc): it writes the bundle's config"};
    auto dir = TempDir::create("oci-bench");
    if (!dir) return std::move(dir).error();
    auto bundle = make_bundle(dir->path(), runc);
    if (!bundle) return std::move(bundle).error();
    auto serve = ServeProcess::start(ctx.bin("nsfork"));
    if (!serve) return std::move(serve).error();
    auto pool = serve->connect();
    if (!pool) return std::move(pool).error();

    unsigned next_id = 0;
    // One `run` of a runtime whose command line starts with `runtime`; a fresh id each time.
    auto run = [&, bundle = *bundle](std::vector<std::string> runtime, const std::string& root) {
        return [&, runtime, root, bundle] {
            std::vector<std::string> argv = runtime;
            argv.insert(argv.end(), {"--root", root, "run", "--bundle", bundle, fmt::format("bench-{}", next_id++)});
            return helper_us(ctx.helper, HelperOp::spawn_wait, argv);
        };
    };
    std::vector<Variant> variants;
    std::vector<Shown> shown;
    auto add = [&](std::string name, Role role, std::function<Result<double>()> measure, std::string note = {},
                   std::string in = {}) {
        shown.push_back({in.empty() ? group : in, name, role, std::move(note)});
        variants.push_back({std::move(name), std::move(measure)});
    };

    auto oci_run = run({ctx.bin("nsfork-oci"), "--nsfork-socket", serve->socket()}, dir->path() + "/nsfork-oci");
    add("nsfork-oci run", Role::subject, [&, oci_run] {
        auto us = oci_run();
        settle_pool(*pool); // untimed: every run takes a ready namespace, no refill competes with a baseline
        return us;
    }, "the server's warm pool on (refilled between runs, untimed); the static front and a warm runtime");
    // The same program as it ran before its front: the warm runtimes' gain, in this run.
    auto full_run = run({ctx.bin("../libexec/nsfork/nsfork-oci"), "--nsfork-socket", serve->socket()}, dir->path() + "/nsfork-oci");
    add("full runtime run", Role::baseline, [&, full_run] {
        auto us = full_run();
        settle_pool(*pool);
        return us;
    }, "libexec/nsfork/nsfork-oci run directly: C++ on glibc, its start-up paid");
    add("runc run", Role::baseline, run({runc}, dir->path() + "/runc"));

    // crun: as it is if it runs here, else in a private mount namespace seeing only cgroup2.
    std::optional<CgroupTwoNamespace> cgroup2_ns;
    if (crun.empty()) r.skip(S, "crun run", "not installed (apt-get install crun)");
    else if (auto plain = run({crun}, dir->path() + "/crun")(); plain) add("crun run", Role::baseline, run({crun}, dir->path() + "/crun"));
    else {
        const std::string unshare = find_tool("unshare"), nsenter = find_tool("nsenter");
        auto ns = unshare.empty() || nsenter.empty()
                      ? Result<CgroupTwoNamespace>(Error{Errc::unavailable, "unshare or nsenter missing (util-linux)"})
                      : CgroupTwoNamespace::start(unshare);
        auto crun_in = [&](const CgroupTwoNamespace& n) {
            return run(n.enter(nsenter, {crun, "--cgroup-manager=disabled"}), dir->path() + "/crun");
        };
        if (ns && crun_in(*ns)()) {
            cgroup2_ns.emplace(std::move(*ns));
            add("crun run", Role::baseline, crun_in(*cgroup2_ns),
                "in a private mount namespace with cgroup2 on /sys/fs/cgroup, cgroups disabled, entered by nsenter");
            add("nsenter alone", Role::baseline, [&, nsenter] {
                return helper_us(ctx.helper, HelperOp::spawn_wait, cgroup2_ns->enter(nsenter, {"/bin/true"}));
            }, {}, "included in crun's row: entering its mount namespace, spawn until reaped");
        } else
            r.skip(S, "crun run", "refuses this host, a cgroup v1 hybrid (" + plain.error().message + "), and " +
                                      (ns ? "fails in a private cgroup2-only mount namespace too" : ns.error().message));
    }

    // Whole processes of ~40 ms each: a quarter of the cli scenario's rounds.
    record(r, S, shown, alternate(std::max(3, ctx.sizes.cli_rounds / 4), variants));
    r.note(S, "each runtime spawned with posix_spawn by the same tiny helper and reaped (run = create, start, "
              "wait, delete); variants alternated round by round, one warm-up round discarded");
    return {};
}

} // namespace nsfork::bench
