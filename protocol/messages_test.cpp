// File identifiers, no server: every message we finish carries its identifier; a message with
// the right one or none (a peer built from the schema before protocol version 2) is read, one
// with another refused with the cause and, when it can be read at all, its seq.
#include "protocol/messages.hpp"
#include "protocol/replies.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace nsfork;

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
    return Bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

std::string identifier_of(const Bytes& b) { return std::string(b.begin() + 4, b.begin() + 8); }

// A Hello request on `seq`, finished with `identifier` (nullptr: none).
Bytes hello(std::uint32_t seq, const char* identifier) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateRequestMessage(fbb, seq, wire::Request::Hello, wire::CreateHello(fbb, 1).Union()),
               identifier);
    return bytes_of(fbb);
}

// An Error reply on `seq`, finished with `identifier` (nullptr: none).
Bytes error_reply(std::uint32_t seq, const char* identifier) {
    flatbuffers::FlatBufferBuilder fbb;
    auto e = wire::CreateError(fbb, wire::ErrorCode::Internal, fbb.CreateString("boom"));
    fbb.Finish(wire::CreateReplyMessage(fbb, seq, wire::Reply::Error, e.Union()), identifier);
    return bytes_of(fbb);
}

// Requests of every shape the previous schema's clients send, without an identifier.
std::vector<Bytes> unidentified_requests() {
    std::vector<Bytes> out;
    auto add = [&](auto make) {
        flatbuffers::FlatBufferBuilder fbb;
        make(fbb);
        out.push_back(bytes_of(fbb));
    };
    add([](auto& fbb) {
        fbb.Finish(wire::CreateRequestMessage(fbb, 1, wire::Request::Hello, wire::CreateHello(fbb, 1).Union()));
    });
    add([](auto& fbb) {
        auto argv = fbb.CreateVectorOfStrings(std::vector<std::string>{"/bin/echo", "hi"});
        auto env = fbb.CreateVectorOfStrings(std::vector<std::string>{"PATH=/bin"});
        std::vector<wire::FdRole> roles{wire::FdRole::Stdin, wire::FdRole::Stdout, wire::FdRole::Stderr};
        auto launch = wire::CreateLaunch(fbb, fbb.CreateString("job"), argv, env, 0, fbb.CreateVector(roles));
        fbb.Finish(wire::CreateRequestMessage(fbb, 0xfffffffe, wire::Request::Launch, launch.Union()));
    });
    add([](auto& fbb) {
        fbb.Finish(wire::CreateRequestMessage(fbb, 3, wire::Request::Wait,
                                              wire::CreateWait(fbb, fbb.CreateString("job")).Union()));
    });
    add([](auto& fbb) {
        fbb.Finish(wire::CreateRequestMessage(fbb, 4, wire::Request::List, wire::CreateList(fbb).Union()));
    });
    add([](auto& fbb) {
        fbb.Finish(wire::CreateRequestMessage(fbb, 0, wire::Request::Kill,
                                              wire::CreateKill(fbb, fbb.CreateString("x"), 9, true).Union()));
    });
    return out;
}

Datagram datagram(Bytes bytes) {
    Datagram d;
    d.bytes = std::move(bytes);
    return d;
}

// The bytes a wrapped message goes as: its envelope with the body's memfd.
Datagram wrapped(const Bytes& bytes, std::uint32_t seq, bool reply) {
    auto w = wrap_if_large(bytes, seq, reply);
    REQUIRE(w);
    REQUIRE(w->body);
    Datagram d;
    d.bytes = w->envelope;
    d.fds.push_back(std::move(w->body));
    return d;
}

} // namespace

TEST_CASE("messages: finish_request and finish_reply put NSFQ and NSFR at bytes 4..7") {
    flatbuffers::FlatBufferBuilder q;
    finish_request(q, 7, wire::Request::List, wire::CreateList(q).Union());
    CHECK(identifier_of(bytes_of(q)) == "NSFQ");
    CHECK(std::string(wire::RequestMessageIdentifier()) == kRequestIdentifier); // the schema's
    flatbuffers::Verifier v(q.GetBufferPointer(), q.GetSize());
    CHECK(wire::VerifyRequestMessageBuffer(v)); // the generated check of the identifier agrees

    flatbuffers::FlatBufferBuilder r;
    finish_reply(r, 7, wire::Reply::KillReply, wire::CreateKillReply(r).Union());
    CHECK(identifier_of(bytes_of(r)) == "NSFR");

    flatbuffers::FlatBufferBuilder e;
    write_error_reply(e, 7, Error{Errc::bad_request, "no"});
    CHECK(identifier_of(bytes_of(e)) == "NSFR");
}

TEST_CASE("messages: identify tells ours, none and another identifier apart") {
    CHECK(identify(hello(1, kRequestIdentifier)) == Identified::request);
    CHECK(identify(error_reply(1, kReplyIdentifier)) == Identified::reply);
    CHECK(identify(hello(1, "ABCD")) == Identified::other);
    CHECK(identify(error_reply(1, nullptr)) == Identified::none);
    for (const Bytes& b : unidentified_requests()) CHECK(identify(b) == Identified::none);
    CHECK(identify(Bytes{1, 2, 3}) == Identified::none); // too short to hold one
}

TEST_CASE("messages: verify_request takes NSFQ and no identifier, refuses NSFR and others") {
    CHECK(verify_request(hello(1, kRequestIdentifier)));
    for (const Bytes& b : unidentified_requests()) CHECK(verify_request(b));
    CHECK_FALSE(verify_request(hello(1, kReplyIdentifier)));
    CHECK_FALSE(verify_request(hello(1, "ABCD")));
}

TEST_CASE("messages: verify_reply takes NSFR and no identifier, refuses NSFQ and others") {
    CHECK(verify_reply(error_reply(1, kReplyIdentifier)));
    CHECK(verify_reply(error_reply(1, nullptr)));
    CHECK_FALSE(verify_reply(error_reply(1, kRequestIdentifier)));
    CHECK_FALSE(verify_reply(error_reply(1, "nsfr")));
}

TEST_CASE("messages: open_request reads an identified and an unidentified request alike") {
    for (const char* identifier : {kRequestIdentifier, static_cast<const char*>(nullptr)}) {
        std::uint32_t seq = 99;
        auto opened = open_request(datagram(hello(12, identifier)), 1 << 20, seq);
        REQUIRE(opened);
        CHECK(seq == 12);
        CHECK(opened->message->request_as_Hello());
    }
}

TEST_CASE("messages: open_request refuses a reply sent as a request, on its seq") {
    std::uint32_t seq = 99;
    auto opened = open_request(datagram(error_reply(21, kReplyIdentifier)), 1 << 20, seq);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == Errc::protocol);
    CHECK(opened.error().message == "a reply (NSFR) sent as a request");
    CHECK(seq == 21);
}

TEST_CASE("messages: open_request refuses an unknown identifier, on its seq or 0 when unreadable") {
    std::uint32_t seq = 99;
    auto opened = open_request(datagram(hello(22, "ABCD")), 1 << 20, seq);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == Errc::protocol);
    CHECK(opened.error().message == "unknown file identifier 'ABCD' (an nsfork request carries NSFQ)");
    CHECK(seq == 22);

    Bytes junk{0xff, 0xff, 0xff, 0x7f, 'J', 'U', 'N', 'K', 1, 2, 3, 4};
    opened = open_request(datagram(junk), 1 << 20, seq);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().message == "unknown file identifier 'JUNK' (an nsfork request carries NSFQ)");
    CHECK(seq == 0);
}

TEST_CASE("messages: open_reply refuses a request sent as a reply and an unknown identifier") {
    auto opened = open_reply(datagram(hello(1, kRequestIdentifier)), 1 << 20);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == Errc::protocol);
    CHECK(opened.error().message == "a request (NSFQ) sent as a reply");
    opened = open_reply(datagram(error_reply(1, "XYZW")), 1 << 20);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().message == "unknown file identifier 'XYZW' (an nsfork reply carries NSFR)");
    CHECK(open_reply(datagram(error_reply(1, nullptr)), 1 << 20));
}

TEST_CASE("messages: a large message's Body envelope and the message inside both carry the identifier") {
    flatbuffers::FlatBufferBuilder fbb;
    auto id = fbb.CreateString(std::string(kMaxInline, 'x'));
    finish_request(fbb, 31, wire::Request::Wait, wire::CreateWait(fbb, id).Union());
    const Bytes inner = bytes_of(fbb);
    auto w = wrap_if_large(inner, 31, false);
    REQUIRE(w);
    CHECK(identifier_of(w->envelope) == "NSFQ");

    std::uint32_t seq = 0;
    auto opened = open_request(wrapped(inner, 31, false), 1 << 20, seq);
    REQUIRE(opened);
    CHECK(seq == 31);
    REQUIRE(opened->message->request_as_Wait());
    CHECK(opened->message->request_as_Wait()->id()->size() == kMaxInline);
}

TEST_CASE("messages: a Body envelope holding a reply is refused as a request") {
    flatbuffers::FlatBufferBuilder fbb;
    write_error_reply(fbb, 32, Error{Errc::internal, std::string(kMaxInline, 'e')});
    std::uint32_t seq = 0;
    auto opened = open_request(wrapped(bytes_of(fbb), 32, false), 1 << 20, seq);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == Errc::protocol);
    CHECK(opened.error().message == "message body: a reply (NSFR) sent as a request");
    CHECK(seq == 32);
}

TEST_CASE("messages: a large reply round-trips through its identified Body envelope") {
    flatbuffers::FlatBufferBuilder fbb;
    write_error_reply(fbb, 33, Error{Errc::internal, std::string(kMaxInline, 'e')});
    auto opened = open_reply(wrapped(bytes_of(fbb), 33, true), 1 << 20);
    REQUIRE(opened);
    CHECK(opened->message->seq() == 33);
    REQUIRE(opened->message->reply_as_Error());
    CHECK(opened->message->reply_as_Error()->message()->size() == kMaxInline);
}
