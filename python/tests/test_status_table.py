"""The status table through mmap: a container's state and exit status as the server publishes
them, and the layout checks (the latter need no server, no root)."""

import os
import struct

import pytest

import nsfork
from nsfork import _wire
from conftest import ENV
from nsfork import ErrorCode, ExitStatus, State, StatusTable
from nsfork import status_table as layout


def test_running_then_exited_then_gone(client):
    table = client.status_table()
    assert table.capacity > 0
    r, w = os.pipe()
    try:
        with client.launch(["sh", "-c", "read line; exit 5"], env=ENV, stdin=r, id="py-peek") as ct:
            seen = table.events()
            snap = client.peek(ct)
            assert snap.id == "py-peek" and snap.state == State.Running and snap.exit is None
            assert snap.pid == ct.pid and snap.pidns == ct.pidns
            assert table.read(ct.info.slot) == snap
            os.close(w)
            w = -1
            assert client.wait(ct) == ExitStatus(5, 0)
            # The Wait reply comes after the entry changed: no waiting needed.
            exited = client.peek(ct)
            assert exited.state == State.Exited and exited.exit == ExitStatus(5, 0)
            assert exited.generation == snap.generation and table.events() != seen
            client.destroy(ct)
            assert client.peek(ct) is None  # its slot no longer holds it
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_the_mapping_is_read_only(client):
    table = client.status_table()
    with pytest.raises(TypeError):
        table._map[0] = 0
    assert table.read(table.capacity) is None and table.read(-1) is None


def test_every_client_maps_the_table_once(server, client):
    first = client.status_table()
    client.hello()
    assert client.status_table() is first


def test_a_hello_carries_the_table_only_when_asked(client):
    """The client asks for the table until it has it; the server sends it only then."""
    for asked, carried in ((True, 1), (False, 0), (True, 1)):
        answer = client._call(_wire.hello(nsfork.MAX_PROTOCOL_VERSION, nsfork.MIN_PROTOCOL_VERSION, asked))
        assert (answer.table_fd >= 0) == bool(carried)
        if answer.table_fd >= 0:
            os.close(answer.table_fd)


# --- the layout, on a table made here -------------------------------------------------------

def make_table(capacity=4, magic=layout.MAGIC, version=layout.VERSION, entry_size=layout.ENTRY_SIZE,
               entries=()):
    """A memfd laid out as protocol/status_table.hpp's: a header, then `capacity` entries."""
    fd = os.memfd_create("test-status", os.MFD_CLOEXEC)
    os.ftruncate(fd, layout.HEADER_SIZE + capacity * layout.ENTRY_SIZE)
    os.pwrite(fd, layout.HEADER.pack(magic, version, capacity, entry_size, 3), 0)
    for slot, fields in entries:
        os.pwrite(fd, layout.ENTRY.pack(*fields), layout.HEADER_SIZE + slot * layout.ENTRY_SIZE)
    return fd


def test_layout_sizes_match_the_cpp_structs():
    # static_assert(sizeof(StatusHeader) == 256 && sizeof(StatusEntry) == 256); the id at byte 40
    # in 17 words.
    assert layout.HEADER.size <= layout.HEADER_SIZE == 256
    assert layout.ENTRY.size == 40 + 17 * 8 and layout.ENTRY_SIZE == 256


def test_reads_an_entry():
    ident = b"job-1".ljust(136, b"\0")
    running = (2, State.Running + 1, 0, 0, 0, 1234, 4026531836, 7, ident)
    exited = (4, State.Exited + 1, 0, 9, 1, 1234, 4026531836, 7, ident)
    fd = make_table(entries=[(1, running), (2, exited)])
    try:
        with StatusTable.map(fd) as table:
            assert table.capacity == 4 and table.events() == 3
            assert table.read(0) is None  # free
            assert table.read(1) == nsfork.StatusSnapshot("job-1", State.Running, None, 1234, 4026531836, 7)
            assert table.read(2).exit == ExitStatus(0, 9)
            assert table.read(4) is None
    finally:
        os.close(fd)


@pytest.mark.parametrize("change", [{"magic": 0x12345678}, {"version": 2}, {"entry_size": 128}])
def test_refuses_an_unknown_layout(change):
    fd = make_table(**change)
    try:
        with pytest.raises(nsfork.Error) as e:
            StatusTable.map(fd)
        assert e.value.code == ErrorCode.Protocol and "unknown layout" in e.value.message
    finally:
        os.close(fd)


def test_refuses_a_table_shorter_than_its_capacity():
    fd = make_table(capacity=4)
    os.pwrite(fd, struct.pack("=I", 5), 8)  # capacity 5 in room for 4
    try:
        with pytest.raises(nsfork.Error) as e:
            StatusTable.map(fd)
        assert "capacity" in e.value.message
    finally:
        os.close(fd)
