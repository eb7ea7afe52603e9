"""The asyncio client: any number of requests in flight on one connection, their replies matched
by seq. The socket is watched with loop.add_reader (no thread, no task per request); a
container's exit is observed by its Wait reply.

    async with await AsyncClient.connect(path) as client:
        cts = await asyncio.gather(*(client.launch(["true"]) for _ in range(100)))
        statuses = await asyncio.gather(*(client.wait(ct) for ct in cts))
"""

import asyncio
import collections
import os
import signal as _signal
import socket

from . import _transport, _wire
from ._errors import Error
from ._types import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, ErrorCode
from .client import Container, _Connection, _connect_error, _os_error

__all__ = ["AsyncClient"]


class _Outgoing:
    """A request the socket had no room for yet: its bytes and its own copies of its fds."""

    def __init__(self, seq, data, fds):
        self.seq = seq
        self.data = data
        self.fds = fds

    def close(self):
        _transport.close_all(self.fds)
        self.fds = []


class AsyncClient(_Connection):
    """An asyncio client of one nsfork server. Its methods are coroutines but peek(); create it
    (connect, or the constructor) inside the running loop it is used from."""

    def __init__(self, sock):
        """Wraps a connected AF_UNIX SOCK_SEQPACKET socket (a socket.socket), which it now owns."""
        super().__init__()
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._sock = sock
        self._next_seq = 1
        self._pending = {}                     # seq -> (Call, Future)
        self._ends = {}                        # seq -> Future: a destroy_on_exit launch's last answer
        self._outbox = collections.deque()     # _Outgoing, in order
        self._ended = None                     # the Error every call gets once the connection ended
        self._said = None                      # the server's last Error on seq 0
        self._loop.add_reader(sock.fileno(), self._readable)

    @classmethod
    async def connect(cls, path):
        """Connects to the server listening at `path`."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, os.fspath(path))
        except OSError as e:
            sock.close()
            raise _connect_error(path, e) from None
        return cls(sock)

    def fileno(self):
        return self._sock.fileno() if self._sock is not None else -1

    def close(self):
        """Closes the connection: calls still in flight fail with Error(Disconnected)."""
        if self._sock is None:
            return
        self._end(Error(ErrorCode.Disconnected, "client closed the connection"))
        self._sock.close()
        self._sock = None
        self._close_table()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

    # --- the requests (Client's, awaited) -----------------------------------------------------

    async def hello(self, version=MAX_PROTOCOL_VERSION, min_version=MIN_PROTOCOL_VERSION):
        return self._hello_answered(await self._call(_wire.hello(version, min_version, self._table is None)))

    async def status(self):
        return await self.hello()

    async def launch(self, argv, **options):
        """Client.launch's options; the Container once its command was exec'd."""
        return await self._call(_wire.launch(argv, container=Container, **options))

    async def wait(self, container):
        return await self._call(_wire.wait(container))

    async def kill(self, container, signal=_signal.SIGTERM, all=False):
        await self._call(_wire.kill(container, signal, all))

    async def destroy(self, container):
        return await self._call(_wire.destroy(container))

    async def ended(self, container):
        """Client.ended: the Container's last ContainerInfo once it ended and is gone. Launched
        with destroy_on_exit, the server's second answer to the launch (nothing is sent, whether
        it came before this call or comes after); otherwise wait(), then destroy(). Once per
        container."""
        if not container.end_seq:
            await self.wait(container)
            return await self.destroy(container)
        end = self._ends.get(container.end_seq)
        if end is None:
            raise Error(ErrorCode.BadRequest, f"container {container.id!r}: its end was asked for already, "
                                              "or it was not launched with destroy_on_exit on this connection")
        try:
            return await end
        finally:
            self._ends.pop(container.end_seq, None)

    async def list(self):
        return await self._call(_wire.list_())

    async def attach(self, container):
        return await self._call(_wire.attach(container, Container))

    async def adopt(self, container, pidfd):
        await self._call(_wire.adopt(container, pidfd))

    async def status_table(self):
        if self._table is None:
            await self.hello()
            if self._table is None:
                raise Error(ErrorCode.Unavailable, "the server offers no status table")
        return self._table

    def peek(self, container):
        """Client.peek, without a round trip: the table must be mapped already (await hello()
        or status_table() once)."""
        if self._table is None:
            raise Error(ErrorCode.Unavailable, "the status table is not mapped yet: await hello() first")
        return self._peek(self._table, container)

    # --- the wire -----------------------------------------------------------------------------

    async def _call(self, call):
        if self._ended is not None:
            raise Error(self._ended.code, self._ended.message, self._ended.errno)
        seq = self._next_seq
        self._next_seq += 1
        future = self._loop.create_future()
        self._pending[seq] = (call, future)
        try:
            self._send(seq, call)
        except BaseException:
            self._pending.pop(seq, None)
            raise
        return await future

    def _send(self, seq, call):
        data, fds, body = _wire.encode(seq, call)
        try:
            if not self._outbox:
                try:
                    _transport.send(self._sock, data, fds)
                    return
                except BlockingIOError:
                    pass
                except OSError as e:
                    raise _os_error(e, "sendmsg") from None
            # Queued, with copies of the caller's fds: the caller may be cancelled and close
            # them before the socket has room.
            copies = []
            try:
                for fd in fds:
                    copies.append(os.dup(fd))
            except OSError:
                _transport.close_all(copies)
                raise
            self._outbox.append(_Outgoing(seq, data, copies))
            if len(self._outbox) == 1:
                self._loop.add_writer(self._sock.fileno(), self._writable)
        finally:
            if body >= 0:
                os.close(body)

    def _writable(self):
        while self._outbox:
            out = self._outbox[0]
            try:
                _transport.send(self._sock, out.data, out.fds)
            except BlockingIOError:
                return
            except OSError as e:
                self._outbox.popleft().close()
                self._fail(out.seq, _os_error(e, "sendmsg"))
                continue
            self._outbox.popleft().close()
        self._loop.remove_writer(self._sock.fileno())

    def _readable(self):
        reset = False
        while self._sock is not None:
            try:
                reply = _wire.decode(*_transport.recv(self._sock))
            except BlockingIOError:
                return
            except ConnectionResetError as e:
                if reset:
                    return self._end(_os_error(e, "recvmsg"))
                reset = True  # the peer's last words (a seq-0 Error) may still be queued: once more
                continue
            except OSError as e:
                return self._end(_os_error(e, "recvmsg"))
            except Error as e:
                # The end of the stream, or a datagram that is no reply: it belongs to no
                # request, and the connection is out of step.
                return self._end(e)
            try:
                self._deliver(reply)
            finally:
                reply.close()

    def _deliver(self, reply):
        # seq 0 is about the connection, not about a request (PROTOCOL.md, Errors): kept as the
        # reason should the connection end (a refused peer, a server that failed to start).
        if reply.seq == 0 and _wire.is_error(reply):
            self._said = _wire.read_error(reply)
            return
        call, future = self._pending.pop(reply.seq, (None, None))
        if future is None:
            end = self._ends.get(reply.seq)  # a destroy_on_exit container's end, or unasked for
            if end is not None and not end.done():
                self._settle(end, lambda: _wire.read_destroy_reply(reply))
            return
        if future.done():  # its caller was cancelled
            return
        self._settle(future, lambda: call.read(reply))
        ended_seq = getattr(future.result(), "end_seq", 0) if not future.exception() else 0
        if ended_seq:  # (read before the next datagram: the end cannot come unnoticed)
            self._ends[ended_seq] = self._loop.create_future()

    @staticmethod
    def _settle(future, read):
        try:
            future.set_result(read())
        except Exception as e:  # an Error, or a bug of ours: the caller hears of it either way
            future.set_exception(e)

    def _fail(self, seq, error):
        _, future = self._pending.pop(seq, (None, None))
        if future is not None and not future.done():
            future.set_exception(Error(error.code, error.message, error.errno))

    def _end(self, error):
        """The connection is over: every call in flight and every later one gets `error`."""
        if self._ended is not None:
            return
        if error.code == ErrorCode.Disconnected and self._said is not None:
            error = self._said  # the server said why before it closed
        self._ended = error
        self._loop.remove_reader(self._sock.fileno())
        if self._outbox:
            self._loop.remove_writer(self._sock.fileno())
        while self._outbox:
            self._outbox.popleft().close()
        for seq in list(self._pending):
            self._fail(seq, self._ended)
        for end in self._ends.values():
            if not end.done():
                end.set_exception(Error(error.code, error.message, error.errno))
                end.exception()  # retrieved: a launch whose end nobody awaits logs nothing
