// The warm pool under cluster engines. podman and Docker mount each container's root filesystem
// on the host just before `create`, so every namespace the pool holds ready copied an older mount
// table. nsfork-oci carries the root and every bind source in as detached mounts (open_tree in its
// own mount namespace) and pivots away from the rest: its hold launches are served from those
// entries all the same, nothing discarded. An agent launch, which runs with the server's own view
// of the file system, never gets one (server/pool.hpp).
#include "tests/oci/bundle_support.hpp"

#include "testing/poll.hpp"

#include <sys/mount.h>

#include <algorithm>
#include <fstream>

using namespace nsfork::test::oci;
using nsfork::ServerStatus;
using nsfork::test::TempDir;

namespace {

// A tmpfs mounted on the host (the mount namespace of this process, the server and nsfork-oci)
// in a directory of its own, unmounted when it goes.
class HostMount {
public:
    HostMount() { REQUIRE(::mount("nsfork-pool-test", dir_.path().c_str(), "tmpfs", 0, "mode=0755") == 0); }
    ~HostMount() { ::umount2(dir_.path().c_str(), MNT_DETACH); }
    HostMount(const HostMount&) = delete;
    HostMount& operator=(const HostMount&) = delete;
    const std::string& path() const { return dir_.path(); }

private:
    TempDir dir_;
};

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

// Whether the host's mount table lists a mount on `path`.
bool mounted(const std::string& path) {
    return read_file("/proc/self/mountinfo").find(" " + path + " ") != std::string::npos;
}

// A server with a warm pool of 3 on the host's mount table, nsfork-oci over it, and the suite's
// set-up (root, this process a subreaper, the busybox root filesystem).
struct PoolNode {
    static constexpr std::uint32_t kSize = 3;
    Suite suite;
    // No warm runtimes: the server's children are then its pool's entries (entries() below).
    nsfork::test::ServerProcess server{{"--warm-pool", std::to_string(kSize), "--no-warm-runtimes"}};
    Runtime oci{"nsfork-oci", {nsfork::test::bin("nsfork-oci"), "--nsfork-socket", server.socket()}};
    nsfork::Client client = server.connect();

    ServerStatus status() { return MUST(client.status()); }
    // The status once the pool is full again.
    ServerStatus filled() {
        REQUIRE(nsfork::testing::eventually([&] { return status().pool_ready == kSize; }));
        return status();
    }
    // The pool's entries now (the server's children while no container runs).
    std::vector<pid_t> entries() { return nsfork::testing::children_of(server.pid()); }
    // The pid of the holder of the one container the server has.
    pid_t holder() {
        const auto listed = MUST(client.list());
        REQUIRE(listed.size() == 1);
        return listed[0].pid;
    }
    // create (the holder taken from the pool: checked to be one of `old_entries`), start, its
    // output, delete: what an engine does with `bundle`.
    std::string launch(Bundle& bundle, const std::vector<pid_t>& old_entries) {
        Capture out;
        const Created c = oci.create(bundle, out);
        const pid_t taken = holder();
        CHECK(std::find(old_entries.begin(), old_entries.end(), taken) != old_entries.end());
        oci.start(c.id);
        CHECK(wait_exit(c.pid) == 0);
        const Outcome deleted = oci({"delete", c.id});
        INFO(deleted.err);
        CHECK(deleted.code == 0);
        return out.out();
    }
};

} // namespace

TEST_CASE("oci pool: a root filesystem mounted on the host just before create is served from the pool, none discarded") {
    PoolNode n;
    const ServerStatus first = n.filled();
    for (int i = 0; i < 4; ++i) {
        INFO("launch " << i);
        const ServerStatus before = n.filled();
        const std::vector<pid_t> entries = n.entries(); // all made before the mount below
        std::string path;
        {
            HostMount root; // as podman's overlay: a new mount on the host, the container's root
            path = root.path();
            REQUIRE(nsfork::test::run_process({"/bin/cp", "-a", busybox_rootfs() + "/.", path}).exit_code == 0);
            write_text(path + "/marker", "root " + std::to_string(i) + "\n");
            Bundle b({"cat", "/marker"});
            b.config["root"]["path"] = path;
            CHECK(n.launch(b, entries) == "root " + std::to_string(i) + "\n");
        }
        CHECK_FALSE(mounted(path));
        const ServerStatus after = n.status();
        CHECK(after.pool_served == before.pool_served + 1);
        CHECK(after.pool_discarded == first.pool_discarded);
    }
    // And no background replacement either, the table having changed at every launch.
    CHECK(n.filled().pool_discarded == first.pool_discarded);
}

TEST_CASE("oci pool: a bind source mounted on the host after the pool filled is seen in a container served from it") {
    PoolNode n;
    const ServerStatus before = n.filled();
    const std::vector<pid_t> entries = n.entries();
    std::string path;
    {
        HostMount data;
        path = data.path();
        write_text(path + "/marker", "bound\n");
        Bundle b({"cat", "/mnt/marker"}); // /mnt: in the shared root filesystem already
        b.config["mounts"].push_back({{"destination", "/mnt"}, {"type", "bind"}, {"source", path},
                                      {"options", {"rbind", "ro"}}});
        CHECK(n.launch(b, entries) == "bound\n");
    }
    CHECK_FALSE(mounted(path));
    const ServerStatus after = n.status();
    CHECK(after.pool_served == before.pool_served + 1);
    CHECK(after.pool_discarded == before.pool_discarded);
}

TEST_CASE("oci pool: an agent launch after a host mount change sees the new mount, never a stale entry") {
    PoolNode n;
    const ServerStatus before = n.filled();
    std::string path;
    {
        HostMount data;
        path = data.path();
        write_text(path + "/marker", "agent\n");
        // The mount is in the host's table before the launch asks: every entry is stale for it.
        const nsfork::test::RunResult r = nsfork::test::run(n.client, {"/bin/cat", path + "/marker"});
        CHECK(r.status.code == 0);
        CHECK(r.out == "agent\n");
        const ServerStatus after = n.status();
        CHECK(after.pool_served == before.pool_served); // it went cold
        CHECK(after.pool_discarded >= before.pool_discarded + PoolNode::kSize);
        // Refilled (after the mount): an agent launch sees it from a warm entry too (unless the
        // host's table changed again meanwhile, which a busy machine's may: then it goes cold).
        n.filled();
        CHECK(nsfork::test::run(n.client, {"/bin/cat", path + "/marker"}).out == "agent\n");
    }
    CHECK_FALSE(mounted(path));
}

