#include "cli/options.hpp"

#include <catch2/catch.hpp>

#include <csignal>

using namespace nsfork::cli;

namespace {

// Parses `nsfork ARGS...`.
CommandLine parse(std::vector<std::string> args) {
    args.insert(args.begin(), "nsfork");
    return parse_command_line(args);
}

// The options of the verb `args` asks for; fails the test if it asked for something else.
template <class Options>
Options parsed_as(std::vector<std::string> args) {
    CommandLine line = parse(std::move(args));
    INFO(line.err);
    REQUIRE(line.verb);
    REQUIRE(std::holds_alternative<Options>(*line.verb));
    return std::get<Options>(*line.verb);
}

// The usage error `nsfork ARGS...` gives; fails the test unless it is one (exit code 125).
std::string error_of(std::vector<std::string> args) {
    CommandLine line = parse(std::move(args));
    CHECK_FALSE(line.verb);
    CHECK(line.exit_code == 125);
    return line.err;
}

} // namespace

TEST_CASE("cli options: an option of another verb is refused, naming it, with exit code 125") {
    for (std::vector<std::string> args : {std::vector<std::string>{"list", "--socket", "s", "--detach"},
                                          {"list", "--detach"},
                                          {"status", "--socket", "s", "--env", "A=b"},
                                          {"kill", "--socket", "s", "--json", "x"},
                                          {"wait", "--socket", "s", "--signal", "TERM", "x"},
                                          {"serve", "--socket", "s", "--detach"},
                                          {"run", "--warm-pool", "1", "--", "true"}}) {
        CommandLine line = parse(args);
        INFO(args[0] << ' ' << args[args.size() - 2]);
        CHECK_FALSE(line.verb);
        CHECK(line.exit_code == 125);
        CHECK(line.err.find("nsfork: " + args[0] + ": ") == 0);
        CHECK(line.err.find("not expected") != std::string::npos);
        CHECK(line.err.find("see nsfork " + args[0] + " --help") != std::string::npos);
    }
    CHECK(parse({"list", "--detach"}).err.find("--detach") != std::string::npos);
}

TEST_CASE("cli options: VERB --help prints that verb's options only and exits 0") {
    CommandLine run = parse({"run", "--help"});
    CHECK_FALSE(run.verb);
    CHECK(run.exit_code == 0);
    CHECK(run.err.empty());
    CHECK(run.out.find("nsfork run") != std::string::npos);
    CHECK(run.out.find("--detach") != std::string::npos);
    CHECK(run.out.find("--warm-pool") == std::string::npos);
    CommandLine list = parse({"list", "--help"});
    CHECK(list.exit_code == 0);
    CHECK(list.out.find("--json") != std::string::npos);
    CHECK(list.out.find("--detach") == std::string::npos);
    CommandLine top = parse({"--help"});
    CHECK(top.exit_code == 0);
    for (const char* verb : {"run", "serve", "list", "status", "wait", "kill", "destroy"})
        CHECK(top.out.find(verb) != std::string::npos);
}

TEST_CASE("cli options: --version, no verb, an unknown verb") {
    CommandLine version = parse({"--version"});
    CHECK(version.exit_code == 0);
    CHECK(version.out == "nsfork " NSFORK_VERSION "\n");
    CommandLine nothing = parse({});
    CHECK(nothing.exit_code == 125);
    CHECK(nothing.out.empty());
    CHECK(nothing.err.find("Usage") != std::string::npos);
    CommandLine unknown = parse({"start", "x"});
    CHECK(unknown.exit_code == 125);
    CHECK(unknown.err == "nsfork: unknown command 'start' (see nsfork --help)\n");
}

TEST_CASE("cli options: run takes everything after -- or the first positional as the command") {
    auto r = parsed_as<RunOptions>({"run", "--id", "a", "--env", "A=1", "--env", "B=2", "--", "sh", "-c", "x", "--id", "b"});
    CHECK(r.id == "a");
    CHECK(r.env == std::vector<std::string>{"A=1", "B=2"});
    CHECK(r.command == std::vector<std::string>{"sh", "-c", "x", "--id", "b"});
    // Without --: the command's own options are still its own, and --env takes one K=V only.
    auto p = parsed_as<RunOptions>({"run", "--env", "A=1", "ps", "-ef", "--json"});
    CHECK(p.env == std::vector<std::string>{"A=1"});
    CHECK(p.command == std::vector<std::string>{"ps", "-ef", "--json"});
    CHECK_FALSE(p.json);
    auto all = parsed_as<RunOptions>({"run", "--socket", "s", "--parent", "p", "--share-pid-namespace",
                                      "--join-pidns", "/proc/1/ns/pid", "--clear-env", "--cwd", "/tmp",
                                      "--detach", "--json", "--pid-max", "100", "--", "true"});
    CHECK(all.socket == "s");
    CHECK(all.parent == "p");
    CHECK(all.share_pidns);
    CHECK(all.join_pidns == "/proc/1/ns/pid");
    CHECK(all.clear_env);
    CHECK(all.cwd == "/tmp");
    CHECK(all.detach);
    CHECK(all.json);
    CHECK(all.pid_max == 100u);
}

TEST_CASE("cli options: run refuses a missing command, --detach without --socket, bad numbers and --env") {
    CHECK(error_of({"run"}).find("no command given") != std::string::npos);
    CHECK(error_of({"run", "--detach", "--", "true"}).find("--detach needs --socket") != std::string::npos);
    for (const char* n : {"0", "-1", "4194305", "12x"})
        CHECK(error_of({"run", "--pid-max", n, "--", "true"}).find("--pid-max takes a number") != std::string::npos);
    CHECK(parsed_as<RunOptions>({"run", "--pid-max", "4194304", "--", "true"}).pid_max == 4194304u);
    CHECK(error_of({"run", "--env", "NOEQUALS", "--", "true"}) ==
          "nsfork: run: --env takes K=V, not 'NOEQUALS' (see nsfork run --help)\n");
    CHECK(error_of({"run", "--env", "=x", "--", "true"}).find("--env takes K=V") != std::string::npos);
}

TEST_CASE("cli options: serve, its numbers, and the empty isolation list") {
    auto s = parsed_as<ServeOptions>({"serve", "--socket", "s", "--isolation", "", "--warm-pool", "0",
                                      "--max-request-bytes", "1024", "--cgroup-root", "/sys/fs/cgroup/x",
                                      "--disallow-sharing-agent-pid-namespace", "--log-level", "warn"});
    CHECK(s.isolation == std::string());
    CHECK(s.warm_pool == 0u);
    CHECK(s.max_request_bytes == 1024u);
    CHECK(s.cgroup_root == "/sys/fs/cgroup/x");
    CHECK(s.disallow_sharing);
    CHECK(s.log_level == "warn");
    auto d = parsed_as<ServeOptions>({"serve", "--socket", "s"});
    CHECK_FALSE(d.isolation);
    CHECK_FALSE(d.warm_pool);
    CHECK(d.log_level == "info");
    CHECK(parse({"serve"}).err == "nsfork: serve: --socket PATH is required (see nsfork serve --help)\n");
    CHECK(parse({"serve", "--socket", "s", "--warm-pool", "1025"}).exit_code == 125);
    CHECK(parse({"serve", "--socket", "s", "--max-request-bytes", "0"}).exit_code == 125);
}

TEST_CASE("cli options: wait, kill and destroy take exactly one ID") {
    CHECK(parsed_as<WaitOptions>({"wait", "--socket", "s", "web"}).id == "web");
    auto k = parsed_as<KillOptions>({"kill", "--socket", "s", "--signal", "USR1", "web"});
    CHECK(k.signal == SIGUSR1);
    CHECK(k.id == "web");
    CHECK(parsed_as<KillOptions>({"kill", "--socket", "s", "web"}).signal == SIGTERM);
    auto d = parsed_as<DestroyOptions>({"destroy", "--socket", "s", "--json", "web"});
    CHECK(d.json);
    CHECK(d.id == "web");
    CHECK(parse({"wait", "--socket", "s"}).exit_code == 125);
    CHECK(parse({"wait", "--socket", "s", "a", "b"}).exit_code == 125);
    CHECK(parse({"kill", "--socket", "s", "--signal", "NOPE", "x"}).err ==
          "nsfork: kill: unknown signal 'NOPE' (see nsfork kill --help)\n");
    CHECK(parse({"list"}).err == "nsfork: list: --socket PATH is required (see nsfork list --help)\n");
}

TEST_CASE("cli options: the container's environment is the caller's with --env on top") {
    RunOptions o;
    o.env = {"B=new", "C=3", "B=newer"};
    CHECK(container_env(o, {"A=1", "B=old", "BB=keep"}) ==
          std::vector<std::string>{"A=1", "BB=keep", "C=3", "B=newer"});
    o.clear_env = true;
    o.env = {"A=b"};
    CHECK(container_env(o, {"A=1", "X=y"}) ==
          std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=b"});
}

TEST_CASE("cli options: an option given twice takes its last value, as getopt did") {
    auto s = parsed_as<ServeOptions>({"serve", "--socket", "a", "--log-level", "warn", "--log-level", "debug"});
    CHECK(s.socket == "a");
    CHECK(s.log_level == "debug");
    auto r = parsed_as<RunOptions>({"run", "--id", "x", "--id", "y", "--env", "A=1", "--env", "B=2", "--", "true"});
    CHECK(r.id == "y");
    CHECK(r.env == std::vector<std::string>{"A=1", "B=2"});
}

TEST_CASE("cli options: run's flags for the command's process, serve's --map-current-user, kill --all") {
    auto r = parsed_as<RunOptions>({"run", "-t", "--new-session", "--kill-group", "--die-with-parent",
                                    "--preserve-fds", "2", "--user", "nobody:nogroup", "--groups", "1,2",
                                    "--unsetenv", "A", "--unsetenv", "B", "--map-current-user", "--", "true"});
    CHECK(r.tty);
    CHECK(r.new_session);
    CHECK(r.kill_group);
    CHECK(r.die_with_parent);
    CHECK(r.preserve_fds == 2u);
    CHECK(r.user == "nobody:nogroup");
    CHECK(r.groups == "1,2");
    CHECK(r.unsetenv == std::vector<std::string>{"A", "B"});
    CHECK(r.map_current_user);
    CHECK(parsed_as<RunOptions>({"run", "--tty", "--", "true"}).tty);
    auto d = parsed_as<RunOptions>({"run", "--", "true"});
    CHECK_FALSE(d.tty);
    CHECK_FALSE(d.new_session);
    CHECK(d.preserve_fds == 0u);
    CHECK_FALSE(d.user);
    CHECK_FALSE(d.groups);
    CHECK(parsed_as<RunOptions>({"run", "--groups", "", "--", "true"}).groups == std::string());
    CHECK(parsed_as<ServeOptions>({"serve", "--socket", "s", "--map-current-user"}).map_current_user);
    CHECK(parsed_as<KillOptions>({"kill", "--socket", "s", "--all", "web"}).all);
    CHECK_FALSE(parsed_as<KillOptions>({"kill", "--socket", "s", "web"}).all);
}

TEST_CASE("cli options: run refuses bad --preserve-fds, --user, --unsetenv and options that need or exclude a server") {
    for (const char* n : {"-1", "254", "x", "1x"})
        CHECK(error_of({"run", "--preserve-fds", n, "--", "true"}) ==
              "nsfork: run: --preserve-fds takes a number of fds from 0 to 253 (see nsfork run --help)\n");
    for (const char* u : {"", ":0", "0:", "a:b:c"})
        CHECK(error_of({"run", "--user", u, "--", "true"}) ==
              "nsfork: run: --user takes UID[:GID] or NAME[:GROUP], not '" + std::string(u) + "' (see nsfork run --help)\n");
    for (const char* name : {"", "A=b"})
        CHECK(error_of({"run", "--unsetenv", name, "--", "true"}).find("--unsetenv takes a variable's name") !=
              std::string::npos);
    CHECK(error_of({"run", "--parent", "p", "--", "true"}).find("--parent needs --socket") != std::string::npos);
    CHECK(error_of({"run", "--socket", "s", "--map-current-user", "--", "true"}).find("--map-current-user applies") !=
          std::string::npos);
    CHECK(error_of({"run", "--socket", "s", "--detach", "-t", "--", "true"}) ==
          "nsfork: run: --tty needs a run that waits, not --detach (see nsfork run --help)\n");
    CHECK(error_of({"run", "--socket", "s", "--detach", "--die-with-parent", "--", "true"})
              .find("--die-with-parent needs a run that waits") != std::string::npos);
}

TEST_CASE("cli options: --unsetenv removes inherited names before --env sets, as env -u does") {
    RunOptions o;
    o.unsetenv = {"A", "B", "MISSING"};
    o.env = {"B=set"};
    CHECK(container_env(o, {"A=1", "AB=2", "B=3", "C=4"}) == std::vector<std::string>{"AB=2", "C=4", "B=set"});
}
