// What the bad-input tests share: a server with a raw connection to it, the check that it goes
// on serving after a bad datagram, and the exact-answer check of an Error reply.
#pragma once

#include "harness.hpp"
#include "protocol/messages.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace nsfork::test::badinput {

using testing::Bytes;

// The server's fds and children at rest.
struct Footprint {
    std::size_t fds = 0, children = 0;
    bool operator==(const Footprint&) const = default;
};

// The server's footprint once it stopped changing (it closes a refused datagram's fds just
// after it replied, and refills its warm pool after a launch): the same for 200 ms, or after 5 s
// the last one seen.
Footprint settled_footprint(pid_t pid);

// /dev/null, read-write: an fd that is nothing the server looks for.
UniqueFd dev_null();
// A memfd holding `bytes`, with `seals` added.
UniqueFd memfd_with(const Bytes& bytes, int seals);

// The verified reply in `got`, which must be a datagram.
const wire::ReplyMessage* reply_in(const Result<Datagram>& got);
// Checks that `got` is an Error reply on `seq` with `code` and exactly `message`, and no fds.
void check_error(const Result<Datagram>& got, std::uint32_t seq, Errc code, const std::string& message);

// A server, a raw connection to it, and the server's footprint with that connection open.
struct Fixture {
    ServerProcess server;
    testing::RawConnection raw{raw_connection(server.socket())};
    Footprint baseline;

    // A server started with `server_args` (beyond the suite's own).
    explicit Fixture(std::vector<std::string> server_args = {});
    // Lets the raw connection send datagrams larger than the default send buffer (~208 KiB).
    void force_send_buffer();
    // Sends `bytes` (with `fds`) on the raw connection and returns the next datagram.
    Result<Datagram> ask(const Bytes& bytes, std::span<const int> fds = {});
    // Launches /bin/true over the raw connection, waits for it and destroys it.
    void raw_round_trip();
    // The server goes on serving: the raw connection (unless it was dropped) and a new client
    // each launch and wait a container; then the server holds as many fds and children as
    // before (one fd fewer if the raw connection was dropped).
    void check_still_serving(bool raw_alive = true);
};

inline const std::string kDoesNotVerify = "message does not verify as an nsfork message";

} // namespace nsfork::test::badinput
