// The nsfork command line: thin verbs over the client library and the server.
//
// Exit codes of `run` follow `docker run` / `env`: the container's status (its exit code, or
// 128+N when killed by signal N); 125 when nsfork itself failed; 126 when the command cannot be
// executed; 127 when it was not found.
#include "base/pidfd.hpp"
#include "cli/json.hpp"
#include "base/syscalls.hpp"
#include "protocol/client.hpp"
#include "server/server.hpp"

#include <fmt/format.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace {

using namespace nsfork;

constexpr int kLauncherError = 125;
constexpr int kCannotExecute = 126;
constexpr int kNotFound = 127;

const char* const kUsage = R"(usage:
  nsfork serve   --socket PATH [--isolation LIST] [--disallow-sharing-agent-pid-namespace]
                 [--cgroup-root DIR] [--log-level LEVEL] [--max-request-bytes N] [--warm-pool N]
  nsfork run     [--socket PATH] [--id ID] [--parent ID] [--share-pid-namespace]
                 [--join-pidns PATH] [--env K=V]... [--clear-env] [--cwd DIR] [--detach] [--json]
                 [--pid-max N]
                 -- CMD [ARG...]
  nsfork list    --socket PATH [--json]
  nsfork status  --socket PATH [--json]
  nsfork wait    --socket PATH ID
  nsfork kill    --socket PATH [--signal SIG] ID
  nsfork destroy --socket PATH ID
)";

// One line on stderr, then the exit code.
int fail(int code, const std::string& message) {
    fmt::print(stderr, "nsfork: {}\n", message);
    return code;
}

int fail(const Error& e) {
    int code = kLauncherError;
    if (e.code == Errc::exec_failed) code = (e.sys_errno == ENOENT || e.sys_errno == ENOTDIR) ? kNotFound : kCannotExecute;
    return fail(code, e.message);
}

// The options every verb may take; each verb uses what it needs.
struct Options {
    std::string socket, id, parent, cwd, join_pidns, cgroup_root, log_level = "info";
    std::optional<std::string> isolation; // "" is a valid list: no isolator
    std::string signal = "TERM";
    std::string max_request_bytes, warm_pool, pid_max;
    std::vector<std::string> env;
    bool clear_env = false, detach = false, json = false, share_pidns = false, disallow_sharing = false;
    std::vector<std::string> rest; // positional arguments; for run, the command
};

enum : int { kSocket = 256, kId, kParent, kShare, kJoin, kEnv, kClearEnv, kCwd, kDetach, kJson, kIsolation,
             kDisallow, kCgroupRoot, kLogLevel, kSignal, kHelp, kMaxRequest, kWarmPool, kPidMax };

// Parses argv[2..]; stops at "--" or the first positional argument of `run`, so that the
// command's own options are never taken for ours.
std::optional<Options> parse(int argc, char** argv) {
    static const option longopts[] = {
        {"socket", required_argument, nullptr, kSocket}, {"id", required_argument, nullptr, kId},
        {"parent", required_argument, nullptr, kParent}, {"share-pid-namespace", no_argument, nullptr, kShare},
        {"join-pidns", required_argument, nullptr, kJoin}, {"env", required_argument, nullptr, kEnv},
        {"clear-env", no_argument, nullptr, kClearEnv}, {"cwd", required_argument, nullptr, kCwd},
        {"detach", no_argument, nullptr, kDetach}, {"json", no_argument, nullptr, kJson},
        {"isolation", required_argument, nullptr, kIsolation},
        {"disallow-sharing-agent-pid-namespace", no_argument, nullptr, kDisallow},
        {"cgroup-root", required_argument, nullptr, kCgroupRoot}, {"log-level", required_argument, nullptr, kLogLevel},
        {"signal", required_argument, nullptr, kSignal}, {"help", no_argument, nullptr, kHelp},
        {"max-request-bytes", required_argument, nullptr, kMaxRequest},
        {"warm-pool", required_argument, nullptr, kWarmPool},
        {"pid-max", required_argument, nullptr, kPidMax},
        {nullptr, 0, nullptr, 0}};
    Options o;
    optind = 2;
    opterr = 1;
    int c;
    while ((c = ::getopt_long(argc, argv, "+", longopts, nullptr)) != -1) {
        switch (c) {
        case kSocket: o.socket = optarg; break;
        case kId: o.id = optarg; break;
        case kParent: o.parent = optarg; break;
        case kShare: o.share_pidns = true; break;
        case kJoin: o.join_pidns = optarg; break;
        case kEnv: o.env.emplace_back(optarg); break;
        case kClearEnv: o.clear_env = true; break;
        case kCwd: o.cwd = optarg; break;
        case kDetach: o.detach = true; break;
        case kJson: o.json = true; break;
        case kIsolation: o.isolation = optarg; break;
        case kDisallow: o.disallow_sharing = true; break;
        case kCgroupRoot: o.cgroup_root = optarg; break;
        case kLogLevel: o.log_level = optarg; break;
        case kSignal: o.signal = optarg; break;
        case kMaxRequest: o.max_request_bytes = optarg; break;
        case kWarmPool: o.warm_pool = optarg; break;
        case kPidMax: o.pid_max = optarg; break;
        case kHelp: std::fputs(kUsage, stdout); std::exit(0);
        default: return std::nullopt;
        }
    }
    for (int i = optind; i < argc; ++i) o.rest.emplace_back(argv[i]);
    return o;
}

// A signal by number or name ("TERM", "SIGTERM", "9"); 0 if unknown.
int parse_signal(const std::string& s) {
    if (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) {
        char* end = nullptr;
        const long n = std::strtol(s.c_str(), &end, 10);
        return (*end == 0 && n > 0 && n <= SIGRTMAX) ? static_cast<int>(n) : 0;
    }
    const std::string name = s.rfind("SIG", 0) == 0 ? s.substr(3) : s;
    for (int sig = 1; sig < NSIG; ++sig)
        if (const char* abbrev = ::sigabbrev_np(sig); abbrev && name == abbrev) return sig;
    return 0;
}

Result<Client> connect(const Options& o) {
    if (o.socket.empty()) return Error{Errc::bad_request, "--socket PATH is required"};
    return Client::connect(o.socket);
}

// The environment the container gets: ours (unless --clear-env) with --env entries on top.
std::vector<std::string> container_env(const Options& o) {
    std::vector<std::string> env;
    if (o.clear_env) env.emplace_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    else
        for (char** e = environ; *e; ++e) env.emplace_back(*e);
    for (const std::string& kv : o.env) {
        const std::string name = kv.substr(0, kv.find('=') + 1);
        std::erase_if(env, [&](const std::string& e) { return e.rfind(name, 0) == 0; });
        env.push_back(kv);
    }
    return env;
}

// Signals `run` passes on to the container instead of dying of them.
constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT};

// Waits for the container's end, forwarding signals to its init (which forwards them to the
// command) through the pidfd the launch handed us.
Result<ExitStatus> wait_forwarding(Client& client, const Container& ct, int sigfd) {
    auto seq = client.send_wait(ct.id());
    if (!seq) return std::move(seq).error();
    for (;;) {
        pollfd fds[2] = {{client.native_handle(), POLLIN, 0}, {sigfd, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return sys_error(Errc::internal, "poll failed", errno);
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si;
            if (::read(sigfd, &si, sizeof si) == sizeof si)
                (void)signal_pidfd(ct.pidfd(), static_cast<int>(si.ssi_signo));
        }
        if (fds[0].revents) return client.receive_wait(*seq);
    }
}

int cmd_run(const Options& o) {
    if (o.rest.empty()) return fail(kLauncherError, "run: no command given (nsfork run [OPTIONS] -- CMD [ARG...])");
    if (o.detach && o.socket.empty())
        return fail(kLauncherError, "run: --detach needs --socket (a private server ends with this command)");

    // Forwarded signals are blocked (after the private server was forked, which must not inherit
    // the mask) and read from a signalfd, so none is lost between launch and wait.
    sigset_t forwarded;
    ::sigemptyset(&forwarded);
    for (int sig : kForwarded) ::sigaddset(&forwarded, sig);

    std::optional<Client> client;
    if (o.socket.empty()) {
        ServerOptions so;
        so.log_level = "warn";
        so.warm_pool = 0; // one launch: warming a namespace ahead would only cost
        auto started = start_server_before_threads(so); // we have one thread: this is main()
        if (!started) return fail(started.error());
        client.emplace(std::move(*started));
    } else {
        auto connected = Client::connect(o.socket);
        if (!connected) return fail(connected.error());
        client.emplace(std::move(*connected));
    }
    ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    UniqueFd sigfd(::signalfd(-1, &forwarded, SFD_CLOEXEC));

    LaunchOptions lo;
    lo.id = o.id;
    lo.argv = o.rest;
    lo.env = container_env(o);
    if (!o.cwd.empty()) lo.cwd = o.cwd;
    else if (char* here = ::getcwd(nullptr, 0)) {
        lo.cwd = here;
        std::free(here);
    }
    // A detached container must not hold our stdout: `id=$(nsfork run --detach …)` would hang.
    if (!o.detach) lo.stdio = {0, 1, 2};
    if (!o.pid_max.empty()) {
        char* end = nullptr;
        const unsigned long n = std::strtoul(o.pid_max.c_str(), &end, 10);
        if (*end || o.pid_max[0] == '-' || n == 0 || n > 4194304)
            return fail(kLauncherError, "run: --pid-max takes a number from 1 to 4194304");
        lo.pid_max = static_cast<std::uint32_t>(n);
    }
    lo.parent = o.parent;
    lo.share_pid_namespace = o.share_pidns;
    UniqueFd join;
    if (!o.join_pidns.empty()) {
        join.reset(::open(o.join_pidns.c_str(), O_RDONLY | O_CLOEXEC));
        if (!join) return fail(sys_error(Errc::bad_request, "cannot open " + o.join_pidns, errno));
        lo.join_pidns_fd = join.get();
    }
    auto ct = client->launch(lo);
    if (!ct) return fail(ct.error());

    if (o.detach) {
        if (o.json) fmt::print("{}\n", cli::to_json(ct->info()));
        else fmt::print("{}\n", ct->id());
        return 0;
    }
    auto status = wait_forwarding(*client, *ct, sigfd.get());
    if (!status) return fail(status.error());
    if (!o.socket.empty()) { // forget it on a shared server; a private one ends with us anyway
        auto gone = client->destroy(ct->id());
        if (gone && o.json) fmt::print("{}\n", cli::to_json(*gone));
    } else if (o.json) {
        ContainerInfo info = ct->info();
        info.state = State::exited;
        info.exit = *status;
        fmt::print("{}\n", cli::to_json(info));
    }
    return status->shell_code();
}

int cmd_serve(const Options& o) {
    if (o.socket.empty()) return fail(kLauncherError, "serve: --socket PATH is required");
    ServerOptions so;
    so.socket_path = o.socket;
    so.log_level = o.log_level;
    if (o.isolation) {
        auto iso = parse_isolation(*o.isolation);
        if (!iso) return fail(iso.error());
        so.isolation = *iso;
    }
    so.disallow_sharing_agent_pidns = o.disallow_sharing;
    so.cgroup_root = o.cgroup_root;
    if (!o.warm_pool.empty()) {
        char* end = nullptr;
        const unsigned long n = std::strtoul(o.warm_pool.c_str(), &end, 10);
        if (*end || o.warm_pool[0] == '-' || n > 1024)
            return fail(kLauncherError, "serve: --warm-pool takes a number of namespaces from 0 to 1024");
        so.warm_pool = static_cast<std::uint32_t>(n);
    }
    if (!o.max_request_bytes.empty()) {
        char* end = nullptr;
        so.max_request_bytes = std::strtoull(o.max_request_bytes.c_str(), &end, 10);
        if (*end || so.max_request_bytes == 0)
            return fail(kLauncherError, "serve: --max-request-bytes takes a positive number of bytes");
    }
    return run_server(so);
}

int cmd_status(const Options& o) {
    auto client = connect(o);
    if (!client) return fail(client.error());
    auto status = client->status();
    if (!status) return fail(status.error());
    if (o.json) fmt::print("{}\n", cli::to_json(*status));
    else
        fmt::print("server pid {}\nwarm pool: {} of {} ready, {} warming, {} served, {} discarded\n", status->pid,
                   status->pool_ready, status->pool_size, status->pool_warming, status->pool_served,
                   status->pool_discarded);
    return 0;
}

int cmd_list(const Options& o) {
    auto client = connect(o);
    if (!client) return fail(client.error());
    auto list = client->list();
    if (!list) return fail(list.error());
    if (o.json) {
        fmt::print("{}\n", cli::to_json(*list));
        return 0;
    }
    fmt::print("{:<32} {:>8} {:>12} {:<10} {}\n", "ID", "PID", "PIDNS", "STATE", "STATUS");
    for (const ContainerInfo& c : *list)
        fmt::print("{:<32} {:>8} {:>12} {:<10} {}\n", c.id, c.pid, c.pidns, to_string(c.state),
                   c.exit ? std::to_string(c.exit->shell_code()) : "-");
    return 0;
}

// The single positional ID of wait/kill/destroy.
std::optional<std::string> single_id(const Options& o, const char* verb) {
    if (o.rest.size() == 1) return o.rest[0];
    fail(kLauncherError, fmt::format("{}: expected exactly one container ID", verb));
    return std::nullopt;
}

int cmd_wait(const Options& o) {
    auto id = single_id(o, "wait");
    if (!id) return kLauncherError;
    auto client = connect(o);
    if (!client) return fail(client.error());
    auto status = client->wait(*id);
    if (!status) return fail(status.error());
    return status->shell_code();
}

int cmd_kill(const Options& o) {
    auto id = single_id(o, "kill");
    if (!id) return kLauncherError;
    const int sig = parse_signal(o.signal);
    if (!sig) return fail(kLauncherError, "kill: unknown signal '" + o.signal + "'");
    auto client = connect(o);
    if (!client) return fail(client.error());
    if (auto ok = client->kill(*id, sig); !ok) return fail(ok.error());
    return 0;
}

int cmd_destroy(const Options& o) {
    auto id = single_id(o, "destroy");
    if (!id) return kLauncherError;
    auto client = connect(o);
    if (!client) return fail(client.error());
    auto gone = client->destroy(*id);
    if (!gone) return fail(gone.error());
    if (o.json) fmt::print("{}\n", cli::to_json(*gone));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argv[1] == std::string("--help") || argv[1] == std::string("-h")) {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? kLauncherError : 0;
    }
    const std::string verb = argv[1];
    auto options = parse(argc, argv);
    if (!options) return fail(kLauncherError, "bad arguments; see nsfork --help");
    if (verb == "run") return cmd_run(*options);
    if (verb == "serve") return cmd_serve(*options);
    if (verb == "list") return cmd_list(*options);
    if (verb == "status") return cmd_status(*options);
    if (verb == "wait") return cmd_wait(*options);
    if (verb == "kill") return cmd_kill(*options);
    if (verb == "destroy") return cmd_destroy(*options);
    return fail(kLauncherError, "unknown command '" + verb + "'; see nsfork --help");
}
