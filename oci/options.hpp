// nsfork-oci's command line: runc's, as the cluster engines call it (ENGINES.md), one option
// table per verb. Pure: nothing here touches a container, so the unit tests run it without root.
#pragma once

#include "oci/defaults.h"

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace nsfork::oci {


enum class LogFormat { text, json };

// The flags before the verb.
struct GlobalOptions {
    std::string root = kDefaultRoot;
    std::string log;                     // "": errors go to stderr only
    LogFormat log_format = LogFormat::text;
    std::string server_socket = kDefaultServerSocket;
    bool systemd_cgroup = false;         // cgroupsPath is "slice:prefix:name"
    bool debug = false;
};

struct CreateOptions {
    std::string id, bundle = ".", pid_file, console_socket;
    unsigned preserve_fds = 0;           // our fds 3..3+N-1 become the container's
    bool no_pivot = false, no_new_keyring = false;
};

struct RunOptions {
    CreateOptions create;
    bool detach = false;
};

struct StartOptions { std::string id; };
struct StateOptions { std::string id; };
struct PauseOptions { std::string id; };
struct ResumeOptions { std::string id; };
struct FeaturesOptions {};

struct KillOptions {
    std::string id;
    int signal = 15;                     // SIGTERM
    bool all = false;                    // every process of the container, through the server
};

struct DeleteOptions {
    std::string id;
    bool force = false;
};

struct ExecOptions {
    std::string id, process_file, pid_file, console_socket, cwd;
    std::vector<std::string> env;        // K=V, added to the container's process's environment
    std::optional<std::string> user;     // UID[:GID]
    std::vector<std::string> args;       // without --process: the command and its arguments
    unsigned preserve_fds = 0;
    bool detach = false, tty = false;
};

struct PsOptions {
    std::string id;
    bool json = false;                   // --format json; table otherwise
};

using Verb = std::variant<CreateOptions, RunOptions, StartOptions, StateOptions, KillOptions, DeleteOptions,
                          ExecOptions, PsOptions, PauseOptions, ResumeOptions, FeaturesOptions>;

// What a command line asks for: a verb with the global flags, or only text to print (help,
// version, a usage error) and the exit code to leave with.
struct CommandLine {
    GlobalOptions global;
    std::optional<Verb> verb;
    std::string out, err;
    int exit_code = 0;
};

// Parses argv (argv[0] is the program). `env_socket` is $NSFORK_SOCKET (nullptr: unset), which
// --nsfork-socket overrides. Usage errors exit 1 as runc's do.
CommandLine parse_command_line(const std::vector<std::string>& argv, const char* env_socket);

// What --version prints: nsfork-oci's version, the runtime-spec version, nsfork's.
std::string version_text();

// The runtime-spec version nsfork-oci implements (state's ociVersion).
inline constexpr const char* kRuntimeSpecVersion = "1.1.0";

} // namespace nsfork::oci
