"""podman on an nsfork node: a private podman (its storage, run state, libpod state, locks, events
and configuration all under NODE/podman) whose containers.conf is the packaged one
(packaging/engines/containers.conf, the README's lines) with the node's nsfork-oci, plus the
settings these machines need (ENGINES.md): cgroupfs, file events, no default ulimits.

podman has no daemon: every command is one `podman` process that starts conmon for the container,
and conmon calls the runtime. What this module starts and must remove is therefore what those
leave: containers (and their conmon), the storage's mounts, the runtimes' state, the cgroups
podman's cgroupfs manager makes on this cgroup v1 host. Those go below a cgroup parent of this node's
own (`--cgroup-parent /podman-<node>`, in every hierarchy; podman's default `libpod_parent` would be
shared with any other podman on the machine), which close() removes.
"""

import os
import shutil
import signal
import time
from pathlib import Path

import common

# The settings ENGINES.md's recipe needs on these machines, and every path podman would otherwise
# use outside its --root/--runroot (/run/libpod, /dev/shm/libpod_lock, /etc/cni/net.d).
ENGINE_SETTINGS = """\
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
static_dir = "{d}/root/libpod"
volume_path = "{d}/volumes"
lock_type = "file"
"""

OTHER_TABLES = """
[containers]
default_ulimits = []

[network]
network_config_dir = "{d}/networks"
"""


class EngineNode:
    """A private podman on `node`, knowing each of `runtimes` (name -> binary) by its name; "nsfork"
    is the packaged entry (the node's nsfork-oci unless `runtimes` names another binary)."""

    def __init__(self, node, runtimes):
        common.require_programs("podman", "conmon")
        self.node = node
        self.dir = Path(node.dir) / "podman"
        self.runtimes = dict(runtimes)
        # Where podman's cgroupfs manager puts the containers (PARENT/libpod-ID) and conmon
        # (PARENT/conmon) in every hierarchy; the runtimes put the cgroup v2 leaf there too (runc)
        # or below the server's tree (nsfork-oci: <tree>/oci/PARENT/libpod-ID).
        self.cgroup_parent = "/podman-" + "".join(c for c in Path(node.dir).name if c.isalnum())
        self._links_before = common.links()
        try:
            self._configure()
            common.run(self.podman("info", "--format", "{{.Host.OCIRuntime.Name}}"), timeout=60)
        except BaseException:
            self.close()
            raise

    # --- configuration ----------------------------------------------------------------------------

    def _configure(self):
        for sub in ("root", "run", "tmp", "volumes", "networks", "xdg/config", "xdg/data",
                    "xdg/run"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "xdg" / "run", 0o700)
        d = str(self.dir)
        text = common.packaged("containers.conf", **{common.INSTALLED_OCI: self.runtimes.get("nsfork", self.node.oci)})
        assert "[engine]\n" in text and "[engine.runtimes]\n" in text, "containers.conf lost its tables"
        text = text.replace("[engine]\n", "[engine]\n" + ENGINE_SETTINGS.format(d=d), 1)
        extra = "".join(f'{name} = ["{path}"]\n' for name, path in self.runtimes.items() if name != "nsfork")
        text = text.replace("[engine.runtimes]\n", "[engine.runtimes]\n" + extra, 1)
        text += OTHER_TABLES.format(d=d)
        self.conf = self.dir / "containers.conf"
        self.conf.write_text(text)
        # storage.conf too: podman otherwise reads /etc/containers/storage.conf for its options.
        self.storage_conf = self.dir / "storage.conf"
        self.storage_conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{d}/root"\nrunroot = "{d}/run"\n')

    def env(self):
        """The environment every podman command runs in: the private configuration, XDG dirs."""
        x = self.dir / "xdg"
        return {"CONTAINERS_CONF": str(self.conf), "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
                "XDG_CONFIG_HOME": str(x / "config"), "XDG_DATA_HOME": str(x / "data"),
                "XDG_RUNTIME_DIR": str(x / "run"), "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "HOME": str(self.dir)}

    def podman(self, *args):
        """argv of `podman ARGS` on this private podman, self-contained (its environment by `env`).
        The runtimes keep their state in their default roots (/run/nsfork-oci, /run/runc): podman
        as root passes them no --root, and a --runtime-flag would not reach the `podman container
        cleanup` conmon runs when the container exits (its command line carries no such flag)."""
        return ["env", "-i", *(f"{k}={v}" for k, v in self.env().items()),
                "podman", "--root", self.dir / "root", "--runroot", self.dir / "run", "--storage-driver", "vfs",
                "--tmpdir", self.dir / "tmp", *args]

    def run(self, runtime, *options):
        """argv of `podman run OPTIONS` up to the command: that runtime (None: containers.conf's
        default), the node's rootfs, no network, the host's rlimits (raising them needs
        CAP_SYS_RESOURCE, which these machines lack)."""
        chosen = ["--runtime", runtime] if runtime else []
        return self.podman("run", *chosen, "--network=none", "--ulimit", "host", "--cgroup-parent", self.cgroup_parent,
                           *options, "--rootfs", self.node.rootfs)

    def true_command(self, runtime):
        return self.run(runtime, "--rm") + ["/bin/true"]

    # --- teardown ---------------------------------------------------------------------------------

    def cgroups(self):
        """This node's cgroup parent in every hierarchy where it exists (podman's cgroupfs manager
        makes it and never removes it)."""
        root = Path("/sys/fs/cgroup")
        hierarchies = [root, *root.iterdir()] if root.is_dir() else []
        return {h / self.cgroup_parent.lstrip("/") for h in hierarchies if (h / self.cgroup_parent.lstrip("/")).is_dir()}

    def _kill_leftovers(self):
        """SIGKILLs every process whose command line names this podman's directory (conmon and
        the containers' processes when removal failed)."""
        mine = str(self.dir)
        for pid, (comm, cmd) in common.live_processes().items():
            if mine in cmd and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _unmount_all(self):
        """Unmounts everything below the private directory, deepest first."""
        mine = str(self.dir)
        for _ in range(3):
            points = sorted((m for m in common.mounts() if m == mine or m.startswith(mine + "/")),
                            key=len, reverse=True)
            if not points:
                return
            for m in points:
                common.run(["umount", "-l", m], check=False, timeout=30)

    def _remove_cgroups(self):
        """rmdir (deepest first) the cgroup parent's trees."""
        for parent in self.cgroups():
            dirs = sorted((Path(p) for p, _, _ in os.walk(parent)), key=lambda p: len(p.parts), reverse=True)
            for d in dirs:
                try:
                    common.wait_for(lambda: _rmdir(d), 10, f"cgroup {d} to empty")
                except AssertionError:
                    pass  # named by close()
        return sorted(str(c) for c in self.cgroups())

    def close(self):
        if not self.dir.exists():
            return
        problems = []
        if hasattr(self, "conf"):
            p = common.run(self.podman("rm", "--all", "--force", "--time", "0"), check=False, timeout=120)
            if p.returncode != 0:
                problems.append(f"podman rm -af: {p.stderr.strip()}")
        self._kill_leftovers()
        self._unmount_all()
        problems += [f"cgroup {c} left" for c in self._remove_cgroups()]
        # --network=none makes no bridge; were one made (a case given a network), it goes too.
        for link in common.links() - self._links_before:
            if link.startswith(("cni-podman", "podman")):
                common.run(["ip", "link", "delete", link], check=False, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))


def _rmdir(path):
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True
