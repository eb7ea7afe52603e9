"""The wire as PROTOCOL.md pins it: Hello's version negotiation, file identifiers, sealed memfd
bodies both ways, malformed requests answered with an Error."""

import asyncio
import fcntl
import os
import socket

import flatbuffers
import pytest

import nsfork
from nsfork import ErrorCode, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, _transport, _wire
from nsfork import _generated as wire
from nsfork.aio import AsyncClient
from conftest import error_reply


# --- Hello ------------------------------------------------------------------------------------

def test_hello_negotiates_the_highest_common_version(client):
    assert client.version == 1  # nothing said yet: version 1
    status = client.hello()
    assert status.version == MAX_PROTOCOL_VERSION == 2 and client.version == 2
    assert status.pid > 0 and status.pool_size >= status.pool_ready
    assert client.hello(version=1, min_version=1).version == 1
    assert client.hello(version=7, min_version=MIN_PROTOCOL_VERSION).version == 2


def test_hello_with_an_impossible_range_is_refused_naming_the_versions(client):
    with pytest.raises(nsfork.Error) as e:
        client.hello(version=99, min_version=98)
    assert e.value.code == ErrorCode.Protocol
    assert "98..99" in e.value.message and "1..2" in e.value.message
    with pytest.raises(nsfork.Error) as e:
        client.hello(version=1, min_version=2)  # an empty range
    assert e.value.code == ErrorCode.Protocol and "min_version 2 is above its version 1" in e.value.message
    assert client.list() is not None  # the connection stays usable
    assert client.hello().version == 2


# --- identifiers ------------------------------------------------------------------------------

def hello_request(seq, identifier):
    """A Hello finished with `identifier` (None: none, as a client of the previous schema)."""
    b = flatbuffers.Builder(64)
    wire.Hello.Start(b)
    wire.Hello.AddVersion(b, 1)
    hello = wire.Hello.End(b)
    wire.RequestMessage.Start(b)
    wire.RequestMessage.AddSeq(b, seq)
    wire.RequestMessage.AddRequestType(b, wire.Request.Request.Hello)
    wire.RequestMessage.AddRequest(b, hello)
    b.Finish(wire.RequestMessage.End(b), file_identifier=identifier)
    return bytes(b.Output())


@pytest.fixture
def raw(server):
    """A bare connection to the server, for messages no client sends."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as s:
        s.connect(os.fspath(server.socket))
        yield s


def exchange(sock, data):
    _transport.send(sock, data)
    return _wire.decode(*_transport.recv(sock))


def test_every_request_carries_NSFQ():
    data, fds, body = _wire.encode(3, _wire.list_())
    assert data[4:8] == b"NSFQ" and fds == [] and body == -1


@pytest.mark.parametrize("identifier, accepted, said", [
    (b"NSFQ", True, None),
    (None, True, None),  # a client built before protocol version 2
    (b"NSFR", False, "a reply (NSFR) sent as a request"),
    (b"ABCD", False, "unknown file identifier 'ABCD'"),
])
def test_the_server_checks_request_identifiers(raw, identifier, accepted, said):
    reply = exchange(raw, hello_request(5, identifier))
    try:
        assert reply.seq == 5
        if accepted:
            assert reply.kind == wire.Reply.Reply.HelloReply
        else:
            error = _wire.read_error(reply)
            assert error.code == ErrorCode.Protocol and said in error.message
    finally:
        reply.close()
    # Refused or not, the connection goes on.
    reply = exchange(raw, hello_request(6, b"NSFQ"))
    assert reply.kind == wire.Reply.Reply.HelloReply
    reply.close()


def test_garbage_is_answered_on_seq_0(raw):
    reply = exchange(raw, b"\xff" * 32)
    assert reply.seq == 0 and _wire.read_error(reply).code == ErrorCode.Protocol


@pytest.mark.parametrize("identifier, refusal", [
    (b"NSFR", None),
    (None, None),
    (b"NSFQ", "a request (NSFQ) sent as a reply"),
    (b"WXYZ", "unknown file identifier 'WXYZ'"),
])
def test_the_client_checks_reply_identifiers(identifier, refusal):
    data = error_reply(4, identifier)
    if refusal is None:
        reply = _wire.decode(data, [])
        assert reply.seq == 4 and _wire.read_error(reply).message == "it broke"
    else:
        with pytest.raises(nsfork.Error) as e:
            _wire.decode(data, [])
        assert e.value.code == ErrorCode.Protocol and refusal in e.value.message


def test_a_reply_that_does_not_parse_is_a_protocol_error():
    with pytest.raises(nsfork.Error) as e:
        _wire.decode(b"\x40\x00\x00\x00NSFR" + b"\x00" * 8, [])
    assert e.value.code == ErrorCode.Protocol


# --- bodies -----------------------------------------------------------------------------------

def test_a_large_request_goes_as_a_sealed_body():
    call = _wire.launch(["true"], env={"BIG": "x" * 100_000}, container=None)
    data, fds, body = _wire.encode(9, call)
    try:
        assert len(data) < 100 and data[4:8] == b"NSFQ" and fds == [body]
        assert fcntl.fcntl(body, fcntl.F_GET_SEALS) & _transport.BODY_SEALS == _transport.BODY_SEALS
        inner = os.pread(body, os.fstat(body).st_size, 0)
        assert inner[4:8] == b"NSFQ" and b"x" * 100_000 in inner
        envelope = wire.RequestMessage.RequestMessage.GetRootAs(data, 0)
        assert envelope.Seq() == 9 and envelope.RequestType() == wire.Request.Request.Body
        assert wire.RequestMessage.RequestMessage.GetRootAs(inner, 0).Seq() == 9
    finally:
        os.close(body)


def body_envelope(seq, size):
    b = flatbuffers.Builder(64)
    wire.Body.Start(b)
    wire.Body.AddSize(b, size)
    body = wire.Body.End(b)
    wire.ReplyMessage.Start(b)
    wire.ReplyMessage.AddSeq(b, seq)
    wire.ReplyMessage.AddReplyType(b, wire.Reply.Reply.Body)
    wire.ReplyMessage.AddReply(b, body)
    b.Finish(wire.ReplyMessage.End(b), file_identifier=b"NSFR")
    return bytes(b.Output())


def test_a_reply_body_is_read_from_its_memfd():
    inner = error_reply(8, b"NSFR", message=b"y" * 100_000)
    reply = _wire.decode(body_envelope(8, len(inner)), [_transport.make_body(inner)])
    assert reply.seq == 8 and reply.fds == []  # the memfd was the body's, closed once read
    assert _wire.read_error(reply).message == "y" * 100_000


@pytest.mark.parametrize("sealed, seq, said", [
    (False, 8, "not sealed"),
    (True, 9, "seq differs"),
])
def test_a_bad_reply_body_is_refused(sealed, seq, said):
    inner = error_reply(seq, b"NSFR")
    if sealed:
        fd = _transport.make_body(inner)
    else:
        fd = os.memfd_create("unsealed", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(fd, inner)
    with pytest.raises(nsfork.Error) as e:
        _wire.decode(body_envelope(8, len(inner)), [fd])  # closes fd either way
    assert e.value.code == ErrorCode.Protocol and said in e.value.message


def test_a_large_reply_comes_as_a_body(server, monkeypatch):
    """A List of 80 hold containers, each with a cgroup leaf path of ~1000 bytes: over 64 KiB."""
    bodies = []
    read_body = _transport.read_body
    monkeypatch.setattr(_transport, "read_body", lambda fd, size: bodies.append(size) or read_body(fd, size))

    async def run():
        async with await AsyncClient.connect(server.socket) as client:
            name = "{:03d}" + "/".join(c * 250 for c in "xyz") + "/" + "w" * 200
            cts = await asyncio.gather(*(client.launch([], hold=True, id=f"py-body-{i}", cgroup_name=name.format(i))
                                         for i in range(80)))
            try:
                listed = [info for info in await client.list() if info.id.startswith("py-body-")]
                assert len(listed) == 80 and all(len(info.cgroup) > 950 for info in listed)
            finally:
                await asyncio.gather(*(client.destroy(ct) for ct in cts))
                for ct in cts:
                    ct.close()

    asyncio.run(run())
    assert bodies and bodies[0] > _transport.MAX_INLINE


# --- datagrams --------------------------------------------------------------------------------

def test_fds_arrive_close_on_exec_and_too_many_are_refused():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    r, w = os.pipe()
    try:
        with ours, theirs:
            _transport.send(theirs, b"x", [r, w])
            data, fds = _transport.recv(ours)
            try:
                assert data == b"x" and len(fds) == 2
                assert all(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC for fd in fds)
            finally:
                _transport.close_all(fds)
            _transport.send(theirs, b"x", [r] * (_transport.MAX_FDS + 1))
            with pytest.raises(nsfork.Error) as e:
                _transport.recv(ours)  # closes the 16 that came (the leak check says so)
            assert e.value.code == ErrorCode.Protocol and "more than 16 fds" in e.value.message
    finally:
        os.close(r)
        os.close(w)


def test_a_datagram_over_64_KiB_is_refused():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    with ours, theirs:
        _transport.send(theirs, b"x" * (_transport.MAX_DATAGRAM + 1))
        with pytest.raises(nsfork.Error) as e:
            _transport.recv(ours)
        assert e.value.code == ErrorCode.Protocol and "64 KiB" in e.value.message
        theirs.close()
        with pytest.raises(nsfork.Error) as e:
            _transport.recv(ours)
        assert e.value.code == ErrorCode.Disconnected
