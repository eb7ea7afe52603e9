// config.json as nsfork-oci applies it: the configs runc, Docker and podman write parse into the
// Spec the runtime uses, and every field that cannot be applied is refused by its JSON path.
#include "oci/spec.hpp"

#include "oci/seccomp.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

using namespace nsfork;
using namespace nsfork::oci;
using nlohmann::json;

namespace {

// What `runc spec` (runc 1.1.5) writes, verbatim.
constexpr const char* kRuncSpec = R"({
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": {"uid": 0, "gid": 0},
		"args": ["sh"],
		"env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
		"cwd": "/",
		"capabilities": {
			"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
		},
		"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
		"noNewPrivileges": true
	},
	"root": {"path": "rootfs", "readonly": true},
	"hostname": "runc",
	"mounts": [
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
		 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
		 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
		 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
		{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
		 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
	],
	"linux": {
		"resources": {"devices": [{"allow": false, "access": "rwm"}]},
		"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
		"maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
		"readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
	}
})";

// The shape of what dockerd 20.10 sends (docker run --network=none busybox), seccomp cut short.
constexpr const char* kDockerSpec = R"({
  "ociVersion": "1.0.2-dev",
  "process": {
    "user": {"uid": 0, "gid": 0, "additionalGids": [10]},
    "args": ["sh", "-c", "exit 3"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=0123456789ab"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                   "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                   "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
      "effective": ["CAP_CHOWN", "CAP_KILL"],
      "permitted": ["CAP_CHOWN", "CAP_KILL"]
    },
    "oomScoreAdj": 0
  },
  "root": {"path": "/var/lib/docker/vfs/dir/0123"},
  "hostname": "0123456789ab",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "bind", "source": "/var/lib/docker/containers/0123/mounts/shm",
     "options": ["rbind", "nosuid", "noexec", "nodev"]},
    {"destination": "/etc/resolv.conf", "type": "bind", "source": "/var/lib/docker/containers/0123/resolv.conf",
     "options": ["rbind", "rprivate"]}
  ],
  "hooks": {
    "prestart": [{"path": "/proc/4242/exe", "args": ["libnetwork-setkey", "-exec-root=/var/run/docker", "0123", "4567"]}]
  },
  "linux": {
    "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"},
    "resources": {
      "devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"}
      ],
      "memory": {"disableOOMKiller": false},
      "cpu": {"shares": 0},
      "pids": {"limit": 0},
      "blockIO": {"weight": 0}
    },
    "cgroupsPath": "/docker/0123",
    "namespaces": [{"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}],
    "seccomp": {
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 1,
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      "syscalls": [
        {"names": ["accept", "read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}
      ]
    },
    "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/sys/firmware"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/sys", "/proc/sysrq-trigger"]
  }
})";

// The shape of what podman 4.3 sends with cgroup_manager="cgroupfs".
constexpr const char* kPodmanSpec = R"({
  "ociVersion": "1.0.2-dev",
  "process": {
    "user": {"uid": 0, "gid": 0, "umask": 18},
    "args": ["/bin/true"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "container=podman"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_SYS_CHROOT"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]
    },
    "rlimits": [{"type": "RLIMIT_NPROC", "hard": 4194304, "soft": 4194304}],
    "oomScoreAdj": 0,
    "selinuxLabel": ""
  },
  "root": {"path": "/tmp/rootfs"},
  "hostname": "abcdef",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/etc/hosts", "type": "bind", "source": "/run/containers/abcdef/hosts", "options": ["bind", "rprivate"]},
    {"destination": "/dev/shm", "type": "bind", "source": "/run/containers/abcdef/shm",
     "options": ["bind", "rprivate", "nosuid", "noexec", "nodev"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "annotations": {"io.container.manager": "libpod", "org.opencontainers.image.stopSignal": "15"},
  "linux": {
    "sysctl": {},
    "resources": {"pids": {"limit": 2048}},
    "cgroupsPath": "/libpod_parent/libpod-abcdef",
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": []},
    "maskedPaths": ["/proc/acpi", "/sys/devices/virtual/powercap"],
    "readonlyPaths": ["/proc/sys"],
    "mountLabel": ""
  }
})";

CapabilityMask caps(std::initializer_list<int> numbers) {
    CapabilityMask m = 0;
    for (int n : numbers) m |= CapabilityMask{1} << n;
    return m;
}

// config.json `base` with `patch` merged in (RFC 7386: null removes a member).
std::string patched(const char* base, const char* patch) {
    json doc = json::parse(base);
    doc.merge_patch(json::parse(patch));
    return doc.dump();
}

// The error loading the runc spec patched so, or "" if it loads.
std::string error_of(const char* patch) {
    auto spec = parse_config(patched(kRuncSpec, patch), "/bundle");
    return spec ? "" : spec.error().message;
}

// The same with one more entry appended to an array of the runc spec (JSON Pointer to the array).
std::string error_appending(const char* array, const char* entry) {
    json doc = json::parse(kRuncSpec);
    doc[json::json_pointer(array)].push_back(json::parse(entry));
    auto spec = parse_config(doc.dump(), "/bundle");
    return spec ? "" : spec.error().message;
}

} // namespace

TEST_CASE("oci spec: runc spec's config.json loads as runc applies it") {
    auto spec = parse_config(kRuncSpec, "/b/bundle");
    REQUIRE(spec.ok());
    CHECK(spec->oci_version == "1.0.2-dev");
    CHECK(spec->root == "/b/bundle/rootfs");
    CHECK(spec->root_readonly);
    const Process& p = spec->process;
    CHECK(p.terminal);
    CHECK(p.args == std::vector<std::string>{"sh"});
    CHECK(p.env.size() == 2);
    CHECK(p.cwd == "/");
    CHECK(p.user.uid == 0);
    CHECK_FALSE(p.user.umask);
    REQUIRE(p.capabilities);
    CapabilityMask three = caps({CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE});
    CHECK(p.capabilities->bounding == three);
    CHECK(p.capabilities->effective == three);
    CHECK(p.capabilities->permitted == three);
    CHECK(p.capabilities->ambient == three);
    CHECK(p.capabilities->inheritable == 0);
    REQUIRE(p.rlimits.size() == 1);
    CHECK(p.rlimits[0].resource == RLIMIT_NOFILE);
    CHECK(p.rlimits[0].soft == 1024);
    CHECK(p.no_new_privileges);
    CHECK(spec->hostname == "runc");

    REQUIRE(spec->mounts.size() == 7);
    const Mount& dev = spec->mounts[1];
    CHECK(dev.field == "mounts[1]");
    CHECK(dev.destination == "/dev");
    CHECK(dev.type == "tmpfs");
    CHECK(dev.source == "tmpfs");
    CHECK(dev.flags == (MS_NOSUID | MS_STRICTATIME));
    CHECK(dev.data == "mode=755,size=65536k");
    CHECK_FALSE(dev.bind());
    CHECK(spec->mounts[2].data == "newinstance,ptmxmode=0666,mode=0620,gid=5");
    CHECK(spec->mounts[6].flags == (MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY));

    // The config's deny-all, then runc's eleven default allow rules.
    REQUIRE(spec->resources.devices.size() == 12);
    CHECK_FALSE(spec->resources.devices[0].allow);
    CHECK(spec->resources.devices[0].type == 'a');
    CHECK(spec->resources.devices[0].major == -1);
    REQUIRE(spec->namespaces.size() == 5);
    CHECK(spec->namespaces[0].type == CLONE_NEWPID);
    CHECK(spec->namespaces[0].path.empty());
    CHECK(spec->find_namespace(CLONE_NEWNS));
    CHECK_FALSE(spec->find_namespace(CLONE_NEWCGROUP));
    CHECK(spec->masked_paths.size() == 10);
    CHECK(spec->readonly_paths.back() == "/proc/sysrq-trigger");
    CHECK_FALSE(spec->seccomp);
    CHECK(spec->rootfs_propagation == 0);
}

TEST_CASE("oci spec: a docker-style config.json loads: binds, hooks, sysctl, seccomp, device rules, zero resources unset") {
    auto spec = parse_config(kDockerSpec, "/bundle");
    INFO((spec ? "" : spec.error().message));
    REQUIRE(spec.ok());
    CHECK(spec->root == "/var/lib/docker/vfs/dir/0123");
    CHECK(spec->process.user.additional_gids == std::vector<gid_t>{10});
    CHECK(spec->process.oom_score_adj == 0);
    CHECK(spec->process.capabilities->bounding & caps({CAP_SETFCAP}));
    CHECK(spec->process.capabilities->ambient == 0);
    const Mount& shm = spec->mounts[6];
    CHECK(shm.bind());
    CHECK(shm.type.empty());
    CHECK(shm.flags == (MS_BIND | MS_REC | MS_NOSUID | MS_NOEXEC | MS_NODEV));
    CHECK(shm.source == "/var/lib/docker/containers/0123/mounts/shm");
    CHECK(spec->mounts[7].propagation == (MS_PRIVATE | MS_REC));
    REQUIRE(spec->hooks.prestart.size() == 1);
    CHECK(spec->hooks.prestart[0].path == "/proc/4242/exe");
    CHECK(spec->hooks.prestart[0].args.size() == 4);
    CHECK(spec->sysctl.at("net.ipv4.ip_unprivileged_port_start") == "0");
    CHECK(spec->cgroups_path == "/docker/0123");
    const Resources& r = spec->resources;
    CHECK_FALSE(r.disable_oom_killer);
    CHECK_FALSE(r.cpu_shares);
    CHECK_FALSE(r.pids_limit);
    REQUIRE(r.devices.size() == 3 + 11);
    CHECK(r.devices[1].allow);
    CHECK(r.devices[1].type == 'c');
    CHECK(r.devices[1].minor == 5);
    CHECK(r.devices[2].minor == -1);
    REQUIRE(spec->seccomp);
    CHECK(spec->seccomp->default_action == "SCMP_ACT_ERRNO");
    CHECK(spec->seccomp->default_errno_ret == 1u);
    CHECK(spec->seccomp->architectures.size() == 3);
    REQUIRE(spec->seccomp->syscalls.size() == 2);
    CHECK(spec->seccomp->syscalls[0].names.size() == 3);
    REQUIRE(spec->seccomp->syscalls[1].args.size() == 1);
    CHECK(spec->seccomp->syscalls[1].args[0].op == "SCMP_CMP_EQ");
}

TEST_CASE("oci spec: a podman-style config.json loads: umask, cgroup namespace, annotations, pids limit, empty labels") {
    auto spec = parse_config(kPodmanSpec, "/bundle");
    INFO((spec ? "" : spec.error().message));
    REQUIRE(spec.ok());
    CHECK(spec->process.user.umask == mode_t{022});
    CHECK(spec->process.rlimits[0].resource == RLIMIT_NPROC);
    CHECK(spec->find_namespace(CLONE_NEWCGROUP));
    CHECK(spec->annotations.at("io.container.manager") == "libpod");
    CHECK(spec->resources.pids_limit == 2048);
    CHECK_FALSE(spec->resources.empty());
    CHECK(spec->mounts[5].flags == MS_BIND);
    CHECK(spec->mounts[5].source == "/run/containers/abcdef/hosts");
    CHECK(spec->seccomp->syscalls.empty());
    CHECK(spec->seccomp->default_errno_ret == 38u);
}

TEST_CASE("oci spec: load_bundle reads BUNDLE/config.json, resolves root and bind sources against the bundle, and needs the root") {
    char dir[] = "/tmp/nsfork-spec-test.XXXXXX";
    REQUIRE(mkdtemp(dir));
    {
        std::ofstream out(std::string(dir) + "/config.json");
        out << patched(kRuncSpec, R"({"mounts": [{"destination": "/data", "source": "data", "options": ["rbind", "ro"]}]})");
    }
    auto no_root = load_bundle(dir);
    std::string rootfs = std::string(dir) + "/rootfs";
    REQUIRE(mkdir(rootfs.c_str(), 0755) == 0);
    auto spec = load_bundle(std::string(dir) + "/./");
    rmdir(rootfs.c_str());
    std::string file = std::string(dir) + "/config.json";
    unlink(file.c_str());
    auto missing = load_bundle(dir);
    rmdir(dir);
    REQUIRE_FALSE(no_root.ok());
    CHECK(no_root.error().message == "config.json: root.path: " + rootfs + ": No such file or directory");
    REQUIRE(spec.ok());
    CHECK(spec->bundle == dir);
    CHECK(spec->root == std::string(dir) + "/rootfs");
    REQUIRE(spec->mounts.size() == 1);
    CHECK(spec->mounts[0].source == std::string(dir) + "/data");
    CHECK(spec->mounts[0].flags == (MS_BIND | MS_REC | MS_RDONLY));
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message == "cannot read " + file + ": No such file or directory");
}

TEST_CASE("oci spec: malformed JSON gives the parser's position") {
    auto spec = parse_config("{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {,\n}", "/bundle");
    REQUIRE_FALSE(spec.ok());
    CHECK_THAT(spec.error().message, Catch::StartsWith("config.json: parse error at line 3, column 15"));
}

TEST_CASE("oci spec: mount options: runc's flags, cleared flags, propagation, file system data, refused extensions") {
    auto spec = parse_config(patched(kRuncSpec, R"({"mounts": [
        {"destination": "/a", "type": "tmpfs", "source": "tmpfs",
         "options": ["ro", "rw", "nosuid", "suid", "dev", "exec", "sync", "dirsync", "noatime", "nodiratime",
                     "nosymfollow", "rshared", "size=1m", "mode=700"]},
        {"destination": "/b", "source": "/host", "options": ["bind", "remount", "ro", "runbindable"]}]})"),
                             "/bundle");
    REQUIRE(spec.ok());
    const Mount& a = spec->mounts[0];
    CHECK(a.flags == (MS_SYNCHRONOUS | MS_DIRSYNC | MS_NOATIME | MS_NODIRATIME | MS_NOSYMFOLLOW));
    CHECK(a.cleared == (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC));
    CHECK(a.propagation == (MS_SHARED | MS_REC));
    CHECK(a.data == "size=1m,mode=700");
    const Mount& b = spec->mounts[1];
    CHECK(b.flags == (MS_BIND | MS_REMOUNT | MS_RDONLY));
    CHECK(b.propagation == (MS_UNBINDABLE | MS_REC));
    CHECK(error_of(R"({"mounts": [{"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "tmpcopyup"]}]})") ==
          "config.json: mounts[0].options[1]: mount option \"tmpcopyup\" is not supported");
    CHECK(error_of(R"({"mounts": [{"destination": "t", "type": "tmpfs"}]})") ==
          "config.json: mounts[0].destination: must be an absolute path, not \"t\"");
    CHECK(error_of(R"({"mounts": [{"destination": "/t", "source": "x"}]})") ==
          "config.json: mounts[0].type: a mount that is not a bind needs one");
    CHECK(error_of(R"({"mounts": [{"destination": "/t", "type": "bind"}]})") ==
          "config.json: mounts[0].source: a bind mount needs one");
}

TEST_CASE("oci spec: namespaces: new or by path, unknown and unsupported types and a missing mount namespace refused") {
    auto spec = parse_config(patched(kRuncSpec, R"({"linux": {"namespaces": [
        {"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}, {"type": "uts"}]}})"),
                             "/bundle");
    REQUIRE(spec.ok());
    CHECK_FALSE(spec->find_namespace(CLONE_NEWPID));
    CHECK(spec->find_namespace(CLONE_NEWNET)->path == "/proc/1/ns/net");
    CHECK(error_appending("/linux/namespaces", R"({"type": "foo"})") ==
          "config.json: linux.namespaces[5].type: unknown namespace type \"foo\"");
    CHECK(error_appending("/linux/namespaces", R"({"type": "user"})") ==
          "config.json: linux.namespaces[5].type: user namespaces are not supported");
    CHECK(error_appending("/linux/namespaces", R"({"type": "time"})") ==
          "config.json: linux.namespaces[5].type: time namespaces are not supported");
    CHECK(error_appending("/linux/namespaces", R"({"type": "ipc"})") ==
          "config.json: linux.namespaces[5].type: duplicate namespace type \"ipc\"");
    CHECK(error_of(R"({"linux": {"namespaces": [{"type": "pid"}, {"type": "uts"}]}})") ==
          "config.json: linux.namespaces: no mount namespace: nsfork gives every container one, add {\"type\": \"mount\"}");
    CHECK(error_of(R"({"linux": {"namespaces": [{"type": "mount"}]}})") ==
          "config.json: hostname: setting the hostname needs a uts namespace (linux.namespaces)");
    CHECK(error_of(R"({"linux": {"namespaces": [{"type": "mount", "path": "/proc/1/ns/mnt"}, {"type": "uts"}]}})") ==
          "config.json: linux.namespaces[0].path: joining a mount namespace is not supported");
}

TEST_CASE("oci spec: process: capabilities, rlimits, user, env and cwd checked by field") {
    CHECK(error_appending("/process/capabilities/bounding", R"("CAP_FOO")") ==
          "config.json: process.capabilities.bounding[3]: unknown capability \"CAP_FOO\"");
    CHECK(error_of(R"({"process": {"capabilities": {"inheritable": ["CAP_CHOWN", 7]}}})") ==
          "config.json: process.capabilities.inheritable[1]: must be a string");
    CHECK(error_appending("/process/rlimits", R"({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1})") ==
          "config.json: process.rlimits[1].type: duplicate rlimit \"RLIMIT_NOFILE\"");
    CHECK(error_appending("/process/rlimits", R"({"type": "RLIMIT_FOO", "soft": 1, "hard": 1})") ==
          "config.json: process.rlimits[1].type: unknown rlimit \"RLIMIT_FOO\"");
    CHECK(error_of(R"({"process": {"user": {"uid": -1}}})") == "config.json: process.user.uid: out of range: -1");
    CHECK(error_of(R"({"process": {"user": {"gid": "0"}}})") == "config.json: process.user.gid: must be an integer");
    CHECK(error_of(R"({"process": {"env": ["A"]}})") == "config.json: process.env[0]: must be KEY=VALUE, not \"A\"");
    CHECK(error_of(R"({"process": {"cwd": "tmp"}})") == "config.json: process.cwd: must be an absolute path, not \"tmp\"");
    CHECK(error_of(R"({"process": {"cwd": null}})") == "config.json: process.cwd: missing");
    CHECK(error_of(R"({"process": {"args": []}})") == "config.json: process.args: must not be empty");
    CHECK(error_of(R"({"process": {"oomScoreAdj": 1001}})") == "config.json: process.oomScoreAdj: must be between -1000 and 1000");
    CHECK(error_of(R"({"root": null})") == "config.json: root: missing");
    CHECK(error_of(R"({"process": {"consoleSize": {"height": 24, "width": 80}, "user": {"umask": 63}}})").empty());
}

TEST_CASE("oci spec: a capability the running kernel lacks is refused, naming its field") {
    std::ifstream in("/proc/sys/kernel/cap_last_cap");
    int last = 0;
    REQUIRE(in >> last);
    if (last >= CAP_LAST_CAP) {
        SUCCEED("this kernel has every capability the headers name");
        return;
    }
    CHECK_THAT(error_of(R"({"process": {"capabilities": {"ambient": ["CAP_CHECKPOINT_RESTORE"]}}})"),
               Catch::EndsWith("is not supported by the running kernel"));
}

TEST_CASE("oci spec: fields nsfork cannot apply are refused by their path, empty ones are not") {
    struct Case {
        const char* patch;
        const char* field;
    };
    const Case refused[] = {
        {R"({"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}})", "linux.uidMappings"},
        {R"({"linux": {"gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}})", "linux.gidMappings"},
        {R"({"linux": {"intelRdt": {"closID": "x"}}})", "linux.intelRdt"},
        {R"({"linux": {"personality": {"domain": "LINUX32"}}})", "linux.personality"},
        {R"({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}})", "linux.mountLabel"},
        {R"({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock"}}})", "linux.seccomp.listenerPath"},
        {R"({"linux": {"resources": {"blockIO": {"weight": 10}}}})", "linux.resources.blockIO"},
        {R"({"linux": {"resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}}})", "linux.resources.hugepageLimits"},
        {R"({"linux": {"resources": {"rdma": {"mlx5_1": {"hcaHandles": 3}}}}})", "linux.resources.rdma"},
        {R"({"linux": {"resources": {"network": {"classID": 1}}}})", "linux.resources.network"},
        {R"({"linux": {"resources": {"memory": {"kernel": 1000000}}}})", "linux.resources.memory.kernel"},
        {R"({"linux": {"resources": {"cpu": {"realtimeRuntime": 1000}}}})", "linux.resources.cpu.realtimeRuntime"},
        {R"({"process": {"apparmorProfile": "docker-default"}})", "process.apparmorProfile"},
        {R"({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}})", "process.selinuxLabel"},
        {R"({"process": {"ioPriority": {"class": "IOPRIO_CLASS_IDLE"}}})", "process.ioPriority"},
        {R"({"process": {"scheduler": {"policy": "SCHED_IDLE"}}})", "process.scheduler"},
        {R"({"hooks": {"createContainer": [{"path": "/bin/true"}]}})", "hooks.createContainer"},
        {R"({"hooks": {"startContainer": [{"path": "/bin/true"}]}})", "hooks.startContainer"},
        {R"({"windows": {"layerFolders": []}})", "windows"},
        {R"({"solaris": {}})", "solaris"},
        {R"({"vm": {"kernel": {"path": "/vmlinuz"}}})", "vm"},
    };
    for (const Case& c : refused) {
        INFO(c.patch);
        CHECK_THAT(error_of(c.patch), Catch::StartsWith(std::string("config.json: ") + c.field + ": "));
    }
    CHECK(error_of(R"({"process": {"apparmorProfile": "", "selinuxLabel": ""}, "linux": {"mountLabel": "",
        "uidMappings": [], "resources": {"blockIO": {"weight": 0}, "hugepageLimits": []}},
        "hooks": {"createContainer": []}, "someoneElsesField": {"x": 1}})")
              .empty());
}

TEST_CASE("oci spec: resources convert as runc reads them") {
    auto spec = parse_config(patched(kRuncSpec, R"({"linux": {"resources": {
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": -1, "swappiness": 10, "disableOOMKiller": true},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": -1},
        "unified": {"memory.high": "50000000"}}}})"),
                             "/bundle");
    REQUIRE(spec.ok());
    const Resources& r = spec->resources;
    CHECK(r.memory_limit == 67108864);
    CHECK(r.memory_reservation == 33554432);
    CHECK(r.memory_swap == -1);
    CHECK(r.memory_swappiness == 10u);
    CHECK(r.disable_oom_killer == true);
    CHECK(r.cpu_shares == 512u);
    CHECK(r.cpu_quota == 50000);
    CHECK(r.cpu_period == 100000u);
    CHECK(r.cpuset_cpus == "0");
    CHECK(r.pids_limit == -1);
    CHECK(r.unified.at("memory.high") == "50000000");
    CHECK(error_of(R"({"linux": {"resources": {"memory": {"swappiness": 101}}}})") ==
          "config.json: linux.resources.memory.swappiness: must be between 0 and 100");
    CHECK(error_of(R"({"linux": {"resources": {"devices": [{"allow": true, "access": "rwx"}]}}})") ==
          "config.json: linux.resources.devices[0].access: must be a combination of r, w and m, not \"rwx\"");
    CHECK(error_of(R"({"linux": {"resources": {"memory": {"swappiness": -1}}}})").empty());
}

TEST_CASE("oci spec: devices, rootfs propagation, domainname and hooks convert") {
    auto spec = parse_config(patched(kRuncSpec, R"({"domainname": "example.org",
        "hooks": {"poststop": [{"path": "/bin/echo", "args": ["echo", "bye"], "env": ["A=1"], "timeout": 5}]},
        "linux": {"rootfsPropagation": "rslave", "devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
            {"path": "/dev/ttyX", "type": "u", "major": 4, "minor": 64},
            {"path": "/dev/fifo", "type": "p"},
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]}})"),
                             "/bundle");
    REQUIRE(spec.ok());
    CHECK(spec->domainname == "example.org");
    CHECK(spec->rootfs_propagation == (MS_SLAVE | MS_REC));
    REQUIRE(spec->devices.size() == 4);
    CHECK(spec->devices[0].major == 10);
    CHECK(spec->devices[0].file_mode == 0666);
    CHECK(spec->devices[1].type == 'c');
    CHECK(spec->devices[2].type == 'p');
    // runc's default rules follow the config's, but none for a path linux.devices gives itself.
    const auto& rules = spec->resources.devices;
    REQUIRE(rules.size() == 11);
    CHECK(rules[1].allow);
    CHECK(rules[1].type == 'c');
    CHECK(rules[1].access == "m");
    CHECK(std::none_of(rules.begin(), rules.end(), [](const DeviceRule& r) { return r.major == 1 && r.minor == 3; }));
    CHECK(std::any_of(rules.begin(), rules.end(), [](const DeviceRule& r) { return r.major == 1 && r.minor == 5; }));
    REQUIRE(spec->hooks.poststop.size() == 1);
    CHECK(spec->hooks.poststop[0].timeout == 5);
    CHECK(error_of(R"({"linux": {"devices": [{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}]}})") ==
          "config.json: linux.devices[0].type: unknown device type \"q\"");
    CHECK(error_of(R"({"linux": {"devices": [{"path": "/dev/x", "type": "c"}]}})") ==
          "config.json: linux.devices[0].major: missing");
    CHECK(error_of(R"({"linux": {"rootfsPropagation": "sideways"}})") ==
          "config.json: linux.rootfsPropagation: unknown propagation \"sideways\"");
    CHECK(error_of(R"({"hooks": {"prestart": [{"path": "true"}]}})") ==
          "config.json: hooks.prestart[0].path: must be an absolute path, not \"true\"");
}

TEST_CASE("oci spec: parse_process reads an exec's --process file and names it in errors") {
    auto p = parse_process(R"({"args": ["/bin/sh"], "cwd": "/tmp", "env": ["A=1"], "terminal": true,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 6]}, "capabilities": {"bounding": ["CAP_KILL"]}})",
                           "process.json");
    REQUIRE(p.ok());
    CHECK(p->cwd == "/tmp");
    CHECK(p->user.uid == 1000);
    CHECK(p->user.additional_gids.size() == 2);
    CHECK(p->capabilities->bounding == caps({CAP_KILL}));
    auto bad = parse_process(R"({"args": ["/bin/sh"], "cwd": "/", "rlimits": [{"type": "RLIMIT_CPU", "soft": 1}]})",
                             "process.json");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message == "process.json: rlimits[0].hard: missing");
    auto garbage = parse_process("[1, 2", "process.json");
    REQUIRE_FALSE(garbage.ok());
    CHECK_THAT(garbage.error().message, Catch::StartsWith("process.json: parse error at line 1"));
}

TEST_CASE("oci spec: a sysctl is accepted only in a namespace of the container's own, as runc checks") {
    CHECK(error_of(R"({"linux": {"sysctl": {"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmax": "1000",
        "fs.mqueue.msg_max": "20", "kernel.domainname": "x"}}})")
              .empty());
    CHECK(error_of(R"({"linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}],
        "sysctl": {"net.ipv4.ip_forward": "1"}}})") ==
          "config.json: linux.sysctl[\"net.ipv4.ip_forward\"]: not allowed in the host's network namespace");
    CHECK(error_of(R"({"linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/proc/self/ns/net"}],
        "sysctl": {"net.ipv4.ip_forward": "1"}}})") ==
          "config.json: linux.sysctl[\"net.ipv4.ip_forward\"]: not allowed in the host's network namespace");
    CHECK(error_of(R"({"linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}], "sysctl": {"kernel.sem": "1 2 3 4"}}})") ==
          "config.json: linux.sysctl[\"kernel.sem\"]: not allowed in the host's ipc namespace");
    CHECK(error_of(R"({"linux": {"sysctl": {"kernel.hostname": "x"}}})") ==
          "config.json: linux.sysctl[\"kernel.hostname\"]: conflicts with the \"hostname\" field");
    CHECK(error_of(R"({"linux": {"sysctl": {"vm.swappiness": "1"}}})") ==
          "config.json: linux.sysctl[\"vm.swappiness\"]: not in a separate kernel namespace");
    CHECK(error_of(R"({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]}})") ==
          "config.json: process.rlimits[0].soft: above the hard limit");
}

TEST_CASE("oci spec: the config.json podman 4.3 sent loads, and its seccomp profile compiles") {
    // tests/oci/profiles/podman-config.json: what podman 4.3.1 (Debian 12, cgroup_manager
    // "cgroupfs") passed to its runtime for `podman run --rm --network=none --rootfs D /bin/true`.
    auto path = std::filesystem::path(__FILE__).parent_path().parent_path() / "tests/oci/profiles";
    std::ifstream in(path / "podman-config.json");
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    auto spec = parse_config(text.str(), "/bundle");
    INFO((spec ? "" : spec.error().message));
    REQUIRE(spec.ok());
    CHECK(spec->process.user.umask == mode_t{022});
    CHECK(spec->mounts.size() == 10);
    CHECK(spec->mounts[5].destination == "/dev/shm");
    CHECK(spec->mounts[5].flags == (MS_BIND | MS_NOSUID | MS_NOEXEC | MS_NODEV));
    CHECK(spec->mounts[5].propagation == (MS_PRIVATE | MS_REC));
    CHECK(spec->resources.pids_limit == 2048);
    CHECK(spec->cgroups_path.starts_with("/libpod_parent/libpod-"));
    REQUIRE(spec->seccomp);
    auto program = compile_seccomp(*spec->seccomp);
    INFO((program ? "" : program.error().message));
    CHECK(program.ok());
}

TEST_CASE("oci spec: the config.json dockerd 20.10 sent loads with its limits, and its seccomp profile compiles") {
    // tests/oci/profiles/docker-config.json: what dockerd 20.10.24 (Debian 12) passed through
    // containerd to its runtime for `docker run --rm --network=none --memory 64m --cpus 0.5
    // --pids-limit 100 --device /dev/fuse busybox /bin/true`.
    auto path = std::filesystem::path(__FILE__).parent_path().parent_path() / "tests/oci/profiles";
    std::ifstream in(path / "docker-config.json");
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    auto spec = parse_config(text.str(), "/bundle");
    INFO((spec ? "" : spec.error().message));
    REQUIRE(spec.ok());
    CHECK(spec->process.user.additional_gids == std::vector<gid_t>{0});
    REQUIRE(spec->hooks.prestart.size() == 1);
    CHECK(spec->hooks.prestart[0].args[0] == "libnetwork-setkey");
    CHECK(spec->sysctl.count("net.ipv4.ping_group_range") == 1);
    const Resources& r = spec->resources;
    CHECK(r.memory_limit == 64 << 20);
    CHECK(r.memory_swap == 128 << 20);
    CHECK_FALSE(r.disable_oom_killer);
    CHECK_FALSE(r.cpu_shares);
    CHECK(r.cpu_quota == 50000);
    CHECK(r.cpu_period == 100000u);
    CHECK(r.pids_limit == 100);
    // Its nine rules (deny all, the standard nodes, /dev/fuse denied then allowed), then runc's
    // defaults.
    CHECK(r.devices.size() == 9 + 11);
    REQUIRE(spec->devices.size() == 1);
    CHECK(spec->devices[0].file_mode == 0600);
    REQUIRE(spec->seccomp);
    auto program = compile_seccomp(*spec->seccomp);
    INFO((program ? "" : program.error().message));
    CHECK(program.ok());
}
