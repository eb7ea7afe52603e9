"""Fixtures of the Python client's tests: a real `nsfork serve` from the build tree (one per test
file), clients of it, and the checks every test passes: no fd leaked, no cgroup left behind.

Environment: NSFORK_BIN_DIR, the build's bin/ (ctest sets it, and PYTHONPATH: python/CMakeLists.txt).
As root only: without root the server's tests skip with the reason; with CI=true they fail.
"""

import collections
import os
import signal
import subprocess
import time
from pathlib import Path

import flatbuffers
import pytest

import nsfork
from nsfork import ErrorCode
from nsfork import _generated as wire

CI = os.environ.get("CI") == "true"
# The environment containers get: exactly this, as the C++ tests do.
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def unavailable(reason):
    if CI:
        pytest.fail(f"{reason} (CI=true: a skip is a failure)", pytrace=False)
    pytest.skip(reason)


def open_fds():
    """This process's fds and what they are."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            pass  # listdir's own
    return fds


def cgroup_trees(name, root="/sys/fs/cgroup", depth=4):
    """Directories called `name` in the cgroup hierarchies, `depth` levels down at most."""
    found = []
    root_depth = root.rstrip("/").count("/")
    for path, dirs, _ in os.walk(root):
        if path.count("/") - root_depth >= depth:
            dirs.clear()
        if name in dirs:
            found.append(os.path.join(path, name))
            dirs.remove(name)
    return found


def error_reply(seq, identifier, code=ErrorCode.Internal, message=b"it broke"):
    b = flatbuffers.Builder(64)
    text = b.CreateString(message)
    wire.Error.Start(b)
    wire.Error.AddCode(b, code)
    wire.Error.AddMessage(b, text)
    error = wire.Error.End(b)
    wire.ReplyMessage.Start(b)
    wire.ReplyMessage.AddSeq(b, seq)
    wire.ReplyMessage.AddReplyType(b, wire.Reply.Reply.Error)
    wire.ReplyMessage.AddReply(b, error)
    b.Finish(wire.ReplyMessage.End(b), file_identifier=identifier)
    return bytes(b.Output())


class Server:
    """An `nsfork serve` listening at `socket`."""

    def __init__(self, socket, process):
        self.socket = socket
        self.process = process
        self.pid = process.pid

    def connect(self):
        return nsfork.Client.connect(self.socket)

    def stop(self):
        """SIGTERM, reaped; its containers die with it. Returns its exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def start_server(directory, *args):
    if os.geteuid() != 0:
        unavailable("needs root: the server makes pid namespaces and cgroups")
    bin_dir = os.environ.get("NSFORK_BIN_DIR")
    if not bin_dir:
        unavailable("NSFORK_BIN_DIR is not set (the build's bin/, which ctest names)")
    binary = Path(bin_dir) / "nsfork"
    if not binary.exists():
        unavailable(f"{binary} is not built (cmake --build BUILD --target nsfork nsfork-shim)")
    socket = directory / "nsfork.sock"
    process = subprocess.Popen([binary, "serve", "--socket", socket, "--log-level", "warn", *args],
                               stdin=subprocess.DEVNULL, close_fds=True)
    server = Server(socket, process)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.connect().close()
            return server
        except nsfork.Error:
            pass
        if process.poll() is not None:
            pytest.fail(f"{binary} serve exited before it listened, status {process.returncode}")
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"{binary} serve did not listen within 10 s")
        time.sleep(0.005)


def stop_server(server, destroyed_all=True):
    """Stops it and checks it left nothing: no container the tests did not destroy (unless told
    otherwise), no cgroup."""
    left = []
    if destroyed_all:
        with server.connect() as c:
            left = [info.id for info in c.list()]
    server.stop()
    # It removes its cgroup tree (nsfork-PID) on its way out, its containers' leaves with it.
    trees = cgroup_trees(f"nsfork-{server.pid}")
    assert not left, f"containers the tests did not destroy: {left}"
    assert not trees, f"the server left its cgroup tree behind: {trees}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server for the test file's tests, stopped (SIGTERM) and reaped after them."""
    s = start_server(tmp_path_factory.mktemp("serve"))
    yield s
    stop_server(s)


@pytest.fixture
def client(server):
    with server.connect() as c:
        yield c


@pytest.fixture(autouse=True)
def no_leaked_fds():
    """Every test ends with the fds it started with (the server fixture's included: a module's
    server owns no fd of ours)."""
    before = open_fds()
    yield
    after = open_fds()
    leaked = {fd: what for fd, what in after.items() if before.get(fd) != what}
    assert not leaked, f"fds leaked: {leaked}"


# Anything skipped (no root, outside CI) and nothing failed: the exit code ctest takes for
# "skipped", when it names one (NSFORK_PYTEST_SKIP_CODE), so that a ctest line never says
# "Passed" for a file whose tests did not all run.
_outcomes = collections.Counter()


def pytest_runtest_logreport(report):
    if report.when == "call" or report.skipped:
        _outcomes[report.outcome] += 1


def pytest_sessionfinish(session, exitstatus):
    code = os.environ.get("NSFORK_PYTEST_SKIP_CODE")
    if code and exitstatus == 0 and _outcomes["skipped"]:
        session.exitstatus = int(code)
