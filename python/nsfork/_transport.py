"""The wire below the messages (PROTOCOL.md, framing): one message per SOCK_SEQPACKET datagram,
fds in SCM_RIGHTS, and sealed memfd bodies for messages too large for a datagram."""

import array
import errno
import fcntl
import os
import socket
import stat

from ._errors import Error, disconnected, protocol_error
from ._types import ErrorCode

# Sizes both ends agree on (base/limits.h, protocol/body.hpp).
MAX_DATAGRAM = 64 * 1024      # the largest datagram either side accepts
MAX_INLINE = 64 * 1024        # larger messages travel as a Body
MAX_FDS = 16                  # most fds one datagram carries
MAX_REPLY_BODY = 1 << 30      # a larger reply body is refused: no server has a reason to send one

# A Body's memfd carries every one of these seals (F_SEAL_SEAL|SHRINK|GROW|WRITE).
BODY_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE

_FD_SIZE = array.array("i").itemsize


def close_all(fds):
    for fd in fds:
        os.close(fd)


def send(sock, data, fds=()):
    """Sends one datagram with `fds` attached. Never raises SIGPIPE (MSG_NOSIGNAL)."""
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], ancillary, socket.MSG_NOSIGNAL)


def recv(sock):
    """Receives one datagram: (bytes, fds), its fds close-on-exec from birth. Raises
    BlockingIOError when a non-blocking socket has none, Error(Disconnected) when the peer
    closed, Error(Protocol) for a datagram too large or with too many fds (whose fds are closed)."""
    data, ancillary, flags, _ = sock.recvmsg(
        MAX_DATAGRAM, socket.CMSG_SPACE(MAX_FDS * _FD_SIZE), socket.MSG_CMSG_CLOEXEC)
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % _FD_SIZE])
    fds = list(fds)
    if flags & socket.MSG_CTRUNC:
        close_all(fds)
        if len(fds) == MAX_FDS:
            raise protocol_error(f"datagram carried more than {MAX_FDS} fds")
        raise Error(ErrorCode.Unavailable,
                    "a datagram's fds could not all be received: this process is out of fds", errno.EMFILE)
    if flags & socket.MSG_TRUNC:
        close_all(fds)
        raise protocol_error(f"datagram larger than {MAX_DATAGRAM // 1024} KiB")
    # No message is empty: an empty read is the end of the stream.
    if not data and not fds:
        raise disconnected()
    return data, fds


def make_body(data):
    """A memfd holding `data`, sealed against any change: what a Body points at."""
    fd = os.memfd_create("nsfork-body", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, BODY_SEALS)
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_body(fd, size):
    """The first `size` bytes of a Body's memfd, once its seals say nobody can change them."""
    if size == 0:
        raise protocol_error("message body of size 0")
    if size > MAX_REPLY_BODY:
        raise protocol_error(f"message body of {size} bytes exceeds the limit of {MAX_REPLY_BODY} bytes")
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        raise protocol_error("message body fd is not a sealable memfd") from None
    if seals & BODY_SEALS != BODY_SEALS:
        raise protocol_error("message body memfd is not sealed (it needs F_SEAL_WRITE, F_SEAL_SHRINK, "
                             "F_SEAL_GROW and F_SEAL_SEAL)")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size < size:
        raise protocol_error(f"message body is truncated: {size} bytes declared, the memfd holds {st.st_size}")
    # A copy: every field is turned into a Python object anyway, and sealed, it cannot change.
    chunks, done = [], 0
    while done < size:
        chunk = os.pread(fd, size - done, done)
        if not chunk:
            raise protocol_error("message body ended early")
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)
