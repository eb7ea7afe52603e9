#include "launcher/plan.hpp"

#include "base/syscalls.hpp"
#include "base/unix_socket.hpp"

#include <cerrno>
extern "C" {
#include "launcher/shim_plan.h"
}

#include <cstring>

namespace nsfork {

namespace {

std::uint32_t plan_flags(const LaunchSpec& spec) {
    std::uint32_t flags = 0;
    if (spec.foreground) flags |= NSFORK_PLAN_FOREGROUND;
    if (spec.tty) flags |= NSFORK_PLAN_TTY;
    if (spec.kill_group) flags |= NSFORK_PLAN_KILL_GROUP;
    if (spec.uid) flags |= NSFORK_PLAN_UID;
    if (spec.gid) flags |= NSFORK_PLAN_GID;
    if (spec.groups) flags |= NSFORK_PLAN_GROUPS;
    if (spec.hold) flags |= NSFORK_PLAN_HOLD;
    return flags;
}

// The bytes of the strings a plan of `argv`, `env` and `cwd` carries.
std::size_t strings_size(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         const std::string& cwd) {
    std::size_t size = cwd.size() + 1;
    for (const auto& a : argv) size += a.size() + 1;
    for (const auto& e : env) size += e.size() + 1;
    return size;
}

// The plan of `spec`'s settings with `argv`, `env` and `cwd` (all empty: settings-only).
std::optional<std::vector<std::uint8_t>> encode(const LaunchSpec& spec, const std::vector<std::string>& argv,
                                                const std::vector<std::string>& env, const std::string& cwd) {
    if (!check_command_settings(spec)) return std::nullopt;
    const std::size_t ngroups = spec.groups ? spec.groups->size() : 0;
    const std::size_t size = ngroups * sizeof(std::uint32_t) + strings_size(argv, env, cwd);
    if (sizeof(nsfork_plan) + size > NSFORK_PLAN_MAX) return std::nullopt;
    std::uint32_t stdio = 0;
    for (unsigned i = 0; i < 3; ++i)
        if (spec.stdio[i] >= 0) stdio |= 1u << i;
    const nsfork_plan header{
        .magic = NSFORK_PLAN_MAGIC,
        .argc = static_cast<std::uint32_t>(argv.size()),
        .envc = static_cast<std::uint32_t>(env.size()),
        .size = static_cast<std::uint32_t>(size),
        .stdio = stdio,
        .flags = plan_flags(spec),
        .extra_fds = static_cast<std::uint32_t>(spec.extra_fds.size()),
        .ngroups = static_cast<std::uint32_t>(ngroups),
        .signal_mask = spec.signal_mask,
        .ignored_signals = spec.ignored_signals,
        .uid = spec.uid.value_or(0),
        .gid = spec.gid.value_or(0),
        .tty_rows = spec.tty ? spec.tty_rows : std::uint16_t{0},
        .tty_cols = spec.tty ? spec.tty_cols : std::uint16_t{0},
        .zero = 0,
    };
    std::vector<std::uint8_t> out(sizeof header + ngroups * sizeof(std::uint32_t));
    out.reserve(sizeof header + size);
    std::memcpy(out.data(), &header, sizeof header);
    for (std::size_t i = 0; i < ngroups; ++i) {
        const std::uint32_t gid = (*spec.groups)[i];
        std::memcpy(out.data() + sizeof header + i * sizeof gid, &gid, sizeof gid);
    }
    auto add = [&](const std::string& s) { out.insert(out.end(), s.c_str(), s.c_str() + s.size() + 1); };
    for (const auto& a : argv) add(a);
    for (const auto& e : env) add(e);
    add(cwd);
    return out;
}

} // namespace

bool command_fits_plan(const LaunchSpec& spec) {
    const std::size_t groups = spec.groups ? spec.groups->size() * sizeof(std::uint32_t) : 0;
    return sizeof(nsfork_plan) + groups + strings_size(spec.argv, spec.env, spec.cwd) <= NSFORK_PLAN_MAX;
}

std::optional<std::vector<std::uint8_t>> encode_plan(const LaunchSpec& spec) {
    if (spec.hold) return encode(spec, {}, {}, ""); // a settings-only plan's layout, no command
    return encode(spec, spec.argv, spec.env, spec.cwd);
}

std::optional<std::vector<std::uint8_t>> encode_cold_plan(const LaunchSpec& spec) {
    if (command_fits_plan(spec)) return encode_plan(spec);
    return encode(spec, {}, {}, ""); // too large: argv, env and cwd go through the shim's exec
}

Result<void> send_plan(int sock, const std::vector<std::uint8_t>& plan, const LaunchSpec& spec) {
    if (auto checked = check_command_settings(spec); !checked) return checked;
    int fds[3 + NSFORK_PLAN_MAX_EXTRA_FDS];
    std::size_t count = 0;
    for (int fd : spec.stdio)
        if (fd >= 0) fds[count++] = fd; // the slots not given keep the shim's /dev/null
    for (int fd : spec.extra_fds) fds[count++] = fd; // at most NSFORK_PLAN_MAX_EXTRA_FDS (checked)
    const ssize_t n = sys::send_with_fds(sock, plan.data(), plan.size(), fds, count);
    if (n < 0) return sys_error(Errc::launch_failed, "cannot send the plan to nsfork-shim", errno);
    return {};
}

Result<PlannedLaunch> spawn_planned(LaunchSpec spec) {
    auto plan = encode_cold_plan(spec);
    UniqueFd ours, theirs;
    if (plan) {
        auto pair = seqpacket_pair();
        if (!pair) return Error{Errc::launch_failed, pair.error().message, pair.error().sys_errno};
        ours = std::move(pair->first);
        theirs = std::move(pair->second);
        spec.plan_fd = theirs.get();
    }
    auto spawned = spawn(spec);
    if (!spawned) return std::move(spawned).error();
    PlannedLaunch launch{std::move(*spawned), std::move(ours)};
    if (plan) {
        theirs.reset(); // the shim's copy: our reads see EOF if it dies
        // Queued for the shim to read once it runs; if it dies first, its setup report says why.
        (void)send_plan(launch.channel.get(), *plan, spec);
    }
    return launch;
}

Result<void> read_launch_outcome(int channel, int setup_report, const std::string& command, const std::string& cwd,
                                 UniqueFd* terminal) {
    auto outcome = read_exec_report(channel, command, cwd, terminal);
    if (outcome || setup_report < 0 || outcome.error().code != Errc::launch_failed || outcome.error().sys_errno)
        return outcome;
    // The shim died before it reported on the channel: before its plan, its setup report says why.
    auto setup = read_exec_report(setup_report, command, cwd);
    return setup ? outcome : setup; // an OK there only meant "the shim is up"
}

Result<void> read_launch_outcome(PlannedLaunch& launch, const LaunchSpec& spec, UniqueFd* terminal) {
    const std::string command = command_name(spec);
    if (!launch.channel) return read_exec_report(launch.spawned.report.get(), command, spec.cwd);
    return read_launch_outcome(launch.channel.get(), launch.spawned.report.get(), command, spec.cwd,
                               spec.tty ? terminal : nullptr);
}

} // namespace nsfork
