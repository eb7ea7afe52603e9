// linux.resources in real cgroups (root): the limits land in runc's files with runc's values, a
// process that joins through open_procs() is in every one, the kernel enforces a memory limit,
// refused fields leave nothing behind, and remove() cleans up. Each test uses cgroups of its own
// (nsfork-oci-test-<pid>-<n>) and removes them.
#include "oci/resources.hpp"

#include "oci/device_filter.hpp"

#include "base/procfs.hpp"
#include "tests/harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace nsfork;
using namespace nsfork::oci;

namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

bool exists(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

std::string unique_path(const char* what) {
    static int n = 0;
    return "/nsfork-oci-test-" + std::to_string(getpid()) + "-" + what + "-" + std::to_string(++n);
}

// As require_root(): exit code 77, which ctest reports as skipped; under CI=true a failure.
[[noreturn]] void skip(const std::string& why) {
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") FAIL(why << ", and CI=true does not allow skipping");
    std::fprintf(stderr, "SKIPPED: %s\n", why.c_str());
    std::fflush(stderr);
    std::_Exit(77);
}

// This host keeps memory, cpu, pids ... as cgroup v1 hierarchies (the hybrid layout).
bool has_v1(const char* controller) { return exists(std::string("/sys/fs/cgroup/") + controller + "/cgroup.procs"); }

void require_v1_hierarchies() {
    for (const char* c : {"memory", "cpu", "cpuset", "pids", "devices"})
        if (!has_v1(c)) skip(std::string("no cgroup v1 ") + c + " hierarchy on this host");
}

// A child that joins `procs` (writes "0" to each, as the container's process does), tells the
// parent, then waits to be killed. Returns its pid once it has joined.
pid_t join_and_wait(const std::vector<UniqueFd>& procs) {
    int ready[2];
    REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        for (const UniqueFd& fd : procs)
            if (write(fd.get(), "0", 1) != 1) _exit(1);
        if (write(ready[1], "x", 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c;
    ssize_t n = read(ready[0], &c, 1);
    close(ready[0]);
    REQUIRE(n == 1);
    return pid;
}

void kill_and_reap(pid_t pid) {
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
}

} // namespace


TEST_CASE("oci resources: linux.resources land in runc's cgroup v1 files, and a process joining through open_procs is in them") {
    test::require_root();
    require_v1_hierarchies();
    const std::string path = unique_path("limits");
    Resources r;
    r.memory_limit = 64 << 20;
    r.memory_reservation = 32 << 20;
    r.memory_swappiness = 10;
    r.disable_oom_killer = true;
    r.cpu_shares = 512;
    r.cpu_quota = 50000;
    r.cpu_period = 100000;
    r.cpuset_cpus = "0";
    r.pids_limit = 42;
    r.devices = {DeviceRule{false, 'a', -1, -1, "rwm"}, DeviceRule{true, 'c', 1, 3, "rwm"}};
    bool swap_accounting = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes");
    if (swap_accounting) r.memory_swap = 128 << 20;

    auto cgroups = ControllerCgroups::create(r, path, -1);
    INFO((cgroups ? "" : cgroups.error().message));
    REQUIRE(cgroups.ok());
    const std::string memory = "/sys/fs/cgroup/memory" + path, cpu = "/sys/fs/cgroup/cpu" + path,
                      cpuset = "/sys/fs/cgroup/cpuset" + path, pids = "/sys/fs/cgroup/pids" + path,
                      devices = "/sys/fs/cgroup/devices" + path;
    std::vector<std::string> expected{memory, cpu, cpuset, pids, devices};
    CHECK(cgroups->paths() == expected);

    CHECK(read_text(memory + "/memory.limit_in_bytes") == std::to_string(64 << 20));
    CHECK(read_text(memory + "/memory.soft_limit_in_bytes") == std::to_string(32 << 20));
    if (swap_accounting) CHECK(read_text(memory + "/memory.memsw.limit_in_bytes") == std::to_string(128 << 20));
    CHECK(read_text(memory + "/memory.swappiness") == "10");
    CHECK_THAT(read_text(memory + "/memory.oom_control"), Catch::Contains("oom_kill_disable 1"));
    CHECK(read_text(cpu + "/cpu.shares") == "512");
    CHECK(read_text(cpu + "/cpu.cfs_quota_us") == "50000");
    CHECK(read_text(cpu + "/cpu.cfs_period_us") == "100000");
    CHECK(read_text(cpuset + "/cpuset.cpus") == "0");
    // Not asked for, but a v1 cpuset admits no process without: the parent's.
    CHECK(read_text(cpuset + "/cpuset.mems") == read_text("/sys/fs/cgroup/cpuset/cpuset.mems"));
    CHECK(read_text(pids + "/pids.max") == "42");
    CHECK(read_text(devices + "/devices.list") == "c 1:3 rwm");

    auto found = ControllerCgroups::find(path);
    CHECK(found.paths() == expected);

    {
        auto procs = cgroups->open_procs();
        REQUIRE(procs.ok());
        REQUIRE(procs->size() == 5);
        pid_t pid = join_and_wait(*procs);
        std::string membership = read_text("/proc/" + std::to_string(pid) + "/cgroup");
        for (const char* controller : {":memory:", ":cpu:", ":cpuset:", ":pids:", ":devices:"})
            CHECK_THAT(membership, Catch::Contains(controller + path));
        // Busy while the process is in them.
        auto busy = cgroups->remove();
        CHECK_FALSE(busy.ok());
        kill_and_reap(pid);
    }
    REQUIRE(cgroups->remove().ok());
    for (const std::string& dir : expected) CHECK_FALSE(exists(dir));
    CHECK(cgroups->remove().ok()); // idempotent
    CHECK(ControllerCgroups::find(path).paths().empty());
}

TEST_CASE("oci resources: the kernel enforces a memory limit written by ControllerCgroups") {
    test::require_root();
    if (!has_v1("memory")) skip("no cgroup v1 memory hierarchy on this host");
    Resources r;
    r.memory_limit = 16 << 20;
    // memory+swap as low as memory: the process cannot escape into swap.
    if (exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")) r.memory_swap = 16 << 20;
    auto cgroups = ControllerCgroups::create(r, unique_path("oom"), -1);
    INFO((cgroups ? "" : cgroups.error().message));
    REQUIRE(cgroups.ok());
    auto procs = cgroups->open_procs();
    REQUIRE(procs.ok());
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        for (const UniqueFd& fd : *procs)
            if (write(fd.get(), "0", 1) != 1) _exit(1);
        // 64 MiB touched page by page: four times the limit.
        constexpr std::size_t size = 64 << 20;
        char* p = static_cast<char*>(malloc(size));
        if (!p) _exit(2);
        for (std::size_t i = 0; i < size; i += 4096) p[i] = 1;
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGKILL);
    procs->clear();
    CHECK(cgroups->remove().ok());
}

TEST_CASE("oci resources: a limit the kernel or the host cannot apply is refused by its field and leaves no cgroup") {
    test::require_root();
    require_v1_hierarchies();
    {
        // The kernel clamps shares to [2, 262144]; runc reports that, so does nsfork-oci.
        const std::string path = unique_path("shares");
        Resources r;
        r.memory_limit = 64 << 20;
        r.cpu_shares = 1;
        auto cgroups = ControllerCgroups::create(r, path, -1);
        REQUIRE_FALSE(cgroups.ok());
        CHECK(cgroups.error().message ==
              "config.json: linux.resources.cpu.shares: the kernel set 2 instead of 1 (out of range)");
        CHECK_FALSE(exists("/sys/fs/cgroup/memory" + path));
        CHECK_FALSE(exists("/sys/fs/cgroup/cpu" + path));
    }
    {
        // Nested: the parent made for the child goes too.
        const std::string path = unique_path("unified") + "/child";
        Resources r;
        r.pids_limit = 10;
        r.unified = {{"memory.high", "1000000"}};
        auto cgroups = ControllerCgroups::create(r, path, -1);
        REQUIRE_FALSE(cgroups.ok());
        CHECK(cgroups.error().message == "config.json: linux.resources.unified: no cgroup v2 leaf to write them into");
        CHECK_FALSE(exists("/sys/fs/cgroup/pids" + std::filesystem::path(path).parent_path().string()));
    }
    {
        Resources r;
        r.pids_limit = 10;
        auto cgroups = ControllerCgroups::create(r, "../escape", -1);
        REQUIRE_FALSE(cgroups.ok());
        CHECK(cgroups.error().message == "config.json: linux.cgroupsPath: must not contain \"..\"");
    }
    {
        Resources r;
        auto none = ControllerCgroups::create(r, unique_path("empty"), -1);
        REQUIRE(none.ok());
        CHECK(none->paths().empty());
    }
}

TEST_CASE("oci resources: linux.resources.unified is written into the container's cgroup v2 leaf") {
    test::require_root();
    const std::string mount = procfs::cgroup2_mount();
    if (mount.empty()) skip("no cgroup2 mount");
    const std::string leaf = mount + procfs::cgroup2_path() + "/nsfork-oci-test-" + std::to_string(getpid());
    REQUIRE(mkdir(leaf.c_str(), 0755) == 0);
    UniqueFd fd(open(leaf.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    // A core file every v2 cgroup has, whatever controllers this host enables below its root.
    const std::string file = "cgroup.max.depth", value = "3";
    Resources wanted, escaping;
    wanted.unified = {{file, value}};
    escaping.unified = {{"../cgroup.procs", "0"}};
    auto cgroups = ControllerCgroups::create(wanted, unique_path("v2"), fd.get());
    auto escape = ControllerCgroups::create(escaping, unique_path("v2"), fd.get());
    std::string written = read_text(leaf + "/" + file);
    fd.reset();
    rmdir(leaf.c_str());
    INFO((cgroups ? "" : cgroups.error().message));
    REQUIRE(cgroups.ok());
    CHECK(cgroups->paths().empty());
    CHECK(written == value);
    REQUIRE_FALSE(escape.ok());
    CHECK(escape.error().message == "config.json: linux.resources.unified: \"../cgroup.procs\" is not a cgroup file name");
}

TEST_CASE("oci resources: on cgroup v2 the device rules become an eBPF filter the kernel applies to the cgroup's processes") {
    test::require_root();
    const std::string mount = procfs::cgroup2_mount();
    if (mount.empty()) skip("no cgroup2 mount");
    const std::string leaf = mount + procfs::cgroup2_path() + "/nsfork-oci-test-" + std::to_string(getpid()) + "-devices";
    REQUIRE(mkdir(leaf.c_str(), 0755) == 0);
    UniqueFd fd(open(leaf.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fd);
    // runc's spec: deny everything, then /dev/null read-write; /dev/zero only for reading.
    auto attached = attach_device_filter(fd.get(), {DeviceRule{false, 'a', -1, -1, "rwm"}, DeviceRule{true, 'c', 1, 3, "rwm"},
                                                    DeviceRule{true, 'c', 1, 5, "r"}});
    int result = -1;
    if (attached) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            UniqueFd procs(openat(fd.get(), "cgroup.procs", O_WRONLY | O_CLOEXEC));
            if (!procs || write(procs.get(), "0", 1) != 1) _exit(100);
            auto opens = [](const char* path, int flags) {
                UniqueFd f(open(path, flags | O_CLOEXEC));
                return f ? 0 : errno;
            };
            // Bit 0: null rw allowed, bit 1: zero read allowed, bit 2: zero write denied, bit 3: full denied.
            int bits = (opens("/dev/null", O_RDWR) == 0) | (opens("/dev/zero", O_RDONLY) == 0) << 1 |
                       (opens("/dev/zero", O_WRONLY) == EPERM) << 2 | (opens("/dev/full", O_RDONLY) == EPERM) << 3;
            _exit(bits);
        }
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        if (WIFEXITED(status)) result = WEXITSTATUS(status);
    }
    fd.reset();
    CHECK(rmdir(leaf.c_str()) == 0);
    INFO((attached ? "" : attached.error().message));
    REQUIRE(attached.ok());
    CHECK(result == 0b1111);
}
