// Internal to the setup part: the plan the container's process follows between clone3 and exec
// (built in the runtime by oci/setup_plan.cpp), and the child that follows it (oci/child.cpp,
// built without exceptions). The plan is a list of steps, each one action with everything it
// needs already computed: the child makes system calls only, and a failure is reported as
// {index of the step, errno}, which the runtime turns into an error naming the config.json field
// the step came from.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace nsfork::oci::child {

enum class Op : std::uint8_t {
    // Namespaces and cgroups.
    join_namespaces,  // setns(fd: a pidfd or a namespace fd, number: CLONE_NEW* flags)
    unshare,          // unshare(number: CLONE_NEW* flags)
    join_cgroup,      // write "0" to fd (a cgroup.procs)
    // The root filesystem, before pivot_root; paths are inside it (resolved with RESOLVE_IN_ROOT).
    propagation,      // mount(NULL, "/", NULL, set: MS_REC|MS_SLAVE ...) in the holder's namespace
    attach_root,      // move_mount(fd: the detached root tree) onto path (the staging directory)
    attach_bind,      // move_mount(fd: a detached tree, flags already set) onto path (number 1: a file)
    mount_fs,         // fsopen(text: the type) + fsconfig(options, source: text2) + fsmount(set:
                      //   MOUNT_ATTR_*) onto path, propagation extra (MS_*, 0: none; with MS_REC:
                      //   recursive), number: kMount* bits; the mount's fd is kept in fd for finalize_ro
    make_device,      // mknod path (number: S_IFCHR|mode, set: dev_t, clear: uid, extra: gid), or
                      //   when mknod is not permitted, a bind of the host's node at the same path
    make_symlink,     // symlink text -> path (number 1: replace what is there)
    make_directory,   // mkdir -p path
    hooks,            // the runtime runs createRuntime hooks while we wait
    pivot_root,       // into the root (number 1: MS_MOVE + chroot instead, --no-pivot)
    enter_root,       // fchdir(fd: a running container's root, O_PATH) + chroot (exec)
    // Inside the root from here on: plain paths.
    propagation_after, // mount(NULL, "/", NULL, set) for shared/unbindable roots
    console,          // a pty from /dev/ptmx: slave on /dev/console (number 1), master sent on fd
    finalize_ro,      // mount_setattr read-only on the mount_fs step at index number
    root_readonly,    // mount_setattr(/, read-only)
    sethostname,      // text
    setdomainname,    // text
    write_file,       // text to path (sysctl, oom_score_adj)
    readonly_path,    // bind path on itself, read-only; missing: skipped
    masked_path,      // /dev/null over a file, an empty read-only tmpfs over a directory; missing: skipped
    rlimit,           // setrlimit(number, {soft: set, hard: clear})
    no_new_privs,
    stdio,            // the plan's stdio and preserved fds to 0, 1, 2, 3...; the rest close-on-exec
    drop_bounding,    // PR_CAPBSET_DROP of every capability up to number not in set
    keep_caps,        // PR_SET_KEEPCAPS number
    setgroups,        // the plan's groups
    setresgid,        // number
    setresuid,        // number
    capabilities,     // capset(effective: set, permitted: clear, inheritable: extra), ambient raised: extra2
    umask,            // number
    chdir,            // path
    find_executable,  // the first of the plan's candidates that is an executable regular file
    seccomp,          // the plan's filter (number: SECCOMP_FILTER_FLAG_*)
    ready,            // tell the runtime (create returns); the parent-death signal is cleared first
    exec_fifo,        // open fd (O_PATH of the fifo) for writing through /proc/self/fd, write a byte
    await_start,      // run's instead of the fifo: wait for kGo on the report socket (EOF: the runtime died)
    exec,             // execve the found candidate with the plan's argv and envp
};

// mount_fs's number.
inline constexpr int kMountNoSymlink = 1; // the destination must not be a symlink (proc, sysfs)
inline constexpr int kMountKeepMode = 2;  // the new root takes an existing directory's mode (tmpfs)

struct Step {
    Op op;
    int fd = -1;                  // opened by the runtime; moved above the target fds by the child
    int number = 0;
    std::uint64_t set = 0, clear = 0, extra = 0, extra2 = 0;
    const char* path = nullptr;
    const char* text = nullptr;
    const char* text2 = nullptr;
    const char* const* options = nullptr; // mount_fs: key, value-or-null pairs, null-terminated
};
static_assert(std::is_trivially_destructible_v<Step>);

struct Plan {
    Step* steps = nullptr;        // writable: the child moves fds (it works on its own copy)
    std::size_t count = 0;
    int report = -1;              // SOCK_SEQPACKET to the runtime (Report below), close-on-exec
    int parent_pidfd = -1;        // the runtime: we die with it until ready
    int stdio[3] = {-1, -1, -1};
    int* preserved = nullptr;     // become 3, 4, ...
    std::size_t preserved_count = 0;
    const gid_t* groups = nullptr;
    std::size_t group_count = 0;
    const char* const* candidates = nullptr; // where args[0] may be, null-terminated
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    sock_fprog filter{};          // empty: no seccomp step
};

// What the child tells the runtime on `report`.
enum class ReportKind : std::uint32_t { failed = 1, hooks = 2, ready = 3 };
struct Report {
    ReportKind kind;
    std::uint32_t step;           // failed: the index of the step
    std::int32_t error;           // failed: errno
};
inline constexpr char kGo = 'g';   // the runtime's answer to `hooks`, and its start for `await_start`

// The staging directory of the holder's mount namespace the root is attached on before
// pivot_root: one that every host has (bubblewrap stages on /tmp too). The namespace is the
// container's alone; after pivot_root nothing of the host's tree is left in it.
inline constexpr const char* kStagingDir = "/tmp";

// Runs the plan; never returns (execs, or reports and _exits).
[[noreturn]] void run(Plan& plan) noexcept;

} // namespace nsfork::oci::child
