#include "oci/hooks.hpp"

#include "base/pidfd.hpp"
#include "nsfork/fd.hpp"
#include "base/syscalls.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

namespace nsfork::oci {

namespace {

// A NULL-terminated vector of C strings pointing into `strings`.
std::vector<char*> c_strings(const std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

// Starts the hook with the read end of a pipe as its stdin, and feeds it the state. The write end
// is closed before waiting: a hook that reads to EOF must get it.
Result<pid_t> spawn_hook(const Hook& hook, const std::string& state_json) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) return sys_error(Errc::internal, "pipe", errno);
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, read_end.get(), 0);
    const std::vector<std::string> args = hook.args.empty() ? std::vector<std::string>{hook.path} : hook.args;
    auto argv = c_strings(args);
    auto envp = c_strings(hook.env);
    // A foreground run blocks the signals it forwards: a hook starts with none blocked.
    posix_spawnattr_t attr;
    ::posix_spawnattr_init(&attr);
    sigset_t none;
    ::sigemptyset(&none);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    const int err = ::posix_spawn(&pid, hook.path.c_str(), &actions, &attr, argv.data(), envp.data());
    ::posix_spawnattr_destroy(&attr);
    ::posix_spawn_file_actions_destroy(&actions);
    if (err) return sys_error(Errc::launch_failed, "cannot run " + hook.path, err);
    read_end.reset();
    // A hook that does not read its stdin makes this EPIPE: not its failure. SIGPIPE is ignored
    // around the write so that it is an error code, not our death.
    struct sigaction ignore{}, old{};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old);
    for (std::size_t done = 0; done < state_json.size();) {
        const ssize_t n = ::write(write_end.get(), state_json.data() + done, state_json.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
    }
    ::sigaction(SIGPIPE, &old, nullptr);
    return pid;
}

// Waits for the hook, killing it once `timeout` seconds passed (none: waits as long as it runs).
Result<ExitStatus> wait_hook(pid_t pid, std::optional<int> timeout) {
    UniqueFd pidfd(sys::pidfd_open(pid, 0));
    if (!pidfd) return sys_error(Errc::internal, "pidfd_open", errno);
    if (timeout) {
        pollfd p{pidfd.get(), POLLIN, 0};
        int n;
        while ((n = ::poll(&p, 1, *timeout * 1000)) < 0 && errno == EINTR) {}
        if (n == 0) {
            (void)signal_pidfd(pidfd.get(), SIGKILL);
            (void)reap(pidfd.get());
            return Error{Errc::launch_failed, "timed out after " + std::to_string(*timeout) + " s"};
        }
    }
    return reap(pidfd.get());
}

} // namespace

Result<void> run_hooks(const std::vector<Hook>& hooks, std::string_view kind, const std::string& state_json) {
    for (const Hook& hook : hooks) {
        const std::string what = std::string(kind) + " hook " + hook.path;
        auto pid = spawn_hook(hook, state_json);
        if (!pid) return Error{pid.error().code, what + ": " + pid.error().message};
        auto status = wait_hook(*pid, hook.timeout);
        if (!status) return Error{status.error().code, what + ": " + status.error().message};
        if (status->signal) return Error{Errc::launch_failed, what + ": killed by signal " + std::to_string(status->signal)};
        if (status->code) return Error{Errc::launch_failed, what + ": exit status " + std::to_string(status->code)};
    }
    return {};
}

} // namespace nsfork::oci
