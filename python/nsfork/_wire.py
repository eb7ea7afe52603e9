"""Building requests and reading replies: the only module that knows the generated code.

Every request is a `Call`: how to write its table, the fds that go with it, and how to read its
answer. The blocking and the asyncio client send the same Calls; they differ only in waiting.

Python's flatbuffers has no Verifier: a reply is read field by field, and anything that does not
parse (an offset out of the buffer) is an Error(Protocol), never a crash.
"""

import struct
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Callable, List, Sequence

import flatbuffers

from . import _generated as wire
from . import _transport
from ._errors import Error, protocol_error
from ._types import LAUNCH_PHASES, ContainerInfo, ErrorCode, ExitStatus, ServerStatus, State

REQUEST_IDENTIFIER = b"NSFQ"  # bytes 4..7 of every request
REPLY_IDENTIFIER = b"NSFR"    # bytes 4..7 of every reply

MAX_EXTRA_FDS = _transport.MAX_FDS - 5  # PROTOCOL.md: stdio, a pid namespace and a Body besides


def _bytes(s):
    """Text as the wire's bytes. Strings are encoded here, never by the builder: flatbuffers
    2.0.8's CreateString sizes a str by its characters, which breaks any non-ASCII one.
    surrogateescape round-trips os.environ's undecodable bytes."""
    return s if isinstance(s, bytes) else str(s).encode("utf-8", "surrogateescape")


def _text(b):
    return b.decode("utf-8", "surrogateescape") if b is not None else ""


@dataclass
class Reply:
    """A received reply: its seq, its union type and table, and the fds it carried (owned: whatever
    the reader does not take is closed by close())."""

    seq: int
    kind: int
    table: Any
    fds: List[int] = field(default_factory=list)

    def take(self, i):
        fd, self.fds[i] = self.fds[i], -1
        return fd

    def close(self):
        _transport.close_all(fd for fd in self.fds if fd >= 0)
        self.fds = []


@dataclass
class Call:
    kind: int                          # the Request union member
    build: Callable[[Any], int]        # writes the request's table, returns its offset
    fds: Sequence[int]                 # the datagram's fds, in the order the request lists them
    read: Callable[[Reply], Any]       # the caller's answer from the reply


# --- encoding ---------------------------------------------------------------------------------

def _finish(builder, seq, kind, body):
    wire.RequestMessage.Start(builder)
    wire.RequestMessage.AddSeq(builder, seq)
    wire.RequestMessage.AddRequestType(builder, kind)
    wire.RequestMessage.AddRequest(builder, body)
    builder.Finish(wire.RequestMessage.End(builder), file_identifier=REQUEST_IDENTIFIER)
    return bytes(builder.Output())


def encode(seq, call):
    """What to send for `call` as request `seq`: (datagram bytes, fds, body). Above MAX_INLINE
    the message goes in a sealed memfd, `body`, first among the fds, and the datagram is a Body
    envelope; the caller closes `body` once sent (-1: none)."""
    builder = flatbuffers.Builder(256)
    message = _finish(builder, seq, call.kind, call.build(builder))
    if len(message) <= _transport.MAX_INLINE:
        return message, list(call.fds), -1
    body = _transport.make_body(message)
    builder = flatbuffers.Builder(64)
    wire.Body.Start(builder)
    wire.Body.AddSize(builder, len(message))
    envelope = _finish(builder, seq, wire.Request.Request.Body, wire.Body.End(builder))
    return envelope, [body, *call.fds], body


def _string(builder, s):
    return builder.CreateString(_bytes(s))


def _strings(builder, items, start_vector):
    offsets = [_string(builder, s) for s in items]
    start_vector(builder, len(offsets))
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _scalars(builder, items, start_vector, prepend):
    start_vector(builder, len(items))
    for item in reversed(items):
        prepend(item)
    return builder.EndVector()


# --- decoding ---------------------------------------------------------------------------------

_PARSE_ERRORS = (struct.error, IndexError, ValueError, TypeError)


def identified(data):
    """What bytes 4..7 say a message is: b"NSFQ", b"NSFR", None (no identifier: a peer built
    before protocol version 2; the bytes are then padding or the root table's vtable, never four
    printable characters), or the four other printable bytes it carries."""
    tag = data[4:8]
    if len(tag) < 4 or not all(0x20 <= c <= 0x7E for c in tag):
        return None
    return tag


def _message(data, where):
    tag = identified(data)
    if tag == REQUEST_IDENTIFIER:
        raise protocol_error(f"{where}a request ({REQUEST_IDENTIFIER.decode()}) sent as a reply")
    if tag not in (None, REPLY_IDENTIFIER):
        raise protocol_error(f"{where}unknown file identifier '{tag.decode()}' "
                             f"(an nsfork reply carries {REPLY_IDENTIFIER.decode()})")
    try:
        m = wire.ReplyMessage.ReplyMessage.GetRootAs(data, 0)
        kind, table = m.ReplyType(), m.Reply()
        if table is None:
            raise protocol_error(f"{where}reply without a body")
        return m.Seq(), kind, table
    except _PARSE_ERRORS:
        raise protocol_error(f"{where}message does not parse as an nsfork reply") from None


def decode(data, fds):
    """The reply in a received datagram, a Body read from its memfd. Takes ownership of `fds`:
    on error they are closed."""
    try:
        seq, kind, table = _message(data, "")
        if kind != wire.Reply.Reply.Body:
            return Reply(seq, kind, table, fds)
        if not fds:
            raise protocol_error("a Body message carries no memfd")
        body = wire.Body.Body()
        body.Init(table.Bytes, table.Pos)
        inner = _transport.read_body(fds[0], body.Size())
        _transport.close_all(fds[:1])
        fds = fds[1:]
        inner_seq, kind, table = _message(inner, "message body: ")
        if kind == wire.Reply.Reply.Body:
            raise protocol_error("a message body holds another Body")
        if inner_seq != seq:
            raise protocol_error("message body's seq differs from its envelope's")
        return Reply(seq, kind, table, fds)
    except BaseException:
        _transport.close_all(fds)
        raise


def _as(reply, member):
    """The reply's table as `member` (a generated table class: LaunchReply, ...); its Error as
    the Error raised; any other reply an Error(Protocol)."""
    if reply.kind == wire.Reply.Reply.Error:
        raise read_error(reply)
    if reply.kind != getattr(wire.Reply.Reply, member.__name__):
        request = member.__name__[: -len("Reply")]
        raise protocol_error(f"server answered {request} with another reply")
    t = member()
    t.Init(reply.table.Bytes, reply.table.Pos)
    return t


def read_error(reply):
    """The Error an Error reply carries (an Error(Protocol) when it does not parse)."""
    e = wire.Error.Error()
    e.Init(reply.table.Bytes, reply.table.Pos)
    try:
        return Error(e.Code(), _text(e.Message()), e.SysErrno())
    except _PARSE_ERRORS:
        return protocol_error("an Error reply that does not parse")


def is_error(reply):
    return reply.kind == wire.Reply.Reply.Error


def _info(w):
    if w is None:
        raise protocol_error("reply without its container")
    s = w.ExitStatus()
    state = w.State()
    return ContainerInfo(
        id=_text(w.Id()),
        parent=_text(w.Parent()),
        pid=w.Pid(),
        pidns=w.Pidns(),
        state=State(state) if state in State._value2member_map_ else state,
        exit=ExitStatus(s.Code(), s.Signal()) if s is not None else None,
        slot=w.Slot(),
        held=w.Held(),
        cgroup=_text(w.Cgroup()),
    )


def _read(read):
    """A reader that turns whatever a malformed reply raises into Error(Protocol)."""
    def guarded(reply):
        try:
            return read(reply)
        except _PARSE_ERRORS:
            raise protocol_error("reply does not parse as an nsfork reply") from None
    return guarded


def _roles(t):
    return [t.Fds(i) for i in range(t.FdsLength())]


# --- the requests -----------------------------------------------------------------------------

def _id_of(target):
    """A container id from an id, a Container or a ContainerInfo."""
    return target if isinstance(target, (str, bytes)) else target.id


def _by_id(table, ident):
    """The builder of a request whose one field is the container's id (Wait, Destroy, ...)."""
    def build(builder):
        offset = _string(builder, ident)
        table.Start(builder)
        table.AddId(builder, offset)
        return table.End(builder)
    return build


@dataclass
class HelloAnswer:
    status: ServerStatus
    table_fd: int  # the status table's memfd (owned), or -1


def hello(version, min_version, status_table=True):
    """status_table: whether the reply is to carry the status table's memfd (a client that
    mapped it already asks for none)."""
    def build(b):
        wire.Hello.Start(b)
        wire.Hello.AddVersion(b, version)
        wire.Hello.AddMinVersion(b, min_version)
        if not status_table:
            wire.Hello.AddStatusTable(b, False)
        return wire.Hello.End(b)

    @_read
    def read(reply):
        r = _as(reply, wire.HelloReply.HelloReply)
        if not min_version <= r.Version() <= version:
            raise protocol_error(f"server answered protocol version {r.Version()}, outside the "
                                 f"versions {min_version}..{version} this client offered")
        roles = _roles(r)
        table = -1
        if roles == [wire.FdRole.FdRole.StatusTable] and len(reply.fds) == 1:
            table = reply.take(0)
        pool, stats = r.Pool(), r.Statistics()
        status = ServerStatus(
            pid=r.ServerPid(),
            version=r.Version(),
            pool_size=pool.Size() if pool else 0,
            pool_ready=pool.Ready() if pool else 0,
            pool_warming=pool.Warming() if pool else 0,
            pool_served=pool.Served() if pool else 0,
            pool_discarded=pool.Discarded() if pool else 0,
            namespaces_pending=pool.NamespacesPending() if pool else 0,
            launch_work_ns=stats.WorkNs() if stats else 0,
            launches=stats.Launches() if stats else 0,
            launch_phases=tuple(stats.PhaseNs(i) for i in range(min(stats.PhaseNsLength(), len(LAUNCH_PHASES))))
            if stats else (),
        )
        return HelloAnswer(status, table)

    return Call(wire.Request.Request.Hello, build, (), read)


def _fileno(f):
    return f if isinstance(f, int) else f.fileno()


def launch(argv, *, env=None, cwd=None, id=None, stdin=None, stdout=None, stderr=None,
           parent=None, share_pid_namespace=False, join_pidns=None, tie_to_connection=False,
           pid_max=0, tty=False, tty_size=None, kill_group=False, signal_mask=0, ignored_signals=0,
           uid=None, gid=None, groups=None, extra_fds=(), hold=False, cgroup_name=None,
           destroy_on_exit=False, container=None):
    """The Launch request (Client.launch documents the options); `container` makes the answer
    from (info, pidfd, terminal, cgroup)."""
    if isinstance(env, Mapping):
        env = [_bytes(k) + b"=" + _bytes(v) for k, v in env.items()]
    extra_fds = [_fileno(f) for f in extra_fds]
    if len(extra_fds) > MAX_EXTRA_FDS:
        raise Error(ErrorCode.BadRequest, f"more than {MAX_EXTRA_FDS} extra fds")
    Role = wire.FdRole.FdRole
    fds, roles = [], []
    for role, f in ((Role.Stdin, stdin), (Role.Stdout, stdout), (Role.Stderr, stderr)):
        if f is not None:
            fds.append(_fileno(f))
            roles.append(role)
    if join_pidns is not None:
        fds.append(_fileno(join_pidns))
        roles.append(Role.PidNamespace)
    for f in extra_fds:  # the command's 3, 4, ... in this order
        fds.append(f)
        roles.append(Role.Extra)

    def build(b):
        L = wire.Launch
        ident = _string(b, id) if id else None
        argv_ = _strings(b, argv, L.StartArgvVector)
        env_ = _strings(b, env or (), L.StartEnvVector)
        cwd_ = _string(b, cwd) if cwd else None
        roles_ = _scalars(b, roles, L.StartFdsVector, b.PrependUint8)
        parent_ = _string(b, parent) if parent else None
        cgroup_ = _string(b, cgroup_name) if cgroup_name else None
        user = None
        if uid is not None or gid is not None or groups is not None:
            groups_ = _scalars(b, list(groups), wire.User.StartGroupsVector, b.PrependUint32) \
                if groups is not None else None
            wire.User.Start(b)
            if uid is not None:
                wire.User.AddUid(b, uid)
            if gid is not None:
                wire.User.AddGid(b, gid)
            if groups_ is not None:
                wire.User.AddGroups(b, groups_)
            user = wire.User.End(b)
        L.Start(b)
        if ident is not None:
            L.AddId(b, ident)
        L.AddArgv(b, argv_)
        L.AddEnv(b, env_)
        if cwd_ is not None:
            L.AddCwd(b, cwd_)
        L.AddFds(b, roles_)
        if parent_ is not None:
            L.AddParent(b, parent_)
        L.AddSharePidNamespace(b, share_pid_namespace)
        L.AddTieToConnection(b, tie_to_connection)
        L.AddPidMax(b, pid_max)
        L.AddTty(b, tty)
        L.AddKillGroup(b, kill_group)
        L.AddSignalMask(b, signal_mask)
        L.AddIgnoredSignals(b, ignored_signals)
        if user is not None:
            L.AddUser(b, user)
        if tty_size:
            L.AddTtyRows(b, tty_size[0])
            L.AddTtyCols(b, tty_size[1])
        L.AddHold(b, hold)
        if cgroup_ is not None:
            L.AddCgroupName(b, cgroup_)
        L.AddDestroyOnExit(b, destroy_on_exit)
        return L.End(b)

    @_read
    def read(reply):
        r = _as(reply, wire.LaunchReply.LaunchReply)
        # The pidfd, then a tty launch's master or a hold launch's cgroup leaf, as declared.
        got = _roles(r)
        if len(got) != len(reply.fds):
            raise protocol_error("Launch reply did not carry the fds it declares")
        if not got or got[0] != Role.Pidfd:
            raise protocol_error("Launch reply did not carry a pidfd first")
        extra = {Role.Terminal: tty, Role.Cgroup: hold}
        taken = {}
        for i, role in enumerate(got[1:], 1):
            if not extra.get(role) or role in taken:
                raise protocol_error("Launch reply carried an fd this launch did not ask for")
            taken[role] = i
        if tty and Role.Terminal not in taken:
            raise protocol_error("Launch reply did not carry a pidfd and a terminal")
        info = _info(r.Container())
        pick = {role: reply.take(i) for role, i in taken.items()}
        made = container(info, reply.take(0), pick.get(Role.Terminal, -1), pick.get(Role.Cgroup, -1))
        if r.DestroyOnExit():  # the server answers this seq again when the container is gone
            made.end_seq = reply.seq
        return made

    return Call(wire.Request.Request.Launch, build, fds, read)


def wait(target):
    ident = _id_of(target)

    @_read
    def read(reply):
        info = _info(_as(reply, wire.WaitReply.WaitReply).Container())
        if info.exit is None:
            raise protocol_error("Wait reply without an exit status")
        return info.exit

    return Call(wire.Request.Request.Wait, _by_id(wire.Wait, ident), (), read)


def kill(target, signal, all):
    ident = _id_of(target)

    def build(b):
        offset = _string(b, ident)
        wire.Kill.Start(b)
        wire.Kill.AddId(b, offset)
        wire.Kill.AddSignal(b, int(signal))
        wire.Kill.AddAll(b, all)
        return wire.Kill.End(b)

    @_read
    def read(reply):
        _as(reply, wire.KillReply.KillReply)

    return Call(wire.Request.Request.Kill, build, (), read)


@_read
def read_destroy_reply(reply):
    """A DestroyReply's ContainerInfo: a Destroy's answer, or a destroy_on_exit launch's last."""
    return _info(_as(reply, wire.DestroyReply.DestroyReply).Container())


def destroy(target):
    return Call(wire.Request.Request.Destroy, _by_id(wire.Destroy, _id_of(target)), (), read_destroy_reply)


def list_():
    def build(b):
        wire.List.Start(b)
        return wire.List.End(b)

    @_read
    def read(reply):
        r = _as(reply, wire.ListReply.ListReply)
        return [_info(r.Containers(i)) for i in range(r.ContainersLength())]

    return Call(wire.Request.Request.List, build, (), read)


def attach(target, container):
    ident = _id_of(target)

    @_read
    def read(reply):
        r = _as(reply, wire.AttachReply.AttachReply)
        if len(reply.fds) != 1:
            raise protocol_error("Attach reply did not carry exactly one pidfd")
        return container(_info(r.Container()), reply.take(0), -1, -1)

    return Call(wire.Request.Request.Attach, _by_id(wire.Attach, ident), (), read)


def adopt(target, pidfd):
    ident = _id_of(target)

    @_read
    def read(reply):
        _as(reply, wire.AdoptReply.AdoptReply)

    return Call(wire.Request.Request.Adopt, _by_id(wire.Adopt, ident), (_fileno(pidfd),), read)
