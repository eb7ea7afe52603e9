// The signals a foreground `nsfork-oci run` forwards to its container's process: runc's list, all
// but the ones it cannot catch, the ones the kernel raises on a fault, job control's, and
// SIGCHLD, SIGPIPE, SIGURG, SIGWINCH; nor glibc's own real-time signals, 32 and 33. Shared by the runtime (support.cpp) and its musl front (front.cpp).
#pragma once

#include <signal.h>

inline sigset_t nsfork_oci_forwarded_signals() {
    sigset_t set;
    ::sigfillset(&set);
    for (int sig : {SIGKILL, SIGSTOP, SIGCHLD, SIGPIPE, SIGURG, SIGWINCH, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS,
                    SIGTSTP, SIGTTIN, SIGTTOU, 32, 33})
        ::sigdelset(&set, sig);
    return set;
}
