/* The plan nsfork-shim receives on its --plan socket: the command, its environment and working
 * directory, and how its process is set up (process group and terminal, signals, user, extra
 * fds), in one datagram that also carries, as SCM_RIGHTS fds, the container's stdin, stdout and
 * stderr, those it was given, in slot order (bit i of `stdio` set: slot i comes; a slot that does
 * not keeps the shim's own /dev/null), then the `extra_fds` fds the command gets as 3, 4, ...
 * The datagram is this header, then `ngroups` supplementary group ids (uint32 each), then `argc`
 * argv strings, `envc` environment strings and the working directory, each NUL-terminated,
 * `size` bytes after the header in all.
 *
 * A shim waiting for a plan was started at "/" by its launcher: a pool entry so holds no
 * directory of the server's busy, and a launch into "/" (the usual one) needs no chdir.
 *
 * Every launch whose plan fits NSFORK_PLAN_MAX goes this way, cold (sent right after clone) or
 * warm (sent to a shim waiting in the pool), so that both look the same from inside. A larger
 * command (a huge environment) is passed the classic way, as the shim's own argv after "--" and
 * its environment, in the working directory it starts in; its plan then carries the rest alone
 * (a settings-only plan: `argc` and `envc` 0, the working directory ""), so that the command is
 * set up all the same.
 * Plain C: the musl-static shim and the C++ launcher share it. */
#ifndef NSFORK_SHIM_PLAN_H
#define NSFORK_SHIM_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/limits.h" /* NSFORK_PLAN_MAX, NSFORK_MAX_PASSED_FDS */

#define NSFORK_PLAN_MAGIC 0x6e737734u /* "nsw4" */

/* Bits of `flags`. */
#define NSFORK_PLAN_FOREGROUND 0x01u /* the command's group takes the caller's terminal's
                                        foreground; the plan socket stays a job-control channel
                                        (job_control.h) */
#define NSFORK_PLAN_TTY 0x02u        /* a pseudo-terminal of the container's own (devpts) */
#define NSFORK_PLAN_KILL_GROUP 0x04u /* forwarded signals go to the command's process group */
#define NSFORK_PLAN_UID 0x08u        /* `uid` is set */
#define NSFORK_PLAN_GID 0x10u        /* `gid` is set */
#define NSFORK_PLAN_GROUPS 0x20u     /* exactly the `ngroups` groups (else: none if the uid or
                                        gid changes, the shim's otherwise) */
#define NSFORK_PLAN_HOLD 0x40u       /* no command at all: the shim reports OK, then only holds
                                        the namespaces as pid 1, reaping what is reparented to it,
                                        until it is killed (a runtime-born container: the runtime
                                        forks the container's process into them). Alone: no other
                                        flag, setting or fd, and a settings-only plan's layout */
#define NSFORK_PLAN_ALL_FLAGS 0x7fu

/* The extra fds travel with stdio in one datagram, which carries at most NSFORK_MAX_PASSED_FDS. */
#define NSFORK_PLAN_MAX_EXTRA_FDS (NSFORK_MAX_PASSED_FDS - 3)

struct nsfork_plan {
    uint32_t magic;
    uint32_t argc;
    uint32_t envc;
    uint32_t size;      /* bytes after the header: the groups, then the strings */
    uint32_t stdio;     /* bits 0..2: which stdio slots come as fds */
    uint32_t flags;     /* NSFORK_PLAN_* */
    uint32_t extra_fds; /* fds after stdio's, the command's 3, 4, ... */
    uint32_t ngroups;   /* supplementary groups after the header (NSFORK_PLAN_GROUPS) */
    uint64_t signal_mask;     /* the command's blocked signals: bit N-1 is signal N */
    uint64_t ignored_signals; /* the signals it starts ignoring, likewise */
    uint32_t uid;       /* NSFORK_PLAN_UID, else 0 */
    uint32_t gid;       /* NSFORK_PLAN_GID, else 0 */
    uint16_t tty_rows;  /* NSFORK_PLAN_TTY: the terminal's window size before the command */
    uint16_t tty_cols;  /*   starts; 0 each without a tty */
    uint32_t zero;      /* 0 (no padding left undefined) */
};

/* Room a parse of a plan of `n` bytes may need for its pointers: every string takes at least
 * its NUL byte, plus the two NULL terminators. */
#define NSFORK_PLAN_MAX_POINTERS(n) ((n) + 2)

/* A parsed plan: the header, and pointers into the received datagram. */
struct nsfork_parsed_plan {
    struct nsfork_plan header;
    const uint32_t *groups; /* header.ngroups group ids */
    char **argv;            /* argc strings, NULL-terminated */
    char **envp;            /* envc strings, NULL-terminated */
    const char *cwd;        /* "" in a settings-only plan (and only there) */
};

/* Parses the plan datagram `buf` of `n` bytes in place (the strings and groups stay in `buf`,
 * which must be aligned for uint32_t); the argv and envp arrays go to `pointers`, which has room
 * for `max_pointers`. Returns 0, or -1 for a malformed plan: short, misaligned, bad magic, `size`
 * not the bytes after the header, an environment without a command, a working directory ""
 * with a command or another one without, unknown stdio or flag bits, a foreground with its
 * own terminal, too many extra fds, a uid, gid, groups or window size present without their flag,
 * a hold plan with a command, a setting or an fd, more groups
 * than bytes, a string missing its NUL, more strings than announced or than fit. */
static inline int nsfork_parse_plan(char *buf, size_t n, char **pointers, size_t max_pointers,
                                    struct nsfork_parsed_plan *out) {
    struct nsfork_plan header;
    char *p, *end;
    char **next_pointer = pointers;
    uint32_t i, strings;
    if (n < sizeof header || (uintptr_t)buf % sizeof(uint32_t) != 0) return -1;
    memcpy(&header, buf, sizeof header);
    if (header.magic != NSFORK_PLAN_MAGIC || header.size != n - sizeof header ||
        (header.argc == 0 && header.envc != 0) ||
        header.stdio > 7 || (header.flags & ~NSFORK_PLAN_ALL_FLAGS) != 0 ||
        (header.flags & (NSFORK_PLAN_FOREGROUND | NSFORK_PLAN_TTY)) ==
            (NSFORK_PLAN_FOREGROUND | NSFORK_PLAN_TTY) ||
        header.extra_fds > NSFORK_PLAN_MAX_EXTRA_FDS ||
        (!(header.flags & NSFORK_PLAN_UID) && header.uid != 0) ||
        (!(header.flags & NSFORK_PLAN_GID) && header.gid != 0) ||
        (!(header.flags & NSFORK_PLAN_GROUPS) && header.ngroups != 0) ||
        (!(header.flags & NSFORK_PLAN_TTY) && (header.tty_rows != 0 || header.tty_cols != 0)) ||
        header.zero != 0 ||
        ((header.flags & NSFORK_PLAN_HOLD) &&
         (header.flags != NSFORK_PLAN_HOLD || header.argc != 0 || header.stdio != 0 ||
          header.extra_fds != 0 || header.signal_mask != 0 || header.ignored_signals != 0)) ||
        header.ngroups > header.size / sizeof(uint32_t))
        return -1;
    /* Each string takes at least one byte, the cwd included; checked before the sum can wrap. */
    strings = header.size - header.ngroups * (uint32_t)sizeof(uint32_t);
    if (header.argc > strings || header.envc > strings - header.argc ||
        (size_t)header.argc + header.envc + 1 > strings ||
        (size_t)header.argc + header.envc + 2 > max_pointers)
        return -1;
    out->groups = (const uint32_t *)(const void *)(buf + sizeof header);
    p = buf + sizeof header + header.ngroups * sizeof(uint32_t);
    end = buf + n;
    out->argv = next_pointer;
    for (i = 0; i < header.argc + header.envc + 1; ++i) {
        char *nul = (char *)memchr(p, '\0', (size_t)(end - p));
        if (!nul) return -1;
        if (i == header.argc) { /* argv ends, envp begins */
            *next_pointer++ = NULL;
            out->envp = next_pointer;
        }
        if (i == header.argc + header.envc) out->cwd = p;
        else *next_pointer++ = p;
        p = nul + 1;
    }
    *next_pointer = NULL; /* ends envp */
    out->header = header;
    if ((header.argc == 0) != (out->cwd[0] == '\0')) return -1; /* settings-only, or a full plan */
    return p == end ? 0 : -1; /* more strings than announced */
}

#endif
