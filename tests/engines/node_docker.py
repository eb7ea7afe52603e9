"""Docker on the node: dockerd on a private containerd (node_containerd.Containerd), both under
NODE/docker, with no networking of its own (no bridge, iptables or forwarding: containers run
--network=none), the vfs storage driver, and `--config-file` a daemon.json that is packaging/engines/
daemon.json — the "runtimes" entry the README shows — with the node's paths, plus one runtime per
other name the caller gives. The image is the node's busybox rootfs imported as busybox:local.
"""

import json
import shutil
import subprocess

import common
from node_containerd import (Containerd, attempt, delete_leftover_state, kill_processes_mentioning,
                             remove_cgroups_named, stop_process, unmount_below)

IMAGE = "busybox:local"


class EngineNode:
    """dockerd + containerd under NODE/docker (contract: nodes.py). Each runtime NAME -> PATH is
    known to dockerd by NAME ("nsfork" through the packaged daemon.json); containers' cgroups go
    under a cgroup parent of this node's own name, which close() removes from every hierarchy
    (runc leaves it behind)."""

    def __init__(self, node, runtimes):
        common.require_programs("dockerd", "docker")
        self.node = node
        self.runtimes = {name: str(path) for name, path in runtimes.items()}
        self.dir = node.dir / "docker"
        self.dir.mkdir()
        self.socket = self.dir / "docker.sock"
        self.exec_root = self.dir / "exec"
        self.cgroup_parent = f"{node.name}-docker"
        self.config_file = self.dir / "daemon.json"
        self.config_file.write_text(json.dumps(self.daemon_config(), indent=2))
        self.containerd = self.dockerd = None
        try:
            self.containerd = Containerd(self.dir / "containerd", cri=False)
            self.log = open(self.dir / "dockerd.log", "w")
            self.dockerd = subprocess.Popen(
                ["dockerd", "--config-file", self.config_file, "--data-root", self.dir / "root",
                 "--exec-root", self.exec_root, "--pidfile", self.dir / "dockerd.pid",
                 "-H", f"unix://{self.socket}", "--containerd", self.containerd.address,
                 "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
                 "--storage-driver", "vfs", "--cgroup-parent", f"/{self.cgroup_parent}"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, close_fds=True,
                start_new_session=True)
            common.wait_for(lambda: self.dockerd.poll() is not None or self._answers(), 90, "dockerd to answer",
                            interval=0.1)
            if self.dockerd.poll() is not None:
                raise AssertionError(f"dockerd exited {self.dockerd.returncode}: {self.log_text()}")
            self.import_image()
        except BaseException:
            self.close()
            raise

    def daemon_config(self):
        """packaging/engines/daemon.json with the `nsfork` runtime's path (the node's nsfork-oci
        unless the caller names another), and the caller's other runtimes added."""
        config = json.loads(common.packaged("daemon.json", **{
            common.INSTALLED_OCI: self.runtimes.get("nsfork", self.node.oci)}))
        for name, path in self.runtimes.items():
            if name != "nsfork":
                config["runtimes"][name] = {"path": path}
        return config

    def _answers(self):
        return self.socket.exists() and self.docker("version", check=False, timeout=10).returncode == 0

    def docker_argv(self, *args):
        return ["docker", "-H", f"unix://{self.socket}"] + [str(a) for a in args]

    def docker(self, *args, timeout=60, check=True, **kw):
        return common.run(self.docker_argv(*args), timeout=timeout, check=check, **kw)

    def import_image(self):
        """The node's rootfs as the image busybox:local (`tar | docker import -`)."""
        tar = subprocess.Popen(["tar", "-C", self.node.rootfs, "-c", "."], stdout=subprocess.PIPE)
        try:
            common.run(self.docker_argv("import", "-", IMAGE), stdin=tar.stdout, timeout=120)
        finally:
            tar.stdout.close()
            tar.wait(timeout=60)

    def run_argv(self, runtime, *args, flags=()):
        """`docker run` of busybox:local with runtime NAME."""
        return self.docker_argv("run", "--network=none", "--runtime", runtime, *flags, IMAGE, *args)

    def true_command(self, runtime):
        return self.run_argv(runtime, "/bin/true", flags=["--rm"])

    def state_dir(self):
        """Where the runtimes keep their containers' state: dockerd's shims pass every runc-style
        runtime `--root <exec-root>/runtime-runc/moby`."""
        return self.exec_root / "runtime-runc" / "moby"

    def log_text(self):
        try:
            return (self.dir / "dockerd.log").read_text()[-4000:]
        except OSError:
            return ""

    def close(self):
        """Removes every container, stops dockerd and its containerd, kills what they left, unmounts
        below NODE/docker (dockerd's netns files, container mounts), removes the cgroup parent and
        the directory. Idempotent."""
        problems = []
        if self.dockerd is not None and self.dockerd.poll() is None:
            listed = attempt(self.docker_argv("ps", "-aq"))
            left = listed.stdout.split() if listed else []
            if left and attempt(self.docker_argv("rm", "-f", *left), timeout=60) is None:
                problems.append(f"docker rm -f {' '.join(left)} did not finish within 60 s")
        if p := stop_process(self.dockerd, "dockerd", timeout=30):
            problems.append(p)
        self.dockerd = None
        if self.containerd is not None:
            problems += self.containerd.close()
            self.containerd = None
        if killed := kill_processes_mentioning(str(self.dir)):
            problems.append(f"left running: {killed}")
        problems += delete_leftover_state(self.state_dir(), self.runtimes.values())
        unmount_below(self.dir)
        problems += remove_cgroups_named(self.cgroup_parent)
        if hasattr(self, "log") and not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("docker node: " + "; ".join(problems))
