// A separate `nsfork serve --socket` process, as the CLI, a restarted agent, the tests and the
// bench use it.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/exit_status.hpp"
#include "nsfork/client.hpp"
#include "testing/temp_dir.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace nsfork::testing {

class ServeProcess {
public:
    // Starts `nsfork_path serve --socket <fresh temp dir>/nsfork.sock --log-level warn` followed
    // by `extra_args`; returns once it accepts connections (bounded: 10 s), or why it did not.
    // `wrapper` runs first and must exec nsfork in place (e.g. prlimit).
    static Result<ServeProcess> start(const std::string& nsfork_path, const std::vector<std::string>& extra_args = {},
                                      std::vector<std::string> wrapper = {});
    ServeProcess(ServeProcess&& o) noexcept;
    ServeProcess& operator=(ServeProcess&&) = delete;
    // SIGTERM (the server then kills and reaps every container) and reap it.
    ~ServeProcess() { (void)stop(); }

    const std::string& socket() const { return socket_; }
    pid_t pid() const { return pid_; }
    Result<Client> connect() const { return Client::connect(socket_); }
    // SIGTERM now; reaps it and returns how it ended ({0, 0} if it was already stopped).
    ExitStatus stop();

private:
    ServeProcess(TempDir dir, std::string socket, pid_t pid)
        : dir_(std::move(dir)), socket_(std::move(socket)), pid_(pid) {}
    TempDir dir_;
    std::string socket_;
    pid_t pid_ = -1;
};

} // namespace nsfork::testing
