// A bundle's config.json (opencontainers/runtime-spec 1.0–1.1), as nsfork-oci applies it: every
// field it honours has a place here, already checked and converted (names to numbers, options
// to mount flags, paths resolved against the bundle); every field it cannot apply made
// load_bundle fail with an error naming it, as runtime-spec requires — nothing is dropped
// silently. Parsed with nlohmann::json in spec.cpp; nothing else reads the JSON.
#pragma once

#include "nsfork/error.hpp"

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nsfork::oci {

// A capability set as a bit mask: bit N is capability N (CAP_CHOWN = 0 ...).
using CapabilityMask = std::uint64_t;

struct Capabilities {
    CapabilityMask bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
};

struct Rlimit {
    int resource = 0;        // RLIMIT_*
    std::string name;        // "RLIMIT_NOFILE", for errors
    std::uint64_t soft = 0, hard = 0;
};

struct User {
    uid_t uid = 0;
    gid_t gid = 0;
    std::optional<mode_t> umask;         // absent: 0022, as runc
    std::vector<gid_t> additional_gids;  // exactly these supplementary groups (empty: none)
};

struct ConsoleSize {
    unsigned short height = 0, width = 0;
};

// process (config.json) or an exec's --process file.
struct Process {
    bool terminal = false;
    std::optional<ConsoleSize> console_size;
    User user;
    std::vector<std::string> args;       // non-empty
    std::vector<std::string> env;        // "K=V"
    std::string cwd = "/";               // absolute, inside the container
    std::optional<Capabilities> capabilities; // absent: the caps of root are kept, as runc
    std::vector<Rlimit> rlimits;
    bool no_new_privileges = false;
    std::optional<int> oom_score_adj;
};

// One entry of `mounts`, its options split into what mount(2) takes.
struct Mount {
    std::string field;                   // "mounts[3]", for errors
    std::string destination;             // absolute, inside the root filesystem
    std::string type;                    // "" for a bind
    std::string source;                  // a bind's: absolute, resolved against the bundle
    unsigned long flags = 0;             // MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_*ATIME, ...
                                         // (MS_BIND, MS_REC for bind and rbind)
    unsigned long cleared = 0;           // flags an option turned off ("rw", "suid", "dev", ...):
                                         // a bind's remount keeps the source's otherwise
    unsigned long propagation = 0;       // MS_SHARED|MS_SLAVE|MS_PRIVATE|MS_UNBINDABLE (| MS_REC), 0: none
    std::string data;                    // the filesystem's own options, comma-joined ("mode=755")
    bool bind() const;                   // flags & MS_BIND
};

// linux.devices, and the default nodes every container gets (runtime-spec "Default Devices").
struct Device {
    std::string path;                    // absolute, inside the container ("/dev/fuse")
    char type = 'c';                     // 'c', 'b', 'u' (= 'c') or 'p'
    std::int64_t major = 0, minor = 0;
    mode_t file_mode = 0666;
    uid_t uid = 0;
    gid_t gid = 0;
};

// linux.resources.devices: the device cgroup's allow/deny list, in order — followed, as runc
// does, by its default allow rules (mknod, /dev/null, zero, full, random, urandom, tty, ptmx,
// pts, tun) when the config has rules of its own.
struct DeviceRule {
    bool allow = false;
    char type = 'a';                     // 'a', 'c' or 'b'
    std::int64_t major = -1, minor = -1; // -1: any (absent)
    std::string access = "rwm";
};

struct Resources {
    std::optional<std::int64_t> memory_limit, memory_reservation, memory_swap;
    std::optional<std::uint64_t> memory_swappiness;
    std::optional<bool> disable_oom_killer;
    std::optional<std::uint64_t> cpu_shares;
    std::optional<std::int64_t> cpu_quota;
    std::optional<std::uint64_t> cpu_period;
    std::string cpuset_cpus, cpuset_mems;
    std::optional<std::int64_t> pids_limit;
    std::vector<DeviceRule> devices;
    std::map<std::string, std::string> unified; // cgroup v2 files written as given
    bool empty() const;
};

// One namespace of linux.namespaces.
struct Namespace {
    int type = 0;                        // CLONE_NEWPID, CLONE_NEWNET, ...
    std::string path;                    // "": a new one; else join this one
};

// linux.seccomp, names resolved to numbers by seccomp.cpp (libseccomp) at compile time.
struct SeccompArg {
    unsigned index = 0;
    std::uint64_t value = 0, value_two = 0;
    std::string op;                      // "SCMP_CMP_EQ", ...
};
struct SeccompRule {
    std::vector<std::string> names;
    std::string action;                  // "SCMP_ACT_ERRNO", ...
    std::optional<unsigned> errno_ret;
    std::vector<SeccompArg> args;
};
struct Seccomp {
    std::string default_action;
    std::optional<unsigned> default_errno_ret;
    std::vector<std::string> architectures; // "SCMP_ARCH_X86_64", ...
    std::vector<std::string> flags;         // "SECCOMP_FILTER_FLAG_LOG", ...
    std::vector<SeccompRule> syscalls;
};

struct Hook {
    std::string path;                    // absolute
    std::vector<std::string> args;       // args[0] included, as runtime-spec has it
    std::vector<std::string> env;
    std::optional<int> timeout;          // seconds
};
struct Hooks {
    std::vector<Hook> prestart, create_runtime, poststart, poststop;
};

struct Spec {
    std::string oci_version;
    std::string bundle;                  // absolute
    std::string root;                    // root.path, absolute (resolved against the bundle)
    bool root_readonly = false;
    Process process;
    std::string hostname;                // needs a UTS namespace entry when set
    std::string domainname;              // likewise (setdomainname)
    std::vector<Mount> mounts;
    Hooks hooks;
    std::map<std::string, std::string> annotations;
    // linux
    std::vector<Namespace> namespaces;   // as listed; no CLONE_NEWPID entry: the host's
    std::vector<Device> devices;         // linux.devices (the defaults are added by setup)
    std::string cgroups_path;            // "": nsfork-oci names the leaf after the container
    Resources resources;
    std::map<std::string, std::string> sysctl;
    std::optional<Seccomp> seccomp;
    unsigned long rootfs_propagation = 0; // MS_* of linux.rootfsPropagation; 0: MS_SLAVE|MS_REC
    std::vector<std::string> masked_paths, readonly_paths;

    const Namespace* find_namespace(int type) const;
};

// Reads BUNDLE/config.json and checks that its root directory exists. Errors name the file and the field: "config.json: mounts[2].options:
// unknown option \"foo\"", "config.json: linux.uidMappings: user namespaces are not supported".
// `config_text`, when given, gets the file's text (saved with the state).
Result<Spec> load_bundle(const std::string& bundle, std::string* config_text = nullptr);
// The same from text (tests); `bundle` resolves relative paths.
Result<Spec> parse_config(std::string_view json, const std::string& bundle);
// An exec's --process file (a runtime-spec process object); errors name `what` ("process.json").
Result<Process> parse_process(std::string_view json, std::string_view what);

// What load_bundle takes, for `nsfork-oci features`: every capability name it knows, in the
// kernel's order (whether the running kernel has one is checked as a config is loaded), and
// every mount option, sorted.
std::vector<std::string> known_capabilities();
std::vector<std::string> known_mount_options();

} // namespace nsfork::oci
