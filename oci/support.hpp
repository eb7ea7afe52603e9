// What several of nsfork-oci's verbs share: reaching the node's server, a container found by
// id, a foreground process waited for with signals forwarded, the stdio a process gets.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/fd.hpp"
#include "oci/resources.hpp"
#include "oci/setup.hpp"
#include "oci/state.hpp"
#include "nsfork/client.hpp"

#include <signal.h>

#include <string>

namespace nsfork::oci {

// A connection to the server at `socket`; when none listens, an error naming it and how to
// start one.
Result<Client> connect_server(const std::string& socket);

// A container's state directory and state, found by id ("container ID does not exist").
struct Found {
    StateDir dir;
    ContainerState state;
};
Result<Found> find_container(const std::string& root, const std::string& id);

// Ends everything the container holds in the kernel: the server destroys its namespace (kills
// the holder); a container the server no longer knows, or a server that is gone, is ended here
// — its holder and process, each by a pidfd checked against its start time. Returns once the
// process no longer runs.
Result<void> end_container(const ContainerState& state);

// The v1 cgroups the container's create made, as its state says.
ControllerCgroups controllers_of(const ContainerState& state);

// Writes a pid file: bare digits, no newline (containerd's parser rejects "123\n"), atomically.
Result<void> write_pid_file(const std::string& path, pid_t pid);

// The process's I/O: our stdio, our fds 3..3+preserve_fds-1, the console socket (connected).
struct ProcessIoOwner {
    ProcessIo io;
    UniqueFd console;
};
Result<ProcessIoOwner> process_io(const std::string& console_socket, unsigned preserve_fds);

// Signals a foreground nsfork-oci forwards to its container's process (runc's list: all but the
// ones it cannot catch and SIGCHLD, SIGPIPE, SIGURG, SIGWINCH without a terminal).
sigset_t forwarded_signals();

// Waits for our child behind `pidfd`, forwarding the signals of `forwarded` to it, and reaps it.
// The caller blocks `forwarded` once the child was forked (so that the child does not inherit
// the mask) and before it can run the command (so that no signal meant for it is missed).
Result<ExitStatus> wait_forwarding(int pidfd, const sigset_t& forwarded);

} // namespace nsfork::oci
