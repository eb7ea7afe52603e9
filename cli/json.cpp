#include "cli/json.hpp"

#include <nlohmann/json.hpp>

namespace nsfork::cli {

namespace {

using Json = nlohmann::ordered_json;

// The fields every container has, then those only some have: "held" (a hold container, whose
// pid is its holder's) and "cgroup" (its leaf), left out when false or without one.
Json object_of(const ContainerInfo& info) {
    Json exit = nullptr;
    if (info.exit)
        exit = Json{{"code", info.exit->code}, {"signal", info.exit->signal}, {"status", info.exit->shell_code()}};
    Json object{{"id", info.id},
                {"parent", info.parent.empty() ? Json(nullptr) : Json(info.parent)},
                {"pid", info.pid},
                {"pidns", info.pidns},
                {"state", std::string(to_string(info.state))},
                {"exit_status", std::move(exit)}};
    if (info.held) object["held"] = true;
    if (!info.cgroup.empty()) object["cgroup"] = info.cgroup;
    return object;
}

// Compact, and never throwing: a byte that is not UTF-8 (an id from a server that does not
// validate ids) becomes U+FFFD instead of an exception.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

} // namespace

std::string to_json(const ContainerInfo& info) { return dump(object_of(info)); }

std::string to_json(const ServerStatus& s) {
    return dump(Json{{"server_pid", s.pid},
                     {"pool",
                      {{"size", s.pool_size},
                       {"ready", s.pool_ready},
                       {"warming", s.pool_warming},
                       {"served", s.pool_served},
                       {"discarded", s.pool_discarded}}}});
}

std::string to_json(const std::vector<ContainerInfo>& list) {
    Json array = Json::array();
    for (const ContainerInfo& info : list) array.push_back(object_of(info));
    return dump(array);
}

} // namespace nsfork::cli
