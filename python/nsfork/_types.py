"""The plain Python types of the client API, free of flatbuffers."""

import enum
from dataclasses import dataclass
from typing import Optional

from . import _generated as wire

# The protocol versions this client speaks, offered in Hello (PROTOCOL.md): version 2 is version
# 1 plus file identifiers. A connection that never says Hello speaks version 1.
MAX_PROTOCOL_VERSION = 2
MIN_PROTOCOL_VERSION = 1


def _enum(name, generated):
    """An IntEnum with the members of a generated flatbuffers enum class: the schema's names and
    values, never a hand-kept copy."""
    members = {k: v for k, v in vars(generated).items() if not k.startswith("_") and isinstance(v, int)}
    return enum.IntEnum(name, members, module=__name__)


# Why a request failed (protocol/nsfork.fbs ErrorCode): BadRequest, UnknownContainer, ...
ErrorCode = _enum("ErrorCode", wire.ErrorCode.ErrorCode)
# Where a container is in its life: Starting, Running, Exited, Destroyed.
State = _enum("State", wire.State.State)


@dataclass(frozen=True)
class ExitStatus:
    """How a container's first process ended."""

    code: int = 0    # exit code, when signal == 0
    signal: int = 0  # terminating signal, 0 when the process exited

    @property
    def shell_code(self) -> int:
        """The shell convention: the exit code, or 128+N when killed by signal N."""
        if self.signal == 0:
            return self.code
        return 128 + self.signal if 0 < self.signal < 128 else 255


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    parent: str = ""
    pid: int = -1                       # host pid of the init (the server's pid namespace)
    pidns: int = 0                      # pid namespace inode
    state: State = State.Starting
    exit: Optional[ExitStatus] = None   # set once it ended
    slot: int = 0                       # its entry in the server's status table
    held: bool = False                  # a hold container: pid is the holder's
    cgroup: str = ""                    # its cgroup v2 leaf's path; "" without one


@dataclass(frozen=True)
class ServerStatus:
    """What a server says of itself in its HelloReply."""

    pid: int
    version: int                        # the protocol version the connection now speaks
    pool_size: int = 0
    pool_ready: int = 0
    pool_warming: int = 0
    pool_served: int = 0
    pool_discarded: int = 0
    namespaces_pending: int = 0         # namespaces hold launches asked for, not yet made ahead
    launch_work_ns: int = 0             # the server's own time on the launches it answered
    launches: int = 0
    # launch_work_ns by phase, in LAUNCH_PHASES' order (phases a newer server adds are dropped)
    launch_phases: tuple = ()


# The phases of LaunchStatistics.phase_ns, in order (nsfork::LaunchPhase).
LAUNCH_PHASES = ("parse", "policy", "cgroup", "clone3 setup", "plan", "status table", "registry", "reply",
                 "wake-ups in sends")


@dataclass(frozen=True)
class StatusSnapshot:
    """One container's entry in the status table, read consistently."""

    id: str
    state: State
    exit: Optional[ExitStatus]
    pid: int
    pidns: int
    generation: int                     # changes whenever the slot is reused
