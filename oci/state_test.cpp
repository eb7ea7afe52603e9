#include "oci/state.hpp"

#include "oci/options.hpp"
#include "testing/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

using namespace nsfork::oci;

namespace {

ContainerState sample() {
    ContainerState s;
    s.id = "c1";
    s.bundle = "/b";
    s.rootfs = "/b/rootfs";
    s.pid = 1234;
    s.start_time = 987654321;
    s.holder_pid = 1200;
    s.holder_start_time = 987654000;
    s.server_socket = "/run/nsfork/nsfork.sock";
    s.server_id = "c1";
    s.cgroups_path = "/kubepods/c1";
    s.cgroup_leaf = "/sys/fs/cgroup/unified/nsfork-1/kubepods/c1";
    s.controllers = {{"/sys/fs/cgroup/memory/kubepods/c1", "/sys/fs/cgroup/pids/kubepods/c1"}};
    s.annotations = {{"org.example", "yes"}};
    s.created = "2026-01-02T03:04:05.000000006Z";
    nsfork::oci::Hook h;
    h.path = "/bin/hook";
    h.args = {"hook", "poststop"};
    h.env = {"A=1"};
    h.timeout = 5;
    s.poststop = {h};
    return s;
}

} // namespace

TEST_CASE("oci state: encoded and decoded, every field survives") {
    const ContainerState s = sample();
    auto back = decode_state(encode_state(s));
    REQUIRE(back);
    CHECK(back->id == s.id);
    CHECK(back->bundle == s.bundle);
    CHECK(back->rootfs == s.rootfs);
    CHECK(back->pid == s.pid);
    CHECK(back->start_time == s.start_time);
    CHECK(back->holder_pid == s.holder_pid);
    CHECK(back->holder_start_time == s.holder_start_time);
    CHECK(back->server_socket == s.server_socket);
    CHECK(back->server_id == s.server_id);
    CHECK(back->cgroups_path == s.cgroups_path);
    CHECK(back->cgroup_leaf == s.cgroup_leaf);
    CHECK(back->controllers == s.controllers);
    CHECK(back->annotations == s.annotations);
    CHECK(back->created == s.created);
    CHECK(back->poststart.empty());
    REQUIRE(back->poststop.size() == 1);
    CHECK(back->poststop[0].path == "/bin/hook");
    CHECK(back->poststop[0].args == std::vector<std::string>{"hook", "poststop"});
    CHECK(back->poststop[0].env == std::vector<std::string>{"A=1"});
    CHECK(back->poststop[0].timeout == 5);
}

TEST_CASE("oci state: the controllers made, none made, and a state that did not keep them are told apart") {
    ContainerState s = sample();
    s.controllers = std::vector<std::string>{};
    auto none = decode_state(encode_state(s));
    REQUIRE(none);
    CHECK(none->controllers == std::vector<std::string>{});
    s.controllers.reset();
    auto unknown = decode_state(encode_state(s));
    REQUIRE(unknown);
    CHECK_FALSE(unknown->controllers.has_value());
}

TEST_CASE("oci state: a damaged state file is an error naming it, not a crash") {
    CHECK_FALSE(decode_state("{"));
    auto missing = decode_state(R"({"id": "c1"})");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message.find("state.json") != std::string::npos);
}

TEST_CASE("oci state: state's JSON is runc's, pid 0 once stopped, annotations when there are some") {
    const ContainerState s = sample();
    const auto running = nlohmann::json::parse(state_json(s, Status::running));
    CHECK(running["ociVersion"] == kRuntimeSpecVersion);
    CHECK(running["id"] == "c1");
    CHECK(running["pid"] == 1234);
    CHECK(running["status"] == "running");
    CHECK(running["bundle"] == "/b");
    CHECK(running["rootfs"] == "/b/rootfs");
    CHECK(running["created"] == s.created);
    CHECK(running["annotations"]["org.example"] == "yes");
    CHECK(nlohmann::json::parse(state_json(s, Status::stopped))["pid"] == 0);
    ContainerState plain = s;
    plain.annotations.clear();
    CHECK_FALSE(nlohmann::json::parse(state_json(plain, Status::created)).contains("annotations"));
    const auto hook = nlohmann::json::parse(hook_state_json(s, Status::creating));
    CHECK(hook["status"] == "creating");
    CHECK(hook["pid"] == 1234);
    CHECK(hook["bundle"] == "/b");
    CHECK(hook["annotations"].is_object());
}

TEST_CASE("oci state: container ids as runc takes them") {
    for (const char* id : {"c1", "a.b-c_d+e", "ABC123"}) CHECK(validate_container_id(id));
    for (const char* id : {"", ".", "..", "a/b", "a b", "a\nb"}) CHECK_FALSE(validate_container_id(id));
}

TEST_CASE("oci state: /proc/PID/stat's state and start time, a command with spaces and parentheses") {
    auto stat = parse_process_stat("42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5551212 1000 10");
    REQUIRE(stat);
    CHECK(stat->state == 'S');
    CHECK(stat->start_time == 5551212);
    CHECK(stat->running());
    auto zombie = parse_process_stat("7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0");
    REQUIRE(zombie);
    CHECK_FALSE(zombie->running());
    CHECK_FALSE(parse_process_stat("7 (truncated) S 1 2"));
    auto self = process_stat(::getpid());
    REQUIRE(self);
    CHECK(same_process_running(::getpid(), self->start_time));
    CHECK_FALSE(same_process_running(::getpid(), self->start_time + 1));
}

TEST_CASE("oci state: a state directory is made once, read back, refused twice, gone after remove") {
    auto tmp = nsfork::testing::TempDir::create("oci-state");
    REQUIRE(tmp);
    const std::string root = tmp->path() + "/root";
    auto unknown = StateDir::open(root, "c1");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().message == "container c1 does not exist");
    auto dir = StateDir::make(root, "c1");
    REQUIRE(dir);
    // Made but never written (a create killed half-way): no container yet.
    CHECK_FALSE(StateDir::open(root, "c1"));
    auto again = StateDir::make(root, "c1");
    REQUIRE_FALSE(again);
    CHECK(again.error().message.find("already exists") != std::string::npos);
    REQUIRE(dir->write(sample()));
    auto opened = StateDir::open(root, "c1");
    REQUIRE(opened);
    auto read = opened->read();
    REQUIRE(read);
    CHECK(read->pid == 1234);
    CHECK(::access((dir->path() + "/state.json.tmp").c_str(), F_OK) != 0);
    REQUIRE(dir->remove());
    CHECK(::access(dir->path().c_str(), F_OK) != 0);
    CHECK(dir->remove());
    CHECK_FALSE(StateDir::make(root, "../escape"));
}

TEST_CASE("oci state: files written atomically hold exactly the text") {
    auto tmp = nsfork::testing::TempDir::create("oci-state");
    REQUIRE(tmp);
    const std::string path = tmp->path() + "/pid";
    REQUIRE(write_file_atomically(path, "1234"));
    CHECK(*read_text_file(path) == "1234");
    REQUIRE(write_file_atomically(path, "56"));
    CHECK(*read_text_file(path) == "56");
    CHECK_FALSE(write_file_atomically(tmp->path() + "/missing/pid", "1"));
}
