// Network, IPC and UTS namespaces made ahead for hold launches (Launch.new_namespaces): making a
// network namespace takes 400-600 us of the kernel's time here (every per-namespace subsystem
// initialised, loopback registered), an IPC one ~40 us. The runtime's child joins one of ours
// instead of unsharing, and the server makes the next one once it is quiet.
//
// The server makes each in itself: unshare(type), open /proc/thread-self/ns/<type>, setns back
// to its own. It is single-threaded, nothing runs in between, and it creates no socket there;
// so its own namespaces never change for anyone else. It does so only where setns back is
// permitted (probed at the first demand by joining the namespace it is in: a server in a user
// namespace may make namespaces it could not leave). A made namespace is owned by the server's
// user namespace, as the runtime's own unshare would make it (nsfork-oci refuses user namespaces).
#pragma once

#include "nsfork/fd.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace nsfork {

class SpareNamespaces {
public:
    // Of each type asked for at least once, how many are kept.
    static constexpr std::size_t kKept = 2;

    // One fresh namespace of each type in `types` (within kSpareNamespaceTypes) that is ready, in
    // the order net, ipc, uts; the caller owns them. Types asked for are made from now on.
    std::vector<UniqueFd> take(std::uint32_t types);
    // Whether make_one() has something to make.
    bool wanted() const;
    // Makes one namespace of a type asked for and short of kKept. False (and stops making them)
    // where the server cannot; aborts the server should it fail to return to its own namespace.
    bool make_one();
    std::size_t ready(int type) const;
    // How many namespaces make_one() is short of (0 where it cannot make them).
    std::size_t pending() const;
    void stop();

private:
    bool probe();

    std::array<std::vector<UniqueFd>, 3> spare_; // net, ipc, uts
    std::array<UniqueFd, 3> own_;
    std::uint32_t asked_ = 0;
    bool probed_ = false, usable_ = false;
};

} // namespace nsfork
