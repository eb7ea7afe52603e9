// Warm runtimes: the full nsfork-oci, started ahead for its musl front (front.cpp,
// front_wire.hpp). One that serves a `create` whose front is killed meanwhile goes on until it
// next needs the front (the clone at the latest), then undoes what it made, as on any failure. The node's server runs `nsfork-oci --nsfork-warm SOCKET` beside itself (its
// child, dying with it); that process, the keeper, listens at SOCKET + ".oci" (mode 0600) and
// keeps kWarm forks of itself waiting in accept(). Each serves one front and exits; the keeper
// forks the next the moment one accepts. A fork of the started program is ~0.2 ms; its exec
// would be the ~1.1 ms of glibc's start-up the front exists to save.
//
// A warm runtime acts for the front only where the result is the one the front's own full
// program would have: a caller of our user and group ids with our capabilities (bounding set
// too), seccomp mode and no_new_privs, in our pid, user and cgroup namespaces, whose root is its
// mount namespace's; `create`, `run`, `start`, `state`, `kill` or `delete` of the server we were
// started for, without hooks (they would be our children) or --preserve-fds. It takes on the caller's mount namespace (joined:
// the server's may be its own, as under systemd's ProtectSystem=), environment, working
// directory, umask and stdio, and finds relative cgroupsPaths below the caller's cgroups.
// Anything else is handed back to the front as "fallback" before anything is done, and the
// front runs the full program.
#pragma once

#include "nsfork/client.hpp"

#include <optional>
#include <string>
#include <vector>

namespace nsfork::oci::warm {

// The hidden first argument the server starts the keeper with.
inline constexpr const char kKeeperFlag[] = "--nsfork-warm";
// Forks waiting at once.
inline constexpr int kWarm = 2;
// What a command returns when its front should run the full program instead.
inline constexpr int kFallback = -1;

using Command = int (*)(const std::vector<std::string>& argv);

// The keeper's main loop; returns the exit code. Each fork runs `command` for its front.
int keep(const std::string& server_socket, Command command);

// The server socket the keeper was started for (for the fork's checks), "" when not warm.
const std::string& served_socket();

// A warm runtime's connection to the server at `socket`, made while it waited, once.
std::optional<Client> take_server_connection(const std::string& socket);

} // namespace nsfork::oci::warm
