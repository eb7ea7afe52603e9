"""podman drives nsfork-oci (issue 15, item 1): a private podman whose containers.conf is the packaged
one (packaging/engines/containers.conf) runs the node's busybox root filesystem (`--rootfs`)
through conmon and nsfork-oci: exit statuses, a detached container's exec (with and without a
terminal), top, pause/unpause, stop and rm, an interactive session through a real pty, and podman's
default seccomp profile and capabilities as seen from inside. Every container's pid 1 is
nsfork-shim, its cgroup is the one the node's server made, `nsfork list` shows it while it runs,
and nothing of it is left once podman removed it. The warm pool's counts over the file show
whether podman's launches were served from it and whether its rootfs mounts discarded any.

runc (installed) runs beside it as the runtime "runc-ref" where the test compares with what runc
gives for the same podman command.
"""

import os
import pty
import select
import shutil
import signal
import time
from pathlib import Path

import pytest

import common
import node_podman
from node_containerd import pool_counts_of_launches

# Launches through nsfork-oci made by this file (the warm pool's "served" should grow by as many).
LAUNCHES = {"count": 0}


@pytest.fixture(scope="module")
def pool_start(node):
    """The pool's counts before the file's first container."""
    return node.pool()


@pytest.fixture(scope="module")
def podman(node, start_engine, pool_start):
    yield from start_engine(node_podman, {"nsfork": str(node.oci), "runc-ref": shutil.which("runc")})


def run(podman, *args, runtime="nsfork", timeout=60):
    """`podman run --rm` through `runtime`, to its end; `args`: podman's options, "--", the command."""
    if runtime == "nsfork":
        LAUNCHES["count"] += 1
    split = args.index("--")
    return common.run(podman.run(runtime, "--rm", *args[:split]) + list(args[split + 1:]), timeout=timeout,
                      check=False)


def container_id_of(cgroup_line):
    """The container id podman named the cgroup after (`0::/.../libpod-ID`)."""
    return cgroup_line.rsplit("/libpod-", 1)[1].strip()


def assert_removed(node, cid):
    """Nothing of container `cid` is left: not in the server, no runtime state, no mount."""
    common.wait_for(lambda: cid not in [c["id"] for c in node.containers()], 10, f"nsfork to forget {cid[:12]}")
    assert not Path("/run/nsfork-oci", cid).exists(), "nsfork-oci left its state directory"
    assert not [m for m in common.mounts() if cid in m], "a mount of the container is left"


def status_lines(text, *keys):
    """The values of `keys` in a /proc/PID/status text."""
    return {line.split(":")[0]: line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.split(":")[0] in keys}


# --- podman run --rm ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command, status", [
    ("exit 0", 0),
    ("exit 3", 3),
    # The process is pid 2 (the shim is pid 1), so a signal it sends itself kills it: podman reports
    # 128+N. (Under runc the shell is pid 1 and the kernel drops it.)
    ("kill -KILL $$", 128 + signal.SIGKILL),
    ("kill -TERM $$", 128 + signal.SIGTERM),
])
def test_run_rm_reports_the_exit_status(node, podman, command, status):
    p = run(podman, "--", "/bin/sh", "-c", f"grep ^0:: /proc/self/cgroup; {command}")
    assert p.returncode == status, p.stderr
    assert_removed(node, container_id_of(p.stdout))


def test_inside_pid_1_is_the_shim_and_the_cgroup_is_the_servers(node, podman):
    p = run(podman, "--", "/bin/sh", "-c", "cat /proc/1/comm; grep ^0:: /proc/self/cgroup")
    assert p.returncode == 0, p.stderr
    comm, cgroup = p.stdout.splitlines()
    assert comm == "nsfork-shim"
    assert cgroup.startswith(f"0::{node.server_cgroup()}/oci/"), cgroup
    assert_removed(node, container_id_of(cgroup))


def test_containers_conf_makes_nsfork_the_default_runtime(node, podman):
    """The packaged `runtime = "nsfork"`: podman run without --runtime runs on nsfork-oci."""
    LAUNCHES["count"] += 1
    p = common.run(podman.run(None, "--rm") + ["cat", "/proc/1/comm"], timeout=60)
    assert p.stdout.strip() == "nsfork-shim"


# --- a detached container: exec, top, pause, stop, rm --------------------------------------------------

COUNTER = 'trap "" TERM; i=0; while true; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.05; done'


@pytest.fixture(scope="module")
def detached(node, podman):
    """`podman run -d` of a counter that ignores SIGTERM: {name, id, pid (the process's, on the host)}."""
    LAUNCHES["count"] += 1
    p = common.run(podman.run("nsfork", "-d", "--name", "counter") + ["/bin/sh", "-c", COUNTER], timeout=60)
    cid = p.stdout.strip().splitlines()[-1]
    pid = int(common.run(podman.podman("inspect", "--format", "{{.State.Pid}}", "counter")).stdout)
    yield {"name": "counter", "id": cid, "pid": pid}
    common.run(podman.podman("rm", "--force", "--time", "0", "counter"), check=False)


def count(c):
    return int(Path(f"/proc/{c['pid']}/root/dev/shm/count").read_text() or 0)


def leaf(c):
    """The container's cgroup v2 directory on the host."""
    line = next(l for l in Path(f"/proc/{c['pid']}/cgroup").read_text().splitlines() if l.startswith("0::"))
    return Path("/sys/fs/cgroup/unified" + line[3:])


def test_detached_runs_in_the_shims_namespace_and_nsfork_lists_it(node, podman, detached):
    assert detached["id"] in [c["id"] for c in node.containers()]
    p = common.run(podman.podman("exec", "counter", "cat", "/proc/1/comm"))
    assert p.stdout.strip() == "nsfork-shim"
    assert str(leaf(detached)).startswith(f"/sys/fs/cgroup/unified{node.server_cgroup()}/oci/")
    common.wait_for(lambda: Path(f"/proc/{detached['pid']}/root/dev/shm/count").exists(), 10, "the counter")


def test_exec_without_a_terminal(podman, detached):
    p = common.run(podman.podman("exec", "counter", "sh", "-c", "[ -t 0 ] && echo tty || echo notty; exit 5"),
                   check=False)
    assert (p.returncode, p.stdout.strip()) == (5, "notty"), p.stderr


def test_exec_with_a_terminal(podman, detached):
    p = common.run(podman.podman("exec", "-t", "counter", "sh", "-c", "[ -t 0 ] && echo tty; tty; exit 6"),
                   check=False)
    assert p.returncode == 6, p.stderr
    assert p.stdout.split() == ["tty", "/dev/pts/0"]


def test_top_lists_the_shim_and_the_process(podman, detached):
    p = common.run(podman.podman("top", "counter", "pid", "args"))
    rows = [line.split(None, 1) for line in p.stdout.splitlines()[1:]]
    by_pid = {int(pid): args.strip() for pid, args in rows}
    assert "nsfork-shim" in by_pid[1]
    assert by_pid[2].startswith("/bin/sh -c trap")


def test_pause_freezes_and_unpause_thaws(podman, detached):
    common.run(podman.podman("pause", "counter"))
    try:
        state = common.run(podman.podman("inspect", "--format", "{{.State.Status}} {{.State.Paused}}", "counter"))
        assert state.stdout.split() == ["paused", "true"]
        assert "frozen 1" in (leaf(detached) / "cgroup.events").read_text()
        frozen_at = count(detached)
        time.sleep(0.5)  # the counter would advance ~10 times in this while, were it running
        assert count(detached) == frozen_at
    finally:
        common.run(podman.podman("unpause", "counter"))
    state = common.run(podman.podman("inspect", "--format", "{{.State.Status}} {{.State.Paused}}", "counter"))
    assert state.stdout.split() == ["running", "false"]
    common.wait_for(lambda: count(detached) > frozen_at + 2, 10, "the counter to advance again")


def test_stop_kills_what_ignores_sigterm_after_the_timeout_and_rm_removes(node, podman, detached):
    started = time.monotonic()
    common.run(podman.podman("stop", "-t", "1", "counter"), timeout=30)
    took = time.monotonic() - started
    assert 0.9 <= took < 10, f"podman stop -t 1 took {took:.2f} s"  # ~1 s; slack for a loaded machine
    state = common.run(podman.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "counter"))
    assert state.stdout.split() == ["exited", "137"]
    assert detached["id"] not in [c["id"] for c in node.containers() if c.get("state") == "running"]
    common.run(podman.podman("rm", "counter"))
    assert_removed(node, detached["id"])
    assert "counter" not in common.run(podman.podman("ps", "-a", "--format", "{{.Names}}")).stdout


# --- an interactive session through a pty ---------------------------------------------------------------

def read_until(fd, wanted, timeout):
    """What the terminal printed until `wanted` appeared (AssertionError after `timeout` s)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {wanted!r} on the terminal within {timeout} s; it showed {seen[-500:]!r}")
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"the terminal closed before {wanted!r}; it showed {seen[-500:]!r}")
            seen += chunk
    return seen


def test_interactive_session_through_a_pty(node, podman):
    LAUNCHES["count"] += 1
    argv = [str(a) for a in podman.run("nsfork", "--rm", "-i", "-t") + ["/bin/sh"]]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    try:
        read_until(fd, b"# ", 30)  # the shell's prompt
        os.write(fd, b"echo answer-$((6*7)) $(tty) $(cat /proc/1/comm)\r")
        read_until(fd, b"answer-42 /dev/pts/0 nsfork-shim", 10)  # a tty inside; pid 1 the shim
        os.write(fd, b"exit 7\r")
        status = common.wait_for(lambda: os.waitpid(pid, os.WNOHANG)[1] if _drain(fd) else None, 30,
                                 "podman run -it to exit")
        assert os.waitstatus_to_exitcode(status) == 7
        pid = None
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def _drain(fd):
    """Reads what the terminal still prints (so podman never blocks writing); True always."""
    while select.select([fd], [], [], 0)[0]:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    return True


# --- podman's defaults: seccomp profile and capabilities ------------------------------------------------

STATUS_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters")


def test_default_capabilities_and_seccomp_are_runcs(podman):
    """The same podman command through runc and nsfork-oci: the same capability sets, and podman's
    default seccomp filter installed (mode 2, one filter)."""
    seen = {}
    for runtime in ("nsfork", "runc-ref"):
        p = run(podman, "--", "cat", "/proc/self/status", runtime=runtime)
        assert p.returncode == 0, p.stderr
        seen[runtime] = status_lines(p.stdout, *STATUS_KEYS)
    assert seen["nsfork"] == seen["runc-ref"]
    assert seen["nsfork"]["Seccomp"] == "2" and seen["nsfork"]["Seccomp_filters"] == "1"
    assert seen["nsfork"]["CapBnd"] == seen["nsfork"]["CapEff"] != "000001ffffffffff"


def test_default_seccomp_profile_denies_what_it_denies_under_runc(podman):
    """swapoff(2) is one of the syscalls podman's default profile refuses (EPERM) whatever the
    capabilities: with CAP_SYS_ADMIN the kernel itself would get as far as the path (ENOENT), and
    does, once the profile is off. unshare(CLONE_NEWNS) without CAP_SYS_ADMIN fails too."""
    probe = "swapoff /nonexistent; unshare -m true"
    for runtime in ("nsfork", "runc-ref"):
        profiled = run(podman, "--cap-add", "SYS_ADMIN", "--", "/bin/sh", "-c", probe, runtime=runtime)
        assert "swapoff: /nonexistent: Operation not permitted" in profiled.stderr, (runtime, profiled.stderr)
        unconfined = run(podman, "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--",
                         "/bin/sh", "-c", probe, runtime=runtime)
        assert "swapoff: /nonexistent: No such file or directory" in unconfined.stderr, (runtime, unconfined.stderr)
        default = run(podman, "--", "/bin/sh", "-c", "unshare -m true", runtime=runtime)
        assert default.returncode != 0 and "Operation not permitted" in default.stderr, (runtime, default.stderr)


# --- the warm pool, and what is left (last: after every launch) --------------------------------------------

def test_the_pool_served_podmans_launches(node, podman, pool_start):
    now = node.pool()
    served = now["served"] - pool_start["served"]
    print(f"pool over the file: {LAUNCHES['count']} launches through nsfork-oci, served +{served}, "
          f"discarded +{now['discarded'] - pool_start['discarded']} (start {pool_start}, end {now})")
    assert LAUNCHES["count"] * 0.75 <= served <= LAUNCHES["count"]


def test_podman_run_served_from_the_warm_pool_without_discarding(node, podman):
    """podman mounts the container's rootfs (and its /dev/shm) on the host before create; those
    mounts must not make the server discard its ready namespaces. Each launch from a full pool,
    one during which others' mounts made the pool discard retried (node_containerd's helper)."""
    runs = pool_counts_of_launches(node, podman.true_command("nsfork"))
    print("pool before/after each launch:", runs)
    assert all(a["served"] == b["served"] + 1 and a["discarded"] == b["discarded"] for b, a in runs), runs
    assert len(runs) == 3, runs


def test_nothing_of_the_containers_is_left(podman):
    """No container in podman, nothing mounted below its directory, no runtime state."""
    assert common.run(podman.podman("ps", "-aq")).stdout.strip() == ""
    below = str(podman.dir) + "/"
    assert [m for m in common.mounts() if m.startswith(below)] == []
    assert not os.listdir("/run/nsfork-oci") or not [
        d for d in os.listdir("/run/nsfork-oci") if len(d) == 64], os.listdir("/run/nsfork-oci")
