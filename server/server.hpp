// The nsfork server: one thread, one Boost.Asio io_context, containers as direct children.
// Asio stays inside the server's own files; this header is cheap to include.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "nsfork/client.hpp"
#include "server/policy.hpp"

#include <string>

namespace nsfork {

struct ServerOptions {
    std::string socket_path;  // listen here (mode 0600); empty: only the initial connection
    // A socket that already listens, to serve on instead of binding socket_path (which then only
    // names it, for the log): the one a service manager passed `nsfork serve` (server/
    // activation.hpp). run_server takes it over and closes it; the socket file stays the
    // service manager's. -1: none.
    int listen_fd = -1;
    std::string shim_path;    // nsfork-shim; empty: default_shim_path()
    std::string log_level = "info";
    Isolation isolation;      // --isolation
    bool disallow_sharing_agent_pidns = false;
    std::string cgroup_root;  // parent of the containers' cgroups; empty: made under our own
    std::uint64_t max_request_bytes = 64ULL << 20; // largest request body (memfd) accepted
    std::uint32_t warm_pool = 2; // ready namespaces kept for top-level launches; 0: none
    // Warm nsfork-oci runtimes for its front (oci/warm.hpp), at socket_path + ".oci", when
    // nsfork-oci is installed beside the running executable (libexec/nsfork/).
    bool warm_runtimes = true;
};

// Where nsfork-shim is looked for by default: beside the running executable (the build tree),
// then ../libexec/nsfork/nsfork-shim relative to it (an installed prefix, wherever it was moved),
// then the configured install path (NSFORK_INSTALLED_SHIM, libexecdir/nsfork). (preflight.cpp)
std::string default_shim_path();

// Runs a server until SIGTERM/SIGINT, or — without a socket path — until the last connection
// closed. Every container is killed and reaped before it returns. Returns a process exit code.
// Only from a single-threaded process (it checks, and refuses otherwise).
int run_server(const ServerOptions& options, UniqueFd initial_connection = {});

// The embedding entry point: forks a private server off the calling process, connected over a
// socketpair, and returns the client end. Call it at the top of main(), before any thread
// exists (refused otherwise). Without options.socket_path the server lives as long as the
// returned Client: destroying the Client kills every container and reaps the server. With it,
// the server also listens there and outlives this process (it ends on SIGTERM), so that an
// agent restarted after a crash reconnects to it and finds its containers.
Result<Client> start_server_before_threads(const ServerOptions& options = {});

} // namespace nsfork
