#include "oci/cgroup_path.hpp"
#include "oci/log.hpp"
#include "oci/options.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>

using namespace nsfork::oci;

namespace {

CommandLine parse(std::vector<std::string> args, const char* env_socket = nullptr) {
    args.insert(args.begin(), "nsfork-oci");
    return parse_command_line(args, env_socket);
}

template <class Options>
Options parsed_as(std::vector<std::string> args) {
    CommandLine line = parse(std::move(args));
    INFO(line.err);
    REQUIRE(line.verb);
    REQUIRE(std::holds_alternative<Options>(*line.verb));
    return std::get<Options>(*line.verb);
}

std::string error_of(std::vector<std::string> args) {
    CommandLine line = parse(std::move(args));
    CHECK_FALSE(line.verb);
    CHECK(line.exit_code == 1);
    return line.err;
}

} // namespace

TEST_CASE("oci options: containerd's create line, global flags before the verb") {
    CommandLine line = parse({"--root", "/run/containerd/runc/default", "--log", "/x/log.json", "--log-format", "json",
                              "create", "--bundle", "/b", "--pid-file", "/x/pid", "--console-socket", "/x/c.sock",
                              "--preserve-fds", "2", "--no-pivot", "--no-new-keyring", "c1"});
    REQUIRE(line.verb);
    CHECK(line.global.root == "/run/containerd/runc/default");
    CHECK(line.global.log == "/x/log.json");
    CHECK(line.global.log_format == LogFormat::json);
    const auto& c = std::get<CreateOptions>(*line.verb);
    CHECK(c.id == "c1");
    CHECK(c.bundle == "/b");
    CHECK(c.pid_file == "/x/pid");
    CHECK(c.console_socket == "/x/c.sock");
    CHECK(c.preserve_fds == 2);
    CHECK(c.no_pivot);
    CHECK(c.no_new_keyring);
}

TEST_CASE("oci options: defaults are runc's root, text logs and the documented server socket") {
    CommandLine line = parse({"state", "c1"});
    CHECK(line.global.root == "/run/nsfork-oci");
    CHECK(line.global.log.empty());
    CHECK(line.global.log_format == LogFormat::text);
    CHECK(line.global.server_socket == "/run/nsfork/nsfork.sock");
    CHECK(parsed_as<CreateOptions>({"create", "c1"}).bundle == ".");
}

TEST_CASE("oci options: the server socket from NSFORK_SOCKET, overridden by --nsfork-socket") {
    CHECK(parse({"state", "c1"}, "/env.sock").global.server_socket == "/env.sock");
    CHECK(parse({"--nsfork-socket", "/flag.sock", "state", "c1"}, "/env.sock").global.server_socket == "/flag.sock");
    CHECK(parse({"--nsfork-socket=/eq.sock", "state", "c1"}).global.server_socket == "/eq.sock");
}

TEST_CASE("oci options: run takes the bundle before or after the id, as Slurm and runc's usage write it") {
    for (std::vector<std::string> args : {std::vector<std::string>{"run", "-b", "/b", "c1"},
                                          {"run", "c1", "-b", "/b"},
                                          {"run", "c1", "--bundle=/b"}}) {
        INFO(args[1]);
        const auto r = parsed_as<RunOptions>(args);
        CHECK(r.create.id == "c1");
        CHECK(r.create.bundle == "/b");
        CHECK_FALSE(r.detach);
    }
    CHECK(parsed_as<RunOptions>({"run", "-d", "-b", "/b", "c1"}).detach);
    CHECK(parsed_as<RunOptions>({"--root=/r", "run", "--detach", "c1"}).detach);
}

TEST_CASE("oci options: kill takes a signal by name or number after the id, SIGTERM by default") {
    CHECK(parsed_as<KillOptions>({"kill", "c1"}).signal == SIGTERM);
    CHECK(parsed_as<KillOptions>({"kill", "c1", "9"}).signal == SIGKILL);
    CHECK(parsed_as<KillOptions>({"kill", "c1", "KILL"}).signal == SIGKILL);
    CHECK(parsed_as<KillOptions>({"kill", "c1", "SIGUSR1"}).signal == SIGUSR1);
    const auto all = parsed_as<KillOptions>({"kill", "-a", "c1", "15"});
    CHECK(all.all);
    CHECK(parsed_as<KillOptions>({"kill", "--all", "c1"}).all);
    CHECK(error_of({"kill", "c1", "NOPE"}).find("unknown signal \"NOPE\"") != std::string::npos);
}

TEST_CASE("oci options: exec's command keeps its own options, after the id") {
    const auto e = parsed_as<ExecOptions>({"exec", "--pid-file", "/p", "-e", "A=1", "--env", "B=2", "--cwd", "/tmp",
                                           "-u", "1000:100", "c1", "ls", "-l", "--all"});
    CHECK(e.id == "c1");
    CHECK(e.pid_file == "/p");
    CHECK(e.env == std::vector<std::string>{"A=1", "B=2"});
    CHECK(e.cwd == "/tmp");
    CHECK(e.user == "1000:100");
    CHECK(e.args == std::vector<std::string>{"ls", "-l", "--all"});
    const auto p = parsed_as<ExecOptions>({"exec", "--process", "/proc.json", "--detach", "c1"});
    CHECK(p.process_file == "/proc.json");
    CHECK(p.detach);
    CHECK(p.args.empty());
}

TEST_CASE("oci options: exec refuses no command, a command with --process, and --tty without a console socket") {
    CHECK(error_of({"exec", "c1"}).find("needs a command or --process") != std::string::npos);
    CHECK(error_of({"exec", "-p", "/p.json", "c1", "ls"}).find("not both") != std::string::npos);
    CHECK(error_of({"exec", "-t", "c1", "sh"}).find("--tty needs --console-socket") != std::string::npos);
    CHECK(error_of({"exec", "-e", "NOEQUALS", "c1", "sh"}).find("K=V") != std::string::npos);
}

TEST_CASE("oci options: ps formats, delete --force, the id-only verbs, features") {
    CHECK(parsed_as<PsOptions>({"ps", "--format", "json", "c1"}).json);
    CHECK_FALSE(parsed_as<PsOptions>({"ps", "c1"}).json);
    CHECK(error_of({"ps", "-f", "yaml", "c1"}).find("invalid format") != std::string::npos);
    CHECK(parsed_as<DeleteOptions>({"delete", "--force", "c1"}).force);
    CHECK(parsed_as<DeleteOptions>({"delete", "-f", "c1"}).id == "c1");
    CHECK(parsed_as<StartOptions>({"start", "c1"}).id == "c1");
    CHECK(parsed_as<PauseOptions>({"pause", "c1"}).id == "c1");
    CHECK(parsed_as<ResumeOptions>({"resume", "c1"}).id == "c1");
    CHECK(parse({"features"}).verb);
}

TEST_CASE("oci options: usage errors exit 1 naming the cause, --version names all three versions") {
    CHECK(error_of({"state"}).find("ID") != std::string::npos);
    CHECK_FALSE(error_of({"frobnicate", "c1"}).empty());
    CHECK(error_of({"--log-format", "xml", "state", "c1"}).find("invalid log format") != std::string::npos);
    CHECK(error_of({"create", "--preserve-fds", "-1", "c1"}).find("preserve-fds") != std::string::npos);
    CommandLine v = parse({"--version"});
    CHECK_FALSE(v.verb);
    CHECK(v.exit_code == 0);
    CHECK(v.out.find("nsfork-oci version") != std::string::npos);
    CHECK(v.out.find(std::string("spec: ") + kRuntimeSpecVersion) != std::string::npos);
    CHECK(v.out.find("nsfork: ") != std::string::npos);
}

TEST_CASE("oci log: json lines carry level, msg and time, text lines are logrus's, quotes escaped") {
    const std::string json = log_line(LogFormat::json, "error", "container \"c1\" does not exist", 0);
    CHECK(json.back() == '\n');
    const auto j = nlohmann::json::parse(json);
    CHECK(j["level"] == "error");
    CHECK(j["msg"] == "container \"c1\" does not exist");
    CHECK(j["time"] == "1970-01-01T00:00:00Z");
    CHECK(log_line(LogFormat::text, "error", "no \"x\"", 0) ==
          "time=\"1970-01-01T00:00:00Z\" level=error msg=\"no \\\"x\\\"\"\n");
}

TEST_CASE("oci cgroup paths: cgroupsPath as given, the id without one, systemd's slice:prefix:name expanded") {
    CHECK(*cgroups_path_for("/kubepods/pod1/c1", "c1", false) == "/kubepods/pod1/c1");
    CHECK(*cgroups_path_for("", "c1", false) == "c1");
    CHECK(*cgroups_path_for("system.slice:docker:abc", "c1", true) == "/system.slice/docker-abc.scope");
    CHECK(*cgroups_path_for("kubepods-besteffort-pod1.slice:cri-containerd:abc", "c1", true) ==
          "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope");
    CHECK(*cgroups_path_for(":libpod:abc", "c1", true) == "/system.slice/libpod-abc.scope");
    CHECK(*cgroups_path_for("user.slice::abc", "c1", true) == "/user.slice/abc.scope");
    auto bad = cgroups_path_for("/not/systemd", "c1", true);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("linux.cgroupsPath") != std::string::npos);
    CHECK_FALSE(cgroups_path_for("a--b.slice:p:n", "c1", true));
}

TEST_CASE("oci cgroup paths: the server's leaf is the same path below oci/, without . or ..") {
    CHECK(*server_cgroup_name("/kubepods/pod1//c1/") == "oci/kubepods/pod1/c1");
    CHECK(*server_cgroup_name("c1") == "oci/c1");
    auto dots = server_cgroup_name("/a/../b");
    REQUIRE_FALSE(dots);
    CHECK(dots.error().message.find("linux.cgroupsPath") != std::string::npos);
    CHECK_FALSE(server_cgroup_name("/"));
}

TEST_CASE("oci options: the verb found ahead of parsing (its table alone is made) parses as with every table") {
    // Global options' values, in both spellings, are skipped on the way to the verb.
    CommandLine line = parse({"--root=/r", "--log", "/l", "--debug", "--nsfork-socket", "/s", "run", "-b", "/b", "c1"});
    REQUIRE(line.verb);
    CHECK(line.global.root == "/r");
    CHECK(line.global.log == "/l");
    CHECK(line.global.debug);
    CHECK(line.global.server_socket == "/s");
    CHECK(std::get<RunOptions>(*line.verb).create.bundle == "/b");
    // An id spelled like a verb is an id; a second verb is an extra argument.
    CHECK(parsed_as<DeleteOptions>({"--root", "state", "delete", "run"}).id == "run");
    CHECK(error_of({"delete", "c1", "state"}).find("not expected: state") != std::string::npos);
    // Help, and a line without a verb, list every verb.
    for (const auto& args : {std::vector<std::string>{"--help"}, {"-h"}, {}}) {
        const std::string help = parse(args).out;
        for (const char* verb : {"create", "run", "delete", "features", "start", "state", "kill", "exec", "ps", "pause", "resume"})
            CHECK(help.find(std::string("  ") + verb + " ") != std::string::npos);
    }
    CHECK(parse({"run", "--help"}).out.find("--no-pivot") != std::string::npos);
}
