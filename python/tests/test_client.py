"""The blocking client against a real server: launch with stdio, environment and cwd; exit
statuses; kill, destroy, list, attach; pidfds; errors."""

import errno
import os
import select
import signal
import time

import pytest

import nsfork
from conftest import ENV
from nsfork import ErrorCode, ExitStatus, State, _transport


def eventually(condition, seconds=30):
    """Whether `condition()` came true within `seconds` (a bound, not a measure)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_all(fd):
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def pipe_to(launch):
    """Runs launch(write_end) and returns (its result, everything the container wrote)."""
    r, w = os.pipe()
    try:
        try:
            result = launch(w)
        finally:
            os.close(w)  # the container holds its own copy
        return result, read_all(r)
    finally:
        os.close(r)


def pid_of(pidfd):
    """The pid a pidfd refers to (-1 once the process was reaped), from its fdinfo."""
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pid:"))


def test_launch_with_stdio_environment_and_cwd(client):
    in_r, in_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        os.write(in_w, b"from stdin\n")
        os.close(in_w)
        script = 'read line; echo "$line $GREETING"; pwd; echo to stderr >&2'

        def launch(out_w):
            return client.launch(["sh", "-c", script], env={**ENV, "GREETING": "hello"}, cwd="/tmp",
                                 stdin=in_r, stdout=out_w, stderr=err_w)

        ct, out = pipe_to(launch)
        os.close(err_w)
        err_w = -1
        with ct:
            assert out == b"from stdin hello\n/tmp\n"
            assert read_all(err_r) == b"to stderr\n"
            assert client.wait(ct) == ExitStatus(0, 0)
            assert ct.info.state == State.Running and ct.pid > 0 and ct.pidns > 0
            client.destroy(ct)
    finally:
        for fd in (in_r, err_r, err_w):
            if fd >= 0:
                os.close(fd)


def test_environment_is_exactly_the_one_given(client):
    def launch(w):
        return client.launch(["env"], env=[f"PATH={ENV['PATH']}", "ONLY=this"], stdout=w)

    ct, out = pipe_to(launch)
    with ct:
        client.wait(ct)
        client.destroy(ct)
    assert sorted(out.decode().splitlines()) == ["ONLY=this", f"PATH={ENV['PATH']}"]


def test_exit_codes_and_signal_deaths(client):
    with client.launch(["sh", "-c", "exit 7"], env=ENV) as ct:
        assert client.wait(ct) == ExitStatus(7, 0)
        assert client.wait(ct.id) == ExitStatus(7, 0)  # the same answer every time
        client.destroy(ct)
    # The command killed by a signal: its pid 1 (nsfork-shim) exits as a shell would, 128+N.
    with client.launch(["sh", "-c", "kill -KILL $$"], env=ENV) as ct:
        assert client.wait(ct).shell_code == 128 + signal.SIGKILL
        client.destroy(ct)


def test_kill(client):
    with client.launch(["sleep", "100"], env=ENV) as ct:
        client.kill(ct, signal.SIGTERM)  # forwarded to the command by its init
        assert client.wait(ct).shell_code == 128 + signal.SIGTERM
        client.destroy(ct)
    with client.launch(["sleep", "100"], env=ENV) as ct:
        client.kill(ct.id, signal.SIGKILL)  # the init itself, and so the whole namespace
        status = client.wait(ct)
        assert status == ExitStatus(0, signal.SIGKILL) and status.shell_code == 137
        client.destroy(ct)
    with client.launch(["sh", "-c", "sleep 100 & sleep 100; wait"], env=ENV) as ct:
        client.kill(ct, signal.SIGKILL, all=True)  # every process of it
        assert client.wait(ct).shell_code == 128 + signal.SIGKILL
        client.destroy(ct)


def test_destroy(client):
    with client.launch(["sh", "-c", "sleep 100 & sleep 100"], env=ENV, id="py-destroy") as ct:
        info = client.destroy(ct)
        assert info.id == "py-destroy" and info.state == State.Destroyed
        assert info.exit == ExitStatus(0, signal.SIGKILL)
        # Its init is gone (reaped by the server): the pidfd says so at once.
        assert select.select([ct], [], [], 0)[0] == [ct]
        with pytest.raises(nsfork.Error) as e:
            client.wait(ct)
        assert e.value.code == ErrorCode.UnknownContainer


def test_list(client):
    with client.launch(["sleep", "100"], env=ENV, id="py-list-a") as a, \
         client.launch(["true"], env=ENV, id="py-list-b") as b:
        client.wait(b)
        listed = {info.id: info for info in client.list() if info.id.startswith("py-list-")}
        assert set(listed) == {"py-list-a", "py-list-b"}
        assert listed["py-list-a"].state == State.Running and listed["py-list-a"].exit is None
        assert listed["py-list-a"].pid == a.pid
        assert listed["py-list-b"].state == State.Exited and listed["py-list-b"].exit == ExitStatus(0, 0)
        client.destroy(a)
        client.destroy(b)
    assert not [info for info in client.list() if info.id.startswith("py-list-")]


def test_attach_from_a_second_connection(server, client):
    with client.launch(["sleep", "100"], env=ENV, id="py-attach") as ct:
        with server.connect() as other, other.attach("py-attach") as again:
            assert again.id == "py-attach" and again.pid == ct.pid
            assert again.pidfd != ct.pidfd and pid_of(again.pidfd) == ct.pid
            other.kill(again, signal.SIGKILL)
            assert select.select([again], [], [], 30)[0] == [again]  # its own pidfd sees the end
        assert client.wait(ct).signal == signal.SIGKILL
        client.destroy(ct)


def test_pidfd_is_pollable_at_exit(client):
    r, w = os.pipe()
    try:
        ct = client.launch(["sh", "-c", "read line"], env=ENV, stdin=r)
        with ct:
            poller = select.poll()
            poller.register(ct.pidfd, select.POLLIN)
            assert poller.poll(0) == []  # running: it waits for a line
            os.close(w)
            w = -1  # end of its input: it exits
            # Readable at exit; once the server reaped it, POLLHUP too (Linux 6.9+).
            [(fd, events)] = poller.poll(30_000)
            assert fd == ct.pidfd and events & select.POLLIN
            assert client.wait(ct) == ExitStatus(1, 0)
            client.destroy(ct)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_extra_fds_and_nesting(client):
    def launch(w):
        return client.launch(["sh", "-c", "echo on three >&3"], env=ENV, extra_fds=[w])

    ct, out = pipe_to(launch)
    with ct:
        assert out == b"on three\n"
        client.wait(ct)
        client.destroy(ct)
    with client.launch(["sleep", "100"], env=ENV, id="py-parent") as parent, \
         client.launch(["sleep", "100"], env=ENV, id="py-child", parent="py-parent") as child:
        assert child.info.parent == "py-parent" and child.pidns != parent.pidns
        client.destroy(parent)  # destroys what is nested in it
        with pytest.raises(nsfork.Error) as e:
            client.wait(child)
        assert e.value.code == ErrorCode.UnknownContainer


def test_tty(client):
    with client.launch(["sh", "-c", "tty; stty size"], env=ENV, tty=True, tty_size=(33, 101)) as ct:
        assert ct.terminal >= 0
        out = b""
        while True:
            try:
                chunk = os.read(ct.terminal, 4096)
            except OSError as e:  # EIO: the terminal's last holder inside closed it
                assert e.errno == errno.EIO
                break
            if not chunk:
                break
            out += chunk
        assert out.split() == [b"/dev/pts/0", b"33", b"101"]
        assert client.wait(ct) == ExitStatus(0, 0)
        client.destroy(ct)


def test_errors_carry_their_code(client):
    def refused(code, **options):
        argv = options.pop("argv", ["true"])
        with pytest.raises(nsfork.Error) as e:
            client.launch(argv, env=ENV, **options)
        assert e.value.code == code, e.value
        assert e.value.code.name == ErrorCode(code).name and e.value.message
        return e.value

    for call in (client.wait, client.destroy, client.attach, lambda i: client.kill(i, signal.SIGTERM)):
        with pytest.raises(nsfork.Error) as e:
            call("py-nobody")
        assert e.value.code == ErrorCode.UnknownContainer and "py-nobody" in e.value.message
        assert str(e.value).startswith("UnknownContainer: ")

    with client.launch(["sleep", "100"], env=ENV, id="py-twice") as ct:
        assert "py-twice" in refused(ErrorCode.DuplicateId, id="py-twice").message
        client.destroy(ct)
    refused(ErrorCode.InvalidId, id="no/slashes")
    assert "argv is empty" in refused(ErrorCode.BadRequest, argv=[]).message
    assert "absolute" in refused(ErrorCode.BadRequest, cwd="relative").message
    assert refused(ErrorCode.ExecFailed, argv=["/nonexistent/command"]).errno == errno.ENOENT
    assert not [info for info in client.list() if info.id == "py-twice"]  # nor a trace of a refused one


def test_large_environment_goes_as_a_sealed_body(client, monkeypatch):
    # 100 variables of 2000 bytes: 200 KB of request, far above a datagram's 64 KiB. (One
    # variable may not exceed 128 KiB: the kernel's MAX_ARG_STRLEN.)
    env = {**ENV, **{f"BIG{i}": str(i % 10) * 2000 for i in range(100)}}
    bodies = []
    make_body = _transport.make_body
    monkeypatch.setattr(_transport, "make_body", lambda data: bodies.append(len(data)) or make_body(data))

    def launch(w):
        return client.launch(["sh", "-c", 'env | grep -c "^BIG"; echo ${#BIG99}'], env=env, stdout=w)

    ct, out = pipe_to(launch)
    with ct:
        assert out == b"100\n2000\n"
        assert len(bodies) == 1 and bodies[0] > 200_000
        assert client.wait(ct) == ExitStatus(0, 0)
        client.destroy(ct)


def test_tied_to_the_connection(server, client):
    with server.connect() as other:
        ct = other.launch(["sleep", "100"], env=ENV, id="py-tied", tie_to_connection=True)
    with ct:
        assert select.select([ct], [], [], 30)[0] == [ct]  # the connection closed: killed
    # ... and forgotten, once its destroy completed.
    assert eventually(lambda: "py-tied" not in [info.id for info in client.list()])


def test_destroy_on_exit_is_one_request_for_the_whole_run(client):
    """The launch is answered again when the container ended and is gone: ended() sends nothing
    and returns its last ContainerInfo; without the option it waits and destroys."""
    with client.launch(["sh", "-c", "exit 4"], env=ENV, id="py-run", destroy_on_exit=True) as ct:
        assert ct.end_seq != 0
        info = client.ended(ct)
    assert info.id == "py-run"
    assert info.exit == ExitStatus(4, 0)
    assert info.state == State.Destroyed
    assert "py-run" not in [i.id for i in client.list()]
    with client.launch(["sh", "-c", "exit 6"], env=ENV, id="py-plain") as plain:
        assert plain.end_seq == 0
        assert client.ended(plain).exit == ExitStatus(6, 0)
    assert client.list() == []


def test_a_closed_client_refuses_politely(server):
    c = server.connect()
    c.close()
    with pytest.raises(nsfork.Error) as e:
        c.list()
    assert e.value.code == ErrorCode.Disconnected


def test_connect_to_nothing(tmp_path):
    with pytest.raises(nsfork.Error) as e:
        nsfork.Client.connect(tmp_path / "nobody.sock")
    assert e.value.code == ErrorCode.Disconnected and e.value.errno == errno.ENOENT


def test_status_gives_the_servers_launch_work_by_phase(client):
    with client.launch(["true"], env=ENV) as ct:
        client.wait(ct)
        client.destroy(ct)
    s = client.status()
    assert s.launches >= 1
    assert len(s.launch_phases) == len(nsfork.LAUNCH_PHASES)
    assert sum(s.launch_phases) == s.launch_work_ns
    assert s.launch_phases[nsfork.LAUNCH_PHASES.index("parse")] > 0
