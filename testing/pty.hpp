// A program run on a terminal, as a person runs it from an interactive shell: a pseudo-terminal
// of its own whose master the test holds (what is written there is typed, what is read there
// is shown), and a "shell" — the session's leader, the terminal's controlling process — that
// starts the program as its foreground job and does job control on the test's behalf.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"

#include <sys/ioctl.h>
#include <sys/types.h>
#include <termios.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nsfork::testing {

class PtyJob {
public:
    struct Options {
        sigset_t blocked;                 // the job's blocked signals (default: none)
        std::vector<int> ignored;         // signals the job starts ignoring
        bool foreground = true;           // started as the foreground job (else as `cmd &`)
        winsize size{24, 80, 0, 0};       // the terminal's window size to begin with
        Options() { sigemptyset(&blocked); }
    };

    // Starts `argv` (argv[0] a path; this process's environment) as a job: its own process
    // group, led by itself, in a new session whose controlling terminal is a new pty.
    static Result<PtyJob> start(const std::vector<std::string>& argv, const Options& options = Options());

    PtyJob(PtyJob&& o) noexcept;
    PtyJob& operator=(PtyJob&&) = delete;
    // Kills what is left of the job's group and of the session, and reaps the shell.
    ~PtyJob();

    int master() const { return master_.get(); }
    pid_t job() const { return job_; } // its pid, which is its process group's id
    // The pty's slave ("/dev/pts/N"), for opening it from outside (O_NOCTTY).
    const std::string& slave_path() const { return slave_path_; }

    // The job's next change of state as the shell's waitpid(WUNTRACED | WCONTINUED) saw it (a
    // wait status), or an error after `limit`. When the job stopped, the shell then takes the
    // terminal back, as shells do; when it ended, the shell leaves the terminal as it was.
    Result<int> next_status(std::chrono::milliseconds limit = std::chrono::seconds(10));
    // The terminal's foreground group when the shell saw that change, before it did anything.
    pid_t foreground_at_change() const { return foreground_at_change_; }
    // The shell's `fg`: gives the job's group the terminal and sends it SIGCONT.
    Result<void> fg();
    // The shell's `bg`: SIGCONT only, the terminal stays the shell's.
    Result<void> bg();

    // Types `text` on the terminal.
    Result<void> type(std::string_view text);
    // What the terminal showed until `text` appeared in it (all of it, `text` included), or an
    // error after `limit` saying what came instead.
    Result<std::string> read_until(std::string_view text, std::chrono::milliseconds limit = std::chrono::seconds(10));
    // What the terminal shows now, not read yet (once the job ended: the rest of its output).
    Result<std::string> drain();

    // The terminal's foreground process group (tcgetpgrp through the master).
    pid_t foreground() const;
    // The terminal's mode as the job sees it (tcgetattr on the slave); as it was before the job.
    Result<termios> mode() const;
    const termios& initial_mode() const { return initial_mode_; }
    // Resizes the terminal; the kernel sends its foreground group SIGWINCH.
    Result<void> resize(unsigned short rows, unsigned short cols);

private:
    PtyJob(UniqueFd master, std::string slave_path, const termios& initial_mode, pid_t shell, pid_t job,
           UniqueFd control, UniqueFd statuses);
    Result<void> tell_shell(char what);

    UniqueFd master_;
    std::string slave_path_;
    termios initial_mode_;
    pid_t shell_ = -1;
    pid_t job_ = -1;
    UniqueFd control_;  // to the shell: 'f' (fg), 'b' (bg)
    UniqueFd statuses_; // from the shell: the job's wait statuses and the foreground then
    pid_t foreground_at_change_ = -1;
    std::string seen_;  // read from the master past what read_until returned
};

} // namespace nsfork::testing
