// The server's record of one container, its phase and the transitions between them, and the
// Registry that holds every record and tears down trees of nested containers. Included by the
// server's own files only (it pulls in Asio).
#pragma once

#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "nsfork/fd.hpp"
#include "launcher/cgroup.hpp"
#include "nsfork/types.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nsfork {

// Who is waiting for an answer: a connection and the request's sequence number.
struct Waiter {
    std::uint64_t conn;
    std::uint32_t seq;
};

// Where a container's first process is in its life. Only forward, one step at a time:
// starting → running → exited → drained → gone, or starting → exited (it ended before its
// exec report was read).
enum class Phase : std::uint8_t {
    starting, // cloned (or a warm entry took its plan); exec not yet reported
    running,  // exec'd
    exited,   // reaped, its status kept; its cgroup may still hold processes
    drained,  // exited, and its cgroup (if any) has no process left
    gone,     // forgotten: removed from the registry
};

// How far the server went in ending it, independent of the phase; only ever escalates.
enum class Teardown : std::uint8_t {
    none,
    killed,     // a SIGKILL (or cgroup.kill) was sent, or nothing was left to kill
    destroying, // a Destroy (or a failed launch) asked for it: forgotten once it and its nest settled
    discarded,  // its launch failed: invisible to requests, forgotten once settled
};

std::string_view to_string(Phase p);

class ContainerRecord {
public:
    using Descriptor = boost::asio::posix::stream_descriptor;
    ContainerRecord(Descriptor&& first, Descriptor&& exec_report)
        : pidfd(std::move(first)), report(std::move(exec_report)) {}

    // ---- transitions: each returns false, changing nothing, when it is not legal now ----
    // starting → running: its exec was reported.
    [[nodiscard]] bool exec_reported();
    // starting|running → exited: its first process was reaped.
    [[nodiscard]] bool reaped();
    // exited → drained: its cgroup has no process left.
    [[nodiscard]] bool drained();
    // drained → gone.
    [[nodiscard]] bool forgotten();
    // Whether a kill must be sent now (then marked sent): not once killed, nor once reaped.
    [[nodiscard]] bool take_kill();
    // Asks for its destruction (at least Teardown::destroying). After take_kill(), or a kill
    // that is not needed would be taken for sent (Registry::request_destroy keeps that order).
    void destroy_requested();
    // Its launch failed (exec report or a destroy while starting): discarded. Only before
    // running; after it was destroyed (killed), for the same reason as above.
    [[nodiscard]] bool launch_failed();

    // ---- queries ----
    Phase phase() const { return phase_; }
    Teardown teardown() const { return teardown_; }
    bool visible() const { return teardown_ != Teardown::discarded; }
    bool has_ended() const { return phase_ >= Phase::exited; }
    bool is_drained() const { return phase_ >= Phase::drained; }
    bool kill_sent() const { return teardown_ >= Teardown::killed; }
    bool destroying() const { return teardown_ >= Teardown::destroying; }
    // The state clients see: a container that ended after a Destroy is reported destroyed.
    State wire_state() const;

    ContainerInfo info;
    std::string command;              // argv[0], for messages
    std::string cwd;                  // for messages
    Descriptor pidfd;                 // the first process's pidfd, watched for exit
    std::optional<Descriptor> report; // until the exec report was read (pipe or plan socket)
    UniqueFd setup_report;            // with a plan socket: the pipe for failures before the shim
    bool tty = false;                 // it has a pseudo-terminal of its own ...
    UniqueFd terminal;                // ... whose master came with the exec report, until the
                                      // Launch reply hands it to the client (the server keeps none)
    bool own_pidns = false;           // pid 1 of its own namespace: killing it kills them all
    std::optional<Cgroup> cgroup;     // its cgroup v2 leaf, if cgroups are available
    std::optional<Cgroup> holder_cgroup; // a warm hold container's with a cgroup_name: the pool
                                      // entry's leaf, where its holder stays (cgroup v2 cannot
                                      // rename, and a move costs milliseconds)
    std::optional<Descriptor> events; // cgroup.events, while waiting for the leaf to empty
    std::vector<std::string> children; // ids of the containers nested in this one
    std::optional<Waiter> launcher;   // who waits for the Launch reply
    std::vector<Waiter> waiters;      // Wait requests
    std::vector<Waiter> destroyers;   // Destroy requests
    std::uint64_t tied_to = 0;        // the connection whose end destroys it (0: none)
    bool destroy_on_exit = false;     // destroyed when its init ends; the Launch's waiter, once
                                      // answered, is among the destroyers
    // A hold container (info.held): its main process once adopted (Adopt), watched for exit,
    // which ends the container; signals for the container go to it. Not our child: the client's.
    std::optional<Descriptor> main;
    std::string named_cgroup_under;   // with a cgroup_name: the directory it is relative to (the
                                      // parents between, made for it, go once empty)
    bool setting_up = false;          // a hold container launched, its main process not yet
                                      // adopted: its runtime is setting that process up
    UniqueFd device_program;          // a hold launch's, loaded, for its reply ...
    std::vector<UniqueFd> namespaces; // ... and the namespaces made ahead for it (net, ipc, uts)

private:
    Phase phase_ = Phase::starting;
    Teardown teardown_ = Teardown::none;
};

// Every container of the server by id, and the destroy tree: destroying a container destroys
// what is nested in it, and it is forgotten (innermost first) once all of them settled. The
// kernel side is the caller's: `kill` sends the signal, `forget` hooks release what a record holds.
class Registry {
public:
    using Record = std::shared_ptr<ContainerRecord>;
    using Kill = std::function<void(ContainerRecord&)>;
    using OnForget = std::function<void(ContainerRecord&)>;

    // A visible container (not one whose launch failed), or nullptr.
    Record find(std::string_view id) const;
    bool contains(std::string_view id) const { return records_.find(id) != records_.end(); }
    void add(Record r);
    const std::map<std::string, Record, std::less<>>& all() const { return records_; }
    bool empty() const { return records_.empty(); }
    std::size_t size() const { return records_.size(); }

    // Kills `c` and what is nested in it, unless it was killed already or ended.
    void kill(ContainerRecord& c, const Kill& kill);
    // Marks `c` and what is nested in it for destruction and kills them.
    void request_destroy(ContainerRecord& c, const Kill& kill);
    // Whether `c` and everything nested in it drained.
    bool settled(const ContainerRecord& c) const;
    // After `id` changed: the outermost ancestor being destroyed that is now settled is
    // forgotten, with everything in it, innermost first (`on_forget` on each, then erased).
    // Returns whether anything was forgotten.
    bool settle_up(const std::string& id, const OnForget& on_forget);

private:
    void forget(const std::string& id, const OnForget& on_forget);
    std::map<std::string, Record, std::less<>> records_;
};

} // namespace nsfork
