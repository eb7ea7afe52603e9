/* Job control across the container boundary (nsfork run on the caller's terminal). When the
 * plan asks for it (NSFORK_PLAN_FOREGROUND), the shim keeps its plan socket after the exec report
 * and uses it as a channel with its launcher, one record per datagram:
 *   shim -> launcher  NSFORK_JOB_STOPPED: the command was stopped by `signal` (^Z, SIGTTIN...).
 *                     The launcher takes the terminal's foreground back (its group is not visible
 *                     inside the container) and stops itself, so that its shell sees the job stop.
 *   launcher -> shim  NSFORK_JOB_CONTINUE: the launcher was continued (`fg`): the shim makes the
 *                     command's process group the foreground again and sends it SIGCONT.
 *   launcher -> shim  NSFORK_JOB_CONTINUE_BACKGROUND: the launcher was continued in the
 *                     background (`bg`): the shim sends the command's group SIGCONT only.
 * The shim reports stops of the command itself (its group leader), not of its other processes.
 * Plain C: the musl-static shim and the C++ launcher share it. */
#ifndef NSFORK_JOB_CONTROL_H
#define NSFORK_JOB_CONTROL_H

#include <signal.h>
#include <stdint.h>
#include <unistd.h>

enum nsfork_job_kind { NSFORK_JOB_STOPPED = 1, NSFORK_JOB_CONTINUE = 2, NSFORK_JOB_CONTINUE_BACKGROUND = 3 };

struct nsfork_job_event {
    int32_t kind;   /* enum nsfork_job_kind */
    int32_t signal; /* NSFORK_JOB_STOPPED: the stop signal; else 0 */
};

/* The launcher stops as the command stopped: by the same signal where it would stop the launcher
 * (at its default disposition, not blocked, a job-control stop), else by SIGSTOP, so that the
 * shell sees its job stop. */
static inline void nsfork_stop_self(int signal) {
    struct sigaction action;
    sigset_t blocked;
    int stops;
    sigaction(signal, NULL, &action);
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    stops = action.sa_handler == SIG_DFL && !sigismember(&blocked, signal) &&
            (signal == SIGTSTP || signal == SIGTTIN || signal == SIGTTOU);
    kill(getpid(), stops ? signal : SIGSTOP);
}

#endif
