// clone3 for a child process, typed so that it cannot be misused: only the flags below exist, so
// CLONE_VM, CLONE_THREAD, CLONE_FILES and CLONE_SIGHAND (a child sharing our memory, fd table or
// handlers) cannot be asked for. The child runs on a copy of the caller (clone_process,
// fork-like), or in the caller's memory while the caller sleeps until it execs (spawn_process,
// posix_spawn's way: CLONE_VM | CLONE_VFORK, the one combination in which sharing is safe).
#pragma once

#include "base/exit_codes.h"
#include "base/syscalls.hpp"

#include <sched.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace nsfork {

// A set of the clone3 flags a process-creating child may take.
class CloneFlags {
public:
    constexpr CloneFlags() = default;
    static constexpr CloneFlags new_pid_namespace() { return CloneFlags(sys::kCloneNewPid); }
    static constexpr CloneFlags new_mount_namespace() { return CloneFlags(sys::kCloneNewNs); }
    static constexpr CloneFlags new_network_namespace() { return CloneFlags(CLONE_NEWNET); }
    static constexpr CloneFlags new_uts_namespace() { return CloneFlags(CLONE_NEWUTS); }
    static constexpr CloneFlags new_ipc_namespace() { return CloneFlags(CLONE_NEWIPC); }
    static constexpr CloneFlags new_cgroup_namespace() { return CloneFlags(CLONE_NEWCGROUP); }
    // The child's parent is our parent (and it must be given exit signal 0).
    static constexpr CloneFlags parent() { return CloneFlags(sys::kCloneParent); }
    // Handlers reset to SIG_DFL in the child (Linux 5.5), so none of ours can run there.
    static constexpr CloneFlags clear_sighand() { return CloneFlags(sys::kCloneClearSighand); }

    constexpr CloneFlags operator|(CloneFlags o) const { return CloneFlags(bits_ | o.bits_); }
    constexpr CloneFlags& operator|=(CloneFlags o) {
        bits_ |= o.bits_;
        return *this;
    }
    constexpr bool has(CloneFlags o) const { return (bits_ & o.bits_) == o.bits_; }
    constexpr std::uint64_t bits() const { return bits_; }

private:
    constexpr explicit CloneFlags(std::uint64_t bits) : bits_(bits) {}
    std::uint64_t bits_ = 0;
};

struct CloneOptions {
    CloneFlags flags;
    int cgroup_fd = -1;       // cgroup v2 directory to be born into (CLONE_INTO_CGROUP); -1: ours
    int exit_signal = SIGCHLD; // 0 with CloneFlags::parent()
    int* pidfd = nullptr;     // receives a pidfd of the child (CLONE_PIDFD); nullptr: none
};

namespace detail {

inline sys::CloneArgs clone_args(const CloneOptions& o) noexcept {
    sys::CloneArgs args;
    args.flags = o.flags.bits();
    if (o.pidfd) {
        args.flags |= sys::kClonePidfd;
        args.pidfd = reinterpret_cast<std::uintptr_t>(o.pidfd);
    }
    if (o.cgroup_fd >= 0) {
        args.flags |= sys::kCloneIntoCgroup;
        args.cgroup = static_cast<std::uint64_t>(o.cgroup_fd);
    }
    args.exit_signal = static_cast<std::uint64_t>(o.exit_signal);
    return args;
}

} // namespace detail

// clone3; in the child, runs `child_main` (which should not return: if it does, the child
// _exits with NSFORK_EXIT_FAILED). Returns the child's pid, or -1 with errno. The child runs on
// a copy of our memory like after fork(): only system calls there (glibc's cached tid is stale,
// atfork handlers did not run, another thread may have held a lock). Only from a process whose
// other threads hold no lock the child needs — in practice, single-threaded.
template <class ChildMain>
pid_t clone_process(const CloneOptions& o, ChildMain&& child_main) noexcept {
    sys::CloneArgs args = detail::clone_args(o);
    const pid_t pid = sys::clone3(&args);
    if (pid == 0) {
        child_main();
        ::_exit(NSFORK_EXIT_FAILED);
    }
    return pid;
}

// Pins the calling thread to the CPU it runs on for the object's lifetime, so that a child cloned
// meanwhile starts there too; the affinity it had is restore()'s. A new task goes to the idlest
// CPU, and waking an idle vCPU costs tens of µs on these VMs: under spawn_process that came
// twice per launch, once for the child's start and once for our wake-up after its exec. Pinned,
// the child runs on our CPU the moment we sleep in the vfork wait, and wakes us where we were.
// (Measured, bench `launch`: a cold launch until exec'd 1.7-2.0x the raw floor -> 0.9-1.0x.)
// For spawn_process's caller: pin, clone with the child's first act restoring restore(), unpin.
class OnThisCpu {
public:
    OnThisCpu() noexcept {
        if (::sched_getaffinity(0, sizeof saved_, &saved_) < 0 || CPU_COUNT(&saved_) < 2) return;
        const int cpu = ::sched_getcpu();
        if (cpu < 0) return;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pinned_ = ::sched_setaffinity(0, sizeof one, &one) == 0;
    }
    ~OnThisCpu() {
        if (pinned_) (void)::sched_setaffinity(0, sizeof saved_, &saved_);
    }
    OnThisCpu(const OnThisCpu&) = delete;
    OnThisCpu& operator=(const OnThisCpu&) = delete;
    // The affinity to go back to (for a child born pinned), or nullptr if nothing was pinned.
    const cpu_set_t* restore() const { return pinned_ ? &saved_ : nullptr; }

private:
    cpu_set_t saved_;
    bool pinned_ = false;
};

// Where spawn_process shares our memory: x86-64, outside the sanitizers' builds (whose
// instrumented child code would keep its bookkeeping for a stack they do not know). Elsewhere
// it is clone_process.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define NSFORK_SHARED_MEMORY_CLONE 1
#else
#define NSFORK_SHARED_MEMORY_CLONE 0
#endif

namespace detail {

#if NSFORK_SHARED_MEMORY_CLONE
// clone3(args) whose child calls fn(arg) on args->stack and exits with what it returns. A child
// sharing our memory cannot return through our frames, as a fork-like one does: it starts
// here, on a stack of its own. Returns clone3's result in the parent (-errno on failure).
inline long clone3_calling(sys::CloneArgs* args, int (*fn)(void*), void* arg) noexcept {
    long ret;
    register long fn_reg asm("r10") = reinterpret_cast<long>(fn);   // kept by syscall, and
    register long arg_reg asm("r8") = reinterpret_cast<long>(arg);  // copied into the child
    asm volatile("syscall\n\t"
                 "test %%rax, %%rax\n\t"
                 "jnz 1f\n\t"
                 "xor %%ebp, %%ebp\n\t" // the child: the outermost frame
                 "mov %%r8, %%rdi\n\t"
                 "call *%%r10\n\t"
                 "mov %%eax, %%edi\n\t"
                 "mov $60, %%eax\n\t" // exit(2)
                 "syscall\n\t"
                 "hlt\n"
                 "1:"
                 : "=a"(ret)
                 : "a"(static_cast<long>(SYS_clone3)), "D"(args), "S"(sizeof(sys::CloneArgs)), "r"(fn_reg), "r"(arg_reg)
                 : "rcx", "r11", "memory");
    return ret;
}
#endif

} // namespace detail

// clone_process, but the child runs in our memory, on `stack`, and we sleep until it has exec'd
// or exited (CLONE_VM | CLONE_VFORK, what posix_spawn does). Nothing of ours is copied at the
// clone, nor torn down again at the child's exec: for the server here that is ~70 µs less in
// clone3 and ~300 µs less until a short command has ended (bench/README.md, "Where a cold
// launch's time goes"). The child may make
// system calls and use its stack only: every other byte it writes is ours — errno too, which is
// not to be trusted after a successful call. It must not wait for us (we are asleep). `stack`
// is the caller's until this returns (16-byte aligned end; a few KiB are used).
template <class ChildMain>
pid_t spawn_process(const CloneOptions& o, std::span<std::byte> stack, ChildMain&& child_main) noexcept {
#if NSFORK_SHARED_MEMORY_CLONE
    sys::CloneArgs args = detail::clone_args(o);
    args.flags |= CLONE_VM | CLONE_VFORK;
    args.stack = reinterpret_cast<std::uintptr_t>(stack.data());
    args.stack_size = stack.size() & ~std::size_t{15};
    using Main = std::remove_reference_t<ChildMain>;
    const long pid = detail::clone3_calling(
        &args,
        [](void* main) -> int {
            (*static_cast<Main*>(main))();
            return NSFORK_EXIT_FAILED;
        },
        &child_main);
    if (pid < 0) {
        errno = static_cast<int>(-pid);
        return -1;
    }
    return static_cast<pid_t>(pid);
#else
    (void)stack;
    return clone_process(o, std::forward<ChildMain>(child_main));
#endif
}

} // namespace nsfork
