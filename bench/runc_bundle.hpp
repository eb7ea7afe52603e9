// A minimal OCI bundle for the `runc run` baseline, as KERNEL.md describes it: a rootfs holding
// only the command and its libraries, pid and mount namespaces, /proc mounted, nothing else.
#pragma once

#include "nsfork/error.hpp"
#include "temp_dir.hpp"

#include <string>
#include <vector>

namespace nsfork::bench {

class RuncBundle {
public:
    // Builds the bundle for `command` (an absolute path) in a fresh temporary directory.
    static Result<RuncBundle> create(const std::string& runc, const std::string& command);
    // The argv of one `runc run`; every call names a new container id.
    std::vector<std::string> run_argv();

private:
    RuncBundle(TempDir dir, std::string runc) : dir_(std::move(dir)), runc_(std::move(runc)) {}
    TempDir dir_; // bundle/ and state/ (runc --root): all of runc's files live here
    std::string runc_;
    unsigned next_ = 0;
};

} // namespace nsfork::bench
