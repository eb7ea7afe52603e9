#include "cli/users.hpp"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <cstdlib>

namespace nsfork::cli {

namespace {

// A decimal id ("-1", "1x" and ids past 2^32-2 are not: (uid_t)-1 means "unchanged" to setuid).
std::optional<unsigned> decimal_id(const std::string& text) {
    if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
    if (*end || errno == ERANGE || n >= 0xffffffffULL) return std::nullopt;
    return static_cast<unsigned>(n);
}

Result<gid_t> group_id(const std::string& name) {
    if (auto n = decimal_id(name)) return gid_t(*n);
    if (const group* g = ::getgrnam(name.c_str())) return g->gr_gid;
    return Error{Errc::bad_request, "no group named '" + name + "' in this host's group database"};
}

// The user's groups from /etc/group, their primary group first.
std::vector<gid_t> groups_of(const passwd& pw) {
    int count = 16;
    std::vector<gid_t> out(static_cast<std::size_t>(count));
    while (::getgrouplist(pw.pw_name, pw.pw_gid, out.data(), &count) < 0) out.resize(static_cast<std::size_t>(count));
    out.resize(static_cast<std::size_t>(count));
    return out;
}

} // namespace

Result<Identity> resolve_identity(const std::optional<std::string>& user, const std::optional<std::string>& groups) {
    Identity id;
    if (user) {
        const auto colon = user->find(':');
        const std::string name = user->substr(0, colon);
        const passwd* pw = nullptr;
        if (auto n = decimal_id(name)) {
            id.uid = uid_t(*n);
            pw = ::getpwuid(*id.uid);
        } else if ((pw = ::getpwnam(name.c_str()))) {
            id.uid = pw->pw_uid;
        } else {
            return Error{Errc::bad_request, "no user named '" + name + "' in this host's user database"};
        }
        if (colon != std::string::npos) {
            auto gid = group_id(user->substr(colon + 1));
            if (!gid) return std::move(gid).error();
            id.gid = *gid;
        } else if (pw) {
            id.gid = pw->pw_gid;
        } else { // never a silent group 0: name it
            return Error{Errc::bad_request, "user " + name + " has no entry in this host's user database: give its "
                                            "group (--user " + name + ":GID)"};
        }
        // A user's supplementary groups are theirs, not ours (root's would otherwise stay).
        if (!groups) id.groups = pw ? groups_of(*pw) : std::vector<gid_t>{};
    }
    if (groups) {
        id.groups.emplace();
        for (std::size_t start = 0; start <= groups->size() && !groups->empty();) {
            const auto comma = std::min(groups->find(',', start), groups->size());
            auto gid = group_id(groups->substr(start, comma - start));
            if (!gid) return std::move(gid).error();
            id.groups->push_back(*gid);
            start = comma + 1;
        }
    }
    return id;
}

} // namespace nsfork::cli
