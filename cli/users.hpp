// --user and --groups: names resolved here, by the client, against this host's user database
// (getpwnam, getgrnam), as `runc exec --user` and `setpriv` do.
#pragma once

#include "nsfork/error.hpp"

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace nsfork::cli {

struct Identity {
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::optional<std::vector<gid_t>> groups; // supplementary groups; empty: none
};

// `user` is UID[:GID] or NAME[:GROUP] (either part a name or a number). Without a group, the
// user's primary group from the user database; a number not in it needs its group given. With
// `user` and no `groups`, the user's groups from /etc/group (getgrouplist); `groups` is a
// comma-separated list of names or numbers, "" for none. Unknown names are Errc::bad_request
// errors naming them.
Result<Identity> resolve_identity(const std::optional<std::string>& user, const std::optional<std::string>& groups);

} // namespace nsfork::cli
