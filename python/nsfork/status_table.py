"""The server's status table, mapped read-only: every container's state and exit status, read
with plain memory loads (protocol/status_table.hpp has the layout, PROTOCOL.md describes it).

Each entry is a seqlock: the server makes its `seq` odd, writes, makes it even; a reader copies
the entry and retries while `seq` was odd or changed under it, so it never returns a torn entry.
CPython has no memory fences: the reads here rely on loads staying in order, as they do on
x86-64 (TSO); on a weakly ordered CPU an entry may, rarely, be read torn.
"""

import mmap
import os
import struct

from ._errors import protocol_error
from ._types import ExitStatus, State, StatusSnapshot

MAGIC = 0x6E73666B  # "nsfk"
VERSION = 1

# struct StatusHeader (256 bytes): magic, version, capacity, entry_size, events (the futex word
# bumped after every update), reserved.
HEADER = struct.Struct("=5I")
HEADER_SIZE = 256
# struct StatusEntry (256 bytes): seq, state (0: free, else State + 1), exit_code, exit_signal,
# has_exit, pid, pidns, generation, then the id in 17 64-bit words, NUL-padded, reserved.
ENTRY = struct.Struct("=IIiiiiQQ136s")
ENTRY_SIZE = 256
_SEQ = struct.Struct("=I")
_EVENTS_OFFSET = 16


class StatusTable:
    """A read-only mapping of the table a HelloReply carries."""

    def __init__(self, mapping, capacity):
        self._map = mapping
        self.capacity = capacity

    @classmethod
    def map(cls, fd):
        """Checks the header (magic, version, entry size) against the memfd's size and maps it.
        The fd stays the caller's."""
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise protocol_error("the status table is smaller than its header")
        try:
            mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        except OSError as e:
            raise protocol_error(f"cannot map the status table: {e.strerror}") from None
        magic, version, capacity, entry_size, _ = HEADER.unpack_from(mapping, 0)
        if magic != MAGIC or version != VERSION or entry_size != ENTRY_SIZE:
            mapping.close()
            raise protocol_error("the status table has an unknown layout")
        if HEADER_SIZE + capacity * ENTRY_SIZE > size:
            mapping.close()
            raise protocol_error("the status table is smaller than its capacity says")
        return cls(mapping, capacity)

    def close(self):
        self._map.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def events(self):
        """The event counter: it changes after every update of any entry."""
        return _SEQ.unpack_from(self._map, _EVENTS_OFFSET)[0]

    def read(self, slot):
        """A consistent copy of entry `slot`, or None when it is free or out of range."""
        if not 0 <= slot < self.capacity:
            return None
        at = HEADER_SIZE + slot * ENTRY_SIZE
        while True:
            before = _SEQ.unpack_from(self._map, at)[0]
            if before & 1:  # being written: the writer is one thread that never blocks mid-entry,
                os.sched_yield()  # but it may be waiting for this CPU
                continue
            fields = ENTRY.unpack_from(self._map, at)
            if _SEQ.unpack_from(self._map, at)[0] == before:
                break
        _, state, code, signal, has_exit, pid, pidns, generation, ident = fields
        if state == 0 or state > State.Destroyed + 1:
            return None
        return StatusSnapshot(
            id=ident.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"),
            state=State(state - 1),
            exit=ExitStatus(code, signal) if has_exit else None,
            pid=pid,
            pidns=pidns,
            generation=generation,
        )
