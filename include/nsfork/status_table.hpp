// The server's status table as a client reads it: every container's state and exit status in one
// memfd the server shares read-only, read with plain loads (no system call) once mapped.
// Client::status_table() and Client::peek() hand it out; its layout is in PROTOCOL.md.
#pragma once

#include "nsfork/export.hpp"
#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/types.hpp"

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace nsfork {

// What a reader gets for one container.
struct StatusSnapshot {
    std::string id;
    State state = State::starting;
    std::optional<ExitStatus> exit;
    pid_t pid = -1;
    std::uint64_t pidns = 0;
    std::uint64_t generation = 0; // changes whenever the slot is reused
};

// A client's side: a read-only mapping of the table the server sent.
class NSFORK_API StatusTableReader {
public:
    // Checks the header (magic, version, sizes) against the memfd's size and maps it.
    static Result<StatusTableReader> map(int fd);
    StatusTableReader(StatusTableReader&&) noexcept;
    ~StatusTableReader();

    std::uint32_t capacity() const;
    // A consistent copy of `slot`, nullopt when it is free or out of range.
    std::optional<StatusSnapshot> read(std::uint32_t slot) const;
    // The event counter; wait_event sleeps (futex) until it differs from `seen` or `timeout_ms`.
    std::uint32_t events() const;
    void wait_event(std::uint32_t seen, int timeout_ms) const;

private:
    struct Impl;
    explicit StatusTableReader(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace nsfork
