#include "server/device_programs.hpp"

#include <linux/bpf.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace nsfork {

namespace {

long bpf(int cmd, bpf_attr& attr) { return ::syscall(SYS_bpf, cmd, &attr, sizeof attr); }

} // namespace

Result<UniqueFd> load_device_program(std::span<const std::uint8_t> instructions) {
    static const char kLicense[] = "Apache-2.0";
    // Without the verifier's log first: at level 1 it traces every instruction, and a log longer
    // than its buffer fails the load (ENOSPC). A refused program is loaded again with it, for why.
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
    // The verdict is the last line before the verifier's statistics ("processed N insns ...").
    std::string why;
    std::string_view rest(log, ::strnlen(log, sizeof log));
    while (!rest.empty()) {
        const std::size_t end = std::min(rest.find('\n'), rest.size());
        const std::string_view line = rest.substr(0, end);
        rest.remove_prefix(std::min(end + 1, rest.size()));
        if (!line.empty() && !line.starts_with("processed ") && !line.starts_with("verification time")) why = line;
    }
    return Error{Errc::bad_request,
                 "the kernel refused the device program" + (why.empty() ? std::string() : ": " + why), err};
}

Result<int> DevicePrograms::get(std::span<const std::uint8_t> instructions) {
    const std::string_view key(reinterpret_cast<const char*>(instructions.data()), instructions.size());
    for (auto it = loaded_.begin(); it != loaded_.end(); ++it) {
        if (it->instructions != key) continue;
        loaded_.splice(loaded_.begin(), loaded_, it);
        return loaded_.front().program.get();
    }
    auto program = load_device_program(instructions);
    if (!program) return std::move(program).error();
    if (!keeper_tried_) keep_key_on(program->get());
    if (loaded_.size() == kKept) loaded_.pop_back();
    loaded_.push_front(Loaded{std::string(key), std::move(*program)});
    return loaded_.front().program.get();
}

void DevicePrograms::keep_key_on(int program) {
    keeper_tried_ = true;
    if (root_.empty()) return;
    auto keeper = Cgroup::create(root_, "c0");
    if (!keeper) return spdlog::debug("no device program keeper: {}", keeper.error().message);
    auto dir = keeper->open_dir();
    if (!dir) return spdlog::debug("no device program keeper: {}", dir.error().message);
    bpf_attr attach{};
    attach.target_fd = static_cast<std::uint32_t>(dir->get());
    attach.attach_bpf_fd = static_cast<std::uint32_t>(program);
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    if (bpf(BPF_PROG_ATTACH, attach) != 0)
        return spdlog::debug("no device program keeper: attach: {}", std::strerror(errno));
    keeper_.emplace(std::move(*keeper));
}

} // namespace nsfork
