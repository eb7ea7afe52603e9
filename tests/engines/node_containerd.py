"""containerd on the node: a private daemon under NODE/containerd whose config is a version 2
config.toml (root, state, gRPC and ttrpc sockets in that directory) with packaging/engines/
containerd.toml — the CRI runtime entry the README shows — appended, and `ctr` on its socket in a
namespace of its own. Containers run from the node's busybox rootfs (`ctr run --rootfs`), through
the shim v2 `io.containerd.runc.v2` with the runtime binary as its `BinaryName`
(`ctr run --runc-binary`), as containerd's CRI plugin does for a RuntimeClass.

`Containerd` is the daemon alone (node_docker.py starts one for dockerd too); `EngineNode` is the
contract of nodes.py (tests/engines/common.py's header, ../../notes: the engine suite).
"""

import os
import shutil
import signal
import subprocess
import tomllib
from pathlib import Path

import common
from common import stop_process

# The CRI plugin reads the packaged runtime entry; the rest of what a node's containerd loads is
# not needed by `ctr` or dockerd and only slows the start (or, like the btrfs/zfs/aufs/devmapper
# snapshotters, logs errors about the host).
DISABLED_PLUGINS = [
    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
    "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.monitor.v1.cgroups",
]

SHIM_COMM = "containerd-shim"


def attempt(argv, timeout=30):
    """Runs a clean-up command: its result, or None when it failed to finish within `timeout`
    (a hung engine must not stop the rest of the clean-up)."""
    try:
        return common.run(argv, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None


def kill_processes_mentioning(text):
    """SIGKILLs every process whose command line mentions `text` (a daemon's private path): shims
    and container processes a daemon killed too late left behind. Returns what it killed."""
    killed = []
    for pid, (comm, cmdline) in common.live_processes().items():
        if pid != os.getpid() and text in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(f"{pid} ({comm})")
            except ProcessLookupError:
                pass
    return killed


def remove_cgroups_named(name):
    """Removes /sys/fs/cgroup/<hierarchy>/<name> and everything below it, deepest first, in every
    hierarchy (runc leaves its containers' parents, cgroupsPath "/<name>/<id>", in the v1
    controllers). Only empty cgroups go: the problems name those that would not."""
    problems = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for path, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(path)
            except OSError as e:
                problems.append(f"cannot remove cgroup {path}: {e.strerror}")
    return problems


def unmount_below(path):
    """Lazily unmounts every mount point below `path`, deepest first (dockerd's netns files and
    overlay/vfs mounts outlive it when it is killed)."""
    prefix = str(path).rstrip("/") + "/"
    for point in sorted((m for m in common.mounts() if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


class Containerd:
    """A containerd daemon of our own under `dir`: `address` is its gRPC socket. `extra_config` is
    appended to its config.toml (the packaged CRI runtime entry); without `cri` the CRI plugin is
    not loaded (dockerd does not use it). Raises common.Unavailable when
    containerd is not installed; on a failed start it stops what it started before raising."""

    def __init__(self, dir, extra_config="", cri=True):
        common.require_programs("containerd", "ctr", "containerd-shim-runc-v2")
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.address = self.dir / "containerd.sock"
        self.config = self.dir / "config.toml"
        self.config.write_text(self._config_text(cri) + "\n" + extra_config)
        self.process = None
        self.log = open(self.dir / "containerd.log", "w")
        try:
            self.process = subprocess.Popen(["containerd", "--config", self.config],
                                            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                            close_fds=True, start_new_session=True)
            common.wait_for(lambda: self.process.poll() is not None or self._answers(), 60, "containerd to answer")
            if self.process.poll() is not None:
                raise AssertionError(f"containerd exited {self.process.returncode}: {self.log_text()}")
        except BaseException:
            self.close()
            raise

    def _config_text(self, cri):
        disabled = ", ".join(f'"{p}"' for p in DISABLED_PLUGINS + ([] if cri else ["io.containerd.grpc.v1.cri"]))
        text = (f'version = 2\nroot = "{self.dir}/root"\nstate = "{self.dir}/state"\n'
                f'disabled_plugins = [{disabled}]\n'
                f'[grpc]\n  address = "{self.address}"\n'
                f'[ttrpc]\n  address = "{self.address}.ttrpc"\n')
        if not cri:
            return text
        return (text + f'[plugins."io.containerd.grpc.v1.cri"]\n'
                # The CRI plugin is loaded (it reads the packaged runtime entry) but left without
                # networks and without its streaming server on a fixed port.
                f'  stream_server_port = "0"\n'
                f'  [plugins."io.containerd.grpc.v1.cri".cni]\n'
                f'    conf_dir = "{self.dir}/cni"\n')

    def _answers(self):
        return self.address.exists() and self.ctr("version", check=False, timeout=10).returncode == 0

    def ctr(self, *args, namespace=None, timeout=60, check=True, **kw):
        """`ctr` against this daemon (in `namespace` when given)."""
        argv = ["ctr", "--address", self.address] + (["--namespace", namespace] if namespace else []) + list(args)
        return common.run(argv, timeout=timeout, check=check, **kw)

    def log_text(self):
        try:
            return (self.dir / "containerd.log").read_text()[-4000:]
        except OSError:
            return ""

    def remove_namespace(self, namespace):
        """Kills and deletes every task and container of `namespace`, then the namespace, each
        step bounded (what is left then goes with the daemon in close())."""
        if self.process is None or self.process.poll() is not None:
            return

        def ctr(*args):
            return attempt(["ctr", "--address", self.address, "--namespace", namespace, *args])

        def listed(kind):
            r = ctr(kind, "ls", "-q")
            return r.stdout.split() if r else []

        tasks = listed("task")
        for task in tasks:
            ctr("task", "kill", "-s", "SIGKILL", task)
        for task in tasks:
            try:
                common.wait_for(lambda: (r := ctr("task", "delete", task)) is not None and r.returncode == 0
                                or task not in listed("task"), 15, f"task {task} to go", interval=0.2)
            except AssertionError:
                ctr("task", "delete", "--force", task)
        for container in listed("container"):
            ctr("container", "delete", container)
        for image in listed("image"):
            ctr("image", "rm", image)
        attempt(["ctr", "--address", self.address, "namespace", "remove", namespace])

    def close(self):
        """Stops the daemon, then kills what it left (shims mention its address), unmounts and
        removes its directory. Idempotent. Returns the problems seen (text)."""
        problems = []
        if p := stop_process(self.process, "containerd"):
            problems.append(p)
        # Shims outlive containerd by design (live restore): ours name our socket.
        if killed := kill_processes_mentioning(str(self.address)):
            problems.append(f"containerd left shims running: {killed}")
        unmount_below(self.dir)
        if hasattr(self, "log") and not self.log.closed:
            self.log.close()
        return problems


def pool_counts_of_launches(node, command, runs=3, attempts=8, timeout=120):
    """Runs `command` (one launch through an engine) `runs` times, each from a full warm pool, and
    returns [(before, after)] pool counts of each. A run during which the pool discarded entries
    is retried (up to `attempts` runs in all) while others' mounts may be the cause: the host's
    mount table is shared by every test on the machine. Returns every run's counts when fewer
    than `runs` were quiet, so that the caller's assertion shows them."""
    seen = []
    for _ in range(attempts):
        common.wait_for(lambda: (p := node.pool())["ready"] == p["size"], 30, "the warm pool to refill")
        before = node.pool()
        common.run(command, timeout=timeout)
        seen.append((before, node.pool()))
        quiet = [(b, a) for b, a in seen if a["discarded"] == b["discarded"]]
        if len(quiet) == runs:
            return quiet
    return seen


def delete_leftover_state(state_dir, binaries):
    """`delete --force` of every container still in a runtime state directory (a shim killed
    before it deleted its container), by each runtime binary in turn: whichever made it removes
    it. The problems name what was there."""
    left = sorted(p.name for p in state_dir.iterdir()) if state_dir.is_dir() else []
    for container in left:
        for binary in binaries:
            attempt([binary, "--root", state_dir, "delete", "--force", container])
    return [f"runtime state of {c} left after the engine stopped" for c in left]


def runtime_binary(packaged_toml):
    """The `BinaryName` of the nsfork runtime in a containerd.toml text (what ctr is given, the
    same binary the CRI plugin would run)."""
    config = tomllib.loads(packaged_toml)
    runtime = config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["nsfork"]
    assert runtime["runtime_type"] == "io.containerd.runc.v2", runtime
    return runtime["options"]["BinaryName"]


class EngineNode:
    """containerd under NODE/containerd with the packaged runtime entry (its BinaryName the
    `nsfork` runtime given, else the node's nsfork-oci), `ctr` in a namespace of its own (the node's name, which
    the leak checks look for: containers' default cgroupsPath is /<namespace>/<id>). Each
    runtime NAME -> PATH runs as `ctr run --runc-binary PATH`, with its state (`--runc-root`) under
    the node's directory too."""

    def __init__(self, node, runtimes):
        self.node = node
        self.namespace = node.name
        self.dir = node.dir / "containerd"
        self.runc_root = self.dir / "runc"
        self.fifo_dir = self.dir / "fifo"
        self.packaged_toml = common.packaged("containerd.toml", **{
            common.INSTALLED_OCI: runtimes.get("nsfork", node.oci)})
        # The nsfork runtime is the packaged entry's BinaryName, as the CRI plugin would run it.
        self.runtimes = {name: str(path) for name, path in runtimes.items()}
        if "nsfork" in self.runtimes:
            self.runtimes["nsfork"] = runtime_binary(self.packaged_toml)
        self.daemon = None
        try:
            self.daemon = Containerd(self.dir, extra_config=self.packaged_toml)
            self.daemon.ctr("namespace", "create", self.namespace)
        except BaseException:
            self.close()
            raise

    @property
    def address(self):
        return self.daemon.address

    def ctr(self, *args, **kw):
        """`ctr` in our namespace."""
        return self.daemon.ctr(*args, namespace=self.namespace, **kw)

    def ctr_argv(self, *args):
        return ["ctr", "--address", str(self.address), "--namespace", self.namespace] + [str(a) for a in args]

    def run_argv(self, runtime_path, container_id, *command, flags=()):
        """`ctr run` of the node's rootfs with the runtime binary `runtime_path`."""
        return self.ctr_argv("run", "--runc-binary", runtime_path, "--runc-root", self.runc_root,
                             "--fifo-dir", self.fifo_dir, *flags, "--rootfs", self.node.rootfs, container_id,
                             *command)

    def true_command(self, runtime):
        # ctr refuses an id in use, but a container removed by --rm frees it: one fixed id per
        # runtime serves every (sequential) run.
        return self.run_argv(self.runtimes[runtime], f"true-{runtime}", "/bin/true", flags=["--rm"])

    def state_dir(self):
        """Where the runtimes keep their containers' state: containerd's shim passes
        `--root <runc-root>/<namespace>`."""
        return self.runc_root / self.namespace

    def close(self):
        problems = []
        if self.daemon is not None:
            try:
                self.daemon.remove_namespace(self.namespace)
            finally:
                problems += self.daemon.close()
        problems += delete_leftover_state(self.state_dir(), self.runtimes.values())
        problems += remove_cgroups_named(self.namespace)
        unmount_below(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.daemon = None
        if problems:
            raise AssertionError("containerd node: " + "; ".join(problems))
