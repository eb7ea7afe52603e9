/* Passing fds over AF_UNIX sockets (SCM_RIGHTS): the one implementation of the sendmsg and
 * recvmsg dance, used by the protocol's datagrams, the launcher (the intermediate's pidfd, the
 * shim's plan) and nsfork-shim. Plain C on the stack, no allocation: async-signal-safe, so the
 * child path may call it, and the musl-static shim can include it. */
#ifndef NSFORK_FDPASS_H
#define NSFORK_FDPASS_H

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "base/limits.h"

/* sendmsg of `len` bytes with `count` fds (at most NSFORK_MAX_PASSED_FDS), retried on EINTR,
 * never raising SIGPIPE. Returns the bytes sent, or -1 with errno. */
static inline ssize_t nsfork_send_with_fds(int sock, const void *data, size_t len, const int *fds, size_t count) {
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * NSFORK_MAX_PASSED_FDS)];
    } control;
    struct iovec iov;
    struct msghdr msg;
    ssize_t n;
    if (count > NSFORK_MAX_PASSED_FDS) {
        errno = EINVAL;
        return -1;
    }
    memset(&control, 0, sizeof control);
    memset(&msg, 0, sizeof msg);
    iov.iov_base = (void *)data;
    iov.iov_len = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (count) {
        struct cmsghdr *c;
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
    }
    do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

/* recvmsg of one message into `data` (up to `len` bytes) with its fds, received close-on-exec,
 * stored in `fds` (room for `max` <= NSFORK_MAX_PASSED_FDS), their number in `*count`; the
 * message's flags (MSG_TRUNC: the message was longer; MSG_CTRUNC: more fds came than fit, and
 * the kernel closed those) in `*flags`. Every fd that arrived is in `fds`, whatever else went
 * wrong: the caller owns and closes them. Retried on EINTR. Returns the bytes received (0 at
 * EOF, or for an empty message), or -1 with errno. */
static inline ssize_t nsfork_recv_with_fds(int sock, void *data, size_t len, int *fds, size_t max, size_t *count,
                                           int *flags) {
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * NSFORK_MAX_PASSED_FDS)];
    } control;
    struct iovec iov;
    struct msghdr msg;
    struct cmsghdr *c;
    ssize_t n;
    *count = 0;
    *flags = 0;
    if (max > NSFORK_MAX_PASSED_FDS) max = NSFORK_MAX_PASSED_FDS;
    memset(&msg, 0, sizeof msg);
    iov.iov_base = data;
    iov.iov_len = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = max ? CMSG_SPACE(sizeof(int) * max) : 0;
    do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    *flags = msg.msg_flags;
    for (c = max ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c)) {
        size_t i, in_this;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        in_this = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (i = 0; i < in_this && *count < max; ++i)
            memcpy(&fds[(*count)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    return n;
}

#endif
