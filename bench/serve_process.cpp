#include "serve_process.hpp"

#include "clock.hpp"
#include "process.hpp"

#include <spawn.h>
#include <sys/wait.h>

#include <csignal>
#include <ctime>
#include <utility>
#include <vector>

namespace nsfork::bench {

Result<ServeProcess> ServeProcess::start(const std::string& nsfork_path) {
    auto dir = TempDir::create("serve");
    if (!dir) return std::move(dir).error();
    std::string socket = dir->path() + "/nsfork.sock";
    const Command cmd({nsfork_path, "serve", "--socket", socket, "--log-level", "warn"}, inherited_env());
    pid_t pid = -1;
    if (const int rc = ::posix_spawn(&pid, cmd.path(), nullptr, nullptr, cmd.argv(), cmd.envp()); rc != 0)
        return sys_error(Errc::unavailable, "cannot start " + cmd.text(), rc);
    ServeProcess serve(std::move(*dir), std::move(socket), pid);
    const std::int64_t deadline = now_ns() + 10'000'000'000;
    for (;;) {
        if (Client::connect(serve.socket_)) return serve;
        int status;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            serve.pid_ = -1;
            return Error{Errc::unavailable, cmd.text() + " exited before it listened"};
        }
        if (now_ns() > deadline) return Error{Errc::unavailable, cmd.text() + " did not listen within 10 s"};
        const timespec ts{0, 2'000'000};
        ::nanosleep(&ts, nullptr);
    }
}

ServeProcess::ServeProcess(ServeProcess&& o) noexcept
    : dir_(std::move(o.dir_)), socket_(std::move(o.socket_)), pid_(std::exchange(o.pid_, -1)) {}

ServeProcess::~ServeProcess() {
    if (pid_ < 0) return;
    ::kill(pid_, SIGTERM);
    (void)wait_pid(pid_);
}

} // namespace nsfork::bench
