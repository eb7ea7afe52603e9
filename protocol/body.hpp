// Message bodies too large for a datagram travel in a sealed memfd: the sender writes and seals
// it, the receiver checks the seals and maps it read-only — no copy, and nothing the sender can
// change under the receiver's feet (F_SEAL_WRITE), nor shrink into a SIGBUS (F_SEAL_SHRINK).
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <cstdint>
#include <memory>
#include <span>

namespace nsfork {

// Messages above this size go in a body; below, in the datagram itself. Well under the default
// socket send buffer (wmem_default, ~208 KiB), which bounds a SOCK_SEQPACKET datagram.
inline constexpr std::size_t kMaxInline = 64 * 1024;

// The seals a body must carry.
inline constexpr int kBodySeals = 0x0001 /*F_SEAL_SEAL*/ | 0x0002 /*F_SEAL_SHRINK*/ |
                                  0x0004 /*F_SEAL_GROW*/ | 0x0008 /*F_SEAL_WRITE*/;

// A memfd holding `bytes`, sealed with kBodySeals.
Result<UniqueFd> make_sealed_body(std::span<const std::uint8_t> bytes);

// A read-only mapping of a sealed body.
class MappedBody {
public:
    // Checks that `fd` is a memfd with kBodySeals holding at least `size` bytes, `size` at most
    // `cap`, and maps its first `size` bytes read-only.
    static Result<MappedBody> map(int fd, std::uint64_t size, std::uint64_t cap);

    MappedBody(MappedBody&&) noexcept;
    MappedBody& operator=(MappedBody&&) noexcept;
    ~MappedBody();
    std::span<const std::uint8_t> bytes() const;

private:
    struct Region;
    explicit MappedBody(std::unique_ptr<Region> region);
    std::unique_ptr<Region> region_;
};

} // namespace nsfork
