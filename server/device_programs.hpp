// Cgroup device programs, loaded once for every hold launch that brings the same instructions
// (Launch.device_program). An engine sends one device list for all its containers, so after its
// first container the kernel's verifier (100-400 us here for runc's default list) is off the
// path; the client attaches the program, loaded, to its leaf.
//
// The first program loaded is also attached to an empty cgroup of the server's own (the keeper,
// "c0", a name no container gets), and stays there until the server stops: while any device
// program is attached anywhere, the kernel's static key for them is on. Without the keeper, each
// container's attach would turn it on and its removal off again, and each turn patches kernel
// text on every CPU (~100 us an attach on these VMs, measured; 3 us with the key on). An
// allow-all program would do as well; the keeper runs nothing, as nothing is in it.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "launcher/cgroup.hpp"

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>

namespace nsfork {

class DevicePrograms {
public:
    // How many loaded programs are kept (the least recently used goes first).
    static constexpr std::size_t kKept = 16;

    // `cgroup_root`: where the keeper goes ("": none, no cgroup v2).
    explicit DevicePrograms(std::string cgroup_root) : root_(std::move(cgroup_root)) {}

    // The program for `instructions` (whole struct bpf_insn), loaded now or before; the fd is
    // ours, valid until the next get(). Errc::bad_request with the verifier's reason when the
    // kernel refuses it.
    Result<int> get(std::span<const std::uint8_t> instructions);
    std::size_t size() const { return loaded_.size(); }
    // Removes the keeper (the server stops).
    void stop() { keeper_.reset(); }

private:
    struct Loaded {
        std::string instructions;
        UniqueFd program;
    };
    void keep_key_on(int program);

    std::string root_;
    std::list<Loaded> loaded_; // most recently used first
    std::optional<Cgroup> keeper_;
    bool keeper_tried_ = false;
};

} // namespace nsfork
