#include "oci/options.hpp"

#include "cli/options.hpp" // parse_signal: the same signal names as `nsfork kill`

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
                if (!(o.signal = cli::parse_signal(signal))) return "unknown signal \"" + signal + "\"";
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

    auto* create_app = add_verb(top, "create", "create a container; its process waits for start");
    add_create_flags(create_app, create);
    auto* run_app = add_verb(top, "run", "create and start a container, wait for it and delete it");
    add_create_flags(run_app, run.create);
    run_app->add_flag("-d,--detach", run.detach, "return once it started");
    auto* delete_app = add_verb(top, "delete", "delete a container and everything it holds");
    delete_app->add_flag("-f,--force", del.force, "kill it first if it still runs");
    add_id(delete_app, del.id);
    auto* features_app = add_verb(top, "features", "print what this runtime supports (JSON)");

    const Table tables[] = {
        {create_app},
        {run_app},
        add_id_verb(top, start, "start", "start a created container's process"),
        add_id_verb(top, state, "state", "print a container's state (JSON)"),
        add_kill(top, kill, signal),
        {delete_app},
        add_exec(top, exec),
        add_ps(top, ps, ps_format),
        add_id_verb(top, pause, "pause", "freeze every process of the container"),
        add_id_verb(top, resume, "resume", "thaw a paused container"),
        {features_app},
    };

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

    for (const Table& t : tables) {
        if (!t.app->parsed()) continue;
        if (auto message = t.finish()) return usage_error(t.app->get_name() + ": " + *message);
        const std::string& verb = t.app->get_name();
        if (verb == "create") line.verb = std::move(create);
        else if (verb == "run") line.verb = std::move(run);
        else if (verb == "start") line.verb = std::move(start);
        else if (verb == "state") line.verb = std::move(state);
        else if (verb == "kill") line.verb = std::move(kill);
        else if (verb == "delete") line.verb = std::move(del);
        else if (verb == "exec") line.verb = std::move(exec);
        else if (verb == "ps") line.verb = std::move(ps);
        else if (verb == "pause") line.verb = std::move(pause);
        else if (verb == "resume") line.verb = std::move(resume);
        else line.verb = FeaturesOptions{};
    }
    return line;
}

} // namespace nsfork::oci
