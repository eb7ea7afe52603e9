"""Slurm on the node: a private one-node cluster under NODE/slurm — munged on its own socket and
key, slurmctld and slurmd in the foreground (-D) on free ports, a slurm.conf whose every state,
spool, log and pid path is in that directory, and beside it the oci.conf of
packaging/engines/oci.conf (the lines the README shows) with the node's runtime and a state root
of our own. Clients (srun, sbatch, scancel, squeue) find the cluster by SLURM_CONF alone: the
munge socket is slurm.conf's AuthInfo.

Slurm 22.05 runs a container from BUNDLE/rootfs whatever config.json's root.path says (it
rewrites root.path in the copy it hands the runtime as %b), so every bundle here has a `rootfs`
entry: a symlink to the node's busybox root filesystem.

`EngineNode` is the contract of nodes.py (tests/engines/common.py's header).
"""

import json
import os
import shutil
import signal
import socket
import subprocess

import common
from common import stop_process

# Slurm's node name (slurmd -N): any host name works, the node is reached at 127.0.0.1.
NODE_NAME = "nsfe"
PARTITION = "nsfe"
# The packaged oci.conf's state root, which the node replaces by one under its directory.
INSTALLED_STATE_ROOT = "/run/nsfork-oci/slurm"
# The bench's oci.conf runs the runtime each bundle names: %r is the bundle's root.path,
# BUNDLE/rootfs (a real directory there, so that ".." is the bundle).
BUNDLE_RUNTIME = "%r/../runtime"


def free_port():
    """A TCP port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_with_env(entry):
    """Pids of live processes whose environment holds `entry` (b"NAME=value"): slurmd's
    slurmstepds inherit its SLURM_CONF, which names our cluster and no other."""
    found = []
    for pid in common.live_processes():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if entry in f.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return [p for p in found if p != os.getpid()]


class EngineNode:
    """One Slurm node under NODE/slurm that runs `srun --container=BUNDLE` through nsfork-oci.

    With one runtime its oci.conf is the packaged one (that runtime's path in place of
    /usr/local/bin/nsfork-oci). With several (the benchmark's), the packaged lines run
    `%r/../runtime` instead, a symlink in each bench bundle to its runtime: oci.conf is read by
    every step, so choosing the runtime by bundle is what lets runs alternate at no cost."""

    def __init__(self, node, runtimes):
        common.require_programs("munged", "mungekey", "slurmctld", "slurmd", "srun", "sbatch", "scancel",
                                "squeue", "sinfo")
        self.node = node
        self.runtimes = {name: str(path) for name, path in runtimes.items()}
        self.dir = node.dir / "slurm"
        self.conf = self.dir / "slurm.conf"
        self.state_root = self.dir / "oci-state"
        self.munge_socket = self.dir / "munge" / "munge.sock"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.processes = {}
        self.logs = []
        self.bench_bundles = {}
        try:
            self.dir.mkdir()
            self._start_munge()
            self._write_config()
            if len(self.runtimes) > 1:
                self.bench_bundles = {name: self._bench_bundle(name, path) for name, path in self.runtimes.items()}
            self._start("slurmctld", ["slurmctld", "-D", "-i", "-f", self.conf])
            self._start("slurmd", ["slurmd", "-D", "-N", NODE_NAME, "-f", self.conf])
            common.wait_for(self._idle, 60, "the Slurm node to be idle", interval=0.2)
        except BaseException:
            self.close(check=False)
            raise

    # --- start-up -----------------------------------------------------------------------------------

    def _start(self, name, argv):
        log = open(self.dir / f"{name}.log", "w")
        self.logs.append(log)
        self.processes[name] = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, env=self.env, close_fds=True,
                                                start_new_session=True)

    def _start_munge(self):
        """munged on a socket and key of its own (its directory 0755: clients of any user connect)."""
        d = self.munge_socket.parent
        d.mkdir(mode=0o755)
        key = d / "munge.key"
        common.run(["mungekey", "--create", "--keyfile", key])
        self._start("munged", ["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={d}/munged.pid", f"--seed-file={d}/munged.seed",
                               f"--log-file={d}/munged.log"])
        common.wait_for(lambda: self.processes["munged"].poll() is not None or self.munge_socket.exists(), 20,
                        "munged's socket")
        self._check_running("munged")

    def _write_config(self):
        d = self.dir
        for sub in ("state", "spool"):
            (d / sub).mkdir()
        host = socket.gethostname().split(".")[0]  # slurmctld runs only where SlurmctldHost names
        lines = [
            "ClusterName=nsfe",
            f"SlurmctldHost={host}(127.0.0.1)",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={self.munge_socket}", "CredType=cred/munge",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
            f"StateSaveLocation={d}/state", f"SlurmdSpoolDir={d}/spool",
            f"SlurmctldPidFile={d}/slurmctld.pid", f"SlurmdPidFile={d}/slurmd.pid",
            f"SlurmctldLogFile={d}/slurmctld.log", f"SlurmdLogFile={d}/slurmd.log",
            # Processes tracked by parentage, no cgroups of Slurm's own (nsfork makes the
            # container's), no accounting, no MPI.
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none", "MpiDefault=none", "MailProg=/bin/true",
            "SchedulerType=sched/builtin", "SelectType=select/cons_tres",
            # A cancelled step's processes get SIGKILL 2 s after SIGTERM (30 s by default).
            "KillWait=2", "InactiveLimit=0", "ReturnToService=2",
            # CPUs=2 even on a smaller machine: the node's configuration, not the hardware's.
            "SlurmdParameters=config_overrides",
            f"NodeName={NODE_NAME} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={NODE_NAME} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        runtime = BUNDLE_RUNTIME if len(self.runtimes) > 1 else next(iter(self.runtimes.values()))
        (d / "oci.conf").write_text(common.packaged("oci.conf", **{common.INSTALLED_OCI: runtime,
                                                                   INSTALLED_STATE_ROOT: self.state_root}))

    def _bench_bundle(self, name, runtime):
        """BENCH/NAME: a /bin/true bundle whose rootfs is a real directory (hard links to the node's
        rootfs) and whose `runtime` links to the runtime NAME."""
        bundle = self.dir / "bench" / name
        bundle.mkdir(parents=True)
        shutil.copytree(self.node.rootfs, bundle / "rootfs", symlinks=True, copy_function=os.link)
        (bundle / "runtime").symlink_to(runtime)
        self._write_bundle_config(bundle, ["/bin/true"])
        return bundle

    def _write_bundle_config(self, bundle, args):
        """BUNDLE/config.json: `runc spec`'s with `args`, its root BUNDLE/rootfs."""
        common.run(["runc", "spec", "--bundle", bundle])
        path = bundle / "config.json"
        spec = json.loads(path.read_text())
        spec["process"]["args"] = list(args)
        spec["process"]["terminal"] = False
        spec["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
        path.write_text(json.dumps(spec, indent=2))

    def _check_running(self, name):
        proc = self.processes[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited {proc.returncode}: {self.log_text(name)}")

    def _idle(self):
        for name in ("slurmctld", "slurmd"):
            self._check_running(name)
        p = common.run(["sinfo", "-h", "-N", "-n", NODE_NAME, "-o", "%T"], check=False, env=self.env, timeout=20)
        return p.returncode == 0 and p.stdout.strip() == "idle"

    def log_text(self, name):
        try:
            return (self.dir / f"{name}.log").read_text()[-4000:]
        except OSError:
            return ""

    # --- what tests and the bench run ---------------------------------------------------------------

    def command(self, *argv):
        """argv of a Slurm client command on this cluster, self-contained (SLURM_CONF set by env)."""
        return ["env", f"SLURM_CONF={self.conf}"] + [str(a) for a in argv]

    def run(self, *argv, timeout=60, check=True):
        return common.run(self.command(*argv), timeout=timeout, check=check)

    def srun_container(self, bundle, *args):
        """`srun --container=BUNDLE ARGS` on the node's one task."""
        return self.command("srun", "-N1", "-n1", f"--container={bundle}", *args)

    def bundle(self, name, args=("/bin/true",), edit=None):
        """A bundle of the node (common.Node.make_bundle) with the `rootfs` symlink Slurm 22.05 runs."""
        def root_in_bundle(config):
            config["root"]["path"] = "rootfs"
            if edit:
                edit(config)
        bundle = self.node.make_bundle(f"slurm-{name}", list(args), edit=root_in_bundle)
        (bundle / "rootfs").symlink_to(self.node.rootfs)
        return bundle

    def true_command(self, runtime):
        if self.bench_bundles:
            bundle = self.bench_bundles[runtime]
        else:
            assert runtime in self.runtimes, runtime
            bundle = self.dir / "true"
            if not bundle.exists():
                bundle.mkdir()
                (bundle / "rootfs").symlink_to(self.node.rootfs)
                self._write_bundle_config(bundle, ["/bin/true"])
        return self.srun_container(bundle, "/bin/true")

    def container_id(self, job, step=0, task=0):
        """The id oci.conf's pattern %n.%u.%j.%s.%t gives a task (we run as root)."""
        return f"{NODE_NAME}.root.{job}.{step}.{task}"

    def state_entries(self):
        """Containers in the runtime's state root (what is left of them)."""
        return sorted(p.name for p in self.state_root.iterdir()) if self.state_root.is_dir() else []

    def jobs(self):
        """Job ids squeue lists (pending, running or completing)."""
        p = self.run("squeue", "-h", "-o", "%i", check=False, timeout=20)
        return p.stdout.split() if p.returncode == 0 else []

    # --- removal ------------------------------------------------------------------------------------

    def close(self, check=True):
        """Cancels every job, stops slurmd, slurmctld and munged, kills any slurmstepd of ours left,
        deletes what is left in the runtime's state (its container's processes with it) and removes
        the directory. Idempotent; with `check`, raises naming what had to be forced."""
        problems = []
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            if jobs := self.jobs():
                problems.append(f"jobs still queued: {jobs}")
                self.run("scancel", "--user=root", check=False, timeout=20)
                try:
                    common.wait_for(lambda: not self.jobs(), 20, "the jobs to end", interval=0.2)
                except AssertionError as e:
                    problems.append(str(e))
        for name in ("slurmd", "slurmctld", "munged"):
            if problem := stop_process(self.processes.get(name), name):
                problems.append(problem)
        if left := processes_with_env(f"SLURM_CONF={self.conf}".encode()):
            problems.append(f"processes of the cluster left: {left}")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for container in self.state_entries():
            problems.append(f"runtime state of {container} left")
            for runtime in self.runtimes.values():
                common.run([runtime, f"--root={self.state_root}", "delete", "--force", container], check=False,
                           timeout=30)
        for log in self.logs:
            log.close()
        self.logs = []
        self.processes = {}
        shutil.rmtree(self.dir, ignore_errors=True)
        if check and problems:
            raise AssertionError("slurm node: " + "; ".join(problems))
