#include "cli/options.hpp"

#include "base/exit_codes.h"
#include "base/signal_names.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring> // sigabbrev_np
#include <functional>

#ifndef NSFORK_VERSION
#error "NSFORK_VERSION comes from project(nsfork VERSION ...)"
#endif

namespace nsfork::cli {

namespace {

// A decimal number within [min, max] ("-1" and "12x" are not), or nothing.
template <class T>
std::optional<T> number_in(const std::string& text, unsigned long long min, unsigned long long max) {
    if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
    if (*end || errno == ERANGE || n < min || n > max) return std::nullopt;
    return static_cast<T>(n);
}

// The most fds --preserve-fds passes on (the kernel takes at most 253 in one datagram).
constexpr unsigned kMaxPreservedFds = 253;

// UID[:GID] or NAME[:GROUP]: one or two non-empty parts (names are resolved later, by run).
bool valid_user_spec(const std::string& spec) {
    const auto colon = spec.find(':');
    if (colon == std::string::npos) return !spec.empty();
    return colon > 0 && colon + 1 < spec.size() && spec.find(':', colon + 1) == std::string::npos;
}

// A usage error: one line naming the verb, and where to read its usage.
CommandLine usage_error(const std::string& verb, const std::string& message) {
    const std::string where = verb.empty() ? "nsfork" : "nsfork " + verb;
    return {std::nullopt, "", "nsfork: " + (verb.empty() ? "" : verb + ": ") + message + " (see " + where + " --help)\n",
            NSFORK_EXIT_FAILED};
}

// Each add_* fills one verb's option table and says how to finish its options after parsing
// (the checks CLI11 cannot express with the messages nsfork has always given).
struct Table {
    CLI::App* app;
    std::function<std::optional<std::string>()> finish; // an error message, or nothing
};

// --socket PATH. When it is required, finish() says so: a CLI11 `required()` is checked before
// unknown options, and `nsfork list --detach` would then complain of the socket, not of --detach.
void add_socket(CLI::App* app, std::string& socket) {
    app->add_option("--socket", socket, "the server's socket")->type_name("PATH");
}

// The error of a verb that talks to a server and was given none.
std::optional<std::string> socket_required(const std::string& socket) {
    if (socket.empty()) return "--socket PATH is required";
    return std::nullopt;
}

Table add_run(CLI::App& top, RunOptions& o, std::string& pid_max, std::string& preserve_fds) {
    auto* app = top.add_subcommand("run", "launch a command in a new pid namespace and wait for it");
    add_socket(app, o.socket);
    app->add_option("--id", o.id, "the container's id (default: one nsfork picks)")->type_name("ID");
    app->add_option("--parent", o.parent, "nest the container in this one (needs --socket)")->type_name("ID");
    app->add_flag("--share-pid-namespace", o.share_pidns, "share the parent's (or the caller's) pid namespace");
    app->add_option("--join-pidns", o.join_pidns, "launch into this pid namespace (/proc/PID/ns/pid)")->type_name("PATH");
    // One K=V per --env: a vector would otherwise swallow the command that follows it.
    app->add_option("--env", o.env, "set K=V in the container's environment (repeatable)")
        ->type_name("K=V")
        ->allow_extra_args(false);
    app->add_option("--unsetenv", o.unsetenv, "remove NAME from the inherited environment (repeatable)")
        ->type_name("NAME")
        ->allow_extra_args(false);
    app->add_flag("--clear-env", o.clear_env, "start from a default PATH only, not this environment");
    app->add_option("--cwd", o.cwd, "working directory (default: the caller's)")->type_name("DIR");
    app->add_option("--user", o.user, "run the command as this user (and group)")->type_name("UID[:GID]");
    app->add_option("--groups", o.groups, "its supplementary groups (default: the user's)")->type_name("LIST");
    app->add_flag("-t,--tty", o.tty, "give the command a terminal of its own, relayed to ours");
    app->add_flag("--new-session", o.new_session, "a session of its own, not the caller's (no /dev/tty)");
    app->add_flag("--kill-group", o.kill_group, "signals forwarded reach the command's whole process group");
    app->add_flag("--die-with-parent", o.die_with_parent, "destroy the container when our parent dies");
    app->add_option("--preserve-fds", preserve_fds, "pass our fds 3..3+N-1 on as the command's")->type_name("N");
    app->add_flag("--map-current-user", o.map_current_user,
                  "rootless: map our user to itself inside, not to root");
    app->add_flag("--detach", o.detach, "print the id and return; stdio is /dev/null (needs --socket)");
    app->add_flag("--json", o.json, "print the container as JSON");
    app->add_option("--pid-max", pid_max, "pid_max of the container's own namespace (Linux 6.14+)")->type_name("N");
    app->add_option("CMD", o.command, "the command and its arguments, after --")->type_name("");
    // The command's own options are never ours: parsing stops at the first positional argument.
    app->positionals_at_end();
    app->footer("Exit code: the command's own (128+N when killed by signal N); 125 when nsfork failed,\n"
                "126 when the command cannot be executed, 127 when it was not found.");
    return {app, [&o, &pid_max, &preserve_fds]() -> std::optional<std::string> {
                if (o.command.empty()) return "no command given (nsfork run [OPTIONS] -- CMD [ARG...])";
                for (const std::string& kv : o.env)
                    if (kv.find('=') == std::string::npos || kv[0] == '=') return "--env takes K=V, not '" + kv + "'";
                for (const std::string& name : o.unsetenv)
                    if (name.empty() || name.find('=') != std::string::npos)
                        return "--unsetenv takes a variable's name, not '" + name + "'";
                if (o.detach && o.socket.empty()) return "--detach needs --socket (a private container ends with this command)";
                if (!o.parent.empty() && o.socket.empty())
                    return "--parent needs --socket (a container of this command's own has no siblings)";
                if (o.map_current_user && !o.socket.empty())
                    return "--map-current-user applies to a container of this command's own: with --socket, "
                           "the server's user namespace decides (nsfork serve --map-current-user)";
                if (o.detach && (o.tty || o.die_with_parent))
                    return std::string(o.tty ? "--tty" : "--die-with-parent") + " needs a run that waits, not --detach";
                if (o.user && !valid_user_spec(*o.user)) return "--user takes UID[:GID] or NAME[:GROUP], not '" + *o.user + "'";
                if (!pid_max.empty() && !(o.pid_max = number_in<std::uint32_t>(pid_max, 1, 4194304)))
                    return "--pid-max takes a number from 1 to 4194304";
                if (!preserve_fds.empty()) {
                    auto n = number_in<unsigned>(preserve_fds, 0, kMaxPreservedFds);
                    if (!n) return "--preserve-fds takes a number of fds from 0 to " + std::to_string(kMaxPreservedFds);
                    o.preserve_fds = *n;
                }
                return std::nullopt;
            }};
}

Table add_serve(CLI::App& top, ServeOptions& o, std::string& warm_pool, std::string& max_request) {
    auto* app = top.add_subcommand("serve", "run a server on a socket");
    app->add_option("--socket", o.socket,
                    "listen here; optional when a service manager passes the socket (LISTEN_FDS), which it "
                    "must then name")
        ->type_name("PATH");
    app->add_option("--isolation", o.isolation, "isolators (default: filesystem/linux,namespaces/pid)")->type_name("LIST");
    app->add_flag("--disallow-sharing-agent-pid-namespace", o.disallow_sharing,
                  "refuse every launch into the server's own pid namespace");
    app->add_flag("--map-current-user", o.map_current_user,
                  "rootless: map our user to itself inside, not to root");
    app->add_option("--cgroup-root", o.cgroup_root, "the cgroup v2 directory containers live under")->type_name("DIR");
    app->add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical or off")
        ->type_name("LEVEL")
        ->capture_default_str();
    app->add_option("--max-request-bytes", max_request, "the largest request accepted (default 64 MiB)")->type_name("N");
    app->add_option("--warm-pool", warm_pool, "namespaces kept ready (default 2, 0: none)")->type_name("N");
    app->add_flag("--no-warm-runtimes", o.no_warm_runtimes,
                  "keep no nsfork-oci runtimes started for its front (at the socket's path + .oci)");
    return {app, [&o, &warm_pool, &max_request]() -> std::optional<std::string> {
                // A service manager may pass the listening socket instead (socket activation,
                // server/activation.hpp): serve() checks that it did, and to us.
                if (!std::getenv("LISTEN_FDS"))
                    if (auto missing = socket_required(o.socket)) return missing;
                if (!warm_pool.empty() && !(o.warm_pool = number_in<std::uint32_t>(warm_pool, 0, 1024)))
                    return "--warm-pool takes a number of namespaces from 0 to 1024";
                if (!max_request.empty() &&
                    !(o.max_request_bytes = number_in<std::uint64_t>(max_request, 1, UINT64_MAX)))
                    return "--max-request-bytes takes a positive number of bytes";
                return std::nullopt;
            }};
}

Table add_kill(CLI::App& top, KillOptions& o, std::string& signal) {
    auto* app = top.add_subcommand("kill", "send a signal to a container's init");
    add_socket(app, o.socket);
    app->add_option("--signal", signal, "a name (TERM, SIGTERM) or a number")->type_name("SIG")->capture_default_str();
    app->add_flag("--all", o.all, "signal every process of the container, not only its init");
    app->add_option("ID", o.id, "the container")->required();
    return {app, [&o, &signal]() -> std::optional<std::string> {
                if (auto missing = socket_required(o.socket)) return missing;
                if (!(o.signal = parse_signal(signal))) return "unknown signal '" + signal + "'";
                return std::nullopt;
            }};
}

// list, status, wait and destroy: a socket, maybe --json, maybe the container's ID.
template <class Options>
Table add_simple(CLI::App& top, Options& o, const char* verb, const char* description) {
    auto* app = top.add_subcommand(verb, description);
    add_socket(app, o.socket);
    if constexpr (requires { o.json; }) app->add_flag("--json", o.json, "print JSON");
    if constexpr (requires { o.id; }) app->add_option("ID", o.id, "the container")->required();
    return {app, [&o] { return socket_required(o.socket); }};
}

// A command line that asks for a verb.
CommandLine verb_line(Verb v) {
    CommandLine line;
    line.verb = std::move(v);
    return line;
}

// What the verbs' options are parsed into, and the text some are parsed from first.
struct Parsed {
    RunOptions run;
    ServeOptions serve;
    ListOptions list;
    StatusOptions status;
    WaitOptions wait;
    KillOptions kill;
    DestroyOptions destroy;
    std::string pid_max, preserve_fds, warm_pool, max_request, signal = "TERM";
};

// A verb: its name, how its option table is added, and what it is once parsed.
struct VerbDef {
    const char* name;
    Table (*add)(CLI::App& top, Parsed& p);
    Verb (*take)(Parsed& p);
};

// In the order help lists them.
constexpr VerbDef kVerbs[] = {
    {"serve", [](CLI::App& top, Parsed& p) { return add_serve(top, p.serve, p.warm_pool, p.max_request); },
     [](Parsed& p) -> Verb { return std::move(p.serve); }},
    {"run", [](CLI::App& top, Parsed& p) { return add_run(top, p.run, p.pid_max, p.preserve_fds); },
     [](Parsed& p) -> Verb { return std::move(p.run); }},
    {"list", [](CLI::App& top, Parsed& p) { return add_simple(top, p.list, "list", "list the server's containers"); },
     [](Parsed& p) -> Verb { return std::move(p.list); }},
    {"status", [](CLI::App& top, Parsed& p) { return add_simple(top, p.status, "status", "the server's pid and warm pool"); },
     [](Parsed& p) -> Verb { return std::move(p.status); }},
    {"wait",
     [](CLI::App& top, Parsed& p) {
         return add_simple(top, p.wait, "wait", "wait for a container's end; exit with its status");
     },
     [](Parsed& p) -> Verb { return std::move(p.wait); }},
    {"kill", [](CLI::App& top, Parsed& p) { return add_kill(top, p.kill, p.signal); },
     [](Parsed& p) -> Verb { return std::move(p.kill); }},
    {"destroy",
     [](CLI::App& top, Parsed& p) {
         return add_simple(top, p.destroy, "destroy", "kill what is left of a container and forget it");
     },
     [](Parsed& p) -> Verb { return std::move(p.destroy); }},
};

} // namespace

CommandLine parse_command_line(const std::vector<std::string>& argv) {
    CLI::App top("nsfork: a fork server for Linux pid namespaces", "nsfork");
    top.set_version_flag("--version", "nsfork " NSFORK_VERSION);
    top.require_subcommand(1);
    // As getopt did: an option given twice takes its last value (--env, repeatable, keeps all).
    top.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

    // The verb is the first word. Only its table is made: making all seven is most of the
    // instructions this program runs before it acts (CLI11 builds each option's names,
    // validators and callbacks). Without one (help, --version, a usage error) all are made.
    const std::string verb = argv.size() > 1 && argv[1].rfind('-', 0) != 0 ? argv[1] : "";
    const VerbDef* named = nullptr;
    for (const VerbDef& each : kVerbs)
        if (verb == each.name) named = &each;
    if (!verb.empty() && !named) return usage_error("", "unknown command '" + verb + "'");
    Parsed parsed;
    std::vector<std::pair<const VerbDef*, Table>> tables;
    for (const VerbDef& each : kVerbs)
        if (!named || named == &each) tables.emplace_back(&each, each.add(top, parsed));
    // Set after the verbs were added, which would otherwise inherit it.
    top.footer("Exit codes: 125 when nsfork failed or was used wrongly; run exits with the command's own\n"
               "status (128+N when killed by signal N), 126 when it cannot be executed, 127 when not found.");

    if (argv.size() < 2) return {std::nullopt, "", top.help(), NSFORK_EXIT_FAILED};
    // CLI11 wants argv in reverse order, without the program name.
    std::vector<std::string> args(argv.rbegin(), argv.rend() - 1);
    try {
        top.parse(args);
    } catch (const CLI::CallForHelp&) {
        return {std::nullopt, top.help(), "", 0}; // help() shows the verb's table when one was named
    } catch (const CLI::CallForAllHelp&) {
        return {std::nullopt, top.help("", CLI::AppFormatMode::All), "", 0};
    } catch (const CLI::CallForVersion& e) {
        return {std::nullopt, std::string(e.what()) + "\n", "", 0};
    } catch (const CLI::ParseError& e) {
        return usage_error(verb, e.what());
    }
    for (const auto& [each, table] : tables) {
        if (!table.app->parsed()) continue;
        if (auto message = table.finish()) return usage_error(verb, *message);
        return verb_line(each->take(parsed));
    }
    return usage_error(verb, "no command given"); // require_subcommand(1) has CLI11 say so first
}

std::vector<std::string> container_env(const RunOptions& o, const std::vector<std::string>& inherited) {
    std::vector<std::string> env;
    if (o.clear_env) env.emplace_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    else env = inherited;
    const auto remove = [&env](const std::string& name_eq) {
        std::erase_if(env, [&](const std::string& e) { return e.rfind(name_eq, 0) == 0; });
    };
    for (const std::string& name : o.unsetenv) remove(name + "=");
    for (const std::string& kv : o.env) {
        remove(kv.substr(0, kv.find('=') + 1));
        env.push_back(kv);
    }
    return env;
}

} // namespace nsfork::cli
