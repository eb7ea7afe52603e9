// The cgroup trees of dead servers. A server removes its nsfork-PID tree when it stops, but one
// that was SIGKILLed (or crashed) leaves it behind, and nothing else ever removes it. A starting
// server looks at the nsfork-PID trees beside its own (and under an operator's root), judges
// which belong to servers that are gone, kills what is left in those and removes them.
//
// Who made a tree: a server marks its own with the xattr user.nsfork.server, "<pid namespace
// inode> <start time>", which names one process for the life of the machine (a pid alone is
// reused). A tree without a mark (made before marks existed) is judged by its directory's
// creation time against the process that has its pid now.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace nsfork {

inline constexpr const char* kServerMarkXattr = "user.nsfork.server";

// Clock ticks (/proc/PID/stat's unit, USER_HZ) of leeway when an unmarked tree's creation
// (wall clock) is compared with a process's start (boot clock): their offset moves when the
// wall clock is slewed.
inline constexpr std::uint64_t kClockSlackTicks = 100;

// A server, as its mark names it.
struct ServerMark {
    std::uint64_t pidns = 0;       // the inode of its pid namespace
    std::uint64_t start_ticks = 0; // its start, clock ticks since boot (/proc/PID/stat field 22)
    bool operator==(const ServerMark&) const = default;
};

std::string format_mark(const ServerMark& mark);
// nullopt when `text` is not a mark.
std::optional<ServerMark> parse_mark(std::string_view text);

// The pid in a server tree's name ("nsfork-1234"); nullopt for any other name (a test's
// "nsfork-hardening-1", an operator's directory).
std::optional<pid_t> server_tree_pid(std::string_view name);

// The start time (field 22) of a /proc/PID/stat text; nullopt when unparsable or the process is
// a zombie (dead: no server).
std::optional<std::uint64_t> parse_start_ticks(std::string_view stat);

// What a starting server sees of a tree.
struct TreeSeen {
    pid_t pid = 0;                             // from its name
    std::optional<ServerMark> mark;            // none: made before marks
    std::optional<std::uint64_t> birth_ticks; // its creation, clock ticks since boot (if known)
};

enum class TreeVerdict : std::uint8_t {
    live,    // its server runs, or may: left alone
    foreign, // marked by a server of another pid namespace, whose pids we cannot look up
    dead,    // no process has its pid, or the one that has it is another (the pid was reused)
};

// The start of the live process with this pid in our pid namespace; nullopt: none (or a zombie).
using ProcessStart = std::function<std::optional<std::uint64_t>(pid_t)>;

// Whether `tree`'s server is dead. Pure: the process table comes through `start_of`.
TreeVerdict judge_tree(const TreeSeen& tree, std::uint64_t own_pidns, const ProcessStart& start_of);

// Marks the calling server's own tree (a failure is logged: the tree is then judged by its time).
void mark_server_tree(const std::string& path);

// Kills what is left in the trees of dead servers among `parent`'s nsfork-PID subdirectories
// and removes them, depth-first, each said at info level. Waits at most Cgroup::kDestroyTimeout
// in all for killed processes to leave. Call before creating our own tree: a dead server may
// have had our pid.
void remove_dead_server_trees(const std::string& parent);

} // namespace nsfork
