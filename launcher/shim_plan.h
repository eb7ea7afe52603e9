/* The plan nsfork-shim receives on its --plan socket: the command, its environment and working
 * directory, in one datagram that also carries the container's stdin, stdout and stderr, those
 * it was given, as SCM_RIGHTS fds in slot order (bit i of `stdio` set: slot i comes; a slot that
 * does not keeps the shim's own /dev/null). The datagram is this header, then `argc` argv
 * strings, `envc` environment strings and the working directory, each NUL-terminated, `size`
 * bytes in all.
 *
 * A shim waiting for a plan was started at "/" by its launcher: a pool entry so holds no
 * directory of the server's busy, and a launch into "/" (the usual one) needs no chdir.
 *
 * Every launch whose plan fits NSFORK_PLAN_MAX goes this way, cold (sent right after clone) or
 * warm (sent to a shim waiting in the pool), so that both look the same from inside. A larger
 * plan (a huge environment) is passed the classic way, as the shim's own argv and environment.
 * Plain C: the musl-static shim and the C++ launcher share it. */
#ifndef NSFORK_SHIM_PLAN_H
#define NSFORK_SHIM_PLAN_H

#include <stdint.h>

#include "base/limits.h" /* NSFORK_PLAN_MAX */

#define NSFORK_PLAN_MAGIC 0x6e737732u /* "nsw2" */

struct nsfork_plan {
    uint32_t magic;
    uint32_t argc;
    uint32_t envc;
    uint32_t size;  /* bytes of strings after the header */
    uint32_t stdio; /* bits 0..2: which stdio slots come as fds */
};

#endif
