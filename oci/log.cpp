#include "oci/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>

namespace nsfork::oci {

namespace {

std::string rfc3339(std::time_t now) {
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Appends one line with a single write(2): lines of concurrent runtimes sharing a log never mix.
void append(const std::string& path, const std::string& line) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return; // nowhere to say so but stderr, which has the error already
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
}

} // namespace

std::string log_line(LogFormat format, std::string_view level, std::string_view message, std::time_t now) {
    if (format == LogFormat::json) {
        // nlohmann::json keeps keys sorted: level, msg, time — runc's (logrus's) order too.
        nlohmann::json j = {{"level", level}, {"msg", message}, {"time", rfc3339(now)}};
        return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    // logrus quotes msg with Go's %q: JSON's string escaping is the same for what we print.
    const std::string quoted = nlohmann::json(message).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return "time=\"" + rfc3339(now) + "\" level=" + std::string(level) + " msg=" + quoted + "\n";
}

void Log::write(std::string_view level, std::string_view message) const {
    const std::string line = log_line(global_.log_format, level, message, std::time(nullptr));
    if (global_.log.empty()) std::fputs(line.c_str(), stderr);
    else append(global_.log, line);
}

void Log::error(std::string_view message) const {
    write("error", message);
    if (!global_.log.empty()) std::fprintf(stderr, "%.*s\n", static_cast<int>(message.size()), message.data());
}

void Log::debug(std::string_view message) const {
    if (global_.debug) write("debug", message);
}

} // namespace nsfork::oci
