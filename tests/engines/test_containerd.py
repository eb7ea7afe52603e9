"""containerd drives nsfork-oci: a private containerd whose config carries packaging/engines/
containerd.toml (the CRI runtime entry, BinaryName = nsfork-oci), `ctr run --runc-binary
<that BinaryName>` through the shim v2 io.containerd.runc.v2 on the node's busybox rootfs.

Exit codes as ctr reports them; ctr task ps/exec/pause/resume/kill/delete; the pod pattern (a
second container joining the first one's pid namespace with --with-ns) landing as an nsfork
container nested under the first; and in each: pid 1 is nsfork-shim, the cgroup is below the
server's tree /oci/, `nsfork list` shows the container while it runs and not after, no runtime
state, mount or cgroup is left.
"""

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import common
import node_containerd


@pytest.fixture(scope="module")
def engine(node, start_engine):
    runtimes = {"nsfork": str(node.oci)}
    if runc := shutil.which("runc"):
        runtimes["runc-ref"] = runc
    yield from start_engine(node_containerd, runtimes)


# --- what ctr and the node say ---------------------------------------------------------------------

def tasks(engine):
    """`ctr task ls`: id -> (pid, status)."""
    lines = engine.ctr("task", "ls").stdout.splitlines()[1:]
    return {f[0]: (int(f[1]), f[2]) for f in (l.split() for l in lines) if len(f) == 3}


def wait_status(engine, cid, status, timeout=20):
    return common.wait_for(lambda: tasks(engine).get(cid, (0, None))[1] == status, timeout,
                           f"task {cid} to be {status}", interval=0.05)


def nsfork_container(node, engine, cid):
    """The server's record of the container ctr knows as `cid` (its leaf is <tree>/oci/<ns>/<cid>,
    as the default cgroupsPath is /<namespace>/<id>), or None."""
    for c in node.containers():
        if c["cgroup"].endswith(f"/{engine.namespace}/{cid}"):
            return c
    return None


_exec_ids = itertools.count()


def exec_in(engine, cid, *command, check=True):
    """`ctr task exec` of `command` in the running task `cid` (each exec needs an id of its own).

    The command lingers 0.2 s after it ended, its exit status kept: ctr can drop all the output
    of an exec'd process that exits as soon as it wrote it. Under load (two CPU hogs), 6 of 150
    `ps` execs came back empty with exit status 0, none of 150 with the linger, and the
    nsfork-oci of before 2026-12-02 lost as many."""
    lingering = ("/bin/sh", "-c", '"$@"; status=$?; sleep 0.2; exit $status', "sh", *command)
    return engine.ctr("task", "exec", "--exec-id", f"x{next(_exec_ids)}", "--fifo-dir", engine.fifo_dir, cid,
                      *lingering, check=check, timeout=30)


def assert_inside(node, output):
    """What the container reported of itself: pid 1's comm, then its /proc/self/cgroup 0:: line."""
    comm, cgroup = output.split()[:2]
    assert comm == "nsfork-shim"
    assert cgroup.startswith("0::" + node.server_cgroup() + "/oci/"), cgroup


def assert_removed(node, engine, cid):
    """Nothing of container `cid` is left: not in ctr, not in the server, no runtime state, no
    mount, no cgroup."""
    assert cid not in engine.ctr("container", "ls", "-q").stdout.split()
    assert nsfork_container(node, engine, cid) is None, node.containers()
    assert not (engine.state_dir() / cid).exists()
    assert not [m for m in common.mounts() if cid in m]
    assert not [c for c in common.cgroup_dirs(depth=8) if c.endswith(f"/{engine.namespace}/{cid}")]


def remove(engine, cid):
    """Kills and deletes task and container `cid` (whatever state it is in)."""
    if cid in tasks(engine):
        engine.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
        common.wait_for(lambda: tasks(engine).get(cid, (0, "STOPPED"))[1] == "STOPPED", 20, f"task {cid} to stop")
        engine.ctr("task", "delete", cid, check=False)
    engine.ctr("container", "delete", cid, check=False)


@pytest.fixture
def detached(node, engine):
    """start(cid, *flags, command=...) runs a detached container (sleep by default) with nsfork
    and returns its task's pid; after the test every one started is removed, and checked gone."""
    started = []

    def start(cid, *flags, command=("sleep", "1000")):
        common.run(engine.run_argv(engine.runtimes["nsfork"], cid, *command, flags=["-d", "--null-io", *flags]))
        started.append(cid)
        return wait_status(engine, cid, "RUNNING") and tasks(engine)[cid][0]

    yield start
    for cid in reversed(started):
        remove(engine, cid)
    for cid in started:
        assert_removed(node, engine, cid)


# --- the packaged configuration --------------------------------------------------------------------

def test_the_packaged_runtime_entry_is_in_containerd_config_and_the_cri_plugin_loads_it(node, engine):
    dump = common.run(["containerd", "--config", engine.daemon.config, "config", "dump"]).stdout
    section = dump.split('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nsfork]')[1]
    assert re.search(r'runtime_type = "io.containerd.runc.v2"', section.split("[plugins.")[0])
    assert f'BinaryName = "{node.oci}"' in section.split('runtimes.nsfork.options]')[1].split("[")[0]
    # The running daemon's CRI plugin (what kubelet talks to) took it, runc still the default.
    log = (engine.daemon.dir / "containerd.log").read_text()
    cri = next(l for l in log.splitlines() if "Start cri plugin with config" in l)
    assert "nsfork:{Type:io.containerd.runc.v2 " in cri and f"BinaryName:{node.oci}" in cri
    assert "DefaultRuntimeName:runc" in cri and "runc:{Type:io.containerd.runc.v2 " in cri
    assert engine.runtimes["nsfork"] == str(node.oci)


def test_the_runtime_class_names_the_packaged_runtime():
    # A RuntimeClass's handler is the CRI runtime's name; read without a YAML library (the file
    # is five lines).
    text = common.packaged("runtimeclass.yaml")
    fields = dict(l.split(":", 1) for l in text.splitlines() if ":" in l and not l.startswith(("#", " ")))
    assert fields["kind"].strip() == "RuntimeClass" and fields["apiVersion"].strip() == "node.k8s.io/v1"
    handler = fields["handler"].strip()
    toml = node_containerd.tomllib.loads(common.packaged("containerd.toml"))
    assert handler in toml["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert handler == "nsfork"


# --- ctr run ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("command, status", [
    (["/bin/true"], 0),
    (["/bin/sh", "-c", "exit 3"], 3),
    # The process is pid 2 (nsfork-shim holds the namespace), so it can signal itself to death.
    (["/bin/sh", "-c", "kill -KILL $$"], 128 + 9),
], ids=["0", "3", "SIGKILL"])
def test_ctr_run_reports_the_exit_status(node, engine, command, status):
    cid = f"exit-{status}"
    p = common.run(engine.run_argv(engine.runtimes["nsfork"], cid, *command, flags=["--rm"]), check=False)
    assert p.returncode == status, p.stderr
    assert_removed(node, engine, cid)


@pytest.mark.parametrize("status", [0, 3])
def test_runc_reports_the_same_exit_status(node, engine, status):
    if "runc-ref" not in engine.runtimes:
        pytest.skip("runc is not installed")
    cid = f"runc-exit-{status}"
    p = common.run(engine.run_argv(engine.runtimes["runc-ref"], cid, "/bin/sh", "-c", f"exit {status}",
                                   flags=["--rm"]), check=False)
    assert p.returncode == status, p.stderr


def test_inside_pid_1_is_nsfork_shim_and_the_cgroup_is_nsforks(node, engine):
    p = common.run(engine.run_argv(engine.runtimes["nsfork"], "inside", "/bin/sh", "-c",
                                   "cat /proc/1/comm; grep ^0:: /proc/self/cgroup", flags=["--rm"]))
    assert_inside(node, p.stdout)
    assert_removed(node, engine, "inside")


def test_ctr_run_served_from_the_warm_pool(node, engine):
    # ctr --rootfs mounts nothing on the host: each launch takes a ready namespace, none is
    # discarded.
    runs = node_containerd.pool_counts_of_launches(node, engine.true_command("nsfork"))
    assert all(a["served"] == b["served"] + 1 and a["discarded"] == b["discarded"] for b, a in runs), runs
    assert len(runs) == 3, runs


def test_ctr_task_kill_ends_a_foreground_run_with_the_signal(node, engine):
    argv = engine.run_argv(engine.runtimes["nsfork"], "fg", "sleep", "1000", flags=["--rm", "--null-io"])
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        try:
            wait_status(engine, "fg", "RUNNING")
            assert nsfork_container(node, engine, "fg")["state"] == "running"
            engine.ctr("task", "kill", "-s", "SIGKILL", "fg")
            _, err = run.communicate(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 128 + 9, err
    assert_removed(node, engine, "fg")


# --- ctr task on a detached container --------------------------------------------------------------

def test_task_ps_and_exec(node, engine, detached):
    pid = detached("ps-exec")
    assert pid in [int(l.split()[0]) for l in engine.ctr("task", "ps", "ps-exec").stdout.splitlines()[1:]]
    held = nsfork_container(node, engine, "ps-exec")
    assert held is not None and held["state"] == "running"
    assert (engine.state_dir() / "ps-exec").is_dir()
    inside = exec_in(engine, "ps-exec", "/bin/sh", "-c", "cat /proc/1/comm; grep ^0:: /proc/self/cgroup; ps -o pid,args")
    assert_inside(node, inside.stdout)
    # The exec joined the task's namespace: it sees the task's process as pid 2.
    assert re.search(r"^\s*2\s+sleep 1000$", inside.stdout, re.M), inside.stdout
    assert exec_in(engine, "ps-exec", "/bin/sh", "-c", "exit 5", check=False).returncode == 5


def test_task_pause_freezes_and_resume_thaws(node, engine, detached):
    detached("paused")
    events = Path(nsfork_container(node, engine, "paused")["cgroup"]) / "cgroup.events"
    engine.ctr("task", "pause", "paused")
    assert tasks(engine)["paused"][1] == "PAUSED"
    common.wait_for(lambda: "frozen 1" in events.read_text(), 10, "the cgroup to freeze")
    engine.ctr("task", "resume", "paused")
    assert tasks(engine)["paused"][1] == "RUNNING"
    common.wait_for(lambda: "frozen 0" in events.read_text(), 10, "the cgroup to thaw")
    assert exec_in(engine, "paused", "/bin/true").returncode == 0


def test_task_kill_then_delete_removes_everything(node, engine, detached):
    detached("killed")
    engine.ctr("task", "kill", "killed")  # SIGTERM, ctr's default
    wait_status(engine, "killed", "STOPPED")
    deleted = engine.ctr("task", "delete", "killed")
    assert "exit code 143" in deleted.stderr, deleted.stderr
    assert nsfork_container(node, engine, "killed") is None
    assert not (engine.state_dir() / "killed").exists()
    engine.ctr("container", "delete", "killed")
    assert_removed(node, engine, "killed")


# --- the pod pattern: a second container in the first one's pid namespace ------------------------

def start_pod(node, engine, detached):
    """Two containers as a pod: `pod-a` (sleep 1001), `pod-b` (sleep 1002) joining pod-a's pid
    namespace by path. Returns their nsfork records after checking b is nested in a."""
    pid_a = detached("pod-a", command=("sleep", "1001"))
    detached("pod-b", "--with-ns", f"pid:/proc/{pid_a}/ns/pid", command=("sleep", "1002"))
    a, b = nsfork_container(node, engine, "pod-a"), nsfork_container(node, engine, "pod-b")
    assert b["parent"] == a["id"] and b["pidns"] == a["pidns"], (a, b)
    for cid in ("pod-a", "pod-b"):
        ps = exec_in(engine, cid, "ps", "-o", "args").stdout
        assert "sleep 1001" in ps and "sleep 1002" in ps, ps
    return a, b


def test_pod_joined_container_is_nested_and_goes_first(node, engine, detached):
    # The order kubelet uses: the app container is removed, then the sandbox.
    a, b = start_pod(node, engine, detached)
    remove(engine, "pod-b")
    assert_removed(node, engine, "pod-b")
    assert nsfork_container(node, engine, "pod-a")["state"] == "running"
    assert "sleep 1002" not in exec_in(engine, "pod-a", "ps", "-o", "args").stdout


def test_pod_first_container_ending_ends_the_joined_one(node, engine, detached):
    # As with runc, the namespace ends with its first container: the kernel kills everything in
    # it. containerd sees both tasks stop; deleting the first removes both from the server.
    start_pod(node, engine, detached)
    engine.ctr("task", "kill", "-s", "SIGKILL", "pod-a")
    wait_status(engine, "pod-a", "STOPPED")
    wait_status(engine, "pod-b", "STOPPED")
    engine.ctr("task", "delete", "pod-a")
    assert nsfork_container(node, engine, "pod-a") is None and nsfork_container(node, engine, "pod-b") is None
    deleted = engine.ctr("task", "delete", "pod-b")
    assert "exit code 137" in deleted.stderr, deleted.stderr
