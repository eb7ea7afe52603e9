// How a container's first process ended.
#pragma once

namespace nsfork {

struct ExitStatus {
    int code = 0;   // exit code, when signal == 0
    int signal = 0; // terminating signal, 0 when the process exited

    // The shell convention: the exit code, or 128+N when killed by signal N. Values no kernel
    // produces (they can arrive from a hostile peer) give 255 rather than overflow.
    int shell_code() const noexcept {
        if (signal == 0) return code;
        return signal > 0 && signal < 128 ? 128 + signal : 255;
    }
    bool operator==(const ExitStatus&) const = default;
};

} // namespace nsfork
