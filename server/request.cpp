#include "request.hpp"

#include "protocol/messages.hpp"
#include "server/ids.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <cstring>

namespace nsfork {

namespace {

// Checks a string the kernel will see as a C string; `what` names it, and is only called on error.
template <class Name>
Result<void> check_c_string(const flatbuffers::String* s, Name what) {
    if (s && std::memchr(s->c_str(), '\0', s->size()))
        return Error{Errc::bad_request, what() + " contains a NUL byte"};
    return {};
}

// Refuses a signal set (bit N-1: signal N) naming a signal that cannot be `what` ("blocked",
// "ignored"), or one the C library keeps for itself (32 and 33 under glibc: thread
// cancellation and set*id across threads break when they are blocked or ignored).
Result<void> check_signal_set(std::uint64_t set, std::string_view field, std::string_view what) {
    for (int sig = 1; sig <= 64; ++sig) {
        if (!(set >> (sig - 1) & 1)) continue;
        if (sig == SIGKILL || sig == SIGSTOP)
            return Error{Errc::bad_request, fmt::format("{}: signal {} (SIG{}) cannot be {}", field, sig,
                                                        sigabbrev_np(sig), what)};
        if (sig > SIGSYS && sig < SIGRTMIN)
            return Error{Errc::bad_request, fmt::format("{}: signal {} is reserved by the C library", field, sig)};
    }
    return {};
}

// (uid_t)-1 and (gid_t)-1 mean "leave unchanged" to setresuid and setresgid: never an id.
constexpr std::uint32_t kNoId = 0xffffffffu;

// The command's user, group and supplementary groups.
Result<void> parse_user(const wire::User& user, LaunchSpec& spec) {
    if (user.uid()) {
        if (*user.uid() == kNoId) return Error{Errc::bad_request, "user.uid 4294967295 ((uid_t)-1) is not a user id"};
        spec.uid = *user.uid();
    }
    if (user.gid()) {
        if (*user.gid() == kNoId) return Error{Errc::bad_request, "user.gid 4294967295 ((gid_t)-1) is not a group id"};
        spec.gid = *user.gid();
    }
    if (const auto* groups = user.groups()) {
        if (groups->size() > kMaxGroups)
            return Error{Errc::bad_request,
                         fmt::format("user.groups has {} entries, at most {}", groups->size(), kMaxGroups)};
        spec.groups.emplace(groups->begin(), groups->end());
        for (std::size_t i = 0; i < spec.groups->size(); ++i)
            if ((*spec.groups)[i] == kNoId)
                return Error{Errc::bad_request,
                             fmt::format("user.groups[{}] 4294967295 ((gid_t)-1) is not a group id", i)};
    }
    return {};
}

// A hold launch holds namespaces for a process the client makes: every setting of a command of
// the server's is refused, naming its field.
Result<void> check_hold(const wire::Launch& req, const LaunchSpec& spec) {
    auto refuse = [](std::string_view field) {
        return Error{Errc::bad_request,
                     fmt::format("a hold launch runs no command of the server's: it takes no {}", field)};
    };
    if (req.argv()->size() != 0) return refuse("argv");
    if (req.env() && req.env()->size() != 0) return refuse("env");
    if (req.cwd()) return refuse("cwd");
    if (req.tty()) return refuse("tty");
    if (req.tty_rows() || req.tty_cols()) return refuse("tty_rows or tty_cols");
    if (req.kill_group()) return refuse("kill_group");
    if (req.signal_mask()) return refuse("signal_mask");
    if (req.ignored_signals()) return refuse("ignored_signals");
    if (req.user()) return refuse("user");
    if (spec.stdio[0] >= 0 || spec.stdio[1] >= 0 || spec.stdio[2] >= 0) return refuse("stdio fds");
    if (!spec.extra_fds.empty()) return refuse("extra fds");
    return {};
}

// Whether `s` is "c" and digits, as the server names its own leaves (Server::next_cgroup_name).
bool server_leaf_name(std::string_view s) {
    return s.size() > 1 && s[0] == 'c' && s.find_first_not_of("0123456789", 1) == std::string_view::npos;
}

} // namespace

Result<void> check_cgroup_name(std::string_view name) {
    auto bad = [name](std::string_view why) {
        return Error{Errc::bad_request, fmt::format("cgroup_name '{}' {}", name.substr(0, 64), why)};
    };
    if (name.empty()) return bad("is empty");
    if (name.size() > kMaxCgroupName) return bad(fmt::format("is longer than {} bytes", kMaxCgroupName));
    if (name.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
    if (name.front() == '/') return bad("is absolute: it names a path below the server's container tree");
    bool first = true;
    for (std::size_t at = 0; at <= name.size();) {
        const std::size_t end = std::min(name.find('/', at), name.size());
        const std::string_view part = name.substr(at, end - at);
        if (part.empty()) return bad("has an empty component");
        if (part == "." || part == "..") return bad(fmt::format("has a '{}' component", part));
        if (part.size() > kMaxCgroupComponent)
            return bad(fmt::format("has a component longer than {} bytes", kMaxCgroupComponent));
        if (first && server_leaf_name(part)) return bad("starts with a name of the form c<N>, the server's own leaves");
        first = false;
        at = end + 1;
    }
    return {};
}

Result<LaunchRequest> parse_launch(const wire::Launch& req, const std::vector<UniqueFd>& fds) {
    LaunchRequest out;
    LaunchSpec& spec = out.spec;
    int& join_fd = out.join_fd;
    if (req.id() && req.id()->size() > 0) {
        out.id = req.id()->str();
        if (auto ok = validate_id(out.id); !ok) return std::move(ok).error();
    }

    const std::size_t declared = req.fds() ? req.fds()->size() : 0;
    if (declared != fds.size())
        return Error{Errc::bad_request,
                     fmt::format("request declares {} fds but carries {}", declared, fds.size())};
    for (std::size_t i = 0; i < declared; ++i) {
        const auto role = req.fds()->Get(static_cast<flatbuffers::uoffset_t>(i));
        if (role == wire::FdRole::PidNamespace || role == wire::FdRole::Pidfd) {
            if (join_fd >= 0) return Error{Errc::bad_request, "two pid namespaces to join"};
            join_fd = fds[i].get();
            continue;
        }
        if (role == wire::FdRole::Extra) {
            if (spec.extra_fds.size() == kMaxExtraFds)
                return Error{Errc::bad_request, fmt::format("more than {} extra fds", kMaxExtraFds)};
            spec.extra_fds.push_back(fds[i].get());
            continue;
        }
        const auto slot = static_cast<std::size_t>(role);
        if (slot > 2)
            return Error{Errc::bad_request, fmt::format("fd {} has role {}, which a Launch cannot take",
                                                        i, static_cast<int>(role))};
        if (spec.stdio[slot] >= 0)
            return Error{Errc::bad_request, fmt::format("two fds for stdio slot {}", slot)};
        spec.stdio[slot] = fds[i].get();
    }

    if (req.cgroup_name()) {
        if (!req.hold()) return Error{Errc::bad_request, "cgroup_name names a hold launch's leaf; this launch is not one"};
        if (auto ok = check_cgroup_name(req.cgroup_name()->string_view()); !ok) return std::move(ok).error();
        out.cgroup_name = req.cgroup_name()->str();
    }
    if (!req.hold() && req.device_program())
        return Error{Errc::bad_request, "device_program is a hold launch's; this launch is not one"};
    if (!req.hold() && req.new_namespaces())
        return Error{Errc::bad_request, "new_namespaces is a hold launch's; this launch is not one"};
    if (req.hold()) {
        if (auto ok = check_hold(req, spec); !ok) return std::move(ok).error();
        spec.hold = true;
        spec.pid_max = req.pid_max();
        if (const auto* program = req.device_program()) {
            if (program->size() == 0 || program->size() % kDeviceInstructionBytes != 0)
                return Error{Errc::bad_request, fmt::format("device_program has {} bytes: not a whole number of "
                                                            "{}-byte instructions", program->size(),
                                                            kDeviceInstructionBytes)};
            if (program->size() > kMaxDeviceInstructions * kDeviceInstructionBytes)
                return Error{Errc::bad_request, fmt::format("device_program has {} instructions, more than {}",
                                                            program->size() / kDeviceInstructionBytes,
                                                            kMaxDeviceInstructions)};
            out.device_program = {program->data(), program->size()};
        }
        if (const std::uint32_t unknown = req.new_namespaces() & ~kSpareNamespaceTypes)
            return Error{Errc::bad_request, fmt::format("new_namespaces {:#x} has flags other than CLONE_NEWNET, "
                                                        "CLONE_NEWIPC and CLONE_NEWUTS: {:#x}",
                                                        req.new_namespaces(), unknown)};
        out.new_namespaces = req.new_namespaces();
        return out;
    }
    if (req.argv()->size() == 0) return Error{Errc::bad_request, "argv is empty: no command to run"};
    spec.argv.reserve(req.argv()->size());
    if (req.env()) spec.env.reserve(req.env()->size());
    for (flatbuffers::uoffset_t i = 0; i < req.argv()->size(); ++i) {
        const flatbuffers::String* a = req.argv()->Get(i);
        if (auto ok = check_c_string(a, [i] { return fmt::format("argv[{}]", i); }); !ok) return std::move(ok).error();
        spec.argv.push_back(a->str());
    }
    if (spec.argv[0].empty()) return Error{Errc::bad_request, "argv[0] is empty: no command to run"};
    if (req.env()) {
        for (flatbuffers::uoffset_t i = 0; i < req.env()->size(); ++i) {
            const flatbuffers::String* e = req.env()->Get(i);
            if (auto ok = check_c_string(e, [i] { return fmt::format("environment entry {}", i); }); !ok)
                return std::move(ok).error();
            if (!std::memchr(e->c_str(), '=', e->size()) || e->size() == 0 || e->c_str()[0] == '=')
                return Error{Errc::bad_request,
                             fmt::format("environment entry {} ('{}') is not of the form NAME=VALUE",
                                         i, e->string_view().substr(0, 64))};
            spec.env.push_back(e->str());
        }
    }
    if (req.cwd()) {
        if (auto ok = check_c_string(req.cwd(), [] { return std::string("cwd"); }); !ok) return std::move(ok).error();
        spec.cwd = req.cwd()->str();
        if (spec.cwd.empty() || spec.cwd[0] != '/')
            return Error{Errc::bad_request, "cwd '" + spec.cwd + "' is not an absolute path"};
    }
    spec.pid_max = req.pid_max();

    spec.tty = req.tty();
    spec.tty_rows = req.tty_rows();
    spec.tty_cols = req.tty_cols();
    if (spec.tty && (spec.stdio[0] >= 0 || spec.stdio[1] >= 0 || spec.stdio[2] >= 0))
        return Error{Errc::bad_request, "a tty launch takes no stdio fds: its stdio is the terminal"};
    spec.kill_group = req.kill_group();
    spec.signal_mask = req.signal_mask();
    if (auto ok = check_signal_set(spec.signal_mask, "signal_mask", "blocked"); !ok) return std::move(ok).error();
    spec.ignored_signals = req.ignored_signals();
    if (auto ok = check_signal_set(spec.ignored_signals, "ignored_signals", "ignored"); !ok)
        return std::move(ok).error();
    if (req.user())
        if (auto ok = parse_user(*req.user(), spec); !ok) return std::move(ok).error();
    return out;
}

Result<std::uint32_t> negotiate_version(const wire::Hello& hello) {
    const std::uint32_t max = hello.version();
    const std::uint32_t min = hello.min_version() == 0 ? max : hello.min_version();
    if (min > max)
        return Error{Errc::protocol, fmt::format("Hello's min_version {} is above its version {}", min, max)};
    const std::uint32_t common = std::min(max, kProtocolVersion);
    if (common >= std::max(min, kMinProtocolVersion)) return common;
    const std::string offered = min == max ? fmt::format("protocol version {}", max)
                                           : fmt::format("protocol versions {}..{}", min, max);
    return Error{Errc::protocol, fmt::format("{} not supported: this server speaks {}..{}", offered,
                                             kMinProtocolVersion, kProtocolVersion)};
}

} // namespace nsfork
