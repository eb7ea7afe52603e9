// The command line's option tables, one per verb, and what they parse into. Pure: nothing here
// touches a server, so the unit tests (cli/options_test.cpp) run it without root.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace nsfork::cli {

struct RunOptions {
    std::string socket, id, parent, cwd, join_pidns;
    std::vector<std::string> env;      // K=V entries, in order
    std::vector<std::string> unsetenv; // names removed from the inherited environment
    bool clear_env = false, detach = false, json = false, share_pidns = false;
    bool new_session = false, tty = false, kill_group = false, die_with_parent = false;
    bool map_current_user = false;
    std::optional<std::uint32_t> pid_max;
    unsigned preserve_fds = 0;          // our fds 3..3+N-1 become the command's
    std::optional<std::string> user;    // UID[:GID] or NAME[:GROUP], resolved by cli/users.hpp
    std::optional<std::string> groups;  // comma-separated names or numbers; "" is no group
    std::vector<std::string> command;   // CMD [ARG...]
};

struct ServeOptions {
    std::string socket; // empty: the socket a service manager passes (socket activation)
    std::string cgroup_root, log_level = "info";
    std::optional<std::string> isolation; // "" is a valid list: no isolator
    bool disallow_sharing = false, map_current_user = false, no_warm_runtimes = false;
    std::optional<std::uint32_t> warm_pool;
    std::optional<std::uint64_t> max_request_bytes;
};

struct ListOptions {
    std::string socket;
    bool json = false;
};

struct StatusOptions {
    std::string socket;
    bool json = false;
};

struct WaitOptions {
    std::string socket, id;
};

struct KillOptions {
    std::string socket, id;
    int signal = 15; // SIGTERM
    bool all = false; // every process of the container, not only its init
};

struct DestroyOptions {
    std::string socket, id;
    bool json = false;
};

using Verb = std::variant<RunOptions, ServeOptions, ListOptions, StatusOptions, WaitOptions, KillOptions,
                          DestroyOptions>;

// What a command line asks for: a verb to carry out, or only text to print (help, version, a
// usage error) and the exit code to leave with.
struct CommandLine {
    std::optional<Verb> verb;
    std::string out, err; // printed as they are, before anything else happens
    int exit_code = 0;
};

// Parses argv (argv[0] is the program) against the verb's own option table: an option of
// another verb is an error naming it. Usage errors exit NSFORK_EXIT_FAILED (125).
CommandLine parse_command_line(const std::vector<std::string>& argv);

// The environment a container gets: `inherited` (unless --clear-env: a default PATH only)
// without the --unsetenv names, then the --env entries on top, each replacing an entry of the
// same name (as `env -u NAME K=V` does: an --env entry is never unset).
std::vector<std::string> container_env(const RunOptions& o, const std::vector<std::string>& inherited);

} // namespace nsfork::cli
