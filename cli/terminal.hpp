// The caller's terminal as `nsfork run` shares it: the command in its foreground while it runs
// (job control across the container's boundary), or, with -t, the caller's terminal in raw
// mode relaying a pseudo-terminal of the container's own.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <poll.h>
#include <termios.h>

#include <string>
#include <utility>

namespace nsfork::cli {

// Our controlling terminal while our process group is its foreground (we are the shell's
// foreground job). The command takes the foreground (the shim gives it, and gives it again on
// NSFORK_JOB_CONTINUE); we take it back when the command stops and at the end, so that the shell
// gets its terminal back from the group it gave it to.
class ForegroundTerminal {
public:
    // The controlling terminal when our group is its foreground; an empty object otherwise
    // (no terminal, or we are a background job).
    static ForegroundTerminal of_caller();

    ForegroundTerminal() = default;
    ForegroundTerminal(ForegroundTerminal&& o) noexcept
        : tty_(std::move(o.tty_)), command_has_it_(std::exchange(o.command_has_it_, false)) {}
    ForegroundTerminal& operator=(ForegroundTerminal&&) = delete;
    ~ForegroundTerminal() { take_back(); }

    explicit operator bool() const { return bool(tty_); }
    // The command has the foreground now (launched, or continued by NSFORK_JOB_CONTINUE).
    void given() { command_has_it_ = bool(tty_); }
    // Makes our process group the foreground again if the command has it (not after `bg`: the
    // shell has it then). We are a background group: SIGTTOU, which would stop us for it, is
    // blocked meanwhile.
    void take_back();
    // Whether our group is the foreground (the shell's `fg` continued us, not `bg`).
    bool ours() const;

private:
    explicit ForegroundTerminal(UniqueFd tty) : tty_(std::move(tty)) {}
    UniqueFd tty_;
    bool command_has_it_ = false; // not after the shell's `bg`: the shell has it then
};

// The terminal `fd` in raw mode for the object's lifetime (cfmakeraw; restored as it was).
class RawMode {
public:
    static Result<RawMode> enter(int fd);
    RawMode(RawMode&& o) noexcept : fd_(std::exchange(o.fd_, -1)), saved_(o.saved_) {}
    RawMode(const RawMode&) = delete;
    RawMode& operator=(const RawMode&) = delete;
    ~RawMode();

private:
    RawMode(int fd, const termios& saved) : fd_(fd), saved_(saved) {}
    int fd_;
    termios saved_;
};

// The window size of the terminal `from` given to the pseudo-terminal master `master` (whose
// foreground group the kernel then sends SIGWINCH). A no-op when `from` is not a terminal.
void copy_window_size(int from, int master);

// -t: relays our stdin to a pseudo-terminal master and the master's output to our stdout.
// The master is non-blocking; our stdin and stdout are left as they are (their open file
// descriptions are the shell's too). Input waits in a buffer while the master is full, so a
// command that does not read never stops its output from reaching us.
class Relay {
public:
    Relay(int in, int out, UniqueFd master);

    int master() const { return master_.get(); }
    // Fills `fds` (room for 2) with what to poll; returns how many.
    int poll_set(pollfd* fds) const;
    // Handles the events poll_set's entries got.
    void handle(const pollfd* fds, int count);
    // Copies what the master still holds to our stdout (after the command ended).
    void drain();

private:
    void from_master(bool until_empty);
    void to_master();
    void from_input();

    int in_, out_;
    UniqueFd master_;
    std::string pending_;       // read from our stdin, not yet taken by the master
    bool input_open_ = true;    // until our stdin's EOF
    bool master_open_ = true;   // until EIO: no slave left
    bool eof_sent_ = false;     // our stdin's EOF told the command (its VEOF character)
};

} // namespace nsfork::cli
