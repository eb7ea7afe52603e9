// Rootless operation: a user namespace of our own, mapping the caller's uid and gid, in which
// we hold the capabilities that pid and mount namespaces need (as `unshare -r` does).
#pragma once

#include "nsfork/error.hpp"

namespace nsfork {

// Whom the caller's uid and gid map to inside.
enum class UserMapping {
    root,         // uid 0 and gid 0 (unshare -r): the default
    current_user, // themselves (unshare --map-current-user, bwrap --uid $(id -u))
};

// When this process is not privileged in the initial user namespace (euid != 0): unshares a
// user namespace mapping its uid and gid as `mapping` says (setgroups denied), so that it can go
// on to create pid and mount namespaces and mount /proc. A no-op for root. Only from a
// single-threaded process. When user namespaces are unavailable the error names the setting
// (user.max_user_namespaces, kernel.unprivileged_userns_clone, ...).
Result<void> enter_user_namespace(UserMapping mapping = UserMapping::root);

// Whether this process runs in a user namespace other than the initial one (rootless).
bool in_user_namespace();

} // namespace nsfork
