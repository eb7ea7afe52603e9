// One client connection of the server: reads request datagrams, queues replies for a client
// that reads slowly. Included by the server's own files only (it pulls in Asio).
#pragma once

#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "protocol/framing.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>

namespace nsfork {

class Connection;

// What a Connection reports to: each request datagram, and its own end.
class ConnectionOwner {
public:
    virtual void handle(Connection& conn, Datagram& datagram) = 0;
    virtual void connection_closed(std::uint64_t id) = 0;

protected:
    ~ConnectionOwner() = default;
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    // Takes ownership of `fd`, a connected non-blocking SOCK_SEQPACKET socket.
    Connection(ConnectionOwner& owner, std::uint64_t id, int fd, boost::asio::io_context& io)
        : owner_(owner), id_(id), sock_(io, fd) {}

    std::uint64_t id() const { return id_; }
    // The protocol version it speaks: 1 until a Hello negotiates another (PROTOCOL.md).
    std::uint32_t version() const { return version_; }
    void set_version(std::uint32_t version) { version_ = version; }
    void start() { arm_read(); }
    // Sends now, or queues (fds duplicated) while the client's socket is full; when they cannot
    // be duplicated, an error reply on the same seq is queued instead.
    void send(const flatbuffers::FlatBufferBuilder& fbb, std::span<const int> fds = {});
    void close();

private:
    struct Outgoing {
        std::vector<std::uint8_t> bytes;
        std::vector<UniqueFd> fds;
    };
    void arm_read();
    void read_ready();
    void arm_write();
    void queue_instead(std::uint32_t seq, int err);

    ConnectionOwner& owner_;
    std::uint64_t id_;
    std::uint32_t version_ = 1;
    boost::asio::posix::stream_descriptor sock_;
    std::deque<Outgoing> outbox_;
    std::size_t queued_fds_ = 0;
    bool closed_ = false;
    bool warned_fds_ = false; // queue_instead said so once
};

} // namespace nsfork
