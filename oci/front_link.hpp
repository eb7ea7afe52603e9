// A warm runtime's side of the front it serves (front_wire.hpp): the container's process is the
// front's child, so its clone, its reaping and the forwarding of signals to it during `run` are
// asked of the front. setup.cpp and lifecycle.cpp go through here when link() is set, and make
// and reap the process themselves otherwise.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/fd.hpp"
#include "oci/child.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace nsfork::oci::front {

class Link {
public:
    Link(UniqueFd connection, pid_t front) : conn_(std::move(connection)), front_(front) {}

    // Clones the child that follows `plan` in the front, born into the pid namespace of
    // `pidns_pidfd`'s process and into `cgroup_leaf` (-1: the front's cgroup); its pidfd and pid.
    // `foreground`: the front blocks the signals it forwards from then on (setup.hpp).
    Result<std::pair<UniqueFd, pid_t>> clone(const child::Plan& plan, int pidns_pidfd, int cgroup_leaf, bool foreground);
    // Waits for the child's end and has it reaped, killed first when `kill`.
    Result<ExitStatus> reap(bool kill);
    // run: the front forwards its signals to the child from now until it ends, and reaps it;
    // ended() is its end (reap(true) meanwhile kills it).
    Result<void> forward();
    Result<ExitStatus> ended();
    // The front exits with `code`.
    void exit(int code);
    // Asks the front to run the full program instead, which does everything itself: a verb
    // finding, before it did anything, something a warm runtime must not do for its caller
    // returns this error, and main() sends fallback instead of logging it.
    Error fall_back() {
        fallback_wanted_ = true;
        return Error{Errc::internal, "handed to the full program"};
    }
    bool fallback_wanted() const { return fallback_wanted_; }
    void fallback();

    pid_t front_pid() const { return front_; }

private:
    UniqueFd conn_;
    pid_t front_;
    bool fallback_wanted_ = false;
};

// The front this runtime serves; nullptr when it was started as itself.
Link* link();
void set_link(Link* link);

// The plan as front_wire.hpp's decode_plan reads it, and the descriptors it refers to by index.
struct EncodedPlan {
    std::string bytes;
    std::vector<int> fds;
};
EncodedPlan encode_plan(const child::Plan& plan);

} // namespace nsfork::oci::front
