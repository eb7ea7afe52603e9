// ExitStatus::shell_code: the shell's convention, and what it does with values no kernel makes
// (they can arrive from a hostile peer over the wire).
#include "nsfork/exit_status.hpp"

#include <catch2/catch.hpp>

#include <climits>
#include <csignal>

using nsfork::ExitStatus;

TEST_CASE("shell_code of an exit is the exit code, all 256 of them") {
    for (int code = 0; code < 256; ++code) CHECK(ExitStatus{code, 0}.shell_code() == code);
}

TEST_CASE("shell_code of a death by signal N is 128+N") {
    CHECK(ExitStatus{0, SIGKILL}.shell_code() == 137);
    CHECK(ExitStatus{0, SIGTERM}.shell_code() == 143);
    CHECK(ExitStatus{0, 1}.shell_code() == 129);
    CHECK(ExitStatus{0, 127}.shell_code() == 255);
}

TEST_CASE("shell_code of a signal no kernel sends is 255, never an overflow") {
    CHECK(ExitStatus{0, 128}.shell_code() == 255);
    CHECK(ExitStatus{0, -1}.shell_code() == 255);
    CHECK(ExitStatus{0, INT_MAX}.shell_code() == 255);
    CHECK(ExitStatus{0, INT_MIN}.shell_code() == 255);
}

TEST_CASE("shell_code ignores the code once a signal is set") {
    CHECK(ExitStatus{3, SIGINT}.shell_code() == 130);
}

TEST_CASE("ExitStatus compares code and signal") {
    CHECK(ExitStatus{0, 9} == ExitStatus{0, 9});
    CHECK_FALSE(ExitStatus{9, 0} == ExitStatus{0, 9});
    CHECK(ExitStatus{} == ExitStatus{0, 0});
}
