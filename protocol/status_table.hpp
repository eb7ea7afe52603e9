// The status table: the server publishes every container's state and exit status in one shared
// memfd; clients map it read-only and read an entry with plain loads, no syscall.
//
// Concurrency: one writer (the server's one thread), any number of readers in other processes.
// Each entry is a seqlock: the writer makes `seq` odd, writes, makes it even; a reader retries
// while `seq` is odd or changed under it, so it never returns a torn entry. A header counter
// (`events`) increases after every update; readers can sleep on it with a futex.
//
// Safety: the server seals the memfd with F_SEAL_FUTURE_WRITE before handing it out, so no
// client can map it writable; the server never reads memory a client can write.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/status_table.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/fd.hpp"
#include "base/limits.hpp"
#include "nsfork/types.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nsfork {

inline constexpr std::uint32_t kStatusTableCapacity = 65536;

// The layout in shared memory. Every field is atomic: readers race with the writer by design.
struct StatusHeader {
    std::atomic<std::uint32_t> magic;
    std::atomic<std::uint32_t> version;
    std::atomic<std::uint32_t> capacity;
    std::atomic<std::uint32_t> entry_size;
    std::atomic<std::uint32_t> events; // futex word: bumped after every update
    std::uint8_t reserved[256 - 5 * 4];
};

struct StatusEntry {
    std::atomic<std::uint32_t> seq;        // seqlock: odd while being written
    std::atomic<std::uint32_t> state;      // 0: free, else State + 1
    std::atomic<std::int32_t> exit_code;
    std::atomic<std::int32_t> exit_signal;
    std::atomic<std::int32_t> has_exit;
    std::atomic<std::int32_t> pid;
    std::atomic<std::uint64_t> pidns;
    std::atomic<std::uint64_t> generation;
    std::atomic<std::uint64_t> id_words[(kMaxIdLength + 1 + 7) / 8]; // the id, NUL-padded
    std::uint8_t reserved[256 - 40 - 17 * 8];
};
static_assert(sizeof(StatusHeader) == 256 && sizeof(StatusEntry) == 256);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// The server's side: creates the memfd, maps it read-write, hands out slots, publishes.
class StatusTableWriter {
public:
    static Result<StatusTableWriter> create(std::uint32_t capacity = kStatusTableCapacity);
    StatusTableWriter(StatusTableWriter&&) noexcept;
    ~StatusTableWriter();

    int fd() const; // sealed against new writable mappings; send it to clients
    // A free slot, or nullopt when all `capacity` are in use.
    std::optional<std::uint32_t> acquire();
    // Writes `info` into `slot` and counts the change. Readers sleeping on the counter are woken
    // now (a futex wake, a system call), or with Wake::later by the next wake_readers(): for a
    // change a reply reports, visible before the reply, its sleepers woken after it.
    enum class Wake { now, later };
    void publish(std::uint32_t slot, const ContainerInfo& info, Wake wake = Wake::now);
    void release(std::uint32_t slot);
    void wake_readers(); // a no-op unless a Wake::later change is pending

private:
    struct Impl;
    explicit StatusTableWriter(std::unique_ptr<Impl> impl);
    void bump_events(Wake wake);
    std::unique_ptr<Impl> impl_;
};

} // namespace nsfork
