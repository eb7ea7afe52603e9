#include "testing/pty.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace nsfork::testing {

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline`, for poll (0 once past).
int left_until(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

// Waits until `fd` is readable, up to `deadline`.
bool readable(int fd, Clock::time_point deadline) {
    pollfd p{fd, POLLIN, 0};
    for (;;) {
        const int n = ::poll(&p, 1, left_until(deadline));
        if (n > 0) return true;
        if (n == 0 || errno != EINTR) return false;
    }
}

// The job, in the shell's child: a process group of its own, the terminal's foreground unless
// started in the background, the signal state the test asked for; then exec.
[[noreturn]] void exec_job(const std::vector<std::string>& argv, const PtyJob::Options& options) {
    ::setpgid(0, 0);
    if (options.foreground) ::tcsetpgrp(0, ::getpid()); // SIGTTOU: the shell ignores it, so do we yet
    // What an interactive shell ignores, its jobs get back at their defaults.
    for (int sig : {SIGTSTP, SIGTTIN, SIGTTOU, SIGINT, SIGQUIT}) ::signal(sig, SIG_DFL);
    for (int sig : options.ignored) ::signal(sig, SIG_IGN);
    ::sigprocmask(SIG_SETMASK, &options.blocked, nullptr);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execve(args[0], args.data(), environ);
    ::_exit(127);
}

// The shell: leads a new session whose controlling terminal is the pty, starts the job, then
// reports each of its changes of state on `statuses` and does `fg`/`bg` as told on `control`.
// On the test's end of `control` closing, it kills the job's group, reaps it and exits.
[[noreturn]] void shell(const std::string& slave_path, const std::vector<std::string>& argv,
                        const PtyJob::Options& options, int control, int statuses) {
    if (::setsid() < 0) ::_exit(120);
    const int tty = ::open(slave_path.c_str(), O_RDWR); // our controlling terminal: we lead a session
    if (tty < 0 || ::dup2(tty, 0) < 0 || ::dup2(tty, 1) < 0 || ::dup2(tty, 2) < 0) ::_exit(121);
    if (tty > 2) ::close(tty);
    // As an interactive shell does: its terminal's job-control signals are not for it.
    for (int sig : {SIGTSTP, SIGTTIN, SIGTTOU, SIGINT, SIGQUIT}) ::signal(sig, SIG_IGN);
    sigset_t chld;
    ::sigemptyset(&chld);
    ::sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &chld, nullptr);
    const int sigfd = ::signalfd(-1, &chld, SFD_CLOEXEC);
    if (sigfd < 0) ::_exit(122);

    const pid_t job = ::fork();
    if (job < 0) ::_exit(123);
    if (job == 0) exec_job(argv, options);
    ::setpgid(job, job); // both sides, so that neither order of the two races
    // The terminal, though, the job takes itself, before its exec: given here as well, it could
    // come after nsfork run had passed the foreground on to its command, and take it back from
    // under it (its `read` then stopped it with SIGTTIN, once in a full suite).
    if (::write(statuses, &job, sizeof job) != sizeof job) ::_exit(124);

    bool ended = false;
    for (;;) {
        pollfd fds[2] = {{control, POLLIN, 0}, {sigfd, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) continue;
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si;
            (void)::read(sigfd, &si, sizeof si);
            int change[2] = {0, 0}; // the wait status, the terminal's foreground group then
            while (!ended && ::waitpid(job, &change[0], WNOHANG | WUNTRACED | WCONTINUED) == job) {
                change[1] = ::tcgetpgrp(0);
                (void)::write(statuses, change, sizeof change);
                ended = WIFEXITED(change[0]) || WIFSIGNALED(change[0]);
                // A stopped job hands the terminal back to the shell (its own group). At the
                // job's end it is left where the job left it, for the test to see.
                if (WIFSTOPPED(change[0])) ::tcsetpgrp(0, ::getpgrp());
            }
        }
        if (fds[0].revents) {
            char what = 0;
            if (::read(control, &what, 1) != 1) break;
            if (what == 'f') ::tcsetpgrp(0, job);
            ::kill(-job, SIGCONT);
        }
    }
    if (!ended) {
        ::kill(-job, SIGKILL);
        ::waitpid(job, nullptr, 0);
    }
    ::_exit(0);
}

} // namespace

Result<PtyJob> PtyJob::start(const std::vector<std::string>& argv, const Options& options) {
    UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master) return sys_error(Errc::internal, "posix_openpt", errno);
    char name[64];
    if (::grantpt(master.get()) < 0 || ::unlockpt(master.get()) < 0 || ::ptsname_r(master.get(), name, sizeof name))
        return sys_error(Errc::internal, "cannot set the pty's slave up", errno);
    int control[2], statuses[2];
    if (::pipe2(control, O_CLOEXEC) < 0) return sys_error(Errc::internal, "pipe2", errno);
    UniqueFd control_read(control[0]), control_write(control[1]);
    if (::pipe2(statuses, O_CLOEXEC) < 0) return sys_error(Errc::internal, "pipe2", errno);
    UniqueFd statuses_read(statuses[0]), statuses_write(statuses[1]);

    const std::string slave_path = name;
    if (::ioctl(master.get(), TIOCSWINSZ, &options.size) < 0) return sys_error(Errc::internal, "TIOCSWINSZ", errno);
    termios initial{};
    {
        UniqueFd slave(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
        if (!slave || ::tcgetattr(slave.get(), &initial) < 0)
            return sys_error(Errc::internal, "cannot read the pty's mode", errno);
    }
    const pid_t pid = ::fork();
    if (pid < 0) return sys_error(Errc::internal, "fork", errno);
    if (pid == 0) {
        ::close(master.get());
        ::close(control_write.get());
        ::close(statuses_read.get());
        shell(slave_path, argv, options, control_read.get(), statuses_write.get());
    }
    control_read.reset();
    statuses_write.reset();
    pid_t job = -1;
    if (!readable(statuses_read.get(), Clock::now() + std::chrono::seconds(10)) ||
        ::read(statuses_read.get(), &job, sizeof job) != sizeof job) {
        control_write.reset();
        ::waitpid(pid, nullptr, 0);
        return Error{Errc::internal, "the test's shell did not start its job"};
    }
    return PtyJob(std::move(master), slave_path, initial, pid, job, std::move(control_write), std::move(statuses_read));
}

PtyJob::PtyJob(UniqueFd master, std::string slave_path, const termios& initial_mode, pid_t shell, pid_t job,
               UniqueFd control, UniqueFd statuses)
    : master_(std::move(master)), slave_path_(std::move(slave_path)), initial_mode_(initial_mode), shell_(shell), job_(job),
      control_(std::move(control)), statuses_(std::move(statuses)) {}

PtyJob::PtyJob(PtyJob&& o) noexcept
    : master_(std::move(o.master_)), slave_path_(std::move(o.slave_path_)), initial_mode_(o.initial_mode_),
      shell_(std::exchange(o.shell_, -1)),
      job_(std::exchange(o.job_, -1)), control_(std::move(o.control_)), statuses_(std::move(o.statuses_)),
      foreground_at_change_(o.foreground_at_change_), seen_(std::move(o.seen_)) {}

PtyJob::~PtyJob() {
    if (shell_ < 0) return;
    control_.reset(); // the shell kills and reaps what is left of the job, then exits
    ::waitpid(shell_, nullptr, 0);
}

Result<int> PtyJob::next_status(std::chrono::milliseconds limit) {
    int change[2];
    if (!readable(statuses_.get(), Clock::now() + limit) || ::read(statuses_.get(), change, sizeof change) != sizeof change)
        return Error{Errc::internal, "the job's state did not change in time"};
    foreground_at_change_ = change[1];
    return change[0];
}

Result<void> PtyJob::tell_shell(char what) {
    if (::write(control_.get(), &what, 1) != 1) return sys_error(Errc::internal, "cannot reach the test's shell", errno);
    return {};
}

Result<void> PtyJob::fg() { return tell_shell('f'); }
Result<void> PtyJob::bg() { return tell_shell('b'); }

Result<void> PtyJob::type(std::string_view text) {
    while (!text.empty()) {
        const ssize_t n = ::write(master_.get(), text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error(Errc::internal, "cannot write to the pty", errno);
        text.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

Result<std::string> PtyJob::read_until(std::string_view text, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
        if (const auto at = seen_.find(text); at != std::string::npos) {
            std::string out = seen_.substr(0, at + text.size());
            seen_.erase(0, at + text.size());
            return out;
        }
        char buf[4096];
        ssize_t n = -1;
        if (readable(master_.get(), deadline)) n = ::read(master_.get(), buf, sizeof buf);
        if (n <= 0) return Error{Errc::internal, "'" + std::string(text) + "' never showed; the terminal showed '" + seen_ + "'"};
        seen_.append(buf, static_cast<std::size_t>(n));
    }
}

Result<std::string> PtyJob::drain() {
    // The kernel moves what the slave wrote into the master's buffer in a worker: poll and
    // read wait for that worker, so what was written before now is seen.
    while (readable(master_.get(), Clock::now())) {
        char buf[4096];
        const ssize_t n = ::read(master_.get(), buf, sizeof buf);
        if (n > 0) seen_.append(buf, static_cast<std::size_t>(n));
        else if (n == 0 || errno == EIO) break;
        else if (errno != EINTR && errno != EAGAIN) return sys_error(Errc::internal, "cannot read the pty", errno);
    }
    return std::exchange(seen_, {});
}

pid_t PtyJob::foreground() const { return ::tcgetpgrp(master_.get()); }

Result<termios> PtyJob::mode() const {
    UniqueFd slave(::open(slave_path_.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
    termios t{};
    if (!slave || ::tcgetattr(slave.get(), &t) < 0) return sys_error(Errc::internal, "cannot read the pty's mode", errno);
    return t;
}

Result<void> PtyJob::resize(unsigned short rows, unsigned short cols) {
    const winsize size{rows, cols, 0, 0};
    if (::ioctl(master_.get(), TIOCSWINSZ, &size) < 0) return sys_error(Errc::internal, "cannot resize the pty", errno);
    return {};
}

} // namespace nsfork::testing
