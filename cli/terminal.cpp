#include "cli/terminal.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

namespace nsfork::cli {

namespace {

// SIGTTOU blocked for the object's lifetime: tcsetpgrp and tcsetattr from a background group.
class TtouBlocked {
public:
    TtouBlocked() noexcept {
        sigset_t ttou;
        ::sigemptyset(&ttou);
        ::sigaddset(&ttou, SIGTTOU);
        ::sigprocmask(SIG_BLOCK, &ttou, &saved_);
    }
    ~TtouBlocked() { ::sigprocmask(SIG_SETMASK, &saved_, nullptr); }

private:
    sigset_t saved_;
};

// Writes all of `data` to the blocking fd `fd`; false on an error (EPIPE: no reader left).
bool write_all(int fd, const char* data, std::size_t size) {
    while (size) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

} // namespace

ForegroundTerminal ForegroundTerminal::of_caller() {
    UniqueFd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!tty || ::tcgetpgrp(tty.get()) != ::getpgrp()) return {};
    return ForegroundTerminal(std::move(tty));
}

void ForegroundTerminal::take_back() {
    if (!std::exchange(command_has_it_, false)) return;
    const TtouBlocked blocked;
    (void)::tcsetpgrp(tty_.get(), ::getpgrp());
}

bool ForegroundTerminal::ours() const { return tty_ && ::tcgetpgrp(tty_.get()) == ::getpgrp(); }

Result<RawMode> RawMode::enter(int fd) {
    termios saved;
    if (::tcgetattr(fd, &saved) < 0) return sys_error(Errc::internal, "cannot read the terminal's mode", errno);
    termios raw = saved;
    ::cfmakeraw(&raw);
    if (::tcsetattr(fd, TCSADRAIN, &raw) < 0)
        return sys_error(Errc::internal, "cannot put the terminal in raw mode", errno);
    return RawMode(fd, saved);
}

RawMode::~RawMode() {
    if (fd_ < 0) return;
    const TtouBlocked blocked; // restored even when we ended up in the background
    (void)::tcsetattr(fd_, TCSADRAIN, &saved_);
}

void copy_window_size(int from, int master) {
    winsize size;
    if (from >= 0 && ::ioctl(from, TIOCGWINSZ, &size) == 0) (void)::ioctl(master, TIOCSWINSZ, &size);
}

Relay::Relay(int in, int out, UniqueFd master) : in_(in), out_(out), master_(std::move(master)) {
    const int flags = ::fcntl(master_.get(), F_GETFL);
    if (flags >= 0) ::fcntl(master_.get(), F_SETFL, flags | O_NONBLOCK);
}

int Relay::poll_set(pollfd* fds) const {
    int n = 0;
    if (input_open_ && pending_.empty()) fds[n++] = {in_, POLLIN, 0};
    if (master_open_) fds[n++] = {master_.get(), short(POLLIN | (pending_.empty() ? 0 : POLLOUT)), 0};
    return n;
}

void Relay::handle(const pollfd* fds, int count) {
    for (int i = 0; i < count; ++i) {
        if (!fds[i].revents) continue;
        if (fds[i].fd == in_) {
            from_input();
        } else {
            // One read per wake-up: a command that writes without pause must not starve the
            // signals and input the same loop serves.
            if (fds[i].revents & ~POLLOUT) from_master(false);
            if (fds[i].revents & POLLOUT) to_master();
        }
    }
}

void Relay::from_input() {
    char buf[4096];
    const ssize_t n = ::read(in_, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n > 0) {
        pending_.append(buf, static_cast<std::size_t>(n));
    } else { // EOF (or a hung-up terminal): the command sees its end of input as typed ^D
        input_open_ = false;
        termios mode;
        if (!eof_sent_ && ::tcgetattr(master_.get(), &mode) == 0 && (mode.c_lflag & ICANON))
            pending_.push_back(char(mode.c_cc[VEOF]));
        eof_sent_ = true;
    }
    to_master();
}

void Relay::to_master() {
    while (!pending_.empty() && master_open_) {
        const ssize_t n = ::write(master_.get(), pending_.data(), pending_.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break; // POLLOUT tells when there is room
        if (n < 0) { // EIO: no slave left, nobody to read it
            pending_.clear();
            break;
        }
        pending_.erase(0, static_cast<std::size_t>(n));
    }
}

void Relay::from_master(bool until_empty) {
    char buf[16384];
    do {
        const ssize_t n = ::read(master_.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { // EIO: every slave closed, nothing more will come
            master_open_ = false;
            pending_.clear();
            return;
        }
        // Our stdout gone (EPIPE) is the command's output discarded, not a reason to kill it.
        (void)write_all(out_, buf, static_cast<std::size_t>(n));
    } while (until_empty);
}

void Relay::drain() {
    if (master_open_) from_master(true);
}

} // namespace nsfork::cli
