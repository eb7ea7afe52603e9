#include "base/unix_socket.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace nsfork {

Result<std::pair<UniqueFd, UniqueFd>> seqpacket_pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return sys_error(Errc::internal, "socketpair failed", errno);
    return std::pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

} // namespace nsfork
