"""The asyncio client: many requests in flight on one connection, replies matched by seq, exits
observed by Wait replies."""

import asyncio
import os
import signal
import socket

import pytest

import nsfork
from conftest import ENV, error_reply, start_server, stop_server
from nsfork import ErrorCode, ExitStatus, State, _wire
from nsfork import _generated as wire
from nsfork.aio import AsyncClient


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_100_containers_launched_concurrently_on_one_connection(server):
    async def main():
        async with await AsyncClient.connect(server.socket) as client:
            launches = [asyncio.create_task(client.launch(["sh", "-c", f"exit {i}"], env=ENV, id=f"py-many-{i}"))
                        for i in range(100)]
            await asyncio.sleep(0)
            assert len(client._pending) == 100  # all of them sent before any answer was read
            cts = await asyncio.gather(*launches)
            try:
                assert sorted(ct.id for ct in cts) == sorted(f"py-many-{i}" for i in range(100))
                statuses = await asyncio.gather(*(client.wait(ct) for ct in cts))
                assert statuses == [ExitStatus(i, 0) for i in range(100)]
            finally:
                infos = await asyncio.gather(*(client.destroy(ct) for ct in cts))
                for ct in cts:
                    ct.close()
            assert all(info.state == State.Destroyed for info in infos)

    run(main())


def test_a_pending_wait_does_not_hold_up_other_requests(server):
    async def main():
        r, w = os.pipe()
        try:
            async with await AsyncClient.connect(server.socket) as client:
                with await client.launch(["sh", "-c", "read line; exit 3"], env=ENV, stdin=r) as reader:
                    waiting = asyncio.create_task(client.wait(reader))
                    # Launched, waited, destroyed and listed while that Wait is in flight.
                    with await client.launch(["true"], env=ENV) as other:
                        assert await client.wait(other) == ExitStatus(0, 0)
                        await client.destroy(other)
                    assert reader.id in [info.id for info in await client.list()]
                    assert not waiting.done()
                    await client.hello()
                    assert client.peek(reader).state == State.Running
                    os.close(w)
                    w = -1
                    assert await waiting == ExitStatus(3, 0)
                    assert client.peek(reader).exit == ExitStatus(3, 0)
                    await client.destroy(reader)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    run(main())


def test_errors_attach_and_kill(server):
    async def main():
        async with await AsyncClient.connect(server.socket) as client:
            with pytest.raises(nsfork.Error) as e:
                await client.wait("py-nobody")
            assert e.value.code == ErrorCode.UnknownContainer
            with pytest.raises(nsfork.Error) as e:
                client.peek("py-nobody")  # no Hello yet: no table
            assert e.value.code == ErrorCode.Unavailable
            with await client.launch(["sleep", "100"], env=ENV, id="py-aio") as ct:
                with pytest.raises(nsfork.Error) as e:
                    await client.launch(["true"], env=ENV, id="py-aio")
                assert e.value.code == ErrorCode.DuplicateId
                async with await AsyncClient.connect(server.socket) as other:
                    with await other.attach("py-aio") as again:
                        assert again.pid == ct.pid
                    await other.kill("py-aio", signal.SIGKILL)
                assert (await client.wait(ct)).signal == signal.SIGKILL
                await client.destroy(ct)

    run(main())


def test_the_server_ending_answers_waits_then_refuses(tmp_path):
    server = start_server(tmp_path)
    try:
        async def main():
            async with await AsyncClient.connect(server.socket) as client:
                with await client.launch(["sleep", "100"], env=ENV) as ct:
                    waits = [asyncio.create_task(client.wait(ct)) for _ in range(3)]
                    await asyncio.sleep(0)
                    server.stop()  # SIGTERM: it kills its containers, answers, and closes
                    for w in waits:
                        assert (await w).signal == signal.SIGKILL
                    with pytest.raises(nsfork.Error) as e:  # and refuses every later call
                        await client.list()
                    assert e.value.code == ErrorCode.Disconnected
                    assert e.value.message == "nsfork server closed the connection"

        run(main())
    finally:
        stop_server(server, destroyed_all=False)


# --- against a scripted peer: the client's own machinery, no server, no root ------------------

def peer_pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    return ours, theirs


def request_seq(data):
    return wire.RequestMessage.RequestMessage.GetRootAs(data, 0).Seq()


def test_replies_are_matched_by_seq_whatever_their_order():
    async def main():
        ours, theirs = peer_pair()
        with theirs:
            async with AsyncClient(ours) as client:
                calls = [asyncio.create_task(client.wait(f"c{i}")) for i in range(5)]
                await asyncio.sleep(0)
                seqs = [request_seq(theirs.recv(65536)) for _ in range(5)]
                for seq in reversed(seqs):
                    theirs.send(error_reply(seq, b"NSFR", message=f"answer {seq}".encode()))
                for seq, call in zip(seqs, calls):
                    with pytest.raises(nsfork.Error) as e:
                        await call
                    assert e.value.message == f"answer {seq}"

    run(main())


def test_a_seq_0_error_is_about_the_connection_not_a_call():
    async def main():
        ours, theirs = peer_pair()
        async with AsyncClient(ours) as client:
            calls = [asyncio.create_task(client.wait(f"c{i}")) for i in range(3)]
            await asyncio.sleep(0)
            seqs = [request_seq(theirs.recv(65536)) for _ in range(3)]
            # A seq-0 Error about some datagram: every call still gets its own answer.
            theirs.send(error_reply(0, b"NSFR", ErrorCode.Protocol, b"datagram larger than 64 KiB"))
            theirs.send(error_reply(seqs[0], b"NSFR", message=b"yours"))
            with pytest.raises(nsfork.Error) as e:
                await calls[0]
            assert e.value.message == "yours"
            # One before the server closes is why: the calls left get it.
            theirs.send(error_reply(0, b"NSFR", ErrorCode.NotPermitted, b"go away"))
            theirs.close()
            for call in calls[1:]:
                with pytest.raises(nsfork.Error) as e:
                    await call
                assert e.value.code == ErrorCode.NotPermitted and e.value.message == "go away"

    run(main())


def test_the_blocking_client_takes_seq_0_as_the_reason_the_connection_ended():
    ours, theirs = peer_pair()
    with nsfork.Client(ours) as client:
        first, second = client._send(_wire.list_()), client._send(_wire.list_())
        theirs.send(error_reply(0, b"NSFR", ErrorCode.Protocol, b"about some datagram"))
        theirs.send(error_reply(first, b"NSFR", message=b"yours"))
        assert _wire.read_error(client._receive(first)).message == "yours"
        theirs.send(error_reply(0, b"NSFR", ErrorCode.NotPermitted, b"go away"))
        theirs.close()
        with pytest.raises(nsfork.Error) as e:
            client._receive(second)
        assert e.value.code == ErrorCode.NotPermitted and e.value.message == "go away"


def test_calls_in_flight_fail_when_the_peer_closes():
    async def main():
        ours, theirs = peer_pair()
        async with AsyncClient(ours) as client:
            calls = [asyncio.create_task(client.wait("c")) for _ in range(3)]
            await asyncio.sleep(0)
            theirs.close()
            for call in calls:
                with pytest.raises(nsfork.Error) as e:
                    await call
                assert e.value.code == ErrorCode.Disconnected
                assert e.value.message == "nsfork server closed the connection"
            with pytest.raises(nsfork.Error):
                await client.list()

    run(main())


def test_the_blocking_client_keeps_early_replies():
    ours, theirs = peer_pair()
    with theirs, nsfork.Client(ours) as client:
        # Two requests out, answered in reverse order: the first call finds its reply after
        # reading the second's, which waits for its own call.
        first = client._send(_wire.list_())
        second = client._send(_wire.list_())
        for data in (theirs.recv(65536), theirs.recv(65536)):
            assert request_seq(data) in (first, second)
        theirs.send(error_reply(second, b"NSFR", message=b"second"))
        theirs.send(error_reply(first, b"NSFR", message=b"first"))
        assert _wire.read_error(client._receive(first)).message == "first"
        assert _wire.read_error(client._receive(second)).message == "second"


def test_destroy_on_exit_ends_come_unasked_before_or_after_ended_is_awaited(server):
    async def main():
        async with await AsyncClient.connect(server.socket) as client:
            r, w = os.pipe()
            try:
                early = await client.launch(["sh", "-c", "exit 3"], env=ENV, destroy_on_exit=True)
                late = await client.launch(["sh", "-c", "read x; exit 4"], env=ENV, stdin=r, destroy_on_exit=True)
                os.close(r)
                r = -1
                with early, late:
                    assert early.end_seq and late.end_seq
                    # The first ends before anyone asks: its answer, read before the List's
                    # that no longer shows it, is kept.
                    for _ in range(500):
                        if early.id not in [i.id for i in await client.list()]:
                            break
                        await asyncio.sleep(0.01)
                    assert client._ends[early.end_seq].done()
                    # The second is asked for first.
                    pending = asyncio.ensure_future(client.ended(late))
                    await asyncio.sleep(0.05)
                    assert not pending.done()
                    os.close(w)
                    w = -1
                    first, second = await client.ended(early), await pending
                    assert (first.exit, first.state) == (ExitStatus(3, 0), State.Destroyed)
                    assert (second.exit, second.state) == (ExitStatus(4, 0), State.Destroyed)
                    with pytest.raises(nsfork.Error) as e:
                        await client.ended(early)
                    assert e.value.code == ErrorCode.BadRequest
                assert await client.list() == []
            finally:
                for fd in (r, w):
                    if fd >= 0:
                        os.close(fd)

    run(main())
