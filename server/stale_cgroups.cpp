#include "server/stale_cgroups.hpp"

#include "base/procfs.hpp"
#include "launcher/cgroup.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

namespace nsfork {

namespace {

// An unsigned decimal number that is the whole of `text`.
std::optional<std::uint64_t> whole_number(std::string_view text) {
    std::uint64_t n = 0;
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, n);
    if (ec != std::errc() || p != end || text.empty()) return std::nullopt;
    return n;
}

// The start of the live process `pid` (/proc/self for 0), in the namespace of our /proc.
std::optional<std::uint64_t> process_start(pid_t pid) {
    std::ifstream f(pid ? fmt::format("/proc/{}/stat", pid) : std::string("/proc/self/stat"));
    if (!f) return std::nullopt;
    std::stringstream text;
    text << f.rdbuf();
    return parse_start_ticks(text.str());
}

// Whether /proc shows our own pid namespace: pids read there are then ours.
bool proc_is_ours() {
    char self[32];
    const ssize_t n = ::readlink("/proc/self", self, sizeof self - 1);
    return n > 0 && std::string_view(self, static_cast<std::size_t>(n)) == std::to_string(::getpid());
}

// The tree's mark; nullopt when it has none (or not one of ours: then judged as unmarked).
std::optional<ServerMark> read_mark(const std::string& path) {
    char buf[64];
    const ssize_t n = ::getxattr(path.c_str(), kServerMarkXattr, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    return parse_mark(std::string_view(buf, static_cast<std::size_t>(n)));
}

// A cgroup directory's creation as clock ticks since boot. cgroupfs keeps no birth time, but a
// cgroup directory's mtime is set when it is made and never moves after (kernfs changes it
// neither when a child is made or removed nor when processes move; verified on 6.18).
std::optional<std::uint64_t> birth_ticks(const std::string& path) {
    struct stat st;
    timespec real{}, boot{};
    if (::stat(path.c_str(), &st) < 0 || ::clock_gettime(CLOCK_REALTIME, &real) < 0 ||
        ::clock_gettime(CLOCK_BOOTTIME, &boot) < 0)
        return std::nullopt;
    using std::chrono::nanoseconds, std::chrono::seconds;
    auto ns = [](const timespec& t) { return seconds(t.tv_sec) + nanoseconds(t.tv_nsec); };
    const nanoseconds since_boot = ns(st.st_mtim) - (ns(real) - ns(boot));
    const long hz = ::sysconf(_SC_CLK_TCK);
    if (since_boot.count() < 0 || hz <= 0) return std::nullopt;
    return static_cast<std::uint64_t>(since_boot.count()) / (1'000'000'000 / static_cast<std::uint64_t>(hz));
}

} // namespace

std::string format_mark(const ServerMark& mark) { return fmt::format("{} {}", mark.pidns, mark.start_ticks); }

std::optional<ServerMark> parse_mark(std::string_view text) {
    const std::size_t space = text.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    auto pidns = whole_number(text.substr(0, space));
    auto start = whole_number(text.substr(space + 1));
    if (!pidns || !start) return std::nullopt;
    return ServerMark{*pidns, *start};
}

std::optional<pid_t> server_tree_pid(std::string_view name) {
    constexpr std::string_view prefix = "nsfork-";
    if (!name.starts_with(prefix) || name.size() > prefix.size() + 10) return std::nullopt;
    auto pid = whole_number(name.substr(prefix.size()));
    if (!pid || *pid == 0 || *pid > INT_MAX || name[prefix.size()] == '0') return std::nullopt;
    return static_cast<pid_t>(*pid);
}

std::optional<std::uint64_t> parse_start_ticks(std::string_view stat) {
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so count from the last ')'.
    const std::size_t paren = stat.rfind(')');
    if (paren == std::string_view::npos) return std::nullopt;
    std::istringstream fields{std::string(stat.substr(paren + 1))};
    std::string field;
    for (int i = 3; i <= 22 && fields >> field; ++i) {
        if (i == 3 && (field == "Z" || field == "X")) return std::nullopt;
        if (i == 22) return whole_number(field);
    }
    return std::nullopt;
}

TreeVerdict judge_tree(const TreeSeen& tree, std::uint64_t own_pidns, const ProcessStart& start_of) {
    if (tree.mark && tree.mark->pidns != own_pidns) return TreeVerdict::foreign;
    const std::optional<std::uint64_t> start = start_of(tree.pid);
    if (!start) return TreeVerdict::dead;
    if (tree.mark) return *start == tree.mark->start_ticks ? TreeVerdict::live : TreeVerdict::dead;
    // A server makes its tree after it started: a process that started later is another one.
    if (tree.birth_ticks && *start > *tree.birth_ticks + kClockSlackTicks) return TreeVerdict::dead;
    return TreeVerdict::live;
}

void mark_server_tree(const std::string& path) {
    const auto start = process_start(0);
    const std::uint64_t pidns = procfs::pid_namespace_inode(0);
    const std::string mark = start && pidns ? format_mark({pidns, *start}) : std::string();
    if (mark.empty() || ::setxattr(path.c_str(), kServerMarkXattr, mark.data(), mark.size(), 0) < 0)
        spdlog::warn("cannot mark cgroup {} as this server's ({}): a later server will judge it by its time",
                     path, mark.empty() ? "cannot read /proc/self" : std::strerror(errno));
}

void remove_dead_server_trees(const std::string& parent) {
    if (!proc_is_ours()) {
        spdlog::debug("/proc is not of our pid namespace: the cgroup trees of dead servers are left");
        return;
    }
    const std::uint64_t own_pidns = procfs::pid_namespace_inode(0);
    struct Dead {
        pid_t pid;
        Cgroup tree;
        bool populated;
    };
    std::vector<Dead> dead;
    for (const std::string& name : sub_cgroup_names(parent)) {
        const auto pid = server_tree_pid(name);
        if (!pid) continue;
        const std::string path = parent + "/" + name;
        if (judge_tree({*pid, read_mark(path), birth_ticks(path)}, own_pidns, process_start) != TreeVerdict::dead)
            continue;
        auto tree = Cgroup::take(path);
        if (!tree) {
            if (tree.error().sys_errno != ENOENT) // another starting server was quicker
                spdlog::warn("cannot remove the cgroup tree of dead server {}: {}", *pid, tree.error().message);
            continue;
        }
        const auto busy = tree->populated();
        const bool populated = busy && *busy;
        (void)tree->kill(); // all of them first: their processes die in parallel
        dead.push_back({*pid, std::move(*tree), populated});
    }
    const auto deadline = std::chrono::steady_clock::now() + Cgroup::kDestroyTimeout;
    for (Dead& d : dead) {
        const auto left = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       deadline - std::chrono::steady_clock::now()),
                                   std::chrono::milliseconds(0));
        if (auto gone = d.tree.destroy(left))
            spdlog::info("removed the cgroup tree of dead server {}: {}{}", d.pid, d.tree.path(),
                         d.populated ? " (its processes killed)" : "");
        else if (gone.error().sys_errno != ENOENT)
            spdlog::warn("cannot remove the cgroup tree of dead server {}: {}", d.pid, gone.error().message);
        (void)d.tree.release(); // failed: not waited for again on destruction
    }
}

} // namespace nsfork
