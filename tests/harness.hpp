// What the integration tests share: root checks, a real server process, running commands.
#pragma once

#include "base/exit_status.hpp"
#include "base/fd.hpp"
#include "protocol/client.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace nsfork::test {

// Paths of the built binaries (NSFORK_BIN_DIR is set by the build).
std::string bin(const std::string& name);
inline std::string probe() { return bin("nsfork-probe"); }

// Skips the test (exit code 77, which ctest reports as skipped) with `why` when not root;
// under CI=true a missing root fails the test instead.
void require_root();

// A fresh temporary directory, removed (recursively) on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// A real `nsfork serve` process on a socket in a temporary directory; SIGTERM and reaped on
// destruction.
class ServerProcess {
public:
    // `wrapper` runs before nsfork and must exec it in place (e.g. prlimit, to set limits the
    // test process itself could not restore).
    explicit ServerProcess(std::vector<std::string> extra_args = {}, std::vector<std::string> wrapper = {});
    ~ServerProcess();
    const std::string& socket() const { return socket_; }
    pid_t pid() const { return pid_; }
    Client connect() const;
    // Stops it now (SIGTERM), returns its exit status.
    ExitStatus stop();

private:
    TempDir dir_;
    std::string socket_;
    pid_t pid_ = -1;
};

// A pipe, both ends close-on-exec.
struct Pipe {
    UniqueFd read, write;
    Pipe();
};

// Reads `fd` to EOF.
std::string read_all(int fd);
// Reads one line (without '\n') from `fd`, byte by byte so nothing past it is consumed.
std::string read_line(int fd);
// Splits on '\n', dropping empty lines.
std::vector<std::string> lines(const std::string& text);

// Launches `argv` on `client` with stdout (and stderr) captured, waits, and destroys it.
struct RunResult {
    ExitStatus status;
    std::string out;
    ContainerInfo info;
};
RunResult run(Client& client, std::vector<std::string> argv, std::vector<std::string> env = {});

// Runs a program (not in a container) with stdout and stderr captured.
struct ProcessResult {
    int exit_code = -1; // shell convention: 128+N when killed by signal N
    std::string out, err;
};
ProcessResult run_process(const std::vector<std::string>& argv);

// Whether `pid` is a live process (a zombie is not: it is dead, waiting for its reaper).
bool alive(pid_t pid);

// Pids (host view) of the live processes whose pid namespace has inode `pidns` (zombies are
// dead: here they can outlive the test, as this machine's pid 1 does not reap orphans).
std::vector<pid_t> processes_in_pidns(std::uint64_t pidns);

// The cgroup v2 directory of a live process (from /proc/PID/cgroup and the cgroup2 mount).
std::string cgroup_of(pid_t pid);
// The pids listed in a cgroup directory's cgroup.procs.
std::vector<pid_t> cgroup_procs(const std::string& dir);

// The PATH a container gets in the tests.
inline const char* kPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

} // namespace nsfork::test
