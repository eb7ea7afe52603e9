// What the integration tests share: root checks, a real server process, running commands. The
// mechanisms live in the test-support library (testing/, shared with bench/); this layer turns
// their errors into Catch2 failures.
#pragma once

#include "nsfork/exit_status.hpp"
#include "nsfork/fd.hpp"
#include "nsfork/client.hpp"
#include "testing/poll.hpp"
#include "testing/process.hpp"
#include "testing/server_process.hpp"
#include "testing/temp_dir.hpp"
#include "testing/wire.hpp"

#include <catch2/catch.hpp>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace nsfork::test {

// Paths of the built binaries (NSFORK_BIN_DIR is set by the build).
std::string bin(const std::string& name);
inline std::string probe() { return bin("nsfork-probe"); }
// The full nsfork program, which bin/nsfork (the front, cli/front.cpp) execs for all but its
// fast path: in libexec/nsfork, as in an installed prefix.
inline std::string full_nsfork() { return bin("../libexec/nsfork/nsfork"); }

// Skips the test (exit code 77, which ctest reports as skipped) with `why` when not root;
// under CI=true a missing root fails the test instead.
void require_root();

// A fresh temporary directory, removed (recursively) on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return dir_.path(); }

private:
    testing::TempDir dir_;
};

// A real `nsfork serve` process on a socket in a temporary directory; SIGTERM and reaped on
// destruction.
class ServerProcess {
public:
    // `wrapper` runs before nsfork and must exec it in place (e.g. prlimit, to set limits the
    // test process itself could not restore).
    explicit ServerProcess(std::vector<std::string> extra_args = {}, std::vector<std::string> wrapper = {});
    ~ServerProcess();
    const std::string& socket() const { return serve_->socket(); }
    pid_t pid() const { return serve_->pid(); }
    Client connect() const;
    // Stops it now (SIGTERM), returns its exit status.
    ExitStatus stop() { return serve_->stop(); }

private:
    std::optional<testing::ServeProcess> serve_;
};

// A pipe, both ends close-on-exec.
struct Pipe {
    UniqueFd read, write;
    Pipe();
};

using testing::lines;
using testing::read_all;
using testing::read_line;

// Launches `argv` on `client` with stdout (and stderr) captured, waits, and destroys it.
struct RunResult {
    ExitStatus status;
    std::string out;
    ContainerInfo info;
};
RunResult run(Client& client, std::vector<std::string> argv, std::vector<std::string> env = {});

// Runs a program (not in a container) with stdout and stderr captured.
using testing::ProcessResult;
ProcessResult run_process(const std::vector<std::string>& argv);

// /proc seen from outside (testing/process.hpp). Zombies are not alive: here they can outlive
// the test, as this machine's pid 1 does not reap orphans. More there, called by their
// nsfork::testing names: fd_count, children_of, default_cgroup_root, eventually() and settled()
// (testing/poll.hpp), and raw requests (testing/wire.hpp).
using testing::alive;
using testing::cgroup_of;
using testing::cgroup_procs;
using testing::processes_in_pidns;

// A raw connection to the server at `socket` (testing/wire.hpp).
testing::RawConnection raw_connection(const std::string& socket);

// The options of a Launch of `argv` with `id` ("": the server names it) and kPath.
LaunchOptions command(std::string id, std::vector<std::string> argv);

// A Launch through the client library of `argv` with `id` and kPath; the caller destroys it.
Container launch_with(Client& client, const std::string& id, std::vector<std::string> argv);

// The PATH a container gets in the tests.
inline const char* kPath = testing::kTestPath;

// The value of `r`, or the test fails there with its error (MUST names the caller's line).
template <class T>
T must_at(Result<T> r, int line) {
    if (!r) FAIL("line " << line << ": " << r.error().message);
    return std::move(*r);
}
inline void must_at(Result<void> r, int line) {
    if (!r) FAIL("line " << line << ": " << r.error().message);
}
#define MUST(r) ::nsfork::test::must_at(r, __LINE__)

} // namespace nsfork::test
