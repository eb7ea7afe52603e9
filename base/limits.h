/* Sizes every part of nsfork agrees on, defined once. Plain C: nsfork-shim (musl, C headers
 * only) reads them too; C++ code uses base/limits.hpp. */
#ifndef NSFORK_LIMITS_H
#define NSFORK_LIMITS_H

/* A container id: [A-Za-z0-9_.-], 1..128 characters (server/ids.hpp). The status table stores
 * ids in place, NUL-padded (protocol/status_table.hpp). */
#define NSFORK_MAX_ID_LENGTH 128

/* Largest datagram either side of the wire accepts. Larger requests travel as a sealed memfd
 * body (protocol/body.hpp), so this only bounds the envelope and small messages. */
#define NSFORK_MAX_DATAGRAM (64 * 1024)

/* Most fds one message carries in SCM_RIGHTS; more is a protocol error (MSG_CTRUNC). */
#define NSFORK_MAX_PASSED_FDS 16

/* Largest plan a shim accepts in its one datagram (launcher/shim_plan.h); a larger command
 * line and environment reach it through its exec instead. */
#define NSFORK_PLAN_MAX (60 * 1024)

#endif
