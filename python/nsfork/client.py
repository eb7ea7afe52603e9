"""The blocking client: one Client is one connection to an nsfork server (not thread-safe: give
each thread its own). include/nsfork/client.hpp is its C++ counterpart."""

import errno as _errno
import os
import signal as _signal
import socket

from . import _transport, _wire
from ._errors import Error, disconnected
from ._types import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, ErrorCode
from .status_table import StatusTable


class Container:
    """A launched (or attached) container: its ContainerInfo and a pidfd of its init, owned by
    this object and closed by close() or at the end of a `with` block. Closing it does not stop
    the container: destroy() does. The pidfd is readable (select, poll) once the init exited, and
    can be signalled (signal.pidfd_send_signal), not waited: the status comes from wait().
    fileno() is the pidfd, so a Container can be handed to select() as it is."""

    def __init__(self, info, pidfd, terminal=-1, cgroup=-1):
        self.info = info
        self.pidfd = pidfd
        self.terminal = terminal  # a tty launch's pseudo-terminal master, else -1
        self.cgroup = cgroup      # a hold launch's cgroup v2 leaf (a directory fd), else -1
        self.end_seq = 0          # launched destroy_on_exit: the Launch's seq, answered again at its end

    @property
    def id(self):
        return self.info.id

    @property
    def pid(self):
        return self.info.pid

    @property
    def pidns(self):
        return self.info.pidns

    def fileno(self):
        return self.pidfd

    def release_pidfd(self):
        """Hands the pidfd over: the caller closes it, this object no longer does."""
        fd, self.pidfd = self.pidfd, -1
        return fd

    def close(self):
        for name in ("pidfd", "terminal", "cgroup"):
            fd = getattr(self, name, -1)
            setattr(self, name, -1)
            if fd >= 0:
                os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        return f"<nsfork.Container {self.id!r} pid={self.pid} pidfd={self.pidfd}>"


def _os_error(e, what):
    if e.errno in (_errno.EPIPE, _errno.ECONNRESET):
        return disconnected()
    return Error(ErrorCode.Internal, f"{what} failed: {e.strerror}", e.errno)


def _connect_error(path, e):
    return Error(ErrorCode.Disconnected, f"cannot connect to nsfork server at {path}: {e.strerror}", e.errno)


class _Connection:
    """What the blocking and the asyncio client share: the negotiated version, the status table."""

    def __init__(self):
        self._table = None
        self.version = 1   # the protocol version the connection speaks; hello() negotiates it

    def _hello_answered(self, answer):
        """Takes a HelloReply's version and, the first time, maps its status table."""
        self.version = answer.status.version
        if answer.table_fd >= 0:
            try:
                if self._table is None:
                    self._table = StatusTable.map(answer.table_fd)
            finally:
                os.close(answer.table_fd)
        return answer.status

    def _peek(self, table, container):
        info = getattr(container, "info", container)
        snapshot = table.read(info.slot)
        return snapshot if snapshot is not None and snapshot.id == info.id else None

    def _close_table(self):
        if self._table is not None:
            self._table.close()
            self._table = None


class Client(_Connection):
    """A blocking client of one nsfork server."""

    def __init__(self, sock):
        """Wraps a connected AF_UNIX SOCK_SEQPACKET socket (a socket.socket), which it now owns."""
        super().__init__()
        self._sock = sock
        self._next_seq = 1
        self._early = {}   # replies that came before they were asked for, by seq
        self._said = None  # the server's last Error on seq 0

    @classmethod
    def connect(cls, path):
        """Connects to the server listening at `path`."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(os.fspath(path))
        except OSError as e:
            sock.close()
            raise _connect_error(path, e) from None
        return cls(sock)

    def fileno(self):
        return self._sock.fileno()

    def close(self):
        """Closes the connection (containers outlive it unless launched tie_to_connection) and
        unmaps the status table."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for reply in self._early.values():
            reply.close()
        self._early.clear()
        self._close_table()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the requests -------------------------------------------------------------------------

    def hello(self, version=MAX_PROTOCOL_VERSION, min_version=MIN_PROTOCOL_VERSION):
        """Negotiates the protocol version (the server answers the highest both speak, refuses
        with Error(Protocol) naming both ranges when there is none) and returns the server's
        ServerStatus; maps its status table the first time."""
        return self._hello_answered(self._call(_wire.hello(version, min_version, self._table is None)))

    def status(self):
        """The server's pid, its warm pool and statistics (a Hello)."""
        return self.hello()

    def launch(self, argv, **options):
        """Launches a container; returns its Container once the command was exec'd.

        argv: the command, argv[0] looked up in env's PATH. Options (all keywords):
          env: exactly the command's environment, a mapping or "K=V" strings (default: empty;
               os.environ passes ours on). cwd: default "/". id: default, one the server picks.
          stdin, stdout, stderr: fds (ints or objects with fileno()) for its 0, 1, 2; None:
               /dev/null. extra_fds: its fds 3, 4, ... (at most 11).
          parent: nest in this container. share_pid_namespace: share the parent's (top-level:
               the server's) pid namespace. join_pidns: join this pid namespace (or pidfd's).
          tie_to_connection: destroyed when this connection closes. pid_max: its pid namespace's.
          tty: a pseudo-terminal of its own (Container.terminal is the master), tty_size=(rows,
               cols). kill_group, signal_mask, ignored_signals (bit N-1: signal N).
          uid, gid, groups: whom it runs as. hold, cgroup_name: a hold container (README).
          destroy_on_exit: one request for the whole run: the server destroys it when its init
               ends and says so unasked; ended() returns that (no wait, no destroy).
        """
        return self._call(_wire.launch(argv, container=Container, **options))

    def wait(self, container):
        """Blocks until the container (an id, a Container or a ContainerInfo) ended; its
        ExitStatus, the same every time after that."""
        return self._call(_wire.wait(container))

    def kill(self, container, signal=_signal.SIGTERM, all=False):
        """Sends `signal` to the container's init (which forwards it to the command); with `all`
        to every process of the container and of those nested in it, but their inits."""
        self._call(_wire.kill(container, signal, all))

    def destroy(self, container):
        """Kills every process of the container, waits until they are gone and forgets it;
        returns its final ContainerInfo."""
        return self._call(_wire.destroy(container))

    def ended(self, container):
        """Blocks until the Container ended and is gone; its last ContainerInfo (its exit in
        it). Launched with destroy_on_exit, that is the server's second answer to the launch and
        nothing is sent (select() on the client first, if you like); otherwise wait(), then
        destroy()."""
        if not container.end_seq:
            self.wait(container)
            return self.destroy(container)
        reply = self._receive(container.end_seq)
        try:
            return _wire.read_destroy_reply(reply)
        finally:
            reply.close()

    def list(self):
        """Every container of the server, as ContainerInfo."""
        return self._call(_wire.list_())

    def attach(self, container):
        """The container's Container again, with a fresh pidfd (after reconnecting, say)."""
        return self._call(_wire.attach(container, Container))

    def adopt(self, container, pidfd):
        """Hands a hold container's main process (a pidfd of it) to the server."""
        self._call(_wire.adopt(container, pidfd))

    def status_table(self):
        """The server's StatusTable, mapped on first use (one Hello round trip)."""
        if self._table is None:
            self.hello()
            if self._table is None:
                raise Error(ErrorCode.Unavailable, "the server offers no status table")
        return self._table

    def peek(self, container):
        """The container's StatusSnapshot from the status table (plain memory reads once it is
        mapped), or None once its slot no longer holds it (destroyed)."""
        return self._peek(self.status_table(), container)

    # --- the wire -----------------------------------------------------------------------------

    def _call(self, call):
        seq = self._send(call)
        reply = self._receive(seq)
        try:
            return call.read(reply)
        finally:
            reply.close()

    def _send(self, call):
        if self._sock is None:
            raise Error(ErrorCode.Disconnected, "client is not connected")
        seq = self._next_seq
        data, fds, body = _wire.encode(seq, call)
        try:
            _transport.send(self._sock, data, fds)
        except OSError as e:
            error = _os_error(e, "sendmsg")
            # A server that refused us said why (on seq 0) before it closed: prefer its word.
            if error.code == ErrorCode.Disconnected:
                error = self._last_words() or error
            raise error from None
        finally:
            if body >= 0:
                os.close(body)
        self._next_seq += 1
        return seq

    def _last_words(self):
        try:
            reply = _wire.decode(*_transport.recv(self._sock))
        except (OSError, Error):
            return None
        error = _wire.read_error(reply) if reply.seq == 0 and _wire.is_error(reply) else None
        reply.close()
        return error

    def _recv(self):
        try:
            try:
                return _transport.recv(self._sock)
            except ConnectionResetError:
                # A peer that closed with our request unread resets us, though its last words
                # (a seq-0 Error) may still be queued: the next recvmsg returns them.
                return _transport.recv(self._sock)
        except OSError as e:
            error = _os_error(e, "recvmsg")
        except Error as e:
            error = e
        # The connection ended: the server's last word on it, if it said one, says why.
        if error.code == ErrorCode.Disconnected and self._said is not None:
            error = self._said
        raise error from None

    def _receive(self, seq):
        while True:
            if seq in self._early:
                return self._early.pop(seq)
            reply = _wire.decode(*self._recv())
            # seq 0 is about the connection, not about a request (PROTOCOL.md, Errors): kept as
            # the reason should the connection end (a refused peer, a server that failed to start).
            if reply.seq == 0 and _wire.is_error(reply):
                self._said = _wire.read_error(reply)
                reply.close()
                continue
            if reply.seq == seq:
                return reply
            self._early[reply.seq] = reply
