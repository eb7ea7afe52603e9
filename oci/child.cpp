// The container's process between clone3 and exec: it follows the plan step by step. Built with
// -fno-exceptions: nothing here allocates, throws or takes a lock; errno is read right after the
// call that failed. Paths inside the root filesystem are resolved with RESOLVE_IN_ROOT until
// pivot_root, so that a symlink in the rootfs never leads a mount or a device node out of it.
#include "oci/child.hpp"

#include "base/exit_codes.h"
#include "base/syscalls.hpp"
#include "oci/mount_api.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>

namespace nsfork::oci::child {

namespace {

// What the steps leave for the ones after them.
struct State {
    Plan& plan;
    int root = -1;              // the root filesystem (O_PATH) until pivot_root
    int tty = -1;               // the pty's slave, the stdio of a terminal process
    const char* executable = nullptr;
};

[[noreturn]] void fail(const Plan& plan, std::size_t step, int error) noexcept {
    const Report r{ReportKind::failed, static_cast<std::uint32_t>(step), error};
    [[maybe_unused]] ssize_t n = ::send(plan.report, &r, sizeof r, MSG_NOSIGNAL);
    ::_exit(NSFORK_EXIT_FAILED);
}

int open_in_root(int root, const char* path, int flags) noexcept {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT;
    return static_cast<int>(::syscall(SYS_openat2, root, path, &how, sizeof how));
}

// An O_PATH fd of `path` inside `root`, made (mkdir -p, and the last component an empty file
// when `file`) where missing.
int open_or_make(int root, const char* path, bool file) noexcept {
    int fd = open_in_root(root, path, O_PATH);
    if (fd >= 0 || errno != ENOENT) return fd;
    char buf[PATH_MAX];
    const std::size_t len = ::strlen(path);
    if (len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    ::memcpy(buf, path, len + 1);
    std::size_t name = 0; // where the current component starts
    for (std::size_t i = 0; i <= len; ++i) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (i == name) { // an empty component: the leading slash, or "//"
            name = i + 1;
            continue;
        }
        const char saved = buf[i];
        buf[i] = '\0';
        fd = open_in_root(root, buf, O_PATH);
        if (fd < 0 && errno == ENOENT) {
            // Create the component in its parent, resolved in the root again (it may be a symlink).
            const char at_name = buf[name];
            buf[name] = '\0';
            const int parent = open_in_root(root, name ? buf : "/", O_PATH | O_DIRECTORY);
            buf[name] = at_name;
            if (parent < 0) return -1;
            int made;
            if (file && i == len) {
                made = ::openat(parent, buf + name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (made >= 0) ::close(made);
            } else {
                made = ::mkdirat(parent, buf + name, 0755);
            }
            const int err = errno;
            ::close(parent);
            if (made < 0 && err != EEXIST) {
                errno = err;
                return -1;
            }
            fd = open_in_root(root, buf, O_PATH);
        }
        if (fd < 0) return -1;
        buf[i] = saved;
        if (i != len) ::close(fd);
        name = i + 1;
    }
    return fd;
}

// Opens (making it) the directory that holds `path` inside `root`; `*name` is the last component.
int open_parent(int root, const char* path, const char** name) noexcept {
    const char* slash = ::strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    char dir[PATH_MAX];
    const std::size_t len = slash ? static_cast<std::size_t>(slash - path) : 0;
    if (len >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    ::memcpy(dir, path, len);
    dir[len] = '\0';
    return open_or_make(root, len ? dir : "/", false);
}

int attach(int tree, int target) noexcept {
    return ::move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

int set_attributes(int dirfd, const char* path, unsigned flags, std::uint64_t set) noexcept {
    mount_attr attr{};
    attr.attr_set = set;
    return ::mount_setattr(dirfd, path, flags, &attr, sizeof attr);
}

// The closing wrappers below return -1 with errno of the failed call, after closing what they opened.
int close_keeping_errno(int fd, int result) noexcept {
    const int err = errno;
    ::close(fd);
    errno = err;
    return result;
}

int attach_bind(State& s, Step& step) noexcept {
    const int target = open_or_make(s.root, step.path, step.number == 1);
    if (target < 0) return -1;
    return close_keeping_errno(target, attach(step.fd, target));
}

// Gives the root of the mount `mnt` the permission bits `mode`.
int chmod_mount(int mnt, mode_t mode) noexcept {
    const int dir = ::openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    return close_keeping_errno(dir, ::fchmod(dir, mode));
}

int mount_fs(State& s, Step& step) noexcept {
    // proc and sysfs go on an ordinary directory only (runc's check against symlink games).
    if (step.number & kMountNoSymlink) {
        struct stat st;
        const char* name;
        const int dir = open_parent(s.root, step.path, &name);
        if (dir < 0) return -1;
        const int found = ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW);
        const int err = errno;
        ::close(dir);
        if (found == 0 && !S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        if (found < 0 && err != ENOENT) {
            errno = err;
            return -1;
        }
    }
    // A tmpfs on an existing directory takes that directory's mode (runc's mountToRootfs).
    mode_t existing = 0;
    if (step.number & kMountKeepMode) {
        const int fd = open_in_root(s.root, step.path, O_PATH);
        struct stat st;
        if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) existing = st.st_mode & 07777;
        if (fd >= 0) ::close(fd);
    }
    const int fs = ::fsopen(step.text, FSOPEN_CLOEXEC);
    if (fs < 0) return -1;
    for (const char* const* o = step.options; o && *o; o += 2) {
        const bool flag = o[1] == nullptr;
        if (::fsconfig(fs, flag ? FSCONFIG_SET_FLAG : FSCONFIG_SET_STRING, o[0], o[1], 0) < 0)
            return close_keeping_errno(fs, -1);
    }
    if (step.text2 && ::fsconfig(fs, FSCONFIG_SET_STRING, "source", step.text2, 0) < 0) return close_keeping_errno(fs, -1);
    if (::fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) return close_keeping_errno(fs, -1);
    const int mnt = ::fsmount(fs, FSMOUNT_CLOEXEC, static_cast<unsigned>(step.set));
    if (mnt < 0) return close_keeping_errno(fs, -1);
    ::close(fs);
    const int target = open_or_make(s.root, step.path, false);
    if (target < 0) return close_keeping_errno(mnt, -1);
    if (attach(mnt, target) < 0) {
        ::close(target);
        return close_keeping_errno(mnt, -1);
    }
    ::close(target);
    step.fd = mnt; // for finalize_ro
    if (existing && chmod_mount(mnt, existing) < 0) return -1;
    if (step.extra) {
        mount_attr attr{};
        attr.propagation = step.extra & ~static_cast<std::uint64_t>(MS_REC);
        if (::mount_setattr(mnt, "", AT_EMPTY_PATH | (step.extra & MS_REC ? AT_RECURSIVE : 0), &attr, sizeof attr) < 0)
            return -1;
    }
    return 0;
}

// mknod as runc: an existing node is kept; where mknod is not permitted, the host's node is bound.
int make_device(State& s, const Step& step) noexcept {
    const char* name;
    const int dir = open_parent(s.root, step.path, &name);
    if (dir < 0) return -1;
    if (::mknodat(dir, name, static_cast<mode_t>(step.number), static_cast<dev_t>(step.set)) == 0) {
        if (::fchownat(dir, name, static_cast<uid_t>(step.clear), static_cast<gid_t>(step.extra), AT_SYMLINK_NOFOLLOW) < 0)
            return close_keeping_errno(dir, -1);
        ::close(dir);
        return 0;
    }
    if (errno == EEXIST) {
        ::close(dir);
        return 0;
    }
    if (errno != EPERM) return close_keeping_errno(dir, -1);
    // Before pivot_root our "/" is still the holder's (the host's) tree: its node is at the same path.
    const int host = ::open_tree(AT_FDCWD, step.path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (host < 0) return close_keeping_errno(dir, -1);
    const int made = ::openat(dir, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (made >= 0) ::close(made);
    const int target = made < 0 ? -1 : ::openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    const int result = target < 0 ? -1 : attach(host, target);
    const int err = errno;
    if (target >= 0) ::close(target);
    ::close(host);
    ::close(dir);
    errno = err;
    return result;
}

int make_symlink(State& s, const Step& step) noexcept {
    const char* name;
    const int dir = open_parent(s.root, step.path, &name);
    if (dir < 0) return -1;
    if (step.number == 1 && ::unlinkat(dir, name, 0) < 0 && errno != ENOENT) return close_keeping_errno(dir, -1);
    if (::symlinkat(step.text, dir, name) < 0 && errno != EEXIST) return close_keeping_errno(dir, -1);
    ::close(dir);
    return 0;
}

// Waits for the runtime's kGo on the report socket.
int await_go(const Plan& plan) noexcept {
    char go = 0;
    ssize_t n;
    do n = ::recv(plan.report, &go, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    if (n == 0 || go != kGo) {
        errno = ECANCELED; // the runtime gave up (a hook failed) or died: it kills us next, or we end
        return -1;
    }
    return 0;
}

// Waits for the runtime to run the createRuntime hooks.
int hooks(const Plan& plan) noexcept {
    const Report r{ReportKind::hooks, 0, 0};
    if (::send(plan.report, &r, sizeof r, MSG_NOSIGNAL) < 0) return -1;
    return await_go(plan);
}

// pivot_root(".", ".") stacks the old root under the new one, where it is detached (runc's way:
// no directory for the old root is needed). The old root turns slave first, so that detaching it
// cannot propagate anywhere.
int pivot_root(State& s, const Step& step) noexcept {
    if (::fchdir(s.root) < 0) return -1;
    if (step.number == 1) { // --no-pivot
        if (::mount(".", "/", nullptr, MS_MOVE, nullptr) < 0 || ::chroot(".") < 0) return -1;
    } else {
        if (::syscall(SYS_pivot_root, ".", ".") < 0) return -1;
        if (::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) return -1;
        if (::umount2(".", MNT_DETACH) < 0) return -1;
    }
    if (::chdir("/") < 0) return -1;
    ::close(s.root);
    s.root = -1;
    return 0;
}

// A pty of the container's own devpts: its slave is the process's terminal (and /dev/console),
// its master goes to the engine on the console socket.
int console(State& s, const Step& step) noexcept {
    const int master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    int unlock = 0;
    if (::ioctl(master, TIOCSPTLCK, &unlock) < 0) return close_keeping_errno(master, -1);
    const int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) return close_keeping_errno(master, -1);
    s.tty = slave;
    if (step.set || step.clear) {
        const winsize size{static_cast<unsigned short>(step.set), static_cast<unsigned short>(step.clear), 0, 0};
        if (::ioctl(slave, TIOCSWINSZ, &size) < 0) return close_keeping_errno(master, -1);
    }
    if (step.number == 1) {
        const int made = ::open("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (made < 0) return close_keeping_errno(master, -1);
        ::close(made);
        const int tree = ::open_tree(slave, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (tree < 0) return close_keeping_errno(master, -1);
        const int moved = ::move_mount(tree, "", AT_FDCWD, "/dev/console", MOVE_MOUNT_F_EMPTY_PATH);
        ::close(tree);
        if (moved < 0) return close_keeping_errno(master, -1);
    }
    if (::ioctl(slave, TIOCSCTTY, 0) < 0) return close_keeping_errno(master, -1);
    static const char kName[] = "/dev/ptmx";
    const ssize_t sent = sys::send_with_fds(step.fd, kName, sizeof kName - 1, &master, 1);
    return close_keeping_errno(master, sent < 0 ? -1 : 0);
}

int write_file(const Step& step) noexcept {
    const int fd = ::open(step.path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    const std::size_t len = ::strlen(step.text);
    const ssize_t n = ::write(fd, step.text, len);
    if (n >= 0 && static_cast<std::size_t>(n) != len) errno = EIO; // short: no errno of its own
    return close_keeping_errno(fd, n >= 0 && static_cast<std::size_t>(n) == len ? 0 : -1);
}

int readonly_path(const Step& step) noexcept {
    const int tree = ::open_tree(AT_FDCWD, step.path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (tree < 0) return errno == ENOENT ? 0 : -1;
    if (set_attributes(tree, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY) < 0) return close_keeping_errno(tree, -1);
    const int moved = ::move_mount(tree, "", AT_FDCWD, step.path, MOVE_MOUNT_F_EMPTY_PATH);
    return close_keeping_errno(tree, moved);
}

// runc's outcome (/dev/null bound over it, ENOTDIR: a tmpfs instead), with the type looked at
// first: a bind mount refused for a directory has cloned the mount already, and undoing that
// clone waits for an expedited RCU grace period.
int masked_path(const Step& step) noexcept {
    struct stat st;
    if (::stat(step.path, &st) < 0) return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode)) return ::mount("tmpfs", step.path, "tmpfs", MS_RDONLY, nullptr);
    if (::mount("/dev/null", step.path, nullptr, MS_BIND, nullptr) == 0 || errno == ENOENT) return 0;
    if (errno != ENOTDIR) return -1; // it became a directory meanwhile
    return ::mount("tmpfs", step.path, "tmpfs", MS_RDONLY, nullptr);
}

// Moves every fd the plan names above the numbers stdio and the preserved fds will take, so that
// wiring them cannot overwrite one still needed.
int lift_fds(Plan& plan) noexcept {
    const int above = 3 + static_cast<int>(plan.preserved_count);
    auto lift = [above](int& fd) {
        if (fd < 0) return true;
        const int lifted = ::fcntl(fd, F_DUPFD_CLOEXEC, above);
        if (lifted < 0) return false;
        fd = lifted;
        return true;
    };
    bool ok = lift(plan.report) && lift(plan.parent_pidfd);
    for (int& fd : plan.stdio) ok = ok && lift(fd);
    for (std::size_t i = 0; ok && i < plan.preserved_count; ++i) ok = lift(plan.preserved[i]);
    for (std::size_t i = 0; ok && i < plan.count; ++i) ok = lift(plan.steps[i].fd);
    return ok ? 0 : -1;
}

int wire_stdio(State& s) noexcept {
    const Plan& p = s.plan;
    for (int i = 0; i < 3; ++i) {
        const int from = s.tty >= 0 ? s.tty : p.stdio[i];
        // dup2 onto itself keeps close-on-exec: the tty may have landed on 0-2 if those were free.
        if (from == i ? ::fcntl(i, F_SETFD, 0) < 0 : ::dup2(from, i) < 0) return -1;
    }
    for (std::size_t i = 0; i < p.preserved_count; ++i)
        if (::dup2(p.preserved[i], 3 + static_cast<int>(i)) < 0) return -1;
    // Everything else stays open until the exec (the report socket, the fifo) but not across it.
    return sys::close_range(3 + static_cast<unsigned>(p.preserved_count), ~0U, CLOSE_RANGE_CLOEXEC);
}

int drop_bounding(const Step& step) noexcept {
    for (int cap = 0; cap <= step.number; ++cap)
        if (!(step.set & (std::uint64_t{1} << cap)) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) return -1;
    return 0;
}

int capabilities(const Step& step) noexcept {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    for (int i = 0; i < 2; ++i) {
        data[i].effective = static_cast<std::uint32_t>(step.set >> (32 * i));
        data[i].permitted = static_cast<std::uint32_t>(step.clear >> (32 * i));
        data[i].inheritable = static_cast<std::uint32_t>(step.extra >> (32 * i));
    }
    if (::syscall(SYS_capset, &header, data) < 0) return -1;
    for (int cap = 0; cap < 64; ++cap)
        if ((step.extra2 & (std::uint64_t{1} << cap)) && ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return -1;
    return 0;
}

// As execvp does, minus running scripts without a #!: the first candidate that is an executable
// regular file for the process's own credentials.
int find_executable(State& s) noexcept {
    int error = ENOENT;
    for (const char* const* c = s.plan.candidates; *c; ++c) {
        struct stat st;
        if (::stat(*c, &st) < 0) continue;
        if (!S_ISREG(st.st_mode) || ::faccessat(AT_FDCWD, *c, X_OK, AT_EACCESS) < 0) {
            error = EACCES;
            continue;
        }
        s.executable = *c;
        return 0;
    }
    errno = error;
    return -1;
}

int seccomp(const Plan& plan, const Step& step) noexcept {
    return static_cast<int>(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, step.number, &plan.filter));
}

int ready(const Plan& plan) noexcept {
    // From here on the process outlives the runtime (the engine above it reaps it).
    if (::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) < 0) return -1;
    const Report r{ReportKind::ready, 0, 0};
    return ::send(plan.report, &r, sizeof r, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

// Blocks until `start` opens the fifo for reading: an O_PATH fd is reopened through /proc.
int exec_fifo(const Step& step) noexcept {
    char path[32] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    for (unsigned v = static_cast<unsigned>(step.fd); n == 0 || v; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
    std::size_t at = ::strlen(path);
    while (n) path[at++] = digits[--n];
    path[at] = '\0';
    int fd;
    do fd = ::open(path, O_WRONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    const ssize_t written = ::write(fd, "0", 1);
    return close_keeping_errno(fd, written == 1 ? 0 : -1);
}

// The process starts with default signal dispositions and an empty mask, whatever the runtime had.
int exec(State& s) noexcept {
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr); // 32, 33: glibc's, EINVAL
    sigset_t none;
    ::sigemptyset(&none);
    if (::sigprocmask(SIG_SETMASK, &none, nullptr) < 0) return -1;
    // An exec'd process (no ready step) outlives the runtime too.
    if (::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) < 0) return -1;
    ::execve(s.executable, s.plan.argv, s.plan.envp);
    return -1;
}

int run_step(State& s, Step& step) noexcept {
    switch (step.op) {
    case Op::join_namespaces: return ::setns(step.fd, step.number);
    case Op::unshare: return ::unshare(step.number);
    case Op::join_cgroup: {
        const ssize_t n = ::write(step.fd, "0", 1);
        return n == 1 ? 0 : -1;
    }
    case Op::propagation: return ::mount(nullptr, "/", nullptr, step.set, nullptr);
    case Op::attach_root:
        if (::move_mount(step.fd, "", AT_FDCWD, step.path, MOVE_MOUNT_F_EMPTY_PATH) < 0) return -1;
        s.root = ::open(step.path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        return s.root < 0 ? -1 : 0;
    case Op::attach_bind: return attach_bind(s, step);
    case Op::mount_fs: return mount_fs(s, step);
    case Op::make_device: return make_device(s, step);
    case Op::make_symlink: return make_symlink(s, step);
    case Op::make_directory: {
        const int fd = open_or_make(s.root, step.path, false);
        return fd < 0 ? -1 : close_keeping_errno(fd, 0);
    }
    case Op::hooks: return hooks(s.plan);
    case Op::pivot_root: return pivot_root(s, step);
    case Op::enter_root:
        if (::fchdir(step.fd) < 0 || ::chroot(".") < 0) return -1;
        return ::chdir("/");
    case Op::propagation_after: return ::mount(nullptr, "/", nullptr, step.set, nullptr);
    case Op::console: return console(s, step);
    case Op::finalize_ro:
        return set_attributes(s.plan.steps[step.number].fd, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY);
    case Op::root_readonly: return set_attributes(AT_FDCWD, "/", 0, MOUNT_ATTR_RDONLY);
    case Op::sethostname: return ::sethostname(step.text, ::strlen(step.text));
    case Op::setdomainname: return ::setdomainname(step.text, ::strlen(step.text));
    case Op::write_file: return write_file(step);
    case Op::readonly_path: return readonly_path(step);
    case Op::masked_path: return masked_path(step);
    case Op::rlimit: {
        const rlimit limit{static_cast<rlim_t>(step.set), static_cast<rlim_t>(step.clear)};
        #ifdef __GLIBC__
        return ::prlimit(0, static_cast<__rlimit_resource>(step.number), &limit, nullptr);
#else
        return ::prlimit(0, step.number, &limit, nullptr);
#endif
    }
    case Op::no_new_privs: return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    case Op::stdio: return wire_stdio(s);
    case Op::drop_bounding: return drop_bounding(step);
    case Op::keep_caps: return ::prctl(PR_SET_KEEPCAPS, step.number, 0, 0, 0);
    // Raw system calls: glibc's wrappers would signal the runtime's other threads (setxid).
    case Op::setgroups: return static_cast<int>(::syscall(SYS_setgroups, s.plan.group_count, s.plan.groups));
    case Op::setresgid: return static_cast<int>(::syscall(SYS_setresgid, step.number, step.number, step.number));
    case Op::setresuid: return static_cast<int>(::syscall(SYS_setresuid, step.number, step.number, step.number));
    case Op::capabilities: return capabilities(step);
    case Op::umask: ::umask(static_cast<mode_t>(step.number)); return 0;
    case Op::chdir: return ::chdir(step.path);
    case Op::find_executable: return find_executable(s);
    case Op::seccomp: return seccomp(s.plan, step);
    case Op::ready: return ready(s.plan);
    case Op::exec_fifo: return exec_fifo(step);
    case Op::await_start: return await_go(s.plan);
    case Op::exec: return exec(s);
    }
    errno = EINVAL;
    return -1;
}

} // namespace

void run(Plan& plan) noexcept {
    // A session of its own: the runtime's terminal and process group are not the container's.
    ::setsid();
    // Die with the runtime until ready; it may have died before the prctl: its pidfd says so.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) ::_exit(NSFORK_EXIT_FAILED);
    pollfd parent{plan.parent_pidfd, POLLIN, 0};
    if (plan.parent_pidfd >= 0 && ::poll(&parent, 1, 0) != 0) ::_exit(NSFORK_EXIT_FAILED);
    ::umask(0); // device nodes and mountpoints get exactly their modes; the umask step sets the process's
    State s{plan};
    if (lift_fds(plan) < 0) {
        const int err = errno;
        std::size_t stdio_step = 0;
        while (stdio_step < plan.count && plan.steps[stdio_step].op != Op::stdio) ++stdio_step;
        fail(plan, stdio_step, err);
    }
    for (std::size_t i = 0; i < plan.count; ++i)
        if (run_step(s, plan.steps[i]) < 0) fail(plan, i, errno);
    ::_exit(NSFORK_EXIT_FAILED); // a plan always ends in exec
}

} // namespace nsfork::oci::child
