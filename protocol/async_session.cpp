// The AsyncClient's machinery without Asio (nsfork/async_client.hpp): requests in flight by
// seq, a queue of what a full socket refused, replies matched and decoded as they come.
#include "nsfork/detail/async_session.hpp"

#include "protocol/requests.hpp"

#include <fcntl.h>

#include <cerrno>
#include <deque>
#include <iterator>
#include <map>
#include <optional>

namespace nsfork::detail {

namespace {

// A request in flight: what turns its reply into its caller's result.
class Pending {
public:
    virtual ~Pending() = default;
    virtual void answer(OpenedReply& reply) = 0;
    virtual void fail(Error error) = 0;
};

template <class T, class Read>
class PendingOf final : public Pending {
public:
    PendingOf(CompletionPtr<T> done, Read read) : done_(std::move(done)), read_(std::move(read)) {}
    void answer(OpenedReply& reply) override { done_->complete(read_(reply)); }
    void fail(Error error) override { done_->complete(Result<T>(std::move(error))); }

private:
    CompletionPtr<T> done_;
    Read read_;
};

template <class T, class Read>
std::unique_ptr<Pending> pending(CompletionPtr<T> done, Read read) {
    return std::make_unique<PendingOf<T, Read>>(std::move(done), std::move(read));
}

// A request the socket could not take yet, with copies of its fds (the caller's may be closed
// by the time it goes).
struct Queued {
    std::uint32_t seq;
    std::vector<std::uint8_t> bytes;
    std::vector<UniqueFd> fds;
};

bool would_block(const Error& e) { return e.sys_errno == EAGAIN || e.sys_errno == EWOULDBLOCK; }

// The second answer of a Launch with destroy_on_exit (its DestroyReply, at the container's end),
// kept under the Launch's seq until ended() takes it; ended() may come before or after it.
struct End {
    CompletionPtr<ContainerInfo> waiter;          // ended() asked first
    std::optional<Result<ContainerInfo>> result;  // it came first (or the connection ended)
};

} // namespace

struct AsyncSession::State {
    int sock;
    std::uint32_t next_seq = 1;
    std::uint32_t version = 1;
    std::optional<StatusTableReader> table;
    std::map<std::uint32_t, std::unique_ptr<Pending>> pending; // sent or queued, not answered
    std::map<std::uint32_t, End> ends;                          // launched destroy_on_exit, not ended()
    std::deque<Queued> queue;                                   // not sent yet, in order
    std::optional<Error> closed;                                // why, once closed

    // A seq for a new request: never 0 (the server's own), nor one still in flight.
    std::uint32_t take_seq() {
        while (next_seq == 0 || pending.count(next_seq) || ends.count(next_seq)) ++next_seq;
        return next_seq++;
    }

    // Sends the request finished in `fbb` on `seq` with `fds` — or queues it behind others, or
    // while the socket is full — and keeps `p` until its reply comes.
    void submit(const flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, std::span<const int> fds,
                std::unique_ptr<Pending> p) {
        if (closed) return p->fail(*closed);
        std::span<const std::uint8_t> bytes{fbb.GetBufferPointer(), fbb.GetSize()};
        if (queue.empty()) {
            auto sent = send_request(sock, bytes, seq, fds);
            if (sent) {
                pending.emplace(seq, std::move(p));
                return;
            }
            if (sent.error().code == Errc::disconnected) {
                pending.emplace(seq, std::move(p));
                return lost(std::move(sent).error());
            }
            if (!would_block(sent.error())) return p->fail(std::move(sent).error());
        }
        Queued q{seq, {bytes.begin(), bytes.end()}, {}};
        for (int fd : fds) {
            q.fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
            if (!q.fds.back()) return p->fail(sys_error(Errc::internal, "cannot keep an fd of a queued request", errno));
        }
        queue.push_back(std::move(q));
        pending.emplace(seq, std::move(p));
    }

    // Sends queued requests until the socket is full or the queue empty.
    void flush() {
        while (!closed && !queue.empty()) {
            Queued& q = queue.front();
            std::vector<int> fds;
            for (const UniqueFd& fd : q.fds) fds.push_back(fd.get());
            auto sent = send_request(sock, q.bytes, q.seq, fds);
            if (!sent && would_block(sent.error())) return;
            const std::uint32_t seq = q.seq;
            queue.pop_front();
            if (sent) continue;
            if (sent.error().code == Errc::disconnected) return lost(std::move(sent).error());
            fail(seq, std::move(sent).error());
        }
    }

    // Reads every reply waiting and completes its request.
    void read_all() {
        while (!closed) {
            auto got = receive_reply(sock);
            if (!got) {
                if (would_block(got.error())) return;
                // Closed, or a reply we cannot read, whose request we cannot tell: the
                // connection is no longer to be trusted with any.
                return close(std::move(got).error());
            }
            if (auto refusal = server_refusal(*got)) return close(*refusal);
            auto it = pending.find(got->message->seq());
            if (it == pending.end()) {
                if (auto end = ends.find(got->message->seq()); end != ends.end()) settle(end, read_destroy_reply(*got));
                continue; // else an answer to nothing we asked: dropped
            }
            std::unique_ptr<Pending> p = std::move(it->second);
            pending.erase(it);
            p->answer(*got);
        }
    }

    // The connection broke while sending: the replies that came before it still count, and the
    // server may have said why it closed (seq 0); then everything else fails with `why`.
    void lost(Error why) {
        read_all();
        close(std::move(why));
    }

    void fail(std::uint32_t seq, Error error) {
        auto it = pending.find(seq);
        if (it == pending.end()) return;
        std::unique_ptr<Pending> p = std::move(it->second);
        pending.erase(it);
        p->fail(std::move(error));
    }

    void close(Error why) {
        if (closed) return;
        closed = why;
        queue.clear();
        auto failing = std::move(pending);
        pending.clear();
        for (auto& [seq, p] : failing) p->fail(why);
        for (auto it = ends.begin(); it != ends.end();) {
            auto next = std::next(it);
            if (!it->second.result) settle(it, why);
            it = next;
        }
    }

    // A container's end came (or can no longer come): to ended()'s caller, or kept for it.
    void settle(std::map<std::uint32_t, End>::iterator end, Result<ContainerInfo> result) {
        if (!end->second.waiter) {
            end->second.result = std::move(result);
            return;
        }
        CompletionPtr<ContainerInfo> waiter = std::move(end->second.waiter);
        ends.erase(end);
        waiter->complete(std::move(result));
    }

};

AsyncSession::AsyncSession(int socket) : state_(std::make_unique<State>()) {
    state_->sock = socket;
    // Every send and receive must return at once: readiness comes from the event loop. (A
    // failure here leaves a blocking socket, which still works, less well.)
    const int flags = ::fcntl(socket, F_GETFL);
    if (flags >= 0) (void)::fcntl(socket, F_SETFL, flags | O_NONBLOCK);
}

AsyncSession::~AsyncSession() {
    if (state_) close(Error{Errc::disconnected, "cancelled: the AsyncClient was destroyed"});
}

void AsyncSession::hello(CompletionPtr<ServerStatus> done) {
    flatbuffers::FlatBufferBuilder fbb(64);
    const std::uint32_t seq = state_->take_seq();
    State* s = state_.get();
    write_hello(fbb, seq, !s->table); // two in flight before the first reply both ask: harmless
    state_->submit(fbb, seq, {}, pending(std::move(done), [s](OpenedReply& r) { return keep_hello(r, s->version, s->table); }));
}

void AsyncSession::launch(const LaunchOptions& options, CompletionPtr<Container> done) {
    flatbuffers::FlatBufferBuilder fbb(512);
    const std::uint32_t seq = state_->take_seq();
    auto fds = write_launch(fbb, seq, options);
    if (!fds) return done->complete(std::move(fds).error());
    State* s = state_.get();
    state_->submit(fbb, seq, *fds,
                   pending(std::move(done), [s, tty = options.tty, hold = options.hold](OpenedReply& r) {
                       auto ct = read_launch_reply(r, tty, hold);
                       // Read before the next datagram: the end cannot come unnoticed.
                       if (ct && ct->end_seq()) s->ends.emplace(ct->end_seq(), End{});
                       return ct;
                   }));
}

namespace {

// ended() of a container the server does not destroy at its end: a Wait, then a Destroy.
class WaitThenDestroy final : public Completion<ExitStatus> {
public:
    WaitThenDestroy(AsyncSession& session, std::string id, CompletionPtr<ContainerInfo> done)
        : session_(session), id_(std::move(id)), done_(std::move(done)) {}
    void complete(Result<ExitStatus> status) override {
        if (!status) return done_->complete(std::move(status).error());
        session_.destroy(id_, std::move(done_)); // (the session's own: it calls nothing back)
    }

private:
    AsyncSession& session_;
    std::string id_;
    CompletionPtr<ContainerInfo> done_;
};

} // namespace

void AsyncSession::ended(const std::string& id, std::uint32_t end_seq, CompletionPtr<ContainerInfo> done) {
    if (!end_seq) return wait(id, std::make_unique<WaitThenDestroy>(*this, id, std::move(done)));
    auto end = state_->ends.find(end_seq);
    if (end == state_->ends.end() || end->second.waiter)
        return done->complete(Error{Errc::bad_request, "container '" + id +
                                                           "': its end was asked for already, or it was not launched "
                                                           "with destroy_on_exit on this connection"});
    if (end->second.result) {
        Result<ContainerInfo> result = std::move(*end->second.result);
        state_->ends.erase(end);
        return done->complete(std::move(result));
    }
    end->second.waiter = std::move(done);
}

void AsyncSession::wait(const std::string& id, CompletionPtr<ExitStatus> done) {
    flatbuffers::FlatBufferBuilder fbb(128);
    const std::uint32_t seq = state_->take_seq();
    write_wait(fbb, seq, id);
    state_->submit(fbb, seq, {}, pending(std::move(done), read_wait_reply));
}

void AsyncSession::kill(const std::string& id, int signal, bool all, CompletionPtr<void> done) {
    flatbuffers::FlatBufferBuilder fbb(128);
    const std::uint32_t seq = state_->take_seq();
    write_kill(fbb, seq, id, signal, all);
    state_->submit(fbb, seq, {}, pending(std::move(done), read_kill_reply));
}

void AsyncSession::destroy(const std::string& id, CompletionPtr<ContainerInfo> done) {
    flatbuffers::FlatBufferBuilder fbb(128);
    const std::uint32_t seq = state_->take_seq();
    write_destroy(fbb, seq, id);
    state_->submit(fbb, seq, {}, pending(std::move(done), read_destroy_reply));
}

void AsyncSession::list(CompletionPtr<std::vector<ContainerInfo>> done) {
    flatbuffers::FlatBufferBuilder fbb(64);
    const std::uint32_t seq = state_->take_seq();
    write_list(fbb, seq);
    state_->submit(fbb, seq, {}, pending(std::move(done), read_list_reply));
}

void AsyncSession::attach(const std::string& id, CompletionPtr<Container> done) {
    flatbuffers::FlatBufferBuilder fbb(128);
    const std::uint32_t seq = state_->take_seq();
    write_attach(fbb, seq, id);
    state_->submit(fbb, seq, {}, pending(std::move(done), read_attach_reply));
}

void AsyncSession::on_readable() { state_->read_all(); }
void AsyncSession::on_writable() { state_->flush(); }
bool AsyncSession::wants_read() const {
    if (state_->closed) return false;
    if (!state_->pending.empty()) return true;
    for (const auto& [seq, end] : state_->ends)
        if (end.waiter) return true;
    return false;
}
bool AsyncSession::wants_write() const { return !state_->closed && !state_->queue.empty(); }
void AsyncSession::close(const Error& why) { state_->close(why); }
bool AsyncSession::closed() const { return state_->closed.has_value(); }
std::size_t AsyncSession::in_flight() const { return state_->pending.size(); }
std::uint32_t AsyncSession::protocol_version() const { return state_->version; }
const StatusTableReader* AsyncSession::status_table() const { return state_->table ? &*state_->table : nullptr; }

} // namespace nsfork::detail
