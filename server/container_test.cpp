// A container record's phases and the registry's destroy tree, without processes: records
// hold no kernel objects here, and "killing" one is recorded instead of sent.
#include "server/container.hpp"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace nsfork;

namespace {

// A record with no kernel objects (descriptors of `io` that hold no fd).
std::shared_ptr<ContainerRecord> record(boost::asio::io_context& io, std::string id, std::string parent = {}) {
    auto c = std::make_shared<ContainerRecord>(ContainerRecord::Descriptor(io), ContainerRecord::Descriptor(io));
    c->info.id = std::move(id);
    c->info.parent = std::move(parent);
    return c;
}

// A registry of `top` with `mid` nested in it and `leaf` nested in `mid`, all running.
struct Tree {
    boost::asio::io_context io; // per test: its epoll and eventfd are closed with it
    Registry reg;
    std::vector<std::string> killed, forgotten;
    Registry::Kill kill = [this](ContainerRecord& c) { killed.push_back(c.info.id); };
    Registry::OnForget forget = [this](ContainerRecord& c) { forgotten.push_back(c.info.id); };
    std::shared_ptr<ContainerRecord> top = record(io, "top"), mid = record(io, "mid", "top"), leaf = record(io, "leaf", "mid");
    Tree() {
        top->children.push_back("mid");
        mid->children.push_back("leaf");
        for (auto& c : {top, mid, leaf}) {
            REQUIRE(c->exec_reported());
            reg.add(c);
        }
    }
    // The container's first process was reaped and its cgroup emptied.
    void end(ContainerRecord& c) {
        REQUIRE(c.reaped());
        REQUIRE(c.drained());
    }
};

} // namespace

TEST_CASE("container: phases go forward one step at a time") {
    boost::asio::io_context io;
    auto c = record(io, "a");
    CHECK(c->phase() == Phase::starting);
    CHECK(c->wire_state() == State::starting);
    CHECK_FALSE(c->drained());
    CHECK_FALSE(c->forgotten());
    CHECK(c->exec_reported());
    CHECK(c->wire_state() == State::running);
    CHECK_FALSE(c->exec_reported());
    CHECK(c->reaped());
    CHECK_FALSE(c->reaped());
    CHECK_FALSE(c->exec_reported());
    CHECK(c->wire_state() == State::exited);
    CHECK(c->drained());
    CHECK(c->forgotten());
    CHECK(c->phase() == Phase::gone);
    CHECK(c->wire_state() == State::destroyed);
    CHECK_FALSE(c->reaped());
}

TEST_CASE("container: one that ends before its exec report skips running") {
    boost::asio::io_context io;
    auto c = record(io, "a");
    CHECK(c->reaped());
    CHECK(c->phase() == Phase::exited);
    CHECK_FALSE(c->exec_reported());
}

TEST_CASE("container: a kill is sent once, and never to one that ended") {
    boost::asio::io_context io;
    auto c = record(io, "a");
    CHECK(c->take_kill());
    CHECK(c->kill_sent());
    CHECK_FALSE(c->take_kill());
    auto ended = record(io, "b");
    REQUIRE(ended.get()->reaped());
    CHECK_FALSE(ended->take_kill());
}

TEST_CASE("container: a failed launch is discarded and invisible, a running one cannot fail") {
    boost::asio::io_context io;
    auto c = record(io, "a");
    CHECK(c->launch_failed());
    CHECK_FALSE(c->visible());
    CHECK(c->destroying());
    CHECK_FALSE(c->exec_reported());
    auto running = record(io, "b");
    REQUIRE(running->exec_reported());
    CHECK_FALSE(running->launch_failed());
    CHECK(running->visible());
    Registry reg;
    reg.add(c);
    reg.add(running);
    CHECK(reg.find("a") == nullptr);
    CHECK(reg.contains("a"));
    CHECK(reg.find("b") == running);
}

TEST_CASE("container: one destroyed after it exited is reported destroyed, not exited") {
    boost::asio::io_context io;
    auto c = record(io, "a");
    REQUIRE(c->reaped());
    c->destroy_requested();
    CHECK(c->wire_state() == State::destroyed);
    CHECK(c->teardown() == Teardown::destroying);
    c->destroy_requested(); // twice is harmless
    CHECK(c->teardown() == Teardown::destroying);
}

TEST_CASE("registry: destroying a container kills its whole nest, outermost first, once each") {
    Tree t;
    t.reg.request_destroy(*t.top, t.kill);
    CHECK(t.killed == std::vector<std::string>{"top", "mid", "leaf"});
    CHECK(t.mid->destroying());
    CHECK(t.leaf->destroying());
    t.reg.request_destroy(*t.top, t.kill);
    CHECK(t.killed.size() == 3);
}

TEST_CASE("registry: killing a container that ended kills nothing nested (its exit did)") {
    Tree t;
    REQUIRE(t.top->reaped());
    t.reg.kill(*t.top, t.kill);
    CHECK(t.killed.empty());
}

TEST_CASE("registry: a destroyed tree is forgotten as each part settles, a parent only after its nest") {
    Tree t;
    t.reg.request_destroy(*t.top, t.kill);
    t.end(*t.top);
    CHECK_FALSE(t.reg.settle_up("top", t.forget)); // mid and leaf still run
    t.end(*t.mid);
    CHECK_FALSE(t.reg.settle_up("mid", t.forget)); // leaf still runs
    CHECK(t.reg.size() == 3);
    t.end(*t.leaf);
    CHECK(t.reg.settle_up("leaf", t.forget));
    CHECK(t.forgotten == std::vector<std::string>{"leaf", "mid", "top"});
    CHECK(t.reg.empty());
    CHECK(t.top->phase() == Phase::gone);
}

TEST_CASE("registry: a settled leaf of a destroyed tree is forgotten before its unsettled parent") {
    Tree t;
    t.reg.request_destroy(*t.top, t.kill);
    t.end(*t.leaf);
    CHECK(t.reg.settle_up("leaf", t.forget));
    CHECK(t.forgotten == std::vector<std::string>{"leaf"});
    CHECK(t.mid->children.empty());
    t.end(*t.top);
    t.end(*t.mid);
    CHECK(t.reg.settle_up("mid", t.forget));
    CHECK(t.forgotten == std::vector<std::string>{"leaf", "mid", "top"});
}

TEST_CASE("container: a failed launch is killed before it is discarded") {
    Tree t;
    auto c = record(t.io, "new");
    t.reg.add(c);
    t.reg.request_destroy(*c, t.kill);
    CHECK(c->launch_failed());
    CHECK(t.killed == std::vector<std::string>{"new"});
    CHECK(c->teardown() == Teardown::discarded);
}

TEST_CASE("registry: destroying a nested container detaches it from its parent, which lives on") {
    Tree t;
    t.reg.request_destroy(*t.mid, t.kill);
    CHECK(t.killed == std::vector<std::string>{"mid", "leaf"});
    CHECK_FALSE(t.top->kill_sent());
    t.end(*t.mid);
    t.end(*t.leaf);
    CHECK(t.reg.settle_up("leaf", t.forget));
    CHECK(t.forgotten == std::vector<std::string>{"leaf", "mid"});
    CHECK(t.top->children.empty());
    CHECK(t.reg.find("top") == t.top);
    CHECK(t.reg.size() == 1);
}

TEST_CASE("registry: a container that ended without a Destroy is kept, with its status") {
    Tree t;
    t.end(*t.leaf);
    CHECK_FALSE(t.reg.settle_up("leaf", t.forget));
    CHECK(t.reg.find("leaf") == t.leaf);
    CHECK(t.leaf->wire_state() == State::exited);
}
