// Building the plans of the container's process (oci/child.hpp) in the runtime. The order of the
// steps is runc's (libcontainer's standard_init_linux.go, rootfs_linux.go, init_linux.go): join
// namespaces and cgroups, mounts in config order, devices, createRuntime hooks, pivot_root, the
// console, finishing the root (read-only mounts, root read-only, umask), hostname, sysctl,
// read-only and masked paths, rlimits, no_new_privs, stdio, seccomp while privileged, the user
// switch with capabilities kept, the executable looked up, seccomp last with no_new_privs, ready,
// the exec fifo, exec.
#include "oci/setup_plan.hpp"

#include "base/procfs.hpp"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace nsfork::oci {

using child::Op;
using child::Step;

child::Step& SetupPlan::add(Op op, std::string what) {
    what_.push_back(std::move(what));
    return steps_.emplace_back(Step{.op = op});
}

const char* SetupPlan::keep(std::string text) { return strings_.emplace_back(std::move(text)).c_str(); }

int SetupPlan::keep(UniqueFd fd) { return fds_.emplace_back(std::move(fd)).get(); }

const char* const* SetupPlan::keep_list(std::vector<const char*> list) { return lists_.emplace_back(std::move(list)).data(); }

void SetupPlan::finish(const ProcessIo& io, const Process& process, const std::vector<std::string>& env,
                       std::vector<const char*> candidates, SeccompProgram filter) {
    preserved_ = io.preserved;
    groups_ = process.user.additional_gids;
    candidates_ = std::move(candidates);
    candidates_.push_back(nullptr);
    for (const std::string& a : process.args) argv_.push_back(const_cast<char*>(keep(a)));
    argv_.push_back(nullptr);
    for (const std::string& e : env) envp_.push_back(const_cast<char*>(keep(e)));
    envp_.push_back(nullptr);
    filter_ = std::move(filter);
    // A terminal process's stdio is the pty: it must not hold the runtime's own until its exec
    // either. containerd's shim reads create's output to its end before it takes the console's
    // master, so a process keeping that pipe open hung `ctr run -t` and `docker run -t`.
    auto stdio = [&](int i) { return process.terminal ? -1 : io.stdio[static_cast<std::size_t>(i)]; };
    plan_ = child::Plan{
        .steps = steps_.data(),
        .count = steps_.size(),
        .stdio = {stdio(0), stdio(1), stdio(2)},
        .preserved = preserved_.data(),
        .preserved_count = preserved_.size(),
        .groups = groups_.data(),
        .group_count = groups_.size(),
        .candidates = candidates_.data(),
        .argv = argv_.data(),
        .envp = envp_.data(),
        .filter = {static_cast<unsigned short>(filter_.filter.size()), filter_.filter.data()},
    };
}

namespace {

Error failure(const std::string& what, int err) { return sys_error(Errc::launch_failed, what, err); }

// MS_* flags of a mount as MOUNT_ATTR_* flags (mount_setattr, fsmount).
std::uint64_t mount_attributes(unsigned long ms) {
    std::uint64_t a = 0;
    if (ms & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
    if (ms & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
    if (ms & MS_NODEV) a |= MOUNT_ATTR_NODEV;
    if (ms & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
    if (ms & MS_NOATIME) a |= MOUNT_ATTR_NOATIME;
    if (ms & MS_STRICTATIME) a |= MOUNT_ATTR_STRICTATIME;
    if (ms & MS_NODIRATIME) a |= MOUNT_ATTR_NODIRATIME;
    if (ms & MS_NOSYMFOLLOW) a |= MOUNT_ATTR_NOSYMFOLLOW;
    return a;
}

bool sets_atime(unsigned long ms) { return ms & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME); }

// An fd of a namespace file, opened before anything joins the container's mount namespace.
Result<UniqueFd> open_namespace(const std::string& path, const std::string& field) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return failure(field + ".path: open " + path, errno);
    return fd;
}

// A detached copy of the tree at `path` (recursive: its submounts too), in the host's mount
// namespace, propagation `propagation` (rslave unless said): a copy of a shared mount would
// otherwise be a peer of it, and mounts made inside the container would show on the host.
Result<UniqueFd> capture_tree(const std::string& path, bool recursive, unsigned long propagation, const std::string& what) {
    UniqueFd tree(::open_tree(AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0)));
    if (!tree) return failure(what + ": open_tree " + path, errno);
    const unsigned long type = propagation & (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE);
    mount_attr attr{};
    attr.propagation = type ? type : static_cast<unsigned long>(MS_SLAVE);
    const bool recursive_propagation = type ? (propagation & MS_REC) != 0 : true;
    if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | (recursive_propagation ? AT_RECURSIVE : 0), &attr, sizeof attr) < 0)
        return failure(what + ": set propagation of " + path, errno);
    return tree;
}

// The CLONE_NEW* flag's name in runtime-spec.
const char* namespace_name(int type) {
    switch (type) {
    case CLONE_NEWNET: return "network";
    case CLONE_NEWIPC: return "ipc";
    case CLONE_NEWUTS: return "uts";
    case CLONE_NEWCGROUP: return "cgroup";
    case CLONE_NEWNS: return "mount";
    case CLONE_NEWPID: return "pid";
    }
    return "?";
}

// linux.namespaces other than pid and mount (the holder's): joined by path, or new: one the
// server made ahead (`made`, never handed out before) where it had one of the type, else unshared.
Result<void> plan_namespaces(SetupPlan& plan, const Spec& spec, const std::vector<int>& made) {
    for (std::size_t i = 0; i < spec.namespaces.size(); ++i) {
        const Namespace& ns = spec.namespaces[i];
        if (ns.type == CLONE_NEWPID || ns.type == CLONE_NEWNS) continue;
        const std::string field = "linux.namespaces[" + std::to_string(i) + "]";
        if (ns.path.empty()) {
            auto ahead = std::find_if(made.begin(), made.end(), [&](int fd) { return ::ioctl(fd, NS_GET_NSTYPE) == ns.type; });
            if (ahead != made.end()) {
                Step& s = plan.add(Op::join_namespaces, field + " (" + namespace_name(ns.type) + "): setns to a new one");
                s.fd = *ahead;
                s.number = ns.type;
                continue;
            }
            plan.add(Op::unshare, field + " (" + namespace_name(ns.type) + "): unshare").number = ns.type;
            continue;
        }
        auto fd = open_namespace(ns.path, field);
        if (!fd) return std::move(fd).error();
        Step& s = plan.add(Op::join_namespaces, field + " (" + ns.path + "): setns");
        s.fd = plan.keep(std::move(*fd));
        s.number = ns.type;
    }
    return {};
}

// The filesystem's own options ("mode=755,size=64k") as fsconfig key/value pairs, plus the
// superblock flags given as options: "ro" among them, so that a read-only sysfs is read-only in
// its superblock too, as mount(2) with MS_RDONLY makes it for runc (a superblock that already
// exists, the host's sysfs in a shared network namespace, keeps its own flags either way).
const char* const* fs_options(SetupPlan& plan, const Mount& m) {
    std::vector<const char*> list;
    std::size_t start = 0;
    while (start <= m.data.size() && !m.data.empty()) {
        const std::size_t end = std::min(m.data.find(',', start), m.data.size());
        const std::string option = m.data.substr(start, end - start);
        if (!option.empty()) {
            const std::size_t eq = option.find('=');
            list.push_back(plan.keep(option.substr(0, eq)));
            list.push_back(eq == std::string::npos ? nullptr : plan.keep(option.substr(eq + 1)));
        }
        start = end + 1;
    }
    static constexpr std::pair<unsigned long, const char*> kSuperblock[] = {
        {MS_RDONLY, "ro"}, {MS_SYNCHRONOUS, "sync"}, {MS_DIRSYNC, "dirsync"}, {MS_LAZYTIME, "lazytime"},
        {MS_MANDLOCK, "mand"}};
    for (auto [flag, name] : kSuperblock)
        if (m.flags & flag) list.insert(list.end(), {name, nullptr});
    list.push_back(nullptr);
    return plan.keep_list(std::move(list));
}

bool is_directory(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void add_symlink(SetupPlan& plan, const std::string& path, const std::string& target, bool replace, const std::string& field) {
    const char* p = plan.keep(path);
    const char* t = plan.keep(target);
    Step& s = plan.add(Op::make_symlink, field + ": symlink " + path + " -> " + target);
    s.path = p;
    s.text = t;
    s.number = replace ? 1 : 0;
}

// A bind mount of the host's `source` (captured now, its flags set on the detached tree) at
// `dest` inside the root.
Result<void> add_bind(SetupPlan& plan, const std::string& what, const std::string& source, const std::string& dest,
                      unsigned long flags, unsigned long cleared, unsigned long propagation) {
    auto tree = capture_tree(source, flags & MS_REC, propagation, what);
    if (!tree) return std::move(tree).error();
    // Flags apply to the top mount, as runc's remount does; cleared ones ("rw", "suid") are
    // cleared, the others are the source's.
    mount_attr attr{};
    attr.attr_set = mount_attributes(flags);
    attr.attr_clr = mount_attributes(cleared);
    if (sets_atime(flags)) attr.attr_clr |= MOUNT_ATTR__ATIME;
    if ((attr.attr_set || attr.attr_clr) && ::mount_setattr(tree->get(), "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        return failure(what + ": set the flags of " + source, errno);
    const bool file = !is_directory(source);
    Step& s = plan.add(Op::attach_bind, what + ": bind " + source);
    s.fd = plan.keep(std::move(*tree));
    s.number = file ? 1 : 0;
    s.path = plan.keep(dest);
    return {};
}

// A new file system of `type` at `dest` inside the root; its index in the plan.
std::size_t add_fs(SetupPlan& plan, const std::string& what, const Mount& m) {
    const std::size_t index = plan.size();
    const char* type = plan.keep(m.type);
    const char* source = plan.keep(m.source.empty() ? m.type : m.source);
    const char* const* options = fs_options(plan, m);
    Step& s = plan.add(Op::mount_fs, what + ": mount " + m.type);
    s.set = mount_attributes(m.flags);
    s.extra = m.propagation;
    s.number = (m.type == "proc" || m.type == "sysfs" ? child::kMountNoSymlink : 0) | (m.type == "tmpfs" ? child::kMountKeepMode : 0);
    s.text = type;
    s.text2 = source;
    s.options = options;
    s.path = plan.keep(m.destination);
    return index;
}

// The controllers of a cgroup v1 hierarchy, from its super options ("rw,memory" -> memory,
// "rw,name=systemd" -> name=systemd).
std::vector<std::string> controllers(const procfs::Mount& hierarchy) {
    std::vector<std::string> out;
    std::stringstream options(hierarchy.super_options);
    for (std::string o; std::getline(options, o, ',');)
        if (o != "rw" && o != "ro" && o != "clone_children" && o != "xattr" && !o.starts_with("release_agent=")) out.push_back(o);
    return out;
}

// The container's cgroup in a v1 hierarchy, as a host path: the directory of the cgroup.procs
// it joins there, else the runtime's own cgroup (runc runs in the container's cgroups: its own).
std::string container_cgroup(const procfs::Mount& hierarchy, const std::vector<int>& cgroup_procs) {
    for (int fd : cgroup_procs) {
        std::error_code ec;
        const std::filesystem::path procs = std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
        if (!ec && procs.string().starts_with(hierarchy.mount_point + "/")) return procs.parent_path().string();
    }
    const std::vector<std::string> ours = controllers(hierarchy);
    std::ifstream in("/proc/self/cgroup");
    for (std::string line; std::getline(in, line);) {
        const std::size_t first = line.find(':'), second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        std::stringstream listed(line.substr(first + 1, second - first - 1));
        for (std::string c; std::getline(listed, c, ',');)
            if (std::find(ours.begin(), ours.end(), c) != ours.end()) {
                const std::string path = line.substr(second + 1);
                const std::string relative = path.starts_with(hierarchy.root) ? path.substr(hierarchy.root.size()) : path;
                return hierarchy.mount_point + (relative.starts_with("/") || relative.empty() ? "" : "/") + relative;
            }
    }
    return hierarchy.mount_point;
}

// A "cgroup" (v1) mount as runc makes it: a tmpfs with a directory per hierarchy of the host,
// the container's own cgroup bound there (a fresh cgroup mount, in a new cgroup namespace),
// and a symlink per controller of a merged hierarchy ("cpu" -> "cpu,cpuacct").
Result<void> plan_cgroup_v1(SetupPlan& plan, const Spec& spec, const Mount& m, const std::vector<int>& cgroup_procs) {
    const std::string what = m.field + " (" + m.destination + ")";
    Mount tmpfs = m;
    tmpfs.type = "tmpfs";
    tmpfs.source = "tmpfs";
    tmpfs.flags = MS_NOSUID | MS_NOEXEC | MS_NODEV;
    tmpfs.data = "mode=755";
    add_fs(plan, what, tmpfs);
    const Namespace* cgroupns = spec.find_namespace(CLONE_NEWCGROUP);
    const bool fresh = cgroupns && cgroupns->path.empty();
    for (const procfs::Mount& h : procfs::mounts()) {
        if (h.fstype != "cgroup" || h.mount_point.empty()) continue;
        const std::string name = std::filesystem::path(h.mount_point).filename();
        const std::string dest = m.destination + "/" + name;
        if (fresh) {
            Mount hierarchy = m;
            hierarchy.type = "cgroup";
            hierarchy.source = "cgroup";
            hierarchy.destination = dest;
            hierarchy.flags = MS_NOSUID | MS_NOEXEC | MS_NODEV | (m.flags & MS_RDONLY);
            hierarchy.data.clear();
            for (const std::string& c : controllers(h)) hierarchy.data += (hierarchy.data.empty() ? "" : ",") + c;
            add_fs(plan, what + " " + name, hierarchy);
        } else if (auto ok = add_bind(plan, what + " " + name, container_cgroup(h, cgroup_procs), dest,
                                      MS_BIND | MS_REC | m.flags, m.cleared, m.propagation);
                   !ok) {
            return ok;
        }
        if (name.find(',') == std::string::npos) continue;
        std::stringstream merged(name);
        for (std::string c; std::getline(merged, c, ',');) add_symlink(plan, m.destination + "/" + c, name, false, what);
    }
    return {};
}

// `mounts` in order. A read-only tmpfs or /dev is mounted writable and made read-only at the end
// (finalize_ro names its step), so that device nodes and mountpoints can be made in it, as in runc.
Result<void> plan_mounts(SetupPlan& plan, const Spec& spec, const std::vector<int>& cgroup_procs, std::vector<int>& late_readonly) {
    for (const Mount& m : spec.mounts) {
        const std::string what = m.field + " (" + m.destination + ")";
        if (m.bind()) {
            if (auto ok = add_bind(plan, what, m.source, m.destination, m.flags, m.cleared, m.propagation); !ok) return ok;
        } else if (m.type == "cgroup") {
            if (auto ok = plan_cgroup_v1(plan, spec, m, cgroup_procs); !ok) return ok;
        } else if ((m.flags & MS_RDONLY) && (m.type == "tmpfs" || m.destination == "/dev")) {
            Mount writable = m;
            writable.flags &= ~MS_RDONLY;
            late_readonly.push_back(static_cast<int>(add_fs(plan, what, writable)));
        } else {
            add_fs(plan, what, m);
        }
    }
    return {};
}

// Whether the runtime makes /dev (nodes, symlinks): unless a bind mount provides it, as runc.
bool sets_up_dev(const Spec& spec) {
    for (const Mount& m : spec.mounts)
        if (m.destination == "/dev" && m.bind()) return false;
    return true;
}

mode_t node_type(char type) {
    switch (type) {
    case 'b': return S_IFBLK;
    case 'p': return S_IFIFO;
    default: return S_IFCHR; // 'c', 'u'
    }
}

void add_device(SetupPlan& plan, const Device& d, std::string what) {
    const char* path = plan.keep(d.path);
    Step& s = plan.add(Op::make_device, std::move(what) + ": mknod");
    s.path = path;
    s.number = static_cast<int>(node_type(d.type) | (d.file_mode & 07777));
    s.set = makedev(static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor));
    s.clear = d.uid;
    s.extra = d.gid;
}

// linux.devices and runtime-spec's default devices (those it lists itself win), then /dev/ptmx
// as the devpts instance's, and the /dev/fd, stdin, stdout, stderr symlinks (runc adds /dev/core).
void plan_devices(SetupPlan& plan, const Spec& spec) {
    static constexpr struct {
        const char* path;
        int major, minor;
    } kDefaults[] = {{"/dev/null", 1, 3}, {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
                     {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
    for (const auto& d : kDefaults) {
        bool listed = false;
        for (const Device& own : spec.devices) listed = listed || own.path == d.path;
        if (!listed) add_device(plan, Device{.path = d.path, .major = d.major, .minor = d.minor}, std::string("default device ") + d.path);
    }
    for (std::size_t i = 0; i < spec.devices.size(); ++i)
        add_device(plan, spec.devices[i], "linux.devices[" + std::to_string(i) + "] (" + spec.devices[i].path + ")");
    const std::string what = "default /dev symlinks";
    add_symlink(plan, "/dev/ptmx", "pts/ptmx", true, what);
    add_symlink(plan, "/dev/fd", "/proc/self/fd", false, what);
    add_symlink(plan, "/dev/stdin", "/proc/self/fd/0", false, what);
    add_symlink(plan, "/dev/stdout", "/proc/self/fd/1", false, what);
    add_symlink(plan, "/dev/stderr", "/proc/self/fd/2", false, what);
    if (::access("/proc/kcore", F_OK) == 0) add_symlink(plan, "/dev/core", "/proc/kcore", false, what);
}

void add_write(SetupPlan& plan, const std::string& path, const std::string& text, std::string what) {
    const char* p = plan.keep(path);
    const char* t = plan.keep(text);
    Step& s = plan.add(Op::write_file, std::move(what) + ": write " + path);
    s.path = p;
    s.text = t;
}

void add_console(SetupPlan& plan, const Process& process, int console_socket, bool dev_console) {
    Step& s = plan.add(Op::console, "process.terminal: set up the console");
    s.fd = console_socket;
    s.number = dev_console ? 1 : 0;
    if (process.console_size) {
        s.set = process.console_size->height;
        s.clear = process.console_size->width;
    }
}

// The highest capability this kernel knows.
int last_capability() {
    std::ifstream f("/proc/sys/kernel/cap_last_cap");
    int last = 40;
    f >> last;
    return last;
}

// Where args[0] may be: itself when it has a slash, else in each directory of the process's PATH
// (runc's LookPath, with the container's PATH, or Go's default when it has none).
std::vector<const char*> candidates(SetupPlan& plan, const Process& process) {
    const std::string& name = process.args.at(0);
    if (name.find('/') != std::string::npos) return {plan.keep(name)};
    std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const std::string& e : process.env)
        if (e.starts_with("PATH=")) path = e.substr(5);
    std::vector<const char*> out;
    std::size_t start = 0;
    while (start <= path.size()) {
        const std::size_t end = std::min(path.find(':', start), path.size());
        const std::string dir = path.substr(start, end - start);
        out.push_back(plan.keep((dir.empty() ? "." : dir) + "/" + name));
        start = end + 1;
    }
    return out;
}

// The home directory of `uid` in the root filesystem's /etc/passwd (resolved inside the root:
// a symlink there must not lead to the host's), "/" when it has none, as runc's default user.
std::string home_of(const std::string& root, uid_t uid) {
    UniqueFd dir(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT;
    UniqueFd passwd(dir ? static_cast<int>(::syscall(SYS_openat2, dir.get(), "/etc/passwd", &how, sizeof how)) : -1);
    if (!passwd) return "/";
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(passwd.get(), buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    std::stringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::vector<std::string> f;
        std::stringstream fields(line);
        for (std::string x; std::getline(fields, x, ':');) f.push_back(x);
        if (f.size() >= 6 && f[2] == std::to_string(uid)) return f[5].empty() ? "/" : f[5];
    }
    return "/";
}

// process.env, with HOME from the user's passwd entry when it sets none (runc's setupUser).
std::vector<std::string> environment(const Spec& spec, const Process& p) {
    std::vector<std::string> env = p.env;
    for (const std::string& e : env)
        if (e.starts_with("HOME=")) return env;
    env.push_back("HOME=" + home_of(spec.root, p.user.uid));
    return env;
}

// What every process of a container does last, made or exec'd: limits, stdio, the user switch
// with its capabilities, seccomp, the executable, and for `create` ready and the wait for start:
// on the exec fifo, or, without one (run), on the report socket.
Result<void> plan_process(SetupPlan& plan, const Spec& spec, const Process& p, const ProcessIo& io, bool create, int exec_fifo) {
    if (p.oom_score_adj) add_write(plan, "/proc/self/oom_score_adj", std::to_string(*p.oom_score_adj), "process.oomScoreAdj");
    for (std::size_t i = 0; i < p.rlimits.size(); ++i) {
        Step& s = plan.add(Op::rlimit, "process.rlimits[" + std::to_string(i) + "] (" + p.rlimits[i].name + "): setrlimit");
        s.number = p.rlimits[i].resource;
        s.set = p.rlimits[i].soft;
        s.clear = p.rlimits[i].hard;
    }
    if (p.no_new_privileges) plan.add(Op::no_new_privs, "process.noNewPrivileges: prctl");
    plan.add(Op::stdio, "process stdio and preserved fds: dup2");
    SeccompProgram filter;
    if (spec.seccomp) {
        auto compiled = compile_seccomp(*spec.seccomp);
        if (!compiled) return std::move(compiled).error();
        filter = std::move(*compiled);
    }
    auto add_seccomp = [&] { plan.add(Op::seccomp, "linux.seccomp: load the filter").number = static_cast<int>(filter.flags); };
    // Without no_new_privs loading a filter needs CAP_SYS_ADMIN: before the user switch.
    if (spec.seccomp && !p.no_new_privileges) add_seccomp();
    plan.add(Op::chdir, "process.cwd (" + p.cwd + "): chdir").path = plan.keep(p.cwd);
    if (p.capabilities) {
        Step& s = plan.add(Op::drop_bounding, "process.capabilities.bounding: drop");
        s.number = last_capability();
        s.set = p.capabilities->bounding;
        plan.add(Op::keep_caps, "process.capabilities: keep them across the user switch").number = 1;
    }
    plan.add(Op::setgroups, "process.user.additionalGids: setgroups");
    plan.add(Op::setresgid, "process.user.gid (" + std::to_string(p.user.gid) + "): setresgid").number = static_cast<int>(p.user.gid);
    plan.add(Op::setresuid, "process.user.uid (" + std::to_string(p.user.uid) + "): setresuid").number = static_cast<int>(p.user.uid);
    if (p.capabilities) {
        plan.add(Op::keep_caps, "process.capabilities: prctl").number = 0;
        Step& s = plan.add(Op::capabilities, "process.capabilities: capset");
        s.set = p.capabilities->effective;
        s.clear = p.capabilities->permitted;
        s.extra = p.capabilities->inheritable;
        // Only a capability both permitted and inheritable can be ambient (the kernel's rule);
        // runc raises the others one by one and ignores the refusals (runc spec's own config
        // lists ambient ones without inheritable): the same outcome, without the refusals.
        s.extra2 = p.capabilities->ambient & p.capabilities->permitted & p.capabilities->inheritable;
    }
    plan.add(Op::find_executable, "process.args[0]: exec: \"" + p.args.at(0) + "\"");
    if (spec.seccomp && p.no_new_privileges) add_seccomp();
    if (create) plan.add(Op::ready, "report ready");
    if (create && exec_fifo >= 0) plan.add(Op::exec_fifo, "exec fifo: open for writing").fd = exec_fifo;
    if (create && exec_fifo < 0) plan.add(Op::await_start, "wait for start on the report socket");
    plan.add(Op::exec, "process.args[0] (" + p.args.at(0) + "): exec");
    plan.finish(io, p, environment(spec, p), candidates(plan, p), std::move(filter));
    return {};
}

void add_cgroups(SetupPlan& plan, const std::vector<int>& cgroup_procs) {
    for (int fd : cgroup_procs) plan.add(Op::join_cgroup, "linux.cgroupsPath: join a cgroup (cgroup.procs)").fd = fd;
}

void add_umask(SetupPlan& plan, const Process& p) {
    plan.add(Op::umask, "process.user.umask").number = static_cast<int>(p.user.umask.value_or(0022));
}

Result<void> check_console(const Process& p, const ProcessIo& io) {
    if (p.terminal && io.console_socket < 0)
        return Error{Errc::bad_request, "process.terminal: a terminal needs a console socket (--console-socket)"};
    return {};
}

} // namespace

Result<std::unique_ptr<SetupPlan>> plan_create(const CreateRequest& r) {
    const Spec& spec = *r.spec;
    if (auto ok = check_console(spec.process, r.io); !ok) return std::move(ok).error();
    auto plan = std::make_unique<SetupPlan>();
    Step& join = plan->add(Op::join_namespaces, "join the holder's mount namespace: setns");
    join.fd = r.holder_pidfd;
    join.number = CLONE_NEWNS;
    add_cgroups(*plan, r.cgroup_procs);
    if (auto ok = plan_namespaces(*plan, spec, r.made_namespaces); !ok) return std::move(ok).error();

    // Nothing made in the container's namespace may propagate to the host's: rslave (or
    // rprivate) before the first mount; rshared and runbindable apply to the new root only.
    const unsigned long private_or_slave = spec.rootfs_propagation & MS_PRIVATE ? MS_PRIVATE : MS_SLAVE;
    plan->add(Op::propagation, "linux.rootfsPropagation: mount --make-r" + std::string(private_or_slave == MS_PRIVATE ? "private" : "slave") + " /")
        .set = MS_REC | private_or_slave;
    auto root = capture_tree(spec.root, true, MS_REC | private_or_slave, "root.path (" + spec.root + ")");
    if (!root) return std::move(root).error();
    Step& attach = plan->add(Op::attach_root, "root.path (" + spec.root + "): attach it in the container's namespace at " +
                                                  child::kStagingDir);
    attach.fd = plan->keep(std::move(*root));
    attach.path = child::kStagingDir;

    std::vector<int> late_readonly;
    if (auto ok = plan_mounts(*plan, spec, r.cgroup_procs, late_readonly); !ok) return std::move(ok).error();
    const bool dev = sets_up_dev(spec);
    if (dev) plan_devices(*plan, spec);
    plan->add(Op::make_directory, "process.cwd (" + spec.process.cwd + "): mkdir").path = plan->keep(spec.process.cwd);
    if (r.create_runtime) plan->add(Op::hooks, "hooks.createRuntime");
    plan->add(Op::pivot_root, r.no_pivot ? "root.path: move it to / and chroot (--no-pivot)" : "root.path: pivot_root").number =
        r.no_pivot ? 1 : 0;
    if (spec.rootfs_propagation & (MS_SHARED | MS_UNBINDABLE))
        plan->add(Op::propagation_after, "linux.rootfsPropagation: set on /").set = spec.rootfs_propagation;
    if (spec.process.terminal) add_console(*plan, spec.process, r.io.console_socket, dev);
    for (int index : late_readonly)
        plan->add(Op::finalize_ro, plan->describe(static_cast<std::size_t>(index)) + ": make it read-only").number = index;
    if (spec.root_readonly) plan->add(Op::root_readonly, "root.readonly: make / read-only");
    add_umask(*plan, spec.process);
    if (!spec.hostname.empty()) plan->add(Op::sethostname, "hostname (" + spec.hostname + "): sethostname").text = plan->keep(spec.hostname);
    if (!spec.domainname.empty())
        plan->add(Op::setdomainname, "domainname (" + spec.domainname + "): setdomainname").text = plan->keep(spec.domainname);
    for (const auto& [key, value] : spec.sysctl) {
        std::string path = "/proc/sys/" + key;
        for (std::size_t i = 10; i < path.size(); ++i)
            if (path[i] == '.') path[i] = '/';
        add_write(*plan, path, value, "linux.sysctl (" + key + ")");
    }
    for (std::size_t i = 0; i < spec.readonly_paths.size(); ++i)
        plan->add(Op::readonly_path, "linux.readonlyPaths[" + std::to_string(i) + "] (" + spec.readonly_paths[i] + "): bind read-only")
            .path = plan->keep(spec.readonly_paths[i]);
    for (std::size_t i = 0; i < spec.masked_paths.size(); ++i)
        plan->add(Op::masked_path, "linux.maskedPaths[" + std::to_string(i) + "] (" + spec.masked_paths[i] + "): mask")
            .path = plan->keep(spec.masked_paths[i]);
    if (auto ok = plan_process(*plan, spec, spec.process, r.io, true, r.exec_fifo); !ok) return std::move(ok).error();
    return plan;
}

Result<std::unique_ptr<SetupPlan>> plan_exec(const ExecRequest& r, UniqueFd target_root) {
    if (auto ok = check_console(*r.process, r.io); !ok) return std::move(ok).error();
    auto plan = std::make_unique<SetupPlan>();
    Step& join = plan->add(Op::join_namespaces, "join the container's namespaces: setns");
    join.fd = r.target_pidfd;
    join.number = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
    add_cgroups(*plan, r.cgroup_procs);
    plan->add(Op::enter_root, "enter the container's root: chroot").fd = plan->keep(std::move(target_root));
    if (r.process->terminal) add_console(*plan, *r.process, r.io.console_socket, false);
    add_umask(*plan, *r.process);
    if (auto ok = plan_process(*plan, *r.spec, *r.process, r.io, false, -1); !ok) return std::move(ok).error();
    return plan;
}

} // namespace nsfork::oci
