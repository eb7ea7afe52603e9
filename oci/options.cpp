#include "oci/options.hpp"

#include "base/signal_names.hpp" // the same signal names as `nsfork kill`

#include <CLI/CLI.hpp>

#include <functional>

#ifndef NSFORK_VERSION
#error "NSFORK_VERSION comes from project(nsfork VERSION ...)"
#endif

namespace nsfork::oci {

namespace {

// The most fds --preserve-fds passes on: what one SCM_RIGHTS datagram carries.
constexpr unsigned kMaxPreservedFds = 253;

// One verb's option table and how to finish its options after parsing (the checks CLI11 cannot
// express): an error message, or nothing.
struct Table {
    CLI::App* app;
    std::function<std::optional<std::string>()> finish = [] { return std::optional<std::string>(); };
};

CLI::App* add_verb(CLI::App& top, const char* name, const char* description) {
    return top.add_subcommand(name, description);
}

void add_id(CLI::App* app, std::string& id) {
    app->add_option("ID", id, "the container's id")->required();
}

void add_preserve_fds(CLI::App* app, unsigned& n) {
    app->add_option("--preserve-fds", n, "pass our fds 3..3+N-1 on to the container's process")
        ->type_name("N")
        ->check(CLI::Range(0u, kMaxPreservedFds));
}

// create's flags, shared with run.
void add_create_flags(CLI::App* app, CreateOptions& o) {
    app->add_option("-b,--bundle", o.bundle, "the bundle's directory (default: the current one)")->type_name("DIR");
    app->add_option("--pid-file", o.pid_file, "write the container process's pid here")->type_name("FILE");
    app->add_option("--console-socket", o.console_socket,
                    "a unix socket that receives the master of the container's terminal")
        ->type_name("PATH");
    add_preserve_fds(app, o.preserve_fds);
    app->add_flag("--no-pivot", o.no_pivot, "move the root filesystem with MS_MOVE + chroot, not pivot_root");
    app->add_flag("--no-new-keyring", o.no_new_keyring, "keep the caller's session keyring");
    add_id(app, o.id);
}

Table add_kill(CLI::App& top, KillOptions& o, std::string& signal) {
    auto* app = add_verb(top, "kill", "send a signal (default SIGTERM) to the container's process");
    app->add_flag("-a,--all", o.all, "to every process of the container");
    add_id(app, o.id);
    app->add_option("SIGNAL", signal, "a name (TERM, SIGTERM) or a number");
    return {app, [&o, &signal]() -> std::optional<std::string> {
                if (!(o.signal = parse_signal(signal))) return "unknown signal \"" + signal + "\"";
                return std::nullopt;
            }};
}

Table add_exec(CLI::App& top, ExecOptions& o) {
    auto* app = add_verb(top, "exec", "run another process in a running container");
    app->add_option("-p,--process", o.process_file, "a runtime-spec process object (JSON) to run")->type_name("FILE");
    app->add_option("--pid-file", o.pid_file, "write the process's pid here")->type_name("FILE");
    app->add_option("--console-socket", o.console_socket,
                    "a unix socket that receives the master of the process's terminal")
        ->type_name("PATH");
    app->add_option("--cwd", o.cwd, "its working directory inside the container")->type_name("DIR");
    app->add_option("-e,--env", o.env, "add K=V to its environment (repeatable)")->type_name("K=V")->allow_extra_args(false);
    app->add_option("-u,--user", o.user, "run as UID[:GID]")->type_name("UID[:GID]");
    app->add_flag("-t,--tty", o.tty, "give it a terminal (needs --console-socket)");
    app->add_flag("-d,--detach", o.detach, "return once it started");
    add_preserve_fds(app, o.preserve_fds);
    add_id(app, o.id);
    app->add_option("COMMAND", o.args, "the command and its arguments (without --process)");
    // Everything after the id is the command's, its options included (runc exec ID ls -l).
    app->positionals_at_end();
    return {app, [&o]() -> std::optional<std::string> {
                if (o.process_file.empty() && o.args.empty()) return "exec needs a command or --process FILE";
                if (!o.process_file.empty() && !o.args.empty()) return "exec takes a command or --process FILE, not both";
                for (const std::string& kv : o.env)
                    if (kv.find('=') == std::string::npos || kv[0] == '=') return "--env takes K=V, not \"" + kv + "\"";
                if (o.tty && o.console_socket.empty()) return "--tty needs --console-socket";
                return std::nullopt;
            }};
}

Table add_ps(CLI::App& top, PsOptions& o, std::string& format) {
    auto* app = add_verb(top, "ps", "list the container's processes");
    app->add_option("-f,--format", format, "table or json")->type_name("FORMAT");
    add_id(app, o.id);
    return {app, [&o, &format]() -> std::optional<std::string> {
                if (format != "table" && format != "json") return "invalid format option \"" + format + "\"";
                o.json = format == "json";
                return std::nullopt;
            }};
}

// A verb whose only argument is the container's id.
template <class Options>
Table add_id_verb(CLI::App& top, Options& o, const char* name, const char* description) {
    auto* app = add_verb(top, name, description);
    add_id(app, o.id);
    return {app};
}

// What the verbs' options are parsed into.
struct Parsed {
    CreateOptions create;
    RunOptions run;
    StartOptions start;
    StateOptions state;
    KillOptions kill;
    DeleteOptions del;
    ExecOptions exec;
    PsOptions ps;
    PauseOptions pause;
    ResumeOptions resume;
    std::string signal = "SIGTERM", ps_format = "table";
};

// A verb: its name, how its option table is added, and what it is once parsed.
struct VerbDef {
    const char* name;
    Table (*add)(CLI::App& top, Parsed& p);
    Verb (*take)(Parsed& p);
};

// In the order help lists them.
constexpr VerbDef kVerbs[] = {
    {"create",
     [](CLI::App& top, Parsed& p) -> Table {
         auto* app = add_verb(top, "create", "create a container; its process waits for start");
         add_create_flags(app, p.create);
         return {app};
     },
     [](Parsed& p) -> Verb { return std::move(p.create); }},
    {"run",
     [](CLI::App& top, Parsed& p) -> Table {
         auto* app = add_verb(top, "run", "create and start a container, wait for it and delete it");
         add_create_flags(app, p.run.create);
         app->add_flag("-d,--detach", p.run.detach, "return once it started");
         return {app};
     },
     [](Parsed& p) -> Verb { return std::move(p.run); }},
    {"delete",
     [](CLI::App& top, Parsed& p) -> Table {
         auto* app = add_verb(top, "delete", "delete a container and everything it holds");
         app->add_flag("-f,--force", p.del.force, "kill it first if it still runs");
         add_id(app, p.del.id);
         return {app};
     },
     [](Parsed& p) -> Verb { return std::move(p.del); }},
    {"features",
     [](CLI::App& top, Parsed&) -> Table { return {add_verb(top, "features", "print what this runtime supports (JSON)")}; },
     [](Parsed&) -> Verb { return FeaturesOptions{}; }},
    {"start",
     [](CLI::App& top, Parsed& p) { return add_id_verb(top, p.start, "start", "start a created container's process"); },
     [](Parsed& p) -> Verb { return std::move(p.start); }},
    {"state",
     [](CLI::App& top, Parsed& p) { return add_id_verb(top, p.state, "state", "print a container's state (JSON)"); },
     [](Parsed& p) -> Verb { return std::move(p.state); }},
    {"kill", [](CLI::App& top, Parsed& p) { return add_kill(top, p.kill, p.signal); },
     [](Parsed& p) -> Verb { return std::move(p.kill); }},
    {"exec", [](CLI::App& top, Parsed& p) { return add_exec(top, p.exec); },
     [](Parsed& p) -> Verb { return std::move(p.exec); }},
    {"ps", [](CLI::App& top, Parsed& p) { return add_ps(top, p.ps, p.ps_format); },
     [](Parsed& p) -> Verb { return std::move(p.ps); }},
    {"pause",
     [](CLI::App& top, Parsed& p) { return add_id_verb(top, p.pause, "pause", "freeze every process of the container"); },
     [](Parsed& p) -> Verb { return std::move(p.pause); }},
    {"resume", [](CLI::App& top, Parsed& p) { return add_id_verb(top, p.resume, "resume", "thaw a paused container"); },
     [](Parsed& p) -> Verb { return std::move(p.resume); }},
};

// The verb argv names, when that is plain before parsing: its first word that is neither a
// global flag nor a global option's value. Only that verb's table is then made: making all
// eleven was two thirds of the instructions this process executes in a `run` (CLI11 builds
// each option's names, validators and callbacks). nullptr when the line asks for help, or has
// first a word or flag `top` does not know, or names no verb: then every verb is added, so that
// help lists them all and CLI11's errors are the usual ones.
const VerbDef* named_verb(const CLI::App& top, const std::vector<std::string>& argv) {
    for (std::size_t i = 1; i < argv.size(); ++i) {
        const std::string& word = argv[i];
        if (word.size() < 2 || word[0] != '-') {
            for (const VerbDef& verb : kVerbs)
                if (word == verb.name) return &verb;
            return nullptr;
        }
        const std::size_t eq = word.find('=');
        const CLI::Option* option = top.get_option_no_throw(word.substr(0, eq));
        if (!option || option == top.get_help_ptr()) return nullptr;
        if (eq == std::string::npos && option->get_items_expected_max() > 0) ++i; // its value
    }
    return nullptr;
}

} // namespace

std::string version_text() {
    return std::string("nsfork-oci version ") + NSFORK_VERSION + "\nspec: " + kRuntimeSpecVersion +
           "\nnsfork: " NSFORK_VERSION "\n";
}

CommandLine parse_command_line(const std::vector<std::string>& argv, const char* env_socket) {
    CommandLine line;
    GlobalOptions& g = line.global;
    if (env_socket && *env_socket) g.server_socket = env_socket;

    CLI::App top("nsfork-oci: an OCI runtime (runc's command line) over the node's nsfork server", "nsfork-oci");
    top.set_version_flag("-v,--version", version_text());
    top.require_subcommand(1);
    top.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    std::string log_format = "text";
    top.add_option("--root", g.root, "where container state is kept")->type_name("DIR")->capture_default_str();
    top.add_option("--log", g.log, "also write errors to this file")->type_name("FILE");
    top.add_option("--log-format", log_format, "text or json")->type_name("FORMAT")->capture_default_str();
    top.add_option("--nsfork-socket", g.server_socket, "the node's nsfork server (env NSFORK_SOCKET)")
        ->type_name("PATH")
        ->capture_default_str();
    top.add_flag("--systemd-cgroup", g.systemd_cgroup, "linux.cgroupsPath is \"slice:prefix:name\"");
    top.add_flag("--debug", g.debug, "log what is done, not only errors");

    Parsed parsed;
    std::vector<std::pair<const VerbDef*, Table>> tables;
    if (const VerbDef* verb = named_verb(top, argv)) {
        tables.emplace_back(verb, verb->add(top, parsed));
    } else {
        for (const VerbDef& each : kVerbs) tables.emplace_back(&each, each.add(top, parsed));
    }

    auto usage_error = [&line](const std::string& message) {
        line.err = message + "\n";
        line.exit_code = 1;
        return line;
    };
    if (argv.size() < 2) {
        line.out = top.help();
        return line;
    }
    std::vector<std::string> args(argv.rbegin(), argv.rend() - 1); // CLI11 wants them reversed
    try {
        top.parse(args);
    } catch (const CLI::CallForHelp&) {
        line.out = top.help();
        return line;
    } catch (const CLI::CallForAllHelp&) {
        line.out = top.help("", CLI::AppFormatMode::All);
        return line;
    } catch (const CLI::CallForVersion& e) {
        line.out = e.what();
        return line;
    } catch (const CLI::ParseError& e) {
        return usage_error(e.what());
    }
    if (log_format == "json") g.log_format = LogFormat::json;
    else if (log_format != "text") return usage_error("invalid log format \"" + log_format + "\" (text or json)");

    for (const auto& [verb, table] : tables) {
        if (!table.app->parsed()) continue;
        if (auto message = table.finish()) return usage_error(table.app->get_name() + ": " + *message);
        line.verb = verb->take(parsed);
    }
    return line;
}

} // namespace nsfork::oci
