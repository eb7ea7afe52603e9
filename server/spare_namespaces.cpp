#include "server/spare_namespaces.hpp"

#include <fcntl.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace nsfork {

namespace {

struct Type {
    int flag;
    const char* name;
};
constexpr std::array<Type, 3> kTypes{{{CLONE_NEWNET, "net"}, {CLONE_NEWIPC, "ipc"}, {CLONE_NEWUTS, "uts"}}};

UniqueFd open_own(const char* name) {
    return UniqueFd(::open((std::string("/proc/thread-self/ns/") + name).c_str(), O_RDONLY | O_CLOEXEC));
}

} // namespace

std::vector<UniqueFd> SpareNamespaces::take(std::uint32_t types) {
    std::vector<UniqueFd> out;
    asked_ |= types;
    for (std::size_t i = 0; i < kTypes.size(); ++i) {
        if (!(types & static_cast<std::uint32_t>(kTypes[i].flag)) || spare_[i].empty()) continue;
        out.push_back(std::move(spare_[i].back()));
        spare_[i].pop_back();
    }
    return out;
}

bool SpareNamespaces::wanted() const {
    if (probed_ && !usable_) return false;
    for (std::size_t i = 0; i < kTypes.size(); ++i)
        if ((asked_ & static_cast<std::uint32_t>(kTypes[i].flag)) && spare_[i].size() < kKept) return true;
    return false;
}

std::size_t SpareNamespaces::pending() const {
    if (probed_ && !usable_) return 0;
    std::size_t short_of = 0;
    for (std::size_t i = 0; i < kTypes.size(); ++i)
        if (asked_ & static_cast<std::uint32_t>(kTypes[i].flag)) short_of += kKept - std::min(kKept, spare_[i].size());
    return short_of;
}

std::size_t SpareNamespaces::ready(int type) const {
    for (std::size_t i = 0; i < kTypes.size(); ++i)
        if (kTypes[i].flag == type) return spare_[i].size();
    return 0;
}

void SpareNamespaces::stop() {
    for (auto& list : spare_) list.clear();
    asked_ = 0;
}

// Whether we may return to our own namespaces once we left them: joining the one we are in
// takes the same permission and changes nothing.
bool SpareNamespaces::probe() {
    probed_ = true;
    for (std::size_t i = 0; i < kTypes.size(); ++i) {
        own_[i] = open_own(kTypes[i].name);
        if (!own_[i] || ::setns(own_[i].get(), kTypes[i].flag) < 0) {
            spdlog::debug("no namespaces made ahead: cannot rejoin our own {} namespace: {}", kTypes[i].name,
                          std::strerror(errno));
            return false;
        }
    }
    usable_ = true;
    return true;
}

bool SpareNamespaces::make_one() {
    if (!probed_ && !probe()) return false;
    if (!usable_) return false;
    for (std::size_t i = 0; i < kTypes.size(); ++i) {
        const Type& t = kTypes[i];
        if (!(asked_ & static_cast<std::uint32_t>(t.flag)) || spare_[i].size() >= kKept) continue;
        if (::unshare(t.flag) < 0) {
            spdlog::debug("no {} namespace made ahead: unshare: {}", t.name, std::strerror(errno));
            usable_ = false;
            return false;
        }
        UniqueFd made = open_own(t.name);
        const int open_errno = errno;
        if (::setns(own_[i].get(), t.flag) < 0) {
            // Our children would be born in it, and agents' containers would share it: never go on.
            spdlog::critical("cannot return to the server's own {} namespace: {}", t.name, std::strerror(errno));
            std::abort();
        }
        if (!made) {
            spdlog::debug("no {} namespace made ahead: open: {}", t.name, std::strerror(open_errno));
            usable_ = false;
            return false;
        }
        spare_[i].push_back(std::move(made));
        return true;
    }
    return false;
}

} // namespace nsfork
