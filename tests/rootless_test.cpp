// Rootless: `nsfork run` and `nsfork serve` as an unprivileged user (uid 65534, through setpriv),
// each in a user namespace of its own. The tests run as root to set up — a copy of the binaries
// the user can reach, a cgroup delegated to the user — and drop to the user for what they check.
#include "harness.hpp"

#include "base/procfs.hpp"
#include "testing/pty.hpp"
#include "server/server.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

using namespace nsfork;
using namespace nsfork::test;

namespace {

constexpr uid_t kUser = 65534;
constexpr ino_t kInitialUserNamespace = 0xEFFFFFFDU; // PROC_USER_INIT_INO

// An installed prefix the user can reach (a build tree under /root is not), every directory and
// file mode 0755: bin/ with nsfork (the front), nsfork-shim and nsfork-probe, and libexec/nsfork/
// with the full program and nsfork-shim, where the front and the full program look for them.
class UserBinaries {
public:
    UserBinaries() {
        std::filesystem::create_directories(dir_.path() + "/bin");
        std::filesystem::create_directories(dir_.path() + "/libexec/nsfork");
        for (const std::string dir : {"", "/bin", "/libexec", "/libexec/nsfork"})
            REQUIRE(::chmod((dir_.path() + dir).c_str(), 0755) == 0);
        for (const char* name : {"nsfork", "nsfork-shim", "nsfork-probe"}) copy(bin(name), path(name));
        copy(full_nsfork(), dir_.path() + "/libexec/nsfork/nsfork");
        copy(bin("nsfork-shim"), dir_.path() + "/libexec/nsfork/nsfork-shim");
    }
    std::string path(const std::string& name) const { return dir_.path() + "/bin/" + name; }
    std::string nsfork() const { return path("nsfork"); }
    std::string probe() const { return path("nsfork-probe"); }

private:
    static void copy(const std::string& from, const std::string& to) {
        std::filesystem::copy_file(from, to);
        REQUIRE(::chmod(to.c_str(), 0755) == 0);
    }
    TempDir dir_;
};

// `argv` run as the user: no supplementary groups, in /, with a PATH the user can search.
std::vector<std::string> as_user(std::vector<std::string> argv) {
    std::vector<std::string> full = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     "/usr/bin/env", "-C", "/", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
}

ProcessResult run_as_user(std::vector<std::string> argv) { return run_process(as_user(std::move(argv))); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

ino_t user_namespace_of(pid_t pid) {
    struct stat st;
    return ::stat(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), &st) == 0 ? st.st_ino : 0;
}

// `nsfork serve` as the user, on a socket in a directory of the user's. `prefix` runs first, as
// root, and must exec the rest in place (to move the server into a cgroup, say).
class UserServer {
public:
    UserServer(const UserBinaries& bins, std::vector<std::string> extra_args = {},
               std::vector<std::string> prefix = {})
        : bins_(bins), socket_(dir_.path() + "/nsfork.sock") {
        REQUIRE(::chown(dir_.path().c_str(), kUser, kUser) == 0);
        std::vector<std::string> args = {bins.nsfork(), "serve", "--socket", socket_, "--log-level", "warn"};
        args.insert(args.end(), extra_args.begin(), extra_args.end());
        std::vector<std::string> argv = std::move(prefix);
        for (std::string& a : as_user(args)) argv.push_back(std::move(a));
        auto pid = testing::spawn(argv);
        REQUIRE(pid);
        pid_ = *pid;
        // Polled as the user: root's connections a rootless server refuses (uid 0 is not its user).
        REQUIRE(testing::eventually([&] { return nsfork("status").exit_code == 0 || !alive(pid_); },
                                    std::chrono::seconds(10), std::chrono::milliseconds(20)));
        REQUIRE(alive(pid_));
    }
    ~UserServer() {
        if (pid_ < 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    UserServer(const UserServer&) = delete;
    UserServer& operator=(const UserServer&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& socket() const { return socket_; }
    // `nsfork VERB --socket S ARGS...` as the user.
    ProcessResult nsfork(const std::string& verb, std::vector<std::string> args = {}) const {
        args.insert(args.begin(), {bins_.nsfork(), verb, "--socket", socket_});
        return run_as_user(std::move(args));
    }
    // SIGTERM; how it ended.
    int stop() {
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(std::exchange(pid_, -1), &status, 0);
        return testing::shell_code(status);
    }

private:
    const UserBinaries& bins_;
    TempDir dir_;
    std::string socket_;
    pid_t pid_ = -1;
};

// The PID column of container `id` in `nsfork list`'s output; -1 when it is not listed.
pid_t listed_pid(const std::string& list, const std::string& id) {
    for (const std::string& row : lines(list)) {
        std::istringstream in(row);
        std::string first;
        pid_t pid = -1;
        if (in >> first >> pid && first == id) return pid;
    }
    return -1;
}

// A cgroup v2 directory delegated to the user as systemd delegates one: the directory and the
// files a delegatee writes chowned to it. Removed on destruction (it must be empty by then).
class DelegatedCgroup {
public:
    DelegatedCgroup() : path_(procfs::cgroup2_mount() + "/nsfork-rootless-" + std::to_string(::getpid())) {
        REQUIRE(!procfs::cgroup2_mount().empty());
        REQUIRE(::mkdir(path_.c_str(), 0755) == 0);
        for (const char* f : {"", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"})
            REQUIRE(::chown((path_ + f).c_str(), kUser, kUser) == 0);
    }
    // Whatever a failed test left in it is killed, and its directories removed, deepest first.
    ~DelegatedCgroup() {
        std::ofstream(path_ + "/cgroup.kill") << "1";
        testing::eventually([&] { return contains(slurp(path_ + "/cgroup.events"), "populated 0"); });
        std::vector<std::string> dirs;
        for (const auto& e : std::filesystem::recursive_directory_iterator(path_))
            if (e.is_directory()) dirs.push_back(e.path());
        std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
        for (const std::string& d : dirs) ::rmdir(d.c_str());
        if (::rmdir(path_.c_str()) < 0) FAIL_CHECK("cannot remove " << path_ << ": " << std::strerror(errno));
    }
    const std::string& path() const { return path_; }
    // A prefix that moves the process into this cgroup, then execs the rest.
    std::vector<std::string> enter() const {
        return {"/bin/sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", path_};
    }

private:
    std::string path_;
};

} // namespace

TEST_CASE("rootless: nsfork run -- ps as a user shows the shim as pid 1 and only the container") {
    require_root();
    UserBinaries bins;
    auto r = run_as_user({bins.nsfork(), "run", "--", "ps", "-e", "-o", "pid=,user=,comm="});
    CHECK(r.err.empty());
    REQUIRE(r.exit_code == 0);
    auto rows = lines(r.out);
    REQUIRE(rows.size() == 2);
    CHECK(contains(rows[0], "1 root     nsfork-shim"));
    CHECK(contains(rows[1], "2 root     ps"));
}

TEST_CASE("rootless: the front runs nsfork run -- CMD itself, in a user namespace it made, and hands anything else over") {
    require_root();
    UserBinaries bins;
    const std::string front = std::filesystem::canonical(bins.nsfork()).string();
    Pipe out;
    auto pid = testing::spawn(as_user({bins.nsfork(), "run", "--", bins.probe(), "sleep"}), out.write.get());
    REQUIRE(pid);
    out.write.reset();
    REQUIRE(read_line(out.read.get()) == "ready");
    std::error_code ec;
    CHECK(std::filesystem::read_symlink("/proc/" + std::to_string(*pid) + "/exe", ec).string() == front);
    const ino_t userns = user_namespace_of(*pid);
    CHECK(userns != 0);
    CHECK(userns != kInitialUserNamespace);
    ::kill(*pid, SIGTERM); // forwarded: the probe dies of it
    int status = 0;
    REQUIRE(::waitpid(*pid, &status, 0) == *pid);
    CHECK(testing::shell_code(status) == 128 + SIGTERM);
    // An option the front does not serve: the full program, which makes its own namespace.
    auto full = run_as_user({bins.nsfork(), "run", "--map-current-user", "--", "id", "-u"});
    CHECK(full.exit_code == 0);
    CHECK(full.out == "65534\n");
}

TEST_CASE("rootless: nsfork run exits with the command's code, 127 for a missing command, 128+N for signal N") {
    require_root();
    UserBinaries bins;
    CHECK(run_as_user({bins.nsfork(), "run", "--", "/bin/true"}).exit_code == 0);
    CHECK(run_as_user({bins.nsfork(), "run", "--", "sh", "-c", "exit 3"}).exit_code == 3);
    auto missing = run_as_user({bins.nsfork(), "run", "--", "no-such-command"});
    CHECK(missing.exit_code == 127);
    CHECK(contains(missing.err, "no-such-command"));
    CHECK(run_as_user({bins.nsfork(), "run", "--", bins.probe(), "signal-self", "15"}).exit_code == 128 + SIGTERM);
}

TEST_CASE("rootless: the user is root inside by default, itself with --map-current-user") {
    require_root();
    UserBinaries bins;
    auto root = run_as_user({bins.nsfork(), "run", "--", "sh", "-c", "id -u; id -g; cat /proc/self/uid_map"});
    REQUIRE(root.exit_code == 0);
    auto rows = lines(root.out);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0] == "0");
    CHECK(rows[1] == "0");
    CHECK(contains(rows[2], "65534")); // uid 0 inside is the user outside
    auto self = run_as_user({bins.nsfork(), "run", "--map-current-user", "--", "sh", "-c", "id -u; id -g"});
    REQUIRE(self.exit_code == 0);
    CHECK(lines(self.out) == std::vector<std::string>{"65534", "65534"});
}

TEST_CASE("rootless: --pid-max bounds the container's pid namespace without root") {
    require_root();
    UserBinaries bins;
    auto r = run_as_user({bins.nsfork(), "run", "--pid-max", "1000", "--", "cat", "/proc/sys/kernel/pid_max"});
    CHECK(r.err.empty());
    CHECK(r.exit_code == 0);
    CHECK(r.out == "1000\n");
}

TEST_CASE("rootless: with user.max_user_namespaces 0 nsfork run names the setting") {
    require_root();
    UserBinaries bins;
    // The limit is per user namespace: set in one of the test's own (the user keeps its
    // capabilities there across exec, --keep-caps), it affects nothing else on the machine.
    auto r = run_as_user({"/usr/bin/unshare", "--map-current-user", "--keep-caps", "/bin/sh", "-c",
                          "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" run -- /bin/true",
                          bins.nsfork()});
    CHECK(r.exit_code == 125);
    CHECK(contains(r.err, "user.max_user_namespaces is 0"));
}

TEST_CASE("rootless: nsfork serve as a user, with run --socket, list and destroy") {
    require_root();
    UserBinaries bins;
    UserServer server(bins, {"--warm-pool", "0"});
    // The server is root in a user namespace of its own, not on the host.
    CHECK(user_namespace_of(server.pid()) != kInitialUserNamespace);
    CHECK(contains(slurp("/proc/" + std::to_string(server.pid()) + "/status"), "Uid:\t65534"));

    CHECK(server.nsfork("run", {"--", "sh", "-c", "exit 3"}).exit_code == 3);
    auto id = server.nsfork("run", {"--", "id", "-u"});
    CHECK(id.exit_code == 0);
    CHECK(id.out == "0\n");

    auto detached = server.nsfork("run", {"--detach", "--id", "sleeper", "--", "sleep", "100"});
    REQUIRE(detached.exit_code == 0);
    auto list = server.nsfork("list");
    REQUIRE(list.exit_code == 0);
    const pid_t pid = listed_pid(list.out, "sleeper");
    REQUIRE(pid > 0);
    CHECK(alive(pid));
    const ino_t pidns = procfs::pid_namespace_inode(pid);
    CHECK(pidns != procfs::pid_namespace_inode(0));
    const UniqueFd held = testing::hold_pid_namespace(pid);
    REQUIRE(held);
    // No cgroup is delegated to the user here: destroy goes by the pid namespace.
    CHECK(server.nsfork("destroy", {"sleeper"}).exit_code == 0);
    CHECK(processes_in_pidns(pidns).empty());
    CHECK(listed_pid(server.nsfork("list").out, "sleeper") == -1);
    CHECK(server.stop() == 0);
}

TEST_CASE("rootless: nsfork serve --map-current-user runs containers as the user inside too") {
    require_root();
    UserBinaries bins;
    UserServer server(bins, {"--map-current-user", "--warm-pool", "0"});
    auto r = server.nsfork("run", {"--", "sh", "-c", "id -u; ps -o user= -p 1"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "65534\nnobody\n");
    CHECK(server.stop() == 0);
}

TEST_CASE("rootless: the embedded server of an agent without root") {
    require_root();
    UserBinaries bins;
    Pipe out;
    const pid_t agent = ::fork();
    REQUIRE(agent >= 0);
    if (agent == 0) {
        // The agent: a program of the user's, calling start_server_before_threads at the top.
        if (::chdir("/") < 0 || ::setgroups(0, nullptr) < 0 || ::setresgid(kUser, kUser, kUser) < 0 ||
            ::setresuid(kUser, kUser, kUser) < 0)
            ::_exit(2);
        ServerOptions options;
        options.shim_path = bins.path("nsfork-shim");
        options.log_level = "warn";
        auto client = start_server_before_threads(options);
        if (!client) {
            std::fprintf(stderr, "start_server_before_threads: %s\n", client.error().message.c_str());
            ::_exit(3);
        }
        LaunchOptions lo;
        lo.argv = {"sh", "-c", "id -u; readlink /proc/1/exe"};
        lo.env = {kPath};
        lo.stdio = {-1, out.write.get(), 2};
        auto ct = client->launch(lo);
        if (!ct) {
            std::fprintf(stderr, "launch: %s\n", ct.error().message.c_str());
            ::_exit(4);
        }
        auto status = client->wait(ct->id());
        ::_exit(status && status->shell_code() == 0 ? 0 : 5);
    }
    out.write.reset();
    const std::string output = read_all(out.read.get());
    int status = 0;
    REQUIRE(::waitpid(agent, &status, 0) == agent);
    CHECK(testing::shell_code(status) == 0);
    CHECK(output == "0\n" + bins.path("nsfork-shim") + "\n");
}

TEST_CASE("rootless: a server inside a cgroup delegated to the user gives containers leaves there") {
    require_root();
    UserBinaries bins;
    DelegatedCgroup delegated;
    {
        UserServer server(bins, {"--warm-pool", "0"}, delegated.enter());
        const std::string root = delegated.path() + "/nsfork-" + std::to_string(server.pid());
        REQUIRE(server.nsfork("run", {"--detach", "--id", "a", "--", "sleep", "100"}).exit_code == 0);
        const pid_t pid = listed_pid(server.nsfork("list").out, "a");
        REQUIRE(pid > 0);
        const std::string leaf = testing::cgroup_of(pid);
        CHECK(leaf.starts_with(root + "/"));
        CHECK(server.nsfork("destroy", {"a"}).exit_code == 0);
        CHECK(!alive(pid));
        struct stat st;
        CHECK(::stat(leaf.c_str(), &st) < 0); // the leaf went with the container
        CHECK(server.stop() == 0);
        CHECK(::stat(root.c_str(), &st) < 0); // the server's root went with it
    }
    // nsfork run without a server, in the delegated cgroup, gives its container a leaf below it.
    std::vector<std::string> argv = delegated.enter();
    for (std::string& a : as_user({bins.nsfork(), "run", "--", "cat", "/proc/self/cgroup"})) argv.push_back(std::move(a));
    auto r = run_process(argv);
    CHECK(r.exit_code == 0);
    const std::string relative = delegated.path().substr(delegated.path().rfind('/'));
    CHECK(contains(r.out, "0::" + relative + "/"));
}

TEST_CASE("rootless: a --cgroup-root the server does not run inside is not used, and launches still work") {
    require_root();
    UserBinaries bins;
    DelegatedCgroup delegated; // the user's, but the server stays where it is (above it)
    UserServer server(bins, {"--warm-pool", "0", "--cgroup-root", delegated.path()});
    REQUIRE(server.nsfork("run", {"--detach", "--id", "a", "--", "sleep", "100"}).exit_code == 0);
    const pid_t pid = listed_pid(server.nsfork("list").out, "a");
    REQUIRE(pid > 0);
    CHECK_FALSE(testing::cgroup_of(pid).starts_with(delegated.path() + "/"));
    CHECK(server.nsfork("destroy", {"a"}).exit_code == 0);
    CHECK(server.stop() == 0);
}

// A nested container's namespace is made, or a shared one joined, by intermediates: the server
// never enters it, which without root it could not come back from.
TEST_CASE("rootless: nested containers under a rootless server") {
    require_root();
    UserBinaries bins;
    DelegatedCgroup delegated; // a cgroup, so that sharing a namespace is allowed
    UserServer server(bins, {"--warm-pool", "0"}, delegated.enter());
    REQUIRE(server.nsfork("run", {"--detach", "--id", "parent", "--", "sleep", "100"}).exit_code == 0);
    CHECK(server.nsfork("run", {"--parent", "parent", "--", "sh", "-c", "exit 7"}).exit_code == 7);
    CHECK(server.nsfork("run", {"--parent", "parent", "--share-pid-namespace", "--", "sh", "-c", "exit 8"}).exit_code ==
          8);
    CHECK(server.stop() == 0);
}

TEST_CASE("rootless: joining a container's pid namespace by path through a rootless server") {
    require_root();
    UserBinaries bins;
    DelegatedCgroup delegated; // a cgroup, so that sharing a namespace is allowed
    UserServer server(bins, {"--warm-pool", "0"}, delegated.enter());
    REQUIRE(server.nsfork("run", {"--detach", "--id", "a", "--", "sleep", "100"}).exit_code == 0);
    const pid_t pid = listed_pid(server.nsfork("list").out, "a");
    REQUIRE(pid > 0);
    auto joined = server.nsfork("run", {"--join-pidns", "/proc/" + std::to_string(pid) + "/ns/pid", "--", "sh", "-c",
                                        "exit 9"});
    CHECK(joined.exit_code == 9);
    CHECK(server.stop() == 0);
}

// Warm entries wait at SCHED_IDLE and get the server's scheduling back once ready, which without
// root (no CAP_SYS_NICE, RLIMIT_NICE 0) the kernel refuses: a rootless pool keeps them at the
// server's scheduling (may_leave_sched_idle), or every entry would be discarded.
TEST_CASE("rootless: the warm pool serves launches") {
    require_root();
    UserBinaries bins;
    UserServer server(bins, {"--warm-pool", "1"});
    for (int i = 0; i < 3; ++i) {
        auto r = server.nsfork("run", {"--", "sh", "-c", "exit 5"});
        CHECK(r.exit_code == 5);
    }
    unsigned ready = 0, size = 0, warming = 0, served = 0, discarded = 0;
    const auto status = server.nsfork("status").out;
    REQUIRE(std::sscanf(status.substr(status.find("warm pool:")).c_str(),
                        "warm pool: %u of %u ready, %u warming, %u served, %u discarded", &ready, &size, &warming,
                        &served, &discarded) == 5);
    CHECK(served > 0);
    CHECK(discarded == 0);
}

// A top-level container that shares the server's pid namespace would share the host's: refused,
// naming why (with a delegated cgroup, so that the missing cgroup is not the reason given).
TEST_CASE("rootless: sharing the server's pid namespace, the host's, is refused with the reason") {
    require_root();
    UserBinaries bins;
    DelegatedCgroup delegated;
    UserServer server(bins, {"--warm-pool", "0"}, delegated.enter());
    auto r = server.nsfork("run", {"--share-pid-namespace", "--", "/bin/true"});
    CHECK(r.exit_code == 125);
    CHECK(contains(r.err, "its pid namespace is the host's"));
    CHECK(server.stop() == 0);
}

// Without a server the same rules hold: sharing the caller's (the host's) namespace is refused
// naming why, and so is joining another run's namespace, which this run's own user namespace has
// no privilege over; -t with --map-current-user, whose pid 1 has no capabilities to mount devpts.
TEST_CASE("rootless: without a server, sharing the host's pid namespace, joining another run's, and -t "
          "with --map-current-user are refused with the reason") {
    require_root();
    UserBinaries bins;
    auto share = run_as_user({bins.nsfork(), "run", "--share-pid-namespace", "--", "/bin/true"});
    CHECK(share.exit_code == 125);
    CHECK(contains(share.err, "its pid namespace is the host's"));

    auto join = run_as_user({"/bin/sh", "-c",
                             "\"$0\" run -- sleep 30 & first=$!; "
                             "until shim=$(pgrep -n -u 65534 -f nsfork-shim); do sleep 0.05; done; "
                             "\"$0\" run --join-pidns /proc/$shim/ns/pid -- /bin/true; "
                             "rc=$?; kill $first; wait $first; exit $rc",
                             bins.nsfork()});
    CHECK(join.exit_code == 125);
    CHECK(contains(join.err, "without a server"));

    auto tty = run_as_user({bins.nsfork(), "run", "-t", "--map-current-user", "--", "/bin/true"});
    CHECK(tty.exit_code == 125);
    CHECK(contains(tty.err, "--map-current-user"));
}

// ---- the peer-style cases (bwrap's, tini's, runc's) without root ----

namespace {


// `nsfork run ARGS...` as the user, as the foreground job of a shell on a new terminal.
testing::PtyJob user_job(const UserBinaries& bins, std::vector<std::string> args) {
    args.insert(args.begin(), bins.nsfork());
    return MUST(testing::PtyJob::start(as_user(std::move(args))));
}

// The job's exit code, once it ended.
int exit_code_of(testing::PtyJob& job) {
    const int status = MUST(job.next_status());
    REQUIRE((WIFEXITED(status) || WIFSIGNALED(status)));
    return testing::shell_code(status);
}

} // namespace

TEST_CASE("rootless: the command leads its own process group") {
    require_root();
    UserBinaries bins;
    auto r = run_as_user({bins.nsfork(), "run", "--", "sh", "-c", "cut -d' ' -f1,5 /proc/$$/stat"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "2 2\n");
}

TEST_CASE("rootless: the caller's ignored signals reach the command (nohup)") {
    require_root();
    UserBinaries bins;
    auto r = run_as_user({"/bin/sh", "-c", "trap '' HUP; exec \"$0\" run -- grep SigIgn /proc/self/status",
                          bins.nsfork()});
    CHECK(r.exit_code == 0);
    const std::string mask = r.out.substr(r.out.find_first_not_of(" \t", r.out.find(':') + 1));
    CHECK((std::stoull(mask, nullptr, 16) & (1ULL << (SIGHUP - 1))) != 0);
}

TEST_CASE("rootless: --preserve-fds passes the caller's fds on") {
    require_root();
    UserBinaries bins;
    auto r = run_as_user({"/bin/sh", "-c", "exec 3</dev/null 4</etc/hostname 5</dev/null; exec \"$0\" run "
                                           "--preserve-fds 2 -- \"$1\" fds",
                          bins.nsfork(), bins.probe()});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "0\n1\n2\n3\n4\n");
}

TEST_CASE("rootless: on a terminal the command has it: /dev/tty opens, its group in the foreground") {
    require_root();
    UserBinaries bins;
    testing::PtyJob job = user_job(bins, {"run", "--", "sh", "-c", "exec 3<>/dev/tty && echo ready; read line; echo got $line"});
    MUST(job.read_until("ready"));
    CHECK(job.foreground() != job.job()); // the command's group, not nsfork's
    MUST(job.type("this\n"));
    CHECK(exit_code_of(job) == 0);
    CHECK(MUST(job.drain()).find("got this") != std::string::npos);
    CHECK(job.foreground() == job.job()); // the shell's job again
}

TEST_CASE("rootless: -t gives the container a terminal of its own, without and through a server") {
    require_root();
    UserBinaries bins;
    std::optional<UserServer> server;
    for (bool private_run : {true, false}) {
        INFO((private_run ? "without a server" : "through a rootless nsfork serve"));
        std::vector<std::string> args = {"run", "-t"};
        if (!private_run) {
            server.emplace(bins, std::vector<std::string>{"--warm-pool", "0"});
            args.insert(args.end(), {"--socket", server->socket()});
        }
        args.insert(args.end(), {"--", "sh", "-c", "tty; echo ready; read line; echo got $line"});
        testing::PtyJob job = user_job(bins, args);
        CHECK(MUST(job.read_until("ready")).find("/dev/pts/0") != std::string::npos); // its own devpts
        MUST(job.type("x\r"));
        CHECK(exit_code_of(job) == 0);
        CHECK(MUST(job.drain()).find("got x") != std::string::npos);
    }
}
