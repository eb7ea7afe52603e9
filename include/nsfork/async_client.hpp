// The asynchronous client (nsfork::AsyncClient): the blocking Client's requests as Boost.Asio
// operations on one connection — any number in flight, completed by seq as the server answers,
// in any order (a Wait answers when its container ends: a Wait in flight per container observes
// every exit with no thread and no polling).
//
// Every operation completes with `void(nsfork::Result<T>)`, T as the blocking Client returns
// it: errors stay values with a message, whatever the token (a future never throws, a
// coroutine gets the Result from co_await).
//
//   client.async_launch(options, [](nsfork::Result<nsfork::Container> ct) { ... });  // callback
//   std::future<nsfork::Result<nsfork::ExitStatus>> f = client.async_wait(id, asio::use_future);
//   nsfork::Result<nsfork::ContainerInfo> gone = co_await client.async_destroy(id, asio::use_awaitable);
//
// Threading: an AsyncClient lives on one executor and is called from the one thread running it
// (an io_context run by one thread); it is not thread-safe. Completion handlers run through
// their associated executor (by default the client's), always posted: never inside the call
// that started the operation, nor inside another handler.
//
// GCC 12 cannot compile a braced list of strings inside a co_await expression ("array used as
// initializer"): build LaunchOptions in a statement of their own, then co_await the launch.
//
// Lifetimes: an AsyncClient is an I/O object of its executor's context, destroyed before it; a
// moved-from one may only be assigned to or destroyed. A lost connection completes every
// pending operation with Errc::disconnected ("nsfork server closed the connection"), and every
// later one too. Destroying the AsyncClient completes every pending operation with
// Errc::disconnected ("cancelled: ..."); handlers that never got to run are destroyed with the
// io_context, as Asio does.
//
// Fds passed in LaunchOptions need only be open until async_launch returns (with use_awaitable:
// until it is co_awaited); a request the socket cannot take at once is queued with copies.
#pragma once

#include "nsfork/client.hpp"
#include "nsfork/detail/async_session.hpp"
#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/export.hpp"
#include "nsfork/fd.hpp"
#include "nsfork/status_table.hpp"
#include "nsfork/types.hpp"

// GCC 12 in C++20: Asio 1.74 uses std::exchange without including <utility> itself.
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace nsfork {

namespace detail {

// The completion of an Asio handler: posts it, with the result, to its associated executor
// (the client's by default), keeping that executor's work alive until then.
template <class T, class Handler, class Executor>
class HandlerCompletion final : public Completion<T> {
public:
    HandlerCompletion(Handler handler, const Executor& fallback)
        : work_(boost::asio::make_work_guard(boost::asio::get_associated_executor(handler, fallback))),
          handler_(std::move(handler)) {}

    void complete(Result<T> result) override {
        auto executor = work_.get_executor();
        boost::asio::post(executor, [handler = std::move(handler_), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
        });
        work_.reset();
    }

private:
    using WorkExecutor = boost::asio::associated_executor_t<Handler, Executor>;
    boost::asio::executor_work_guard<WorkExecutor> work_;
    Handler handler_;
};

} // namespace detail

class AsyncClient {
public:
    using executor_type = boost::asio::any_io_executor;

    // Connects to the server listening at `socket_path` (a local connect does not block).
    static Result<AsyncClient> connect(const executor_type& executor, const std::string& socket_path) {
        auto socket = detail::connect_socket(socket_path);
        if (!socket) return std::move(socket).error();
        return AsyncClient(executor, std::move(*socket));
    }
    // Wraps an already connected SOCK_SEQPACKET socket.
    AsyncClient(const executor_type& executor, UniqueFd socket)
        : impl_(std::make_shared<Impl>(executor, std::move(socket))) {}
    AsyncClient(AsyncClient&&) noexcept = default;
    AsyncClient& operator=(AsyncClient&& other) noexcept {
        if (this != &other) {
            shutdown();
            impl_ = std::move(other.impl_);
        }
        return *this;
    }
    // Cancels every pending operation (see the top of this file) and closes the connection.
    ~AsyncClient() { shutdown(); }

    executor_type get_executor() const { return impl_->executor; }

    // Hello: negotiates the protocol version, maps the server's status table, and says how the
    // server is (its pid, warm pool, statistics).          Completion: void(Result<ServerStatus>)
    template <class Token>
    auto async_hello(Token&& token) {
        return initiate<ServerStatus>(std::forward<Token>(token),
                                      [](detail::AsyncSession& s, auto done) { s.hello(std::move(done)); });
    }
    // Launches a container; completes once its command was exec'd.
    //                                                         Completion: void(Result<Container>)
    template <class Token>
    auto async_launch(LaunchOptions options, Token&& token) {
        return initiate<Container>(std::forward<Token>(token),
                                   [options = std::move(options)](detail::AsyncSession& s, auto done) {
                                       s.launch(options, std::move(done));
                                   });
    }
    // Completes when the container ended (at once if it had), with its exit status.
    //                                                        Completion: void(Result<ExitStatus>)
    template <class Token>
    auto async_wait(std::string id, Token&& token) {
        return initiate<ExitStatus>(std::forward<Token>(token),
                                    [id = std::move(id)](detail::AsyncSession& s, auto done) {
                                        s.wait(id, std::move(done));
                                    });
    }
    // Sends `signal` to the container, as Client::kill (with `all`: to every process of it and
    // of those nested in it).                                      Completion: void(Result<void>)
    template <class Token>
    auto async_kill(std::string id, int signal, bool all, Token&& token) {
        return initiate<void>(std::forward<Token>(token),
                              [id = std::move(id), signal, all](detail::AsyncSession& s, auto done) {
                                  s.kill(id, signal, all, std::move(done));
                              });
    }
    template <class Token>
    auto async_kill(std::string id, int signal, Token&& token) {
        return async_kill(std::move(id), signal, false, std::forward<Token>(token));
    }
    // Kills every process of the container, completes once they are gone and it is forgotten,
    // with its final description.                         Completion: void(Result<ContainerInfo>)
    template <class Token>
    auto async_destroy(std::string id, Token&& token) {
        return initiate<ContainerInfo>(std::forward<Token>(token),
                                       [id = std::move(id)](detail::AsyncSession& s, auto done) {
                                           s.destroy(id, std::move(done));
                                       });
    }
    // Completes once the container ended and is gone, with its last description (exit status in
    // it). Launched with LaunchOptions::destroy_on_exit, that is the server's second answer to
    // the Launch: nothing is sent, whether the end came before this call or comes after. Otherwise
    // a Wait, then a Destroy. Once per container.           Completion: void(Result<ContainerInfo>)
    template <class Token>
    auto async_ended(const Container& container, Token&& token) {
        return initiate<ContainerInfo>(std::forward<Token>(token),
                                       [id = container.id(), seq = container.end_seq()](detail::AsyncSession& s, auto done) {
                                           s.ended(id, seq, std::move(done));
                                       });
    }
    // Every container of the server.         Completion: void(Result<std::vector<ContainerInfo>>)
    template <class Token>
    auto async_list(Token&& token) {
        return initiate<std::vector<ContainerInfo>>(std::forward<Token>(token),
                                                    [](detail::AsyncSession& s, auto done) { s.list(std::move(done)); });
    }
    // A container's pidfd and description again (containers outlive the connection that
    // launched them).                                         Completion: void(Result<Container>)
    template <class Token>
    auto async_attach(std::string id, Token&& token) {
        return initiate<Container>(std::forward<Token>(token),
                                   [id = std::move(id)](detail::AsyncSession& s, auto done) {
                                       s.attach(id, std::move(done));
                                   });
    }

    // Requests sent or queued and not yet answered.
    std::size_t in_flight() const { return impl_ ? impl_->session.in_flight() : 0; }
    // The protocol version of the connection: 1 until async_hello negotiated another.
    std::uint32_t protocol_version() const { return impl_ ? impl_->session.protocol_version() : 0; }
    // The server's status table once an async_hello was answered (nullptr before): peek at a
    // container's state with plain loads.
    const StatusTableReader* status_table() const { return impl_ ? impl_->session.status_table() : nullptr; }

private:
    // The connection, shared with the socket waits in flight so that those never outlive it.
    struct Impl : std::enable_shared_from_this<Impl> {
        Impl(const executor_type& ex, UniqueFd socket)
            : executor(ex), descriptor(ex, socket.get()), session(socket.release()) {}

        executor_type executor;
        // Owns the socket, used for readiness only (async_wait): the session reads and writes
        // with recvmsg and sendmsg itself, fds and all.
        boost::asio::posix::stream_descriptor descriptor;
        detail::AsyncSession session;
        bool reading = false, writing = false;

        // Waits for what the session wants: readable while replies are due, writable while
        // requests are queued. Nothing pending, nothing waited for: the io_context may run out.
        void arm() {
            if (session.closed()) {
                boost::system::error_code ignored;
                descriptor.close(ignored);
                return;
            }
            if (!reading && session.wants_read()) {
                reading = true;
                descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                      [self = shared_from_this()](const boost::system::error_code& ec) {
                                          self->reading = false;
                                          if (ec || self->session.closed()) return;
                                          self->session.on_readable();
                                          self->arm();
                                      });
            }
            if (!writing && session.wants_write()) {
                writing = true;
                descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                                      [self = shared_from_this()](const boost::system::error_code& ec) {
                                          self->writing = false;
                                          if (ec || self->session.closed()) return;
                                          self->session.on_writable();
                                          self->arm();
                                      });
            }
        }
    };

    // Starts an operation yielding T: `start(session, completion)` sends its request.
    template <class T, class Token, class Start>
    auto initiate(Token&& token, Start start) {
        return boost::asio::async_initiate<Token, void(Result<T>)>(
            [impl = impl_](auto handler, Start send) {
                using Handler = decltype(handler);
                send(impl->session,
                      detail::CompletionPtr<T>(new detail::HandlerCompletion<T, Handler, executor_type>(
                          std::move(handler), impl->executor)));
                impl->arm();
            },
            token, std::move(start));
    }

    void shutdown() {
        if (!impl_) return;
        impl_->session.close(Error{Errc::disconnected, "cancelled: the AsyncClient was destroyed"});
        impl_->arm(); // closes the descriptor, which cancels its waits
        impl_.reset();
    }

    std::shared_ptr<Impl> impl_;
};

} // namespace nsfork
