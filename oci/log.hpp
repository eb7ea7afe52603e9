// nsfork-oci's log: runc's. An error is one line; engines read it from the --log file (conmon and
// containerd pass --log-format json and show the "msg" of the last error line) or from stderr.
#pragma once

#include "oci/options.hpp"

#include <ctime>
#include <string>
#include <string_view>

namespace nsfork::oci {

// One line (with its '\n') as runc writes it: text `time="..." level=error msg="..."`, json
// `{"level":"error","msg":"...","time":"..."}`; `now` in UTC, RFC 3339.
std::string log_line(LogFormat format, std::string_view level, std::string_view message, std::time_t now);

class Log {
public:
    explicit Log(const GlobalOptions& global) : global_(global) {}
    // An error: to the --log file in its format, and to stderr — plainly when a file has it,
    // formatted otherwise (as runc).
    void error(std::string_view message) const;
    // Something that failed without failing the verb (a poststart or poststop hook): to the
    // --log file, or stderr.
    void warning(std::string_view message) const { write("warning", message); }
    // With --debug only, to the --log file (or stderr).
    void debug(std::string_view message) const;

private:
    void write(std::string_view level, std::string_view message) const;
    const GlobalOptions& global_;
};

} // namespace nsfork::oci
