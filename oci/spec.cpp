// config.json read with nlohmann::json and checked field by field. A field the runtime cannot
// apply is refused with its JSON path; a field it does not know is ignored (runtime-spec:
// "implementations that are reading/processing this configuration file MUST NOT generate an error
// if they encounter an unknown property"). Inside this file a bad field throws Invalid, which
// parse_config and parse_process turn into an Error at the boundary.
#include "oci/spec.hpp"

#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

namespace nsfork::oci {

bool Mount::bind() const { return (flags & MS_BIND) != 0; }

bool Resources::empty() const {
    return !memory_limit && !memory_reservation && !memory_swap && !memory_swappiness &&
           !disable_oom_killer && !cpu_shares && !cpu_quota && !cpu_period && cpuset_cpus.empty() &&
           cpuset_mems.empty() && !pids_limit && devices.empty() && unified.empty();
}

const Namespace* Spec::find_namespace(int type) const {
    for (const Namespace& ns : namespaces)
        if (ns.type == type) return &ns;
    return nullptr;
}

namespace {

using nlohmann::json;

struct Invalid {
    std::string field, what;
};

std::string json_quoted(std::string_view s) { return json(s).dump(); }

bool says_something(const json& v);

// A JSON value and its path in the document ("mounts[2].options[1]"), which every error names.
class Node {
public:
    Node(const json& value, std::string path) : v_(&value), path_(std::move(path)) {}

    const std::string& path() const { return path_; }
    const json& json_value() const { return *v_; }
    [[noreturn]] void fail(std::string what) const { throw Invalid{path_, std::move(what)}; }

    // A member of this object; absent (or null, as Go's encoding/json reads it) gives nullopt.
    std::optional<Node> get(std::string_view key) const {
        const json& obj = object();
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return std::nullopt;
        return Node(*it, child_path(key));
    }
    Node need(std::string_view key) const {
        if (auto n = get(key)) return *n;
        fail_member(key, "missing");
    }
    [[noreturn]] void fail_member(std::string_view key, std::string what) const {
        throw Invalid{child_path(key), std::move(what)};
    }
    // The same for a key of a map (sysctl, annotations): `linux.sysctl["net.ipv4.ip_forward"]`.
    [[noreturn]] void fail_key(std::string_view key, std::string what) const {
        throw Invalid{path_ + "[" + json_quoted(key) + "]", std::move(what)};
    }
    // True when the member is there with a value that says something: not null, false, 0, "",
    // nor an array or object holding nothing else (what Go's omitempty would leave out: docker
    // sends "blockIO": {"weight": 0} for no limit at all).
    bool has_value(std::string_view key) const {
        auto n = get(key);
        return n && says_something(n->json_value());
    }

    const json& object() const {
        if (!v_->is_object()) fail("must be an object");
        return *v_;
    }
    std::vector<Node> items() const {
        if (!v_->is_array()) fail("must be an array");
        std::vector<Node> out;
        for (std::size_t i = 0; i < v_->size(); ++i)
            out.emplace_back((*v_)[i], path_ + "[" + std::to_string(i) + "]");
        return out;
    }
    std::string str() const {
        if (!v_->is_string()) fail("must be a string");
        return v_->get<std::string>();
    }
    bool boolean() const {
        if (!v_->is_boolean()) fail("must be true or false");
        return v_->get<bool>();
    }
    template <class Int>
    Int integer() const {
        if (v_->is_number_unsigned()) {
            auto v = v_->get<std::uint64_t>();
            if (!std::in_range<Int>(v)) fail("out of range: " + std::to_string(v));
            return static_cast<Int>(v);
        }
        if (v_->is_number_integer()) {
            auto v = v_->get<std::int64_t>();
            if (!std::in_range<Int>(v)) fail("out of range: " + std::to_string(v));
            return static_cast<Int>(v);
        }
        fail("must be an integer");
    }
    std::vector<std::string> strings() const {
        std::vector<std::string> out;
        for (const Node& n : items()) out.push_back(n.str());
        return out;
    }
    std::map<std::string, std::string> string_map() const {
        std::map<std::string, std::string> out;
        for (const auto& [key, value] : object().items()) {
            if (!value.is_string()) fail_key(key, "must be a string");
            out.emplace(key, value.get<std::string>());
        }
        return out;
    }

private:
    std::string child_path(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }

    const json* v_;
    std::string path_;
};

bool says_something(const json& v) {
    if (v.is_null()) return false;
    if (v.is_string()) return !v.get_ref<const std::string&>().empty();
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number()) return v != 0;
    for (const json& item : v)
        if (says_something(item)) return true;
    return false;
}

template <class Int>
std::optional<Int> optional_integer(const Node& obj, std::string_view key) {
    if (auto n = obj.get(key)) return n->integer<Int>();
    return std::nullopt;
}

std::string optional_string(const Node& obj, std::string_view key) {
    if (auto n = obj.get(key)) return n->str();
    return {};
}

bool optional_bool(const Node& obj, std::string_view key) {
    if (auto n = obj.get(key)) return n->boolean();
    return false;
}

std::vector<std::string> optional_strings(const Node& obj, std::string_view key) {
    if (auto n = obj.get(key)) return n->strings();
    return {};
}

// runtime-spec: "a property the runtime cannot apply MUST be an error".
void refuse_if_set(const Node& obj, std::string_view key, std::string_view why) {
    if (obj.has_value(key)) obj.need(key).fail(std::string(why));
}

std::string absolute_path(const Node& n) {
    std::string p = n.str();
    if (p.empty() || p[0] != '/') n.fail("must be an absolute path, not " + json_quoted(p));
    return p;
}

// A host path of the bundle (root.path, a bind's source): relative ones are the bundle's.
std::string bundle_path(const std::string& bundle, const std::string& p) {
    if (!p.empty() && p[0] == '/') return p;
    return (std::filesystem::path(bundle) / p).lexically_normal().string();
}

// ---- process ----

struct NamedNumber {
    const char* name;
    int number;
};

#define NSFORK_CAP(name) {#name, name}
constexpr NamedNumber kCapabilities[] = {
    NSFORK_CAP(CAP_CHOWN), NSFORK_CAP(CAP_DAC_OVERRIDE), NSFORK_CAP(CAP_DAC_READ_SEARCH),
    NSFORK_CAP(CAP_FOWNER), NSFORK_CAP(CAP_FSETID), NSFORK_CAP(CAP_KILL), NSFORK_CAP(CAP_SETGID),
    NSFORK_CAP(CAP_SETUID), NSFORK_CAP(CAP_SETPCAP), NSFORK_CAP(CAP_LINUX_IMMUTABLE),
    NSFORK_CAP(CAP_NET_BIND_SERVICE), NSFORK_CAP(CAP_NET_BROADCAST), NSFORK_CAP(CAP_NET_ADMIN),
    NSFORK_CAP(CAP_NET_RAW), NSFORK_CAP(CAP_IPC_LOCK), NSFORK_CAP(CAP_IPC_OWNER),
    NSFORK_CAP(CAP_SYS_MODULE), NSFORK_CAP(CAP_SYS_RAWIO), NSFORK_CAP(CAP_SYS_CHROOT),
    NSFORK_CAP(CAP_SYS_PTRACE), NSFORK_CAP(CAP_SYS_PACCT), NSFORK_CAP(CAP_SYS_ADMIN),
    NSFORK_CAP(CAP_SYS_BOOT), NSFORK_CAP(CAP_SYS_NICE), NSFORK_CAP(CAP_SYS_RESOURCE),
    NSFORK_CAP(CAP_SYS_TIME), NSFORK_CAP(CAP_SYS_TTY_CONFIG), NSFORK_CAP(CAP_MKNOD),
    NSFORK_CAP(CAP_LEASE), NSFORK_CAP(CAP_AUDIT_WRITE), NSFORK_CAP(CAP_AUDIT_CONTROL),
    NSFORK_CAP(CAP_SETFCAP), NSFORK_CAP(CAP_MAC_OVERRIDE), NSFORK_CAP(CAP_MAC_ADMIN),
    NSFORK_CAP(CAP_SYSLOG), NSFORK_CAP(CAP_WAKE_ALARM), NSFORK_CAP(CAP_BLOCK_SUSPEND),
    NSFORK_CAP(CAP_AUDIT_READ), NSFORK_CAP(CAP_PERFMON), NSFORK_CAP(CAP_BPF),
    NSFORK_CAP(CAP_CHECKPOINT_RESTORE),
};
#undef NSFORK_CAP

#define NSFORK_RLIMIT(name) {#name, name}
constexpr NamedNumber kRlimits[] = {
    NSFORK_RLIMIT(RLIMIT_AS), NSFORK_RLIMIT(RLIMIT_CORE), NSFORK_RLIMIT(RLIMIT_CPU),
    NSFORK_RLIMIT(RLIMIT_DATA), NSFORK_RLIMIT(RLIMIT_FSIZE), NSFORK_RLIMIT(RLIMIT_LOCKS),
    NSFORK_RLIMIT(RLIMIT_MEMLOCK), NSFORK_RLIMIT(RLIMIT_MSGQUEUE), NSFORK_RLIMIT(RLIMIT_NICE),
    NSFORK_RLIMIT(RLIMIT_NOFILE), NSFORK_RLIMIT(RLIMIT_NPROC), NSFORK_RLIMIT(RLIMIT_RSS),
    NSFORK_RLIMIT(RLIMIT_RTPRIO), NSFORK_RLIMIT(RLIMIT_RTTIME), NSFORK_RLIMIT(RLIMIT_SIGPENDING),
    NSFORK_RLIMIT(RLIMIT_STACK),
};
#undef NSFORK_RLIMIT

template <std::size_t N>
std::optional<int> lookup(const NamedNumber (&table)[N], std::string_view name) {
    for (const NamedNumber& e : table)
        if (name == e.name) return e.number;
    return std::nullopt;
}

// The highest capability the running kernel knows; a newer name would be silently meaningless.
int kernel_cap_last_cap() {
    std::ifstream in("/proc/sys/kernel/cap_last_cap");
    int last = CAP_LAST_CAP;
    if (!(in >> last)) return CAP_LAST_CAP;
    return last;
}

CapabilityMask capability_set(const Node& list, int cap_last) {
    CapabilityMask mask = 0;
    for (const Node& n : list.items()) {
        std::string name = n.str();
        auto cap = lookup(kCapabilities, name);
        if (!cap) n.fail("unknown capability " + json_quoted(name));
        if (*cap > cap_last) n.fail(json_quoted(name) + " is not supported by the running kernel");
        mask |= CapabilityMask{1} << *cap;
    }
    return mask;
}

Capabilities capabilities(const Node& n) {
    int cap_last = kernel_cap_last_cap();
    Capabilities caps;
    std::pair<const char*, CapabilityMask*> sets[] = {
        {"bounding", &caps.bounding},   {"effective", &caps.effective}, {"inheritable", &caps.inheritable},
        {"permitted", &caps.permitted}, {"ambient", &caps.ambient},
    };
    for (auto [key, mask] : sets)
        if (auto list = n.get(key)) *mask = capability_set(*list, cap_last);
    return caps;
}

std::vector<Rlimit> rlimits(const Node& list) {
    std::vector<Rlimit> out;
    std::set<int> seen;
    for (const Node& n : list.items()) {
        Node type = n.need("type");
        Rlimit r;
        r.name = type.str();
        auto resource = lookup(kRlimits, r.name);
        if (!resource) type.fail("unknown rlimit " + json_quoted(r.name));
        r.resource = *resource;
        // runtime-spec: "the runtime MUST generate an error for any duplicated type".
        if (!seen.insert(r.resource).second) type.fail("duplicate rlimit " + json_quoted(r.name));
        r.soft = n.need("soft").integer<std::uint64_t>();
        r.hard = n.need("hard").integer<std::uint64_t>();
        if (r.soft > r.hard) n.fail_member("soft", "above the hard limit");
        out.push_back(std::move(r));
    }
    return out;
}

User user(const Node& n) {
    User u;
    u.uid = optional_integer<uid_t>(n, "uid").value_or(0);
    u.gid = optional_integer<gid_t>(n, "gid").value_or(0);
    if (auto umask = n.get("umask")) {
        auto value = umask->integer<mode_t>();
        if (value > 0777) umask->fail("must be a mode, at most 0777");
        u.umask = value;
    }
    if (auto gids = n.get("additionalGids"))
        for (const Node& g : gids->items()) u.additional_gids.push_back(g.integer<gid_t>());
    return u;
}

Process process(const Node& n) {
    n.object();
    Process p;
    p.terminal = optional_bool(n, "terminal");
    if (auto size = n.get("consoleSize"))
        p.console_size = ConsoleSize{size->need("height").integer<unsigned short>(),
                                     size->need("width").integer<unsigned short>()};
    if (auto u = n.get("user")) p.user = user(*u);
    Node args = n.need("args");
    p.args = args.strings();
    if (p.args.empty()) args.fail("must not be empty");
    if (auto env = n.get("env")) {
        for (const Node& e : env->items()) {
            std::string var = e.str();
            if (var.find('=') == std::string::npos) e.fail("must be KEY=VALUE, not " + json_quoted(var));
            p.env.push_back(std::move(var));
        }
    }
    p.cwd = absolute_path(n.need("cwd"));
    if (auto caps = n.get("capabilities")) p.capabilities = capabilities(*caps);
    if (auto limits = n.get("rlimits")) p.rlimits = rlimits(*limits);
    p.no_new_privileges = optional_bool(n, "noNewPrivileges");
    if (auto adj = n.get("oomScoreAdj")) {
        int value = adj->integer<int>();
        if (value < -1000 || value > 1000) adj->fail("must be between -1000 and 1000");
        p.oom_score_adj = value;
    }
    refuse_if_set(n, "apparmorProfile", "AppArmor is not supported");
    refuse_if_set(n, "selinuxLabel", "SELinux is not supported");
    refuse_if_set(n, "ioPriority", "I/O priorities are not supported");
    refuse_if_set(n, "scheduler", "scheduling policies are not supported");
    refuse_if_set(n, "execCPUAffinity", "CPU affinity is not supported");
    return p;
}

// ---- mounts ----

struct MountOption {
    const char* name;
    bool clear;           // turns the flag off ("rw" clears MS_RDONLY)
    unsigned long flag;
};

// runc's vocabulary (libcontainer/specconv parseMountOptions).
constexpr MountOption kMountFlags[] = {
    {"defaults", false, 0},
    {"ro", false, MS_RDONLY},           {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},       {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},         {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},       {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},       {"nomand", true, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},     {"atime", true, MS_NOATIME},
    {"nodiratime", false, MS_NODIRATIME}, {"diratime", true, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},   {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME}, {"nostrictatime", true, MS_STRICTATIME},
    {"lazytime", false, MS_LAZYTIME},   {"nolazytime", true, MS_LAZYTIME},
    {"iversion", false, MS_I_VERSION},  {"noiversion", true, MS_I_VERSION},
    {"silent", false, MS_SILENT},       {"loud", true, MS_SILENT},
    {"nosymfollow", false, MS_NOSYMFOLLOW},
    {"bind", false, MS_BIND},           {"rbind", false, MS_BIND | MS_REC},
};

constexpr NamedNumber kPropagation[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

// Options runc or crun give a meaning of their own that nsfork does not implement: passed on as
// file system data they would fail obscurely, or worse, be taken by the file system.
constexpr const char* kUnsupportedMountOptions[] = {
    "tmpcopyup", "idmap", "ridmap", "copy-symlink", "src-nofollow", "dest-nofollow",
    "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnodiratime",
    "rdiratime", "rrelatime", "rnorelatime", "rnoatime", "ratime", "rstrictatime",
    "rnostrictatime", "rnosymfollow", "rsymfollow",
};

void apply_mount_option(const Node& opt, Mount& m) {
    std::string name = opt.str();
    for (const MountOption& o : kMountFlags) {
        if (name != o.name) continue;
        if (o.clear) {
            m.flags &= ~o.flag;
            m.cleared |= o.flag;
        } else {
            m.flags |= o.flag;
            m.cleared &= ~o.flag;
        }
        return;
    }
    if (auto p = lookup(kPropagation, name)) {
        m.propagation = static_cast<unsigned long>(*p);
        return;
    }
    for (const char* unsupported : kUnsupportedMountOptions)
        if (name == unsupported) opt.fail("mount option " + json_quoted(name) + " is not supported");
    if (name.empty()) opt.fail("empty mount option");
    if (!m.data.empty()) m.data += ',';
    m.data += name;
}

Mount mount(const Node& n, const std::string& bundle) {
    n.object();
    Mount m;
    m.field = n.path();
    m.destination = absolute_path(n.need("destination"));
    m.type = optional_string(n, "type");
    m.source = optional_string(n, "source");
    if (auto options = n.get("options"))
        for (const Node& opt : options->items()) apply_mount_option(opt, m);
    // Any type given with bind or rbind means nothing (runc), and type "bind" alone is a bind (crun).
    if (m.type == "bind") m.flags |= MS_BIND;
    if (m.bind()) {
        m.type.clear();
        if (m.source.empty()) n.fail_member("source", "a bind mount needs one");
        m.source = bundle_path(bundle, m.source);
    } else if (m.type.empty()) {
        n.fail_member("type", "a mount that is not a bind needs one");
    }
    refuse_if_set(n, "uidMappings", "id-mapped mounts are not supported");
    refuse_if_set(n, "gidMappings", "id-mapped mounts are not supported");
    return m;
}

// ---- linux ----

std::vector<Namespace> namespaces(const Node& list) {
    static constexpr NamedNumber kTypes[] = {
        {"pid", CLONE_NEWPID},   {"network", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC},
        {"uts", CLONE_NEWUTS},   {"mount", CLONE_NEWNS},    {"cgroup", CLONE_NEWCGROUP},
    };
    std::vector<Namespace> out;
    for (const Node& n : list.items()) {
        Node type = n.need("type");
        std::string name = type.str();
        if (name == "user") type.fail("user namespaces are not supported");
        if (name == "time") type.fail("time namespaces are not supported");
        auto flag = lookup(kTypes, name);
        if (!flag) type.fail("unknown namespace type " + json_quoted(name));
        for (const Namespace& seen : out)
            if (seen.type == *flag) type.fail("duplicate namespace type " + json_quoted(name));
        Namespace ns{*flag, {}};
        if (auto path = n.get("path")) {
            ns.path = absolute_path(*path);
            // The mount namespace is the one the server made with the holder.
            if (*flag == CLONE_NEWNS) path->fail("joining a mount namespace is not supported");
        }
        out.push_back(std::move(ns));
    }
    bool has_mount = false;
    for (const Namespace& ns : out) has_mount |= ns.type == CLONE_NEWNS;
    if (!has_mount) list.fail("no mount namespace: nsfork gives every container one, add {\"type\": \"mount\"}");
    return out;
}

std::vector<Device> devices(const Node& list) {
    std::vector<Device> out;
    for (const Node& n : list.items()) {
        Device d;
        d.path = absolute_path(n.need("path"));
        Node type = n.need("type");
        std::string t = type.str();
        if (t != "c" && t != "b" && t != "u" && t != "p") type.fail("unknown device type " + json_quoted(t));
        d.type = t == "u" ? 'c' : t[0];
        if (d.type != 'p') {
            d.major = n.need("major").integer<std::int64_t>();
            d.minor = n.need("minor").integer<std::int64_t>();
        }
        if (auto mode = n.get("fileMode")) {
            auto value = mode->integer<mode_t>();
            if (value > 07777) mode->fail("must be a permission mode, at most 07777");
            d.file_mode = value;
        }
        d.uid = optional_integer<uid_t>(n, "uid").value_or(0);
        d.gid = optional_integer<gid_t>(n, "gid").value_or(0);
        out.push_back(std::move(d));
    }
    return out;
}

std::vector<DeviceRule> device_rules(const Node& list) {
    std::vector<DeviceRule> out;
    for (const Node& n : list.items()) {
        DeviceRule r;
        r.allow = n.need("allow").boolean();
        if (auto type = n.get("type")) {
            std::string t = type->str();
            if (t != "a" && t != "c" && t != "b") type->fail("unknown device type " + json_quoted(t));
            r.type = t[0];
        }
        r.major = optional_integer<std::int64_t>(n, "major").value_or(-1);
        r.minor = optional_integer<std::int64_t>(n, "minor").value_or(-1);
        if (auto access = n.get("access")) {
            r.access = access->str();
            if (r.access.empty() || r.access.find_first_not_of("rwm") != std::string::npos)
                access->fail("must be a combination of r, w and m, not " + json_quoted(r.access));
        }
        out.push_back(std::move(r));
    }
    return out;
}

// runc treats 0 as "not set" for these (its fs and fs2 drivers write nothing for 0).
template <class Int>
std::optional<Int> nonzero(const Node& obj, std::string_view key) {
    auto v = optional_integer<Int>(obj, key);
    if (v && *v == 0) return std::nullopt;
    return v;
}

Resources resources(const Node& n) {
    n.object();
    Resources r;
    if (auto memory = n.get("memory")) {
        r.memory_limit = nonzero<std::int64_t>(*memory, "limit");
        r.memory_reservation = nonzero<std::int64_t>(*memory, "reservation");
        r.memory_swap = nonzero<std::int64_t>(*memory, "swap");
        if (auto swappiness = memory->get("swappiness")) {
            // -1 (or its uint64 wrap) is docker's "the kernel's default".
            const json& v = swappiness->json_value();
            bool unset = (v.is_number_integer() && v.get<std::int64_t>() == -1) ||
                         (v.is_number_unsigned() && v.get<std::uint64_t>() == UINT64_MAX);
            if (!unset) {
                auto value = swappiness->integer<std::uint64_t>();
                if (value > 100) swappiness->fail("must be between 0 and 100");
                r.memory_swappiness = value;
            }
        }
        if (optional_bool(*memory, "disableOOMKiller")) r.disable_oom_killer = true;
        refuse_if_set(*memory, "kernel", "kernel memory limits are not supported");
        refuse_if_set(*memory, "kernelTCP", "kernel memory limits are not supported");
        refuse_if_set(*memory, "useHierarchy", "memory.use_hierarchy is not supported");
        refuse_if_set(*memory, "checkBeforeUpdate", "checkBeforeUpdate is not supported");
    }
    if (auto cpu = n.get("cpu")) {
        r.cpu_shares = nonzero<std::uint64_t>(*cpu, "shares");
        r.cpu_quota = nonzero<std::int64_t>(*cpu, "quota");
        r.cpu_period = nonzero<std::uint64_t>(*cpu, "period");
        r.cpuset_cpus = optional_string(*cpu, "cpus");
        r.cpuset_mems = optional_string(*cpu, "mems");
        refuse_if_set(*cpu, "realtimeRuntime", "real-time scheduling limits are not supported");
        refuse_if_set(*cpu, "realtimePeriod", "real-time scheduling limits are not supported");
        refuse_if_set(*cpu, "idle", "cpu.idle is not supported");
        refuse_if_set(*cpu, "burst", "cpu.burst is not supported");
    }
    if (auto pids = n.get("pids")) r.pids_limit = nonzero<std::int64_t>(*pids, "limit");
    if (auto rules = n.get("devices")) r.devices = device_rules(*rules);
    if (auto unified = n.get("unified")) r.unified = unified->string_map();
    refuse_if_set(n, "blockIO", "block I/O limits are not supported");
    refuse_if_set(n, "hugepageLimits", "hugepage limits are not supported");
    refuse_if_set(n, "rdma", "RDMA limits are not supported");
    refuse_if_set(n, "network", "network class and priorities are not supported");
    return r;
}

unsigned long rootfs_propagation(const Node& n) {
    std::string name = n.str();
    auto p = lookup(kPropagation, name);
    if (!p) n.fail("unknown propagation " + json_quoted(name));
    return static_cast<unsigned long>(*p);
}

SeccompArg seccomp_arg(const Node& n) {
    SeccompArg a;
    a.index = n.need("index").integer<unsigned>();
    a.value = n.need("value").integer<std::uint64_t>();
    a.value_two = optional_integer<std::uint64_t>(n, "valueTwo").value_or(0);
    a.op = n.need("op").str();
    return a;
}

Seccomp seccomp(const Node& n) {
    Seccomp s;
    s.default_action = n.need("defaultAction").str();
    s.default_errno_ret = optional_integer<unsigned>(n, "defaultErrnoRet");
    s.architectures = optional_strings(n, "architectures");
    s.flags = optional_strings(n, "flags");
    refuse_if_set(n, "listenerPath", "seccomp notification listeners are not supported");
    refuse_if_set(n, "listenerMetadata", "seccomp notification listeners are not supported");
    if (auto syscalls = n.get("syscalls")) {
        for (const Node& sc : syscalls->items()) {
            SeccompRule rule;
            rule.names = sc.need("names").strings();
            rule.action = sc.need("action").str();
            rule.errno_ret = optional_integer<unsigned>(sc, "errnoRet");
            if (auto args = sc.get("args"))
                for (const Node& a : args->items()) rule.args.push_back(seccomp_arg(a));
            s.syscalls.push_back(std::move(rule));
        }
    }
    return s;
}

bool has_new_uts(const Spec& spec) { return spec.find_namespace(CLONE_NEWUTS) != nullptr; }

// Whether `path` names the namespace the runtime itself is in (/proc/self/ns/<name>).
bool is_own_namespace(const std::string& path, const char* name) {
    struct stat a {}, b {};
    std::string own = std::string("/proc/self/ns/") + name;
    return stat(path.c_str(), &a) == 0 && stat(own.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// A sysctl is the container's own only inside a namespace of its own; anything else would change
// the host (runc's validator: the same rules and words).
void check_sysctl(const Node& sysctl, const Spec& spec) {
    static constexpr const char* kIpc[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                           "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
    for (const auto& [name, value] : spec.sysctl) {
        auto refuse = [&](const std::string& why) { sysctl.fail_key(name, why); };
        bool ipc = name.starts_with("fs.mqueue.");
        for (const char* k : kIpc) ipc |= name == k;
        if (ipc) {
            if (!spec.find_namespace(CLONE_NEWIPC)) refuse("not allowed in the host's ipc namespace");
            continue;
        }
        if (name.starts_with("net.")) {
            const Namespace* net = spec.find_namespace(CLONE_NEWNET);
            if (!net || (!net->path.empty() && is_own_namespace(net->path, "net")))
                refuse("not allowed in the host's network namespace");
            continue;
        }
        if (spec.find_namespace(CLONE_NEWUTS)) {
            if (name == "kernel.domainname") continue;
            if (name == "kernel.hostname") refuse("conflicts with the \"hostname\" field");
        }
        refuse("not in a separate kernel namespace");
    }
}

// runc appends these allow rules to every device list it is given (specconv AllowedDevices:
// mknod of anything, the standard nodes, ptys, tun), after the config's own: the same config
// must give the same device access under nsfork-oci. A linux.devices entry with one of the
// paths replaces that default. Without rules of the config's own the list stays empty: the
// inherited "allow all" already has them, and no device cgroup is needed.
void append_default_device_rules(Spec& spec) {
    struct Default {
        const char* path;
        DeviceRule rule;
    };
    static const Default kDefaults[] = {
        {nullptr, {true, 'c', -1, -1, "m"}},        {nullptr, {true, 'b', -1, -1, "m"}},
        {"/dev/null", {true, 'c', 1, 3, "rwm"}},    {"/dev/random", {true, 'c', 1, 8, "rwm"}},
        {"/dev/full", {true, 'c', 1, 7, "rwm"}},    {"/dev/tty", {true, 'c', 5, 0, "rwm"}},
        {"/dev/zero", {true, 'c', 1, 5, "rwm"}},    {"/dev/urandom", {true, 'c', 1, 9, "rwm"}},
        {nullptr, {true, 'c', 136, -1, "rwm"}},     {nullptr, {true, 'c', 5, 2, "rwm"}},
        {nullptr, {true, 'c', 10, 200, "rwm"}},
    };
    if (spec.resources.devices.empty()) return;
    for (const Default& d : kDefaults) {
        bool replaced = false;
        for (const Device& dev : spec.devices) replaced |= d.path && dev.path == d.path;
        if (!replaced) spec.resources.devices.push_back(d.rule);
    }
}

void linux_section(const Node& n, Spec& spec) {
    n.object();
    spec.namespaces = namespaces(n.need("namespaces"));
    if (auto list = n.get("devices")) spec.devices = devices(*list);
    spec.cgroups_path = optional_string(n, "cgroupsPath");
    if (auto r = n.get("resources")) spec.resources = resources(*r);
    append_default_device_rules(spec);
    if (auto sysctl = n.get("sysctl")) {
        spec.sysctl = sysctl->string_map();
        check_sysctl(*sysctl, spec);
    }
    if (auto s = n.get("seccomp")) spec.seccomp = seccomp(*s);
    if (auto p = n.get("rootfsPropagation")) spec.rootfs_propagation = rootfs_propagation(*p);
    if (auto paths = n.get("maskedPaths"))
        for (const Node& p : paths->items()) spec.masked_paths.push_back(absolute_path(p));
    if (auto paths = n.get("readonlyPaths"))
        for (const Node& p : paths->items()) spec.readonly_paths.push_back(absolute_path(p));
    refuse_if_set(n, "uidMappings", "user namespaces are not supported");
    refuse_if_set(n, "gidMappings", "user namespaces are not supported");
    refuse_if_set(n, "mountLabel", "SELinux is not supported");
    refuse_if_set(n, "intelRdt", "Intel RDT is not supported");
    refuse_if_set(n, "personality", "execution domains (personality) are not supported");
    refuse_if_set(n, "timeOffsets", "time namespaces are not supported");
    refuse_if_set(n, "memoryPolicy", "NUMA memory policies are not supported");
    refuse_if_set(n, "netDevices", "moving network devices is not supported");
}

std::vector<Hook> hook_list(const Node& list) {
    std::vector<Hook> out;
    for (const Node& n : list.items()) {
        Hook h;
        h.path = absolute_path(n.need("path"));
        h.args = optional_strings(n, "args");
        h.env = optional_strings(n, "env");
        if (auto timeout = n.get("timeout")) {
            h.timeout = timeout->integer<int>();
            if (*h.timeout <= 0) timeout->fail("must be greater than zero");
        }
        out.push_back(std::move(h));
    }
    return out;
}

Hooks hooks(const Node& n) {
    n.object();
    Hooks h;
    if (auto l = n.get("prestart")) h.prestart = hook_list(*l);
    if (auto l = n.get("createRuntime")) h.create_runtime = hook_list(*l);
    if (auto l = n.get("poststart")) h.poststart = hook_list(*l);
    if (auto l = n.get("poststop")) h.poststop = hook_list(*l);
    refuse_if_set(n, "createContainer", "createContainer hooks are not supported");
    refuse_if_set(n, "startContainer", "startContainer hooks are not supported");
    return h;
}


Spec spec(const Node& root, const std::string& bundle) {
    root.object();
    Spec s;
    s.bundle = bundle;
    s.oci_version = optional_string(root, "ociVersion");
    Node r = root.need("root");
    s.root = bundle_path(bundle, r.need("path").str());
    s.root_readonly = optional_bool(r, "readonly");
    s.process = process(root.need("process"));
    if (auto mounts = root.get("mounts"))
        for (const Node& m : mounts->items()) s.mounts.push_back(mount(m, bundle));
    if (auto h = root.get("hooks")) s.hooks = hooks(*h);
    if (auto a = root.get("annotations")) s.annotations = a->string_map();
    linux_section(root.need("linux"), s);
    // As runc: a hostname is the container's own only in a UTS namespace of its own.
    s.hostname = optional_string(root, "hostname");
    if (!s.hostname.empty() && !has_new_uts(s))
        root.need("hostname").fail("setting the hostname needs a uts namespace (linux.namespaces)");
    s.domainname = optional_string(root, "domainname");
    if (!s.domainname.empty() && !has_new_uts(s))
        root.need("domainname").fail("setting the domainname needs a uts namespace (linux.namespaces)");
    for (const char* os : {"windows", "solaris", "vm", "zos"})
        if (root.get(os)) root.need(os).fail("not a Linux container's configuration");
    return s;
}

template <class Fn>
auto parse(std::string_view text, std::string_view what, Fn&& convert) -> Result<decltype(convert(std::declval<Node>()))> {
    auto error = [&](const std::string& message) {
        return Error{Errc::bad_request, std::string(what) + ": " + message};
    };
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        // "[json.exception.parse_error.101] parse error at line 3, column 5: ..." without the tag.
        std::string message = e.what();
        if (auto end = message.find("] "); end != std::string::npos) message.erase(0, end + 2);
        return error(message);
    }
    try {
        return convert(Node(doc, ""));
    } catch (const Invalid& invalid) {
        return error(invalid.field.empty() ? invalid.what : invalid.field + ": " + invalid.what);
    }
}

} // namespace

Result<Spec> parse_config(std::string_view json_text, const std::string& bundle) {
    return parse(json_text, "config.json", [&](const Node& root) { return spec(root, bundle); });
}

Result<Process> parse_process(std::string_view json_text, std::string_view what) {
    return parse(json_text, what, [](const Node& root) { return process(root); });
}

Result<Spec> load_bundle(const std::string& bundle, std::string* config_text) {
    std::error_code ec;
    std::string dir = std::filesystem::absolute(bundle, ec).lexically_normal().string();
    if (ec) return sys_error(Errc::bad_request, "bundle " + bundle, ec.value());
    if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    std::string path = dir + "/config.json";
    std::ifstream in(path);
    if (!in) return sys_error(Errc::bad_request, "cannot read " + path, errno);
    std::stringstream text;
    text << in.rdbuf();
    auto spec = parse_config(text.str(), dir);
    if (!spec) return spec;
    if (config_text) *config_text = std::move(text).str();
    // As runc's validator: a missing root fails here, before anything is made for the container.
    struct stat st {};
    if (stat(spec->root.c_str(), &st) != 0)
        return sys_error(Errc::bad_request, "config.json: root.path: " + spec->root, errno);
    if (!S_ISDIR(st.st_mode)) return Error{Errc::bad_request, "config.json: root.path: " + spec->root + ": not a directory"};
    return spec;
}

std::vector<std::string> known_capabilities() {
    std::vector<std::string> names;
    for (const NamedNumber& c : kCapabilities) names.emplace_back(c.name);
    return names;
}

std::vector<std::string> known_mount_options() {
    std::vector<std::string> names;
    for (const MountOption& o : kMountFlags) names.emplace_back(o.name);
    for (const NamedNumber& p : kPropagation) names.emplace_back(p.name);
    std::sort(names.begin(), names.end());
    return names;
}

} // namespace nsfork::oci
