// How a container's first process ended.
#pragma once

namespace nsfork {

struct ExitStatus {
    int code = 0;   // exit code, when signal == 0
    int signal = 0; // terminating signal, 0 when the process exited

    // The shell convention: the exit code, or 128+N when killed by signal N.
    int shell_code() const noexcept { return signal ? 128 + signal : code; }
    bool operator==(const ExitStatus&) const = default;
};

} // namespace nsfork
