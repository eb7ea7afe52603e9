// Requests built by hand and sent raw: what a hostile or crashed client sends, past every check
// of the client library (missing required fields, unknown kinds, too many fds).
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "protocol/framing.hpp"
#include "protocol/messages.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace nsfork::testing {

using Bytes = std::vector<std::uint8_t>;

// The PATH a container gets in the tests.
inline constexpr const char* kTestPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The bytes of a finished builder.
Bytes bytes_of(const flatbuffers::FlatBufferBuilder& fbb);
// A RequestMessage of any union type (even one the schema does not know) over `body`, finished
// with `identifier`: a request's by default, nullptr for none (as a client built from the schema
// before protocol version 2 sends it), or any other four characters.
Bytes request(std::uint32_t seq, std::uint8_t type, flatbuffers::FlatBufferBuilder& fbb, flatbuffers::Offset<void> body,
              const char* identifier = kRequestIdentifier);

// A Hello offering [min_version, version] (min_version 0: the field left out).
Bytes hello(std::uint32_t seq, std::uint32_t version = kProtocolVersion, std::uint32_t min_version = 0,
            const char* identifier = kRequestIdentifier);

// The fields of a Launch; an unset optional is left out of the message.
struct LaunchFields {
    std::optional<std::string> id;
    std::optional<std::vector<std::string>> argv = std::vector<std::string>{"/bin/true"};
    std::vector<std::string> env{kTestPath};
    std::optional<std::string> cwd;
    std::vector<std::uint8_t> roles; // FdRole values, unchecked
    std::optional<std::string> parent;
    bool share_pid_namespace = false;
    bool tie_to_connection = false;
    bool destroy_on_exit = false;
    bool tty = false;
    bool kill_group = false;
    std::uint64_t signal_mask = 0;
    std::uint64_t ignored_signals = 0;
    // A User table when any of these is set (an empty groups vector included).
    std::optional<std::uint32_t> uid, gid;
    std::optional<std::vector<std::uint32_t>> groups;
};
// A Launch request; built field by field so that even a missing required argv can be sent.
Bytes launch_request(std::uint32_t seq, const LaunchFields& f);

Bytes wait_request(std::uint32_t seq, const std::string& id);
Bytes kill_request(std::uint32_t seq, const std::string& id, int signal, bool all = false);
Bytes destroy_request(std::uint32_t seq, const std::string& id);
// A Wait, Kill or Destroy table with no id (required by the schema), in a RequestMessage.
Bytes without_id(std::uint32_t seq, wire::Request type);
// A Body envelope on `seq` that says the real message is the first `size` bytes of the memfd
// sent as the datagram's first fd.
Bytes body_envelope(std::uint32_t seq, std::uint64_t size);

// sendmsg of `bytes` with `fds` in SCM_RIGHTS on `sock`, past every check of send_datagram (it
// can send more fds than the protocol allows); never raises SIGPIPE. Returns 0 or the errno.
int send_raw(int sock, std::span<const std::uint8_t> bytes, std::span<const int> fds = {}, int flags = 0);

// A connection to a server socket that sends whatever bytes and fds a test makes.
class RawConnection {
public:
    static Result<RawConnection> connect(const std::string& socket_path);

    int fd() const { return sock_.get(); }
    void close() { sock_.reset(); }
    std::uint32_t next_seq() { return seq_++; }

    // Sends one datagram with `fds` in SCM_RIGHTS (send_raw); returns 0 or the errno of sendmsg.
    int send(const Bytes& bytes, std::span<const int> fds = {}, int flags = 0) {
        return send_raw(sock_.get(), bytes, fds, flags);
    }

    // The next datagram from the server; Errc::disconnected once it closed, Errc::unavailable
    // if nothing came within `timeout`.
    Result<Datagram> receive(std::chrono::milliseconds timeout = std::chrono::seconds(10));

private:
    explicit RawConnection(UniqueFd sock) : sock_(std::move(sock)) {}
    UniqueFd sock_;
    std::uint32_t seq_ = 1;
};

} // namespace nsfork::testing
