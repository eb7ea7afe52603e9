// The server's listening socket: created 0600 (a stale one replaced) or taken from a service
// manager (socket activation), connections accepted with a back-off when out of fds, and the
// peer policy that decides who may connect. Included by the server's own files only (it pulls in
// Asio).
#pragma once

#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

namespace nsfork {

// Who may use the server: our uid (or root), and no process inside one of our containers — root
// in a container sees the socket on the shared file system, and must not reach the server that
// contains it. What it compares against is computed once, not per connection.
class PeerPolicy {
public:
    // `cgroup_root`: the containers' cgroup root's absolute path ("" without cgroups).
    PeerPolicy(ino_t own_pidns, const std::string& cgroup_root);
    // Why the peer on `fd` may not connect, or "" if it may.
    std::string refuse(int fd) const;

private:
    ino_t own_pidns_;
    uid_t own_uid_;
    std::string mount_;       // the cgroup2 mount, with a root
    UniqueFd mount_fd_;       //   (a peer's cgroup is opened by id below it)
    std::string root_prefix_; // the root relative to the cgroup2 mount, with a trailing '/'
};

class Listener {
public:
    using OnConnection = std::function<void(UniqueFd)>;
    Listener(boost::asio::io_context& io, PeerPolicy policy, OnConnection on_connection)
        : io_(io), policy_(std::move(policy)), on_connection_(std::move(on_connection)), backoff_timer_(io) {}

    // Binds `path` (mode 0600 from the start) and starts accepting; refuses to take over a
    // socket a live server answers on.
    Result<void> listen(const std::string& path);
    // Starts accepting on `listening`, a socket that already listens (non-blocking), bound to
    // `address` (for the log): one a service manager passed (server/activation.hpp). Its file
    // is the service manager's: close() leaves it in place.
    void adopt(UniqueFd listening, const std::string& address);
    // Stops listening and removes the socket file, if listen() made it.
    void close();
    bool listening() const { return sock_.has_value(); }

private:
    void arm();
    void accept_ready();

    boost::asio::io_context& io_;
    PeerPolicy policy_;
    OnConnection on_connection_;
    std::string path_;
    bool owns_path_ = false; // listen() bound it: ours to remove
    std::optional<boost::asio::posix::stream_descriptor> sock_;
    boost::asio::steady_timer backoff_timer_;
    bool backoff_ = false;
};

} // namespace nsfork
