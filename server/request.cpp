#include "request.hpp"

#include "protocol/messages.hpp"
#include "server/ids.hpp"

#include <fmt/format.h>

#include <cstring>

namespace nsfork {

namespace {

// Checks a string the kernel will see as a C string; `what` names it, and is only called on error.
template <class Name>
Result<void> check_c_string(const flatbuffers::String* s, Name what) {
    if (s && std::memchr(s->c_str(), '\0', s->size()))
        return Error{Errc::bad_request, what() + " contains a NUL byte"};
    return {};
}

} // namespace

Result<LaunchRequest> parse_launch(const wire::Launch& req, const std::vector<UniqueFd>& fds) {
    LaunchRequest out;
    LaunchSpec& spec = out.spec;
    int& join_fd = out.join_fd;
    if (req.id() && req.id()->size() > 0) {
        out.id = req.id()->str();
        if (auto ok = validate_id(out.id); !ok) return std::move(ok).error();
    }

    const std::size_t declared = req.fds() ? req.fds()->size() : 0;
    if (declared != fds.size())
        return Error{Errc::bad_request,
                     fmt::format("request declares {} fds but carries {}", declared, fds.size())};
    for (std::size_t i = 0; i < declared; ++i) {
        const auto role = req.fds()->Get(static_cast<flatbuffers::uoffset_t>(i));
        if (role == wire::FdRole::PidNamespace || role == wire::FdRole::Pidfd) {
            if (join_fd >= 0) return Error{Errc::bad_request, "two pid namespaces to join"};
            join_fd = fds[i].get();
            continue;
        }
        const auto slot = static_cast<std::size_t>(role);
        if (slot > 2)
            return Error{Errc::bad_request, fmt::format("fd {} has role {}, which a Launch cannot take",
                                                        i, static_cast<int>(role))};
        if (spec.stdio[slot] >= 0)
            return Error{Errc::bad_request, fmt::format("two fds for stdio slot {}", slot)};
        spec.stdio[slot] = fds[i].get();
    }

    if (req.argv()->size() == 0) return Error{Errc::bad_request, "argv is empty: no command to run"};
    spec.argv.reserve(req.argv()->size());
    if (req.env()) spec.env.reserve(req.env()->size());
    for (flatbuffers::uoffset_t i = 0; i < req.argv()->size(); ++i) {
        const flatbuffers::String* a = req.argv()->Get(i);
        if (auto ok = check_c_string(a, [i] { return fmt::format("argv[{}]", i); }); !ok) return std::move(ok).error();
        spec.argv.push_back(a->str());
    }
    if (spec.argv[0].empty()) return Error{Errc::bad_request, "argv[0] is empty: no command to run"};
    if (req.env()) {
        for (flatbuffers::uoffset_t i = 0; i < req.env()->size(); ++i) {
            const flatbuffers::String* e = req.env()->Get(i);
            if (auto ok = check_c_string(e, [i] { return fmt::format("environment entry {}", i); }); !ok)
                return std::move(ok).error();
            if (!std::memchr(e->c_str(), '=', e->size()) || e->size() == 0 || e->c_str()[0] == '=')
                return Error{Errc::bad_request,
                             fmt::format("environment entry {} ('{}') is not of the form NAME=VALUE",
                                         i, e->string_view().substr(0, 64))};
            spec.env.push_back(e->str());
        }
    }
    if (req.cwd()) {
        if (auto ok = check_c_string(req.cwd(), [] { return std::string("cwd"); }); !ok) return std::move(ok).error();
        spec.cwd = req.cwd()->str();
        if (spec.cwd.empty() || spec.cwd[0] != '/')
            return Error{Errc::bad_request, "cwd '" + spec.cwd + "' is not an absolute path"};
    }
    spec.pid_max = req.pid_max();
    return out;
}


} // namespace nsfork
