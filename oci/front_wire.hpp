// What nsfork-oci's front (oci/front.cpp, bin/nsfork-oci: static on musl) and a warm runtime
// (the full program, started ahead next to the node's server: oci/warm.cpp) say to each other.
//
// A warm runtime has paid glibc's start-up (~1.1 ms on these VMs, most of it CPU probes that are
// VM exits) before any engine called; the front starts in ~0.06 ms. The front connects to the
// warm runtimes' socket, hands over its command line, environment, working directory, umask and
// stdio, and from then on does what only it can: the container's process must be its child,
// since the engine that called it reaps that process (ENGINES.md). So it clones the process from
// the plan the warm runtime built (child.hpp; the same child code, compiled into both), reaps
// it, forwards its signals to it during `run`, and exits with the code it is told.
//
// One SOCK_SEQPACKET connection, one message per datagram, each starting with a Kind. Both
// programs are built from this tree by one compiler for one machine: the structures are sent as
// they are in memory.
#pragma once

#include "base/limits.h"
#include "oci/child.hpp"

#include <cstddef>
#include <cstdint>

namespace nsfork::oci::front {

// The warm runtimes listen beside the server's socket, at its path with this suffix.
inline constexpr const char kSocketSuffix[] = ".oci";
inline constexpr std::uint32_t kVersion = 1;
// Descriptors per Fds message: what base/fdpass.h passes at once.
inline constexpr std::size_t kFdsPerMessage = NSFORK_MAX_PASSED_FDS;
// The largest Request: argv and the environment (larger: the front runs the full program).
inline constexpr std::size_t kMaxRequest = 128 * 1024;

enum class Kind : std::uint32_t {
    // front -> runtime
    request = 1,   // RequestHeader, argv then envp as NUL-terminated strings; fds: the front's
                   //   pidfd, its working directory (O_PATH), stdin, stdout, stderr
    cloned = 2,    // Answer: the process's pid (or -errno); fd: its pidfd
    exited = 3,    // Answer: the child's end, reaped (code, or -signal)
    // runtime -> front
    fallback = 10, // nothing was done: run the full program with our command line
    fds = 11,      // descriptors for the next Clone (its plan refers to them by index)
    clone = 12,    // CloneHeader; fd: a memfd holding the encoded plan
    reap = 13,     // Reap: wait for the child's end (killed first when asked); answered by exited
    wait = 14,     // run: forward our signals to the child until it ends; answered by exited
    exit = 15,     // Answer: exit with this code
};

struct RequestHeader {
    Kind kind = Kind::request;
    std::uint32_t version = kVersion;
    std::uint32_t argc = 0, envc = 0;
    std::uint32_t umask = 0;
};

struct CloneHeader {
    Kind kind = Kind::clone;
    std::int32_t pidns = -1;       // index of the pidfd whose pid namespace the child is born into
    std::int32_t cgroup = -1;      // index of its cgroup v2 leaf, -1: the front's own cgroup
    std::uint32_t plan_size = 0;   // bytes in the memfd
    std::uint32_t foreground = 0;  // a foreground run: the signals the front forwards are blocked
                                   // from the clone on (the child born without the mask), for it
};

struct Reap {
    Kind kind = Kind::reap;
    std::uint32_t kill = 0;        // SIGKILL it first
};

struct Answer {
    Kind kind;
    std::int32_t value = 0;
};

// The plan as bytes: the Plan, its Steps, then everything they point to, each pointer replaced
// by its offset + 1 (0: null) and each descriptor by its index in the descriptors sent with it
// (-1: none). The parent's pidfd is not sent: the front, the parent, puts in its own.
//
// Decodes `bytes` in place: pointers into it, descriptors from `fds`. False when it does not
// hold a plan (an offset or index out of range, a string without its end).
bool decode_plan(char* bytes, std::size_t size, const int* fds, std::size_t fd_count, child::Plan** plan) noexcept;

} // namespace nsfork::oci::front
