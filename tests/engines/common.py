"""What every engine test shares: the node (one `nsfork serve` with a warm pool, the nsfork-oci the
engines are pointed at, a busybox root filesystem), commands run with a deadline, the packaged
engine configuration read as the README shows it, and the leak checks.

Each engine has a module of its own (node_<engine>.py) that starts its daemons privately under the
node's directory and stops and removes all of it; test_<engine>.py drives it; nodes.py serves the
same nodes to `nsfork-bench engines`. Environment (ctest sets it: tests/engines/CMakeLists.txt):
NSFORK_BIN_DIR (the build's bin/), NSFORK_SOURCE_DIR (the checkout, for packaging/engines/).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

CI = os.environ.get("CI") == "true"

SOURCE_DIR = Path(os.environ.get("NSFORK_SOURCE_DIR", Path(__file__).resolve().parents[2]))
PACKAGING = SOURCE_DIR / "packaging" / "engines"
# Where the packaged configuration (and the README) puts the runtime; the node substitutes its own.
INSTALLED_OCI = "/usr/local/bin/nsfork-oci"


class Unavailable(Exception):
    """The node cannot be had here (not root, a package missing): a skip, a failure under CI=true."""


def bin_dir():
    d = os.environ.get("NSFORK_BIN_DIR")
    if not d:
        raise Unavailable("NSFORK_BIN_DIR is not set (the build's bin/, which ctest names)")
    return Path(d)


def require_programs(*names):
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise Unavailable(f"not installed: {' '.join(missing)} (scripts/dev.sh installs the engines' packages)")


def run(argv, timeout=60, check=True, input=None, env=None, **kw):
    """Runs argv to its end within `timeout` seconds; its output as text. A failure names the
    command, its status and what it printed."""
    p = subprocess.run([str(a) for a in argv], input=input, capture_output=True, text=True, timeout=timeout,
                       env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {p.returncode}\n"
                             f"stdout: {p.stdout.strip()}\nstderr: {p.stderr.strip()}")
    return p


def wait_for(predicate, timeout=30.0, what="a condition", interval=0.02):
    """Polls `predicate` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def packaged(name, **substitutions):
    """The text of packaging/engines/NAME — the lines the README shows — with the installed paths
    replaced by this node's (`substitutions`: old text -> new text)."""
    text = (PACKAGING / name).read_text()
    for old, new in substitutions.items():
        assert old in text, f"packaging/engines/{name} no longer mentions {old}"
        text = text.replace(old, str(new))
    return text


def stop_process(proc, what, timeout=15):
    """SIGTERM, a bounded wait, then SIGKILL: `proc` (a Popen) is gone after it. Returns a problem
    (text) when it had to be killed, else None."""
    if proc is None or proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
        return None
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return f"{what} did not stop on SIGTERM within {timeout} s"


# --- processes, mounts, cgroups, links: what a node may leave behind -----------------------------

def live_processes():
    """pid -> (comm, cmdline) of every process that is not a zombie (pid 1 here reaps orphans
    only every second or so)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            state = stat[stat.rindex(")") + 2]
            if state in "ZX":
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        found[int(name)] = (comm, cmdline)
    return found


def mounts():
    """Mount points in our mount namespace."""
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def cgroup_dirs(depth=4):
    """Every cgroup directory down to `depth` levels below /sys/fs/cgroup (all hierarchies)."""
    root = "/sys/fs/cgroup"
    found = set()
    base = root.count("/")
    for path, dirs, _ in os.walk(root):
        if path.count("/") - base >= depth:
            dirs.clear()
        found.add(path)
    return found


def links():
    return set(os.listdir("/sys/class/net"))


def process_cgroups(pid):
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return f.read()
    except OSError:
        return ""


class Snapshot:
    """What ran, was mounted, made in cgroupfs and in the network before a node; `leaks()` names
    what is there after it that was not before and is the node's. Other tests run beside the
    suite (ctest -j), so "the node's" is whatever names one of `markers`: the node's directory and
    name, which every engine's cgroups and daemons carry, and the server's cgroup tree
    (nsfork-PID), which its shims and the containers' processes live in."""

    # Bridges an engine could make (the suite asks for none: --network=none, --bridge=none).
    ENGINE_LINKS = ("cni-podman", "podman", "docker", "br-", "cni0")

    def __init__(self, markers=()):
        self.markers = list(markers)
        self.processes = set(live_processes())
        self.cgroups = cgroup_dirs()
        self.links = links()

    def ours(self, text):
        return any(m in text for m in self.markers)

    def leaks(self, settle=10.0):
        """What was left (empty when nothing). Waits up to `settle` seconds for processes that
        are dying (orphans reparented to pid 1 are reaped late here)."""
        def left_processes():
            return {pid: what for pid, what in live_processes().items()
                    if pid not in self.processes and pid != os.getpid()
                    and (self.ours(what[1]) or self.ours(process_cgroups(pid)))}
        deadline = time.monotonic() + settle
        while (left := left_processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        problems = [f"process {pid} ({comm}): {cmd}" for pid, (comm, cmd) in sorted(left.items())]
        problems += [f"mount {m}" for m in mounts() if self.ours(m)]
        problems += [f"cgroup {c}" for c in sorted(cgroup_dirs() - self.cgroups) if self.ours(c)]
        problems += [f"network link {l}" for l in sorted(links() - self.links) if l.startswith(self.ENGINE_LINKS)]
        return problems

    def watch(self, node):
        """Marks `node`'s things as this snapshot's to check."""
        self.markers += [str(node.dir), node.name, f"/nsfork-{node.server.pid}/"]


# --- the node --------------------------------------------------------------------------------------

class Node:
    """A temporary directory with everything the engines need from nsfork: `nsfork serve` on
    DIR/nsfork.sock with a warm pool, the runtime the engines call (`oci`: a script that execs the
    build's nsfork-oci on that socket, the README's "server on another socket" wrapper), and a
    busybox root filesystem (`rootfs`). Stop it with close(): it checks the server has no
    container left and removes its cgroup tree."""

    def __init__(self, pool=4):
        if os.geteuid() != 0:
            raise Unavailable("needs root: engines and nsfork serve make namespaces and cgroups")
        bins = bin_dir()
        self.nsfork = bins / "nsfork"
        self.oci_binary = bins / "nsfork-oci"
        for b in (self.nsfork, self.oci_binary):
            if not b.exists():
                raise Unavailable(f"{b} is not built")
        require_programs("busybox", "runc")
        # Short: unix socket paths (engines put theirs below) must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="nsfe-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        # The name engines give what they make for this node (cgroup parents, namespaces).
        self.name = "".join(c for c in self.dir.name if c.isalnum())
        self.socket = self.dir / "nsfork.sock"
        self.server = None
        try:
            self.rootfs = self.make_rootfs(self.dir / "rootfs")
            self.oci = self.dir / "bin" / "nsfork-oci"
            self.oci.parent.mkdir()
            self.oci.write_text(f'#!/bin/sh\nexec {self.oci_binary} --nsfork-socket {self.socket} "$@"\n')
            self.oci.chmod(0o755)
            self.log = open(self.dir / "serve.log", "w")
            self.server = subprocess.Popen(
                [self.nsfork, "serve", "--socket", self.socket, "--warm-pool", str(pool), "--log-level", "info"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, close_fds=True)
            wait_for(lambda: self.server.poll() is not None or self._answers(), 10, "nsfork serve to listen")
            if self.server.poll() is not None:
                raise AssertionError(f"nsfork serve exited {self.server.returncode}: {self.server_log()}")
            if pool:
                wait_for(lambda: self.pool()["ready"] == pool, 20, f"the warm pool to fill ({pool})")
        except BaseException:
            self.close(check=False)
            raise

    @staticmethod
    def make_rootfs(path):
        """busybox-static and its applets as /bin, as ENGINES.md's recipe."""
        (path / "bin").mkdir(parents=True)
        shutil.copy2(shutil.which("busybox"), path / "bin" / "busybox")
        run(["chroot", path, "/bin/busybox", "--install", "-s", "/bin"])
        for d in ("proc", "sys", "dev", "etc", "tmp", "root"):
            (path / d).mkdir(exist_ok=True)
        (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        (path / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        return path

    def make_bundle(self, name, args, edit=None):
        """A bundle DIR/bundles/NAME: `runc spec`'s config.json with `args`, root the node's rootfs
        (by absolute path: bundles share it), terminal off; `edit(config)` may change the rest."""
        bundle = self.dir / "bundles" / name
        bundle.mkdir(parents=True)
        run(["runc", "spec"], cwd=bundle)
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["args"] = list(args)
        config["process"]["terminal"] = False
        config["root"] = {"path": str(self.rootfs), "readonly": False}
        if edit:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return bundle

    def _answers(self):
        return run([self.nsfork, "status", "--socket", self.socket], check=False, timeout=10).returncode == 0

    def status(self):
        return json.loads(run([self.nsfork, "status", "--json", "--socket", self.socket]).stdout)

    def pool(self):
        """The warm pool's counts: size, ready, warming, served, discarded."""
        return self.status()["pool"]

    def containers(self):
        """`nsfork list --json` on the node: the containers the server holds now."""
        return json.loads(run([self.nsfork, "list", "--json", "--socket", self.socket]).stdout)

    def server_cgroup(self):
        """The server's cgroup tree (cgroup2 path relative to the hierarchy's root), which every
        container's leaf is below."""
        with open(f"/proc/{self.server.pid}/cgroup") as f:
            own = next(l.split(":", 2)[2].strip() for l in f if l.startswith("0::"))
        return f"{own.rstrip('/')}/nsfork-{self.server.pid}" if not own.endswith(f"nsfork-{self.server.pid}") else own

    def server_log(self):
        try:
            return (self.dir / "serve.log").read_text()[-4000:]
        except OSError:
            return ""

    def close(self, check=True):
        """Stops the server (SIGTERM) and removes the directory. With `check`, fails when the
        server still held a container or left its cgroup tree."""
        problems = []
        if self.server is not None and self.server.poll() is None:
            if check:
                left = [c["id"] for c in self.containers()]
                if left:
                    problems.append(f"containers left in nsfork: {left}")
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
                problems.append("nsfork serve did not stop on SIGTERM within 30 s")
        if self.server is not None:
            pid = self.server.pid
            try:
                left = wait_for(lambda: not [c for c in cgroup_dirs() if c.endswith(f"/nsfork-{pid}")], 10,
                                "the server's cgroup tree to go")
            except AssertionError:
                problems.append(f"the server left its cgroup tree nsfork-{pid}")
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if check and problems:
            raise AssertionError("; ".join(problems))
