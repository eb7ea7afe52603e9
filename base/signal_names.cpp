#include "base/signal_names.hpp"

#include <charconv>
#include <csignal>
#include <cstring>

namespace nsfork {

int parse_signal(std::string_view s) {
    if (!s.empty() && s[0] >= '0' && s[0] <= '9') {
        int n = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        return ec == std::errc() && end == s.data() + s.size() && n >= 1 && n <= SIGRTMAX ? n : 0;
    }
    if (s.starts_with("SIG")) s.remove_prefix(3);
    for (int sig = 1; sig < NSIG; ++sig)
        if (const char* abbrev = ::sigabbrev_np(sig); abbrev && s == abbrev) return sig;
    return 0;
}

} // namespace nsfork
