#include "raw_floor.hpp"

#include "clock.hpp"
#include "base/pidfd.hpp"
#include "base/syscalls.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <ctime>
#include <string>
#include <vector>

namespace nsfork::bench {

namespace {

constexpr CloneExecOptions kRawNamespaces{
    .namespaces = sys::kCloneNewPid | sys::kCloneNewNs,
    .mount_proc = true,
};

// Reaps a raw child and checks it ended well.
Result<void> reap_ok(Child& c, const Command& cmd) {
    auto status = reap(c.pidfd.get());
    if (!status) return std::move(status).error();
    return expect_success(*status, cmd.text());
}

} // namespace

Result<std::int64_t> raw_launch(const Command& cmd) {
    const std::int64_t t0 = now_ns();
    auto child = clone_exec(cmd, kRawNamespaces);
    if (!child) return std::move(child).error();
    auto exec = await_exec(*child, cmd);
    const std::int64_t t1 = now_ns();
    auto done = reap_ok(*child, cmd);
    if (!exec) return std::move(exec).error();
    if (!done) return std::move(done).error();
    return t1 - t0;
}

Result<std::int64_t> raw_launch_wait(const Command& cmd) {
    const std::int64_t t0 = now_ns();
    auto child = clone_exec(cmd, kRawNamespaces);
    if (!child) return std::move(child).error();
    auto exec = await_exec(*child, cmd);
    auto done = reap_ok(*child, cmd);
    const std::int64_t t1 = now_ns();
    if (!exec) return std::move(exec).error();
    if (!done) return std::move(done).error();
    return t1 - t0;
}

Result<std::int64_t> raw_churn(const Command& cmd, int count, int parallel) {
    std::vector<Child> slots;
    std::vector<pollfd> fds;
    slots.reserve(static_cast<std::size_t>(parallel));
    int started = 0, finished = 0;
    Result<void> outcome; // the first error, if any
    const std::int64_t t0 = now_ns();
    while (finished < count) {
        while (outcome && started < count && static_cast<int>(slots.size()) < parallel) {
            auto child = clone_exec(cmd, kRawNamespaces);
            if (!child) {
                outcome = std::move(child).error();
                break;
            }
            slots.push_back(std::move(*child));
            ++started;
        }
        if (slots.empty()) break; // a clone failed with nothing left in flight
        fds.clear();
        for (const Child& c : slots) fds.push_back({c.pidfd.get(), POLLIN, 0});
        if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR)
            return sys_error(Errc::internal, "poll failed", errno);
        // Back to front so that erasing keeps the remaining indexes valid.
        for (std::size_t i = fds.size(); i-- > 0;) {
            if (!fds[i].revents) continue;
            // It exited, so the pipe holds its whole story: EOF (exec'd) or an errno.
            auto exec = await_exec(slots[i], cmd);
            auto done = reap_ok(slots[i], cmd);
            if (outcome && !exec) outcome = std::move(exec).error();
            if (outcome && !done) outcome = std::move(done).error();
            slots.erase(slots.begin() + static_cast<std::ptrdiff_t>(i));
            ++finished;
        }
    }
    const std::int64_t t1 = now_ns();
    if (!outcome) return std::move(outcome).error();
    return t1 - t0;
}

Result<void> await_ready(int fd, const std::string& what) {
    std::string line;
    char c;
    ssize_t n;
    while ((n = ::read(fd, &c, 1)) == 1 && c != '\n') line += c;
    if (n < 0) return sys_error(Errc::internal, "reading the readiness of " + what, errno);
    if (line != "ready") return Error{Errc::launch_failed, what + " did not say ready (said '" + line + "')"};
    return {};
}

void settle_before_destroy() {
    const timespec ts{0, 20'000'000};
    ::nanosleep(&ts, nullptr);
}

Result<std::int64_t> raw_namespace_kill(const Command& forker) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return sys_error(Errc::internal, "pipe2 failed", errno);
    UniqueFd ready_read(p[0]), ready_write(p[1]);
    CloneExecOptions o = kRawNamespaces;
    o.stdout_fd = ready_write.get();
    auto child = clone_exec(forker, o);
    ready_write.reset();
    if (!child) return std::move(child).error();
    Result<void> ready = await_exec(*child, forker);
    if (ready) ready = await_ready(ready_read.get(), forker.text());
    if (ready) settle_before_destroy();

    const std::int64_t t0 = now_ns();
    auto killed = signal_pidfd(child->pidfd.get(), SIGKILL);
    auto status = reap(child->pidfd.get());
    const std::int64_t t1 = now_ns();
    if (!ready) return std::move(ready).error();
    if (!killed) return std::move(killed).error();
    if (!status) return std::move(status).error();
    return t1 - t0;
}

} // namespace nsfork::bench
