// Socket activation without libsystemd (sd_listen_fds(3) semantics): the listening socket a
// service manager — systemd's nsfork.socket, systemd-socket-activate — passes `nsfork serve` as
// fd 3, announced by LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace nsfork {

// The first passed fd (SD_LISTEN_FDS_START); the others follow it.
inline constexpr int kListenFdsStart = 3;

// What the LISTEN_* variables announce to one process.
struct ListenFds {
    unsigned count = 0;             // fds kListenFdsStart.. kListenFdsStart+count-1; 0: none for us
    std::vector<std::string> names; // LISTEN_FDNAMES split on ':'; empty when it is unset
};

// What LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (null when unset) announce to the process
// `self`. Pure. No fds when LISTEN_PID is unset or names another process: variables inherited
// from an activated ancestor, not meant for us. A malformed LISTEN_PID or LISTEN_FDS, or names
// that do not match the count, are errors naming the variable.
Result<ListenFds> parse_listen_fds(const char* listen_pid, const char* listen_fds, const char* listen_fdnames,
                                   pid_t self);

// The listening socket a service manager passed us.
struct ActivatedSocket {
    UniqueFd fd;      // AF_UNIX, SOCK_SEQPACKET, listening; non-blocking and close-on-exec
    std::string path; // its address: a file's path, "@name" when abstract, "" when unnamed
    std::string name; // its LISTEN_FDNAMES entry, "" without one
};

// Takes the listening socket a service manager passed this process, if any (nullopt: not
// activated). Reads LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES and unsets all three whatever they say,
// so that nothing we start inherits them; makes the passed fds close-on-exec. Refuses, naming
// what it got, anything but exactly one AF_UNIX SOCK_SEQPACKET socket that listens. Call it
// first thing in main(), from a single-threaded process (it changes the environment).
Result<std::optional<ActivatedSocket>> take_activated_socket();

// Why `given` (a --socket path) does not name the activated socket, whose address is
// `activated`; "" when it does: the same string, or the same socket file.
std::string socket_disagreement(const std::string& given, const std::string& activated);

} // namespace nsfork
