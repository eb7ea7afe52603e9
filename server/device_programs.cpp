#include "server/device_programs.hpp"

#include "base/device_program.hpp"

#include <spdlog/spdlog.h>

#include <string_view>

namespace nsfork {

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
    if (auto attached = attach_device_program(dir->get(), program); !attached)
        return spdlog::debug("no device program keeper: {}", attached.error().message);
    keeper_.emplace(std::move(*keeper));
}

} // namespace nsfork
