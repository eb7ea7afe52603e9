// The server's own time per launch, for nsfork-bench ("server time per launch excluding clone
// and exec"): the time its handlers spend on Launch requests and on their exec reports, less the
// time inside clone3 (whose cost, and the child's exec, belong to the kernel). Statistics only:
// nothing the server does depends on them; clients read them in HelloReply.
#pragma once

#include <chrono>
#include <cstdint>

namespace nsfork {

class LaunchStatistics {
public:
    // Times one handler's work on a launch (its request, or its exec report) while it lives.
    class Handler {
    public:
        explicit Handler(LaunchStatistics& s) : s_(s), start_(now_ns()), clone_before_(s.clone_ns_) {}
        ~Handler() { s_.work_ns_ += now_ns() - start_ - (s_.clone_ns_ - clone_before_); }
        Handler(const Handler&) = delete;
        Handler& operator=(const Handler&) = delete;

    private:
        LaunchStatistics& s_;
        std::uint64_t start_, clone_before_;
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

private:
    // steady_clock reads the vDSO: no syscall on the launch path.
    static std::uint64_t now_ns() {
        return static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
                .count());
    }
    std::uint64_t work_ns_ = 0, answered_ = 0, clone_ns_ = 0;
};

} // namespace nsfork
