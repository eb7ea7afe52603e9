// engines: /bin/true through each cluster engine (Slurm, podman, containerd, Docker) with
// nsfork-oci as its runtime against runc (and crun where it runs here), alternated run by run in
// one engine's daemons, medians and ratios; and the runtime's own share of each run.
//
// The engines are the engine suite's nodes (tests/engines/node_<engine>.py), served by
// tests/engines/nodes.py over JSON lines: it starts a node (`nsfork serve` with a warm pool) and
// prints its paths; we send the runtimes the engine is to know; it starts the engine's daemons
// and prints, per runtime, the argv that runs /bin/true through the engine and removes the
// container; we time those; at the end of our input it removes everything and says what it could
// not remove. Python is never inside a timed command.
//
// The runtime's own share: each runtime the engine is given is a copy of nsfork-runtime-timer
// (runtime_timer.c), a transparent wrapper that runs the real runtime and appends one line per
// call (verb, ns from fork until reaped, exit status) to that runtime's log. The calls logged
// between the start of one run of a runtime and the start of its next run belong to the first
// (stragglers an engine makes after its command returned included: the other runtime's run
// comes in between).
#include "clock.hpp"
#include "process.hpp"
#include "runc_bundle.hpp"
#include "scenarios.hpp"
#include "temp_dir.hpp"
#include "testing/process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

extern char** environ;

namespace fs = std::filesystem;

namespace nsfork::bench {

namespace {

using Json = nlohmann::json;

const char* const kEngines[] = {"slurm", "podman", "containerd", "docker"};
constexpr int kDefaultRuns = 12;
// Engines start daemons (dockerd on its own containerd, Slurm's three): minutes at worst on a
// loaded 2-core machine. One command runs in well under a second when healthy.
constexpr int kStartTimeoutMs = 300'000;
constexpr int kReplyTimeoutMs = 60'000;
constexpr int kCommandTimeoutMs = 120'000;

double median_of(std::vector<double> v) { return v.empty() ? 0 : summarize(std::move(v)).median; }

// A file's size; 0 if it does not exist.
std::uint64_t file_size(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// The last `n` bytes of a file from byte `from` on: what a failed process said.
std::string tail_of(const std::string& path, std::size_t n = 1500, std::uint64_t from = 0) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    text.erase(0, std::min<std::size_t>(from, text.size()));
    if (text.size() > n) text = "..." + text.substr(text.size() - n);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

// The last non-empty line of `text` (a Python traceback's exception).
std::string last_line(std::string text) {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text.substr(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
}

// A child's exit as text: "exit 3", "signal 9".
std::string exit_text(int wstatus) {
    return WIFSIGNALED(wstatus) ? fmt::format("signal {}", WTERMSIG(wstatus)) : fmt::format("exit {}", WEXITSTATUS(wstatus));
}

// This process's environment with `set` (NAME=value) replacing or adding variables.
std::vector<std::string> environment_with(const std::vector<std::string>& set) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string var = *e;
        const bool replaced = std::any_of(set.begin(), set.end(), [&](const std::string& s) {
            return var.compare(0, s.find('=') + 1, s, 0, s.find('=') + 1) == 0;
        });
        if (!replaced) env.push_back(var);
    }
    env.insert(env.end(), set.begin(), set.end());
    return env;
}

// posix_spawn of `cmd` with stdin and stdout as given and stderr appended to `err_log`.
Result<pid_t> spawn_with(const Command& cmd, int in_fd, int out_fd, const std::string& err_log) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in_fd >= 0) posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
    else posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (out_fd >= 0) posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    else posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, cmd.path(), &fa, nullptr, cmd.argv(), cmd.envp());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return sys_error(Errc::exec_failed, "cannot start " + cmd.text(), rc);
    return pid;
}

// Waits up to `timeout_ms` for `pid` (our child) to end; its wait status, or nullopt on timeout.
std::optional<int> wait_for_exit(pid_t pid, int timeout_ms) {
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (pidfd.get() >= 0) {
        pollfd p{pidfd.get(), POLLIN, 0};
        while (::poll(&p, 1, timeout_ms) < 0 && errno == EINTR) {}
        if (!(p.revents & POLLIN)) return std::nullopt;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return std::nullopt;
    return status;
}

// One timed engine command: spawn until it exits, in ms. Its stderr is appended to `err_log`; a
// command that fails, or runs past the timeout (then SIGKILLed), is an error naming its end.
Result<double> time_command(const Command& cmd, const std::string& err_log) {
    const std::uint64_t said = file_size(err_log); // what earlier commands wrote is not this one's
    const std::int64_t t0 = now_ns();
    auto pid = spawn_with(cmd, -1, -1, err_log);
    if (!pid) return std::move(pid).error();
    auto status = wait_for_exit(*pid, kCommandTimeoutMs);
    const std::int64_t t1 = now_ns();
    if (!status) {
        ::kill(*pid, SIGKILL);
        wait_for_exit(*pid, 10'000);
        return Error{Errc::internal, fmt::format("{} ran past {} s (killed); its stderr: {}", cmd.text(),
                                                kCommandTimeoutMs / 1000, tail_of(err_log, 1500, said))};
    }
    if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
        return Error{Errc::internal, fmt::format("{}: {}; its stderr: {}", cmd.text(), exit_text(*status), tail_of(err_log, 1500, said))};
    return static_cast<double>(t1 - t0) / 1e6;
}

// nodes.py for one engine, spoken to in JSON lines: its stdin a socket (a write after it died is
// an error, not a SIGPIPE), its stdout a pipe, its stderr a log file. Ended by closing its input,
// which makes it remove everything and say what it left.
class NodeProcess {
public:
    static Result<NodeProcess> start(const std::string& python, const std::string& source_dir, const std::string& bin_dir,
                                     const std::string& engine, const std::string& err_log) {
        const std::string engines_dir = source_dir + "/tests/engines";
        if (::access((engines_dir + "/nodes.py").c_str(), R_OK) != 0)
            return Error{Errc::unavailable, engines_dir + "/nodes.py not found (set NSFORK_SOURCE_DIR to the checkout)"};
        int sv[2], out[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return sys_error(Errc::internal, "socketpair", errno);
        UniqueFd ours_in(sv[0]), theirs_in(sv[1]);
        if (::pipe2(out, O_CLOEXEC) != 0) return sys_error(Errc::internal, "pipe2", errno);
        UniqueFd ours_out(out[0]), theirs_out(out[1]);
        Command cmd({python, engines_dir + "/nodes.py", engine},
                    environment_with({"PYTHONPATH=" + engines_dir, "NSFORK_BIN_DIR=" + bin_dir,
                                      "NSFORK_SOURCE_DIR=" + source_dir, "PYTHONDONTWRITEBYTECODE=1"}));
        auto pid = spawn_with(cmd, theirs_in.get(), theirs_out.get(), err_log);
        if (!pid) return std::move(pid).error();
        return NodeProcess(*pid, std::move(ours_in), std::move(ours_out), err_log);
    }
    NodeProcess(NodeProcess&& o) noexcept
        : pid_(std::exchange(o.pid_, -1)), in_(std::move(o.in_)), out_(std::move(o.out_)), buffer_(std::move(o.buffer_)),
          err_log_(std::move(o.err_log_)), ended_(o.ended_) {}
    NodeProcess& operator=(NodeProcess&&) = delete;
    // If close() was not called: its input closed, then SIGINT (Python's finally blocks run),
    // then SIGKILL; always reaped.
    ~NodeProcess() {
        if (pid_ < 0) return;
        in_.reset();
        if (!wait_for_exit(pid_, kStartTimeoutMs)) stop_hard();
    }

    Result<void> send(const Json& message) {
        const std::string line = message.dump() + "\n";
        for (std::size_t done = 0; done < line.size();) {
            const ssize_t n = ::send(in_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return sys_error(Errc::internal, "nodes.py stopped reading", errno);
            done += static_cast<std::size_t>(n);
        }
        return {};
    }

    // The next JSON line it prints (other lines, from anything it ran, are skipped).
    Result<Json> receive(int timeout_ms) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                if (line.empty() || line[0] != '{') continue;
                Json j = Json::parse(line, nullptr, false);
                if (!j.is_discarded()) return j;
                continue;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return Error{Errc::internal, fmt::format("nodes.py said nothing in {} s", timeout_ms / 1000)};
            pollfd p{out_.get(), POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return sys_error(Errc::internal, "poll", errno);
            if (!p.revents) continue;
            char chunk[4096];
            const ssize_t n = ::read(out_.get(), chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                ended_ = true;
                return Error{Errc::internal, "nodes.py ended; the last line of its stderr: " + last_line(tail_of(err_log_))};
            }
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    // Ends its input and reads its last word, {"closed": true, "left": [...]}; what it left (and
    // how it ended, if badly: after it reported an error, `failed`, its exit 1 is expected).
    std::vector<std::string> close(bool failed = false) {
        in_.reset();
        std::vector<std::string> left;
        failed |= ended_; // it ended without a word: the error that saw it said why
        while (!ended_) {
            auto j = receive(kStartTimeoutMs);
            if (!j) {
                left.push_back("nodes.py did not close: " + j.error().message);
                break;
            }
            if (j->contains("closed")) {
                for (const auto& l : j->value("left", Json::array())) left.push_back(l.get<std::string>());
                break;
            }
        }
        if (auto status = wait_for_exit(pid_, kReplyTimeoutMs)) {
            if (!WIFEXITED(*status) || WEXITSTATUS(*status) != (failed ? 1 : 0)) left.push_back("nodes.py: " + exit_text(*status));
        } else {
            left.push_back("nodes.py did not exit after closing: stopped");
            stop_hard();
        }
        pid_ = -1;
        return left;
    }

private:
    NodeProcess(pid_t pid, UniqueFd in, UniqueFd out, std::string err_log)
        : pid_(pid), in_(std::move(in)), out_(std::move(out)), err_log_(std::move(err_log)) {}
    void stop_hard() {
        ::kill(pid_, SIGINT);
        if (!wait_for_exit(pid_, kReplyTimeoutMs)) {
            ::kill(pid_, SIGKILL);
            wait_for_exit(pid_, kReplyTimeoutMs);
        }
    }
    pid_t pid_ = -1;
    UniqueFd in_, out_;
    std::string buffer_;
    std::string err_log_;
    bool ended_ = false; // its stdout reached EOF
};

// One call the wrapper logged: "VERB NS STATUS STARTUP_NS".
struct Call {
    std::string verb;
    double ms = 0;
    int status = 0;
    double startup_us = 0;
};

// A runtime as the engine knows it: a copy of the timing wrapper, its sidecar configuration and
// its log; and where in that log each of its runs started.
struct Wrapped {
    std::string shown;           // in the report: "nsfork-oci", "runc", "crun"
    std::string key;             // its name for nodes.py and the engine ("nsfork", "runc-ref")
    std::vector<std::string> real = {};   // the real runtime's argv prefix
    std::string path = {}, log = {};       // the wrapper's copy and its log
    std::vector<std::uint64_t> starts = {}; // log size at the start of each run (warm-up first)
    std::vector<std::string> argv = {};      // the engine's command for it
};

// Copies the wrapper to DIR/KEY with DIR/KEY.conf naming its log and the real runtime.
Result<void> install_wrapper(const std::string& timer, const std::string& dir, Wrapped& w) {
    w.path = dir + "/" + w.key;
    w.log = dir + "/" + w.key + ".log";
    std::error_code ec;
    fs::copy_file(timer, w.path, fs::copy_options::overwrite_existing, ec);
    if (ec) return Error{Errc::unavailable, "cannot copy " + timer + ": " + ec.message()};
    std::ofstream conf(w.path + ".conf", std::ios::trunc);
    conf << w.log << "\n";
    for (const std::string& a : w.real) conf << a << "\n";
    if (!conf) return Error{Errc::internal, "cannot write " + w.path + ".conf"};
    std::ofstream(w.log, std::ios::trunc); // exists, empty: file_size() of the first run is 0
    return {};
}

// The calls of each run: the log between consecutive run starts, the last run's up to `end`.
std::vector<std::vector<Call>> calls_by_run(const Wrapped& w, std::uint64_t end) {
    std::ifstream in(w.log);
    std::stringstream s;
    s << in.rdbuf();
    const std::string text = s.str();
    std::vector<std::vector<Call>> runs;
    for (std::size_t i = 0; i < w.starts.size(); ++i) {
        const std::uint64_t from = w.starts[i], to = i + 1 < w.starts.size() ? w.starts[i + 1] : end;
        std::istringstream lines(text.substr(std::min<std::size_t>(from, text.size()),
                                             std::min<std::size_t>(to, text.size()) - std::min<std::size_t>(from, text.size())));
        std::vector<Call> calls;
        std::string line;
        while (std::getline(lines, line)) {
            std::istringstream f(line);
            Call c;
            long long ns = 0, startup = 0;
            if (f >> c.verb >> ns >> c.status >> startup) {
                c.ms = static_cast<double>(ns) / 1e6;
                c.startup_us = static_cast<double>(startup) / 1e3;
                calls.push_back(std::move(c));
            }
        }
        runs.push_back(std::move(calls));
    }
    return runs;
}

// Waits (up to 5 s) until the last run of `w` has logged as many calls as its earlier runs did
// (their median): an engine may still be removing the container after its command returned.
void settle_last_run(const Wrapped& w) {
    if (w.starts.size() < 2) return;
    for (int i = 0; i < 250; ++i) {
        auto runs = calls_by_run(w, file_size(w.log));
        std::vector<double> counts;
        for (std::size_t k = 0; k + 1 < runs.size(); ++k) counts.push_back(static_cast<double>(runs[k].size()));
        if (static_cast<double>(runs.back().size()) >= median_of(counts)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

// "nsfork-oci: create 1, start 1, delete 1" — each verb and its calls per run (median).
std::string calls_text(const std::vector<std::vector<Call>>& runs, const std::vector<std::string>& verbs) {
    std::vector<std::string> parts;
    for (const std::string& v : verbs) {
        std::vector<double> n;
        for (const auto& run : runs)
            n.push_back(static_cast<double>(std::count_if(run.begin(), run.end(), [&](const Call& c) { return c.verb == v; })));
        parts.push_back(fmt::format("{} {:g}", v, median_of(n)));
    }
    return fmt::format("{}", fmt::join(parts, ", "));
}

// Like alternate(), but always in the same cyclic order (A B A B ..., one warm-up round first):
// between two runs of a runtime another runtime's run always comes, which gives calls an engine
// makes after its command returned the time to land in the log window of their own run.
Alternated cycle(int rounds, const std::vector<Variant>& variants) {
    Alternated out;
    out.samples.resize(variants.size());
    out.errors.resize(variants.size());
    for (int round = -1; round < rounds; ++round)
        for (std::size_t i = 0; i < variants.size(); ++i) {
            if (out.errors[i]) continue;
            auto sample = variants[i].run();
            if (!sample) out.errors[i] = std::move(sample).error();
            else if (round >= 0) out.samples[i].push_back(*sample);
        }
    return out;
}

// The pid of the `nsfork serve` listening on `socket` (the node's), 0 if none is found.
pid_t server_on(const std::string& socket) {
    for (const auto& entry : fs::directory_iterator("/proc", std::filesystem::directory_options::skip_permission_denied)) {
        const std::string name = entry.path().filename();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        std::ifstream in(entry.path() / "cmdline");
        std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        if (cmdline.find(" serve ") != std::string::npos && cmdline.find(socket) != std::string::npos)
            return static_cast<pid_t>(std::stol(name));
    }
    return 0;
}

// What nodes.py says was left, as errors where it is this node's (names one of `ours`: its
// directory, its server's cgroup tree, the wrappers' directory, this build's binaries) and as one
// note otherwise: its check compares the whole machine before and after, and other work on a
// shared machine makes and removes processes and cgroups meanwhile.
void report_left(Report& r, const std::string& S, const std::string& engine, const std::vector<std::string>& left,
                 const std::vector<std::string>& ours) {
    std::vector<std::string> others;
    for (const std::string& l : left) {
        const bool mine = l.rfind("nodes.py", 0) == 0 || std::any_of(ours.begin(), ours.end(), [&](const std::string& o) {
                              return !o.empty() && l.find(o) != std::string::npos;
                          });
        if (mine) r.error(S, engine + ": left: " + l);
        else others.push_back(l);
    }
    if (!others.empty())
        r.note(S, fmt::format("{}: nodes.py's leak check also saw {} new processes/cgroups that name nothing of this "
                              "node (other work on the machine?), e.g. {}",
                              engine, others.size(),
                              fmt::join(others.begin(), others.begin() + std::min<std::size_t>(others.size(), 3), "; ")));
}

// An engine's command as the report shows it: without a leading `env [-i] NAME=VALUE...`.
std::string shown_command(const std::vector<std::string>& argv) {
    std::size_t i = 0;
    if (i < argv.size() && fs::path(argv[i]).filename() == "env") {
        ++i;
        while (i < argv.size() && (argv[i] == "-i" || (argv[i][0] != '-' && argv[i].find('=') != std::string::npos))) ++i;
    }
    return fmt::format("{}", fmt::join(argv.begin() + static_cast<std::ptrdiff_t>(std::min(i, argv.size())), argv.end(), " "));
}

// The runtimes, measured through one engine; figures and notes into the report.
void measure_engine(Report& r, const std::string& S, const std::string& engine,
                    std::vector<Wrapped>& runtimes, NodeProcess& node, const std::string& dir, int runs) {
    const std::string err_log = dir + "/" + engine + "-commands.log";
    auto pool_counts = [&]() -> std::optional<Json> {
        if (!node.send(Json{{"pool", nullptr}})) return std::nullopt;
        auto j = node.receive(kReplyTimeoutMs);
        if (!j || !j->contains("pool")) return std::nullopt;
        return (*j)["pool"];
    };
    const auto pool_before = pool_counts();

    std::vector<Variant> variants;
    std::vector<std::unique_ptr<Command>> commands;
    for (Wrapped& w : runtimes) {
        std::vector<std::string> argv = w.argv;
        if (!argv.empty() && argv[0].find('/') == std::string::npos) argv[0] = find_tool(argv[0]);
        commands.push_back(std::make_unique<Command>(argv, inherited_env()));
        variants.push_back({w.shown, [&w, &cmd = *commands.back(), &err_log] {
                                w.starts.push_back(file_size(w.log));
                                return time_command(cmd, err_log);
                            }});
    }
    const Alternated totals = cycle(runs, variants);
    for (const Wrapped& w : runtimes) settle_last_run(w);
    const auto pool_after = pool_counts();

    // Each runtime's calls per measured run: run k of the samples is call window k + 1 (window 0
    // is the warm-up's).
    std::vector<std::string> verbs; // in order of first appearance, any runtime
    std::vector<std::vector<std::vector<Call>>> calls;
    for (std::size_t i = 0; i < runtimes.size(); ++i) {
        auto all = calls_by_run(runtimes[i], file_size(runtimes[i].log));
        std::vector<std::vector<Call>> measured;
        for (std::size_t k = 0; k < totals.samples[i].size() && k + 1 < all.size(); ++k) measured.push_back(all[k + 1]);
        for (const auto& run : measured)
            for (const Call& c : run)
                if (std::find(verbs.begin(), verbs.end(), c.verb) == verbs.end()) verbs.push_back(c.verb);
        calls.push_back(std::move(measured));
    }
    // Per run, the sum of the calls' times whose verb `pick` accepts.
    auto per_run = [&](std::size_t i, auto pick) {
        std::vector<double> out;
        for (const auto& run : calls[i]) {
            double sum = 0;
            for (const Call& c : run)
                if (pick(c)) sum += c.ms;
            out.push_back(sum);
        }
        return out;
    };
    auto role = [](std::size_t i) { return i == 0 ? Role::subject : Role::baseline; };
    std::vector<bool> has_share(runtimes.size());
    for (std::size_t i = 0; i < runtimes.size(); ++i) {
        const Wrapped& w = runtimes[i];
        if (totals.errors[i]) r.error(S, engine + ": " + w.shown + ": " + totals.errors[i]->message);
        auto share = per_run(i, [](const Call&) { return true; });
        has_share[i] = std::any_of(share.begin(), share.end(), [](double x) { return x > 0; });
        if (!totals.samples[i].empty() && !has_share[i])
            r.error(S, engine + ": " + w.shown + ": the engine never called the runtime's wrapper (" + w.path + ")");
    }
    // Figures group by group (the report prints a group's rows together), each runtime in turn.
    const std::string g_total = engine + ": the engine's whole command, spawn until it exits";
    for (std::size_t i = 0; i < runtimes.size(); ++i)
        if (!totals.samples[i].empty()) add_figure(r, S, {g_total, runtimes[i].shown, role(i)}, totals.samples[i], "ms");
    const std::string g_share = engine + ": the runtime's own share (its calls in a run, summed)";
    for (std::size_t i = 0; i < runtimes.size(); ++i)
        if (has_share[i])
            add_figure(r, S, {g_share, runtimes[i].shown, role(i), "calls per run: " + calls_text(calls[i], verbs)},
                       per_run(i, [](const Call&) { return true; }), "ms");
    const std::string g_rest = engine + ": the rest: whole command - runtime share, run by run";
    for (std::size_t i = 0; i < runtimes.size(); ++i) {
        if (!has_share[i]) continue;
        auto rest = per_run(i, [](const Call&) { return true; });
        for (std::size_t k = 0; k < rest.size(); ++k) rest[k] = totals.samples[i][k] - rest[k];
        add_figure(r, S, {g_rest, runtimes[i].shown, role(i)}, rest, "ms");
    }
    // Each verb's time per run (summed over its calls in the run; 0 in a run without it).
    for (const std::string& verb : verbs)
        for (std::size_t i = 0; i < runtimes.size(); ++i)
            if (has_share[i])
                add_figure(r, S, {fmt::format("{}: `{}` per run", engine, verb), runtimes[i].shown, role(i)},
                           per_run(i, [&](const Call& c) { return c.verb == verb; }), "ms");
    for (std::size_t i = 0; i < runtimes.size(); ++i) {
        const Wrapped& w = runtimes[i];
        std::map<std::string, int> failed; // "verb -> status" -> calls
        std::vector<double> startup;
        for (const auto& run : calls[i])
            for (const Call& c : run) {
                if (c.status != 0) ++failed[fmt::format("{} -> {}", c.verb, c.status)];
                startup.push_back(c.startup_us);
            }
        std::vector<std::string> failures;
        for (const auto& [what, n] : failed) failures.push_back(fmt::format("{} ({} calls)", what, n));
        if (!failures.empty())
            r.note(S, fmt::format("{}: {}: calls that ended non-zero (the engine's own doing, e.g. a state or delete of a "
                                  "container already gone): {}", engine, w.shown, fmt::join(failures, ", ")));
        r.note(S, fmt::format("{}: {}: `{}` (the wrapper's own start-up before it forks the runtime: median {:.0f} us a call)",
                              engine, w.shown, shown_command(w.argv), median_of(startup)));
    }
    auto count = [](const std::optional<Json>& p, const char* k) { return p ? p->value(k, -1) : -1; };
    if (pool_after)
        r.note(S, fmt::format("{}: the node's warm pool after the runs: served {}, discarded {} (during the runs: served "
                              "{}, discarded {}; nsfork-oci ran {} times, warm-up included)",
                              engine, count(pool_after, "served"), count(pool_after, "discarded"),
                              count(pool_after, "served") - count(pool_before, "served"),
                              count(pool_after, "discarded") - count(pool_before, "discarded"),
                              runtimes[0].starts.size()));
    else r.error(S, engine + ": the node did not answer the pool request");
}

// Whether crun can run a container here (it refuses a cgroup v1 hybrid host); why not if not.
std::optional<std::string> crun_refuses(const std::string& crun) {
    auto bundle = RuncBundle::create(crun, "/bin/true");
    if (!bundle) return bundle.error().message;
    auto run = testing::run_process(bundle->run_argv());
    if (!run) return run.error().message;
    if (run->exit_code != 0) {
        std::string err = run->err;
        while (!err.empty() && err.back() == '\n') err.pop_back();
        return fmt::format("`crun run` of a bundle exits {}: {}", run->exit_code, err);
    }
    return std::nullopt;
}

// The wrapper's own cost: the wrapper around /bin/true against /bin/true, spawn until reaped.
Result<void> measure_wrapper(Context& ctx, Report& r, const std::string& S, const std::string& timer,
                             const std::string& dir, int rounds) {
    Wrapped w{.shown = "wrapper", .key = "true-timed", .real = {"/bin/true"}};
    if (auto ok = install_wrapper(timer, dir, w); !ok) return ok;
    const std::string group = "the timing wrapper around /bin/true, spawn until reaped";
    std::vector<Variant> variants = {
        {"nsfork-runtime-timer /bin/true", [&] { return helper_us(ctx.helper, HelperOp::spawn_wait, {w.path}); }},
        {"/bin/true", [&] { return helper_us(ctx.helper, HelperOp::spawn_wait, {"/bin/true"}); }},
    };
    const Alternated a = alternate(rounds, variants, 1);
    record(r, S, {{group, variants[0].name, Role::subject}, {group, variants[1].name, Role::baseline}}, a);
    if (a.samples[0].size() == a.samples[1].size() && !a.samples[0].empty()) {
        std::vector<double> diff;
        for (std::size_t k = 0; k < a.samples[0].size(); ++k) diff.push_back(a.samples[0][k] - a.samples[1][k]);
        add_figure(r, S, {"the timing wrapper's own cost per call (paired difference, round by round)", "wrapper - /bin/true",
                          Role::subject, "in the engine's whole command, not in the runtime's share"},
                   diff, "us");
    }
    return {};
}

} // namespace

Result<void> run_engines(Context& ctx, Report& r) {
    const std::string S = "engines";
    const int runs = ctx.engines.runs > 0 ? ctx.engines.runs : ctx.quick ? 2 : kDefaultRuns;
    const char* env_source = std::getenv("NSFORK_SOURCE_DIR");
    const std::string source_dir = env_source && *env_source ? env_source : NSFORK_SOURCE_DIR;
    const std::string python = find_tool("python3"), runc = find_tool("runc"), crun = find_tool("crun");
    const std::string timer = ctx.bin("nsfork-runtime-timer");
    if (python.empty()) return Error{Errc::unavailable, "python3 is not installed: nodes.py starts the engines"};
    if (runc.empty()) return Error{Errc::unavailable, "runc is not installed (apt-get install runc)"};
    if (::access(timer.c_str(), X_OK) != 0) return Error{Errc::unavailable, timer + " is not built"};
    for (const std::string& e : ctx.engines.only)
        if (std::find(std::begin(kEngines), std::end(kEngines), e) == std::end(kEngines))
            return Error{Errc::bad_request, "unknown engine '" + e + "' (slurm, podman, containerd, docker)"};
    auto dir = TempDir::create("engines");
    if (!dir) return std::move(dir).error();

    if (auto ok = measure_wrapper(ctx, r, S, timer, dir->path(), ctx.quick ? 10 : 100); !ok) return ok;

    std::optional<std::string> no_crun = crun.empty() ? std::optional<std::string>("not installed (apt-get install crun)")
                                                      : crun_refuses(crun);
    if (no_crun)
        r.skip(S, "crun", *no_crun + " - an engine cannot run it here as it is (the oci scenario runs it in a private "
                                     "cgroup2-only mount namespace, which an engine's own mounts would not reach)");

    for (const char* engine : kEngines) {
        if (!ctx.engines.only.empty() &&
            std::find(ctx.engines.only.begin(), ctx.engines.only.end(), engine) == ctx.engines.only.end())
            continue;
        const std::int64_t t0 = now_ns();
        const std::string err_log = dir->path() + "/" + engine + "-node.log";
        auto node = NodeProcess::start(python, source_dir, ctx.bin_dir, engine, err_log);
        if (!node) {
            r.skip(S, engine, node.error().message);
            continue;
        }
        auto first = node->receive(kStartTimeoutMs);
        if (!first || first->contains("error")) {
            r.skip(S, engine, "not measured: " + (first ? first->value("error", "") : first.error().message));
            report_left(r, S, engine, node->close(static_cast<bool>(first)), {"/nsfork-engines-", ctx.bin_dir + "/"});
            continue;
        }
        const std::string socket = first->value("socket", ""), node_dir = first->value("dir", "");
        const pid_t server = server_on(socket);
        // The node's directory /tmp/nsfe-XXXX; engines name their state after the XXXX too.
        const std::vector<std::string> ours = {node_dir, node_dir.substr(node_dir.rfind('-') + 1), dir->path(),
                                               ctx.bin_dir + "/", server ? fmt::format("nsfork-{}", server) : ""};
        std::vector<Wrapped> runtimes;
        runtimes.push_back({.shown = "nsfork-oci", .key = "nsfork", .real = {ctx.bin("nsfork-oci"), "--nsfork-socket", socket}});
        runtimes.push_back({.shown = "runc", .key = "runc-ref", .real = {runc}});
        if (!no_crun) runtimes.push_back({.shown = "crun", .key = "crun-ref", .real = {crun}});
        const std::string wdir = dir->path() + "/" + engine;
        fs::create_directories(wdir);
        Json names = Json::object();
        for (Wrapped& w : runtimes) {
            if (auto ok = install_wrapper(timer, wdir, w); !ok) return ok;
            names[w.key] = w.path;
        }
        auto commands = node->send(Json{{"runtimes", names}}) ? node->receive(kStartTimeoutMs)
                                                             : Result<Json>(Error{Errc::internal, "nodes.py stopped reading"});
        if (!commands || !commands->contains("commands")) {
            r.skip(S, engine, "not measured: " + (commands ? commands->value("error", commands->dump()) : commands.error().message));
            report_left(r, S, engine, node->close(static_cast<bool>(commands)), ours);
            continue;
        }
        for (Wrapped& w : runtimes) w.argv = (*commands)["commands"].value(w.key, std::vector<std::string>{});
        if (std::any_of(runtimes.begin(), runtimes.end(), [](const Wrapped& w) { return w.argv.empty(); })) {
            r.error(S, std::string(engine) + ": nodes.py gave no command for a runtime: " + commands->dump());
            report_left(r, S, engine, node->close(), ours);
            continue;
        }
        const double start_s = static_cast<double>(now_ns() - t0) / 1e9;
        measure_engine(r, S, engine, runtimes, *node, dir->path(), runs);
        report_left(r, S, engine, node->close(), ours);
        r.note(S, fmt::format("{}: node and daemons up in {:.1f} s; {} runs per runtime after a warm-up each, alternated; "
                              "{:.1f} s in all",
                              engine, start_s, runs, static_cast<double>(now_ns() - t0) / 1e9));
    }
    r.note(S, "whole command: the engine's client spawned by the bench, stdio /dev/null, until it exits 0; runtime share: "
              "the runtime's calls in that run as logged by its wrapper (fork until reaped), summed; the wrapper's own "
              "exec and start-up are in the whole command only (its row above)");
    return {};
}

} // namespace nsfork::bench
