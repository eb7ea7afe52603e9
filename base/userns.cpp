#include "base/userns.hpp"

#include "base/procfs.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>

namespace nsfork {

namespace {

// The inode of the initial user namespace's /proc/PID/ns/user (PROC_USER_INIT_INO): fixed by
// the kernel, and readable by anyone through our own /proc/self, unlike pid 1's.
constexpr ino_t kInitialUserNamespace = 0xEFFFFFFDU;

// A sysctl that can forbid unprivileged user namespaces: its file, and the value that does.
struct Setting {
    const char* name;
    const char* path;
    long forbidding;
};
constexpr Setting kSettings[] = {
    {"user.max_user_namespaces", "/proc/sys/user/max_user_namespaces", 0},
    {"kernel.unprivileged_userns_clone", "/proc/sys/kernel/unprivileged_userns_clone", 0}, // Debian
    {"kernel.apparmor_restrict_unprivileged_userns", "/proc/sys/kernel/apparmor_restrict_unprivileged_userns", 1}, // Ubuntu
};

// The integer in a /proc/sys file; -1 when it is absent (the setting does not exist here).
long read_setting(const char* path) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[32];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char* end = nullptr;
    const long value = std::strtol(buf, &end, 10);
    return end == buf ? -1 : value;
}

// The first setting that forbids this process a user namespace, as "name is value (path)"; "".
// /proc/sys/user/* shows the limits of our own user namespace, where unshare counts first.
std::string forbidding_setting() {
    for (const Setting& s : kSettings)
        if (read_setting(s.path) == s.forbidding)
            return std::string(s.name) + " is " + std::to_string(s.forbidding) + " (" + s.path + ")";
    return {};
}

// Why a step of entering a user namespace failed with `err`: the setting that forbids it when
// one does, else the step and the errno (with what ENOSPC means, since strerror's "No space left
// on device" would mislead).
Error refused(const std::string& step, int err) {
    if (std::string setting = forbidding_setting(); !setting.empty())
        return Error{Errc::unavailable,
                     "cannot run without root: user namespaces are disabled for unprivileged users here: " + setting,
                     err};
    std::string what = "cannot run without root: " + step;
    if (err == ENOSPC || err == EUSERS)
        return Error{Errc::unavailable,
                     what + ": too many user namespaces (the limit user.max_user_namespaces, "
                            "/proc/sys/user/max_user_namespaces, is reached, or 32 levels of nesting)",
                     err};
    if (err == EPERM)
        what += " (refused: a seccomp filter or security module forbids user namespaces, or this "
                "process is chrooted)";
    return sys_error(Errc::unavailable, what, err);
}

// Whether AppArmor moved us to its profile for unprivileged user namespaces (Ubuntu 23.10+),
// which denies every capability in them.
bool confined_by_apparmor() {
    const int fd = ::open("/proc/self/attr/apparmor/current", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    return n > 0 && std::string_view(buf, static_cast<std::size_t>(n)).starts_with("unprivileged_userns");
}

// Writes `text` to a /proc/self file in one write(2), as the kernel requires of the id maps.
Result<void> write_proc(const char* path, std::string_view text) {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return refused(std::string("cannot open ") + path, errno);
    const ssize_t n = ::write(fd, text.data(), text.size());
    const int err = errno;
    ::close(fd);
    if (n < 0) return refused(std::string("cannot write ") + path, err);
    if (static_cast<std::size_t>(n) != text.size()) return refused(std::string("short write to ") + path, EIO);
    return {};
}

// Maps `uid` and `gid` (ours outside) to root or to themselves in our new user namespace.
Result<void> write_maps(UserMapping mapping, uid_t uid, gid_t gid) {
    const uid_t inner_uid = mapping == UserMapping::root ? 0 : uid;
    const gid_t inner_gid = mapping == UserMapping::root ? 0 : gid;
    // An unprivileged process may map only its own ids, and its gid only once setgroups(2) is
    // denied (else dropping a group by setgroups could grant access the group was denied).
    if (auto ok = write_proc("/proc/self/uid_map", std::to_string(inner_uid) + " " + std::to_string(uid) + " 1\n"); !ok)
        return ok;
    if (auto ok = write_proc("/proc/self/setgroups", "deny"); !ok) return ok;
    return write_proc("/proc/self/gid_map", std::to_string(inner_gid) + " " + std::to_string(gid) + " 1\n");
}

} // namespace

Result<void> enter_user_namespace(UserMapping mapping) {
    const uid_t uid = ::geteuid();
    const gid_t gid = ::getegid();
    if (uid == 0) return {};
    // unshare(CLONE_NEWUSER) refuses a threaded caller with EINVAL, which would say nothing.
    if (const int n = procfs::thread_count(); n != 1)
        return Error{Errc::unavailable, "cannot enter a user namespace: this process has " + std::to_string(n) +
                                            " threads, and only a single-threaded one can"};
    if (::unshare(CLONE_NEWUSER) < 0) return refused("cannot create a user namespace", errno);
    // From here on a failure leaves us in a namespace without maps (our ids read as 65534, our
    // capabilities useless): the caller can only give up, which is what it does with the error.
    // Ubuntu's AppArmor lets the unshare succeed but confines the process to a profile without
    // capabilities: mounting /proc would fail later, for no visible reason.
    if (confined_by_apparmor()) return refused("the new user namespace has no capabilities", EPERM);
    // A process that changed its credentials (a daemon that dropped root) is not dumpable, and
    // its /proc/self files then belong to root, whom the new namespace does not map: the maps
    // could not be written. Dumpable only for the writes.
    const int dumpable = ::prctl(PR_GET_DUMPABLE);
    if (dumpable != 1) ::prctl(PR_SET_DUMPABLE, 1);
    auto mapped = write_maps(mapping, uid, gid);
    if (dumpable != 1) ::prctl(PR_SET_DUMPABLE, 0); // (2, "suidsafe", cannot be set back by prctl)
    return mapped;
}

bool in_user_namespace() {
    struct stat st;
    return ::stat("/proc/self/ns/user", &st) == 0 && st.st_ino != kInitialUserNamespace;
}

} // namespace nsfork
