// The status table without a server: a writer publishes into its memfd, a reader maps the same
// memfd read-only (memfd and mmap need no privilege) and reads entries, generations, releases.
#include "protocol/status_table.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>

using namespace nsfork;

namespace {

ContainerInfo info(std::string id, State state, pid_t pid = 42) {
    ContainerInfo i;
    i.id = std::move(id);
    i.state = state;
    i.pid = pid;
    i.pidns = 4026531836;
    return i;
}

// A writer and a reader over the same table.
struct Table {
    StatusTableWriter writer;
    StatusTableReader reader;

    explicit Table(std::uint32_t capacity = 8) : writer(create(capacity)), reader(map(writer.fd())) {}

    static StatusTableWriter create(std::uint32_t capacity) {
        auto w = StatusTableWriter::create(capacity);
        REQUIRE(w);
        return std::move(*w);
    }
    static StatusTableReader map(int fd) {
        auto r = StatusTableReader::map(fd);
        REQUIRE(r);
        return std::move(*r);
    }
};

} // namespace

TEST_CASE("status table: a reader sees what the writer published") {
    Table t;
    auto slot = t.writer.acquire();
    REQUIRE(slot);
    CHECK_FALSE(t.reader.read(*slot)); // acquired, not yet published: free to readers
    t.writer.publish(*slot, info("web", State::running));
    auto seen = t.reader.read(*slot);
    REQUIRE(seen);
    CHECK(seen->id == "web");
    CHECK(seen->state == State::running);
    CHECK(seen->pid == 42);
    CHECK(seen->pidns == 4026531836u);
    CHECK_FALSE(seen->exit);
}

TEST_CASE("status table: an exit status is published with its state") {
    Table t;
    auto slot = t.writer.acquire();
    REQUIRE(slot);
    ContainerInfo ended = info("job", State::exited);
    ended.exit = ExitStatus{0, 9};
    t.writer.publish(*slot, ended);
    auto seen = t.reader.read(*slot);
    REQUIRE(seen);
    CHECK(seen->state == State::exited);
    REQUIRE(seen->exit);
    CHECK(*seen->exit == ExitStatus{0, 9});
}

TEST_CASE("status table: an id of the longest allowed length survives the round trip") {
    Table t;
    auto slot = t.writer.acquire();
    REQUIRE(slot);
    const std::string id(kMaxIdLength, 'z');
    t.writer.publish(*slot, info(id, State::starting));
    auto seen = t.reader.read(*slot);
    REQUIRE(seen);
    CHECK(seen->id == id);
}

TEST_CASE("status table: a released slot reads as free, and its reuse has a new generation") {
    Table t(1);
    auto slot = t.writer.acquire();
    REQUIRE(slot);
    t.writer.publish(*slot, info("first", State::running));
    const auto first = t.reader.read(*slot);
    REQUIRE(first);
    t.writer.release(*slot);
    CHECK_FALSE(t.reader.read(*slot));
    auto again = t.writer.acquire();
    REQUIRE(again);
    CHECK(*again == *slot); // capacity 1: the same slot
    t.writer.publish(*again, info("second", State::running));
    const auto second = t.reader.read(*again);
    REQUIRE(second);
    CHECK(second->id == "second");
    CHECK(second->generation != first->generation);
}

TEST_CASE("status table: acquire stops at the capacity, and a release frees one slot") {
    Table t(3);
    std::vector<std::uint32_t> slots;
    for (int i = 0; i < 3; ++i) {
        auto s = t.writer.acquire();
        REQUIRE(s);
        slots.push_back(*s);
    }
    CHECK_FALSE(t.writer.acquire());
    t.writer.release(slots[1]);
    auto s = t.writer.acquire();
    REQUIRE(s);
    CHECK(*s == slots[1]);
    CHECK(t.reader.capacity() == 3);
}

TEST_CASE("status table: a slot out of range reads as nothing") {
    Table t(2);
    CHECK_FALSE(t.reader.read(2));
    CHECK_FALSE(t.reader.read(0xffffffffu));
}

TEST_CASE("status table: the event counter moves on every publish, at once or with wake_readers") {
    Table t;
    auto slot = t.writer.acquire();
    REQUIRE(slot);
    const std::uint32_t before = t.reader.events();
    t.writer.publish(*slot, info("a", State::starting));
    const std::uint32_t after_now = t.reader.events();
    CHECK(after_now != before);
    t.writer.publish(*slot, info("a", State::running), StatusTableWriter::Wake::later);
    CHECK(t.reader.events() != after_now); // the count moves now; only the futex wake waits
    t.writer.wake_readers();
    // A reader that has seen the latest count sleeps until its timeout.
    const auto start = std::chrono::steady_clock::now();
    t.reader.wait_event(t.reader.events(), 20);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(15));
}

TEST_CASE("status table: a reader refuses a memfd that is not a table") {
    UniqueFd fd(::memfd_create("not-a-table", MFD_CLOEXEC));
    REQUIRE(fd);
    REQUIRE(::ftruncate(fd.get(), 4096) == 0);
    CHECK_FALSE(StatusTableReader::map(fd.get()));
    UniqueFd empty(::memfd_create("empty", MFD_CLOEXEC));
    REQUIRE(empty);
    CHECK_FALSE(StatusTableReader::map(empty.get()));
}

TEST_CASE("status table: the fd handed to readers cannot be mapped writable") {
    Table t;
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, t.writer.fd(), 0);
    CHECK(p == MAP_FAILED);
    if (p != MAP_FAILED) ::munmap(p, 4096);
}
