// linux.resources written as runc writes them (libcontainer/cgroups/fs for v1, fs2 for v2): the
// same file names, conversions and order, so that a container limited by nsfork-oci reads the
// same limits as one limited by runc.
#include "oci/resources.hpp"

#include "base/procfs.hpp"
#include "oci/device_filter.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace nsfork::oci {
namespace {

constexpr const char* kControllers[] = {"memory", "cpu", "cpuset", "pids", "devices"};

Error invalid(const std::string& field, const std::string& what) {
    return Error{Errc::bad_request, "config.json: " + field + ": " + what};
}

// A cgroup directory the limits of one controller go into: a v1 one made here, or the server's
// v2 leaf.
struct Dir {
    int fd = -1;
    std::string name;   // for errors: its path, or "the container's cgroup v2 leaf"
    bool v2 = false;
};

Result<void> write_file(const Dir& dir, const char* file, const std::string& value, const std::string& field) {
    UniqueFd fd(openat(dir.fd, file, O_WRONLY | O_CLOEXEC));
    ssize_t n = fd ? write(fd.get(), value.data(), value.size()) : -1;
    if (n < 0)
        return sys_error(Errc::bad_request, "config.json: " + field + ": write " + value + " to " + dir.name + "/" + file,
                         errno);
    return {};
}

std::optional<std::string> read_file(int dirfd, const char* file) {
    UniqueFd fd(openat(dirfd, file, O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(fd.get(), buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

bool has_file(const Dir& dir, const char* file) { return faccessat(dir.fd, file, F_OK, 0) == 0; }

// -1 is "no limit": v1 files take it as is, v2 files want "max".
std::string v2_number(std::int64_t v) { return v < 0 ? "max" : std::to_string(v); }

// ---- the limits of each controller, v1 and v2 ----

Result<void> set_memory(const Resources& r, const Dir& d) {
    if (d.v2) {
        if (r.memory_swappiness) return invalid("linux.resources.memory.swappiness", "cgroup v2 has no swappiness");
        if (r.disable_oom_killer)
            return invalid("linux.resources.memory.disableOOMKiller", "cgroup v2 cannot disable the OOM killer");
        if (r.memory_limit)
            if (auto w = write_file(d, "memory.max", v2_number(*r.memory_limit), "linux.resources.memory.limit"); !w) return w;
        if (r.memory_reservation)
            if (auto w = write_file(d, "memory.low", v2_number(*r.memory_reservation), "linux.resources.memory.reservation"); !w)
                return w;
        // v1's swap is memory+swap, v2's swap.max is swap alone (runc's ConvertMemorySwapToCgroupV2Value).
        std::int64_t memory = r.memory_limit.value_or(0), swap = r.memory_swap.value_or(0);
        if (memory == -1 && swap == 0) swap = -1;
        if (swap > 0) {
            if (memory <= 0) return invalid("linux.resources.memory.swap", "a swap limit needs a memory limit");
            if (swap < memory) return invalid("linux.resources.memory.swap", "must be at least linux.resources.memory.limit");
            swap -= memory;
        }
        if (swap != 0 && !(swap == -1 && !has_file(d, "memory.swap.max")))
            if (auto w = write_file(d, "memory.swap.max", v2_number(swap), "linux.resources.memory.swap"); !w) return w;
        return {};
    }
    std::int64_t memory = r.memory_limit.value_or(0), swap = r.memory_swap.value_or(0);
    if (memory == -1 && swap == 0) swap = -1;
    // Without swap accounting there is no memory+swap file; unlimited swap is then what happens.
    if (swap != 0 && !has_file(d, "memory.memsw.limit_in_bytes")) {
        if (swap != -1)
            return invalid("linux.resources.memory.swap", "this kernel accounts no swap (no memory.memsw.limit_in_bytes)");
        swap = 0;
    }
    auto write_limit = [&] {
        return memory != 0 ? write_file(d, "memory.limit_in_bytes", std::to_string(memory), "linux.resources.memory.limit")
                           : Result<void>{};
    };
    auto write_swap = [&] {
        return swap != 0 ? write_file(d, "memory.memsw.limit_in_bytes", std::to_string(swap), "linux.resources.memory.swap")
                         : Result<void>{};
    };
    // memory+swap may never be below memory: raising both writes swap first, lowering both memory
    // first (runc's setMemoryAndSwap; it matters for an existing cgroup with other limits).
    bool swap_first = false;
    if (memory != 0 && swap != 0) {
        auto current = read_file(d.fd, "memory.limit_in_bytes");
        swap_first = swap == -1 || (current && std::strtoull(current->c_str(), nullptr, 10) < static_cast<std::uint64_t>(swap));
    }
    if (swap_first) {
        if (auto w = write_swap(); !w) return w;
        if (auto w = write_limit(); !w) return w;
    } else {
        if (auto w = write_limit(); !w) return w;
        if (auto w = write_swap(); !w) return w;
    }
    if (r.memory_reservation)
        if (auto w = write_file(d, "memory.soft_limit_in_bytes", std::to_string(*r.memory_reservation),
                                "linux.resources.memory.reservation");
            !w)
            return w;
    if (r.disable_oom_killer)
        if (auto w = write_file(d, "memory.oom_control", "1", "linux.resources.memory.disableOOMKiller"); !w) return w;
    if (r.memory_swappiness)
        if (auto w = write_file(d, "memory.swappiness", std::to_string(*r.memory_swappiness), "linux.resources.memory.swappiness");
            !w)
            return w;
    return {};
}

Result<void> set_cpu(const Resources& r, const Dir& d) {
    if (d.v2) {
        if (r.cpu_shares) {
            // runc's ConvertCPUSharesToCgroupV2Value: [2, 262144] onto [1, 10000].
            std::uint64_t weight = 1 + ((std::clamp<std::uint64_t>(*r.cpu_shares, 2, 262144) - 2) * 9999) / 262142;
            if (auto w = write_file(d, "cpu.weight", std::to_string(weight), "linux.resources.cpu.shares"); !w) return w;
        }
        if (r.cpu_quota || r.cpu_period) {
            std::string max = r.cpu_quota && *r.cpu_quota > 0 ? std::to_string(*r.cpu_quota) : "max";
            if (r.cpu_period) max += " " + std::to_string(*r.cpu_period);
            if (auto w = write_file(d, "cpu.max", max, r.cpu_quota ? "linux.resources.cpu.quota" : "linux.resources.cpu.period"); !w)
                return w;
        }
        return {};
    }
    if (r.cpu_shares) {
        if (auto w = write_file(d, "cpu.shares", std::to_string(*r.cpu_shares), "linux.resources.cpu.shares"); !w) return w;
        // The kernel clamps shares to [2, 262144] silently: runc reports it, so does this.
        auto actual = read_file(d.fd, "cpu.shares");
        if (actual && *actual != std::to_string(*r.cpu_shares))
            return invalid("linux.resources.cpu.shares", "the kernel set " + *actual + " instead of " +
                                                              std::to_string(*r.cpu_shares) + " (out of range)");
    }
    if (r.cpu_period)
        if (auto w = write_file(d, "cpu.cfs_period_us", std::to_string(*r.cpu_period), "linux.resources.cpu.period"); !w) return w;
    if (r.cpu_quota)
        if (auto w = write_file(d, "cpu.cfs_quota_us", std::to_string(*r.cpu_quota), "linux.resources.cpu.quota"); !w) return w;
    return {};
}

Result<void> set_cpuset(const Resources& r, const Dir& d) {
    if (!r.cpuset_cpus.empty())
        if (auto w = write_file(d, "cpuset.cpus", r.cpuset_cpus, "linux.resources.cpu.cpus"); !w) return w;
    if (!r.cpuset_mems.empty())
        if (auto w = write_file(d, "cpuset.mems", r.cpuset_mems, "linux.resources.cpu.mems"); !w) return w;
    return {};
}

Result<void> set_pids(const Resources& r, const Dir& d) {
    return write_file(d, "pids.max", v2_number(*r.pids_limit), "linux.resources.pids.limit");
}

// v1's device cgroup: each rule written in order, as the kernel applies it to the list the
// directory inherited ("a *:* rwm" denied first, then what is allowed); v2's: an eBPF program.
Result<void> set_devices(const Resources& r, const Dir& d, int loaded) {
    if (d.v2) return attach_device_filter(d.fd, r.devices, loaded);
    for (std::size_t i = 0; i < r.devices.size(); ++i) {
        const DeviceRule& rule = r.devices[i];
        auto number = [](std::int64_t n) { return n < 0 ? std::string("*") : std::to_string(n); };
        std::string line = std::string(1, rule.type) + " " + number(rule.major) + ":" + number(rule.minor) + " " + rule.access;
        if (auto w = write_file(d, rule.allow ? "devices.allow" : "devices.deny", line,
                                "linux.resources.devices[" + std::to_string(i) + "]");
            !w)
            return w;
    }
    return {};
}

// What each controller is asked for, and the field an error about it names.
const char* asking_field(const Resources& r, std::string_view controller) {
    if (controller == "memory") {
        if (r.memory_limit) return "linux.resources.memory.limit";
        if (r.memory_reservation) return "linux.resources.memory.reservation";
        if (r.memory_swap) return "linux.resources.memory.swap";
        if (r.memory_swappiness) return "linux.resources.memory.swappiness";
        if (r.disable_oom_killer) return "linux.resources.memory.disableOOMKiller";
    } else if (controller == "cpu") {
        if (r.cpu_shares) return "linux.resources.cpu.shares";
        if (r.cpu_quota) return "linux.resources.cpu.quota";
        if (r.cpu_period) return "linux.resources.cpu.period";
    } else if (controller == "cpuset") {
        if (!r.cpuset_cpus.empty()) return "linux.resources.cpu.cpus";
        if (!r.cpuset_mems.empty()) return "linux.resources.cpu.mems";
    } else if (controller == "pids") {
        if (r.pids_limit) return "linux.resources.pids.limit";
    } else if (controller == "devices") {
        if (!r.devices.empty()) return "linux.resources.devices";
    }
    return nullptr;
}

Result<void> set_limits(std::string_view controller, const Resources& r, const Dir& d, int device_program) {
    if (controller == "memory") return set_memory(r, d);
    if (controller == "cpu") return set_cpu(r, d);
    if (controller == "cpuset") return set_cpuset(r, d);
    if (controller == "pids") return set_pids(r, d);
    return set_devices(r, d, device_program);
}

// ---- where the directories are ----

// The v1 hierarchy of `controller` ("" when none is mounted).
std::string v1_mount(std::string_view controller) {
    auto points = procfs::mount_points("cgroup", controller);
    return points.empty() ? std::string() : points.front();
}

pid_t g_caller = 0;

// The caller's own cgroup in the v1 hierarchy of `controller`, from /proc/self/cgroup
// ("4:memory:/user.slice" -> "/user.slice").
std::string own_v1_cgroup(std::string_view controller) {
    std::ifstream in(g_caller ? "/proc/" + std::to_string(g_caller) + "/cgroup" : std::string("/proc/self/cgroup"));
    for (std::string line; std::getline(in, line);) {
        auto first = line.find(':'), second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        std::istringstream names(line.substr(first + 1, second - first - 1));
        for (std::string name; std::getline(names, name, ',');)
            if (name == controller) return line.substr(second + 1);
    }
    return "/";
}

// As runc: an absolute cgroupsPath is below the hierarchy's root, a relative one below the
// caller's own cgroup there.
std::string v1_path(const std::string& mount, std::string_view controller, const std::string& cgroups_path) {
    std::string base = cgroups_path[0] == '/' ? std::string() : own_v1_cgroup(controller);
    return (std::filesystem::path(mount + "/" + base + "/" + cgroups_path)).lexically_normal().string();
}

Result<void> check_cgroups_path(const std::string& cgroups_path) {
    if (cgroups_path.empty()) return invalid("linux.cgroupsPath", "empty");
    for (const auto& part : std::filesystem::path(cgroups_path))
        if (part == "..") return invalid("linux.cgroupsPath", "must not contain \"..\"");
    return {};
}

bool v2_leaf_has(int leaf, std::string_view controller) {
    auto list = read_file(leaf, "cgroup.controllers");
    if (!list) return false;
    std::istringstream names(*list);
    for (std::string name; names >> name;)
        if (name == controller) return true;
    return false;
}

// A v1 cpuset directory admits no process until it has cpus and mems: a new one gets its
// parent's (runc's cpusetEnsureParent).
Result<void> inherit_cpuset(const std::string& dir) {
    std::string parent = std::filesystem::path(dir).parent_path().string();
    UniqueFd parent_fd(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent_fd || !fd) return sys_error(Errc::internal, "open " + dir, errno);
    for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
        auto value = read_file(parent_fd.get(), file);
        if (!value) return sys_error(Errc::internal, "read " + parent + "/" + file, errno);
        if (auto w = write_file(Dir{fd.get(), dir, false}, file, *value, "linux.cgroupsPath"); !w) return w;
    }
    return {};
}

// mkdir -p; the directories it made are appended to `made`, parents first.
Result<void> make_dirs(const std::string& path, bool cpuset, std::vector<std::string>& made) {
    std::filesystem::path p(path);
    std::string current;
    for (const auto& part : p) {
        if (part == "/") {
            current = "/";
            continue;
        }
        current = (std::filesystem::path(current) / part).string();
        if (mkdir(current.c_str(), 0755) == 0) {
            made.push_back(current);
            if (cpuset)
                if (auto r = inherit_cpuset(current); !r) return r;
        } else if (errno != EEXIST) {
            return sys_error(Errc::unavailable, "config.json: linux.cgroupsPath: mkdir " + current, errno);
        }
    }
    return {};
}

void remove_dirs(const std::vector<std::string>& made) {
    for (auto it = made.rbegin(); it != made.rend(); ++it) rmdir(it->c_str());
}

} // namespace

void set_caller_cgroups(pid_t caller) { g_caller = caller; }

Result<ControllerCgroups> ControllerCgroups::create(const Resources& resources, const std::string& cgroups_path,
                                                    int v2_leaf, int device_program) {
    if (auto r = check_cgroups_path(cgroups_path); !r) return std::move(r).error();
    ControllerCgroups out;
    std::vector<std::string> made;
    auto fail = [&](Error e) {
        remove_dirs(made);
        return e;
    };
    for (const char* controller : kControllers) {
        const char* field = asking_field(resources, controller);
        if (!field) continue;
        Dir dir;
        UniqueFd fd;
        // Devices through an eBPF program on the server's v2 leaf even where a v1 devices
        // hierarchy is mounted: the process is born into that leaf (clone3), whereas joining a
        // v1 cgroup is a migration, whose write lock on the kernel's threadgroup rwsem waits for
        // an RCU grace period (5-15 ms on a loaded host). The same rules, as runc's emulator.
        const bool devices_in_leaf = v2_leaf >= 0 && std::string_view(controller) == "devices";
        if (std::string mount = devices_in_leaf ? std::string() : v1_mount(controller); !mount.empty()) {
            std::string path = v1_path(mount, controller, cgroups_path);
            if (auto r = make_dirs(path, std::string_view(controller) == "cpuset", made); !r)
                return fail(std::move(r).error());
            fd.reset(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (!fd) return fail(sys_error(Errc::internal, "open " + path, errno));
            dir = Dir{fd.get(), path, false};
            if (std::find(out.dirs_.begin(), out.dirs_.end(), path) == out.dirs_.end()) out.dirs_.push_back(path);
        } else if (v2_leaf >= 0 && (std::string_view(controller) == "devices" || v2_leaf_has(v2_leaf, controller))) {
            dir = Dir{v2_leaf, "the container's cgroup v2 leaf", true};
        } else {
            return fail(invalid(field, std::string("no ") + controller +
                                           " controller to apply it (neither a cgroup v1 hierarchy nor the "
                                           "container's cgroup v2 leaf has one)"));
        }
        if (auto r = set_limits(controller, resources, dir, device_program); !r) return fail(std::move(r).error());
    }
    if (!resources.unified.empty()) {
        if (v2_leaf < 0) return fail(invalid("linux.resources.unified", "no cgroup v2 leaf to write them into"));
        Dir leaf{v2_leaf, "the container's cgroup v2 leaf", true};
        for (const auto& [file, value] : resources.unified) {
            // A file name only: "../" would write outside the container's cgroup.
            if (file.find('/') != std::string::npos || file.empty() || file[0] == '.')
                return fail(invalid("linux.resources.unified", "\"" + file + "\" is not a cgroup file name"));
            if (auto r = write_file(leaf, file.c_str(), value, "linux.resources.unified[\"" + file + "\"]"); !r)
                return fail(std::move(r).error());
        }
    }
    return out;
}

ControllerCgroups ControllerCgroups::find(const std::string& cgroups_path) {
    ControllerCgroups out;
    if (!check_cgroups_path(cgroups_path)) return out;
    for (const char* controller : kControllers) {
        std::string mount = v1_mount(controller);
        if (mount.empty()) continue;
        std::string path = v1_path(mount, controller, cgroups_path);
        struct stat st {};
        if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
            std::find(out.dirs_.begin(), out.dirs_.end(), path) == out.dirs_.end())
            out.dirs_.push_back(path);
    }
    return out;
}

ControllerCgroups ControllerCgroups::from_paths(std::vector<std::string> paths) {
    ControllerCgroups out;
    out.dirs_ = std::move(paths);
    return out;
}

Result<std::vector<UniqueFd>> ControllerCgroups::open_procs() const {
    std::vector<UniqueFd> fds;
    for (const std::string& dir : dirs_) {
        std::string file = dir + "/cgroup.procs";
        UniqueFd fd(open(file.c_str(), O_WRONLY | O_CLOEXEC));
        if (!fd) return sys_error(Errc::unavailable, "open " + file, errno);
        fds.push_back(std::move(fd));
    }
    return fds;
}

Result<void> ControllerCgroups::remove() const {
    for (const std::string& dir : dirs_)
        if (rmdir(dir.c_str()) != 0 && errno != ENOENT) return sys_error(Errc::invalid_state, "rmdir " + dir, errno);
    return {};
}

} // namespace nsfork::oci
