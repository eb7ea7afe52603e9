// A private temporary directory, removed with everything in it when its owner goes.
#pragma once

#include "nsfork/error.hpp"

#include <string>
#include <utility>

namespace nsfork::testing {

class TempDir {
public:
    // mkdtemp under $TMPDIR (or /tmp), named nsfork-<what>-XXXXXX.
    static Result<TempDir> create(const std::string& what);
    TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
    TempDir& operator=(TempDir&& o) noexcept;
    ~TempDir();
    const std::string& path() const { return path_; }

private:
    explicit TempDir(std::string path) : path_(std::move(path)) {}
    void remove();
    std::string path_;
};

} // namespace nsfork::testing
