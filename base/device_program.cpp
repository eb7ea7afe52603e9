#include "base/device_program.hpp"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

namespace nsfork {

namespace {

long bpf(int cmd, bpf_attr& attr) { return ::syscall(SYS_bpf, cmd, &attr, sizeof attr); }

// The verifier's verdict: the last line of its log before the statistics ("processed N insns").
std::string verdict(std::string_view log) {
    std::string_view why;
    while (!log.empty()) {
        const std::size_t end = std::min(log.find('\n'), log.size());
        const std::string_view line = log.substr(0, end);
        log.remove_prefix(std::min(end + 1, log.size()));
        if (!line.empty() && !line.starts_with("processed ") && !line.starts_with("verification time")) why = line;
    }
    return std::string(why);
}

} // namespace

Result<UniqueFd> load_device_program(std::span<const std::uint8_t> instructions) {
    static const char kLicense[] = "Apache-2.0";
    // Without the verifier's log first: at level 1 it traces every instruction, and a log longer
    // than its buffer fails the load (ENOSPC), as runc's default rules do in 4 KiB. A refused
    // program is loaded again with it, for why.
    auto load = [&](char* log, std::uint32_t size) {
        bpf_attr attr{};
        attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        attr.insns = reinterpret_cast<std::uintptr_t>(instructions.data());
        attr.insn_cnt = static_cast<std::uint32_t>(instructions.size() / sizeof(bpf_insn));
        attr.license = reinterpret_cast<std::uintptr_t>(kLicense);
        if (log) {
            attr.log_buf = reinterpret_cast<std::uintptr_t>(log);
            attr.log_size = size;
            attr.log_level = 1;
        }
        return UniqueFd(static_cast<int>(bpf(BPF_PROG_LOAD, attr))); // close-on-exec from birth
    };
    UniqueFd program = load(nullptr, 0);
    if (program) return program;
    const int err = errno;
    if (err != EACCES && err != EINVAL)
        return sys_error(Errc::unavailable, "cannot load the device program", err);
    char log[4096] = {};
    (void)load(log, sizeof log);
    const std::string why = verdict({log, ::strnlen(log, sizeof log)});
    return Error{Errc::bad_request, "the kernel refused the device program" + (why.empty() ? why : ": " + why), err};
}

Result<void> attach_device_program(int cgroup_fd, int program) {
    bpf_attr attr{};
    attr.target_fd = static_cast<std::uint32_t>(cgroup_fd);
    attr.attach_bpf_fd = static_cast<std::uint32_t>(program);
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (bpf(BPF_PROG_ATTACH, attr) != 0) return sys_error(Errc::internal, "cannot attach the device program", errno);
    return {};
}

} // namespace nsfork
