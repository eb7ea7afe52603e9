/* The exit codes nsfork itself gives, the `docker run` / `env` convention, shared by the
 * launcher's child path, nsfork-shim (musl, C headers only) and the CLI. Any other status is
 * the command's own: its exit code, or 128+N when signal N killed it. */
#ifndef NSFORK_EXIT_CODES_H
#define NSFORK_EXIT_CODES_H

#define NSFORK_EXIT_FAILED 125         /* nsfork failed: setup, server, bad usage */
#define NSFORK_EXIT_CANNOT_EXECUTE 126 /* the command exists but cannot be executed */
#define NSFORK_EXIT_NOT_FOUND 127      /* the command was not found */

#endif
