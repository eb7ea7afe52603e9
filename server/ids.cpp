#include "ids.hpp"

#include <fmt/format.h>

namespace nsfork {

Result<void> validate_id(std::string_view id) {
    if (id.empty()) return Error{Errc::invalid_id, "container id is empty"};
    if (id.size() > kMaxIdLength)
        return Error{Errc::invalid_id, fmt::format("container id is {} bytes long, the limit is {}",
                                                   id.size(), kMaxIdLength)};
    if (id == "." || id == "..")
        return Error{Errc::invalid_id, fmt::format("container id '{}' is not allowed", id)};
    for (unsigned char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '_' || c == '-' || c == '.';
        if (!ok)
            return Error{Errc::invalid_id,
                         fmt::format("container id contains byte 0x{:02x}; allowed are letters, "
                                     "digits, '_', '-' and '.'",
                                     c)};
    }
    return {};
}

} // namespace nsfork
