// The server's own time per launch, for nsfork-bench ("server time per launch excluding clone
// and exec"): the time its handlers spend on Launch requests and on their exec reports, less the
// time inside clone3 (whose cost, and the child's exec, belong to the kernel), by phase.
// Statistics only: nothing the server does depends on them; clients read them in HelloReply.
#pragma once

#include "nsfork/types.hpp"

#include <time.h>

#include <cstdint>

namespace nsfork {

class LaunchStatistics {
public:
    // steady_clock's source, read through the vDSO: no syscall on the launch path.
    static std::uint64_t now_ns() {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
    }

    // Times one handler's work on a launch (its request, or its exec report) while it lives,
    // phase by phase: lap(p) charges the time since the previous lap to `p`; what is left when
    // the handler ends is charged to `tail`.
    class Handler {
    public:
        Handler(LaunchStatistics& s, LaunchPhase tail, std::uint64_t start = now_ns())
            : s_(s), tail_(tail), last_(start), clone_before_(s.clone_ns_) {}
        ~Handler() { lap(tail_); }
        Handler(const Handler&) = delete;
        Handler& operator=(const Handler&) = delete;

        void lap(LaunchPhase p) {
            const std::uint64_t now = now_ns();
            const std::uint64_t spent = now - last_ - (s_.clone_ns_ - clone_before_);
            s_.phases_.ns[static_cast<std::size_t>(p)] += spent;
            s_.work_ns_ += spent;
            last_ = now;
            clone_before_ = s_.clone_ns_;
        }
        LaunchStatistics& statistics() { return s_; }

    private:
        LaunchStatistics& s_;
        const LaunchPhase tail_;
        std::uint64_t last_, clone_before_;
    };

    // Times a clone3, to be left out of the handler around it.
    class Clone {
    public:
        explicit Clone(LaunchStatistics& s) : s_(s), start_(now_ns()) {}
        ~Clone() { s_.clone_ns_ += now_ns() - start_; }
        Clone(const Clone&) = delete;
        Clone& operator=(const Clone&) = delete;

    private:
        LaunchStatistics& s_;
        std::uint64_t start_;
    };

    // A Launch was answered (exec'd or failed).
    void answered() { ++answered_; }

    std::uint64_t work_ns() const { return work_ns_; }
    std::uint64_t launches() const { return answered_; }
    const LaunchPhases& phases() const { return phases_; }

private:
    std::uint64_t work_ns_ = 0, answered_ = 0, clone_ns_ = 0;
    LaunchPhases phases_;
};

} // namespace nsfork
