/* The record a container's first process writes on its close-on-exec report pipe.
 *
 * Plain C so that the musl-static shim and the C++ launcher share one definition.
 * A launch writes one record when it ends: stage NSFORK_STAGE_OK once the command was exec'd
 * (by the shim), or the failing stage and its errno. With a plan socket the shim also writes
 * an OK record before that, on the pipe, once it is up and waiting for its plan; its OK record
 * on the plan socket carries, as an SCM_RIGHTS fd, the master of the container's pseudo-terminal
 * when the plan asked for one (NSFORK_PLAN_TTY). EOF without
 * a record means the process died before it could report (killed from outside during setup). */
#ifndef NSFORK_EXEC_REPORT_H
#define NSFORK_EXEC_REPORT_H

#include <stdint.h>

enum nsfork_stage {
    NSFORK_STAGE_OK = 0,
    NSFORK_STAGE_SIGNALS = 1,     /* resetting dispositions in the child */
    NSFORK_STAGE_SESSION = 2,     /* setsid / parent-death signal */
    NSFORK_STAGE_MOUNT_PRIVATE = 3, /* making / private in the new mount namespace */
    NSFORK_STAGE_MOUNT_PROC = 4,  /* mounting /proc */
    NSFORK_STAGE_STDIO = 5,       /* wiring stdio fds */
    NSFORK_STAGE_CLOSE_FDS = 6,   /* close_range */
    NSFORK_STAGE_CWD = 7,         /* chdir */
    NSFORK_STAGE_EXEC_SHIM = 8,   /* exec of nsfork-shim */
    NSFORK_STAGE_SHIM_SETUP = 9,  /* the shim's own setup (signalfd, ...) */
    NSFORK_STAGE_EXEC_COMMAND = 10, /* exec of the command by the shim */
    NSFORK_STAGE_JOIN_PIDNS = 11, /* setns into a pid namespace (nested / joined) */
    NSFORK_STAGE_CGROUP = 12,     /* cgroup placement */
    NSFORK_STAGE_PID_MAX = 13,    /* setting the new pid namespace's pid_max */
    NSFORK_STAGE_SCHED = 14,      /* SCHED_IDLE while a warm pool entry sets itself up */
    NSFORK_STAGE_USER = 15,       /* the command's groups, gid and uid (by the shim) */
    NSFORK_STAGE_TERMINAL = 16,   /* the command's terminal: devpts, its pty, the foreground */
    NSFORK_STAGE_COMMAND_FDS = 17, /* the command's extra fds (3, 4, ...) */
    NSFORK_STAGE_COMMAND_SIGNALS = 18, /* the command's blocked and ignored signals */
};

struct nsfork_exec_report {
    int32_t stage;
    int32_t error; /* errno, 0 with NSFORK_STAGE_OK */
    /* NSFORK_STAGE_USER: the user and group switched to, NSFORK_NO_ID where unchanged (for the
     * message); 0 with every other stage. */
    uint32_t uid;
    uint32_t gid;
};

#define NSFORK_NO_ID 0xffffffffu

#endif
