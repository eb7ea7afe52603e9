#include "listener.hpp"

#include "base/procfs.hpp"
#include "nsfork/client.hpp"
#include "base/unix_socket.hpp"
#include "protocol/framing.hpp"
#include "protocol/messages.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 // asm-generic/socket.h, Linux 6.5
#endif

namespace nsfork {

using Descriptor = boost::asio::posix::stream_descriptor;
using boost::system::error_code;

PeerPolicy::PeerPolicy(ino_t own_pidns, const std::string& cgroup_root) : own_pidns_(own_pidns), own_uid_(::geteuid()) {
    if (cgroup_root.empty()) return;
    mount_ = procfs::cgroup2_mount();
    if (cgroup_root.compare(0, mount_.size(), mount_) != 0) return;
    root_prefix_ = cgroup_root.substr(mount_.size()) + "/";
    mount_fd_.reset(::open(mount_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

std::string PeerPolicy::refuse(int fd) const {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return "cannot read the peer's credentials";
    if (cred.uid != 0 && cred.uid != own_uid_) return fmt::format("uid {} may not use this nsfork server", cred.uid);
    // A peer in an ancestor namespace is invisible to us (pid 0): it is above the server, fine.
    // One we can see must be in our own namespace (not a container's below it) and outside our
    // containers' cgroups (a container that shares our namespace).
    if (cred.pid == 0) return {};
    // The pid is the peer's as it connected; by now it may be another process's. While the peer
    // lives, its pidfd (Linux 6.5) pins it, and its namespace is read through that. Its cgroup
    // comes through the pidfd too, also when it is gone already (Linux 6.15: a process in a
    // container that connects, sends and exits is still known to be one). A peer gone already (a
    // client that sent its request and died: the request is still served), a kernel without
    // SO_PEERPIDFD, or a server out of fds is judged by pid otherwise, as before.
    int raw = -1;
    socklen_t raw_len = sizeof raw;
    const UniqueFd peer(::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &raw, &raw_len) == 0 ? raw : -1);
    const ino_t ns = peer ? procfs::pid_namespace_inode(cred.pid, peer.get()) : procfs::pid_namespace_inode(cred.pid);
    if (ns != 0 && ns != own_pidns_)
        return fmt::format("pid {} is inside a container of this server (another pid namespace)", cred.pid);
    if (!root_prefix_.empty()) {
        std::string cgroup = peer && mount_fd_ ? procfs::cgroup2_path_of(peer.get(), mount_fd_.get(), mount_) : "";
        if (cgroup.empty()) cgroup = procfs::cgroup2_path(cred.pid);
        if (cgroup.starts_with(root_prefix_))
            return fmt::format("pid {} is inside a container of this server (its cgroup)", cred.pid);
    }
    return {};
}

Result<void> Listener::listen(const std::string& path) {
    auto addr = unix_address(path);
    if (!addr) return std::move(addr).error();

    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return Error{Errc::unavailable, path + " exists and is not a socket"};
        if (Client::connect(path)) return Error{Errc::unavailable, "a server already listens on " + path};
        ::unlink(path.c_str()); // stale: nobody answers
    }
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!sock) return sys_error(Errc::internal, "socket failed", errno);
    // The file is created 0600 from the start: no window in which another user could connect.
    const mode_t old_mask = ::umask(0177);
    const int rc = ::bind(sock.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
    const int bind_errno = errno;
    ::umask(old_mask);
    if (rc < 0) return sys_error(Errc::unavailable, "cannot bind " + path, bind_errno);
    if (::listen(sock.get(), SOMAXCONN) < 0) return sys_error(Errc::internal, "listen failed", errno);
    path_ = path;
    owns_path_ = true;
    sock_.emplace(io_, sock.release());
    arm();
    spdlog::info("listening on {}", path);
    return {};
}

void Listener::adopt(UniqueFd listening, const std::string& address) {
    path_ = address;
    owns_path_ = false;
    sock_.emplace(io_, listening.release());
    arm();
    spdlog::info("listening on {} (socket activation)", address.empty() ? "an unnamed socket" : address);
}

void Listener::close() {
    if (!sock_) return;
    sock_.reset();
    backoff_timer_.cancel();
    if (owns_path_) ::unlink(path_.c_str());
}

void Listener::arm() {
    sock_->async_wait(Descriptor::wait_read, [this](error_code ec) {
        if (!ec && sock_) accept_ready();
    });
}

// Accepts every pending connection; refused peers are told why on seq 0 and closed.
void Listener::accept_ready() {
    for (;;) {
        UniqueFd fd(::accept4(sock_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN) break;
            // Out of fds (or memory): the pending connection stays readable, so waiting for
            // readiness again would spin. Try again a little later, and say so once.
            if (!backoff_) spdlog::warn("accept4 failed: {}; retrying every 50 ms", std::strerror(errno));
            backoff_ = true;
            backoff_timer_.expires_after(std::chrono::milliseconds(50));
            backoff_timer_.async_wait([this](error_code ec) {
                if (!ec && sock_) accept_ready();
            });
            return;
        }
        backoff_ = false;
        if (auto refused = policy_.refuse(fd.get()); !refused.empty()) {
            spdlog::warn("refused a connection: {}", refused);
            flatbuffers::FlatBufferBuilder fbb(256);
            write_error_reply(fbb, 0, Error{Errc::not_permitted, refused});
            (void)send_datagram(fd.get(), {fbb.GetBufferPointer(), fbb.GetSize()}, {});
            continue;
        }
        on_connection_(std::move(fd));
    }
    arm();
}

} // namespace nsfork
