// linux.seccomp compiled with libseccomp as runc does it (libcontainer/seccomp), then exported as
// classic BPF so that the container's process only has to load it.
#include "oci/seccomp.hpp"

#include "nsfork/fd.hpp"

#include <seccomp.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string_view>

namespace nsfork::oci {
namespace {

struct FilterRelease {
    void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Filter = std::unique_ptr<void, FilterRelease>;

Error invalid(const std::string& field, const std::string& what) {
    return Error{Errc::bad_request, "config.json: " + field + ": " + what};
}

Error library_error(const std::string& what, int rc) {
    return sys_error(Errc::internal, "libseccomp: " + what, -rc);
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// An action's libseccomp value; ERRNO and TRACE carry errnoRet (EPERM when absent, as runc).
Result<std::uint32_t> action(const std::string& name, std::optional<unsigned> errno_ret, const std::string& field) {
    unsigned ret = errno_ret.value_or(EPERM);
    if (name == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
    if (name == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(ret);
    if (name == "SCMP_ACT_TRACE") return SCMP_ACT_TRACE(ret);
    if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL_THREAD;
    if (name == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
    if (name == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
    if (name == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
    if (name == "SCMP_ACT_NOTIFY")
        return invalid(field, "SCMP_ACT_NOTIFY needs a listener (linux.seccomp.listenerPath), which nsfork does not support");
    return invalid(field, "unknown action " + quoted(name));
}

struct NamedArch {
    const char* name;
    std::uint32_t token;
};
constexpr NamedArch kArchitectures[] = {
    {"SCMP_ARCH_X86", SCMP_ARCH_X86},             {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
    {"SCMP_ARCH_X32", SCMP_ARCH_X32},             {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
    {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},     {"SCMP_ARCH_MIPS", SCMP_ARCH_MIPS},
    {"SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64},       {"SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32},
    {"SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL},       {"SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64},
    {"SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32}, {"SCMP_ARCH_PPC", SCMP_ARCH_PPC},
    {"SCMP_ARCH_PPC64", SCMP_ARCH_PPC64},         {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
    {"SCMP_ARCH_S390", SCMP_ARCH_S390},           {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},
    {"SCMP_ARCH_PARISC", SCMP_ARCH_PARISC},       {"SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64},
    {"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
};

// Whether the running kernel executes programs of `arch`: the native one and the compat ABIs of
// its family. Rules for the others (profiles list every architecture an engine supports) could
// never match and would only lengthen the program every system call runs through.
bool kernel_runs(std::uint32_t arch) {
    std::uint32_t native = seccomp_arch_native();
    if (arch == native) return true;
    switch (native) {
    case SCMP_ARCH_X86_64: return arch == SCMP_ARCH_X86 || arch == SCMP_ARCH_X32;
    case SCMP_ARCH_AARCH64: return arch == SCMP_ARCH_ARM;
    case SCMP_ARCH_S390X: return arch == SCMP_ARCH_S390;
    case SCMP_ARCH_PPC64: return arch == SCMP_ARCH_PPC;
    case SCMP_ARCH_MIPS64: return arch == SCMP_ARCH_MIPS || arch == SCMP_ARCH_MIPS64N32;
    case SCMP_ARCH_MIPSEL64: return arch == SCMP_ARCH_MIPSEL || arch == SCMP_ARCH_MIPSEL64N32;
    case SCMP_ARCH_PARISC64: return arch == SCMP_ARCH_PARISC;
    default: return false;
    }
}

Result<void> add_architectures(scmp_filter_ctx ctx, const std::vector<std::string>& names) {
    for (std::size_t i = 0; i < names.size(); ++i) {
        const NamedArch* found = nullptr;
        for (const NamedArch& a : kArchitectures)
            if (names[i] == a.name) found = &a;
        if (!found)
            return invalid("linux.seccomp.architectures[" + std::to_string(i) + "]",
                           "unknown architecture " + quoted(names[i]));
        if (!kernel_runs(found->token)) continue;
        int rc = seccomp_arch_add(ctx, found->token);
        if (rc < 0 && rc != -EEXIST) return library_error("add architecture " + names[i], rc);
    }
    return {};
}

Result<unsigned> filter_flags(const std::vector<std::string>& names) {
    unsigned flags = 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string& name = names[i];
        if (name == "SECCOMP_FILTER_FLAG_LOG") flags |= SECCOMP_FILTER_FLAG_LOG;
        else if (name == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
        // The container's process is single-threaded when it loads the filter: nothing to sync.
        else if (name == "SECCOMP_FILTER_FLAG_TSYNC") continue;
        else if (name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" || name == "SECCOMP_FILTER_FLAG_NEW_LISTENER")
            return invalid("linux.seccomp.flags[" + std::to_string(i) + "]",
                           quoted(name) + " needs a notify listener, which nsfork does not support");
        else
            return invalid("linux.seccomp.flags[" + std::to_string(i) + "]", "unknown flag " + quoted(name));
    }
    return flags;
}

constexpr std::pair<const char*, scmp_compare> kOps[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

Result<scmp_arg_cmp> comparison(const SeccompArg& arg, const std::string& field) {
    if (arg.index > 5) return invalid(field + ".index", "a system call has 6 arguments, 0 to 5");
    for (auto [name, op] : kOps)
        if (arg.op == name) return scmp_arg_cmp{arg.index, op, arg.value, arg.value_two};
    return invalid(field + ".op", "unknown operator " + quoted(arg.op));
}

Result<void> add_rule(scmp_filter_ctx ctx, const SeccompRule& rule, std::uint32_t default_action,
                      const std::string& field) {
    auto act = action(rule.action, rule.errno_ret, field + ".action");
    if (!act) return std::move(act).error();
    std::vector<scmp_arg_cmp> cmps;
    bool repeated_index = false;
    for (std::size_t i = 0; i < rule.args.size(); ++i) {
        auto cmp = comparison(rule.args[i], field + ".args[" + std::to_string(i) + "]");
        if (!cmp) return std::move(cmp).error();
        for (const scmp_arg_cmp& seen : cmps) repeated_index |= seen.arg == cmp->arg;
        cmps.push_back(*cmp);
    }
    // libseccomp refuses a rule that repeats the default action (it would change nothing).
    if (*act == default_action) return {};
    for (const std::string& name : rule.names) {
        int nr = seccomp_syscall_resolve_name(name.c_str());
        // Profiles list system calls newer than this libseccomp: skipped, as runc and crun do.
        if (nr == __NR_SCMP_ERROR) continue;
        int rc = 0;
        if (repeated_index) {
            // Two conditions on one argument cannot be one rule (an argument has one value): as
            // runc, each becomes a rule of its own, any of which matches.
            for (const scmp_arg_cmp& cmp : cmps)
                if ((rc = seccomp_rule_add_array(ctx, *act, nr, 1, &cmp)) < 0) break;
        } else {
            rc = seccomp_rule_add_array(ctx, *act, nr, static_cast<unsigned>(cmps.size()), cmps.data());
        }
        if (rc < 0) return library_error(field + ": add a rule for " + name, rc);
    }
    return {};
}

// The filter as the kernel's sock_filter array: libseccomp writes it to an fd.
Result<std::vector<sock_filter>> export_bpf(scmp_filter_ctx ctx) {
    UniqueFd fd(memfd_create("nsfork-seccomp", MFD_CLOEXEC));
    if (!fd) return sys_error(Errc::internal, "memfd_create", errno);
    if (int rc = seccomp_export_bpf(ctx, fd.get()); rc < 0) return library_error("export the program", rc);
    off_t size = lseek(fd.get(), 0, SEEK_END);
    if (size < 0) return sys_error(Errc::internal, "lseek", errno);
    std::vector<sock_filter> program(static_cast<std::size_t>(size) / sizeof(sock_filter));
    std::size_t bytes = program.size() * sizeof(sock_filter);
    ssize_t n = pread(fd.get(), program.data(), bytes, 0);
    if (n < 0) return sys_error(Errc::internal, "read the program", errno);
    if (static_cast<std::size_t>(n) != bytes) return Error{Errc::internal, "libseccomp: short program"};
    return program;
}

} // namespace

Result<SeccompProgram> compile_seccomp(const Seccomp& seccomp) {
    auto default_action = action(seccomp.default_action, seccomp.default_errno_ret, "linux.seccomp.defaultAction");
    if (!default_action) return std::move(default_action).error();
    auto flags = filter_flags(seccomp.flags);
    if (!flags) return std::move(flags).error();
    Filter filter(seccomp_init(*default_action));
    if (!filter) return Error{Errc::internal, "libseccomp: seccomp_init failed"};
    if (auto r = add_architectures(filter.get(), seccomp.architectures); !r) return std::move(r).error();
    // A binary tree instead of a linear list for long profiles (Docker's and podman's have some
    // 400 names), as runc does; libseccomp 2.5.4 misbuilds the tree of an empty filter, hence
    // the threshold. An older library without it still gives a correct program.
    std::size_t names = 0;
    for (const SeccompRule& rule : seccomp.syscalls) names += rule.names.size();
    if (names > 32) (void)seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (std::size_t i = 0; i < seccomp.syscalls.size(); ++i)
        if (auto r = add_rule(filter.get(), seccomp.syscalls[i], *default_action,
                              "linux.seccomp.syscalls[" + std::to_string(i) + "]");
            !r)
            return std::move(r).error();
    auto program = export_bpf(filter.get());
    if (!program) return std::move(program).error();
    return SeccompProgram{std::move(*program), *flags};
}

std::vector<std::string> known_seccomp_architectures() {
    std::vector<std::string> names;
    for (const NamedArch& a : kArchitectures) names.emplace_back(a.name);
    std::sort(names.begin(), names.end());
    return names;
}

std::vector<std::string> known_seccomp_operators() {
    std::vector<std::string> names;
    for (const auto& op : kOps) names.emplace_back(op.first);
    std::sort(names.begin(), names.end());
    return names;
}

} // namespace nsfork::oci
