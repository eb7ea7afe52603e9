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

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/limits.h" /* NSFORK_PLAN_MAX */

#define NSFORK_PLAN_MAGIC 0x6e737732u /* "nsw2" */

struct nsfork_plan {
    uint32_t magic;
    uint32_t argc;
    uint32_t envc;
    uint32_t size;  /* bytes of strings after the header */
    uint32_t stdio; /* bits 0..2: which stdio slots come as fds */
};

/* Room a parse of a plan of `n` bytes may need for its pointers: every string takes at least
 * its NUL byte, plus the two NULL terminators. */
#define NSFORK_PLAN_MAX_POINTERS(n) ((n) + 2)

/* A parsed plan: pointers into the received datagram. */
struct nsfork_parsed_plan {
    char **argv;     /* argc strings, NULL-terminated */
    char **envp;     /* envc strings, NULL-terminated */
    const char *cwd;
    uint32_t stdio;  /* bits 0..2: which stdio slots come as fds, in slot order */
};

/* Parses the plan datagram `buf` of `n` bytes in place (the strings stay in `buf`); the argv
 * and envp arrays go to `pointers`, which has room for `max_pointers`. Returns 0, or -1 for a
 * malformed plan: short, bad magic, `size` not the bytes after the header, no command, unknown
 * stdio bits, a string missing its NUL, more strings than announced or than fit. */
static inline int nsfork_parse_plan(char *buf, size_t n, char **pointers, size_t max_pointers,
                                    struct nsfork_parsed_plan *out) {
    struct nsfork_plan header;
    char *p, *end;
    char **next_pointer = pointers;
    uint32_t i;
    if (n < sizeof header) return -1;
    memcpy(&header, buf, sizeof header);
    if (header.magic != NSFORK_PLAN_MAGIC || header.size != n - sizeof header || header.argc == 0 ||
        header.stdio > 7)
        return -1;
    /* Each string takes at least one byte, the cwd included; checked before the sum can wrap. */
    if (header.argc > header.size || header.envc > header.size - header.argc ||
        (size_t)header.argc + header.envc + 1 > header.size ||
        (size_t)header.argc + header.envc + 2 > max_pointers)
        return -1;
    p = buf + sizeof header;
    end = buf + n;
    out->argv = next_pointer;
    for (i = 0; i < header.argc + header.envc + 1; ++i) {
        char *nul = (char *)memchr(p, '\0', (size_t)(end - p));
        if (!nul) return -1;
        if (i == header.argc + header.envc) {
            out->cwd = p;
        } else {
            *next_pointer++ = p;
            if (i + 1 == header.argc) {
                *next_pointer++ = NULL;
                out->envp = next_pointer;
            }
        }
        p = nul + 1;
    }
    *next_pointer = NULL; /* ends envp */
    out->stdio = header.stdio;
    return p == end ? 0 : -1; /* more strings than announced */
}

#endif
