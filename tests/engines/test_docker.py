"""Docker drives nsfork-oci: dockerd on a private containerd, started with `--config-file` the
packaged daemon.json (packaging/engines/daemon.json: the "runtimes" entry naming nsfork-oci),
`docker run --runtime nsfork` of busybox:local (the node's rootfs imported).

`docker run --rm` exit codes (a signal death as 128+N), `docker top` of a running container, stop
and rm; in each: pid 1 is nsfork-shim, the cgroup is below the server's tree /oci/, `nsfork list`
shows the container while it runs and not after, no runtime state, mount or cgroup is left; and
the warm pool serves Docker's launches though dockerd mounts on the host before each create.
"""

import json
import shutil

import pytest

import common
import node_docker
from node_containerd import pool_counts_of_launches


@pytest.fixture(scope="module")
def engine(node, start_engine):
    runtimes = {"nsfork": str(node.oci)}
    if runc := shutil.which("runc"):
        runtimes["runc-ref"] = runc
    yield from start_engine(node_docker, runtimes)


def nsfork_container(node, docker_id):
    """The server's record of Docker's container `docker_id` (its leaf is
    <tree>/oci/<cgroup parent>/<id>), or None."""
    return next((c for c in node.containers() if c["cgroup"].endswith("/" + docker_id)), None)


def assert_removed(node, engine, docker_id):
    """Nothing of Docker's container `docker_id` is left: not in Docker, not in the server, no
    runtime state, no mount, no cgroup (no other container runs meanwhile)."""
    assert docker_id not in engine.docker("ps", "-aq", "--no-trunc").stdout.split()
    assert nsfork_container(node, docker_id) is None, node.containers()
    assert not (engine.state_dir() / docker_id).exists()
    # dockerd's data root is bind-mounted on itself while it runs; nothing else may be left
    # mounted: the container's netns file (named for its sandbox, not its id), its rootfs.
    below = str(engine.dir) + "/"
    assert [m for m in common.mounts() if m.startswith(below)] == [str(engine.dir / "root")]
    assert not [c for c in common.cgroup_dirs(depth=8) if c.endswith("/" + docker_id)]


def run_rm(engine, tmp_path, *command):
    """`docker run --rm` with nsfork of `command`: (the process, the container's id)."""
    cidfile = tmp_path / "cid"
    p = common.run(engine.run_argv("nsfork", *command, flags=["--rm", "--cidfile", cidfile]), check=False,
                   timeout=120)
    return p, cidfile.read_text().strip()


def test_dockerd_runs_the_packaged_daemon_json(node, engine):
    # The runtimes entry dockerd took is the packaged one, by --config-file, not --add-runtime.
    packaged = json.loads(common.packaged("daemon.json", **{common.INSTALLED_OCI: node.oci}))
    used = json.loads(engine.config_file.read_text())
    assert used["runtimes"]["nsfork"] == packaged["runtimes"]["nsfork"] == {"path": str(node.oci)}
    assert "--add-runtime" not in " ".join(map(str, engine.dockerd.args))
    runtimes = json.loads(engine.docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert runtimes["nsfork"]["path"] == str(node.oci)


def test_docker_run_served_from_the_warm_pool(node, engine):
    # dockerd mounts each container's rootfs and netns file on the host before create; those
    # mounts must not make the server discard its ready namespaces.
    runs = pool_counts_of_launches(node, engine.true_command("nsfork"))
    assert all(a["served"] == b["served"] + 1 and a["discarded"] == b["discarded"] for b, a in runs), runs
    assert len(runs) == 3, runs


@pytest.mark.parametrize("command, status", [
    (["/bin/true"], 0),
    (["/bin/sh", "-c", "exit 3"], 3),
    # The process is pid 2 (nsfork-shim holds the namespace), so it can signal itself to death.
    (["/bin/sh", "-c", "kill -KILL $$"], 128 + 9),
], ids=["0", "3", "SIGKILL"])
def test_docker_run_rm_reports_the_exit_status(node, engine, tmp_path, command, status):
    p, docker_id = run_rm(engine, tmp_path, *command)
    assert p.returncode == status, p.stderr
    assert_removed(node, engine, docker_id)


def test_inside_pid_1_is_nsfork_shim_and_the_cgroup_is_nsforks(node, engine, tmp_path):
    p, docker_id = run_rm(engine, tmp_path, "/bin/sh", "-c", "cat /proc/1/comm; grep ^0:: /proc/self/cgroup")
    assert p.returncode == 0, p.stderr
    comm, cgroup = p.stdout.split()[:2]
    assert comm == "nsfork-shim"
    assert cgroup.startswith("0::" + node.server_cgroup() + "/oci/"), cgroup
    assert_removed(node, engine, docker_id)


def test_docker_top_stop_rm(node, engine):
    docker_id = common.run(engine.run_argv("nsfork", "sleep", "1000", flags=["-d"]), timeout=120).stdout.strip()
    try:
        held = nsfork_container(node, docker_id)
        assert held is not None and held["state"] == "running", node.containers()
        assert ((engine.state_dir() / docker_id) / "state.json").exists()
        top = engine.docker("top", docker_id).stdout.splitlines()
        assert top[0].split()[:2] == ["UID", "PID"] and len(top) == 2, top
        assert top[1].endswith("sleep 1000"), top
        # `docker top` lists the container's process (the runtime's `ps`), not nsfork-shim.
        pid = int(top[1].split()[1])
        assert common.live_processes()[pid][0] == "sleep"
        engine.docker("stop", "-t", "1", docker_id, timeout=60)
        # SIGTERM ends the process at once: it is pid 2, not a namespace's init.
        assert engine.docker("inspect", "-f", "{{.State.ExitCode}}", docker_id).stdout.strip() == "143"
        assert nsfork_container(node, docker_id) is None
    finally:
        engine.docker("rm", "-f", docker_id, check=False)
    assert_removed(node, engine, docker_id)
