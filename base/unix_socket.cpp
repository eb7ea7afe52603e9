#include "base/unix_socket.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace nsfork {

Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return Error{Errc::bad_request, "socket path too long: " + path};
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

Result<std::pair<UniqueFd, UniqueFd>> seqpacket_pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return sys_error(Errc::internal, "socketpair failed", errno);
    return std::pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

} // namespace nsfork
