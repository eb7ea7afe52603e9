#include "server/activation.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace nsfork {

namespace {

// `text` as a whole decimal number in [1, max], or nullopt.
std::optional<long long> positive(const char* text, long long max) {
    long long n = 0;
    const char* end = text + std::strlen(text);
    const auto [at, ec] = std::from_chars(text, end, n);
    if (ec != std::errc() || at != end || at == text || n < 1 || n > max) return std::nullopt;
    return n;
}

std::vector<std::string> split_names(const char* names) {
    std::vector<std::string> out;
    std::string_view rest(names);
    for (;;) {
        const std::size_t colon = rest.find(':');
        out.emplace_back(rest.substr(0, colon));
        if (colon == std::string_view::npos) return out;
        rest.remove_prefix(colon + 1);
    }
}

// What kind of file `st` is, for an error message ("a regular file").
const char* file_kind(const struct stat& st) {
    switch (st.st_mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a pipe";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFLNK: return "a symbolic link";
    default: return "not a socket";
    }
}

std::string family_name(int family) {
    switch (family) {
    case AF_INET: return "AF_INET";
    case AF_INET6: return "AF_INET6";
    case AF_NETLINK: return "AF_NETLINK";
    case AF_VSOCK: return "AF_VSOCK";
    default: return fmt::format("address family {}", family);
    }
}

std::string type_name(int type) {
    switch (type) {
    case SOCK_STREAM: return "SOCK_STREAM";
    case SOCK_DGRAM: return "SOCK_DGRAM";
    case SOCK_RAW: return "SOCK_RAW";
    default: return fmt::format("socket type {}", type);
    }
}

int socket_option(int fd, int option) {
    int value = -1;
    socklen_t len = sizeof value;
    if (::getsockopt(fd, SOL_SOCKET, option, &value, &len) < 0) return -1;
    return value;
}

// Why `fd` cannot be the server's listening socket, or "" if it can. `what` names it.
std::string unusable(int fd, const std::string& what) {
    struct stat st;
    if (::fstat(fd, &st) < 0) return fmt::format("{} is not open", what);
    if (!S_ISSOCK(st.st_mode)) return fmt::format("{} is {}, not a socket", what, file_kind(st));
    if (const int family = socket_option(fd, SO_DOMAIN); family != AF_UNIX)
        return fmt::format("{} is an {} socket, not AF_UNIX (a socket unit's ListenSequentialPacket= takes a path)",
                           what, family_name(family));
    if (const int type = socket_option(fd, SO_TYPE); type != SOCK_SEQPACKET)
        return fmt::format("{} is a {} socket, not SOCK_SEQPACKET (ListenSequentialPacket=, not ListenStream= or "
                           "ListenDatagram=; systemd-socket-activate --seqpacket)",
                           what, type_name(type));
    if (socket_option(fd, SO_ACCEPTCONN) != 1) return fmt::format("{} is a socket that does not listen", what);
    return {};
}

// The address `fd` is bound to: a path, "@name" (abstract), or "" (unnamed).
std::string bound_address(int fd) {
    sockaddr_un addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) return {};
    const std::size_t offset = offsetof(sockaddr_un, sun_path);
    if (len <= offset) return {};
    const std::size_t size = std::min<std::size_t>(len - offset, sizeof addr.sun_path);
    if (addr.sun_path[0] == '\0') return "@" + std::string(addr.sun_path + 1, size - 1);
    return std::string(addr.sun_path, ::strnlen(addr.sun_path, size));
}

} // namespace

Result<ListenFds> parse_listen_fds(const char* listen_pid, const char* listen_fds, const char* listen_fdnames,
                                   pid_t self) {
    if (!listen_pid) return ListenFds{};
    const auto pid = positive(listen_pid, INT_MAX);
    if (!pid) return Error{Errc::bad_request, fmt::format("socket activation: LISTEN_PID='{}' is not a pid", listen_pid)};
    if (*pid != self) return ListenFds{}; // an ancestor's, passed down to us by mistake
    if (!listen_fds) return ListenFds{};
    const auto count = positive(listen_fds, INT_MAX - kListenFdsStart);
    if (!count)
        return Error{Errc::bad_request,
                     fmt::format("socket activation: LISTEN_FDS='{}' is not a positive number of fds", listen_fds)};
    ListenFds out;
    out.count = static_cast<unsigned>(*count);
    if (listen_fdnames) {
        out.names = split_names(listen_fdnames);
        if (out.names.size() != out.count)
            return Error{Errc::bad_request, fmt::format("socket activation: LISTEN_FDNAMES='{}' names {} fd(s), LISTEN_FDS "
                                                        "announces {}",
                                                        listen_fdnames, out.names.size(), out.count)};
    }
    return out;
}

Result<std::optional<ActivatedSocket>> take_activated_socket() {
    auto parsed = parse_listen_fds(std::getenv("LISTEN_PID"), std::getenv("LISTEN_FDS"), std::getenv("LISTEN_FDNAMES"),
                                   ::getpid());
    // Whatever they said, they are read: no process of ours may take them for its own.
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!parsed) return std::move(parsed).error();
    if (parsed->count == 0) return std::optional<ActivatedSocket>();
    // The service manager leaves them inheritable; nothing of ours may pass them on, even when
    // they are refused below.
    for (unsigned i = 0; i < parsed->count; ++i) {
        const int fd = kListenFdsStart + static_cast<int>(i);
        if (const int flags = ::fcntl(fd, F_GETFD); flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    if (parsed->count != 1)
        return Error{Errc::bad_request,
                     fmt::format("socket activation: {} fds passed (LISTEN_FDS={}); nsfork serve takes exactly one "
                                 "listening socket",
                                 parsed->count, parsed->count)};
    const std::string name = parsed->names.empty() ? std::string() : parsed->names.front();
    const std::string what = fmt::format("socket activation: fd {}{}", kListenFdsStart,
                                         name.empty() ? std::string() : " ('" + name + "')");
    if (std::string why = unusable(kListenFdsStart, what); !why.empty()) return Error{Errc::bad_request, why};
    // Asio's loop accepts until EAGAIN. (The flag is the open file description's, which the
    // service manager shares: it only polls it, so it does not mind.)
    if (const int flags = ::fcntl(kListenFdsStart, F_GETFL);
        flags < 0 || ::fcntl(kListenFdsStart, F_SETFL, flags | O_NONBLOCK) < 0)
        return sys_error(Errc::internal, what + ": cannot make it non-blocking", errno);
    ActivatedSocket s;
    s.fd = UniqueFd(kListenFdsStart);
    s.path = bound_address(kListenFdsStart);
    s.name = name;
    return std::optional<ActivatedSocket>(std::move(s));
}

std::string socket_disagreement(const std::string& given, const std::string& activated) {
    if (given == activated) return {};
    struct stat a, b;
    if (!activated.empty() && activated[0] != '@' && ::stat(given.c_str(), &a) == 0 && ::stat(activated.c_str(), &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return {};
    return fmt::format("--socket {} is not the socket the service manager passed ({}); give the same path, or no "
                       "--socket",
                       given, activated.empty() ? "an unnamed socket" : activated);
}

} // namespace nsfork
