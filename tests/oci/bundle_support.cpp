#include "tests/oci/bundle_support.hpp"

#include "base/syscalls.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace fs = std::filesystem;

namespace nsfork::test::oci {

std::string find_program(const std::string& name) {
    for (const char* dir : {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
        const std::string path = std::string(dir) + "/" + name;
        if (::access(path.c_str(), X_OK) == 0) return path;
    }
    return {};
}

namespace {

// The value of `r`, or the test fails with its error.
template <class T>
T required(Result<T> r) {
    if (!r) FAIL(r.error().message);
    return std::move(*r);
}


// Exit statuses (shell convention) of the processes left to this subreaper that reap_orphans_now
// reaped, for wait_exit.
std::map<pid_t, int>& orphan_statuses() {
    static std::map<pid_t, int> statuses;
    return statuses;
}

// Reaps every child that exited and that this process did not spawn itself: the containers'
// processes, reparented here when their runtime's command ended. An engine's shim does the same
// on SIGCHLD while it runs other commands — and must: the namespace's pid 1 finishes dying only
// once they are reaped, and nsfork-oci's delete waits for that (KERNEL.md).
void reap_orphans_now() {
    const std::vector<pid_t> spawned = testing::spawned();
    for (pid_t pid : testing::children_of(::getpid())) {
        if (std::find(spawned.begin(), spawned.end(), pid) != spawned.end()) continue;
        int status;
        if (::waitpid(pid, &status, WNOHANG) == pid) orphan_statuses()[pid] = testing::shell_code(status);
    }
}

// Waits until `pidfd` is readable (its process exited), at most `limit`, reaping orphans
// meanwhile; whether it did.
bool await_exit(int pidfd, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        reap_orphans_now();
        pollfd p{pidfd, POLLIN, 0};
        if (::poll(&p, 1, 20) > 0) return true;
        if (std::chrono::steady_clock::now() > deadline) return false;
    }
}

// Runs `argv` with stdout and stderr into `capture` and waits for it, at most `limit`: its exit
// code (shell convention), or nullopt when it had to be SIGKILLed for running longer. Never
// fails the test itself: it also runs from destructors.
std::optional<int> run_bounded(const std::vector<std::string>& argv, const Capture& capture, std::chrono::seconds limit) {
    auto pid = testing::spawn(argv, capture.out_fd(), capture.err_fd());
    if (!pid) return 127;
    UniqueFd pidfd(sys::pidfd_open(*pid, 0));
    const bool ended = await_exit(pidfd.get(), limit);
    if (!ended) sys::pidfd_send_signal(pidfd.get(), SIGKILL);
    int status = 0;
    while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {}
    if (!ended) return std::nullopt;
    return testing::shell_code(status);
}

// What a memfd holds, from its start (its offset is shared with the writers: pread leaves it).
std::string contents(int fd) {
    std::string out;
    char buf[4096];
    for (off_t at = 0;;) {
        const ssize_t n = ::pread(fd, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
        at += n;
    }
}

UniqueFd memfd(const char* name) {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
    REQUIRE(fd);
    return fd;
}

// Builds the busybox root filesystem under `root`: the binary, a symlink per applet where
// busybox --install would put it, and the directories the runtimes mount on.
void build_rootfs(const fs::path& root) {
    for (const char* dir : {"bin", "sbin", "usr/bin", "usr/sbin", "proc", "dev", "sys", "tmp", "etc", "root", "mnt", "srv"})
        fs::create_directories(root / dir);
    fs::copy_file("/bin/busybox", root / "bin/busybox");
    const testing::ProcessResult list = required(testing::run_process({"/bin/busybox", "--list-full"}));
    REQUIRE(list.exit_code == 0);
    for (const std::string& applet : testing::lines(list.out)) {
        const fs::path link = root / applet;
        if (applet != "bin/busybox" && !fs::exists(fs::symlink_status(link))) fs::create_symlink("/bin/busybox", link);
    }
}

} // namespace

const std::string& busybox_rootfs() {
    static testing::TempDir dir = [] {
        INFO("/bin/busybox is missing: apt-get install busybox-static");
        REQUIRE(::access("/bin/busybox", X_OK) == 0);
        testing::TempDir d = required(testing::TempDir::create("oci-rootfs"));
        build_rootfs(fs::path(d.path()) / "rootfs");
        return d;
    }();
    static const std::string path = dir.path() + "/rootfs";
    return path;
}

const Json& runc_spec() {
    static const Json spec = [] {
        const std::string runc = find_program("runc");
        INFO("runc is missing: apt-get install runc");
        REQUIRE(!runc.empty());
        testing::TempDir d = required(testing::TempDir::create("oci-spec"));
        const testing::ProcessResult r = required(testing::run_process({runc, "spec", "--bundle", d.path()}));
        INFO("runc spec failed: " << r.err);
        REQUIRE(r.exit_code == 0);
        return Json::parse(read_file(d.path() + "/config.json"));
    }();
    return spec;
}

Bundle::Bundle(std::vector<std::string> args) : config(runc_spec()) {
    config["root"]["path"] = busybox_rootfs();
    config["process"]["terminal"] = false;
    config["process"]["args"] = std::move(args);
    // runc spec mounts cgroupfs on /sys/fs/cgroup: on this v1 hybrid host, one hierarchy per
    // controller rooted at the container's cgroups. A case of its own compares that mount;
    // every other bundle goes without it.
    Json& mounts = config["mounts"];
    mounts.erase(std::remove_if(mounts.begin(), mounts.end(),
                                [](const Json& m) { return m.value("destination", "") == "/sys/fs/cgroup"; }),
                 mounts.end());
}

void Bundle::write() const {
    std::ofstream out(path() + "/config.json", std::ios::trunc);
    if (raw_config.empty()) out << config.dump(1, '\t') << '\n';
    else out << raw_config;
    REQUIRE(out.good());
}

void Bundle::shell(const std::string& script) { config["process"]["args"] = {"sh", "-c", script}; }

Capture::Capture() : out_(memfd("oci-stdout")), err_(memfd("oci-stderr")) {}

std::string Capture::out() const { return contents(out_.get()); }
std::string Capture::err() const { return contents(err_.get()); }

Runtime::Runtime(std::string name, std::vector<std::string> command)
    : name_(std::move(name)), command_(std::move(command)) {}

Runtime::~Runtime() {
    // Whatever a test left (or could not remove after a failure) goes, as an engine's cleanup would.
    for (const std::string& id : ids_) {
        Capture ignored;
        (void)run_bounded(argv_for({"delete", "--force", id}), ignored, std::chrono::seconds(30));
    }
}

std::vector<std::string> Runtime::argv_for(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = command_;
    argv.insert(argv.end(), {"--root", root()});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

Outcome Runtime::operator()(const std::vector<std::string>& args) {
    Capture capture;
    Outcome o = (*this)(args, capture);
    o.out = capture.out();
    o.err = capture.err();
    return o;
}

Outcome Runtime::operator()(const std::vector<std::string>& args, const Capture& capture) {
    const std::vector<std::string> argv = argv_for(args);
    const std::optional<int> code = run_bounded(argv, capture, std::chrono::seconds(60));
    if (!code) {
        std::string line;
        for (const auto& a : argv) line += a + " ";
        FAIL(line << "did not finish in 60 s; its output: " << capture.out() << capture.err());
    }
    return Outcome{*code, {}, {}};
}

pid_t Runtime::spawn(const std::vector<std::string>& args, const Capture& capture) {
    return MUST(testing::spawn(argv_for(args), capture.out_fd(), capture.err_fd()));
}

std::string Runtime::new_id() {
    static unsigned next = 0;
    ids_.push_back("oci-test-" + std::to_string(::getpid()) + "-" + std::to_string(next++));
    return ids_.back();
}

Outcome Runtime::run(const Bundle& bundle) {
    bundle.write();
    return (*this)({"run", "--bundle", bundle.path(), new_id()});
}

Created Runtime::try_create(const Bundle& bundle, const Capture& output) {
    bundle.write();
    Created c{new_id(), -1, {}};
    const std::string pid_file = dir_.path() + "/" + c.id + ".pid";
    c.outcome = (*this)({"create", "--bundle", bundle.path(), "--pid-file", pid_file, c.id}, output);
    c.outcome.out = output.out();
    c.outcome.err = output.err();
    if (c.outcome.code == 0) {
        const std::string text = read_file(pid_file);
        // Bare digits: containerd's parser rejects anything else (ENGINES.md).
        INFO(name_ << " wrote pid file \"" << text << "\"");
        CHECK((!text.empty() && std::all_of(text.begin(), text.end(), ::isdigit)));
        c.pid = static_cast<pid_t>(std::atol(text.c_str()));
    }
    return c;
}

Created Runtime::create(const Bundle& bundle, const Capture& output) {
    Created c = try_create(bundle, output);
    INFO(name_ << " create: " << c.outcome.err);
    REQUIRE(c.outcome.code == 0);
    REQUIRE(c.pid > 0);
    return c;
}

void Runtime::start(const std::string& id) {
    const Outcome o = (*this)({"start", id});
    INFO(name_ << " start " << id << ": " << o.err);
    REQUIRE(o.code == 0);
}

Created Runtime::started(const Bundle& bundle, const Capture& output) {
    Created c = create(bundle, output);
    start(c.id);
    return c;
}

Json Runtime::state(const std::string& id) {
    const Outcome o = (*this)({"state", id});
    INFO(name_ << " state " << id << ": " << o.err);
    REQUIRE(o.code == 0);
    Json j = Json::parse(o.out, nullptr, false);
    INFO("its output: " << o.out);
    REQUIRE_FALSE(j.is_discarded());
    return j;
}

void wait_for_output(const Capture& capture, const std::string& expected) {
    const bool seen = testing::eventually([&] { return capture.out() == expected; });
    INFO("the container wrote: " << capture.out() << capture.err());
    REQUIRE(seen);
}

int wait_exit(pid_t pid) {
    if (!orphan_statuses().count(pid)) {
        UniqueFd pidfd(sys::pidfd_open(pid, 0));
        INFO("pid " << pid << " is not a process of ours");
        REQUIRE(pidfd);
        INFO("pid " << pid << " still runs after 30 s");
        REQUIRE(await_exit(pidfd.get(), std::chrono::seconds(30)));
        reap_orphans_now();
    }
    INFO("pid " << pid << " was not left to this process");
    REQUIRE(orphan_statuses().count(pid));
    return orphan_statuses()[pid];
}

namespace {

// Reaps what the runtimes left to this subreaper (containers deleted with --force, say); fails
// the test naming any that still runs after 10 s.
void reap_orphans_at_end() {
    const std::vector<pid_t> spawned = testing::spawned();
    auto running = [&] {
        reap_orphans_now();
        std::vector<pid_t> left = testing::children_of(::getpid());
        std::erase_if(left, [&](pid_t pid) { return std::find(spawned.begin(), spawned.end(), pid) != spawned.end(); });
        return left;
    };
    if (testing::eventually([&] { return running().empty(); })) return;
    for (pid_t pid : running()) {
        const std::string comm = read_file("/proc/" + std::to_string(pid) + "/comm");
        FAIL_CHECK("a container's process still runs after its runtime deleted it: pid " << pid << " " << comm);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
}

} // namespace

Suite::Suite() {
    require_root();
    // As conmon and containerd's shim: the container's process outlives its runtime's command
    // and is reparented here, where its exit status is seen (ENGINES.md).
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    (void)busybox_rootfs();
    (void)runc_spec();
    server_.emplace();
    nsfork_oci_.emplace("nsfork-oci", std::vector<std::string>{bin("nsfork-oci"), "--nsfork-socket", server_->socket()});
    runc_.emplace("runc", std::vector<std::string>{find_program("runc")});
}

Suite::~Suite() {
    nsfork_oci_.reset();
    runc_.reset();
    reap_orphans_at_end();
    server_.reset();
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> sorted_lines(const std::string& text) {
    std::vector<std::string> out = testing::lines(text);
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace nsfork::test::oci
