// What the OCI suite shares: a busybox root filesystem, bundles whose config.json starts from
// `runc spec`'s, the two runtimes (nsfork-oci over a real `nsfork serve`, and runc) run as an
// engine runs them — subprocesses with their output captured, the container's process reaped
// by this process as a child subreaper, the way conmon and containerd's shim do (ENGINES.md).
// Everything is removed when its owner goes: bundles, state directories, containers left behind.
#pragma once

#include "tests/harness.hpp"

#include <nlohmann/json.hpp>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace nsfork::test::oci {

using Json = nlohmann::json;

// A root filesystem of busybox-static (/bin/busybox and its applets as symlinks), built on first
// use in a temporary directory and shared by every bundle of this process. Bundles keep
// root.readonly, so no container writes to it.
const std::string& busybox_rootfs();

// The config.json `runc spec` writes, generated once per process.
const Json& runc_spec();

// A bundle directory. Its config starts as runc spec's with the shared busybox root filesystem,
// no terminal, and `args` as the process; the test edits `config` (nlohmann::json) as it likes
// before handing the bundle to a runtime, which writes it out.
class Bundle {
public:
    explicit Bundle(std::vector<std::string> args);
    const std::string& path() const { return dir_.path(); }
    // Writes config.json (the runtimes call it before create and run).
    void write() const;
    // `args` as the process's: `sh -c SCRIPT`, the most common edit.
    void shell(const std::string& script);

    Json config;
    std::string raw_config; // when not empty, written instead of `config` (a malformed config.json)

private:
    TempDir dir_;
};

// What a runtime's command ended with: its exit code (the shell convention: 128+N when killed
// by signal N) and what it wrote.
struct Outcome {
    int code = -1;
    std::string out, err;
};

// Where a runtime's stdout and stderr go: two memfds, read at any time. A container made by
// `create` keeps the runtime's stdio (engines pass pipes), so what it writes after `start` lands
// here too.
class Capture {
public:
    Capture();
    std::string out() const;
    std::string err() const;
    int out_fd() const { return out_.get(); }
    int err_fd() const { return err_.get(); }

private:
    UniqueFd out_, err_;
};

// A created container: its id, and the pid its runtime wrote to --pid-file.
struct Created {
    std::string id;
    pid_t pid = -1;
    Outcome outcome; // of the create command
};

// One OCI runtime binary with its global flags, state in a private --root. Every container it
// was asked about is `delete --force`d when it goes. While a command runs, the processes left to
// this one (the subreaper) are reaped as they exit (wait_exit tells how they ended):
// nsfork-oci's delete returns only once the container's pid namespace is gone, which needs them
// reaped.
class Runtime {
public:
    // `command`: the binary and the global flags that come before --root.
    Runtime(std::string name, std::vector<std::string> command);
    ~Runtime();
    const std::string& name() const { return name_; }
    // The --root directory (state).
    std::string root() const { return dir_.path() + "/state"; }

    // `<runtime> <flags> --root R args...`, run to its end (at most 60 s, then SIGKILLed and the
    // test failed), stdin /dev/null, output captured.
    Outcome operator()(const std::vector<std::string>& args);
    Outcome operator()(const std::vector<std::string>& args, const Capture& capture);
    // The same command started, not waited for: its pid (our child, the test's to reap).
    pid_t spawn(const std::vector<std::string>& args, const Capture& capture);

    // A container id not used before in this process.
    std::string new_id();
    // `run --bundle B ID` in the foreground: the container's output is the outcome's.
    Outcome run(const Bundle& bundle);
    // `create --bundle B --pid-file P ID`; the container's output goes to `output`. The test
    // fails if the create does.
    Created create(const Bundle& bundle, const Capture& output);
    // `create` that may fail: the outcome, and the id it was given.
    Created try_create(const Bundle& bundle, const Capture& output);
    // `start ID`; the test fails unless it succeeds.
    void start(const std::string& id);
    // create, then start: a running container.
    Created started(const Bundle& bundle, const Capture& output);
    // `state ID` parsed (the test fails unless it exits 0 with JSON).
    Json state(const std::string& id);
    // The container's status ("created", "running", "stopped", "paused").
    std::string status(const std::string& id) { return state(id).value("status", ""); }

private:
    // `<runtime> <flags> --root R args...`
    std::vector<std::string> argv_for(const std::vector<std::string>& args) const;

    std::string name_;
    std::vector<std::string> command_;
    TempDir dir_;
    std::vector<std::string> ids_;
};

// Waits (at most 10 s) until what the container wrote to `capture`'s stdout is `expected`; the
// test fails otherwise.
void wait_for_output(const Capture& capture, const std::string& expected);

// How a container's process ended, in the shell convention (this process is its subreaper,
// and reaps such processes while it waits for any runtime command, as an engine's shim does);
// fails the test after 30 s.
int wait_exit(pid_t pid);

// The suite's per-test set-up: root required, this process a child subreaper (as an engine's
// shim), a real `nsfork serve`, and the two runtimes over it. Processes left to the subreaper
// are reaped at the end; any left unexplained fails the test.
class Suite {
public:
    Suite();
    ~Suite();
    ServerProcess& server() { return *server_; }
    Runtime& nsfork_oci() { return *nsfork_oci_; }
    Runtime& runc() { return *runc_; }
    // Both, nsfork-oci first: for side-by-side loops.
    std::vector<Runtime*> both() { return {&*nsfork_oci_, &*runc_}; }

private:
    std::optional<ServerProcess> server_;
    std::optional<Runtime> nsfork_oci_, runc_;
};

// The first of the usual directories holding an executable `name`, or "" (posix_spawn, which
// starts the runtimes, takes a path, not a name).
std::string find_program(const std::string& name);

// What the file at `path` holds ("" when it cannot be read).
std::string read_file(const std::string& path);

// The lines of `text`, sorted: for comparing what two runtimes list in an order of their own.
std::vector<std::string> sorted_lines(const std::string& text);

} // namespace nsfork::test::oci
