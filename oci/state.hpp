// A container's state between nsfork-oci calls: ROOT/ID/state.json, written atomically (a
// temporary file renamed over it), so an engine's next call finds it whatever happened to the
// call that wrote it. Beside it: exec.fifo (between create and start; a run, which starts its
// process itself, makes none) and config.json (the bundle's, as created: exec applies its
// settings).
//
// The status is never stored: it is read from the kernel each time — the process (host pid +
// start time, so a recycled pid is not mistaken for it), the fifo, the cgroup's freeze.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "oci/spec.hpp"

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nsfork::oci {

struct ContainerState {
    std::string id, bundle, rootfs;
    pid_t pid = -1;                      // the container's process, host pid
    std::uint64_t start_time = 0;        // its start time (/proc/PID/stat, clock ticks since boot)
    pid_t holder_pid = -1;               // the server's holding pid 1 of its namespaces
    std::uint64_t holder_start_time = 0;
    std::string server_socket, server_id; // the server that holds it and its id there
    std::string cgroups_path;            // what ControllerCgroups::create got
    // The v1 cgroups it made (its paths()); absent from a state that did not keep them: find()
    // them by cgroups_path, which parses the mount table once per controller.
    std::optional<std::vector<std::string>> controllers;
    std::string cgroup_leaf;             // the v2 leaf's absolute path, "" without one
    std::map<std::string, std::string> annotations;
    std::string created;                 // RFC 3339, nanoseconds, UTC
    std::vector<Hook> poststart, poststop;
};

std::string encode_state(const ContainerState& state);
Result<ContainerState> decode_state(std::string_view json);

enum class Status { creating, created, running, paused, stopped };
std::string_view to_string(Status status);

// `state ID`'s output, runc's: ociVersion, id, pid (0 when stopped), status, bundle, rootfs,
// created, owner, annotations (when there are some); two-space indented.
std::string state_json(const ContainerState& state, Status status);
// runtime-spec's state as hooks read it on their stdin: ociVersion, id, status, pid, bundle,
// annotations; one line.
std::string hook_state_json(const ContainerState& state, Status status);

// A container id as runc accepts it: letters, digits, '_', '+', '-', '.'; not "." or "..".
Result<void> validate_container_id(std::string_view id);

// The current time as `created` holds it.
std::string rfc3339_now();

// ROOT/ID: the container's state directory.
class StateDir {
public:
    // Makes it (and ROOT, 0700); fails if a container of that id exists.
    static Result<StateDir> make(const std::string& root, const std::string& id);
    // The existing one; "container ID does not exist" otherwise.
    static Result<StateDir> open(const std::string& root, const std::string& id);

    const std::string& path() const { return path_; }
    std::string fifo() const { return path_ + "/exec.fifo"; }
    std::string config() const { return path_ + "/config.json"; }

    Result<void> write(const ContainerState& state) const;
    Result<ContainerState> read() const;
    // Removes it and everything in it; a directory already gone is fine.
    Result<void> remove() const;

private:
    StateDir(std::string path, std::string id) : path_(std::move(path)), id_(std::move(id)) {}
    std::string path_, id_;
};

// The whole of a (small) file: state, a saved config, an exec's process.json.
Result<std::string> read_text_file(const std::string& path);

// Writes `text` to `path` atomically: a temporary file beside it, renamed over it.
Result<void> write_file_atomically(const std::string& path, std::string_view text, mode_t mode = 0644);

// A process's start time from /proc/PID/stat (field 22), and whether it still runs (a zombie
// does not); nullopt when there is no such process.
struct ProcessStat {
    char state = '?';
    std::uint64_t start_time = 0;
    bool running() const { return state != 'Z' && state != 'X'; }
};
std::optional<ProcessStat> process_stat(pid_t pid);
// The text of /proc/PID/stat's fields after the command (which may hold spaces and parentheses).
std::optional<ProcessStat> parse_process_stat(std::string_view stat);

// Whether `pid` is still the live process that started at `start_time`.
bool same_process_running(pid_t pid, std::uint64_t start_time);
// A pidfd of that process, checked to be it after opening (the pidfd then pins it); an error
// when it is gone or a zombie.
Result<UniqueFd> open_process(pid_t pid, std::uint64_t start_time);

// The container's status now: stopped when its process is gone (exited, a zombie, its pid
// reused); created while the exec fifo exists (a run's process, which no other call can start,
// is running from its create on); paused while its cgroup is frozen; running.
Status status_of(const StateDir& dir, const ContainerState& state);

} // namespace nsfork::oci
