// The schema evolves only compatibly: a client built from the previous schema (old_client.cpp,
// README.md here) is still served by today's server, and reads its replies.
#include "tests/harness.hpp"

using namespace nsfork;
using namespace nsfork::test;

TEST_CASE("compat: a client built from the previous schema is served: Hello, Launch with stdio, Wait, List, Destroy") {
    require_root();
    ServerProcess server;
    const ProcessResult r = run_process({bin("nsfork-compat-client"), server.socket()});
    INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    const std::vector<std::string> said = lines(r.out);
    REQUIRE(said.size() == 7);
    CHECK(said[0] == "hello: version 1, server pid " + std::to_string(server.pid()) + ", status table fd");
    CHECK(said[1].starts_with("launch: compat-1, pid "));
    CHECK(said[1].ends_with(", stdio through pipes"));
    CHECK(said[2] == "wait: exited 0");
    CHECK(said[3] == "list: 1 container(s), compat-1 among them");
    CHECK(said[4] == "error: no container with id 'compat-none'");
    CHECK(said[5] == "list: 1 container(s), compat-1 among them"); // a connection without Hello
    CHECK(said[6] == "destroy: compat-1");
}
