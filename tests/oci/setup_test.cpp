// The container's process (oci/setup.hpp) in real namespaces: a holder made here as the server
// makes one (pid 1 of new pid and mount namespaces, / private, /proc mounted, running nothing),
// a busybox root filesystem, Specs written by hand, and what the process sees from inside.
#include "oci/setup.hpp"
#include "oci/spec.hpp"

#include "base/pidfd.hpp"
#include "base/procfs.hpp"
#include "base/syscalls.hpp"
#include "launcher/clone.hpp"
#include "tests/harness.hpp"
#include "tests/oci/bundle_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace nsfork::oci {
namespace {

using test::oci::busybox_rootfs;
using test::oci::read_file;

// The "net:[4026531840]" of /proc/PID/ns/NAME.
std::string namespace_of(pid_t pid, const char* name) {
    char buf[64];
    const ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/ns/" + name).c_str(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
}

// A namespace holder as the server's hold containers are: pid 1 of a new pid namespace with a
// mount namespace of its own (/ private, /proc its own), doing nothing until killed.
class Holder {
public:
    explicit Holder(CloneFlags more = {}) {
        test::Pipe ready;
        int pidfd = -1;
        const CloneOptions o{.flags = CloneFlags::new_pid_namespace() | CloneFlags::new_mount_namespace() | more, .pidfd = &pidfd};
        const pid_t pid = clone_process(o, [&] {
            if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
                ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
                ::_exit(1);
            [[maybe_unused]] ssize_t n = ::write(ready.write.get(), "r", 1);
            for (;;) ::pause();
        });
        REQUIRE(pid > 0);
        pidfd_.reset(pidfd);
        pid_ = pid;
        ready.write.reset();
        char c = 0;
        REQUIRE(::read(ready.read.get(), &c, 1) == 1);
    }
    ~Holder() {
        (void)signal_pidfd(pidfd_.get(), SIGKILL);
        (void)reap(pidfd_.get());
    }
    int pidfd() const { return pidfd_.get(); }
    pid_t pid() const { return pid_; }
    std::string ns(const char* name) const { return namespace_of(pid_, name); }
    // The live processes of its pid namespace (itself included).
    std::size_t processes() const {
        struct stat st;
        REQUIRE(::stat(("/proc/" + std::to_string(pid_) + "/ns/pid").c_str(), &st) == 0);
        return testing::processes_in_pidns(st.st_ino).size();
    }

private:
    UniqueFd pidfd_;
    pid_t pid_ = -1;
};

Mount fs_mount(std::string dest, std::string type, unsigned long flags = 0, std::string data = {}) {
    Mount m;
    m.field = "mounts[?]";
    m.destination = std::move(dest);
    m.type = std::move(type);
    m.flags = flags;
    m.data = std::move(data);
    return m;
}

Mount bind_mount(std::string source, std::string dest, unsigned long flags = 0) {
    Mount m;
    m.field = "mounts[?]";
    m.destination = std::move(dest);
    m.source = std::move(source);
    m.flags = MS_BIND | MS_REC | flags;
    return m;
}

// What `runc spec` asks for, minus the cgroup mount: proc, /dev with devpts, shm and mqueue,
// read-only sysfs; new pid, network, ipc, uts and mount namespaces; the busybox root, read-only.
Spec basic_spec(std::vector<std::string> args) {
    Spec s;
    s.root = busybox_rootfs();
    s.root_readonly = true;
    s.process.args = std::move(args);
    s.process.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"};
    s.namespaces = {{CLONE_NEWPID, ""}, {CLONE_NEWNET, ""}, {CLONE_NEWIPC, ""}, {CLONE_NEWUTS, ""}, {CLONE_NEWNS, ""}};
    s.mounts = {
        fs_mount("/proc", "proc"),
        fs_mount("/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
        fs_mount("/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        fs_mount("/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k"),
        fs_mount("/dev/mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV),
        fs_mount("/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY),
        fs_mount("/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
    };
    for (std::size_t i = 0; i < s.mounts.size(); ++i) s.mounts[i].field = "mounts[" + std::to_string(i) + "]";
    return s;
}

void renumber(Spec& s) {
    for (std::size_t i = 0; i < s.mounts.size(); ++i) s.mounts[i].field = "mounts[" + std::to_string(i) + "]";
}

// An exec fifo as nsfork-oci makes one (0622: the process may have switched user when it opens it).
class ExecFifo {
public:
    ExecFifo() {
        const std::string path = dir_.path() + "/exec.fifo";
        REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
        REQUIRE(::chmod(path.c_str(), 0622) == 0);
        fd_.reset(::open(path.c_str(), O_PATH | O_CLOEXEC));
        REQUIRE(fd_);
    }
    int fd() const { return fd_.get(); }
    // `start`: opens it for reading (the process's open for writing returns) and reads its byte.
    void start() const {
        UniqueFd r(::open((dir_.path() + "/exec.fifo").c_str(), O_RDONLY | O_CLOEXEC));
        REQUIRE(r);
        char c = 0;
        REQUIRE(::read(r.get(), &c, 1) == 1);
    }

private:
    test::TempDir dir_;
    UniqueFd fd_;
};

// A container process created in `holder`, its stdout and stderr one pipe.
struct Created {
    ContainerProcess process;
    UniqueFd output;
};

Result<Created> try_create(const Spec& spec, const Holder& holder, const ExecFifo& fifo,
                           std::function<void(CreateRequest&)> edit = {}) {
    test::Pipe out;
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    CreateRequest r;
    r.spec = &spec;
    r.holder_pidfd = holder.pidfd();
    r.exec_fifo = fifo.fd();
    r.io.stdio = {null.get(), out.write.get(), out.write.get()};
    if (edit) edit(r);
    auto p = create_process(r);
    if (!p) return std::move(p).error();
    return Created{std::move(*p), std::move(out.read)};
}

Created create(const Spec& spec, const Holder& holder, const ExecFifo& fifo, std::function<void(CreateRequest&)> edit = {}) {
    return MUST(try_create(spec, holder, fifo, std::move(edit)));
}

// Starts a created process and waits for its end: its output and exit status.
struct Ran {
    std::string out;
    ExitStatus status;
};
Ran start_and_wait(Created& c, const ExecFifo& fifo) {
    fifo.start();
    Ran r;
    r.out = test::read_all(c.output.get());
    r.status = MUST(reap(c.process.pidfd.get()));
    return r;
}

Ran run(const Spec& spec, std::function<void(CreateRequest&)> edit = {}) {
    Holder holder;
    ExecFifo fifo;
    Created c = create(spec, holder, fifo, std::move(edit));
    return start_and_wait(c, fifo);
}

// The value of "Key:" in /proc/self/status as printed by the process.
std::string field(const std::string& out, const std::string& key) {
    for (const std::string& line : test::lines(out))
        if (line.starts_with(key + ":")) {
            std::string v = line.substr(key.size() + 1);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
            return v;
        }
    return "<no " + key + ">";
}

TEST_CASE("oci setup: create_process: the process is pid 2 of the holder's namespace, its / the root filesystem, and it waits on the exec fifo",
          "[oci][setup]") {
    test::require_root();
    const Spec spec = basic_spec({"sh", "-c", "echo pid=$$; echo ppid=$PPID; ls /; test -e /usr/lib && echo host-usr-lib; true"});
    Holder holder;
    ExecFifo fifo;
    Created c = create(spec, holder, fifo);
    // Created: alive, held by the fifo, nothing written yet.
    CHECK(testing::alive(c.process.pid));
    pollfd p{c.output.get(), POLLIN, 0};
    CHECK(::poll(&p, 1, 0) == 0);
    CHECK(holder.processes() == 2);
    const Ran r = start_and_wait(c, fifo);
    CHECK(r.status == ExitStatus{0, 0});
    INFO(r.out);
    CHECK(r.out.find("pid=2\n") != std::string::npos);
    CHECK(r.out.find("ppid=0\n") != std::string::npos); // its parent, the runtime, is outside
    CHECK(r.out.find("bin\n") != std::string::npos); // / is the rootfs (no /usr/lib there)
    CHECK(r.out.find("host-usr-lib") == std::string::npos);
}

TEST_CASE("oci setup: create_process: mounts with their flags, read-only root, and the default devices with their modes", "[oci][setup]") {
    test::require_root();
    test::TempDir host;
    {
        std::ofstream(host.path() + "/file") << "from the host\n";
    }
    Spec spec = basic_spec({"sh", "-c",
                            "cat /mnt/file; touch /mnt/new 2>/dev/null && echo data-writable; "
                            "touch /new 2>/dev/null && echo root-writable; "
                            "grep -E ' /(mnt|srv|proc|sys|dev/pts) ' /proc/self/mountinfo; "
                            "for d in null zero full random urandom tty fuse; do stat -c \"%n %F %t %T %a %u %g\" /dev/$d; done; "
                            "readlink /dev/ptmx; readlink /dev/fd; readlink /dev/stdin; ls /dev/pts; stat -c '%n %a' /srv"});
    spec.mounts.push_back(bind_mount(host.path(), "/mnt", MS_RDONLY | MS_NOSUID));
    spec.mounts.push_back(fs_mount("/srv", "tmpfs", MS_NOEXEC, "mode=700,size=1m"));
    spec.devices.push_back(Device{.path = "/dev/fuse", .type = 'c', .major = 10, .minor = 229, .file_mode = 0600, .uid = 0, .gid = 5});
    renumber(spec);
    const Ran r = run(spec);
    INFO(r.out);
    CHECK(r.status == ExitStatus{0, 0});
    CHECK(r.out.find("from the host\n") != std::string::npos);
    CHECK(r.out.find("data-writable") == std::string::npos);
    CHECK(r.out.find("root-writable") == std::string::npos);
    std::string data, scratch, sys;
    for (const std::string& line : test::lines(r.out)) {
        if (line.find(" /mnt ") != std::string::npos) data = line;
        if (line.find(" /srv ") != std::string::npos) scratch = line;
        if (line.find(" /sys ") != std::string::npos) sys = line;
    }
    CHECK(data.find(" ro,nosuid") != std::string::npos);
    CHECK(scratch.find(" rw,noexec,relatime - tmpfs tmpfs rw,size=1024k,mode=700") != std::string::npos);
    CHECK(sys.find(" ro,nosuid,nodev,noexec") != std::string::npos);
    CHECK(r.out.find("/dev/null character special file 1 3 666 0 0\n") != std::string::npos);
    CHECK(r.out.find("/dev/zero character special file 1 5 666 0 0\n") != std::string::npos);
    CHECK(r.out.find("/dev/urandom character special file 1 9 666 0 0\n") != std::string::npos);
    CHECK(r.out.find("/dev/tty character special file 5 0 666 0 0\n") != std::string::npos);
    CHECK(r.out.find("/dev/fuse character special file a e5 600 0 5\n") != std::string::npos);
    CHECK(r.out.find("pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n") != std::string::npos);
    CHECK(r.out.find("ptmx\n") != std::string::npos); // its own devpts instance: nothing but ptmx
    CHECK(r.out.ends_with("/srv 755\n")); // a tmpfs takes the mode of the directory it covers, as in runc
}

TEST_CASE("oci setup: create_process: user, groups, umask, capabilities, rlimits and no_new_privs", "[oci][setup]") {
    test::require_root();
    Spec spec = basic_spec({"sh", "-c", "grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs):' /proc/self/status; ulimit -n; ulimit -Hn; umask; pwd"});
    spec.process.user = User{.uid = 1000, .gid = 1001, .umask = 027, .additional_gids = {10, 20}};
    constexpr CapabilityMask kill = 1ULL << 5, net_bind = 1ULL << 10, chown = 1ULL << 0;
    spec.process.capabilities = Capabilities{.bounding = kill | net_bind | chown, .effective = kill | net_bind,
                                             .inheritable = net_bind, .permitted = kill | net_bind, .ambient = net_bind};
    spec.process.rlimits = {Rlimit{.resource = RLIMIT_NOFILE, .name = "RLIMIT_NOFILE", .soft = 100, .hard = 200}};
    spec.process.no_new_privileges = true;
    spec.process.cwd = "/tmp/work";
    const Ran r = run(spec);
    INFO(r.out);
    CHECK(r.status == ExitStatus{0, 0});
    CHECK(field(r.out, "Uid") == "1000\t1000\t1000\t1000");
    CHECK(field(r.out, "Gid") == "1001\t1001\t1001\t1001");
    CHECK(field(r.out, "Groups").starts_with("10 20"));
    CHECK(field(r.out, "CapBnd") == "0000000000000421");
    CHECK(field(r.out, "CapInh") == "0000000000000400");
    CHECK(field(r.out, "CapAmb") == "0000000000000400");
    // Past the exec of sh (no file capabilities) a non-root user keeps its ambient ones only.
    CHECK(field(r.out, "CapPrm") == "0000000000000400");
    CHECK(field(r.out, "CapEff") == "0000000000000400");
    CHECK(field(r.out, "NoNewPrivs") == "1");
    CHECK(r.out.find("100\n200\n0027\n/tmp/work\n") != std::string::npos);
}

TEST_CASE("oci setup: create_process: a failing step names its config field and leaves no process", "[oci][setup]") {
    test::require_root();
    Spec spec = basic_spec({"true"});
    spec.mounts.push_back(fs_mount("/nowhere", "nsfork-no-such-fs"));
    renumber(spec);
    const std::string mounts_before = read_file("/proc/self/mountinfo");
    Holder holder;
    ExecFifo fifo;
    auto c = try_create(spec, holder, fifo);
    REQUIRE(!c);
    CHECK(c.error().message == "mounts[7] (/nowhere): mount nsfork-no-such-fs: No such device");
    CHECK(holder.processes() == 1);
    CHECK(read_file("/proc/self/mountinfo") == mounts_before);

    spec = basic_spec({"no-such-command"});
    c = try_create(spec, holder, fifo);
    REQUIRE(!c);
    CHECK(c.error().message == "process.args[0]: exec: \"no-such-command\": executable file not found in $PATH");
    CHECK(holder.processes() == 1);

    spec = basic_spec({"/etc"});
    c = try_create(spec, holder, fifo);
    REQUIRE(!c);
    CHECK(c.error().message == "process.args[0]: exec: \"/etc\": permission denied");
    CHECK(holder.processes() == 1);
}

TEST_CASE("oci setup: create_process without an exec fifo (run's): the process waits for start_process, which returns once it exec'd, or with the exec's failure",
          "[oci][setup]") {
    test::require_root();
    const Spec spec = basic_spec({"sh", "-c", "echo started"});
    Holder holder;
    auto no_fifo = [](CreateRequest& r) { r.exec_fifo = -1; };
    ExecFifo unused;
    Created c = create(spec, holder, unused, no_fifo);
    REQUIRE(c.process.start);
    CHECK(c.process.exec_step == "process.args[0] (sh): exec");
    // Created: alive, waiting on its report socket, nothing written yet.
    CHECK(testing::alive(c.process.pid));
    pollfd p{c.output.get(), POLLIN, 0};
    CHECK(::poll(&p, 1, 100) == 0);
    CHECK(holder.processes() == 2);
    MUST(start_process(c.process));
    CHECK_FALSE(c.process.start);
    CHECK(test::read_all(c.output.get()) == "started\n");
    CHECK(MUST(reap(c.process.pidfd.get())) == ExitStatus{0, 0});

    // An exec that fails once started (an executable file the kernel cannot load: find_executable
    // passes it) is start_process's error, named as create names it.
    test::TempDir host;
    const std::string garbage = host.path() + "/garbage";
    std::ofstream(garbage) << "\x7f" "ELF not really\n";
    REQUIRE(::chmod(garbage.c_str(), 0755) == 0);
    Spec bad = basic_spec({"/garbage"});
    bad.mounts.push_back(bind_mount(garbage, "/garbage", MS_RDONLY));
    renumber(bad);
    Created b = create(bad, holder, unused, no_fifo);
    auto started = start_process(b.process);
    REQUIRE(!started);
    CHECK(started.error().message == "process.args[0] (/garbage): exec: Exec format error");
    CHECK(MUST(reap(b.process.pidfd.get())).code != 0);
    CHECK(holder.processes() == 1);

    // A process that died before its start: start_process says so.
    Created d = create(spec, holder, unused, no_fifo);
    REQUIRE(signal_pidfd(d.process.pidfd.get(), SIGKILL));
    (void)reap(d.process.pidfd.get());
    auto late = start_process(d.process);
    REQUIRE(!late);
    CHECK(late.error().message.find("ended before start") != std::string::npos);
}

TEST_CASE("oci setup: create_process: masked and read-only paths, hostname and domainname in a new UTS namespace, a sysctl",
          "[oci][setup]") {
    test::require_root();
    test::TempDir host;
    std::filesystem::create_directories(host.path() + "/secret");
    std::ofstream(host.path() + "/secret/file") << "hidden\n";
    std::ofstream(host.path() + "/key") << "hidden\n";
    Spec spec = basic_spec({"sh", "-c",
                            "hostname; cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_unprivileged_port_start; "
                            "ls /mnt/secret; cat /mnt/key; touch /mnt/secret/x || echo secret-readonly; "
                            "echo other > /proc/sys/kernel/hostname || echo sys-readonly; echo done"});
    spec.mounts.push_back(bind_mount(host.path(), "/mnt"));
    renumber(spec);
    spec.hostname = "box";
    spec.domainname = "example";
    spec.sysctl = {{"net.ipv4.ip_unprivileged_port_start", "80"}};
    spec.masked_paths = {"/mnt/secret", "/mnt/key", "/mnt/missing"};
    spec.readonly_paths = {"/proc/sys", "/proc/missing"};
    const Ran r = run(spec);
    INFO(r.out);
    CHECK(r.status == ExitStatus{0, 0});
    CHECK(r.out.starts_with("box\nexample\n80\n"));
    CHECK(r.out.find("hidden") == std::string::npos);
    CHECK(r.out.find("secret-readonly\n") != std::string::npos);
    CHECK(r.out.find("sys-readonly\n") != std::string::npos);
    CHECK(r.out.ends_with("done\n"));
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    CHECK(std::string(name) != "box");
    CHECK(read_file(host.path() + "/secret/file") == "hidden\n");
}

Seccomp deny_mkdir() {
    Seccomp s;
    s.default_action = "SCMP_ACT_ALLOW";
    SeccompRule rule;
    rule.names = {"mkdir", "mkdirat"};
    rule.action = "SCMP_ACT_ERRNO";
    rule.errno_ret = EOPNOTSUPP;
    s.syscalls = {rule};
    return s;
}

TEST_CASE("oci setup: create_process: seccomp is enforced, loaded before the user switch or last with no_new_privs", "[oci][setup]") {
    test::require_root();
    for (const bool no_new_privs : {false, true}) {
        Spec spec = basic_spec({"sh", "-c", "grep ^Seccomp: /proc/self/status; mkdir /tmp/x; echo done"});
        spec.seccomp = deny_mkdir();
        spec.process.no_new_privileges = no_new_privs;
        spec.process.user = User{.uid = 1000, .gid = 1000, .umask = {}, .additional_gids = {}};
        const Ran r = run(spec);
        INFO("no_new_privs " << no_new_privs << ": " << r.out);
        CHECK(r.status == ExitStatus{0, 0});
        CHECK(r.out.starts_with("Seccomp:\t2\n"));
        CHECK(r.out.find(std::strerror(EOPNOTSUPP)) != std::string::npos);
    }
}

TEST_CASE("oci setup: create_process: the createRuntime callback runs before pivot_root, and its failure fails the create", "[oci][setup]") {
    test::require_root();
    const Spec spec = basic_spec({"true"});
    Holder holder;
    ExecFifo fifo;
    pid_t seen = -1;
    std::string root_then;
    Created c = create(spec, holder, fifo, [&](CreateRequest& r) {
        r.create_runtime = [&](pid_t pid) -> Result<void> {
            seen = pid;
            // Not yet pivoted: its root is still the holder's (the host's) tree.
            root_then = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/root");
            return {};
        };
    });
    CHECK(seen == c.process.pid);
    CHECK(root_then == "/");
    CHECK(start_and_wait(c, fifo).status == ExitStatus{0, 0});

    auto failed = try_create(spec, holder, fifo, [](CreateRequest& r) {
        r.create_runtime = [](pid_t) -> Result<void> { return Error{Errc::launch_failed, "hooks.createRuntime[0]: exit 3"}; };
    });
    REQUIRE(!failed);
    CHECK(failed.error().message == "hooks.createRuntime[0]: exit 3");
    CHECK(holder.processes() == 1);
}

TEST_CASE("oci setup: exec_process runs another process in the container's namespaces and root", "[oci][setup]") {
    test::require_root();
    for (const bool no_pivot : {false, true}) {
        INFO("no_pivot " << no_pivot);
        Spec spec = basic_spec({"sh", "-c", "read line; echo $line"});
        spec.hostname = "box";
        Holder holder;
        ExecFifo fifo;
        test::Pipe in;
        Created c = create(spec, holder, fifo, [&](CreateRequest& r) {
            r.io.stdio[0] = in.read.get();
            r.no_pivot = no_pivot;
        });
        fifo.start();

        Process extra = spec.process;
        extra.args = {"sh", "-c", "echo pid=$$; hostname; test -e /usr/lib || echo rootfs; "
                                  "for n in mnt net ipc uts pid; do readlink /proc/self/ns/$n; done"};
        extra.user = User{.uid = 1000, .gid = 1000, .umask = {}, .additional_gids = {}};
        test::Pipe out;
        ExecRequest e;
        e.spec = &spec;
        e.process = &extra;
        e.target_pidfd = c.process.pidfd.get();
        e.io.stdio = {in.read.get(), out.write.get(), out.write.get()};
        ContainerProcess p = MUST(exec_process(e));
        out.write.reset();
        const std::string seen = test::read_all(out.read.get());
        CHECK(MUST(reap(p.pidfd.get())) == ExitStatus{0, 0});
        INFO(seen);
        std::string expected = "pid=3\nbox\nrootfs\n";
        for (const char* n : {"mnt", "net", "ipc", "uts", "pid"}) expected += namespace_of(c.process.pid, n) + "\n";
        CHECK(seen == expected);

        REQUIRE(::write(in.write.get(), "bye\n", 4) == 4);
        CHECK(test::read_all(c.output.get()) == "bye\n");
        CHECK(MUST(reap(c.process.pidfd.get())) == ExitStatus{0, 0});
    }
}

TEST_CASE("oci setup: create_process: a root filesystem mounted after the holder's namespace was made is carried into it", "[oci][setup]") {
    test::require_root();
    Holder holder; // made first, as a warm pool's entry is
    test::TempDir late;
    REQUIRE(::mount("tmpfs", late.path().c_str(), "tmpfs", 0, "mode=755") == 0);
    std::filesystem::create_directories(late.path() + "/bin");
    std::filesystem::copy_file("/bin/busybox", late.path() + "/bin/busybox");
    std::ofstream(late.path() + "/marker") << "late rootfs\n";
    // The holder's namespace has the directory, empty: the tmpfs came after it.
    CHECK(!std::filesystem::exists("/proc/" + std::to_string(holder.pid()) + "/root" + late.path() + "/marker"));
    Spec spec = basic_spec({"/bin/busybox", "cat", "/marker"});
    spec.root = late.path();
    spec.mounts = {fs_mount("/proc", "proc")};
    renumber(spec);
    ExecFifo fifo;
    Created c = create(spec, holder, fifo);
    const Ran r = start_and_wait(c, fifo);
    CHECK(::umount2(late.path().c_str(), MNT_DETACH) == 0);
    CHECK(r.status == ExitStatus{0, 0});
    CHECK(r.out == "late rootfs\n");
}

TEST_CASE("oci setup: create_process: namespaces joined by path, preserved fds, and a terminal from the container's devpts",
          "[oci][setup]") {
    test::require_root();
    Holder other(CloneFlags::new_network_namespace() | CloneFlags::new_ipc_namespace());
    Spec spec = basic_spec({"sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; echo preserved >&3; "
                                        "tty; stty size; ls /dev/console && echo console"});
    spec.namespaces = {{CLONE_NEWPID, ""},
                       {CLONE_NEWNET, "/proc/" + std::to_string(other.pid()) + "/ns/net"},
                       {CLONE_NEWIPC, "/proc/" + std::to_string(other.pid()) + "/ns/ipc"},
                       {CLONE_NEWNS, ""}};
    spec.process.terminal = true;
    spec.process.console_size = ConsoleSize{.height = 33, .width = 101};
    Holder holder;
    ExecFifo fifo;
    test::Pipe extra;
    int sockets[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) == 0);
    UniqueFd ours(sockets[0]), theirs(sockets[1]);
    Created c = create(spec, holder, fifo, [&](CreateRequest& r) {
        r.io.preserved = {extra.write.get()};
        r.io.console_socket = theirs.get();
    });
    char name[64];
    int master = -1;
    std::size_t count = 0;
    int flags = 0;
    REQUIRE(sys::recv_with_fds(ours.get(), name, sizeof name, &master, 1, &count, &flags) > 0);
    REQUIRE(count == 1);
    UniqueFd pty(master);
    extra.write.reset();
    fifo.start();
    std::string seen;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pty.get(), buf, sizeof buf)) > 0) seen.append(buf, static_cast<std::size_t>(n)); // EIO once it exits
    CHECK(MUST(reap(c.process.pidfd.get())) == ExitStatus{0, 0});
    INFO(seen);
    CHECK(seen == other.ns("net") + "\r\n" + other.ns("ipc") + "\r\n/dev/pts/0\r\n33 101\r\n/dev/console\r\nconsole\r\n");
    CHECK(test::read_all(extra.read.get()) == "preserved\n");
    CHECK(test::read_all(c.output.get()).empty()); // its stdio was the terminal
}

// A cgroup directory made for a test and removed after it (empty by then: its processes reaped).
class TestCgroup {
public:
    explicit TestCgroup(std::string path) : path_(std::move(path)) { REQUIRE(::mkdir(path_.c_str(), 0755) == 0); }
    ~TestCgroup() { ::rmdir(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

TEST_CASE("oci setup: create_process: born in the cgroup leaf, joins the cgroups it is given, and a cgroup mount shows them",
          "[oci][setup]") {
    test::require_root();
    const std::string unified = procfs::cgroup2_mount();
    INFO("this case needs cgroup2 and the v1 pids hierarchy (the hybrid hosts nsfork runs on)");
    REQUIRE((!unified.empty() && std::filesystem::exists("/sys/fs/cgroup/pids/cgroup.procs")));
    const std::string name = "nsfork-setup-" + std::to_string(::getpid());
    const std::string own = procfs::cgroup2_path();
    TestCgroup leaf(unified + (own == "/" ? "" : own) + "/" + name);
    TestCgroup pids("/sys/fs/cgroup/pids/" + name);
    UniqueFd leaf_fd(::open(leaf.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd pids_procs(::open((pids.path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    REQUIRE(leaf_fd);
    REQUIRE(pids_procs);
    for (const bool cgroupns : {false, true}) {
        INFO("cgroup namespace " << cgroupns);
        Spec spec = basic_spec({"sh", "-c", "cat /proc/self/cgroup; ls /sys/fs/cgroup; cat /sys/fs/cgroup/pids/cgroup.procs; "
                                            "mkdir /sys/fs/cgroup/pids/x 2>/dev/null || echo cgroups-readonly"});
        Mount cgroup = fs_mount("/sys/fs/cgroup", "cgroup", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY);
        spec.mounts.push_back(cgroup);
        renumber(spec);
        if (cgroupns) spec.namespaces.push_back({CLONE_NEWCGROUP, ""});
        Holder holder;
        ExecFifo fifo;
        Created c = create(spec, holder, fifo, [&](CreateRequest& r) {
            r.cgroup_leaf = leaf_fd.get();
            r.cgroup_procs = {pids_procs.get()};
        });
        CHECK(testing::cgroup_of(c.process.pid) == leaf.path());
        CHECK(read_file(pids.path() + "/cgroup.procs") == std::to_string(c.process.pid) + "\n");
        const pid_t host_pid = c.process.pid;
        REQUIRE(host_pid != 2);
        const Ran r = start_and_wait(c, fifo);
        INFO(r.out);
        CHECK(r.status == ExitStatus{0, 0});
        const std::string pids_line = cgroupns ? "pids:/\n" : "pids:/" + name + "\n";
        CHECK(r.out.find(pids_line) != std::string::npos);
        CHECK(r.out.find("memory\npids\n") != std::string::npos);
        // Its own pids cgroup in the mount: sh (pid 2) and the cat reading it.
        CHECK(r.out.find("\n2\n") != std::string::npos);
        CHECK(r.out.find(std::to_string(host_pid)) == std::string::npos);
        CHECK(r.out.ends_with("cgroups-readonly\n"));
    }
}

TEST_CASE("oci setup: create_process: oomScoreAdj, and a terminal without a console socket is refused", "[oci][setup]") {
    test::require_root();
    Spec spec = basic_spec({"cat", "/proc/self/oom_score_adj"});
    spec.process.oom_score_adj = 432;
    CHECK(run(spec).out == "432\n");
    spec.process.terminal = true;
    Holder holder;
    ExecFifo fifo;
    auto c = try_create(spec, holder, fifo);
    REQUIRE(!c);
    CHECK(c.error().message == "process.terminal: a terminal needs a console socket (--console-socket)");
}

// Runs `body` in a forked process, as a short-lived nsfork-oci would, and waits for it to exit.
template <class Body>
void in_runtime_that_exits(Body body) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(body() ? 0 : 1);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(status == 0);
}

TEST_CASE("oci setup: create_process and exec_process: the processes outlive the runtime that made them", "[oci][setup]") {
    test::require_root();
    Spec spec = basic_spec({"sh", "-c", "read line; echo created $line"});
    Holder holder;
    ExecFifo fifo;
    test::Pipe in, out;
    in_runtime_that_exits([&] {
        CreateRequest r;
        r.spec = &spec;
        r.holder_pidfd = holder.pidfd();
        r.exec_fifo = fifo.fd();
        r.io.stdio = {in.read.get(), out.write.get(), out.write.get()};
        return create_process(r).ok();
    });
    fifo.start();
    std::vector<pid_t> pids = testing::processes_in_pidns(procfs::pid_namespace_inode(holder.pid()));
    REQUIRE(pids.size() == 2);
    const pid_t created = pids[0] == holder.pid() ? pids[1] : pids[0];
    UniqueFd target(sys::pidfd_open(created, 0));
    REQUIRE(target);
    Process extra = spec.process;
    extra.args = {"sh", "-c", "read line; echo exec\\'d $line"};
    in_runtime_that_exits([&] {
        ExecRequest e;
        e.spec = &spec;
        e.process = &extra;
        e.target_pidfd = target.get();
        e.io.stdio = {in.read.get(), out.write.get(), out.write.get()};
        return exec_process(e).ok();
    });
    out.write.reset();
    // Each reads one of the lines, in whichever order they come to it: the second is written once
    // the first was answered (both in the pipe at once, the first shell's read may take both).
    REQUIRE(::write(in.write.get(), "one\n", 4) == 4);
    std::vector<std::string> seen = {test::read_line(out.read.get())};
    REQUIRE(::write(in.write.get(), "two\n", 4) == 4);
    for (const std::string& line : test::lines(test::read_all(out.read.get()))) seen.push_back(line);
    REQUIRE(seen.size() == 2);
    const bool created_first = seen[0].starts_with("created ");
    CHECK(seen[created_first ? 0 : 1].starts_with("created "));
    CHECK(seen[created_first ? 1 : 0].starts_with("exec'd "));
}

TEST_CASE("oci setup: create_process on the config runc spec writes, parsed by spec.cpp, shows the process what runc shows it",
          "[oci][setup]") {
    test::require_root();
    const std::string script =
        "cut -d' ' -f5,6 /proc/self/mountinfo; for f in /dev/* /dev/pts/* /dev/shm /dev/mqueue /tmp; do stat -c '%n %A %u %g %t %T' $f; done; "
        "grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs|Seccomp):' /proc/self/status; hostname; umask; pwd; ulimit -n; env; "
        "ls /proc/kcore /proc/acpi 2>&1; cat /proc/kcore 2>&1; echo 1 2>/dev/null > /proc/sys/vm/overcommit_memory || echo sys-readonly";
    test::oci::Bundle bundle({"sh", "-c", script});
    bundle.config["mounts"] = test::oci::runc_spec()["mounts"]; // cgroup mount included
    // A tmpfs over a directory of the rootfs takes that directory's mode.
    bundle.config["mounts"].push_back({{"destination", "/tmp"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"mode=1777"}}});
    bundle.config["root"]["readonly"] = true;
    bundle.write();
    // runc, as the reference.
    test::oci::Runtime runc("runc", {"/usr/sbin/runc"});
    const test::oci::Outcome theirs = runc.run(bundle);
    REQUIRE(theirs.code == 0);
    // Ours, on the same config.
    Spec spec = MUST(parse_config(read_file(bundle.path() + "/config.json"), bundle.path()));
    const Ran ours = run(spec);
    CHECK(ours.status == ExitStatus{0, 0});
    // Mount ids and the order of a directory listing aside: lines compared as sorted lists.
    CHECK(test::oci::sorted_lines(ours.out) == test::oci::sorted_lines(theirs.out));
}

} // namespace
} // namespace nsfork::oci
