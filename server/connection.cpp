#include "connection.hpp"

#include "protocol/messages.hpp"

#include <boost/asio/post.hpp>
#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace nsfork {

using Descriptor = boost::asio::posix::stream_descriptor;
using boost::system::error_code;

namespace {
// Datagrams handled from one connection before others get a turn.
constexpr int kReadBatch = 64;
// Replies queued for a client that does not read before it is disconnected; and fds, which
// each cost the server one of its own (a pidfd or the status table, duplicated).
constexpr std::size_t kMaxOutbox = 4096;
constexpr std::size_t kMaxQueuedFds = 64;
} // namespace

void Connection::arm_read() {
    sock_.async_wait(Descriptor::wait_read, [self = shared_from_this()](error_code ec) {
        if (!ec && !self->closed_) self->read_ready();
    });
}

// Reads until the socket is empty (Asio's epoll is edge-triggered), a batch at a time.
void Connection::read_ready() {
    for (int i = 0; i < kReadBatch; ++i) {
        auto got = recv_datagram(sock_.native_handle());
        if (!got) {
            const Error& e = got.error();
            if (e.sys_errno == EAGAIN) return arm_read();
            if (e.code == Errc::protocol) {
                // The bad datagram is consumed; the stream stays in step, so say why and go on.
                spdlog::warn("connection {}: {}", id_, e.message);
                flatbuffers::FlatBufferBuilder fbb(256);
                write_error_reply(fbb, 0, e);
                send(fbb);
                continue;
            }
            if (e.code != Errc::disconnected) {
                spdlog::warn("connection {}: {}", id_, e.message);
                return close();
            }
            // End of stream: a peer that only shut down its sending side still gets its
            // replies; the connection ends once it hangs up for good (EPOLLHUP wakes every wait).
            pollfd p{sock_.native_handle(), 0, 0};
            if (::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) return close();
            spdlog::debug("connection {}: peer half-closed", id_);
            sock_.async_wait(Descriptor::wait_error, [self = shared_from_this()](error_code ec) {
                if (!ec) self->close();
            });
            return;
        }
        owner_.handle(*this, *got);
        if (closed_) return;
    }
    boost::asio::post(sock_.get_executor(), [self = shared_from_this()] {
        if (!self->closed_) self->read_ready();
    });
}

void Connection::send(const flatbuffers::FlatBufferBuilder& fbb, std::span<const int> fds) {
    if (closed_) return;
    std::span<const std::uint8_t> bytes{fbb.GetBufferPointer(), fbb.GetSize()};
    // A large reply (a List of thousands) goes as a sealed memfd, its own fds after it.
    const std::uint32_t seq = flatbuffers::GetRoot<wire::ReplyMessage>(bytes.data())->seq();
    auto wrapped = wrap_if_large(bytes, seq, true);
    if (!wrapped) {
        spdlog::error("connection {}: {}", id_, wrapped.error().message);
        return close();
    }
    std::vector<int> all;
    if (wrapped->body) {
        all.push_back(wrapped->body.get());
        all.insert(all.end(), fds.begin(), fds.end());
        bytes = wrapped->envelope;
        fds = all;
    }
    if (outbox_.empty()) {
        auto sent = send_datagram(sock_.native_handle(), bytes, fds);
        if (sent) return;
        if (sent.error().sys_errno != EAGAIN) {
            spdlog::debug("connection {}: {}", id_, sent.error().message);
            return close();
        }
    }
    if (outbox_.size() >= kMaxOutbox || queued_fds_ + fds.size() > kMaxQueuedFds) {
        spdlog::warn("connection {}: {} replies unread, disconnecting", id_, outbox_.size());
        return close();
    }
    Outgoing out{{bytes.begin(), bytes.end()}, {}};
    out.fds.reserve(fds.size());
    for (int fd : fds) {
        UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
        if (!copy) return queue_instead(seq, errno);
        out.fds.push_back(std::move(copy));
    }
    queued_fds_ += out.fds.size();
    outbox_.push_back(std::move(out));
    if (outbox_.size() == 1) arm_write();
}

// The server is out of fds (or memory) to hold a reply's fds until the client reads: the reply
// is replaced by an error on the same seq. A client copes with that as with any refused request
// (the container, if the reply was about one, is still there to Attach to); closing the
// connection instead would destroy every container tied to it, and queueing the reply without
// its fds would desynchronise the client's fd roles.
void Connection::queue_instead(std::uint32_t seq, int err) {
    // Said once per connection: a client that never reads would otherwise fill the log.
    spdlog::log(std::exchange(warned_fds_, true) ? spdlog::level::debug : spdlog::level::warn,
                "connection {}: cannot keep a reply's fds until the client reads ({}): sending an error instead",
                id_, std::strerror(err));
    flatbuffers::FlatBufferBuilder fbb(256);
    write_error_reply(fbb, seq,
                      sys_error(Errc::unavailable,
                                "the server could not keep this reply's file descriptors until the "
                                "client read it",
                                err));
    outbox_.push_back(Outgoing{{fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()}, {}});
    if (outbox_.size() == 1) arm_write();
}

void Connection::arm_write() {
    sock_.async_wait(Descriptor::wait_write, [self = shared_from_this()](error_code ec) {
        if (ec || self->closed_) return;
        while (!self->outbox_.empty()) {
            Outgoing& out = self->outbox_.front();
            std::vector<int> fds;
            for (auto& fd : out.fds) fds.push_back(fd.get());
            auto sent = send_datagram(self->sock_.native_handle(), out.bytes, fds);
            if (!sent) {
                if (sent.error().sys_errno == EAGAIN) return self->arm_write();
                return self->close();
            }
            self->queued_fds_ -= out.fds.size();
            self->outbox_.pop_front();
        }
    });
}

void Connection::close() {
    if (closed_) return;
    closed_ = true;
    outbox_.clear();
    error_code ignored;
    sock_.close(ignored);
    owner_.connection_closed(id_);
}

} // namespace nsfork
