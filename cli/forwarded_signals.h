/* The signals `nsfork run` passes on to its container's pid 1 instead of dying of them. Plain C:
 * the full program (cli/run.cpp) and the musl front (cli/front.cpp) both forward these. */
#ifndef NSFORK_FORWARDED_SIGNALS_H
#define NSFORK_FORWARDED_SIGNALS_H

#include <signal.h>

#define NSFORK_FORWARDED_SIGNALS SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT

#endif
