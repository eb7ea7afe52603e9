// nsfork-oci against runc, side by side: the same bundle through both runtimes must give the same
// observable results — exit codes and signals, what the process sees, `state` through the
// lifecycle, kill, delete, exec, pause — and the same refusals of bad bundles, after which
// nsfork-oci has left nothing behind.
//
// One designed difference (DESIGN.md, "Two ways a container's process is born"): under
// nsfork-oci the container's pid 1 is nsfork-shim, holding the namespace, and the process is
// pid 2; under runc the process is pid 1. Cases that look at pids account for it and say so.
#include "tests/oci/bundle_support.hpp"

#include "base/procfs.hpp"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace nsfork::test::oci;
using nsfork::test::TempDir;

namespace {

// The outcomes of one bundle through both runtimes.
struct Both {
    Outcome oci, runc;
};

Both run_both(Suite& s, const Bundle& b) { return {s.nsfork_oci().run(b), s.runc().run(b)}; }

// Both runs ended alike and printed the same (after `normalize`).
template <class Normalize>
void same(const Both& r, Normalize normalize) {
    INFO("nsfork-oci stderr: " << r.oci.err);
    INFO("runc stderr: " << r.runc.err);
    CHECK(r.oci.code == r.runc.code);
    CHECK(normalize(r.oci.out) == normalize(r.runc.out));
}
void same(const Both& r) {
    same(r, [](const std::string& s) { return s; });
}

// A line of /proc/self/mountinfo as both runtimes must agree on it: mount point, per-mount
// options, filesystem type and source (ids and the root within the filesystem depend on the
// host).
std::string mount_entry(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> f;
    for (std::string w; in >> w;) f.push_back(w);
    const auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 6 || dash == f.end() || f.end() - dash < 4) return "unparsed: " + line;
    // Mount point, the mount's options, type, source and the superblock's options.
    return f[4] + " " + f[5] + " " + dash[1] + " " + dash[2] + " " + dash[3];
}

std::vector<std::string> mount_table(const std::string& mountinfo) {
    std::vector<std::string> out;
    for (const std::string& line : nsfork::testing::lines(mountinfo)) out.push_back(mount_entry(line));
    std::sort(out.begin(), out.end());
    return out;
}

// A running container of a shell `script` that printed `ready` (having set up what comes before).
Created started_until(Runtime& rt, const Capture& out, const std::string& script, const std::string& ready) {
    Bundle b({});
    b.shell(script);
    const Created c = rt.started(b, out);
    wait_for_output(out, ready);
    return c;
}

// Fails the test naming any host mount or cgroup that still names `id` or `bundle`.
void nothing_left(const std::string& id, const std::string& bundle) {
    std::vector<std::string> left;
    std::ifstream mountinfo("/proc/self/mountinfo");
    for (std::string line; std::getline(mountinfo, line);)
        if (line.find(bundle) != std::string::npos || line.find(id) != std::string::npos) left.push_back("mount " + line);
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator("/sys/fs/cgroup", ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_directory() && it->path().filename().string().find(id) != std::string::npos)
            left.push_back("cgroup " + it->path().string());
    CHECK(left == std::vector<std::string>{});
}

} // namespace

TEST_CASE("oci parity: run ends with the process's exit code") {
    Suite s;
    for (int code : {0, 3, 42}) {
        Bundle b({"sh", "-c", "echo ran; exit " + std::to_string(code)});
        const Both r = run_both(s, b);
        CHECK(r.runc.code == code);
        same(r);
        CHECK(r.oci.out == "ran\n");
    }
}

TEST_CASE("oci parity: a container's process killed by a signal is seen so by its reaper") {
    Suite s;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        Capture out;
        Bundle b({"sleep", "100"});
        const Created c = rt->started(b, out);
        const Outcome k = (*rt)({"kill", c.id, "KILL"});
        INFO(k.err);
        CHECK(k.code == 0);
        CHECK(wait_exit(c.pid) == 128 + SIGKILL);
    }
}

TEST_CASE("oci parity: a signal the process handles reaches it") {
    Suite s;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        Capture out;
        // Ready only once the trap is set: the signal must not come before it.
        const Created c = started_until(*rt, out, "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
                                        "ready\n");
        CHECK((*rt)({"kill", c.id, "TERM"}).code == 0);
        CHECK(wait_exit(c.pid) == 7);
        CHECK(out.out() == "ready\ngot TERM\n");
    }
}

TEST_CASE("oci parity: /proc is the container's own and ps lists its processes") {
    Suite s;
    Bundle b({});
    b.shell("echo self=$$; ps -o comm; exit 0"); // exit: sh must not exec ps in its place
    const Both r = run_both(s, b);
    INFO("nsfork-oci: " << r.oci.err << r.oci.out);
    INFO("runc: " << r.runc.err << r.runc.out);
    REQUIRE(r.oci.code == 0);
    REQUIRE(r.runc.code == 0);
    // The designed difference: nsfork-shim holds the namespace as pid 1, the process is pid 2.
    CHECK(r.runc.out == "self=1\nCOMMAND\nsh\nps\n");
    CHECK(r.oci.out == "self=2\nCOMMAND\nnsfork-shim\nsh\nps\n");
}

TEST_CASE("oci parity: read-only and read-write bind mounts") {
    Suite s;
    TempDir host;
    std::ofstream(host.path() + "/file") << "from the host\n";
    Bundle b({});
    b.config["mounts"].push_back({{"destination", "/mnt"}, {"type", "bind"}, {"source", host.path()},
                                  {"options", {"rbind", "ro", "nosuid", "nodev"}}});
    b.config["mounts"].push_back({{"destination", "/srv"}, {"type", "bind"}, {"source", host.path()},
                                  {"options", {"bind", "rw"}}});
    b.shell("cat /mnt/file; touch /mnt/ro 2>&1; echo written > /srv/rw && cat /srv/rw; rm /srv/rw; "
            "grep -E ' /(mnt|srv) ' /proc/self/mountinfo | cut -d' ' -f5,6");
    const Both r = run_both(s, b);
    same(r);
    CHECK(r.runc.out == "from the host\ntouch: /mnt/ro: Read-only file system\nwritten\n"
                        "/mnt ro,nosuid,nodev,relatime\n/srv rw,relatime\n");
}

TEST_CASE("oci parity: the mount table of runc spec's bundle") {
    Suite s;
    Bundle b({"cat", "/proc/self/mountinfo"});
    same(run_both(s, b), mount_table);
}

TEST_CASE("oci parity: capability sets, runc spec's and each set different") {
    Suite s;
    Bundle b({});
    b.shell("grep ^Cap /proc/self/status");
    same(run_both(s, b));
    b.config["process"]["capabilities"] = {
        {"bounding", {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN", "CAP_SETUID"}},
        {"permitted", {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}},
        {"effective", {"CAP_KILL"}},
        {"inheritable", {"CAP_KILL", "CAP_NET_BIND_SERVICE"}},
        {"ambient", {"CAP_NET_BIND_SERVICE"}}};
    same(run_both(s, b));
}

TEST_CASE("oci parity: capability sets of a user other than root") {
    Suite s;
    Bundle b({});
    b.shell("grep ^Cap /proc/self/status");
    b.config["process"]["user"] = {{"uid", 1000}, {"gid", 1000}};
    b.config["process"]["capabilities"]["inheritable"] = {"CAP_KILL", "CAP_NET_BIND_SERVICE"};
    const Both r = run_both(s, b);
    same(r);
    // What runc shows a user: the kernel kept permitted, effective and ambient across the switch.
    CHECK(r.runc.out.find("CapAmb:\t0000000000000420\n") != std::string::npos);
}

TEST_CASE("oci parity: user, supplementary groups and umask") {
    Suite s;
    Bundle b({});
    b.shell("id; umask");
    b.config["process"]["user"] = {{"uid", 1000}, {"gid", 1001}, {"additionalGids", {10, 20}}, {"umask", 027}};
    const Both r = run_both(s, b);
    same(r);
    CHECK(r.runc.out == "uid=1000 gid=1001 groups=10,20\n0027\n");
}

TEST_CASE("oci parity: hostname") {
    Suite s;
    Bundle b({"hostname"});
    b.config["hostname"] = "parity-host";
    const Both r = run_both(s, b);
    same(r);
    CHECK(r.runc.out == "parity-host\n");
}

TEST_CASE("oci parity: rlimits") {
    Suite s;
    Bundle b({"cat", "/proc/self/limits"});
    // Lowered only: raising a hard limit needs CAP_SYS_RESOURCE, which these machines lack.
    b.config["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 512}, {"hard", 1000}},
                                      {{"type", "RLIMIT_CORE"}, {"soft", 0}, {"hard", 0}},
                                      {{"type", "RLIMIT_NPROC"}, {"soft", 300}, {"hard", 400}}};
    const Both r = run_both(s, b);
    same(r);
    CHECK(r.runc.out.find("Max open files            512                  1000") != std::string::npos);
}

TEST_CASE("oci parity: no_new_privs and seccomp, and a syscall the profile denies") {
    Suite s;
    const std::string script = "grep -E '^(NoNewPrivs|Seccomp)' /proc/self/status; mkdir /tmp/denied 2>&1; echo $?";
    SECTION("runc spec's: no_new_privs, no filter") {
        Bundle b({});
        b.shell(script);
        const Both r = run_both(s, b);
        same(r);
        CHECK(r.runc.out.find("NoNewPrivs:\t1\nSeccomp:\t0\n") == 0);
    }
    SECTION("a profile denying mkdir, without no_new_privs") {
        Bundle b({});
        b.shell(script);
        b.config["process"]["noNewPrivileges"] = false;
        b.config["linux"]["seccomp"] = {
            {"defaultAction", "SCMP_ACT_ALLOW"},
            {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}},
            {"syscalls", {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 1}}}}};
        const Both r = run_both(s, b);
        same(r);
        CHECK(r.runc.out.find("NoNewPrivs:\t0\nSeccomp:\t2\n") == 0);
        CHECK(r.runc.out.find("can't create directory '/tmp/denied': Operation not permitted\n1\n") != std::string::npos);
    }
}

TEST_CASE("oci parity: masked and read-only paths") {
    Suite s;
    Bundle b({});
    b.shell("for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do "
            "  [ -e $p ] && echo \"$p $(wc -c < $p)\"; done; "
            "ls /proc/acpi /sys/firmware; "
            "echo 1 > /proc/sys/vm/overcommit_memory; echo h > /proc/sysrq-trigger; "
            "touch /proc/fs/x; echo end");
    const Both r = run_both(s, b);
    same(r);
    INFO(r.runc.out << r.runc.err);
    CHECK(r.runc.out.find("/proc/keys 0\n") != std::string::npos);
    CHECK(r.runc.err.find("Read-only file system") != std::string::npos);
    CHECK(r.oci.err == r.runc.err);
}

TEST_CASE("oci parity: device nodes") {
    Suite s;
    const std::string script = "stat -c '%n %F %a %t,%T %u:%g' /dev/* /dev/pts/ptmx; head -c 4 /dev/zero | wc -c; "
                               "echo discarded > /dev/null && echo null ok";
    SECTION("the defaults") {
        Bundle b({});
        b.shell(script);
        same(run_both(s, b));
    }
    SECTION("with linux.devices") {
        Bundle b({});
        b.shell(script);
        b.config["linux"]["devices"] = {{{"path", "/dev/fuse"}, {"type", "c"}, {"major", 10}, {"minor", 229},
                                         {"fileMode", 0640}, {"uid", 0}, {"gid", 0}}};
        const Both r = run_both(s, b);
        same(r);
        CHECK(r.runc.out.find("/dev/fuse character special file 640 a,e5 0:0\n") != std::string::npos);
    }
}

TEST_CASE("oci parity: environment and working directory") {
    Suite s;
    Bundle b({});
    b.shell("env | sort; pwd");
    b.config["process"]["env"] = {"PATH=/bin:/usr/bin", "PARITY=yes it is", "EMPTY="};
    b.config["process"]["cwd"] = "/tmp";
    const Both r = run_both(s, b);
    same(r);
    CHECK(r.runc.out.find("PARITY=yes it is\n") != std::string::npos);
}

TEST_CASE("oci parity: state through create, start and the process's end") {
    Suite s;
    std::vector<std::vector<nsfork::test::oci::Json>> seen(2);
    for (std::size_t i = 0; i < 2; ++i) {
        Runtime& rt = *s.both()[i];
        INFO(rt.name());
        Capture out;
        Bundle b({"sleep", "100"});
        const Created c = rt.create(b, out);
        seen[i].push_back(rt.state(c.id));
        rt.start(c.id);
        seen[i].push_back(rt.state(c.id));
        REQUIRE(rt({"kill", c.id, "KILL"}).code == 0);
        CHECK(wait_exit(c.pid) == 128 + SIGKILL);
        seen[i].push_back(rt.state(c.id));
        for (std::size_t k = 0; k < 3; ++k) {
            INFO("state " << seen[i][k].dump());
            CHECK(seen[i][k]["status"] == std::vector<const char*>{"created", "running", "stopped"}[k]);
            CHECK(seen[i][k]["id"] == c.id);
            CHECK(seen[i][k]["bundle"] == b.path());
            // The pid is the process's while it lives (runc says 0 once it is gone).
            if (k < 2) CHECK(seen[i][k]["pid"] == c.pid);
        }
    }
    // The same fields, and the same values but for those naming this container or this moment.
    for (std::size_t k = 0; k < 3; ++k) {
        nsfork::test::oci::Json a = seen[0][k], b = seen[1][k];
        for (const char* own : {"id", "pid", "bundle", "created", "ociVersion"}) {
            CHECK(a.contains(own) == b.contains(own));
            a.erase(own);
            b.erase(own);
        }
        CHECK(a.dump() == b.dump());
    }
}

TEST_CASE("oci parity: kill --all reaches every process of the container") {
    Suite s;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        Capture out;
        const Created c = started_until(*rt, out, "sleep 100 & sleep 100 & echo started; wait", "started\n");
        const std::uint64_t pidns = nsfork::procfs::pid_namespace_inode(c.pid);
        const nsfork::UniqueFd held = nsfork::testing::hold_pid_namespace(c.pid); // runc's ends with its process
        REQUIRE(held);
        const Outcome k = (*rt)({"kill", "--all", c.id, "KILL"});
        INFO(k.err);
        CHECK(k.code == 0);
        CHECK(wait_exit(c.pid) == 128 + SIGKILL);
        CHECK(nsfork::testing::eventually([&] { return nsfork::testing::processes_in_pidns(pidns).empty(); }));
        CHECK((*rt)({"delete", c.id}).code == 0);
    }
}

TEST_CASE("oci parity: delete of a created, a running and a stopped container, and twice") {
    Suite s;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        Bundle b({"sleep", "100"});
        auto gone = [&](const std::string& id) {
            const Outcome st = (*rt)({"state", id});
            CHECK(st.code != 0);
            // containerd and podman match this text (ENGINES.md).
            CHECK(st.err.find("does not exist") != std::string::npos);
            CHECK_FALSE(fs::exists(rt->root() + "/" + id));
        };
        { // created: delete kills the waiting process
            Capture out;
            const Created c = rt->create(b, out);
            CHECK((*rt)({"delete", c.id}).code == 0);
            CHECK(wait_exit(c.pid) == 128 + SIGKILL);
            gone(c.id);
        }
        { // running: refused without --force, then killed with it
            Capture out;
            const Created c = rt->started(b, out);
            const Outcome refused = (*rt)({"delete", c.id});
            CHECK(refused.code != 0);
            CHECK(refused.err.find("running") != std::string::npos);
            CHECK(rt->status(c.id) == "running");
            CHECK((*rt)({"delete", "--force", c.id}).code == 0);
            CHECK(wait_exit(c.pid) == 128 + SIGKILL);
            gone(c.id);
        }
        { // stopped; and a second delete says it does not exist
            Capture out;
            Bundle quick({"true"});
            const Created c = rt->started(quick, out);
            CHECK(wait_exit(c.pid) == 0);
            CHECK(rt->status(c.id) == "stopped");
            CHECK((*rt)({"delete", c.id}).code == 0);
            gone(c.id);
            const Outcome again = (*rt)({"delete", c.id});
            CHECK(again.code != 0);
            CHECK(again.err.find("does not exist") != std::string::npos);
        }
    }
}

TEST_CASE("oci parity: exec into a running container") {
    Suite s;
    std::vector<Outcome> seen;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        Capture out;
        Bundle b({"sleep", "100"});
        b.config["hostname"] = "exec-host";
        b.config["process"]["env"] = {"PATH=/bin", "FROM=config"};
        const Created c = rt->started(b, out);
        seen.push_back((*rt)({"exec", "--env", "EXTRA=1", "--cwd", "/tmp", c.id, "sh", "-c",
                              "hostname; env | sort; pwd; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; "
                              "ps -o comm | grep -c sleep; exit 5"}));
        CHECK((*rt)({"delete", "--force", c.id}).code == 0);
        CHECK(wait_exit(c.pid) == 128 + SIGKILL);
    }
    INFO("nsfork-oci: " << seen[0].err);
    INFO("runc: " << seen[1].err);
    CHECK(seen[1].code == 5);
    CHECK(seen[0].code == seen[1].code);
    CHECK(seen[0].out == seen[1].out);
}

TEST_CASE("oci parity: pause and resume") {
    Suite s;
    for (Runtime* rt : s.both()) {
        INFO(rt->name());
        Capture out;
        Bundle b({"sleep", "100"});
        const Created c = rt->started(b, out);
        const Outcome p = (*rt)({"pause", c.id});
        INFO(p.err);
        CHECK(p.code == 0);
        CHECK(rt->status(c.id) == "paused");
        const Outcome r = (*rt)({"resume", c.id});
        INFO(r.err);
        CHECK(r.code == 0);
        CHECK(rt->status(c.id) == "running");
        CHECK((*rt)({"kill", c.id, "KILL"}).code == 0);
        CHECK(wait_exit(c.pid) == 128 + SIGKILL);
        CHECK((*rt)({"delete", c.id}).code == 0);
    }
}

TEST_CASE("oci parity: bad bundles are refused by both, and nsfork-oci leaves nothing behind") {
    Suite s;
    struct Bad {
        const char* what;
        std::function<void(Bundle&)> spoil;
        const char* named; // what nsfork-oci's error must mention
    };
    const std::vector<Bad> cases = {
        {"missing root filesystem", [](Bundle& b) { b.config["root"]["path"] = b.path() + "/no-rootfs"; }, "no-rootfs"},
        {"malformed config.json", [](Bundle& b) { b.raw_config = "{\"ociVersion\": "; }, "config.json"},
        {"unknown namespace type", [](Bundle& b) { b.config["linux"]["namespaces"].push_back({{"type", "bogus"}}); },
         "bogus"},
        {"unknown rlimit", [](Bundle& b) {
             b.config["process"]["rlimits"].push_back({{"type", "RLIMIT_BOGUS"}, {"soft", 1}, {"hard", 1}});
         }, "RLIMIT_BOGUS"},
        {"unsupported field", [](Bundle& b) { b.config["linux"]["intelRdt"] = {{"l3CacheSchema", "L3:0=f"}}; },
         "intelRdt"},
        {"empty args", [](Bundle& b) { b.config["process"]["args"] = nsfork::test::oci::Json::array(); }, "args"},
    };
    for (const Bad& bad : cases) {
        INFO(bad.what);
        for (const char* verb : {"run", "create"}) {
            INFO(verb);
            Bundle b({"true"});
            bad.spoil(b);
            for (Runtime* rt : s.both()) {
                INFO(rt->name());
                const std::string id = rt->new_id();
                b.write();
                const Outcome o = (*rt)({verb, "--bundle", b.path(), id});
                INFO("stderr: " << o.err);
                CHECK(o.code != 0);
                CHECK(o.err.find("level=error") != std::string::npos);
                if (rt == &s.nsfork_oci()) {
                    CHECK(o.err.find(bad.named) != std::string::npos);
                    CHECK_FALSE(fs::exists(rt->root() + "/" + id));
                    nothing_left(id, b.path());
                }
            }
        }
    }
    auto client = s.server().connect();
    const auto listed = client.list();
    REQUIRE(listed);
    CHECK(listed->empty());
}
