#include "cli/json.hpp"

#include <catch2/catch.hpp>

using namespace nsfork;

TEST_CASE("cli json: a container, running and ended, in the order scripts read it") {
    ContainerInfo info;
    info.id = "web";
    info.pid = 1234;
    info.pidns = 4026531836;
    info.state = State::running;
    CHECK(cli::to_json(info) ==
          R"({"id":"web","parent":null,"pid":1234,"pidns":4026531836,"state":"running","exit_status":null})");
    info.parent = "outer";
    info.state = State::exited;
    info.exit = ExitStatus{0, 9};
    CHECK(cli::to_json(info) == R"({"id":"web","parent":"outer","pid":1234,"pidns":4026531836,"state":"exited",)"
                                R"("exit_status":{"code":0,"signal":9,"status":137}})");
}

TEST_CASE("cli json: strings are escaped, and bytes that are not UTF-8 do not throw") {
    ContainerInfo info;
    info.id = "a\"b\\c\nd\x01";
    CHECK(cli::to_json(info).find(R"("id":"a\"b\\c\nd\u0001")") != std::string::npos);
    info.id = "bad\xff";
    CHECK(cli::to_json(info).find(R"("id":"bad)" "\xEF\xBF\xBD" R"(")") != std::string::npos);
}

TEST_CASE("cli json: the server's status and a list") {
    ServerStatus s;
    s.pid = 42;
    s.pool_size = 3;
    s.pool_ready = 2;
    s.pool_warming = 1;
    s.pool_served = 7;
    s.pool_discarded = 5;
    CHECK(cli::to_json(s) ==
          R"({"server_pid":42,"pool":{"size":3,"ready":2,"warming":1,"served":7,"discarded":5}})");
    CHECK(cli::to_json(std::vector<ContainerInfo>{}) == "[]");
    ContainerInfo a, b;
    a.id = "a";
    b.id = "b";
    CHECK(cli::to_json(std::vector<ContainerInfo>{a, b}) == "[" + cli::to_json(a) + "," + cli::to_json(b) + "]");
}
