#include "helper.hpp"

#include "cgroup_destroy.hpp"
#include "cgroups.hpp"
#include "base/syscalls.hpp"
#include "clock.hpp"
#include "process.hpp"
#include "protocol/framing.hpp"
#include "raw_floor.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <optional>

namespace nsfork::bench {

namespace {

// One request: an operation, its sizes, and the command as NUL-separated strings.
struct Request {
    HelperOp op;
    std::int32_t count;
    std::int32_t parallel;
    std::uint32_t argv_bytes;
    char argv[3968];
};

struct Reply {
    std::int32_t ok;
    std::int32_t sys_errno;
    std::int64_t ns;
    char message[496];
};

// Everything the helper keeps between requests: where its cgroups go.
struct HelperState {
    std::optional<CgroupDir> v2_parent; // our own subtree, so every cgroup we make is in one place
    std::optional<CgroupPlace> v2, freezer;
};

std::vector<std::string> unpack(const Request& r) {
    std::vector<std::string> argv;
    for (std::uint32_t at = 0; at < r.argv_bytes && at < sizeof r.argv;) {
        argv.emplace_back(r.argv + at);
        at += static_cast<std::uint32_t>(argv.back().size()) + 1;
    }
    return argv;
}

Result<std::int64_t> unavailable(const std::string& why) { return Error{Errc::unavailable, why}; }

Result<std::int64_t> dispatch(const Request& r, HelperState& st, const HelperFacts& facts) {
    const std::vector<std::string> argv = unpack(r);
    if (r.op != HelperOp::ping && argv.empty()) return Error{Errc::bad_request, "helper: no command given"};
    switch (r.op) {
    case HelperOp::ping: return std::int64_t{0};
    case HelperOp::spawn_wait: return time_spawn_wait(Command(argv, inherited_env()));
    case HelperOp::spawn_wait_on_terminal: return time_spawn_wait_on_terminal(Command(argv, inherited_env()));
    case HelperOp::posix_spawn: return time_posix_spawn(Command(argv));
    case HelperOp::raw_launch: return raw_launch(Command(argv));
    case HelperOp::raw_launch_wait: return raw_launch_wait(Command(argv));
    case HelperOp::raw_churn: return raw_churn(Command(argv), r.count, r.parallel);
    case HelperOp::raw_namespace_kill: return raw_namespace_kill(Command(argv));
    case HelperOp::cgroup_kill:
    case HelperOp::kill_each:
        if (!st.v2) {
            if (!facts.cgroup2_missing.empty()) return unavailable(facts.cgroup2_missing);
            auto dir = CgroupDir::create(facts.cgroup2_dir + "/nsfork-bench-" + std::to_string(::getpid()), true);
            if (!dir) return std::move(dir).error();
            st.v2_parent.emplace(std::move(*dir));
            st.v2.emplace(st.v2_parent->path(), true);
        }
        return r.op == HelperOp::cgroup_kill ? cgroup_kill_destroy(Command(argv), *st.v2)
                                             : kill_each_destroy(Command(argv), *st.v2);
    case HelperOp::freezer:
        if (!facts.freezer_missing.empty()) return unavailable(facts.freezer_missing);
        if (!st.freezer) st.freezer.emplace(facts.freezer_dir, false);
        return freezer_destroy(Command(argv), *st.freezer);
    }
    return Error{Errc::bad_request, "helper: unknown operation"};
}

// The helper's main loop: one request at a time until the bench hangs up.
[[noreturn]] void serve(UniqueFd inherited_sock, const HelperFacts& facts) {
    // Keep only stdio and our socket: a copy of the bench's server connection held here would
    // keep that server alive after the bench hung up.
    UniqueFd sock = std::move(inherited_sock);
    if (sock.get() != 3) sock.reset(::dup3(sock.get(), 3, O_CLOEXEC)); // dup3 refuses old == new
    sys::close_range(4, ~0U, 0);
    // Orphans of the destroy baselines' forkers come to us (not to the host's init), so that
    // we can reap them and leave nothing behind.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int code = 0;
    {
        HelperState st;
        for (;;) {
            Request req{};
            const ssize_t n = ::recv(sock.get(), &req, sizeof req, 0);
            if (n <= 0) break;
            Reply rep{};
            auto out = dispatch(req, st, facts);
            reap_all_children(); // nothing may outlive a request
            if (out) {
                rep.ok = 1;
                rep.ns = *out;
            } else {
                rep.sys_errno = out.error().sys_errno;
                std::strncpy(rep.message, out.error().message.c_str(), sizeof rep.message - 1);
            }
            if (::send(sock.get(), &rep, sizeof rep, MSG_NOSIGNAL) != sizeof rep) {
                code = 1;
                break;
            }
        }
        if (st.v2_parent)
            if (!st.v2_parent->remove()) code = 1;
    }
    ::_exit(code);
}

HelperFacts find_facts() {
    HelperFacts f;
    if (auto d = own_cgroup2_dir()) f.cgroup2_dir = *d;
    else f.cgroup2_missing = d.error().message;
    if (auto d = freezer_root()) f.freezer_dir = *d;
    else f.freezer_missing = d.error().message;
    return f;
}

} // namespace

Result<Helper> Helper::start() {
    auto pair = seqpacket_pair();
    if (!pair) return std::move(pair).error();
    auto& [bench_end, helper_end] = *pair;
    HelperFacts facts = find_facts();
    const pid_t pid = ::fork();
    if (pid < 0) return sys_error(Errc::internal, "fork (helper) failed", errno);
    if (pid == 0) {
        bench_end.reset();
        serve(std::move(helper_end), facts);
    }
    return Helper(std::move(bench_end), pid, std::move(facts));
}

Helper::~Helper() {
    if (pid_ < 0) return;
    sock_.reset();
    (void)wait_pid(pid_);
}

Result<std::int64_t> Helper::run(HelperOp op, const std::vector<std::string>& argv, int count, int parallel) {
    Request req{};
    req.op = op;
    req.count = count;
    req.parallel = parallel;
    for (const std::string& a : argv) {
        if (req.argv_bytes + a.size() + 1 > sizeof req.argv) return Error{Errc::bad_request, "helper: command too long"};
        std::memcpy(req.argv + req.argv_bytes, a.c_str(), a.size() + 1);
        req.argv_bytes += static_cast<std::uint32_t>(a.size() + 1);
    }
    if (::send(sock_.get(), &req, sizeof req, MSG_NOSIGNAL) != sizeof req)
        return sys_error(Errc::disconnected, "helper: send failed", errno);
    Reply rep{};
    ssize_t n;
    do n = ::recv(sock_.get(), &rep, sizeof rep, 0);
    while (n < 0 && errno == EINTR);
    if (n != sizeof rep) return Error{Errc::disconnected, "helper: no answer (it died?)"};
    if (!rep.ok) return Error{Errc::internal, rep.message, rep.sys_errno};
    return rep.ns;
}

Result<std::int64_t> Helper::ping() {
    Request req{};
    req.op = HelperOp::ping;
    Reply rep{};
    const std::int64_t t0 = now_ns();
    // Only the header matters for a ping: send the small prefix, like a real small message.
    if (::send(sock_.get(), &req, offsetof(Request, argv), MSG_NOSIGNAL) < 0)
        return sys_error(Errc::disconnected, "helper: send failed", errno);
    const ssize_t n = ::recv(sock_.get(), &rep, sizeof rep, 0);
    const std::int64_t t1 = now_ns();
    if (n != sizeof rep || !rep.ok) return Error{Errc::disconnected, "helper: bad ping answer"};
    return t1 - t0;
}

} // namespace nsfork::bench
