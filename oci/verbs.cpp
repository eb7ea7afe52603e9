// The verbs on an existing container (state, kill, exec, ps, pause, resume) and features.
#include "oci/commands.hpp"
#include "oci/resources.hpp"
#include "oci/setup.hpp"
#include "oci/seccomp.hpp"
#include "oci/spec.hpp"
#include "oci/support.hpp"

#include "base/pidfd.hpp"

#include <fcntl.h>
#include <seccomp.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace nsfork::oci {

namespace {

void print(const std::string& text) {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
}

// The pids of the container's processes: those of its cgroup leaf and the cgroups below it
// (nested containers), but the server's holder; without a leaf, its process.
std::vector<pid_t> container_pids(const ContainerState& state) {
    std::vector<pid_t> pids;
    if (state.cgroup_leaf.empty()) {
        if (same_process_running(state.pid, state.start_time)) pids.push_back(state.pid);
        return pids;
    }
    std::error_code ec;
    std::vector<std::string> dirs{state.cgroup_leaf};
    for (std::filesystem::recursive_directory_iterator it(state.cgroup_leaf, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_directory(ec)) dirs.push_back(it->path().string());
    for (const std::string& dir : dirs) {
        std::ifstream procs(dir + "/cgroup.procs");
        for (pid_t pid; procs >> pid;)
            if (pid != state.holder_pid) pids.push_back(pid);
    }
    std::sort(pids.begin(), pids.end());
    return pids;
}

std::string command_line(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!text.empty() && text.back() == '\0') text.pop_back();
    std::replace(text.begin(), text.end(), '\0', ' ');
    return text;
}

// A cgroup v2 file of the container's leaf, written.
Result<void> write_leaf(const ContainerState& state, const char* file, const char* value) {
    if (state.cgroup_leaf.empty())
        return Error{Errc::unavailable, "container " + state.id + " has no cgroup (the nsfork server runs without cgroups)"};
    const std::string path = state.cgroup_leaf + "/" + file;
    std::ofstream out(path);
    if (!(out << value) || !out.flush()) return sys_error(Errc::internal, "cannot write " + path, errno);
    return {};
}

// Whether the leaf's cgroup.events says `frozen` is `value`.
bool frozen_is(const ContainerState& state, char value) {
    std::ifstream events(state.cgroup_leaf + "/cgroup.events");
    for (std::string key, v; events >> key >> v;)
        if (key == "frozen") return v.size() == 1 && v[0] == value;
    return false;
}

// exec without --process: the container's own process with the command line's changes, as runc.
Result<Process> process_from_args(const Spec& spec, const ExecOptions& o) {
    Process p = spec.process;
    p.args = o.args;
    p.terminal = o.tty;
    if (!o.cwd.empty()) p.cwd = o.cwd;
    for (const std::string& kv : o.env) p.env.push_back(kv);
    if (o.user) {
        const std::string& user = *o.user;
        const auto colon = user.find(':');
        auto number = [](std::string_view text, unsigned& out) {
            auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
            return ec == std::errc() && end == text.data() + text.size() && !text.empty();
        };
        unsigned uid = 0, gid = 0;
        if (!number(std::string_view(user).substr(0, colon), uid) ||
            (colon != std::string::npos && !number(std::string_view(user).substr(colon + 1), gid)))
            return Error{Errc::bad_request, "--user takes UID[:GID] (numbers), not \"" + user + "\""};
        p.user.uid = uid;
        p.user.gid = gid;
        p.user.additional_gids.clear();
    }
    return p;
}

} // namespace

Result<int> state(const Context& ctx, const StateOptions& o) {
    auto found = find_container(ctx.global.root, o.id);
    if (!found) return std::move(found).error();
    print(state_json(found->state, status_of(found->dir, found->state)) + "\n");
    return 0;
}

Result<int> kill(const Context& ctx, const KillOptions& o) {
    auto found = find_container(ctx.global.root, o.id);
    if (!found) return std::move(found).error();
    const ContainerState& s = found->state;
    const bool stopped = status_of(found->dir, s) == Status::stopped;
    if (o.all) {
        // The server knows every process of it: its cgroup tree, or its pid namespace.
        auto server = connect_server(s.server_socket);
        if (!server) return std::move(server).error();
        auto killed = server->kill(s.server_id, o.signal, true);
        if (!killed && !(stopped && killed.error().code == Errc::unknown_container)) return std::move(killed).error();
        return 0;
    }
    if (stopped) return Error{Errc::invalid_state, "container not running"};
    auto pidfd = open_process(s.pid, s.start_time);
    if (!pidfd) return std::move(pidfd).error();
    if (auto sent = signal_pidfd(pidfd->get(), o.signal); !sent) return std::move(sent).error();
    return 0;
}

Result<int> exec(const Context& ctx, const ExecOptions& o) {
    auto found = find_container(ctx.global.root, o.id);
    if (!found) return std::move(found).error();
    const ContainerState& s = found->state;
    if (status_of(found->dir, s) == Status::stopped) return Error{Errc::invalid_state, "cannot exec in a stopped container"};
    auto config = read_text_file(found->dir.config());
    if (!config) return std::move(config).error();
    auto spec = parse_config(*config, s.bundle);
    if (!spec) return std::move(spec).error();
    Result<Process> process = Error{};
    if (!o.process_file.empty()) {
        auto text = read_text_file(o.process_file);
        if (!text) return std::move(text).error();
        process = parse_process(*text, o.process_file);
    } else {
        process = process_from_args(*spec, o);
    }
    if (!process) return std::move(process).error();
    if (process->terminal && o.console_socket.empty())
        return Error{Errc::bad_request, "a process with a terminal needs --console-socket"};

    auto target = open_process(s.pid, s.start_time);
    if (!target) return std::move(target).error();
    UniqueFd leaf;
    if (!s.cgroup_leaf.empty()) {
        leaf.reset(::open(s.cgroup_leaf.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!leaf) return sys_error(Errc::internal, "open " + s.cgroup_leaf, errno);
    }
    auto procs = controllers_of(s).open_procs();
    if (!procs) return std::move(procs).error();
    auto io = process_io(o.console_socket, o.preserve_fds);
    if (!io) return std::move(io).error();

    ExecRequest request;
    request.spec = &*spec;
    request.process = &*process;
    request.target_pidfd = target->get();
    request.cgroup_leaf = leaf.get();
    for (const UniqueFd& fd : *procs) request.cgroup_procs.push_back(fd.get());
    request.io = io->io;
    auto child = exec_process(request);
    if (!child) return std::move(child).error();
    const sigset_t forwarded = forwarded_signals();
    sigset_t old;
    if (!o.detach) ::sigprocmask(SIG_BLOCK, &forwarded, &old);
    if (!o.pid_file.empty())
        if (auto written = write_pid_file(o.pid_file, child->pid); !written) return std::move(written).error();
    if (o.detach) return 0;
    auto status = wait_forwarding(child->pidfd.get(), forwarded);
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    if (!status) return std::move(status).error();
    return status->shell_code();
}

Result<int> ps(const Context& ctx, const PsOptions& o) {
    auto found = find_container(ctx.global.root, o.id);
    if (!found) return std::move(found).error();
    const std::vector<pid_t> pids = container_pids(found->state);
    if (o.json) {
        print(nlohmann::json(pids).dump() + "\n");
        return 0;
    }
    std::string table = "PID\tCMD\n";
    for (pid_t pid : pids) table += std::to_string(pid) + "\t" + command_line(pid) + "\n";
    print(table);
    return 0;
}

Result<int> pause(const Context& ctx, const PauseOptions& o) {
    auto found = find_container(ctx.global.root, o.id);
    if (!found) return std::move(found).error();
    if (status_of(found->dir, found->state) != Status::running) return Error{Errc::invalid_state, "container not running"};
    if (auto frozen = write_leaf(found->state, "cgroup.freeze", "1"); !frozen) return std::move(frozen).error();
    // cgroup.freeze asks; cgroup.events says when every task stopped (a task in the kernel gets
    // there on its way out). runc waits too: a paused container must not run on after pause.
    for (int i = 0; i < 5000 && !frozen_is(found->state, '1'); ++i) ::usleep(1000);
    if (!frozen_is(found->state, '1')) {
        (void)write_leaf(found->state, "cgroup.freeze", "0");
        return Error{Errc::internal, "container " + o.id + " did not freeze"};
    }
    return 0;
}

Result<int> resume(const Context& ctx, const ResumeOptions& o) {
    auto found = find_container(ctx.global.root, o.id);
    if (!found) return std::move(found).error();
    if (status_of(found->dir, found->state) != Status::paused) return Error{Errc::invalid_state, "container not paused"};
    if (auto thawed = write_leaf(found->state, "cgroup.freeze", "0"); !thawed) return std::move(thawed).error();
    return 0;
}

Result<int> features(const Context&, const FeaturesOptions&) {
    using ordered = nlohmann::ordered_json;
    const scmp_version* lib = ::seccomp_version();
    ordered j = {
        {"ociVersionMin", "1.0.0"},
        {"ociVersionMax", kRuntimeSpecVersion},
        {"hooks", {"prestart", "createRuntime", "poststart", "poststop"}},
        {"mountOptions", known_mount_options()},
        {"linux",
         {{"namespaces", {"cgroup", "ipc", "mount", "network", "pid", "uts"}},
          {"capabilities", known_capabilities()},
          {"cgroup", {{"v1", true}, {"v2", true}, {"systemd", false}, {"systemdUser", false}}},
          {"seccomp",
           {{"enabled", true},
            {"actions",
             {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
              "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}},
            {"operators", known_seccomp_operators()},
            {"archs", known_seccomp_architectures()},
            {"knownFlags",
             {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}},
            {"supportedFlags",
             {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}}}}}},
        {"annotations",
         {{"io.github.seccomp.libseccomp.version",
           std::to_string(lib->major) + "." + std::to_string(lib->minor) + "." + std::to_string(lib->micro)},
          {"org.nsfork.oci.version", NSFORK_VERSION}}},
    };
    print(j.dump(4) + "\n");
    return 0;
}

} // namespace nsfork::oci
