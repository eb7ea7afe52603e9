/* The signals `nsfork run` passes on to its container's pid 1 instead of dying of them, and
 * those the caller's process gives its children, which the command gets too. Plain C: the full
 * program (cli/run.cpp) and the musl front (cli/front.cpp) both use them. */
#ifndef NSFORK_FORWARDED_SIGNALS_H
#define NSFORK_FORWARDED_SIGNALS_H

#include <signal.h>
#include <stdint.h>

#define NSFORK_FORWARDED_SIGNALS SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT

/* Our blocked and ignored signals (bit N-1: signal N), read before we change our own. */
static inline void nsfork_inherited_signals(uint64_t *blocked_out, uint64_t *ignored_out) {
    sigset_t blocked;
    int sig;
    *blocked_out = *ignored_out = 0;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    for (sig = 1; sig <= 64 && sig < NSIG; ++sig) {
        const uint64_t bit = (uint64_t)1 << (sig - 1);
        struct sigaction action;
        if (sigismember(&blocked, sig) == 1) *blocked_out |= bit;
        if (sigaction(sig, NULL, &action) == 0 && action.sa_handler == SIG_IGN) *ignored_out |= bit;
    }
}

#endif
