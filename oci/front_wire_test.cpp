// The plan as the front receives it: every pointer and descriptor of a plan survives the
// encoding (front_link.cpp) and the in-place decoding (front_wire.cpp), and bytes that are not a
// plan are refused, not followed.
#include "oci/front_link.hpp"
#include "oci/front_wire.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace nsfork::oci;

// The encoded bytes in memory aligned as the front's (aligned_alloc).
struct Aligned {
    explicit Aligned(const std::string& bytes)
        : size(bytes.size()), data(static_cast<char*>(std::aligned_alloc(16, (bytes.size() + 15) / 16 * 16 + 16)), &std::free) {
        std::memcpy(data.get(), bytes.data(), bytes.size());
    }
    std::size_t size;
    std::unique_ptr<char, decltype(&std::free)> data;
};

} // namespace

TEST_CASE("oci front wire: a plan's steps, strings, lists, ids, filter and descriptors survive the encoding") {
    child::Step steps[3]{};
    steps[0].op = child::Op::mount_fs;
    steps[0].fd = 40;
    steps[0].number = 7;
    steps[0].set = 0x123456789ULL;
    steps[0].path = "/proc";
    steps[0].text = "proc";
    steps[0].text2 = "source";
    const char* options[] = {"mode", "0755", "ro", nullptr, "size", "64k", nullptr};
    steps[0].options = options;
    steps[1].op = child::Op::sethostname;
    steps[1].text = "box";
    steps[2].op = child::Op::exec;
    int preserved[] = {50, 51};
    const gid_t groups[] = {10, 20, 30};
    const char* candidates[] = {"/bin/true", "/usr/bin/true", nullptr};
    char arg0[] = "true", arg1[] = "--x";
    char* argv[] = {arg0, arg1, nullptr};
    char env0[] = "PATH=/bin";
    char* envp[] = {env0, nullptr};
    sock_filter insns[] = {{0x06, 0, 0, 0x7fff0000}, {0x15, 1, 2, 42}};

    child::Plan plan;
    plan.steps = steps;
    plan.count = 3;
    plan.report = 60;
    plan.parent_pidfd = 61;
    plan.stdio[0] = 0;
    plan.stdio[1] = 1;
    plan.stdio[2] = -1;
    plan.preserved = preserved;
    plan.preserved_count = 2;
    plan.groups = groups;
    plan.group_count = 3;
    plan.candidates = candidates;
    plan.argv = argv;
    plan.envp = envp;
    plan.filter = {2, insns};

    const front::EncodedPlan encoded = front::encode_plan(plan);
    // Sent by index: the front receives them as other numbers.
    std::vector<int> received;
    for (int fd : encoded.fds) received.push_back(fd + 1000);
    Aligned bytes(encoded.bytes);
    child::Plan* out = nullptr;
    REQUIRE(front::decode_plan(bytes.data.get(), bytes.size, received.data(), received.size(), &out));

    REQUIRE(out->count == 3);
    CHECK(out->steps[0].op == child::Op::mount_fs);
    CHECK(out->steps[0].fd == 1040);
    CHECK(out->steps[0].number == 7);
    CHECK(out->steps[0].set == 0x123456789ULL);
    CHECK(std::string(out->steps[0].path) == "/proc");
    CHECK(std::string(out->steps[0].text) == "proc");
    CHECK(std::string(out->steps[0].text2) == "source");
    REQUIRE(out->steps[0].options);
    CHECK(std::string(out->steps[0].options[0]) == "mode");
    CHECK(std::string(out->steps[0].options[1]) == "0755");
    CHECK(std::string(out->steps[0].options[2]) == "ro");
    CHECK(out->steps[0].options[3] == nullptr); // a flag: no value
    CHECK(std::string(out->steps[0].options[4]) == "size");
    CHECK(std::string(out->steps[0].options[5]) == "64k");
    CHECK(out->steps[0].options[6] == nullptr);
    CHECK(std::string(out->steps[1].text) == "box");
    CHECK(out->steps[1].path == nullptr);
    CHECK(out->steps[1].fd == -1);
    CHECK(out->steps[2].op == child::Op::exec);
    CHECK(out->report == 1060);
    CHECK(out->parent_pidfd == -1); // the front puts in its own
    CHECK(out->stdio[0] == 1000);
    CHECK(out->stdio[1] == 1001);
    CHECK(out->stdio[2] == -1);
    REQUIRE(out->preserved_count == 2);
    CHECK(out->preserved[0] == 1050);
    CHECK(out->preserved[1] == 1051);
    REQUIRE(out->group_count == 3);
    CHECK(out->groups[2] == 30);
    CHECK(std::string(out->candidates[1]) == "/usr/bin/true");
    CHECK(out->candidates[2] == nullptr);
    CHECK(std::string(out->argv[1]) == "--x");
    CHECK(out->argv[2] == nullptr);
    CHECK(std::string(out->envp[0]) == "PATH=/bin");
    REQUIRE(out->filter.len == 2);
    CHECK(out->filter.filter[1].k == 42);
    CHECK(out->filter.filter[1].jf == 2);
    // Nothing points outside the bytes.
    const char* begin = bytes.data.get();
    CHECK(reinterpret_cast<const char*>(out->steps[0].path) >= begin);
    CHECK(reinterpret_cast<const char*>(out->envp[0]) < begin + bytes.size);
}

TEST_CASE("oci front wire: an empty plan and bytes that are no plan") {
    child::Plan plan;
    const front::EncodedPlan encoded = front::encode_plan(plan);
    Aligned empty(encoded.bytes);
    child::Plan* out = nullptr;
    REQUIRE(front::decode_plan(empty.data.get(), empty.size, nullptr, 0, &out));
    CHECK(out->count == 0);
    CHECK(out->steps == nullptr);
    CHECK(out->argv == nullptr);

    child::Step step{};
    step.op = child::Op::chdir;
    step.path = "/work";
    step.fd = 3;
    plan.steps = &step;
    plan.count = 1;
    const front::EncodedPlan one = front::encode_plan(plan);
    const int fds[] = {100};

    SECTION("too short") {
        Aligned cut(one.bytes.substr(0, sizeof(child::Plan) - 1));
        CHECK_FALSE(front::decode_plan(cut.data.get(), cut.size, fds, 1, &out));
    }
    SECTION("a string cut off before its end") {
        Aligned cut(one.bytes.substr(0, one.bytes.size() - 1));
        CHECK_FALSE(front::decode_plan(cut.data.get(), cut.size, fds, 1, &out));
    }
    SECTION("a descriptor it was not sent") {
        Aligned whole(one.bytes);
        CHECK_FALSE(front::decode_plan(whole.data.get(), whole.size, fds, 0, &out));
    }
    SECTION("more steps than the bytes hold") {
        Aligned whole(one.bytes);
        reinterpret_cast<child::Plan*>(whole.data.get())->count = 1000;
        CHECK_FALSE(front::decode_plan(whole.data.get(), whole.size, fds, 1, &out));
    }
    SECTION("a pointer past the end") {
        Aligned whole(one.bytes);
        auto* p = reinterpret_cast<child::Plan*>(whole.data.get());
        p->argv = reinterpret_cast<char* const*>(whole.size + 64);
        CHECK_FALSE(front::decode_plan(whole.data.get(), whole.size, fds, 1, &out));
    }
}
