// The asynchronous client's machinery without Asio (not API: nsfork/async_client.hpp's
// templates call it): compiled into the client library, so that the installed headers need no
// internal ones and the library needs no Asio.
#pragma once

#include "nsfork/client.hpp"
#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/export.hpp"
#include "nsfork/status_table.hpp"
#include "nsfork/types.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace nsfork {

namespace detail {

// A type-erased completion of an operation that yields T: the session calls complete() exactly
// once. Implementations must not call back into the session from complete() (post instead).
template <class T>
class Completion {
public:
    virtual ~Completion() = default;
    virtual void complete(Result<T> result) = 0;
};
template <class T>
using CompletionPtr = std::unique_ptr<Completion<T>>;

// The AsyncClient's machinery without Asio, compiled into the client library: encodes requests,
// sends them (queueing what a full socket refuses), reads replies, matches them to their
// requests by seq and decodes them. The event loop tells it when the socket is readable or
// writable, and asks what to wait for. The socket stays the caller's (it is never closed here).
class NSFORK_API AsyncSession {
public:
    // Takes a connected SOCK_SEQPACKET socket and makes it non-blocking.
    explicit AsyncSession(int socket);
    // Completes every pending operation with Errc::disconnected ("cancelled: ...").
    ~AsyncSession();
    AsyncSession(const AsyncSession&) = delete;
    AsyncSession& operator=(const AsyncSession&) = delete;

    // Requests: each completes `done` once, with the answer or an error (possibly at once, for
    // a request that cannot be sent — completions post, so that is safe).
    void hello(CompletionPtr<ServerStatus> done);
    void launch(const LaunchOptions& options, CompletionPtr<Container> done);
    void wait(const std::string& id, CompletionPtr<ExitStatus> done);
    void kill(const std::string& id, int signal, bool all, CompletionPtr<void> done);
    void destroy(const std::string& id, CompletionPtr<ContainerInfo> done);
    // A container's last description once it ended and is gone: launched with destroy_on_exit
    // (its Container's end_seq(), not 0), the server's second answer to its Launch, nothing sent;
    // otherwise a Wait, then a Destroy.
    void ended(const std::string& id, std::uint32_t end_seq, CompletionPtr<ContainerInfo> done);
    void list(CompletionPtr<std::vector<ContainerInfo>> done);
    void attach(const std::string& id, CompletionPtr<Container> done);

    // The socket is readable: reads every datagram waiting and completes their requests.
    void on_readable();
    // The socket is writable: sends queued requests until it is full again.
    void on_writable();
    // Whether replies are awaited (wait for readability) / requests are queued (writability).
    bool wants_read() const;
    bool wants_write() const;

    // Completes every pending operation with `why`, and every later one too; the caller then
    // closes the socket.
    void close(const Error& why);
    bool closed() const;

    std::size_t in_flight() const;
    // The protocol version of the connection: 1 until a Hello negotiated another.
    std::uint32_t protocol_version() const;
    // The server's status table, mapped at the first Hello answered; nullptr before.
    const StatusTableReader* status_table() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

} // namespace detail

} // namespace nsfork
