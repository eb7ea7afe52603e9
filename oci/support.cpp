#include "oci/support.hpp"

#include "base/pidfd.hpp"
#include "base/unix_socket.hpp"
#include "oci/forwarded_signals.h"
#include "oci/warm.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace nsfork::oci {

namespace {

// strerror as runc words it: "connection refused".
std::string lowercase_strerror(int err) {
    std::string text = std::strerror(err);
    if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    return text;
}

// SIGKILLs a process through a pidfd, if it is still the one that started at `start_time`;
// returns that pidfd (-1 when it was gone already), readable once the process has ended.
UniqueFd kill_if_same(pid_t pid, std::uint64_t start_time) {
    auto pidfd = open_process(pid, start_time);
    if (!pidfd) return {};
    (void)signal_pidfd(pidfd->get(), SIGKILL);
    return std::move(*pidfd);
}

} // namespace

Result<Client> connect_server(const std::string& socket) {
    if (auto made = warm::take_server_connection(socket)) return std::move(*made);
    auto client = Client::connect(socket);
    if (client) return client;
    const int err = client.error().sys_errno;
    if (err == ECONNREFUSED || err == ENOENT)
        return Error{Errc::disconnected, "cannot reach the nsfork server at " + socket + ": " + lowercase_strerror(err) +
                                             "; start it with `nsfork serve --socket " + socket + "`"};
    return Error{Errc::disconnected,
                 "cannot reach the nsfork server at " + socket + ": " + (err ? lowercase_strerror(err) : client.error().message)};
}

Result<Found> find_container(const std::string& root, const std::string& id) {
    auto dir = StateDir::open(root, id);
    if (!dir) return std::move(dir).error();
    auto state = dir->read();
    if (!state) return std::move(state).error();
    return Found{std::move(*dir), std::move(*state)};
}

Result<void> end_container(const ContainerState& state) {
    if (auto server = Client::connect(state.server_socket)) {
        auto destroyed = server->destroy(state.server_id);
        if (!destroyed && destroyed.error().code != Errc::unknown_container)
            return Error{destroyed.error().code, "the nsfork server could not destroy container " + state.id + ": " +
                                                     destroyed.error().message};
    }
    // Whatever the server did: a server restarted since knows nothing of it, and a container that
    // shares a pid namespace (no namespace of its own) does not end with its holder.
    (void)kill_if_same(state.holder_pid, state.holder_start_time);
    const UniqueFd process = kill_if_same(state.pid, state.start_time);
    // SIGKILL is not instant: the cgroups and the state outlive the process only if we return
    // before it is gone. Bounded, so that a process stuck in the kernel (D state) cannot hang
    // an engine's delete.
    pollfd ended{process.get(), POLLIN, 0};
    if (process && ::poll(&ended, 1, 5000) != 1 && same_process_running(state.pid, state.start_time))
        return Error{Errc::internal, "the process of container " + state.id + " (pid " + std::to_string(state.pid) +
                                         ") did not end after SIGKILL"};
    return {};
}

ControllerCgroups controllers_of(const ContainerState& state) {
    if (state.controllers) return ControllerCgroups::from_paths(*state.controllers);
    return ControllerCgroups::find(state.cgroups_path);
}

Result<void> write_pid_file(const std::string& path, pid_t pid) {
    return write_file_atomically(path, std::to_string(pid));
}

Result<ProcessIoOwner> process_io(const std::string& console_socket, unsigned preserve_fds) {
    ProcessIoOwner owner;
    for (unsigned i = 0; i < preserve_fds; ++i) owner.io.preserved.push_back(3 + static_cast<int>(i));
    if (console_socket.empty()) return owner;
    auto addr = unix_address(console_socket);
    if (!addr) return std::move(addr).error();
    owner.console.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!owner.console) return sys_error(Errc::internal, "socket", errno);
    if (::connect(owner.console.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) < 0)
        return sys_error(Errc::bad_request, "cannot connect to the console socket " + console_socket, errno);
    owner.io.console_socket = owner.console.get();
    return owner;
}

sigset_t forwarded_signals() { return nsfork_oci_forwarded_signals(); }

Result<ExitStatus> wait_forwarding(int pidfd, const sigset_t& forwarded) {
    UniqueFd sigfd(::signalfd(-1, &forwarded, SFD_CLOEXEC));
    if (!sigfd) return sys_error(Errc::internal, "signalfd", errno);
    for (;;) {
        pollfd fds[2] = {{pidfd, POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return sys_error(Errc::internal, "poll", errno);
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo info{};
            if (::read(sigfd.get(), &info, sizeof info) == sizeof info)
                (void)signal_pidfd(pidfd, static_cast<int>(info.ssi_signo)); // it may have just ended
        }
        if (fds[0].revents & POLLIN) return reap(pidfd);
    }
}

} // namespace nsfork::oci
