"""Slurm drives nsfork-oci: a private one-node cluster (munged, slurmctld, slurmd) whose oci.conf is
packaging/engines/oci.conf, so that `srun --container=BUNDLE` and `sbatch --container=BUNDLE` run
each task through `nsfork-oci run` on the node's server.

Exit codes as srun reports them (0, 3, a signal death); scancel of a running step destroying its
container; two container steps of one job; the task's output in srun's and in sbatch's output file;
and in each: pid 1 is nsfork-shim, the cgroup is below the server's tree /oci/, `nsfork list`
shows the container while it runs and not after, no runtime state or mount is left.
"""

import os
import subprocess

import pytest

import common
import node_slurm

# What a container reports of itself: pid 1's name, its own pid, its cgroup v2 line.
SELF_REPORT = 'echo "$(cat /proc/1/comm) $$ $(grep ^0:: /proc/self/cgroup)"'


@pytest.fixture(scope="module")
def engine(node, start_engine):
    yield from start_engine(node_slurm, {"nsfork": str(node.oci)})


@pytest.fixture(scope="module")
def pool_before(node, engine):
    """The warm pool's counts before the first case that launches."""
    return node.pool()


@pytest.fixture
def clean(node, engine, pool_before):
    """After each case: no container in the server, no runtime state, no mount of the node left."""
    yield
    common.wait_for(lambda: not node.containers(), 20, "the server to hold no container")
    common.wait_for(lambda: not engine.state_entries(), 20, "the runtime state to be empty")
    assert not [m for m in common.mounts() if m.startswith(str(node.dir) + "/")]


def assert_inside(node, line):
    """A SELF_REPORT line: pid 1 is the shim, the task is pid 2, its cgroup is nsfork-oci's."""
    comm, pid, cgroup = line.split()
    assert comm == "nsfork-shim"
    assert pid == "2"
    assert cgroup.startswith("0::" + node.server_cgroup() + "/oci/"), cgroup
    return cgroup


def in_pid_namespace(inode):
    """Live pids in the pid namespace whose inode is `inode`."""
    found = []
    for pid in common.live_processes():
        try:
            if os.stat(f"/proc/{pid}/ns/pid").st_ino == inode:
                found.append(pid)
        except OSError:
            continue
    return found


def wait_job_done(engine, job, timeout=30):
    """Until the job has left squeue and its slurmstepds have exited (they write their last
    words into the job's output after slurmctld saw the job end)."""
    common.wait_for(lambda: job not in engine.jobs(), timeout, f"job {job} to end", interval=0.1)
    common.wait_for(lambda: not [c for _, c in common.live_processes().values()
                                 if c.startswith(f"slurmstepd: [{job}.")], timeout,
                    f"job {job}'s slurmstepds to exit", interval=0.1)


def job_field(engine, job, field):
    """A field of `scontrol show job` (completed jobs stay MinJobAge seconds)."""
    out = engine.run("scontrol", "show", "job", job).stdout
    return next(w.split("=", 1)[1] for w in out.split() if w.startswith(field + "="))


# --- srun --container -------------------------------------------------------------------------------

@pytest.mark.parametrize("script, status, says", [
    ("exit 0", 0, None),
    ("exit 3", 3, "exited with exit code 3"),
    # The task is `nsfork-oci run`, which exits 128+N for a container killed by signal N (as
    # `runc run` does): Slurm reports that exit code.
    ("kill -KILL $$", 137, "exited with exit code 137"),
])
def test_srun_reports_the_containers_exit_status(node, engine, clean, script, status, says):
    bundle = engine.bundle(f"exit-{status}", ["/bin/sh", "-c", "echo ran"])
    p = common.run(engine.srun_container(bundle, "/bin/sh", "-c", f"{SELF_REPORT}; {script}"), check=False)
    assert p.returncode == status, p.stderr
    assert_inside(node, p.stdout.strip())
    if says:
        assert says in p.stderr.lower(), p.stderr


def test_srun_runs_the_command_given_in_the_bundles_root(node, engine, clean):
    """srun's command replaces the bundle's process args; stdout and stderr of the task arrive."""
    bundle = engine.bundle("output", ["/bin/false"])
    p = common.run(engine.srun_container(bundle, "/bin/sh", "-c",
                                         "echo to-stdout; echo to-stderr >&2; ls /bin/busybox"))
    assert p.stdout.split() == ["to-stdout", "/bin/busybox"]
    assert "to-stderr" in p.stderr


@pytest.mark.parametrize("trap", [
    # The shell dies of scancel's SIGTERM; `nsfork-oci run` sees it and deletes the container.
    "",
    # The shell ignores SIGTERM: it lives on until Slurm's SIGKILL of the step's processes
    # (KillWait later), then Slurm's cleanup (RunTimeQuery, RunTimeDelete) ends the container.
    # srun itself gives up waiting after KillWait + 2 s, before that cleanup: its status is not
    # the point here.
    "trap '' TERM; ",
], ids=["dies-of-sigterm", "ignores-sigterm"])
def test_a_running_step_is_listed_and_scancel_destroys_its_container(node, engine, clean, trap):
    bundle = engine.bundle("scancel-" + ("trap" if trap else "plain"), ["/bin/true"])
    srun = subprocess.Popen(engine.srun_container(bundle, "/bin/sh", "-c",
                                                  f"{trap}{SELF_REPORT}; while :; do sleep 1; done"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = srun.stdout.readline()  # the container runs once it reported
        cgroup = assert_inside(node, line.strip())
        job = common.wait_for(lambda: engine.jobs(), 10, "the job in squeue")[0]
        cid = engine.container_id(job)
        assert cgroup.endswith("/oci/" + cid), cgroup
        held = {c["id"]: c for c in node.containers()}
        assert cid in held, held
        assert engine.state_entries() == [cid]
        pidns = held[cid]["pidns"]
        assert len(in_pid_namespace(pidns)) >= 3  # the shim, the shell, its sleep

        engine.run("scancel", job)
        out, err = srun.communicate(timeout=30)
    finally:
        if srun.poll() is None:
            srun.kill()
            srun.wait()
    # srun saw the cancellation: slurmstepd's "*** STEP ... CANCELLED ***" line, which travels on
    # the task's stderr and is lost when the task already died of the SIGTERM (seen under load),
    # or srun's own "Job step aborted" on the abort it is sent.
    assert "CANCELLED" in err or "Job step aborted" in err, err
    if not trap:
        assert srun.returncode == 143, err  # nsfork-oci run's status: the task died of SIGTERM
    common.wait_for(lambda: not in_pid_namespace(pidns), 20, "the container's processes to go")
    common.wait_for(lambda: cid not in [c["id"] for c in node.containers()], 20, "nsfork to drop the container")
    common.wait_for(lambda: not engine.state_entries(), 20, "the runtime state to go")
    wait_job_done(engine, job, timeout=20)


# --- sbatch -----------------------------------------------------------------------------------------

def test_two_container_steps_of_one_job(node, engine, clean, tmp_path):
    """A batch job (outside any container) whose two steps each run in a container of their own."""
    first = engine.bundle("step-a", ["/bin/true"])
    second = engine.bundle("step-b", ["/bin/true"])
    script = engine.dir / "two-steps.sh"
    srun = "srun -N1 -n1"
    script.write_text("#!/bin/sh\n"
                      f"{srun} --container={first} /bin/sh -c '{SELF_REPORT}; echo step $SLURM_STEP_ID' || exit 11\n"
                      f"{srun} --container={second} /bin/sh -c '{SELF_REPORT}; echo step $SLURM_STEP_ID' || exit 12\n"
                      "echo both-done\n")
    output = engine.dir / "two-steps.out"
    job = engine.run("sbatch", "--parsable", "-N1", "-n1", f"--output={output}", script).stdout.strip()
    wait_job_done(engine, job)
    lines = output.read_text().splitlines()
    assert lines[-1] == "both-done", lines
    reports = [l for l in lines if l.startswith("nsfork-shim")]
    steps = [l for l in lines if l.startswith("step ")]
    assert steps == ["step 0", "step 1"], lines
    cgroups = [assert_inside(node, r) for r in reports]
    assert [c.rsplit("/", 1)[1] for c in cgroups] == [engine.container_id(job, 0), engine.container_id(job, 1)]
    assert job_field(engine, job, "ExitCode") == "0:0"


def test_sbatch_container_job_output_arrives_in_its_file(node, engine, clean):
    """`sbatch --container`: the batch script itself runs in the container (Slurm binds it in at
    /tmp/slurm/startup); its output lands in the job's output file."""
    bundle = engine.bundle("batch", ["/bin/true"])
    script = engine.dir / "batch.sh"
    script.write_text(f"#!/bin/sh\n{SELF_REPORT}\necho batch-output\nexit 5\n")
    output = engine.dir / "batch.out"
    job = engine.run("sbatch", "--parsable", f"--container={bundle}", f"--output={output}", script).stdout.strip()
    wait_job_done(engine, job)
    lines = output.read_text().splitlines()
    cgroup = assert_inside(node, lines[0])
    # The batch step's id is SLURM_BATCH_SCRIPT (0xfffffffb).
    assert cgroup.endswith("/" + engine.container_id(job, 4294967291)), cgroup
    assert "batch-output" in lines
    # RunTimeQuery of the deleted container answers a JSON error line (--log-format=json), which
    # slurmstepd parses as "no status": a text one it would report into this file as a JSON
    # parsing error.
    assert not [l for l in lines if "error" in l], lines
    assert job_field(engine, job, "ExitCode") == "5:0"


# --- the warm pool -----------------------------------------------------------------------------------

def test_srun_container_discards_no_ready_namespace(node, engine):
    """A launch from a full pool is served from it and discards nothing: Slurm mounts nothing on
    the host. The host's mount table is shared with whatever else runs on the machine (other
    engines' rootfs mounts discard ready namespaces too), so a launch during which the pool
    discarded is tried again, up to 10 launches for 3 quiet ones."""
    bundle = engine.bundle("pool", ["/bin/true"])
    quiet, seen = [], []
    for _ in range(10):
        common.wait_for(lambda: (p := node.pool())["ready"] == p["size"], 30, "the warm pool to refill")
        before = node.pool()
        common.run(engine.srun_container(bundle, "/bin/true"))
        after = node.pool()
        seen.append((before, after))
        if after["discarded"] == before["discarded"]:
            quiet.append(after["served"] - before["served"])
            if len(quiet) == 3:
                break
    assert quiet == [1, 1, 1], seen


def test_the_warm_pool_served_the_containers(node, engine, pool_before):
    """Every container above came from the warm pool."""
    after = node.pool()
    print(f"warm pool before {pool_before} after {after}")
    assert after["served"] >= pool_before["served"] + 12, (pool_before, after)
