// The new mount API (Linux 5.2+: open_tree, move_mount, fsopen, fsconfig, fsmount; 5.12+:
// mount_setattr) and close_range's flags, for the container's child code (oci/child.cpp). glibc
// 2.36 declares them in <sys/mount.h>; musl, which the static nsfork-oci front builds the same
// child code with (oci/front.cpp), has none of them, so there they are the raw system calls with
// the kernel's own header's constants.
#pragma once

#include <sys/mount.h>

#ifndef __GLIBC__
#include <linux/close_range.h>
#include <linux/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

inline int open_tree(int dirfd, const char* path, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_open_tree, dirfd, path, flags));
}
inline int move_mount(int from_dirfd, const char* from, int to_dirfd, const char* to, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_move_mount, from_dirfd, from, to_dirfd, to, flags));
}
inline int fsopen(const char* fs, unsigned flags) noexcept {
    return static_cast<int>(::syscall(SYS_fsopen, fs, flags));
}
inline int fsconfig(int fd, unsigned cmd, const char* key, const void* value, int aux) noexcept {
    return static_cast<int>(::syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
inline int fsmount(int fd, unsigned flags, unsigned attr_flags) noexcept {
    return static_cast<int>(::syscall(SYS_fsmount, fd, flags, attr_flags));
}
inline int mount_setattr(int dirfd, const char* path, unsigned flags, struct mount_attr* attr, size_t size) noexcept {
    return static_cast<int>(::syscall(SYS_mount_setattr, dirfd, path, flags, attr, size));
}
#endif
