#include "oci/state.hpp"

#include "base/syscalls.hpp"
#include "oci/options.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace nsfork::oci {

using nlohmann::json;

namespace {

json hooks_to_json(const std::vector<Hook>& hooks) {
    json list = json::array();
    for (const Hook& h : hooks) {
        json j = {{"path", h.path}, {"args", h.args}, {"env", h.env}};
        if (h.timeout) j["timeout"] = *h.timeout;
        list.push_back(std::move(j));
    }
    return list;
}

std::vector<Hook> hooks_from_json(const json& list) {
    std::vector<Hook> hooks;
    for (const json& j : list) {
        Hook h;
        h.path = j.at("path").get<std::string>();
        h.args = j.at("args").get<std::vector<std::string>>();
        h.env = j.at("env").get<std::vector<std::string>>();
        if (j.contains("timeout")) h.timeout = j["timeout"].get<int>();
        hooks.push_back(std::move(h));
    }
    return hooks;
}

} // namespace

std::string encode_state(const ContainerState& s) {
    json j = {
        {"id", s.id},
        {"bundle", s.bundle},
        {"rootfs", s.rootfs},
        {"pid", s.pid},
        {"start_time", s.start_time},
        {"holder_pid", s.holder_pid},
        {"holder_start_time", s.holder_start_time},
        {"server_socket", s.server_socket},
        {"server_id", s.server_id},
        {"cgroups_path", s.cgroups_path},
        {"cgroup_leaf", s.cgroup_leaf},
        {"annotations", s.annotations},
        {"created", s.created},
        {"poststart", hooks_to_json(s.poststart)},
        {"poststop", hooks_to_json(s.poststop)},
    };
    if (s.controllers) j["controllers"] = *s.controllers;
    return j.dump(2) + "\n";
}

Result<ContainerState> decode_state(std::string_view text) {
    try {
        const json j = json::parse(text);
        ContainerState s;
        s.id = j.at("id").get<std::string>();
        s.bundle = j.at("bundle").get<std::string>();
        s.rootfs = j.at("rootfs").get<std::string>();
        s.pid = j.at("pid").get<pid_t>();
        s.start_time = j.at("start_time").get<std::uint64_t>();
        s.holder_pid = j.at("holder_pid").get<pid_t>();
        s.holder_start_time = j.at("holder_start_time").get<std::uint64_t>();
        s.server_socket = j.at("server_socket").get<std::string>();
        s.server_id = j.at("server_id").get<std::string>();
        s.cgroups_path = j.at("cgroups_path").get<std::string>();
        s.cgroup_leaf = j.at("cgroup_leaf").get<std::string>();
        if (j.contains("controllers")) s.controllers = j.at("controllers").get<std::vector<std::string>>();
        s.annotations = j.at("annotations").get<std::map<std::string, std::string>>();
        s.created = j.at("created").get<std::string>();
        s.poststart = hooks_from_json(j.at("poststart"));
        s.poststop = hooks_from_json(j.at("poststop"));
        return s;
    } catch (const json::exception& e) {
        return Error{Errc::internal, std::string("state.json is damaged: ") + e.what()};
    }
}

std::string_view to_string(Status status) {
    switch (status) {
    case Status::creating: return "creating";
    case Status::created: return "created";
    case Status::running: return "running";
    case Status::paused: return "paused";
    case Status::stopped: return "stopped";
    }
    return "unknown";
}

std::string state_json(const ContainerState& s, Status status) {
    // nlohmann::ordered_json: runc's field order, which people (and some scripts) read.
    nlohmann::ordered_json j = {
        {"ociVersion", kRuntimeSpecVersion},
        {"id", s.id},
        {"pid", status == Status::stopped ? 0 : s.pid},
        {"status", to_string(status)},
        {"bundle", s.bundle},
        {"rootfs", s.rootfs},
        {"created", s.created},
        {"owner", ""},
    };
    if (!s.annotations.empty()) j["annotations"] = s.annotations;
    return j.dump(2);
}

std::string hook_state_json(const ContainerState& s, Status status) {
    nlohmann::ordered_json j = {
        {"ociVersion", kRuntimeSpecVersion},
        {"id", s.id},
        {"status", to_string(status)},
        {"pid", s.pid},
        {"bundle", s.bundle},
        {"annotations", s.annotations},
    };
    return j.dump();
}

Result<void> validate_container_id(std::string_view id) {
    if (id.empty()) return Error{Errc::invalid_id, "container id cannot be empty"};
    if (id == "." || id == "..") return Error{Errc::invalid_id, "invalid container id: " + std::string(id)};
    for (unsigned char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '+' || c == '-' || c == '.';
        if (!ok) return Error{Errc::invalid_id, "invalid container id: " + std::string(id)};
    }
    return {};
}

std::string rfc3339_now() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    std::tm tm{};
    ::gmtime_r(&now.tv_sec, &tm);
    char buf[48];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%09ldZ", now.tv_nsec);
    return buf;
}

Result<StateDir> StateDir::make(const std::string& root, const std::string& id) {
    if (auto valid = validate_container_id(id); !valid) return std::move(valid).error();
    std::error_code ec;
    std::filesystem::create_directories(root, ec);
    if (ec) return sys_error(Errc::internal, "cannot make the state root " + root, ec.value());
    const std::string path = root + "/" + id;
    if (::mkdir(path.c_str(), 0700) < 0) {
        if (errno == EEXIST) return Error{Errc::duplicate_id, "container with id " + id + " already exists"};
        return sys_error(Errc::internal, "cannot make " + path, errno);
    }
    return StateDir(path, id);
}

Result<StateDir> StateDir::open(const std::string& root, const std::string& id) {
    const auto missing = Error{Errc::unknown_container, "container " + id + " does not exist"};
    if (!validate_container_id(id)) return missing;
    const std::string path = root + "/" + id;
    // A directory without state.json is a create that never finished (its runtime was killed
    // before writing it): for the engine, no container.
    if (::access((path + "/state.json").c_str(), F_OK) < 0) return missing;
    return StateDir(path, id);
}

Result<std::string> read_text_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return sys_error(Errc::bad_request, "cannot read " + path, errno);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

Result<void> write_file_atomically(const std::string& path, std::string_view text, mode_t mode) {
    const std::string temp = path + ".tmp";
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return sys_error(Errc::internal, "cannot write " + temp, errno);
    UniqueFd owner(fd);
    for (std::size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            const int err = errno;
            ::unlink(temp.c_str());
            return sys_error(Errc::internal, "cannot write " + temp, err);
        }
        done += static_cast<std::size_t>(n);
    }
    owner.reset();
    if (::rename(temp.c_str(), path.c_str()) < 0) {
        const int err = errno;
        ::unlink(temp.c_str());
        return sys_error(Errc::internal, "cannot rename " + temp + " to " + path, err);
    }
    return {};
}

Result<void> StateDir::write(const ContainerState& state) const {
    return write_file_atomically(path_ + "/state.json", encode_state(state), 0600);
}

Result<ContainerState> StateDir::read() const {
    auto text = read_text_file(path_ + "/state.json");
    if (!text) return Error{Errc::unknown_container, "container " + id_ + " does not exist"};
    return decode_state(*text);
}

Result<void> StateDir::remove() const {
    // What it holds is known: unlinked by name and the directory removed, without reading it
    // (remove_all's open, fstat, getdents and close). Anything else in it: remove_all.
    for (const std::string& file : {path_ + "/state.json", config(), fifo()}) (void)::unlink(file.c_str());
    if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) return {};
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) return sys_error(Errc::internal, "cannot remove " + path_, ec.value());
    return {};
}

std::optional<ProcessStat> parse_process_stat(std::string_view stat) {
    // "PID (COMM) S PPID ...": COMM may hold spaces and ')', so count from the last ')'.
    const auto close = stat.rfind(')');
    if (close == std::string_view::npos || close + 2 >= stat.size()) return std::nullopt;
    std::string_view rest = stat.substr(close + 2); // field 3, the state, onwards
    ProcessStat out;
    out.state = rest[0];
    // starttime is field 22: the 20th from the state.
    for (int field = 3; field < 22; ++field) {
        const auto space = rest.find(' ');
        if (space == std::string_view::npos) return std::nullopt;
        rest.remove_prefix(space + 1);
    }
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), out.start_time);
    if (ec != std::errc() || end == rest.data()) return std::nullopt;
    return out;
}

std::optional<ProcessStat> process_stat(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    auto text = read_text_file("/proc/" + std::to_string(pid) + "/stat");
    if (!text) return std::nullopt;
    return parse_process_stat(*text);
}

bool same_process_running(pid_t pid, std::uint64_t start_time) {
    const auto stat = process_stat(pid);
    return stat && stat->running() && stat->start_time == start_time;
}

Result<UniqueFd> open_process(pid_t pid, std::uint64_t start_time) {
    UniqueFd pidfd(sys::pidfd_open(pid, 0));
    // Checked after opening: the pidfd then holds this very process, whatever the pid becomes.
    if (!pidfd || !same_process_running(pid, start_time)) return Error{Errc::invalid_state, "container not running"};
    return pidfd;
}

Status status_of(const StateDir& dir, const ContainerState& state) {
    if (!same_process_running(state.pid, state.start_time)) return Status::stopped;
    if (::access(dir.fifo().c_str(), F_OK) == 0) return Status::created;
    if (!state.cgroup_leaf.empty()) {
        std::ifstream freeze(state.cgroup_leaf + "/cgroup.freeze");
        char c = '0';
        if (freeze >> c && c == '1') return Status::paused;
    }
    return Status::running;
}

} // namespace nsfork::oci
