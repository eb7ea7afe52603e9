#include "base/signal_names.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <string>
#include <vector>

using nsfork::parse_signal;

TEST_CASE("signal names: by name, SIG name or number, and 0 for anything else") {
    CHECK(parse_signal("TERM") == SIGTERM);
    CHECK(parse_signal("SIGKILL") == SIGKILL);
    CHECK(parse_signal("9") == 9);
    CHECK(parse_signal("WINCH") == SIGWINCH);
    CHECK(parse_signal(std::to_string(SIGRTMAX)) == SIGRTMAX);
    for (const std::string& bad : std::vector<std::string>{"", "0", "-9", "9x", "NOPE", "SIG", "term",
                                                           std::to_string(SIGRTMAX + 1)})
        CHECK(parse_signal(bad) == 0);
}
