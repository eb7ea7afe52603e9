// A private temporary directory, removed with everything in it when the owner goes.
#pragma once

#include "base/error.hpp"

#include <string>
#include <utility>

namespace nsfork::bench {

class TempDir {
public:
    // mkdtemp under $TMPDIR (or /tmp), named after `what`.
    static Result<TempDir> create(const std::string& what);
    TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
    TempDir& operator=(TempDir&&) = delete;
    ~TempDir();
    const std::string& path() const { return path_; }

private:
    explicit TempDir(std::string path) : path_(std::move(path)) {}
    std::string path_;
};

} // namespace nsfork::bench
