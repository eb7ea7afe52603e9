// cgroup v1's device list semantics, emulated (runc's devices_emulator.go), and the eBPF
// program that applies the result on cgroup v2 (runc's devicefilter.go, itself from crun).
#include "oci/device_filter.hpp"

#include "base/device_program.hpp"
#include "nsfork/fd.hpp"

#include <algorithm>
#include <map>
#include <tuple>

namespace nsfork::oci {
namespace {

// An access set as BPF_DEVCG_ACC_* bits.
unsigned access_bits(const std::string& access) {
    unsigned bits = 0;
    for (char c : access)
        bits |= c == 'r' ? BPF_DEVCG_ACC_READ : c == 'w' ? BPF_DEVCG_ACC_WRITE : c == 'm' ? BPF_DEVCG_ACC_MKNOD : 0;
    return bits;
}

std::string access_text(unsigned bits) {
    std::string s;
    if (bits & BPF_DEVCG_ACC_READ) s += 'r';
    if (bits & BPF_DEVCG_ACC_WRITE) s += 'w';
    if (bits & BPF_DEVCG_ACC_MKNOD) s += 'm';
    return s;
}

// A device (or a wildcard of devices: -1) as the map orders them: major, minor, type.
using DeviceKey = std::tuple<std::int64_t, std::int64_t, char>;

class Emulator {
public:
    Result<void> apply(const DeviceRule& rule, const std::string& field) {
        if (rule.type == 'a') {
            default_allow_ = rule.allow;
            exceptions_.clear();
            return {};
        }
        DeviceKey key{rule.major, rule.minor, rule.type};
        unsigned bits = access_bits(rule.access);
        // An allow in allow-all mode, or a deny in deny-all mode, removes an exception.
        if (rule.allow == default_allow_) return remove(key, bits, field);
        exceptions_[key] |= bits;
        return {};
    }

    DeviceAccess result() const {
        DeviceAccess out{default_allow_, {}};
        for (const auto& [key, bits] : exceptions_)
            out.exceptions.push_back(
                DeviceRule{!default_allow_, std::get<2>(key), std::get<0>(key), std::get<1>(key), access_text(bits)});
        return out;
    }

private:
    // cgroup v1 cannot take an access out of a wildcard exception for one device only.
    Result<void> remove(const DeviceKey& key, unsigned bits, const std::string& field) {
        auto [major, minor, type] = key;
        for (const DeviceKey& wider : {DeviceKey{-1, minor, type}, DeviceKey{major, -1, type}, DeviceKey{-1, -1, type}}) {
            if (wider == key) continue;
            auto it = exceptions_.find(wider);
            if (it != exceptions_.end() && (it->second & bits))
                return Error{Errc::bad_request, "config.json: " + field +
                                                    ": cgroup v1 semantics cannot punch a hole in an earlier wildcard rule"};
        }
        auto it = exceptions_.find(key);
        if (it == exceptions_.end()) return {};
        it->second &= ~bits;
        if (it->second == 0) exceptions_.erase(it);
        return {};
    }

    bool default_allow_ = false;
    std::map<DeviceKey, unsigned> exceptions_;
};

bpf_insn insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off, std::int32_t imm) {
    bpf_insn i{};
    i.code = code;
    i.dst_reg = dst;
    i.src_reg = src;
    i.off = off;
    i.imm = imm;
    return i;
}

} // namespace

Result<DeviceAccess> emulate_device_rules(const std::vector<DeviceRule>& rules) {
    Emulator e;
    for (std::size_t i = 0; i < rules.size(); ++i)
        if (auto r = e.apply(rules[i], "linux.resources.devices[" + std::to_string(i) + "]"); !r) return std::move(r).error();
    return e.result();
}

std::vector<bpf_insn> device_filter_program(const DeviceAccess& access) {
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: the device type in
    // the low 16 bits of access_type, the requested accesses in the high 16.
    std::vector<bpf_insn> p = {
        insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0),   // r2 = type
        insn(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff),
        insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, 0, 0),   // r3 = access
        insn(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16),
        insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0),   // r4 = major
        insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0),   // r5 = minor
    };
    for (const DeviceRule& rule : access.exceptions) {
        // One block per exception; every mismatch jumps to the next block.
        std::vector<std::size_t> to_next;
        auto skip_unless = [&](bpf_insn jump) {
            to_next.push_back(p.size());
            p.push_back(jump);
        };
        int type = rule.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
        skip_unless(insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, 0, type));
        unsigned bits = access_bits(rule.access);
        if (bits != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)) {
            // The request must lie within the exception's accesses: (r3 & bits) == r3.
            p.push_back(insn(BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0));
            p.push_back(insn(BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, static_cast<std::int32_t>(bits)));
            skip_unless(insn(BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0));
        }
        if (rule.major >= 0) skip_unless(insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 0, static_cast<std::int32_t>(rule.major)));
        if (rule.minor >= 0) skip_unless(insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0, static_cast<std::int32_t>(rule.minor)));
        p.push_back(insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, rule.allow ? 1 : 0));
        p.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
        for (std::size_t at : to_next) p[at].off = static_cast<std::int16_t>(p.size() - at - 1);
    }
    p.push_back(insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, access.default_allow ? 1 : 0));
    p.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    return p;
}

Result<std::vector<bpf_insn>> device_filter_for(const std::vector<DeviceRule>& rules) {
    auto access = emulate_device_rules(rules);
    if (!access) return std::move(access).error();
    // Nothing to filter: what the cgroup inherits already allows everything.
    if (access->default_allow && access->exceptions.empty()) return std::vector<bpf_insn>{};
    return device_filter_program(*access);
}

Result<void> attach_device_filter(int cgroup_fd, const std::vector<DeviceRule>& rules, int loaded) {
    auto in_field = [](Error e) {
        e.message = "linux.resources.devices: " + e.message;
        return e;
    };
    UniqueFd ours;
    if (loaded < 0) {
        auto made = device_filter_for(rules);
        if (!made) return std::move(made).error();
        if (made->empty()) return {};
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(made->data());
        auto program = load_device_program({bytes, made->size() * sizeof(bpf_insn)});
        if (!program) return in_field(std::move(program).error());
        ours = std::move(*program);
        loaded = ours.get();
    }
    if (auto attached = attach_device_program(cgroup_fd, loaded); !attached) return in_field(std::move(attached).error());
    return {};
}

} // namespace nsfork::oci
