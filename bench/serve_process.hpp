// A separate `nsfork serve --socket` process, as the CLI and a restarted agent use it.
#pragma once

#include "base/error.hpp"
#include "protocol/client.hpp"
#include "temp_dir.hpp"

#include <sys/types.h>

#include <string>

namespace nsfork::bench {

class ServeProcess {
public:
    // Starts `nsfork_path serve` on a socket in a fresh temporary directory; returns once it
    // accepts connections (bounded: 10 s).
    static Result<ServeProcess> start(const std::string& nsfork_path);
    ServeProcess(ServeProcess&& o) noexcept;
    ServeProcess& operator=(ServeProcess&&) = delete;
    // SIGTERM (the server then kills and reaps every container) and reap it.
    ~ServeProcess();

    const std::string& socket() const { return socket_; }
    pid_t pid() const { return pid_; }
    Result<Client> connect() const { return Client::connect(socket_); }

private:
    ServeProcess(TempDir dir, std::string socket, pid_t pid)
        : dir_(std::move(dir)), socket_(std::move(socket)), pid_(pid) {}
    TempDir dir_;
    std::string socket_;
    pid_t pid_ = -1;
};

} // namespace nsfork::bench
