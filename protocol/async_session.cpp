// The AsyncClient's machinery without Asio (nsfork/async_client.hpp): requests in flight by
// seq, a queue of what a full socket refused, replies matched and decoded as they come.
#include "nsfork/detail/async_session.hpp"

#include "protocol/requests.hpp"

#include <fcntl.h>

#include <cerrno>
#include <deque>
#include <map>

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

} // namespace

struct AsyncSession::State {
    int sock;
    std::uint32_t next_seq = 1;
    std::uint32_t version = 1;
    std::optional<StatusTableReader> table;
    std::map<std::uint32_t, std::unique_ptr<Pending>> pending; // sent or queued, not answered
    std::deque<Queued> queue;                                   // not sent yet, in order
    std::optional<Error> closed;                                // why, once closed

    // A seq for a new request: never 0 (the server's own), nor one still in flight.
    std::uint32_t take_seq() {
        while (next_seq == 0 || pending.count(next_seq)) ++next_seq;
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
            if (it == pending.end()) continue; // an answer to nothing we asked: dropped
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
    // (The end's unasked answer would have no operation to complete: async_wait, async_destroy.)
    if (options.destroy_on_exit)
        return done->complete(Error{Errc::bad_request, "destroy_on_exit is for the blocking Client's ended()"});
    const std::uint32_t seq = state_->take_seq();
    auto fds = write_launch(fbb, seq, options);
    if (!fds) return done->complete(std::move(fds).error());
    state_->submit(fbb, seq, *fds,
                   pending(std::move(done), [tty = options.tty, hold = options.hold](OpenedReply& r) {
                       return read_launch_reply(r, tty, hold);
                   }));
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
bool AsyncSession::wants_read() const { return !state_->closed && !state_->pending.empty(); }
bool AsyncSession::wants_write() const { return !state_->closed && !state_->queue.empty(); }
void AsyncSession::close(const Error& why) { state_->close(why); }
bool AsyncSession::closed() const { return state_->closed.has_value(); }
std::size_t AsyncSession::in_flight() const { return state_->pending.size(); }
std::uint32_t AsyncSession::protocol_version() const { return state_->version; }
const StatusTableReader* AsyncSession::status_table() const { return state_->table ? &*state_->table : nullptr; }

} // namespace nsfork::detail
