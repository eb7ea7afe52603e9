#include "testing/server_process.hpp"

#include "testing/process.hpp"

#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <thread>
#include <utility>

namespace nsfork::testing {

Result<ServeProcess> ServeProcess::start(const std::string& nsfork_path, const std::vector<std::string>& extra_args,
                                         std::vector<std::string> wrapper) {
    auto dir = TempDir::create("serve");
    if (!dir) return std::move(dir).error();
    std::string socket = dir->path() + "/nsfork.sock";
    std::vector<std::string> argv = std::move(wrapper);
    argv.insert(argv.end(), {nsfork_path, "serve", "--socket", socket, "--log-level", "warn"});
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    auto pid = spawn(argv);
    if (!pid) return std::move(pid).error();
    ServeProcess serve(std::move(*dir), std::move(socket), *pid);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        if (Client::connect(serve.socket_)) return serve;
        int status = 0;
        if (::waitpid(*pid, &status, WNOHANG) == *pid) {
            serve.pid_ = -1;
            return Error{Errc::unavailable, nsfork_path + " serve exited before it listened, status " +
                                                std::to_string(shell_code(status))};
        }
        if (std::chrono::steady_clock::now() > deadline)
            return Error{Errc::unavailable, nsfork_path + " serve did not listen within 10 s"};
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

ServeProcess::ServeProcess(ServeProcess&& o) noexcept
    : dir_(std::move(o.dir_)), socket_(std::move(o.socket_)), pid_(std::exchange(o.pid_, -1)) {}

ExitStatus ServeProcess::stop() {
    if (pid_ < 0) return {};
    ::kill(pid_, SIGTERM);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {}
    pid_ = -1;
    return WIFSIGNALED(status) ? ExitStatus{0, WTERMSIG(status)} : ExitStatus{WEXITSTATUS(status), 0};
}

} // namespace nsfork::testing
